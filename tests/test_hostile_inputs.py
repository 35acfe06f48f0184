"""Issue 22: odd and hostile spec files end in one line, never a traceback. Each is refused
before anything is created, as `FILE: FIELD: expected ...` (exit 2), or accepted when valid.
tests/test_fuzz_specs.py generates many more; these are the classes the issue names."""
import json

import pytest
import yaml
from helpers import single_run

from yunpipe import cli
from yunpipe.aws.facade import is_mutating, watch_calls
from yunpipe.registry import AlgorithmRegistry
from yunpipe.specs.loading import load_document
from yunpipe.specs.workflow import find_cycle, load_workflow

ALGORITHM = {"name": "alg", "container_name": "lab/alg:1", "run_command": "run $input $output"}
LONG = "a" * 300


def _algorithm(**changes) -> str:
    return json.dumps({**ALGORITHM, **changes})


def _bomb(levels: int = 9) -> str:
    lines = ["name: alg", "container_name: lab/alg:1", "run_command: run $input $output",
             "description: &l0 [x, x, x, x, x, x, x, x, x]"]
    lines += [f"environment_{i}: &l{i} [{', '.join(['*l' + str(i - 1)] * 9)}]" for i in range(1, levels)]
    return "\n".join(lines) + "\n"


# file name, content, what stderr says after "FILE: "
ALGORITHM_CASES = {
    "empty JSON": ("alg.json", "", "expected a JSON document, the file is empty"),
    "JSON nested 5,000 deep": ("alg.json", "[" * 5000 + "]" * 5000, "expected at most 64 levels of nesting"),
    "YAML nested 5,000 deep": ("alg.yaml", "a: " + "[" * 5000 + "]" * 5000, "expected at most 64 levels of nesting"),
    "YAML alias bomb": ("alg.yaml", _bomb(), "expected at most 100000 values"),
    "a recursive YAML alias": ("alg.yaml", "name: &a [*a]\n", "expected at most 64 levels of nesting"),
    "a YAML date": ("alg.yaml", "name: 2024-01-01\ncontainer_name: lab/alg\nrun_command: run $input $output\n",
                    "name: expected text, a number, true/false, null, a list or a mapping, got a date"),
    "YAML !!binary": ("alg.yaml", "name: !!binary aGVsbG8=\n", "name: expected text, a number, true/false, null, "
                                                              "a list or a mapping, got binary data"),
    "YAML !!set": ("alg.yaml", "name: !!set {a, b}\n", "got a set (!!set)"),
    "mixed YAML keys": ("alg.yaml", "name: alg\nenvironment:\n  1: a\n  b: c\n", "environment: expected text keys"),
    "a YAML key given twice": ("alg.yaml", "name: a\nname: b\n", "name: expected each key once"),
    "a JSON key given twice": ("alg.json", '{"name": "a", "name": "b"}', "name: expected each key once"),
    "NaN": ("alg.json", '{"name": "alg", "CPU": NaN}', "expected a finite number, got NaN"),
    "a number that overflows": ("alg.json", _algorithm()[:-1] + ', "CPU": 1e400}', "CPU: expected a finite number"),
    "a YAML infinity": ("alg.yaml", "name: alg\nCPU: .inf\n", "CPU: expected a finite number"),
    "5,000 digits": ("alg.json", '{"name": ' + "1" * 5000 + "}", "expected numbers of at most 4300 digits"),
    "not UTF-8": ("alg.json", b'{"name": "\xff"}', "expected UTF-8 text"),
    "over 1 MiB": ("alg.json", _algorithm(description="x" * (1 << 20)), "expected a file of at most 1024 KiB"),
    "a trailing newline in the name": ("alg.json", _algorithm(name="uppercase\n"), "name: expected a name of letters"),
    "a 300-character name": ("alg.json", _algorithm(name=LONG), "name: expected a name of letters"),
    "an upper-case image": ("alg.json", _algorithm(container_name="Lab/Alg"), "container_name: expected a Docker image"),
    "a 300-character image": ("alg.json", _algorithm(container_name=LONG), "container_name: expected a Docker image"),
    "an image with a newline": ("alg.json", _algorithm(container_name="lab/alg\n"), "container_name: expected"),
    "timeout 1e100": ("alg.json", _algorithm(timeout_seconds=1e100), "timeout_seconds: expected a number of seconds"),
    "memory 1e30": ("alg.json", _algorithm(memory={"suggested": 1e30}), "memory.suggested: expected a number of MiB"),
    "CPU 1e30": ("alg.json", _algorithm(CPU=1e30), "CPU: expected a number of vCPUs greater than 0, at most 192"),
    "an empty environment key": ("alg.json", _algorithm(environment={"": "x"}), "environment: expected a variable name"),
    "'=' in an environment key": ("alg.json", _algorithm(environment={"A=B": "x"}), "environment: expected a variable"),
    "NUL in an environment key": ("alg.json", _algorithm(environment={"A\0": "x"}), "environment: expected a variable"),
    "NUL in an environment value": ("alg.json", _algorithm(environment={"A": "x\0"}), "environment.A: expected text "
                                                                                    "without NUL"),
    "the task's variables in environment": ("alg.json", _algorithm(environment={"YUNPIPE_STEP": "x"}),
                                            "environment.YUNPIPE_STEP: expected another name"),
    "NUL in run_command": ("alg.json", _algorithm(run_command="run $input $output\0"), "run_command: expected a "
                                                                                      "non-empty command without NUL"),
    "a redirection without a shell": ("alg.json", _algorithm(run_command="wc -l $input > $output"),
                                      "run_command: expected a command without shell syntax, got '>'"),
    "a pipe without a shell": ("alg.json", _algorithm(run_command="cat $input | sort > $output"), "got '|'"),
    "a variable without a shell": ("alg.json", _algorithm(run_command="run --n $COUNT $input $output"),
                                   "got '$COUNT'"),
    "a substitution without a shell": ("alg.json", _algorithm(run_command='run "$(date)" $input $output'), "got '$('"),
    "PATH as a variable": ("alg.json", _algorithm(user_specified_environment_variables=[{"name": "PATH"}]),
                           "user_specified_environment_variables[0].name: expected another name"),
    "an AWS variable": ("alg.yaml", yaml.safe_dump({**ALGORITHM, "user_specified_environment_variables": [
        {"name": "AWS_SECRET_ACCESS_KEY"}]}), "user_specified_environment_variables[0].name: expected another name"),
    "a YUNPIPE variable": ("alg.json", _algorithm(user_specified_environment_variables=[{"name": "YUNPIPE_X"}]),
                           "expected another name"),
    "a reference nowhere": ("alg.json", _algorithm(user_specified_environment_variables=[
        {"name": "X", "schema": {"$ref": "#/nope"}}]), "user_specified_environment_variables[0].schema: expected $refs"),
    "a remote reference": ("alg.json", _algorithm(user_specified_environment_variables=[
        {"name": "X", "schema": {"$ref": "http://127.0.0.1:9/schema.json"}}]), "(yunpipe fetches nothing)"),
    "a file reference": ("alg.json", _algorithm(user_specified_environment_variables=[
        {"name": "X", "schema": {"$ref": "file:///etc/passwd"}}]), "(yunpipe fetches nothing)"),
}


