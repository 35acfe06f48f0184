"""The local algorithm registry: numbered, immutable versions and NAME[@VERSION] references."""
import json

import pytest

from yunpipe.errors import InputError, YunpipeError
from yunpipe.registry import AlgorithmRegistry
from yunpipe.specs.algorithm import parse_algorithm


@pytest.fixture
def registry(tmp_path, monkeypatch):
    monkeypatch.setenv("YUNPIPE_HOME", str(tmp_path))
    return AlgorithmRegistry()


def spec(command="tool $input $output"):
    return parse_algorithm({"name": "tool", "container_name": "lab/tool", "run_command": command}, "tool.json")


def test_the_registry_lives_under_yunpipe_home(registry, tmp_path):
    registry.record(spec(), "lab/tool:1")
    assert (tmp_path / "algorithms" / "tool" / "1.json").is_file()


def test_versions_count_up_and_never_change(registry, tmp_path):
    assert registry.next_version("tool") == 1
    first = registry.record(spec("one $input $output"), "lab/tool:1", "sha256:" + "a" * 64)
    before = (tmp_path / "algorithms" / "tool" / "1.json").read_text()
    second = registry.record(spec("two $input $output"), "lab/tool:2")
    assert (first.version, second.version) == (1, 2)
    assert (tmp_path / "algorithms" / "tool" / "1.json").read_text() == before
    assert registry.get("tool").spec.run_command == "two $input $output"
    assert registry.get("tool", 1).spec.run_command == "one $input $output"
    with pytest.raises(YunpipeError, match="tool@1 is already recorded"):
        registry.record(spec("three $input $output"), "lab/tool:1", version=1)
    assert (tmp_path / "algorithms" / "tool" / "1.json").read_text() == before


def test_a_record_keeps_the_normalized_spec_and_pins_the_digest(registry):
    digest = "sha256:" + "b" * 64
    record = registry.record(spec(), "127.0.0.1:5000/yunpipe-local/tool:1", digest)
    document = json.loads((registry.root / "tool" / "1.json").read_text())
    assert document["spec"] == spec().to_document()
    assert document["image"] == "127.0.0.1:5000/yunpipe-local/tool:1"
    assert record.image_uri == f"127.0.0.1:5000/yunpipe-local/tool@{digest}"
    assert registry.record(spec(), "yunpipe-local/tool:2").image_uri == "yunpipe-local/tool:2"


def test_resolve_name_and_name_at_version(registry):
    registry.record(spec(), "lab/tool:1")
    registry.record(spec(), "lab/tool:2")
    assert registry.resolve("tool", "wf.json", "process.algorithms[0].name").version == 2
    assert registry.resolve("tool@1", "wf.json", "process.algorithms[0].name").image == "lab/tool:1"


@pytest.mark.parametrize("reference, message", [
    ("nothing", "'nothing' is unknown (known: tool)"),
    ("tool@9", "expected a recorded version of 'tool' (1), got 9"),
    ("tool@0", "expected NAME or NAME@VERSION"),
    ("tool@latest", "expected NAME or NAME@VERSION"),
])
def test_unknown_names_and_versions_name_the_field(registry, reference, message):
    registry.record(spec(), "lab/tool:1")
    with pytest.raises(InputError) as caught:
        registry.resolve(reference, "wf.json", "process.algorithms[0].name")
    assert caught.value.exit_status == 2
    assert str(caught.value).startswith("wf.json: process.algorithms[0].name: ")
    assert message in str(caught.value)


def test_an_empty_registry_says_to_wrap_first(registry):
    with pytest.raises(InputError, match="none recorded yet; run wrap first"):
        registry.resolve("tool", "wf.json", "name")
    assert registry.latest() == []


def test_newer_than_is_the_newest_version_only_when_it_is_newer(registry):
    registry.record(spec("one $input $output"), "lab/tool:1")
    newest = registry.record(spec("two $input $output"), "lab/tool:2")
    assert registry.newer_than("tool@1") == newest
    # The newest itself, no version (the newest at each setup), an unknown name, not a reference.
    for reference in ("tool@2", "tool", "other@1", "tool@x", ""):
        assert registry.newer_than(reference) is None, reference
