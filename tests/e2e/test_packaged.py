"""End to end (issue 10): a packaged Python algorithm with a PyPI requirement, from `yunpipe init`
to results on the local cloud; wrapping it again records a new version only when its code changed."""
import json
import uuid
from pathlib import Path

import docker.errors
import pytest

from yunpipe.registry import AlgorithmRegistry

from .helpers import run_ok, write_inputs

pytestmark = pytest.mark.e2e

# python-slugify (and its text-unidecode) come from PyPI when wrap builds the runtime image.
MAIN = '''"""Slugs each line of a text file, with SEPARATOR between the words."""
import os
import sys

from slugify import slugify


def main(source: str, target: str) -> None:
    separator = os.environ["SEPARATOR"]
    with open(source, encoding="utf-8") as lines, open(target, "w", encoding="utf-8") as out:
        for line in lines:
            out.write(slugify(line, separator=separator) + "\\n")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
'''
SEPARATOR = '''  - name: SEPARATOR
    description: between the words of a slug
    schema: {"type": "string", "enum": ["-", "_", "."], "default": "-"}
'''
SEPARATOR_SCHEMA = {"type": "string", "enum": ["-", "_", "."], "default": "-"}


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new))


@pytest.fixture
def package_name(docker_client):
    """A name of its own (concurrent sessions never share its tags); its images are removed after."""
    name = f"slugs-{uuid.uuid4().hex[:6]}"
    yield name
    for label in (f"org.yunpipe.algorithm.name={name}", f"org.yunpipe.package.name={name}"):
        for image in docker_client.images.list(filters={"label": label}):
            for tag in image.tags:
                docker_client.images.remove(tag, force=True)


def container_output(client, image: str, *command: str) -> str:
    return client.containers.run(image, entrypoint=list(command), remove=True, network_mode="none").decode()


@pytest.mark.timeout(900)
def test_a_packaged_python_algorithm_from_init_to_results(package_name, pipeline, docker_client, tmp_path):
    name = package_name
    folder = tmp_path / name
    assert f"created {folder}/: yunpipe.yaml, main.py, example/input.txt" in run_ok("init", str(folder))
    (folder / "main.py").write_text(MAIN)
    edit(folder / "yunpipe.yaml", "requirements: []", 'requirements: ["python-slugify>=8"]')
    declared = (folder / "yunpipe.yaml").read_text().split("user_specified_environment_variables:\n")[1]
    edit(folder / "yunpipe.yaml", declared.split("timeout_seconds")[0], SEPARATOR)

    wrapped = run_ok("wrap", "--local", "--yes", "-f", f"{folder}/")
    assert f"recorded {name}@1: yunpipe-local/{name}:1" in wrapped
    registry = AlgorithmRegistry()
    first = registry.get(name, 1)
    assert first is not None and first.spec.container_name.startswith(f"yunpipe-runtime/{name}:")
    # The parameters' JSON Schemas are in the registry (shown by `algorithms show`) and in the image.
    shown = json.loads(run_ok("algorithms", "show", f"{name}@1"))
    assert shown["spec"]["user_specified_environment_variables"] == [
        {"name": "SEPARATOR", "required": False, "description": "between the words of a slug", "schema": SEPARATOR_SCHEMA}]
    in_image = json.loads(container_output(docker_client, first.image, "cat", "/opt/yunpipe/algorithm.json"))
    assert in_image == shown["spec"]
    # The requirement was installed at build time: the base's own python3 does not have it.
    with pytest.raises(docker.errors.ContainerError):
        container_output(docker_client, "yunpipe/base:bookworm", "python3", "-c", "import slugify")

    slugs = pipeline([{"name": name, "variables": {"SEPARATOR": "_"}}], idle_seconds=5)
    inputs = {"greetings.txt": "Héllo Wörld!\nÇa va, yunpipe?\n", "deep/dir/title.txt": "Packaged algorithms (issue 10)\n"}
    run_ok("upload", "--local", slugs.name, str(write_inputs(tmp_path / "in", inputs)))
    slugs.wait_for_results({"greetings.txt": b"hello_world\nca_va_yunpipe\n",
                            "deep/dir/title.txt": b"packaged_algorithms_issue_10\n"}, timeout=180)

    # The same folder again: nothing is built or recorded.
    again = run_ok("wrap", "--local", "--yes", "-f", str(folder / "yunpipe.yaml"))
    assert f"{name}: unchanged, still {name}@1: yunpipe-local/{name}:1" in again
    assert registry.versions(name) == [1]

    # Changed code: a new version, whose image runs the new code.
    (folder / "main.py").write_text(MAIN.replace("slugify(line, separator=separator)",
                                                 "slugify(line, separator=separator).upper()"))
    changed = run_ok("wrap", "--local", "--yes", "-f", str(folder))
    assert f"recorded {name}@2: yunpipe-local/{name}:2" in changed
    assert registry.versions(name) == [1, 2]
    second = registry.get(name, 2)
    assert second is not None and second.spec.container_name != first.spec.container_name
    assert ".upper()" in container_output(docker_client, second.image, "cat", "/opt/algorithm/main.py")