@pytest.mark.parametrize("case", ALGORITHM_CASES)
def test_a_hostile_algorithm_file_is_one_line_naming_the_field(case, aws_env, tmp_path, capsys):
    name, content, expected = ALGORITHM_CASES[case]
    path = tmp_path / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    assert cli.main(["wrap", "-f", str(path), "--dry-run", "--output-dir", str(tmp_path / "context")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"error: {path}: "), err
    assert expected in err, err
    assert AlgorithmRegistry().names() == []


@pytest.mark.parametrize("changes", [
    {"user_specified_environment_variables": [{"name": "X", "schema": {
        "$defs": {"word": {"type": "string", "pattern": "^[a-z]+$"}}, "$ref": "#/$defs/word", "default": "abc"}}]},
    {"run_command": "sh -c 'wc -l $input > $output'"},
    {"run_command": "run '$HOME|x;y' $input $output"},
    {"run_command": "run ${input_file} ${output_file} --join $input_left"},
    {"CPU": 2.0, "timeout_seconds": 600.0, "memory": {"suggested": 1024.0}},
])
def test_what_looks_odd_but_is_valid_is_accepted(changes, aws_env, tmp_path, capsys):
    path = tmp_path / "alg.json"
    path.write_text(_algorithm(**changes))
    assert cli.main(["wrap", "-f", str(path), "--dry-run", "--output-dir", str(tmp_path / "context")]) == 0, \
        capsys.readouterr().err


def test_a_file_name_too_long_for_the_system_is_one_line(aws_env, tmp_path, capsys):
    for name in (f"{LONG}.json", f"{LONG}.cwl", LONG, f"{LONG}/yunpipe.yaml"):
        path = tmp_path / name
        assert cli.main(["wrap", "-f", str(path), "--dry-run"]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith(f"error: {path}: "), err


def test_an_empty_registry_record_is_one_line_naming_it(change123, write_workflow, capsys):
    record = AlgorithmRegistry().root / "change123-s3" / "2.json"
    record.write_text("")
    assert cli.setup_pipe_main(["-f", write_workflow(single_run()), "--dry-run", "--region", "us-east-1"]) == 2
    err = capsys.readouterr().err
    assert err == f"error: {record}: expected a JSON document, the file is empty\n"


WORKFLOW_CASES = {
    "a trailing newline in the pipeline name": ({**single_run(), "name": "demo\n"}, "name: expected a pipeline name"),
    "a trailing newline in the region": ({**single_run(), "region": "us-east-1\n"}, "region: expected an AWS region"),
    "a trailing newline in a bucket": ({**single_run(), "input_s3_name": "demo-in-bucket\n"}, "input_s3_name"),
    "a trailing newline in a subnet": ({**single_run(), "subnets": ["subnet-0abc\n"]}, "subnets[0]: expected a subnet"),
    "a 300-character algorithm name": (single_run(algorithm=LONG), "process.algorithms[0].name: expected NAME"),
    "an algorithm name that is a path": (single_run(algorithm="../../etc"), "process.algorithms[0].name: expected NAME"),
    "a version in superscript digits": (single_run(algorithm="change123-s3@²"), "process.algorithms[0].name"),
    "a step id with a newline": ({**single_run(), "process": {"type": "graph", "steps": [
        {"name": "change123-s3", "id": "one\n", "variables": {"TEST_ENV": "x"}}]}}, "process.steps[0].id"),
    "NUL in a variable's value": ({**single_run(), "process": {"type": "single_run", "algorithms": [
        {"name": "change123-s3", "variables": {"TEST_ENV": "a\0b"}}]}}, "process.algorithms[0].variables.TEST_ENV: "
                                                                          "expected a value without NUL"),
    "a 1,500-step cycle": ({**single_run(), "process": {"type": "graph", "steps": [
        {"name": "change123-s3", "id": f"s{i}", "after": [f"s{(i - 1) % 1500}"], "variables": {"TEST_ENV": "x"}}
        for i in range(1500)]}}, "expected steps without a cycle, got s0 -> s1499 -> "),
}


@pytest.mark.parametrize("case", WORKFLOW_CASES)
def test_a_hostile_workflow_is_one_line_naming_the_field(case, change123, write_workflow, capsys):
    document, expected = WORKFLOW_CASES[case]
    path = write_workflow(document)
    with watch_calls() as calls:
        assert cli.setup_pipe_main(["-f", path, "--dry-run", "--region", "us-east-1"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"error: {path}: "), err
    assert expected in err, err
    assert not [call for call in calls if is_mutating(call[1])]


def test_a_bad_reference_in_a_recorded_schema_is_refused_at_setup_pipe(change123, write_workflow, capsys):
    """A record wrapped before wrap checked references: setup-pipe names it instead of crashing."""
    record = AlgorithmRegistry().root / "change123-s3" / "1.json"
    document = json.loads(record.read_text())
    document["spec"]["user_specified_environment_variables"][0]["schema"] = {"type": "string"}
    document["spec"]["user_specified_environment_variables"][0]["schema"]["$ref"] = "#/nope"
    record.write_text(json.dumps(document))
    assert cli.setup_pipe_main(["-f", write_workflow(single_run()), "--dry-run", "--region", "us-east-1"]) == 2
    assert "schema: expected $refs to this schema's own parts" in capsys.readouterr().err


def test_the_cycle_check_needs_no_recursion(tmp_path):
    steps = [{"name": "change123-s3", "id": f"s{i}", **({"after": [f"s{i - 1}"]} if i else {})} for i in range(5000)]
    path = tmp_path / "chain.json"
    path.write_text(json.dumps({**single_run(), "process": {"type": "graph", "steps": steps}}))
    assert find_cycle(load_workflow(path).steps) == []


def test_a_file_the_machine_cannot_write_is_one_line(aws_env, tmp_path, capsys):
    """An environment problem, not bad input: `error: PATH: why`, exit 1."""
    path = tmp_path / "alg.json"
    path.write_text(_algorithm())
    (tmp_path / "a-file").write_text("")
    assert cli.main(["wrap", "-f", str(path), "--dry-run", "--output-dir", str(tmp_path / "a-file" / "context")]) == 1
    assert capsys.readouterr().err == f"error: {tmp_path / 'a-file' / 'context'}: Not a directory\n"


def test_a_document_read_is_plain_json_values(tmp_path):
    """What the reader returns is plain dicts and lists: YAML can write it back (config.yaml)."""
    path = tmp_path / "config.yaml"
    path.write_text("remote: s3://b/p\nnested: {a: {b: [1, {c: d}]}}\nbase: &b {x: 1}\nmerged: {<<: *b, x: 2}\n")
    document = load_document(path)
    assert yaml.safe_load(yaml.safe_dump(document)) == document == {
        "remote": "s3://b/p", "nested": {"a": {"b": [1, {"c": "d"}]}}, "base": {"x": 1}, "merged": {"x": 2}}


@pytest.mark.parametrize("text, expected", [
    # A packed file ($graph) without the process wrap would run: cwl-utils' GraphTargetMissingException.
    ("cwlVersion: v1.2\n$graph:\n  - id: other\n    class: CommandLineTool\n    baseCommand: cat\n"
     "    inputs: {text: {type: File}}\n    outputs: {out: {type: stdout}}\n", "must specify one of #other"),
    # Nothing is fetched: CWL is read without an HTTP session.
    ("cwlVersion: v1.2\nclass: CommandLineTool\nbaseCommand: cat\nrequirements:\n"
     "  $import: http://127.0.0.1:9/requirements.yml\ninputs: {text: {type: File}}\noutputs: {out: {type: stdout}}\n",
     "Unsupported scheme in url: http://127.0.0.1:9/requirements.yml"),
    ("cwlVersion: v1.2\nclass: CommandLineTool\nclass: CommandLineTool\n", "class: expected each key once"),
])
def test_a_cwl_file_cwl_utils_cannot_read_is_one_line(text, expected, aws_env, tmp_path, capsys):
    path = tmp_path / "tool.cwl"
    path.write_text(text)
    assert cli.main(["wrap", "-f", str(path), "--dry-run", "--output-dir", str(tmp_path / "context")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"error: {path}: ") and expected in err, err


def test_a_region_flag_with_a_trailing_newline_is_refused_naming_the_flag(change123, write_workflow, capsys):
    with watch_calls() as calls:
        assert cli.setup_pipe_main(["-f", write_workflow(single_run()), "--dry-run", "--region", "us-east-1\n"]) == 2
    assert capsys.readouterr().err == "error: --region: expected an AWS region such as us-east-1, got 'us-east-1\\n'\n"
    assert calls == []
