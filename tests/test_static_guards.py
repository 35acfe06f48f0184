"""AWS's static limits (tests/strict_aws.py's guards): Lambda environment variables over 4 KB,
an inline role policy over 10,240 characters, RunTask count over 10, a task definition over
64 KiB. Each: the strict layer refuses it as AWS does, and the engine never sends it (a plan-
time refusal where the workflow can cause it, a cap where the launcher could)."""
import dataclasses
import json

import boto3
import pytest
from botocore.exceptions import ClientError
from helpers import REGION, single_run

from yunpipe import cli
from yunpipe.engine import compiler, limits
from yunpipe.engine.target import Target
from yunpipe.errors import InputError
from yunpipe.registry import AlgorithmRegistry
from yunpipe.resolve import resolve_workflow
from yunpipe.runtime import contract
from yunpipe.runtime.launcher import tasks
from yunpipe.specs.workflow import parse_workflow

TARGET = Target("123456789012", REGION, ("subnet-1",), ("sg-1",))


def client(service):
    return boto3.client(service, region_name=REGION)


def refused(call, code: str, message: str) -> None:
    with pytest.raises(ClientError) as raised:
        call()
    assert raised.value.response["Error"]["Code"] == code
    assert message in raised.value.response["Error"]["Message"]


def function_role(moto) -> str:
    arn = client("iam").create_role(RoleName="guard-role", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    moto.clock.sleep(moto.role_propagation_seconds)
    return arn


def variables_of(size: int) -> dict[str, str]:
    """Variables whose JSON ({"VV":"xxx..."}) is exactly `size` bytes (Lambda's names have 2
    characters at least)."""
    return {"VV": "x" * (size - len('{"VV":""}'))}


def test_lambda_refuses_environment_variables_over_4_kb(moto):
    lam, role = client("lambda"), function_role(moto)
    create = dict(FunctionName="guarded", Runtime="python3.12", Role=role, Handler="h.h", Code={"ZipFile": b"PK"})
    refused(lambda: lam.create_function(**create, Environment={"Variables": variables_of(4097)}),
            "InvalidParameterValueException", "exceeded the 4KB limit. String measured: {\"VV\":\"xxx")
    lam.create_function(**create, Environment={"Variables": variables_of(4096)})
    refused(lambda: lam.update_function_configuration(FunctionName="guarded",
                                                       Environment={"Variables": variables_of(4097)}),
            "InvalidParameterValueException", "Lambda was unable to configure your environment variables")
    assert moto.rules_fired() == {"lambda-environment-too-large"}


def test_iam_refuses_an_inline_policy_over_10240_characters_not_counting_white_space(moto):
    iam = client("iam")
    iam.create_role(RoleName="guarded", AssumeRolePolicyDocument="{}")

    def policy(characters: int, padding: str = "") -> str:
        statement = {"Effect": "Allow", "Action": "s3:GetObject", "Resource": ""}
        bare = len(json.dumps({"Version": "2012-10-17", "Statement": [statement]}, separators=(",", ":")))
        statement["Resource"] = "arn:aws:s3:::b/" + "k" * (characters - bare - len("arn:aws:s3:::b/"))
        return json.dumps({"Version": "2012-10-17", "Statement": [statement]}, indent=padding or None,
                          separators=(",", ":"))

    # White space is not counted: 10,240 characters indented far beyond that still fit.
    iam.put_role_policy(RoleName="guarded", PolicyName="p", PolicyDocument=policy(10240, " " * 200))
    refused(lambda: iam.put_role_policy(RoleName="guarded", PolicyName="p", PolicyDocument=policy(10241)),
            "LimitExceeded", "Maximum policy size of 10240 bytes exceeded for role guarded")
    assert moto.rules_fired() == {"iam-role-policy-too-large"}


def fargate_task(ecs, family: str = "guarded", **container) -> None:
    ecs.register_task_definition(family=family, networkMode="awsvpc", requiresCompatibilities=["FARGATE"], cpu="256",
                                 memory="512", containerDefinitions=[{"name": "main", "image": "i", "memory": 128, **container}])


def network() -> tuple[str, str]:
    ec2 = client("ec2")
    return ec2.describe_subnets()["Subnets"][0]["SubnetId"], ec2.describe_security_groups()["SecurityGroups"][0]["GroupId"]


def test_ecs_refuses_a_run_task_count_over_10(moto):
    ecs = client("ecs")
    ecs.create_cluster(clusterName="guarded")
    fargate_task(ecs)
    subnet, group = network()
    run = dict(cluster="guarded", taskDefinition="guarded", launchType="FARGATE",
               networkConfiguration={"awsvpcConfiguration": {"subnets": [subnet], "securityGroups": [group]}})
    refused(lambda: ecs.run_task(**run, count=11), "InvalidParameterException",
            "Task count can not be greater than 10")
    assert len(ecs.run_task(**run, count=10)["tasks"]) == 10
    assert moto.rules_fired() == {"ecs-run-task-count"}


def test_ecs_refuses_a_task_definition_over_64_kib(moto):
    ecs = client("ecs")
    refused(lambda: fargate_task(ecs, environment=[{"name": "V", "value": "x" * 65536}]), "ClientException",
            "Max allowed length is '65536' bytes.")
    fargate_task(ecs, environment=[{"name": "V", "value": "x" * 60000}])
    assert moto.rules_fired() == {"ecs-task-definition-too-large"}


# The engine never sends them.

def created_anything() -> bool:
    return bool(client("s3").list_buckets()["Buckets"] or client("iam").list_roles(PathPrefix="/yunpipe/")["Roles"])


def test_variables_too_big_for_a_task_definition_are_refused_before_anything_is_created(
        moto, change123, write_workflow, capsys):
    document = single_run()
    document["process"]["algorithms"][0]["variables"] = {"TEST_ENV": "x" * 70000}
    assert cli.setup_pipe_main(["-f", write_workflow(document)]) == 2
    err = capsys.readouterr().err
    assert "workflow.json: process.algorithms[0].variables: expected variables that keep the task definition within " \
           "ECS's 65536 bytes, got " in err
    assert not created_anything() and moto.refusals == []


def test_subnets_too_many_for_the_launchers_environment_are_refused_before_anything_is_created(
        moto, change123, write_workflow, capsys):
    ec2 = boto3.client("ec2", region_name=REGION)
    vpc = ec2.describe_vpcs(Filters=[{"Name": "is-default", "Values": ["true"]}])["Vpcs"][0]["VpcId"]
    # Real subnets of one VPC (setup-pipe refuses unknown ones first), as many as an account may have.
    subnets = [ec2.create_subnet(VpcId=vpc, CidrBlock=f"172.31.{96 + n // 16}.{(n % 16) * 16}/28",
                                 AvailabilityZone="us-east-1a")["Subnet"]["SubnetId"] for n in range(170)]
    document = single_run(subnets=subnets)
    assert cli.setup_pipe_main(["-f", write_workflow(document)]) == 2
    err = capsys.readouterr().err
    assert "workflow.json: process.algorithms[0]: expected a step whose launcher's environment fits Lambda's 4096 " \
           "bytes, got " in err
    assert not created_anything() and moto.refusals == []


def compiled_step(aws_env, change123):
    document = single_run()
    workflow = resolve_workflow(parse_workflow(document, "workflow.json"), AlgorithmRegistry())
    return workflow, compiler.build_model(workflow, TARGET).steps[0]


def test_a_role_policy_over_iams_limit_is_refused_with_the_step(aws_env, change123):
    workflow, step = compiled_step(aws_env, change123)
    assert limits.policy_characters(step.task_role.policy) < limits.ROLE_POLICY_CHARACTERS // 4
    huge = dataclasses.replace(step.task_role, policy={**step.task_role.policy, "Id": "x" * 10240})
    with pytest.raises(InputError) as raised:
        limits.check_step(dataclasses.replace(step, task_role=huge), workflow.steps[0], "workflow.json",
                          "process.algorithms[0]", TARGET)
    assert str(raised.value).startswith("workflow.json: process.algorithms[0]: expected a step whose role "
                                        "yunpipe-demo-change123-s3-task-role has a policy within IAM's 10240 characters")


def test_the_measures_match_what_aws_measures(aws_env, change123):
    """The engine's sizes are the strict layer's (AWS's) sizes of what it sends."""
    _, step = compiled_step(aws_env, change123)
    variables = {"A": "b", "C": "d"}
    assert limits.environment_bytes(variables, TARGET) == len('{"A":"b","C":"d"}')
    assert limits.policy_characters({"a": [1, 2]}) == len('{"a":[1,2]}')
    assert limits.registration_bytes(step.task_definition.registration, {}, TARGET) < limits.TASK_DEFINITION_BYTES


def test_the_launcher_starts_many_tasks_ten_at_a_time(moto):
    ecs = client("ecs")
    ecs.create_cluster(clusterName="guarded")
    fargate_task(ecs)
    subnet, group = network()
    config = contract.LauncherConfig(pipeline="demo", step="s", queue_url="", cluster="guarded",
                                     task_definition="guarded", started_by="yunpipe-demo-s", concurrency=25,
                                     files_per_task=1, launch_type="FARGATE", capacity_provider="",
                                     subnets=(subnet,), security_groups=(group,), assign_public_ip="ENABLED")
    started, failures = tasks.run_tasks(ecs, config, 25, moto.clock.sleep)
    assert (len(started), failures) == (25, [])
    assert moto.refusals == []
