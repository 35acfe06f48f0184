"""CWL CommandLineTools as algorithms (issue 10): the mapping of tools in tests/cwl/, written as
the CWL user guide and bio-cwl-tools write them, their commands run as the runscript runs them,
and each CWL feature yunpipe cannot map refused with the field named."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from yunpipe.errors import InputError
from yunpipe.runtime.worker.command import substitute
from yunpipe.runtime.worker.process import run_command
from yunpipe.specs.algorithm import AlgorithmSpec
from yunpipe.specs.cwl import load_cwl_algorithm

REPO = Path(__file__).resolve().parent.parent
TOOLS = REPO / "tests" / "cwl"
BIN = Path(sys.executable).parent
IMAGE = "yunpipe-tests/checksum:latest"


def run_like_the_runscript(spec: AlgorithmSpec, text: str, tmp_path: Path, variables: dict | None = None) -> str:
    """Run the algorithm's command on one input file as the runscript does: placeholders
    substituted, the workflow's variables (else their defaults) in the environment, the adapters."""
    folder = tmp_path / "in"
    folder.mkdir(exist_ok=True)
    source = folder / "notes.txt"
    source.write_text(text)
    output = tmp_path / "out" / "notes.txt"
    output.parent.mkdir(exist_ok=True)
    output.unlink(missing_ok=True)
    env = {"PATH": os.environ["PATH"], **spec.environment}
    for parameter in spec.parameters:
        if parameter.default is not None:
            default = parameter.default
            env[parameter.name] = default if isinstance(default, str) else json.dumps(default)
    env.update({name: value if isinstance(value, str) else json.dumps(value) for name, value in (variables or {}).items()})
    outcome = run_command(
        substitute(spec.run_command, str(source), str(output)), env=env,
        stdin_path=str(source) if spec.input_adapter == "stdin" else None,
        stdout_path=str(output) if spec.output_adapter == "stdout" else None, timeout=30)
    assert outcome.exit_code == 0, outcome.stderr_tail
    return output.read_text()


# ---------------------------------------------------------------------------- the mapping


def test_user_guide_stdin_stdout_tool_is_a_plain_command():
    spec = load_cwl_algorithm(TOOLS / "wc-lines.cwl")
    assert (spec.name, spec.container_name, spec.run_command) == ("wc-lines", IMAGE, "wc -l")
    assert (spec.input_adapter, spec.output_adapter) == ("stdin", "stdout")
    assert spec.parameters == () and spec.description == ""


def test_input_binding_and_a_string_input_make_a_script_reading_a_variable():
    spec = load_cwl_algorithm(TOOLS / "replace.cwl")
    assert spec.name == "replace"
    assert spec.description == "Replace text\n\nRuns a sed script over a text file."
    # The DockerRequirement is a hint here; the File's glob is the stdout name: stdout is the result.
    assert spec.container_name == IMAGE
    assert spec.run_command == """sh -c 'sed -e "$script" $input'"""
    assert (spec.input_adapter, spec.output_adapter) == ("path", "stdout")
    assert [p.to_document() for p in spec.parameters] == [
        {"name": "script", "required": False, "schema": {"type": "string", "default": "s/cat/dog/g"},
         "description": "the sed script"}]


def test_bio_cwl_tools_style_tool_maps_id_resources_bindings_and_a_glob_output():
    spec = load_cwl_algorithm(TOOLS / "sort.cwl")
    assert spec.name == "sort_lines"
    assert spec.description == ("sort: sort the lines of a text file\n\n"
                                "GNU coreutils sort, writing the sorted lines to sorted.txt.")
    assert (spec.cpu, spec.memory_suggested, spec.container_name) == (2, 300, IMAGE)
    # The argument sorts before the inputs at position 0, they by name, the File at position 1;
    # the tool runs in an empty folder and its glob becomes the result.
    assert spec.run_command == (
        "sh -c 'cd \"$(mktemp -d)\" || exit 1; sort --output sorted.txt "
        "${field_separator+--field-separator=\"$field_separator\"} ${key+--key \"$key\"} "
        "$([ \"$numeric\" = true ] && printf %s --numeric-sort) $([ \"$reverse\" = true ] && printf %s --reverse) "
        "$input && mv -- sorted.txt $output; set -- $? \"$PWD\"; cd /; rm -rf \"$2\"; exit \"$1\"'")
    assert (spec.input_adapter, spec.output_adapter) == ("path", "path")
    assert [(p.name, p.required, dict(p.schema)) for p in spec.parameters] == [
        ("reverse", False, {"type": "boolean"}),
        ("numeric", False, {"type": "boolean", "default": False}),
        ("field_separator", False, {"type": "string"}),
        ("key", False, {"type": "integer"}),
    ]


