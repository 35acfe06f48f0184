"""Our own fuzzing (issue 22): Hypothesis generates algorithm, workflow and CWL files, valid and
broken (fields set to odd values or removed, unknown fields, YAML's own types, truncated text),
and feeds each to `wrap --dry-run` or `setup-pipe --dry-run` in this process. Every run must end
in success, in exit 2 with one line naming the file, or in exit 1 with one line: never a
traceback (cli.main lets an unexpected exception through, which fails the test), nor a
recorded algorithm, nor a mutating AWS call.

The budget is bounded and the examples fixed (derandomize): YUNPIPE_FUZZ_EXAMPLES scales it
(default 60 algorithm files, 30 CWL tools, 25 workflows; about 40 s in all)."""
import json
import os
import tempfile
from pathlib import Path

import pytest
import yaml
from helpers import single_run
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from yunpipe import cli
from yunpipe.aws.facade import is_mutating, watch_calls
from yunpipe.registry import AlgorithmRegistry

SCALE = float(os.environ.get("YUNPIPE_FUZZ_EXAMPLES", "1"))


def budget(examples: int):
    return settings(max_examples=max(1, int(examples * SCALE)), derandomize=True, database=None, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                           HealthCheck.data_too_large])


# Values that have broken readers before, then anything JSON holds.
ODD_TEXT = st.sampled_from(["", " ", "\n", "x\n", "x\0y", "a" * 300, "UPPER", "../x", "é", "$HOME", "> $output",
                            "run $input $output", "wc -l $input > $output", "#/nope", "2024-01-01", "s3://b/x"])
SCALARS = (st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.sampled_from([0, -1, 1e30, 1e100, 0.5, 43201])
           | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20) | ODD_TEXT)
JSON_VALUES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=3)
                           | st.dictionaries(st.text(max_size=6) | ODD_TEXT, inner, max_size=3), max_leaves=6)
# Text only YAML reads as something else: a date, binary, a set, an alias bomb's seed, a non-text key.
YAML_ONLY = st.sampled_from(["2024-01-01", "!!binary aGVsbG8=", "!!set {a, b}", ".inf", ".nan", "{1: a, b: c}",
                             "&a [*a]", "[[[[[[[[[[]]]]]]]]]]", "!!omap [a: 1]", "on", "0x1F", "1_000"])

# Values each field might well hold, valid or nearly: they take a run past the first refusal.
FIELD_VALUES = {
    "name": st.from_regex(r"\A[A-Za-z0-9][A-Za-z0-9_.-]{0,70}\Z") | st.sampled_from(["change123-s3", "change123-s3@1"]),
    "container_name": st.sampled_from(["lab/alg", "registry.example:5000/lab/alg:2", "alg@sha256:" + "a" * 64,
                                       "Lab/alg", "lab//alg", "lab/alg:", ":1"]),
    "run_command": st.sampled_from(["run $input $output", "sh -c 'wc -l $input > $output'", "cat $input",
                                    "run ${input_file} ${output_file}", "run $input $output &", "run '$input' $output",
                                    "run \"$input\" $output", "run $input $output # note", "a\\ b $input $output"]),
    "memory": st.fixed_dictionaries({}, optional={"minimal": st.integers(-1, 300000), "suggested": st.integers(-1, 300000)}),
    "suggested": st.integers(-1, 300000), "minimal": st.integers(-1, 300000), "memory_minimal": st.integers(0, 9),
    "CPU": st.floats(0, 300) | st.integers(0, 300), "cpu": st.floats(0, 20),
    "timeout_seconds": st.integers(-1, 50000), "gpu": st.integers(-1, 9),
    "instance_type": st.sampled_from(["", "g4dn.xlarge", "c7g.large", "m5.large", "p3.8xlarge", "x"]),
    "environment": st.dictionaries(st.from_regex(r"\A[A-Z_]{1,8}\Z") | ODD_TEXT, st.text(max_size=8), max_size=3),
    "system": st.sampled_from(["ubuntu", "debian", "alpine", "windows"]),
    "input_adapter": st.sampled_from(["path", "stdin", "x"]), "output_adapter": st.sampled_from(["path", "stdout"]),
    "concurrency": st.integers(0, 101), "files_per_task": st.integers(0, 1001), "memory_mib": st.integers(0, 130000),
    "capacity": st.sampled_from(["FARGATE", "FARGATE_SPOT", "EC2"]), "launch_type": st.sampled_from(["FARGATE", "EC2"]),
    "after": st.lists(st.sampled_from(["first", "second", "last", "nope"]), max_size=3),
    "id": st.sampled_from(["first", "second", "last", "x-1", "X", ""]), "gather": st.booleans(),
    "marker": st.sampled_from(["", ".done", "x"]), "ephemeral_storage_gib": st.integers(19, 201),
    "log_retention_days": st.sampled_from([1, 2, 30, 3653]), "region": st.sampled_from(["us-east-1", "eu-west-3", "x"]),
    "input_s3_name": st.sampled_from(["demo-in-bucket", "in.x", "192.168.0.1", "xn--abc", "a" * 64]),
    "output_s3_name": st.sampled_from(["demo-out-bucket", "demo-in-bucket", "out-.x"]),
    "variables": st.dictionaries(st.sampled_from(["TEST_ENV", "LEVEL", "X"]), JSON_VALUES, max_size=2),
    "type": st.sampled_from(["single_run", "sequence_run", "graph", "File", "int", "stdout"]),
}

