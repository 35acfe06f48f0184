"""`secrets` for the user's own code (issue 20, item 12): a name and an SSM parameter or a
Secrets Manager ARN, on an algorithm or a step; passed as ECS container secrets (references
only), the execution role allowed to read exactly those, no value ever in a task definition,
a plan, a log or the pipeline's state."""
import json

import boto3
import pytest
from helpers import REGION, record_algorithm, single_run

from yunpipe import cli
from yunpipe.engine import compiler
from yunpipe.engine.target import Target
from yunpipe.errors import InputError
from yunpipe.registry import AlgorithmRegistry
from yunpipe.resolve import resolve_workflow
from yunpipe.specs.algorithm import parse_algorithm
from yunpipe.specs.workflow import parse_workflow

TARGET = Target("123456789012", "us-east-1", ("subnet-1",), ("sg-1",))
SECRET_ARN = "arn:aws:secretsmanager:us-east-1:123456789012:secret:api-key-AbCdEf"
PARAMETER_ARN = "arn:aws:ssm:eu-west-1:123456789012:parameter/shared/db-password"
ALGORITHM_SECRETS = [{"name": "API_KEY", "valueFrom": SECRET_ARN + ":token::"},
                     {"name": "DB_PASSWORD", "valueFrom": "/lab/db-password"},
                     {"name": "LICENSE", "valueFrom": "license-key"}]


def algorithm(**overrides):
    return {"name": "alg", "container_name": "me/alg", "run_command": "run $input $output", **overrides}


def error_of(call) -> InputError:
    with pytest.raises(InputError) as caught:
        call()
    return caught.value


@pytest.mark.parametrize("secrets, field, expected", [
    ([{"name": "1KEY", "valueFrom": "p"}], "secrets[0].name", "expected an environment variable name"),
    ([{"name": "KEY"}], "secrets[0].valueFrom", "missing required field"),
    ([{"name": "KEY", "valueFrom": "p", "value": "plain"}], "secrets[0].value", "unknown field"),
    ([{"name": "YUNPIPE_QUEUE_URL", "valueFrom": "p"}], "secrets[0].name",
     "expected a name without the prefixes YUNPIPE_, AWS_, ECS_"),
    ([{"name": "AWS_SECRET_ACCESS_KEY", "valueFrom": "p"}], "secrets[0].name", "expected a name without the prefixes"),
    ([{"name": "KEY", "valueFrom": "a"}, {"name": "KEY", "valueFrom": "b"}], "secrets[1].name",
     "expected a unique name, 'KEY' is given twice"),
    ([{"name": "KEY", "valueFrom": "arn:aws:s3:::bucket/key"}], "secrets[0].valueFrom",
     "expected an SSM parameter ARN (arn:aws:ssm:REGION:ACCOUNT:parameter/NAME) or a Secrets Manager secret ARN"),
    ([{"name": "KEY", "valueFrom": "arn:aws:secretsmanager:us-east-1:123:secret:x"}], "secrets[0].valueFrom",
     "expected an SSM parameter ARN"),
    ([{"name": "KEY", "valueFrom": "my parameter"}], "secrets[0].valueFrom", "expected an SSM parameter name"),
    ([{"name": "KEY", "valueFrom": ""}], "secrets[0].valueFrom", "expected an SSM parameter name or ARN"),
    ([{"name": "MODE", "valueFrom": "p"}], "secrets[0].name",
     "expected a name that is no variable of the algorithm, 'MODE' is one"),
])
def test_bad_algorithm_secrets_are_named(secrets, field, expected):
    document = algorithm(secrets=secrets, environment={"MODE": "fast"})
    error = error_of(lambda: parse_algorithm(document, "alg.json"))
    assert (error.source, error.field) == ("alg.json", field)
    assert expected in error.expected


def test_an_algorithm_s_secrets_read_back_from_its_document():
    spec = parse_algorithm(algorithm(secrets=ALGORITHM_SECRETS), "alg.json")
    assert [(s.name, s.value_from) for s in spec.secrets] == [(s["name"], s["valueFrom"]) for s in ALGORITHM_SECRETS]
    assert parse_algorithm(json.loads(json.dumps(spec.to_document())), "again") == spec
    # An algorithm without secrets keeps the document it always had.
    assert "secrets" not in parse_algorithm(algorithm(), "alg.json").to_document()


def workflow_with(step_secrets, algorithm_name="alg"):
    return {"input_s3_name": "in-bucket", "output_s3_name": "out-bucket",
            "process": {"type": "single_run", "algorithms": [{"name": algorithm_name, "secrets": step_secrets}]}}


def test_bad_step_secrets_are_named(aws_env):
    error = error_of(lambda: parse_workflow(workflow_with([{"name": "K", "valueFrom": "arn:aws:iam::1:role/x"}]), "w.json"))
    assert (error.field, error.expected.split(" (")[0]) == ("process.algorithms[0].secrets[0].valueFrom",
                                                            "expected an SSM parameter ARN")
    record_algorithm("alg", "me/alg:1", variables=[{"name": "MODE"}])
    spec = parse_workflow(workflow_with([{"name": "MODE", "valueFrom": "p"}]), "w.json")
    error = error_of(lambda: resolve_workflow(spec, AlgorithmRegistry()))
    assert str(error) == "w.json: process.algorithms[0].secrets[0].name: expected a name that is no variable of " \
                         "alg@1, 'MODE' is one"