def test_required_enum_and_number_inputs_become_schemas(tmp_path):
    tool = tmp_path / "cut-tool.cwl"
    tool.write_text(yaml.safe_dump({
        "cwlVersion": "v1.2", "class": "CommandLineTool", "baseCommand": "cut",
        "requirements": {"DockerRequirement": {"dockerImageId": IMAGE},
                         "ResourceRequirement": {"coresMax": 0.5, "ramMax": 99.5},
                         "ToolTimeLimit": {"timelimit": 20},
                         "EnvVarRequirement": {"envDef": {"LC_ALL": "C"}}},
        "inputs": {"fields": {"type": "string", "inputBinding": {"prefix": "-f"}},
                   "delimiter": {"type": {"type": "enum", "symbols": ["comma", "tab"]}, "default": "tab"},
                   "width": {"type": "float?"},
                   "text": {"type": "File", "inputBinding": {"position": 1}}},
        "outputs": {"out": "stdout"}}, sort_keys=False))
    spec = load_cwl_algorithm(tool)
    assert (spec.cpu, spec.memory_suggested, spec.timeout_seconds, dict(spec.environment)) == (0.5, 100, 20, {"LC_ALL": "C"})
    assert spec.run_command == """sh -c 'cut -f "$fields" $input'"""
    assert [(p.name, p.required, dict(p.schema)) for p in spec.parameters] == [
        ("fields", True, {"type": "string"}),
        ("delimiter", False, {"type": "string", "enum": ["comma", "tab"], "default": "tab"}),
        ("width", False, {"type": "number"}),
    ]
    assert run_like_the_runscript(spec, "a\tb\tc\n", tmp_path, {"fields": "2,3"}) == "b\tc\n"


@pytest.mark.parametrize("variables, expected", [
    ({}, "10 b\n2 c\n9 a\n"),
    ({"reverse": True}, "9 a\n2 c\n10 b\n"),
    ({"numeric": True}, "2 c\n9 a\n10 b\n"),
    ({"reverse": False, "key": 2}, "9 a\n10 b\n2 c\n"),
    ({"field_separator": " ", "key": 2, "reverse": True}, "2 c\n10 b\n9 a\n"),
])
def test_the_sort_tool_runs_as_cwl_binds_its_inputs(tmp_path, variables, expected):
    spec = load_cwl_algorithm(TOOLS / "sort.cwl")
    assert run_like_the_runscript(spec, "9 a\n10 b\n2 c\n", tmp_path, variables) == expected


def test_the_stdin_and_stdout_tools_run(tmp_path):
    replace = load_cwl_algorithm(TOOLS / "replace.cwl")
    text = "the cat sat\nno cat's file\n"
    assert run_like_the_runscript(replace, text, tmp_path) == "the dog sat\nno dog's file\n"
    assert run_like_the_runscript(replace, text, tmp_path, {"script": "s/ /_/g"}) == "the_cat_sat\nno_cat's_file\n"
    assert run_like_the_runscript(load_cwl_algorithm(TOOLS / "wc-lines.cwl"), text, tmp_path) == "2\n"


def test_wrap_dry_run_takes_a_cwl_tool(tmp_path, monkeypatch):
    monkeypatch.setenv("YUNPIPE_HOME", str(tmp_path / "home"))
    out = tmp_path / "context"
    result = subprocess.run([str(BIN / "wrap"), "-s", "-f", str(TOOLS / "sort.cwl"), "--dry-run", "--output-dir", str(out)],
                            capture_output=True, text=True, cwd=REPO, timeout=120)
    assert result.returncode == 0, result.stderr
    assert json.loads((out / "algorithm.json").read_text()) == load_cwl_algorithm(TOOLS / "sort.cwl").to_document()
    assert f"FROM {IMAGE}\n" in (out / "Dockerfile").read_text()
    assert "runs:   sh -c 'cd \"$(mktemp -d)\"" in result.stdout


# ---------------------------------------------------------------------------- what is refused


def base_tool() -> dict:
    return {
        "cwlVersion": "v1.2", "class": "CommandLineTool", "baseCommand": "cat",
        "requirements": {"DockerRequirement": {"dockerPull": IMAGE}},
        "inputs": {"text": {"type": "File", "inputBinding": {"position": 1}}},
        "outputs": {"out": {"type": "stdout"}},
    }


def with_changes(**changes):
    def change(tool: dict) -> dict:
        for path, value in changes.items():
            *parents, last = path.split("__")
            target = tool
            for part in parents:
                target = target.setdefault(part, {})
            if value is None:
                del target[last]
            else:
                target[last] = value
        return tool
    return change