ALGORITHM = {"name": "alg", "container_name": "lab/alg:1", "run_command": "run $input $output",
             "description": "a tool", "system": "debian", "memory": {"minimal": 256, "suggested": 512}, "CPU": 1,
             "timeout_seconds": 600, "environment": {"MODE": "fast"}, "input_adapter": "path",
             "output_adapter": "path", "version": "1.0", "port": [{"port": 80}],
             "user_specified_environment_variables": [
                 {"name": "LEVEL", "required": False, "schema": {"type": "integer", "default": 3}}]}


def _set(document, path: list, value, delete: bool):
    """The document with the value at `path` (keys and indexes that exist) set or removed."""
    target = document
    for part in path[:-1]:
        target = target[part]
    if delete:
        del target[path[-1]]
    else:
        target[path[-1]] = value


def _paths(document, prefix=()):
    """Every key and index of a document, outermost first."""
    items = document.items() if isinstance(document, dict) else enumerate(document) if isinstance(document, list) \
        else ()
    for key, value in items:
        yield [*prefix, key]
        yield from _paths(value, (*prefix, key))


@st.composite
def mutated(draw, base: dict, keys: list[str]):
    """A copy of base with up to 3 changes: a field set to an odd value, removed, or added."""
    document = json.loads(json.dumps(base))
    for _ in range(draw(st.integers(0, 3))):
        paths = list(_paths(document))
        if paths and draw(st.booleans()):
            path = draw(st.sampled_from(paths))
            fitting = FIELD_VALUES.get(path[-1]) if isinstance(path[-1], str) else None
            value = draw(fitting if fitting is not None and draw(st.integers(0, 3)) else JSON_VALUES)
            _set(document, path, value, draw(st.integers(0, 4)) == 0)
        elif isinstance(document, dict):
            document[draw(st.sampled_from(keys) | st.text(max_size=8))] = draw(JSON_VALUES)
    return document


@st.composite
def spec_text(draw, base: dict, keys: list[str]) -> tuple[str, str]:
    """(suffix, file text): the mutated document as JSON or YAML, perhaps with YAML's own types
    or cut short."""
    document = draw(mutated(base, keys))
    form = draw(st.sampled_from(["json", "yaml", "yaml-only", "cut"]))
    if form == "json":
        return ".json", json.dumps(document)
    text = yaml.safe_dump(document, sort_keys=False)
    if form == "yaml-only":
        key = draw(st.sampled_from(keys))
        return ".yaml", f"{text}{key}: {draw(YAML_ONLY)}\n" if isinstance(document, dict) else text
    if form == "cut":
        return ".yaml", text[:draw(st.integers(0, len(text)))]
    return ".yaml", text