@pytest.fixture
def model(aws_env):
    """A step overriding one of its algorithm's three secrets and adding one, next to -uu's keys."""
    record_algorithm("alg", "me/alg:1", variables=[], secrets=ALGORITHM_SECRETS)
    document = workflow_with([{"name": "DB_PASSWORD", "valueFrom": PARAMETER_ARN},
                              {"name": "EXTRA", "valueFrom": SECRET_ARN}])
    workflow = resolve_workflow(parse_workflow(document, "workflow.json"), AlgorithmRegistry())
    target = Target(TARGET.account_id, TARGET.region, TARGET.subnets, TARGET.security_groups,
                    {"AWS_ACCESS_KEY_ID": "AKIAEXAMPLE", "AWS_SECRET_ACCESS_KEY": "s3cr3t"})
    return compiler.build_model(workflow, target, use_user_credential=True)


def test_the_task_definition_names_each_secret_by_reference_the_step_s_winning(model):
    (definition,) = model.steps[0].task_definition.registration["containerDefinitions"]
    assert definition["secrets"] == [
        {"name": "AWS_ACCESS_KEY_ID", "valueFrom": "arn:aws:ssm:us-east-1:123456789012:parameter/yunpipe/in-bucket/aws-access-key-id"},
        {"name": "AWS_SECRET_ACCESS_KEY",
         "valueFrom": "arn:aws:ssm:us-east-1:123456789012:parameter/yunpipe/in-bucket/aws-secret-access-key"},
        {"name": "API_KEY", "valueFrom": SECRET_ARN + ":token::"},
        {"name": "LICENSE", "valueFrom": "license-key"},
        {"name": "DB_PASSWORD", "valueFrom": PARAMETER_ARN},
        {"name": "EXTRA", "valueFrom": SECRET_ARN},
    ]
    assert not {e["name"] for e in definition["environment"]} & {s["name"] for s in definition["secrets"]}


def test_the_execution_role_reads_exactly_those_secrets(model):
    statements = {s["Sid"]: s for s in model.steps[0].execution_role.policy["Statement"]}
    assert statements["ReadSecretParameters"] == {
        "Sid": "ReadSecretParameters", "Effect": "Allow", "Action": "ssm:GetParameters",
        "Resource": [PARAMETER_ARN, "arn:aws:ssm:us-east-1:123456789012:parameter/license-key"]}
    # The JSON-key suffix is ECS's, not part of the secret's ARN; the two references are one secret.
    assert statements["ReadSecrets"] == {"Sid": "ReadSecrets", "Effect": "Allow",
                                         "Action": "secretsmanager:GetSecretValue", "Resource": [SECRET_ARN]}
    # -uu's own parameters keep their statement; the overridden /lab/db-password is nowhere.
    assert len(statements["ReadUserCredentials"]["Resource"]) == 2
    assert "/lab/db-password" not in json.dumps(model.steps[0].execution_role.policy)


def test_a_pipeline_without_secrets_has_no_secret_statements(aws_env):
    record_algorithm("alg", "me/alg:1", variables=[])
    workflow = resolve_workflow(parse_workflow(workflow_with([]), "workflow.json"), AlgorithmRegistry())
    step = compiler.build_model(workflow, TARGET).steps[0]
    assert "secrets" not in step.task_definition.registration["containerDefinitions"][0]
    assert [s["Sid"] for s in step.execution_role.policy["Statement"]] == ["WriteLogs"]


def test_no_secret_value_reaches_a_plan_the_state_or_aws(moto, write_workflow, capsys, tmp_path):
    """The values sit in SSM and Secrets Manager; setup-pipe handles only their references."""
    value, other = "hunter2-do-not-print", "correct-horse-battery"
    boto3.client("ssm", region_name=REGION).put_parameter(Name="/lab/db-password", Value=value, Type="SecureString")
    arn = boto3.client("secretsmanager", region_name=REGION).create_secret(
        Name="api-key", SecretString=json.dumps({"token": other}))["ARN"]
    record_algorithm("alg", "me/alg:1", variables=[],
                     secrets=[{"name": "DB_PASSWORD", "valueFrom": "/lab/db-password"},
                              {"name": "API_KEY", "valueFrom": arn + ":token::"}])
    path = write_workflow({**single_run(algorithm="alg"), "process": {"type": "single_run", "algorithms": [{"name": "alg"}]}})
    assert cli.setup_pipe_main(["-f", path, "--dry-run"]) == 0
    assert cli.setup_pipe_main(["-f", path]) == 0
    printed = capsys.readouterr()
    ecs = boto3.client("ecs", region_name=REGION)
    definition = ecs.describe_task_definition(taskDefinition="yunpipe-demo-alg-task")["taskDefinition"]
    registered = json.dumps(definition, default=str)
    state = "".join(p.read_text() for p in (tmp_path / "home").rglob("*") if p.is_file() and p.suffix == ".json")
    for text in (printed.out, printed.err, registered, state):
        assert value not in text and other not in text
    assert {"name": "DB_PASSWORD", "valueFrom": "/lab/db-password"} in definition["containerDefinitions"][0]["secrets"]
    role = boto3.client("iam").get_role_policy(RoleName="yunpipe-demo-alg-exec-role", PolicyName="yunpipe")
    resources = [s["Resource"] for s in role["PolicyDocument"]["Statement"] if s["Sid"].startswith("ReadSecret")]
    assert resources == [["arn:aws:ssm:us-east-1:123456789012:parameter/lab/db-password"], [arn]]
