"""Each bad input: exit 2 from the console entry, the field named on stderr, and no AWS call."""
import json

import pytest
from helpers import record_algorithm, single_run

from yunpipe import cli
from yunpipe.aws.facade import watch_calls


def _with_algorithm(**step):
    return {**single_run(), "process": {"type": "single_run", "algorithms": [{"name": "change123-s3", **step}]}}


CASES = {
    "malformed JSON": ("workflow.json", '{"input_s3_name": "a-bucket",', "line 1"),
    "malformed YAML": ("workflow.yaml", "process: [unclosed\n", "expected valid YAML"),
    "schema violation": ("workflow.json", {"input_s3_name": "in-bucket", "output_s3_name": "out-bucket"}, "process"),
    "unknown algorithm": ("workflow.json", single_run(algorithm="nope"), "process.algorithms[0].name"),
    "unknown version": ("workflow.json", single_run(algorithm="change123-s3@9"), "process.algorithms[0].name"),
    "missing required variable": ("workflow.json", _with_algorithm(variables={}),
                                  "process.algorithms[0].variables.TEST_ENV"),
    "invalid bucket name": ("workflow.json", {**single_run(), "input_s3_name": "Bad_Bucket"}, "input_s3_name"),
    "unknown process type": ("workflow.json", {**single_run(), "process": {"type": "parallel_run", "algorithms": [
        {"name": "change123-s3"}]}}, "process.type"),
    "undeclared variable": ("workflow.json", _with_algorithm(variables={"TEST_ENV": "x", "NOPE": "1"}),
                            "process.algorithms[0].variables.NOPE"),
    # SQS extends a message's visibility to at most 12 h from its receive.
    "step timeout over 12 h": ("workflow.json", _with_algorithm(variables={"TEST_ENV": "x"}, timeout_seconds=43201),
                               "process.algorithms[0].timeout_seconds: expected a number of seconds from 1 to 43200"),
    "visibility over 12 h": ("workflow.json", {**single_run(), "visibility_timeout_seconds": 43201},
                             "visibility_timeout_seconds"),
    "value not matching schema": ("workflow.json", single_run(algorithm="typed"), "process.algorithms[0].variables.TEST_ENV"),
    "public IP not a boolean": ("workflow.json", {**single_run(), "assign_public_ip": "ENABLED"},
                                'assign_public_ip: expected boolean, got "ENABLED"'),
    "secret of a reserved name": ("workflow.json", _with_algorithm(variables={"TEST_ENV": "x"}, secrets=[
        {"name": "AWS_SESSION_TOKEN", "valueFrom": "/lab/token"}]), "process.algorithms[0].secrets[0].name: expected a "
                                                                   "name without the prefixes"),
    "secret from an S3 ARN": ("workflow.json", _with_algorithm(variables={"TEST_ENV": "x"}, secrets=[
        {"name": "KEY", "valueFrom": "arn:aws:s3:::bucket/key"}]), "process.algorithms[0].secrets[0].valueFrom"),
    "accounting not a boolean": ("workflow.json", {**single_run(), "accounting": "yes"},
                                 'accounting: expected boolean, got "yes"'),
    "force not a boolean": ("workflow.json", _with_algorithm(variables={"TEST_ENV": "x"}, force="yes"),
                            'process.algorithms[0].force: expected boolean, got "yes"'),
    "force where jobs always run": ("workflow.json", {**single_run(algorithm="dice"), "process": {
        "type": "single_run", "algorithms": [{"name": "dice", "variables": {"TEST_ENV": "x"}, "force": True}]}},
        "process.algorithms[0].force: expected no force on a step whose algorithm is not deterministic: dice@1"),
    "quiet period of 0 s": ("workflow.json", {**single_run(), "run_quiet_seconds": 0},
                            "run_quiet_seconds: expected a number of seconds from 1 to 604800"),
    "quiet period not a number": ("workflow.json", {**single_run(), "run_quiet_seconds": "2m"}, "run_quiet_seconds"),
    "secret named like a variable": ("workflow.json", _with_algorithm(variables={"TEST_ENV": "x"}, secrets=[
        {"name": "TEST_ENV", "valueFrom": "/lab/x"}]), "process.algorithms[0].secrets[0].name: expected a name that "
                                                       "is no variable of change123-s3@1"),
}


@pytest.mark.parametrize("case", CASES)
def test_bad_input_exits_2_naming_the_field_without_aws(case, change123, tmp_path, capsys):
    record_algorithm("typed", "user/typed:1",
                     variables=[{"name": "TEST_ENV", "required": True, "schema": {"type": "integer"}}])
    record_algorithm("dice", "user/dice:1", deterministic=False)
    filename, content, field = CASES[case]
    path = tmp_path / filename
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    with watch_calls() as calls:
        status = cli.setup_pipe_main(["-f", str(path), "--region", "us-east-1"])
    assert status == 2
    assert field in capsys.readouterr().err
    assert calls == []


def test_a_bad_second_file_stops_before_the_first_is_deployed(change123, write_workflow, capsys):
    good = write_workflow(single_run(), "good.json")
    bad = write_workflow(single_run(name="other", algorithm="nope"), "bad.json")
    with watch_calls() as calls:
        assert cli.setup_pipe_main(["-f", good, bad]) == 2
    assert calls == []
    assert "bad.json: process.algorithms[0].name" in capsys.readouterr().err


def test_an_algorithm_too_big_for_fargate_is_an_input_error(aws_env, write_workflow, capsys):
    record_algorithm("huge", "user/huge:1", CPU=32)
    with watch_calls() as calls:
        assert cli.setup_pipe_main(["-f", write_workflow(single_run(algorithm="huge"))]) == 2
    assert calls == [] and "CPU/memory" in capsys.readouterr().err