def check_outcome(status: int, err: str, path: Path) -> str:
    """Success, exit 2 naming the file, or exit 1 in one line; the outcome, for the statistics."""
    assert "Traceback" not in err, err
    if status == 0:
        return "accepted"
    assert status in (1, 2), (status, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    if status == 2:
        assert lines[0].startswith(f"error: {path}"), err
        return "refused: " + lines[0][len(f"error: {path}: "):].split(":")[0][:40]
    return "exit 1: " + lines[0][:60]


def _wrap(path: Path, capsys) -> str:
    context = tempfile.mkdtemp(dir=path.parent)
    status = cli.main(["wrap", "-f", str(path), "--dry-run", "--output-dir", context])
    outcome = check_outcome(status, capsys.readouterr().err, path)
    assert AlgorithmRegistry().names() == []
    return outcome


@pytest.mark.timeout(300)
@budget(60)
@given(st.data())
def test_generated_algorithm_files_end_in_success_or_one_line(aws_env, tmp_path, capsys, data):
    suffix, text = data.draw(spec_text(ALGORITHM, list(ALGORITHM)))
    path = Path(tempfile.mkdtemp(dir=tmp_path)) / f"alg{suffix}"
    path.write_text(text)
    event(_wrap(path, capsys))


TOOL = {"cwlVersion": "v1.2", "class": "CommandLineTool", "baseCommand": ["wc", "-l"],
        "requirements": {"DockerRequirement": {"dockerPull": "lab/wc:1"}, "ResourceRequirement": {"coresMin": 1}},
        "inputs": {"text": {"type": "File", "inputBinding": {"position": 1}},
                   "level": {"type": "int", "default": 2, "inputBinding": {"prefix": "-n"}}},
        "outputs": {"out": {"type": "stdout"}}, "stdout": "out.txt"}


@pytest.mark.timeout(300)
@budget(30)
@given(st.data())
def test_generated_cwl_tools_end_in_success_or_one_line(aws_env, tmp_path, capsys, data):
    _, text = data.draw(spec_text(TOOL, [*TOOL, "hints", "arguments", "$graph", "$import", "id"]))
    path = Path(tempfile.mkdtemp(dir=tmp_path)) / "tool.cwl"
    path.write_text(text)
    event(_wrap(path, capsys))


def _workflows() -> list[dict]:
    graph = {**single_run(), "region": "us-east-1", "filter": {"prefix": "in/"}, "process": {"type": "graph", "steps": [
        {"name": "change123-s3", "id": "first", "variables": {"TEST_ENV": "a"}, "concurrency": 2},
        {"name": "change123-s3@1", "id": "second", "after": ["first"], "variables": {"TEST_ENV": "b"}, "memory": 1024},
        {"name": "change123-s3", "id": "last", "after": ["first", "second"], "variables": {"TEST_ENV": "c"}}]}}
    return [single_run(), graph]


WORKFLOW_KEYS = ["name", "input_s3_name", "output_s3_name", "process", "region", "subnets", "security_groups",
                 "launch_type", "log_retention_days", "idle_seconds", "visibility_timeout_seconds", "filter"]


@pytest.mark.timeout(300)
@budget(25)
@given(st.data())
def test_generated_workflows_end_in_success_or_one_line_creating_nothing(moto, change123, tmp_path, capsys, data):
    base = data.draw(st.sampled_from(_workflows()))
    suffix, text = data.draw(spec_text(base, WORKFLOW_KEYS))
    path = Path(tempfile.mkdtemp(dir=tmp_path)) / f"workflow{suffix}"
    path.write_text(text)
    with watch_calls() as calls:
        status = cli.main(["setup-pipe", "-f", str(path), "--dry-run", "--region", "us-east-1"])
    event(check_outcome(status, capsys.readouterr().err, path))
    assert not [call for call in calls if is_mutating(call[1])]
