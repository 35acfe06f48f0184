"""Cost allocation tags: the workflow's `tags` checked against AWS's tagging rules before any AWS
call, and carried with yunpipe's own (yunpipe:pipeline, yunpipe:step) by every resource setup-pipe
creates and by every task a launcher starts (RunTask's propagateTags, through the strict layer,
which copies a task definition's tags as ECS does)."""
import json

import boto3
import pytest
from helpers import REGION, single_run

from yunpipe import cli
from yunpipe.aws.facade import watch_calls
from yunpipe.runtime import contract
from yunpipe.runtime.launcher.tasks import run_task_params

STEP = "change123-s3"
TAGS = {"grant": "R01-123", "Cost Center": "lab/imaging", "note": ""}
OWN = {"yunpipe:pipeline": "demo"}
STEP_TAGS = {**OWN, "yunpipe:step": STEP}

BAD = {
    "too many": ({f"k{i}": "v" for i in range(48)}, "tags: expected at most 47 tags"),
    "empty key": ({"": "v"}, "tags.: expected a tag key of 1 to 128 characters, got 0"),
    "long key": ({"k" * 129: "v"}, "expected a tag key of 1 to 128 characters, got 129"),
    "long value": ({"k": "v" * 257}, "tags.k: expected a tag value of at most 256 characters"),
    "aws prefix": ({"AWS:cost": "v"}, "tags.AWS:cost: expected a key without the prefix aws:"),
    "yunpipe's own": ({"yunpipe:step": "v"}, "tags.yunpipe:step: expected a key without the prefix"),
    "character in key": ({"cost#center": "v"}, 'tags.cost#center: expected a tag key of only letters, digits, spaces '
                                               'and _ . : / = + - @ (not "#")'),
    "newline in value": ({"k": "a\nb"}, 'tags.k: expected a tag value of only letters'),
    "keys equal but for case": ({"Grant": "a", "grant": "b"}, "tags.grant: expected tag keys that differ in more than case"),
    "not text": ({"k": 5}, "tags.k: expected string"),
    "not an object": (["k"], "tags: expected object"),
}


@pytest.mark.parametrize("case", BAD)
def test_bad_tags_exit_2_naming_the_file_and_field_without_aws(case, change123, tmp_path, capsys):
    tags, message = BAD[case]
    path = tmp_path / "workflow.json"
    path.write_text(json.dumps({**single_run(), "tags": tags}))
    with watch_calls() as calls:
        assert cli.setup_pipe_main(["-f", str(path), "--region", REGION]) == 2
    err = capsys.readouterr().err
    assert f"{path}: " in err and message in err, err
    assert calls == []


def test_unicode_letters_and_the_allowed_punctuation_are_accepted(change123, tmp_path, capsys):
    path = tmp_path / "workflow.json"
    path.write_text(json.dumps({**single_run(), "tags": {"Projet é/ü": "Zürich_1.2:3=4+5-6@lab ", "k" * 128: "v" * 256,
                                                        **{f"k{i}": "" for i in range(45)}}}))
    assert cli.setup_pipe_main(["-f", str(path), "--region", REGION, "--dry-run"]) == 0


def tags_of(pairs, key="Key", value="Value"):
    return {t[key]: t.get(value, "") for t in pairs}  # moto leaves an empty value out of S3's answer


@pytest.fixture
def deployed(moto, change123, write_workflow):
    assert cli.setup_pipe_main(["-f", write_workflow({**single_run(), "tags": TAGS})]) == 0
    return write_workflow


def test_every_resource_carries_the_workflows_tags_and_yunpipes(deployed):
    s3, sqs, iam = (boto3.client(s, region_name=REGION) for s in ("s3", "sqs", "iam"))
    ecs, awslambda, logs, events = (boto3.client(s, region_name=REGION) for s in ("ecs", "lambda", "logs", "events"))
    for bucket in ("demo-in-bucket", "demo-out-bucket"):
        assert tags_of(s3.get_bucket_tagging(Bucket=bucket)["TagSet"]) == {**TAGS, **OWN}
    for queue in ("queue", "dlq", "launcher-failed"):
        url = sqs.get_queue_url(QueueName=f"yunpipe-demo-{STEP}-{queue}")["QueueUrl"]
        assert sqs.list_queue_tags(QueueUrl=url)["Tags"] == {**TAGS, **STEP_TAGS}
    for kind in ("launcher", "task", "exec"):
        assert tags_of(iam.list_role_tags(RoleName=f"yunpipe-demo-{STEP}-{kind}-role")["Tags"]) == {**TAGS, **STEP_TAGS}
    function = awslambda.get_function(FunctionName=f"yunpipe-demo-{STEP}-launcher")
    assert function["Tags"] == {**TAGS, **STEP_TAGS}
    assert logs.list_tags_log_group(logGroupName="/yunpipe/demo")["tags"] == {**TAGS, **OWN}
    cluster = ecs.describe_clusters(clusters=["yunpipe-demo"], include=["TAGS"])["clusters"][0]
    assert tags_of(cluster["tags"], "key", "value") == {**TAGS, **OWN}
    rule = events.describe_rule(Name=f"yunpipe-demo-{STEP}-schedule")["Arn"]
    assert tags_of(events.list_tags_for_resource(ResourceARN=rule)["Tags"]) == {**TAGS, **STEP_TAGS}
    definition = ecs.describe_task_definition(taskDefinition=f"yunpipe-demo-{STEP}-task", include=["TAGS"])
    assert {k: v for k, v in tags_of(definition["tags"], "key", "value").items() if k != "yunpipe:spec"} == {
        **TAGS, **STEP_TAGS}


