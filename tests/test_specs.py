"""The algorithm and workflow specs: 0.0.3 files load unchanged; bad input names its field."""
import json
from pathlib import Path

import pytest

from yunpipe.errors import InputError
from yunpipe.registry import AlgorithmRegistry
from yunpipe.resolve import resolve_workflow
from yunpipe.runtime.worker.command import substitute
from yunpipe.specs.algorithm import load_algorithm, parse_algorithm
from yunpipe.specs.workflow import derive_pipeline_name, load_workflow, parse_workflow

EXAMPLE_ALGORITHM = "examples/change123/change123-s3.json"
EXAMPLE_WORKFLOW = "examples/change123/workflow.json"


def algorithm(**overrides):
    doc = {"name": "alg", "container_name": "me/alg", "run_command": "run $input $output"}
    doc.update(overrides)
    return doc


def workflow(**overrides):
    doc = {"input_s3_name": "in-bucket", "output_s3_name": "out-bucket",
           "process": {"type": "single_run", "algorithms": [{"name": "alg"}]}}
    doc.update(overrides)
    return doc


def error_of(call) -> InputError:
    with pytest.raises(InputError) as caught:
        call()
    return caught.value


def test_0_0_3_algorithm_example_loads_unchanged():
    spec = load_algorithm(EXAMPLE_ALGORITHM)
    assert (spec.name, spec.container_name, spec.system) == ("change123-s3", "wangyx2005/change123", "ubuntu")
    assert (spec.memory_minimal, spec.memory_suggested, spec.cpu) == (50, 128, 1)
    assert spec.parameters[0].name == "TEST_ENV" and spec.parameters[0].required
    assert spec.ports == ({"port": 9090, "protocol": "tcp"},)


def test_0_0_3_workflow_example_loads_unchanged():
    spec = load_workflow(EXAMPLE_WORKFLOW)
    assert (spec.input_bucket, spec.output_bucket, spec.process_type) == (
        "container-clouds-input", "container-clouds-output", "single_run")
    assert spec.steps[0].reference == "change123-s3"
    assert spec.steps[0].variables == {"TEST_ENV": "blah blah blah"}
    assert spec.name == "container-clouds-input"


def test_yaml_algorithm_loads_like_json(tmp_path):
    path = tmp_path / "alg.yaml"
    path.write_text("name: alg\ncontainer_name: me/alg\nrun_command: run $input $output\nCPU: 2\n")
    assert load_algorithm(path).cpu == 2


def test_omitted_fields_get_defaults_and_empty_cpu_object_means_one():
    spec = parse_algorithm(algorithm(CPU={}), "a.json")
    assert spec.cpu == 1 and spec.system == "ubuntu"
    assert spec.input_adapter == "path" and spec.output_adapter == "path"
    assert spec.timeout_seconds > 0 and spec.memory_suggested > 0


def test_normalized_document_reads_back_to_the_same_spec():
    spec = parse_algorithm(algorithm(version="2.1", environment={"A": "b"},
                                     user_specified_environment_variables=[
                                         {"name": "SEED", "schema": {"type": "integer", "default": 7}}]), "a.json")
    assert parse_algorithm(json.loads(json.dumps(spec.to_document())), "again") == spec


@pytest.mark.parametrize("overrides, field, expected", [
    ({"memory": {"suggested": "abc"}}, "memory.suggested", "expected integer"),
    ({"system": "windows"}, "system", "expected one of"),
    ({"CPU": -1}, "CPU", "vCPUs"),
    ({"name": "bad name!"}, "name", "letters, digits"),
    ({"input_adapter": "socket"}, "input_adapter", "expected one of"),
    ({"surprise": 1}, "surprise", "unknown field"),
    ({"user_specified_environment_variables": [{"name": "1BAD"}]},
     "user_specified_environment_variables[0].name", "environment variable name"),
    ({"user_specified_environment_variables": [{"name": "A", "schema": {"type": "nonsense"}}]},
     "user_specified_environment_variables[0].schema", "valid JSON Schema"),
    ({"user_specified_environment_variables": [{"name": "A", "schema": {"type": "integer", "default": "x"}}]},
     "user_specified_environment_variables[0].schema.default", "satisfies its own schema"),
    ({"memory": {"minimal": 600, "suggested": 100}}, "memory.minimal", "at most"),
    # SQS holds a message at most 12 h: a longer job would run twice.
    ({"timeout_seconds": 43201}, "timeout_seconds", "from 1 to 43200"),
    # 0 is success; an exit status stops at 255.
    ({"permanent_exit_codes": [0]}, "permanent_exit_codes[0]", "from 1 to 255"),
    ({"permanent_exit_codes": [2, 256]}, "permanent_exit_codes[1]", "from 1 to 255"),
    ({"permanent_exit_codes": [3, 3]}, "permanent_exit_codes", "distinct"),
    ({"permanent_exit_codes": 3}, "permanent_exit_codes", "expected array"),
    ({"deterministic": "no"}, "deterministic", "expected boolean"),
])
def test_bad_algorithm_field_is_named(overrides, field, expected):
    error = error_of(lambda: parse_algorithm(algorithm(**overrides), "alg.json"))
    assert error.source == "alg.json" and error.field == field and expected in error.expected