REFUSED = {
    "workflow": (lambda tool: {"cwlVersion": "v1.2", "class": "Workflow", "inputs": {}, "outputs": {}, "steps": {}},
                 "class", "expected CommandLineTool, got Workflow"),
    "javascript requirement": (with_changes(requirements__InlineJavascriptRequirement={}),
                               "requirements.InlineJavascriptRequirement", "expected no JavaScript"),
    "javascript in arguments": (with_changes(arguments=["$(inputs.text.nameroot)"]),
                                "arguments[0]", "expected no expression but"),
    "javascript block": (with_changes(arguments=[{"valueFrom": "${ return 1; }", "position": 2}]),
                         "arguments[0].valueFrom", "expected no expression but"),
    "File[]": (with_changes(inputs__text__type="File[]"), "inputs.text.type", "got an array (File[])"),
    "string[]": (with_changes(inputs__names={"type": "string[]"}), "inputs.names.type", "got an array (string[])"),
    "Directory": (with_changes(inputs__ref={"type": "Directory"}), "inputs.ref.type", "got Directory"),
    "secondaryFiles": (with_changes(inputs__text__secondaryFiles=[".bai"]), "inputs.text.secondaryFiles",
                       "expected no secondaryFiles"),
    "InitialWorkDirRequirement": (with_changes(requirements__InitialWorkDirRequirement={"listing": ["$(inputs.text)"]}),
                                  "requirements.InitialWorkDirRequirement", "expected no staged working directory"),
    "ShellCommandRequirement": (with_changes(requirements__ShellCommandRequirement={}),
                                "requirements.ShellCommandRequirement", "cannot map ShellCommandRequirement"),
    "no DockerRequirement": (with_changes(requirements__DockerRequirement=None), "requirements.DockerRequirement",
                             "expected a DockerRequirement"),
    "dockerFile hint": (with_changes(requirements__DockerRequirement=None, hints__DockerRequirement={"dockerFile": "FROM x"}),
                        "hints.DockerRequirement.dockerFile", "expected only dockerPull or dockerImageId"),
    "two Files": (with_changes(inputs__other={"type": "File"}), "inputs", "got 2: text, other"),
    "no File": (with_changes(inputs__text={"type": "string", "inputBinding": {"position": 1}}), "inputs", "got 0"),
    "unread File": (with_changes(inputs__text={"type": "File"}), "inputs.text", "the command never reads the file"),
    "glob expression": (with_changes(outputs__out={"type": "File", "outputBinding": {"glob": "$(inputs.text.nameroot)"}}),
                        "outputs.out.outputBinding.glob", "expected a fixed file name, got an expression"),
    "glob pattern": (with_changes(outputs__out={"type": "File", "outputBinding": {"glob": "*.txt"}}),
                     "outputs.out.outputBinding.glob", "expected a fixed file name, got a pattern"),
    "two outputs": (with_changes(outputs__log={"type": "stderr"}), "outputs", "expected exactly one output"),
    "File[] output": (with_changes(outputs__out={"type": "File[]", "outputBinding": {"glob": "a"}}),
                      "outputs.out.type", "expected stdout, File or Directory, got array"),
    "stdin of another thing": (with_changes(stdin="$(inputs.text.basename)"), "stdin", "expected no expression but"),
    "cores expression": (with_changes(requirements__ResourceRequirement={"coresMin": "$(inputs.threads)"}),
                         "requirements.ResourceRequirement.coresMin", "expected a number"),
    "input named output": (with_changes(inputs__output={"type": "string"}), "inputs.output", "expected another name"),
    "input named PATH": (with_changes(inputs__PATH={"type": "string"}), "inputs.PATH", "expected another name"),
    "placeholder text": (with_changes(arguments=["$output"]), "arguments[0]", "expected no $input/$output text"),
    "successCodes": (with_changes(successCodes=[0, 1]), "successCodes", "expected none or [0]"),
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_what_cwl_yunpipe_cannot_map_is_refused_naming_the_field(tmp_path, case):
    change, field, expected = REFUSED[case]
    tool = tmp_path / "tool.cwl"
    tool.write_text(yaml.safe_dump(change(base_tool()), sort_keys=False))
    with pytest.raises(InputError) as caught:
        load_cwl_algorithm(tool)
    assert (caught.value.source, caught.value.field) == (str(tool), field), str(caught.value)
    assert expected in caught.value.expected, str(caught.value)


def test_wrap_exits_2_naming_the_cwl_field(tmp_path, monkeypatch):
    monkeypatch.setenv("YUNPIPE_HOME", str(tmp_path / "home"))
    tool = tmp_path / "reads.cwl"
    tool.write_text(yaml.safe_dump(with_changes(inputs__text__secondaryFiles=[".fai"])(base_tool())))
    broken = tmp_path / "broken.cwl"
    broken.write_text("cwlVersion: v1.2\nclass: CommandLineTool\ninputs: [\n")
    for path, message in ((tool, f"{tool}: inputs.text.secondaryFiles: expected no secondaryFiles"),
                          # Read as every spec file is first (yunpipe.specs.loading), then by cwl-utils.
                          (broken, f"{broken}: line 4, column 1: expected valid YAML"),
                          (tmp_path / "missing.cwl", f"{tmp_path / 'missing.cwl'}: file not found")):
        result = subprocess.run([str(BIN / "wrap"), "-f", str(path), "--dry-run"], capture_output=True, text=True,
                                cwd=REPO, timeout=120)
        assert result.returncode == 2, result.stderr
        assert message in result.stderr, result.stderr