def test_a_task_the_launcher_starts_carries_its_task_definitions_tags(deployed):
    ecs, awslambda = boto3.client("ecs", region_name=REGION), boto3.client("lambda", region_name=REGION)
    config = contract.LauncherConfig.from_env(
        awslambda.get_function_configuration(FunctionName=f"yunpipe-demo-{STEP}-launcher")["Environment"]["Variables"])
    params = run_task_params(config, 1)
    assert params["propagateTags"] == "TASK_DEFINITION" and "tags" not in params
    task = ecs.run_task(**params)["tasks"][0]["taskArn"]
    got = tags_of(ecs.list_tags_for_resource(resourceArn=task)["tags"], "key", "value")
    assert {k: v for k, v in got.items() if k != "yunpipe:spec"} == {**TAGS, **STEP_TAGS}
    # The launcher's environment holds none of them (Lambda's 4 KB).
    assert "R01-123" not in json.dumps(config.to_env())


def test_changed_tags_reach_the_resources_and_a_new_task_definition_and_the_same_ones_change_nothing(deployed):
    s3, ecs = boto3.client("s3", region_name=REGION), boto3.client("ecs", region_name=REGION)
    sqs, iam, awslambda = (boto3.client(s, region_name=REGION) for s in ("sqs", "iam", "lambda"))
    logs, events = boto3.client("logs", region_name=REGION), boto3.client("events", region_name=REGION)
    s3.put_bucket_tagging(Bucket="demo-out-bucket", Tagging={"TagSet": [
        *[{"Key": k, "Value": v} for k, v in {**TAGS, **OWN}.items()], {"Key": "added-by-hand", "Value": "x"}]})
    changed = {"grant": "R01-456"}
    with watch_calls() as calls:
        assert cli.setup_pipe_main(["-f", deployed({**single_run(), "tags": changed})]) == 0
    assert ("ecs", "RegisterTaskDefinition") in calls
    # Tags someone else set stay; the workflow's own are updated, not removed (setup-pipe only adds).
    assert tags_of(s3.get_bucket_tagging(Bucket="demo-out-bucket")["TagSet"]) == {
        **TAGS, **OWN, "grant": "R01-456", "added-by-hand": "x"}
    # Each kind adds what its resource lacks; none removes a tag (a workflow's tag taken out stays).
    updated = {**TAGS, "grant": "R01-456"}
    url = sqs.get_queue_url(QueueName=f"yunpipe-demo-{STEP}-queue")["QueueUrl"]
    assert sqs.list_queue_tags(QueueUrl=url)["Tags"] == {**updated, **STEP_TAGS}
    assert tags_of(iam.list_role_tags(RoleName=f"yunpipe-demo-{STEP}-task-role")["Tags"]) == {**updated, **STEP_TAGS}
    assert awslambda.get_function(FunctionName=f"yunpipe-demo-{STEP}-launcher")["Tags"] == {**updated, **STEP_TAGS}
    assert logs.list_tags_log_group(logGroupName="/yunpipe/demo")["tags"] == {**updated, **OWN}
    cluster = ecs.describe_clusters(clusters=["yunpipe-demo"], include=["TAGS"])["clusters"][0]
    assert tags_of(cluster["tags"], "key", "value") == {**updated, **OWN}
    rule = events.describe_rule(Name=f"yunpipe-demo-{STEP}-schedule")["Arn"]
    assert tags_of(events.list_tags_for_resource(ResourceARN=rule)["Tags"]) == {**updated, **STEP_TAGS}
    definition = ecs.describe_task_definition(taskDefinition=f"yunpipe-demo-{STEP}-task", include=["TAGS"])
    assert definition["taskDefinition"]["revision"] == 2
    assert tags_of(definition["tags"], "key", "value")["grant"] == "R01-456"
    with watch_calls() as calls:
        assert cli.setup_pipe_main(["-f", deployed({**single_run(), "tags": changed})]) == 0
    assert [c for c in calls if not c[1].startswith(("Describe", "List", "Get", "Head"))] == []


def test_the_most_tags_a_workflow_may_have_fit_on_its_tasks(moto, change123, write_workflow):
    """47 of the workflow's, and yunpipe's 3 on the task definition: ECS's 50 on the task exactly."""
    most = {f"tag-{i:02}": "x" * 256 for i in range(47)}
    assert cli.setup_pipe_main(["-f", write_workflow({**single_run(), "tags": most})]) == 0
    ecs, awslambda = boto3.client("ecs", region_name=REGION), boto3.client("lambda", region_name=REGION)
    config = contract.LauncherConfig.from_env(
        awslambda.get_function_configuration(FunctionName=f"yunpipe-demo-{STEP}-launcher")["Environment"]["Variables"])
    task = ecs.run_task(**run_task_params(config, 1))["tasks"][0]["taskArn"]
    assert len(ecs.list_tags_for_resource(resourceArn=task)["tags"]) == 50
    assert "ecs-run-task-too-many-tags" not in moto.rules_fired()