def test_permanent_exit_codes_default_to_none_and_stay_out_of_the_document():
    spec = parse_algorithm(algorithm(), "alg.json")
    assert spec.permanent_exit_codes == () and "permanent_exit_codes" not in spec.to_document()
    declared = parse_algorithm(algorithm(permanent_exit_codes=[65, 3]), "alg.json")
    assert declared.permanent_exit_codes == (3, 65)
    assert parse_algorithm(json.loads(json.dumps(declared.to_document())), "again") == declared


def test_an_algorithm_is_deterministic_unless_it_says_not_and_only_then_the_document_says_so():
    assert parse_algorithm(algorithm(), "alg.json").deterministic is True
    assert "deterministic" not in parse_algorithm(algorithm(), "alg.json").to_document()
    dice = parse_algorithm(algorithm(deterministic=False), "alg.json")
    assert dice.deterministic is False and dice.to_document()["deterministic"] is False


def test_a_timeout_of_twelve_hours_is_accepted():
    assert parse_algorithm(algorithm(timeout_seconds=43200), "alg.json").timeout_seconds == 43200


def test_missing_required_algorithm_field_is_named():
    doc = algorithm()
    del doc["run_command"]
    error = error_of(lambda: parse_algorithm(doc, "alg.json"))
    assert error.field == "run_command" and "missing" in error.expected


SHIPPED_ALGORITHMS = sorted(str(p) for p in [*Path("examples").glob("*/*.json"), *Path("tests/e2e/algorithms").glob("*/*.json")]
                            if p.name != "workflow.json")


@pytest.mark.parametrize("path", SHIPPED_ALGORITHMS)
def test_every_shipped_algorithm_loads(path):
    assert load_algorithm(path).run_command


def test_the_shipped_algorithms_are_all_found():
    assert {Path(p).name for p in SHIPPED_ALGORITHMS} == {
        "change123-s3.json", "uppercase.json", "wordcount.json", "checksum.json", "tester.json", "pair.json", "gather.json"}


@pytest.mark.parametrize("overrides, expected", [
    ({"run_command": "sh -c 'tr a-z A-Z < $input > $output"}, "splits like a shell's (No closing quotation)"),
    ({"run_command": 'run "$input" "$output'}, "splits like a shell's (No closing quotation)"),
    ({"run_command": "run $input \\"}, "splits like a shell's (No escaped character)"),
    ({"run_command": "   "}, "a non-empty command"),
    ({"run_command": "run $input"}, "expected $output or ${output_file}"),
    # Names the runscript does not substitute: longer variables, the unbraced spelling.
    ({"run_command": "run $input $outputs"}, "expected $output or ${output_file}"),
    ({"run_command": "run $input $output_file"}, "expected $output or ${output_file}"),
    ({"run_command": "run $input {output_file}"}, "expected $output or ${output_file}"),
    ({"run_command": "cat $input", "input_adapter": "stdin", "output_adapter": "path"}, "expected $output"),
    # The output folder proves nothing when it is "/" or the input folder itself.
    ({"run_command": "run $input /", "output_file_path": "/"}, "expected $output"),
    ({"run_command": "run /data/model.bin $input", "input_file_path": "/data", "output_file_path": "/data"},
     "expected $output"),
    ({"run_command": "cp $input /data/outbox/", "output_file_path": "/data/out"}, "expected $output"),
])
def test_a_run_command_that_cannot_run_or_writes_no_output_is_refused(overrides, expected):
    error = error_of(lambda: parse_algorithm(algorithm(**overrides), "alg.json"))
    assert (error.source, error.field) == ("alg.json", "run_command") and expected in error.expected
    assert str(error).startswith("alg.json: run_command: expected ")


PLACEHOLDER_COMMANDS = [
    "run $input $output",
    "run ${input_file} ${output_file}",
    "run --in=$input --out=$output.tmp",
    "sh -c 'sha256sum < $input | cut -c1-64 > $output'",
    'run $input "$output"',
]
ACCEPTED_COMMANDS = [{"run_command": command} for command in PLACEHOLDER_COMMANDS] + [
    {"run_command": "python3 /count.py", "input_adapter": "stdin", "output_adapter": "stdout"},
    {"run_command": "run $input", "output_adapter": "stdout"},
    # The command writes the contract's output path, <output_file_path>/<input name>, itself.
    {"run_command": "sh -c 'tr a-z A-Z < $input > /data/out/$(basename $input)'", "output_file_path": "/data/out"},
    {"run_command": "cp $input /yunpipe/output/"},
]


@pytest.mark.parametrize("overrides", ACCEPTED_COMMANDS)
def test_a_run_command_that_writes_its_output_is_accepted(overrides):
    assert parse_algorithm(algorithm(**overrides), "alg.json").run_command == overrides["run_command"]


@pytest.mark.parametrize("command", PLACEHOLDER_COMMANDS)
def test_the_accepted_output_placeholders_are_the_ones_the_runscript_substitutes(command):
    assert any("/out/x.txt" in word for word in substitute(command, "/in/x.txt", "/out/x.txt"))


def test_malformed_json_and_yaml_name_the_file_and_position(tmp_path):
    bad_json = tmp_path / "w.json"
    bad_json.write_text('{"input_s3_name": ')
    error = error_of(lambda: load_workflow(bad_json))
    assert error.source == str(bad_json) and "line 1" in error.field and "JSON" in error.expected
    bad_yaml = tmp_path / "w.yaml"
    bad_yaml.write_text("process: [unclosed\n")
    error = error_of(lambda: load_workflow(bad_yaml))
    assert "line" in error.field and "YAML" in error.expected


def test_missing_file_is_an_input_error(tmp_path):
    assert "not found" in error_of(lambda: load_workflow(tmp_path / "nope.json")).expected


@pytest.mark.parametrize("bucket", ["UPPER", "ab", "a" * 64, "bad..dots", "192.168.1.1", "-lead", "xn--punycode"])
def test_invalid_bucket_name_is_named(bucket):
    error = error_of(lambda: parse_workflow(workflow(input_s3_name=bucket), "w.json"))
    assert error.field == "input_s3_name" and "valid S3 bucket name" in error.expected


def test_unknown_process_type_is_named():
    doc = workflow(process={"type": "parallel_run", "algorithms": [{"name": "alg"}]})
    error = error_of(lambda: parse_workflow(doc, "w.json"))
    assert error.field == "process.type" and "single_run" in error.expected


def test_single_run_takes_exactly_one_algorithm():
    doc = workflow(process={"type": "single_run", "algorithms": [{"name": "a"}, {"name": "b"}]})
    assert error_of(lambda: parse_workflow(doc, "w.json")).field == "process.algorithms"


def test_same_input_and_output_bucket_is_refused():
    assert error_of(lambda: parse_workflow(workflow(output_s3_name="in-bucket"), "w.json")).field == "output_s3_name"


def test_pipeline_name_derives_from_input_bucket():
    assert derive_pipeline_name("My.Input.Bucket-2024") == "my-input-bucket-2024"
    assert len(derive_pipeline_name("x" * 63)) <= 24


@pytest.fixture
def registry(tmp_path):
    registry = AlgorithmRegistry(tmp_path / "algorithms")
    spec = parse_algorithm(algorithm(user_specified_environment_variables=[
        {"name": "TEST_ENV", "required": True},
        {"name": "SEED", "schema": {"type": "integer", "minimum": 0, "default": 7}},
        {"name": "MODE", "schema": {"enum": ["fast", "exact"]}},
    ]), "alg.json")
    registry.record(spec, "me/alg:1")
    registry.record(spec, "me/alg:2")
    return registry


def resolve(registry, steps):
    return resolve_workflow(parse_workflow(workflow(process={"type": "sequence_run", "algorithms": steps}), "w.json"), registry)


def test_resolution_fills_defaults_and_stringifies_values(registry):
    resolved = resolve(registry, [{"name": "alg@1", "variables": {"TEST_ENV": "x", "MODE": "fast"}}])
    step = resolved.steps[0]
    assert step.record.version == 1
    assert step.environment == {"TEST_ENV": "x", "SEED": "7", "MODE": "fast"}


def test_bare_name_resolves_to_latest_version(registry):
    assert resolve(registry, [{"name": "alg", "variables": {"TEST_ENV": "x"}}]).steps[0].record.version == 2


@pytest.mark.parametrize("step, field, expected", [
    ({"name": "ghost"}, "process.algorithms[0].name", "'ghost' is unknown"),
    ({"name": "alg@9", "variables": {"TEST_ENV": "x"}}, "process.algorithms[0].name", "recorded version"),
    ({"name": "alg@x"}, "process.algorithms[0].name", "NAME@VERSION"),
    ({"name": "alg"}, "process.algorithms[0].variables.TEST_ENV", "missing required variable"),
    ({"name": "alg", "variables": {"TEST_ENV": "x", "OTHER": 1}}, "process.algorithms[0].variables.OTHER", "declared"),
    ({"name": "alg", "variables": {"TEST_ENV": "x", "SEED": -1}}, "process.algorithms[0].variables.SEED", "schema"),
    ({"name": "alg", "variables": {"TEST_ENV": "x", "MODE": "slow"}}, "process.algorithms[0].variables.MODE", "schema"),
])
def test_bad_workflow_reference_is_named(registry, step, field, expected):
    error = error_of(lambda: resolve(registry, [step]))
    assert error.field == field and expected in error.expected


def chain_ids(*steps) -> list[str]:
    """The step ids a sequence_run of these steps gets (a bare string: {"name": it})."""
    items = [{"name": step} if isinstance(step, str) else step for step in steps]
    spec = parse_workflow(workflow(process={"type": "sequence_run", "algorithms": items}), "w.json")
    return [step.step_id for step in spec.steps]


def test_an_algorithm_repeated_in_a_sequence_as_in_0_0_3_gets_numbered_step_ids(registry):
    """0.0.3 accepted the same tool twice in a sequence, at two settings: the repeats are numbered."""
    steps = [{"name": "alg", "variables": {"TEST_ENV": "x", "MODE": mode}} for mode in ("fast", "exact", "fast")]
    resolved = resolve(registry, steps)
    assert [s.name for s in resolved.steps] == ["alg", "alg-2", "alg-3"]
    assert [s.environment["MODE"] for s in resolved.steps] == ["fast", "exact", "fast"]
    # Versions and shared registries' URLs name the same algorithm.
    assert chain_ids("alg@1", "alg@2", "s3://lab-bucket/tools/alg") == ["alg", "alg-2", "alg-3"]
    # The same file, the same ids (so a redeploy finds the same resources).
    assert chain_ids("a", "b", "a", "b", "a") == chain_ids("a", "b", "a", "b", "a") == ["a", "b", "a-2", "b-2", "a-3"]


def test_a_generated_step_id_never_takes_an_explicit_id_or_another_algorithms_name():
    # upper-2 is another algorithm's name: the repeat of upper skips it.
    assert chain_ids("upper", "upper", "upper-2") == ["upper", "upper-3", "upper-2"]
    # ... and an explicit id, wherever it stands.
    assert chain_ids("upper", "upper", {"name": "count", "id": "upper-3"}, {"name": "upper", "id": "upper-2"}) == [
        "upper", "upper-4", "upper-3", "upper-2"]
    # A step whose algorithm's name is another step's explicit id is numbered, before or after it.
    assert chain_ids({"name": "count", "id": "upper"}, "upper") == ["upper", "upper-2"]
    assert chain_ids("upper", {"name": "count", "id": "upper"}) == ["upper-2", "upper"]


def test_explicit_step_ids_in_a_sequence_are_kept_and_must_be_unique():
    assert chain_ids("upper", {"name": "upper", "id": "again"}) == ["upper", "again"]
    assert chain_ids({"name": "upper", "id": "first"}, "upper") == ["first", "upper"]
    assert chain_ids({"name": "upper", "id": "upper"}, "upper") == ["upper", "upper-2"]
    error = error_of(lambda: chain_ids({"name": "upper", "id": "x"}, {"name": "count", "id": "x"}))
    assert error.field == "process.algorithms[1].id" and "expected a step id used once, 'x' is already" in str(error)
