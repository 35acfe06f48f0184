"""setup-pipe end to end against moto: the resources, their settings and tags, idempotence,
resuming after a failure, and the launcher driving the deployed queue."""
import itertools
import json

import boto3
import pytest
from botocore.exceptions import ClientError
from helpers import REGION, free_port, record_algorithm, single_run
from moto.server import ThreadedMotoServer

from yunpipe import cli
from yunpipe.aws import announcement
from yunpipe.aws.facade import is_mutating, watch_calls
from yunpipe.engine.kinds.bucket import bucket_region
from yunpipe.engine.state import PipelineState, state_path
from yunpipe.local.moto_patches import default_vpc_routes_to_internet
from yunpipe.runtime import contract
from yunpipe.runtime.launcher import handler as launcher
from yunpipe.runtime.launcher.clients import clients_for
from yunpipe.runtime.launcher.tasks import run_task_params

ACCOUNT = "123456789012"
TAG = {"Key": "yunpipe:pipeline", "Value": "demo"}


def client(service):
    return boto3.client(service, region_name=REGION)


def mutating(calls):
    return [c for c in calls if is_mutating(c[1])]


def tagged_arns(pipeline="demo"):
    mappings = client("resourcegroupstaggingapi").get_resources(
        TagFilters=[{"Key": "yunpipe:pipeline", "Values": [pipeline]}])["ResourceTagMappingList"]
    return sorted(r["ResourceARN"] for r in mappings)


@pytest.fixture
def demo(capsys, moto, change123, write_workflow):
    path = write_workflow(single_run(filter={"prefix": "data/"}))
    assert cli.setup_pipe_main(["-f", path]) == 0
    return path


def test_single_run_resources(demo, capsys):
    out = capsys.readouterr().out
    assert "You can start upload files at demo-in-bucket" in out
    assert "You will get your result at demo-out-bucket" in out
    s3, sqs, lam, ecs, iam = (client(s) for s in ("s3", "sqs", "lambda", "ecs", "iam"))

    for bucket in ("demo-in-bucket", "demo-out-bucket", f"yunpipe-demo-reports-{ACCOUNT}"):
        assert all(s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"].values())
        rules = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"]
        assert rules[0]["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
        assert TAG in s3.get_bucket_tagging(Bucket=bucket)["TagSet"]
    # No notification on the reports bucket: a report never triggers a step.
    assert "LambdaFunctionConfigurations" not in s3.get_bucket_notification_configuration(
        Bucket=f"yunpipe-demo-reports-{ACCOUNT}")

    url = sqs.get_queue_url(QueueName="yunpipe-demo-change123-s3-queue")["QueueUrl"]
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    assert attributes["SqsManagedSseEnabled"] == "true" and attributes["VisibilityTimeout"] == "300"
    assert json.loads(attributes["RedrivePolicy"])["maxReceiveCount"] == 3
    assert sqs.list_queue_tags(QueueUrl=url)["Tags"] == {"yunpipe:pipeline": "demo", "yunpipe:step": "change123-s3"}

    function = lam.get_function(FunctionName="yunpipe-demo-change123-s3-launcher")
    configuration = function["Configuration"]
    assert (configuration["Runtime"], configuration["Handler"]) == ("python3.12", "yunpipe.runtime.launcher.handler.handler")
    environment = configuration["Environment"]["Variables"]
    assert environment["YUNPIPE_QUEUE_URL"] == url
    assert environment["YUNPIPE_TASK_DEFINITION"] == "yunpipe-demo-change123-s3-task"
    assert environment["YUNPIPE_CLUSTER"] == "yunpipe-demo" and environment["YUNPIPE_SUBNETS"].startswith("subnet-")
    assert function["Tags"] == {"yunpipe:pipeline": "demo", "yunpipe:step": "change123-s3"}
    # One launch at a time per step, so simultaneous uploads never start more tasks than files.
    assert function["Concurrency"]["ReservedConcurrentExecutions"] == 1
    statements = {s["Sid"]: s for s in json.loads(lam.get_policy(FunctionName=configuration["FunctionName"])["Policy"])["Statement"]}
    assert statements["yunpipe-s3"]["Condition"]["ArnLike"]["AWS:SourceArn"] == "arn:aws:s3:::demo-in-bucket"
    assert statements["yunpipe-s3"]["Condition"]["StringEquals"]["AWS:SourceAccount"] == ACCOUNT
    assert statements["yunpipe-schedule"]["Principal"] == {"Service": "events.amazonaws.com"}

    notification = s3.get_bucket_notification_configuration(Bucket="demo-in-bucket")["LambdaFunctionConfigurations"]
    assert [(n["Id"], n["LambdaFunctionArn"]) for n in notification] == [
        ("yunpipe:demo:change123-s3", configuration["FunctionArn"])]
    assert notification[0]["Filter"]["Key"]["FilterRules"][0]["Value"] == "data/"

    described = ecs.describe_task_definition(taskDefinition="yunpipe-demo-change123-s3-task", include=["TAGS"])
    task = described["taskDefinition"]
    assert task["requiresCompatibilities"] == ["FARGATE"] and task["networkMode"] == "awsvpc"
    assert task["taskRoleArn"] == f"arn:aws:iam::{ACCOUNT}:role/yunpipe/yunpipe-demo-change123-s3-task-role"
    container = task["containerDefinitions"][0]
    assert container["image"] == "user/change123-s3:1"
    variables = {e["name"]: e["value"] for e in container["environment"]}
    assert variables["YUNPIPE_QUEUE_URL"] == url and variables["TEST_ENV"] == "blah blah blah"
    assert "AWS_ACCESS_KEY_ID" not in json.dumps(task) and "testing" not in json.dumps(container)
    assert {"key": "yunpipe:pipeline", "value": "demo"} in described["tags"]
    assert container["logConfiguration"]["options"]["awslogs-group"] == "/yunpipe/demo"

    role = "yunpipe-demo-change123-s3-launcher-role"
    assert TAG in iam.list_role_tags(RoleName=role)["Tags"]
    policy = iam.get_role_policy(RoleName=role, PolicyName="yunpipe")["PolicyDocument"]
    sids = {s["Sid"]: s["Resource"] for s in policy["Statement"]}
    assert sids["QueueObjects"] == f"arn:aws:sqs:{REGION}:{ACCOUNT}:yunpipe-demo-change123-s3-queue"
    assert sids["PassTaskRoles"] == [task["taskRoleArn"], task["executionRoleArn"]]
    task_policy = iam.get_role_policy(RoleName="yunpipe-demo-change123-s3-task-role", PolicyName="yunpipe")
    assert {s["Sid"]: s["Resource"] for s in task_policy["PolicyDocument"]["Statement"]}["ReadInputs"] == \
        "arn:aws:s3:::demo-in-bucket/*"

    events = client("events")
    rule = events.describe_rule(Name="yunpipe-demo-change123-s3-schedule")
    assert rule["ScheduleExpression"] == "rate(5 minutes)"
    assert events.list_targets_by_rule(Rule=rule["Name"])["Targets"][0]["Arn"] == configuration["FunctionArn"]
    assert TAG in events.list_tags_for_resource(ResourceARN=rule["Arn"])["Tags"]
    groups = client("logs").describe_log_groups(logGroupNamePrefix="/yunpipe/demo")["logGroups"]
    assert groups[0]["retentionInDays"] == 30
    assert ecs.describe_clusters(clusters=["yunpipe-demo"], include=["TAGS"])["clusters"][0]["tags"] == [
        {"key": "yunpipe:pipeline", "value": "demo"}]

    state = json.loads(state_path("demo").read_text())
    assert state["schema_version"] == 1 and state["summary"]["input_bucket"] == "demo-in-bucket"


def test_second_setup_makes_no_mutating_call(demo, capsys):
    with watch_calls() as calls:
        assert cli.setup_pipe_main(["-f", demo]) == 0
    assert calls and mutating(calls) == []
    assert "nothing to change" in capsys.readouterr().out


def test_changed_variable_registers_only_a_new_task_definition_revision(demo, write_workflow):
    changed = write_workflow({**single_run(filter={"prefix": "data/"}), "process": {"type": "single_run", "algorithms": [
        {"name": "change123-s3", "variables": {"TEST_ENV": "changed"}}]}}, "changed.json")
    with watch_calls() as calls:
        assert cli.setup_pipe_main(["-f", changed]) == 0
    # The step's task definition and those of its larger sizes (jobs out of memory) run the same command.
    assert mutating(calls) == [("ecs", "RegisterTaskDefinition")] * 3
    for family in ("task", "task-grow4096", "task-grow8192"):
        task = client("ecs").describe_task_definition(taskDefinition=f"yunpipe-demo-change123-s3-{family}")["taskDefinition"]
        assert task["revision"] == 2


def test_new_algorithm_version_registers_only_a_new_revision(demo):
    record_algorithm("change123-s3", "user/change123-s3:2")
    with watch_calls() as calls:
        assert cli.setup_pipe_main(["-f", demo]) == 0
    assert mutating(calls) == [("ecs", "RegisterTaskDefinition")] * 3
    for family in ("task", "task-grow4096", "task-grow8192"):
        task = client("ecs").describe_task_definition(taskDefinition=f"yunpipe-demo-change123-s3-{family}")["taskDefinition"]
        assert task["containerDefinitions"][0]["image"] == "user/change123-s3:2"


def test_sequence_run_of_three_steps(moto, write_workflow):
    for name in ("step-a", "step-b", "step-c"):
        record_algorithm(name, f"user/{name}:1", variables=[])
    path = write_workflow({"name": "seq", "input_s3_name": "seq-in-bucket", "output_s3_name": "seq-out-bucket",
                           "process": {"type": "sequence_run",
                                       "algorithms": [{"name": n} for n in ("step-a", "step-b", "step-c")]}})
    assert cli.setup_pipe_main(["-f", path]) == 0
    s3, lam = client("s3"), client("lambda")
    chain = ["seq-in-bucket", f"yunpipe-seq-step-a-out-{ACCOUNT}", f"yunpipe-seq-step-b-out-{ACCOUNT}", "seq-out-bucket"]
    for step, (source, result) in zip(("step-a", "step-b", "step-c"), itertools.pairwise(chain), strict=True):
        entries = s3.get_bucket_notification_configuration(Bucket=source)["LambdaFunctionConfigurations"]
        assert [e["Id"] for e in entries] == [f"yunpipe:seq:{step}"]
        environment = lam.get_function_configuration(FunctionName=f"yunpipe-seq-{step}-launcher")["Environment"]
        task = client("ecs").describe_task_definition(taskDefinition=f"yunpipe-seq-{step}-task")["taskDefinition"]
        variables = {e["name"]: e["value"] for e in task["containerDefinitions"][0]["environment"]}
        assert variables["YUNPIPE_OUTPUT_BUCKET"] == result
        assert environment["Variables"]["YUNPIPE_STEP"] == step
    assert "LambdaFunctionConfigurations" not in s3.get_bucket_notification_configuration(Bucket="seq-out-bucket")
    with watch_calls() as calls:
        assert cli.setup_pipe_main(["-f", path]) == 0
    assert mutating(calls) == []


def repeated_tool(write_workflow) -> str:
    """A 0.0.3 sequence_run naming one tool twice, at two settings, without ids."""
    record_algorithm("step-a", "user/step-a:1", variables=[])
    return write_workflow({"name": "twice", "input_s3_name": "twice-in-bucket", "output_s3_name": "twice-out-bucket",
                           "process": {"type": "sequence_run",
                                       "algorithms": [{"name": "step-a", "cpu": 1}, {"name": "step-a", "cpu": 2}]}})


def test_a_tool_twice_in_a_sequence_dry_run_shows_both_steps(moto, write_workflow, capsys):
    assert cli.main(["setup-pipe", "-f", repeated_tool(write_workflow), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert (f"  step-a [step-a@1]: twice-in-bucket -> s3://yunpipe-twice-step-a-out-{ACCOUNT}/\n"
            f"  step-a-2 [step-a@1]: yunpipe-twice-step-a-out-{ACCOUNT} (step-a) -> s3://twice-out-bucket/\n") in out
    for step in ("step-a", "step-a-2"):
        assert f"create queue yunpipe-twice-{step}-queue" in out
        assert f"create launcher Lambda yunpipe-twice-{step}-launcher" in out
    assert "Dry run: nothing was changed." in out


def test_a_tool_twice_in_a_sequence_deploys_two_steps_the_same_on_every_redeploy(moto, write_workflow, capsys):
    path = repeated_tool(write_workflow)
    assert cli.main(["setup-pipe", "-f", path]) == 0
    lam = client("lambda")
    for step in ("step-a", "step-a-2"):
        variables = lam.get_function_configuration(FunctionName=f"yunpipe-twice-{step}-launcher")["Environment"]
        assert variables["Variables"]["YUNPIPE_STEP"] == step
    capsys.readouterr()
    assert cli.main(["show", "twice"]) == 0
    shown = capsys.readouterr().out
    assert "step-a [step-a@1]" in shown and "step-a-2 [step-a@1]" in shown
    with watch_calls() as calls:
        assert cli.main(["setup-pipe", "-f", path]) == 0
    assert mutating(calls) == []


def test_a_tool_twice_in_a_graph_still_needs_ids(moto, write_workflow, capsys):
    record_algorithm("step-a", "user/step-a:1", variables=[])
    path = write_workflow({"name": "g", "input_s3_name": "g-in-bucket", "output_s3_name": "g-out-bucket",
                           "process": {"type": "graph", "steps": [{"name": "step-a"}, {"name": "step-a"}]}})
    with watch_calls() as calls:
        assert cli.main(["setup-pipe", "-f", path, "--dry-run"]) == 2
    assert calls == []
    assert capsys.readouterr().err == (f"error: {path}: process.steps[1].name: expected a step id used once, 'step-a' "
                                       "is already process.steps[0]: give the repeated algorithm an \"id\"\n")


def test_existing_bucket_keeps_its_other_notifications(moto, change123, write_workflow):
    s3, sqs = client("s3"), client("sqs")
    s3.create_bucket(Bucket="demo-in-bucket")
    queue_url = sqs.create_queue(QueueName="someone-elses")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    # AWS accepts an SQS destination only once the queue lets S3 send to it.
    sqs.set_queue_attributes(QueueUrl=queue_url, Attributes={"Policy": json.dumps({"Statement": [{
        "Effect": "Allow", "Principal": {"Service": "s3.amazonaws.com"}, "Action": "sqs:SendMessage",
        "Resource": queue_arn, "Condition": {"ArnLike": {"aws:SourceArn": "arn:aws:s3:::demo-in-bucket"}}}]})})
    theirs = {"Id": "theirs", "QueueArn": queue_arn, "Events": ["s3:ObjectRemoved:*"]}
    s3.put_bucket_notification_configuration(Bucket="demo-in-bucket",
                                             NotificationConfiguration={"QueueConfigurations": [theirs]})
    path = write_workflow(single_run())
    assert cli.setup_pipe_main(["-f", path]) == 0
    configuration = s3.get_bucket_notification_configuration(Bucket="demo-in-bucket")
    assert [q["Id"] for q in configuration["QueueConfigurations"]] == ["theirs"]
    assert [f["Id"] for f in configuration["LambdaFunctionConfigurations"]] == ["yunpipe:demo:change123-s3"]
    # An existing bucket is used as it is: yunpipe neither tags nor reconfigures it.
    with pytest.raises(ClientError):
        s3.get_bucket_tagging(Bucket="demo-in-bucket")
    assert cli.clean_up_main(["demo", "--purge"]) == 0
    configuration = s3.get_bucket_notification_configuration(Bucket="demo-in-bucket")
    assert [q["Id"] for q in configuration["QueueConfigurations"]] == ["theirs"]
    assert "LambdaFunctionConfigurations" not in configuration
    assert s3.head_bucket(Bucket="demo-in-bucket")  # not created by yunpipe: never purged


@pytest.mark.parametrize("field, bucket, region", [
    ("input_s3_name", "demo-in-bucket", "eu-west-1"),
    ("output_s3_name", "demo-out-bucket", "us-west-2"),
])
def test_an_existing_bucket_in_another_region_is_refused_before_anything_is_created(
        moto, change123, write_workflow, capsys, field, bucket, region):
    # Its events would never reach the pipeline: S3 refuses a Lambda of another region and
    # sends EventBridge events to its own region's bus only.
    boto3.client("s3", region_name=region).create_bucket(
        Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": region})
    path = write_workflow(single_run())
    with watch_calls() as calls:
        assert cli.setup_pipe_main(["-f", path]) == 2
    assert [c for c in calls if is_mutating(c[1])] == []
    assert (f"{path}: {field}: expected a bucket in the pipeline's region us-east-1: {bucket} is in {region}"
            in capsys.readouterr().err)


def test_an_existing_bucket_in_the_pipelines_own_region_is_used(moto, change123, write_workflow):
    s3 = boto3.client("s3", region_name="eu-west-1")
    s3.create_bucket(Bucket="demo-in-bucket", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    assert cli.setup_pipe_main(["-f", write_workflow(single_run()), "--region", "eu-west-1"]) == 0
    configuration = s3.get_bucket_notification_configuration(Bucket="demo-in-bucket")
    assert [f["Id"] for f in configuration["LambdaFunctionConfigurations"]] == ["yunpipe:demo:change123-s3"]


@pytest.mark.parametrize("answer, region", [
    ({"LocationConstraint": None}, "us-east-1"), ({"LocationConstraint": ""}, "us-east-1"), ({}, "us-east-1"),
    ({"LocationConstraint": "EU"}, "eu-west-1"), ({"LocationConstraint": "ap-south-1"}, "ap-south-1"),
])
def test_get_bucket_locations_answers_name_a_region(answer, region):
    assert bucket_region(answer) == region


def test_failure_half_way_resumes_and_cleans_up(moto, change123, write_workflow, capsys):
    path = write_workflow(single_run())
    count = []

    def fail_fifth_change(service, operation):
        if is_mutating(operation):
            count.append(operation)
            if len(count) == 6:
                raise ClientError({"Error": {"Code": "InjectedFailure", "Message": "injected"}}, operation)

    with watch_calls(fail_fifth_change):
        assert cli.setup_pipe_main(["-f", path]) == 1
    assert "run the same command again to resume" in capsys.readouterr().err
    recorded = PipelineState.load("demo").resources
    assert recorded == [("bucket", "demo-in-bucket"), ("bucket", "demo-out-bucket")]
    with watch_calls() as calls:
        assert cli.setup_pipe_main(["-f", path]) == 0
    # The failed call and the rest run; nothing done before is repeated.
    assert mutating(calls)[0] == ("s3", "PutPublicAccessBlock")
    assert mutating(calls).count(("s3", "CreateBucket")) == 1  # only the reports bucket is left to create
    with watch_calls() as calls:
        assert cli.setup_pipe_main(["-f", path]) == 0
    assert mutating(calls) == []
    assert cli.clean_up_main(["demo", "--purge"]) == 0
    assert tagged_arns() == []
    assert not state_path("demo").exists()


def test_launcher_queues_each_dropped_object_and_starts_tasks_within_the_cap(moto, change123, write_workflow,
                                                                           monkeypatch):
    path = write_workflow({**single_run(), "process": {"type": "single_run", "algorithms": [
        {"name": "change123-s3", "variables": {"TEST_ENV": "x"}, "concurrency": 2, "files_per_task": 1}]}})
    assert cli.setup_pipe_main(["-f", path]) == 0
    s3, sqs = client("s3"), client("sqs")
    keys = ["a.txt", "dir/b c.txt", "c.txt"]
    for key in keys:
        s3.put_object(Bucket="demo-in-bucket", Key=key, Body=b"123")
    records = [{"eventSource": "aws:s3", "eventName": "ObjectCreated:Put", "awsRegion": REGION,
                "s3": {"bucket": {"name": "demo-in-bucket"},
                       "object": {"key": o["Key"].replace(" ", "+"), "eTag": o["ETag"].strip('"'), "size": o["Size"]}}}
               for o in s3.list_objects_v2(Bucket="demo-in-bucket")["Contents"]]
    environment = client("lambda").get_function_configuration(
        FunctionName="yunpipe-demo-change123-s3-launcher")["Environment"]["Variables"]
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    clients_for.cache_clear()
    summary = launcher.handler({"Records": records}, None)
    assert summary["enqueued"] == 3 and summary["started"] == 2
    url = environment["YUNPIPE_QUEUE_URL"]
    bodies = []
    while True:
        messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
        if not messages:
            break
        bodies += [json.loads(m["Body"]) for m in messages]
    assert sorted(b["key"] for b in bodies) == sorted(keys)
    tasks = client("ecs").list_tasks(cluster="yunpipe-demo", startedBy=environment["YUNPIPE_STARTED_BY"])["taskArns"]
    assert len(tasks) == 2
    clients_for.cache_clear()


def spot_workflow(capacity):
    return {**single_run(), "process": {"type": "single_run", "algorithms": [
        {"name": "change123-s3", "variables": {"TEST_ENV": "x"}, "capacity": capacity}]}}


def test_a_spot_step_gets_a_cluster_with_fargate_spot_and_its_launcher_starts_spot_tasks(moto, change123,
                                                                                          write_workflow, monkeypatch):
    ecs = client("ecs")
    # First on-demand: the cluster is created as before, with no capacity provider.
    assert cli.setup_pipe_main(["-f", write_workflow(spot_workflow("FARGATE"))]) == 0
    [cluster] = ecs.describe_clusters(clusters=["yunpipe-demo"])["clusters"]
    assert not cluster.get("capacityProviders")
    environment = client("lambda").get_function_configuration(
        FunctionName="yunpipe-demo-change123-s3-launcher")["Environment"]["Variables"]
    assert environment["YUNPIPE_CAPACITY_PROVIDER"] == ""
    # Such a cluster refuses Spot tasks (as ECS does).
    spot = run_task_params(contract.LauncherConfig.from_env({**environment, "YUNPIPE_CAPACITY_PROVIDER": "FARGATE_SPOT"}), 1)
    with pytest.raises(ClientError, match="not associated with the cluster"):
        ecs.run_task(**spot)

    # Then Spot: the existing cluster gets the providers, the launcher its setting, nothing else
    # changes but the account's ECS service-linked role, which a fresh account lacks.
    path = write_workflow(spot_workflow("FARGATE_SPOT"), "spot.json")
    with watch_calls() as calls:
        assert cli.setup_pipe_main(["-f", path]) == 0
    # (PutClusterCapacityProviders retried while ECS cannot yet assume the new role.) The task
    # definition's new revision tells the workers they are billed as Spot (accounting's prices).
    changed = list(dict.fromkeys(mutating(calls)))
    assert changed == [("iam", "CreateServiceLinkedRole"), ("ecs", "PutClusterCapacityProviders"),
                       ("ecs", "RegisterTaskDefinition"), ("lambda", "UpdateFunctionConfiguration")], changed
    [cluster] = ecs.describe_clusters(clusters=["yunpipe-demo"])["clusters"]
    assert cluster["capacityProviders"] == ["FARGATE", "FARGATE_SPOT"]
    with watch_calls() as calls:
        assert cli.setup_pipe_main(["-f", path]) == 0
    assert calls and mutating(calls) == []

    environment = client("lambda").get_function_configuration(
        FunctionName="yunpipe-demo-change123-s3-launcher")["Environment"]["Variables"]
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    client("sqs").send_message(QueueUrl=environment["YUNPIPE_QUEUE_URL"], MessageBody="{}")
    clients_for.cache_clear()
    # A scheduled run: it tops up workers for the waiting message.
    summary = launcher.handler({"source": "aws.events"}, None)
    clients_for.cache_clear()
    assert (summary["started"], summary["failures"]) == (1, [])
    [task] = ecs.describe_tasks(cluster="yunpipe-demo", tasks=ecs.list_tasks(cluster="yunpipe-demo")["taskArns"])["tasks"]
    assert task["capacityProviderName"] == "FARGATE_SPOT"


def test_a_new_spot_pipeline_creates_its_cluster_then_attaches_the_providers_and_cleans_up(moto, change123,
                                                                                         write_workflow):
    path = write_workflow(spot_workflow("FARGATE_SPOT"))
    with watch_calls() as calls:
        assert cli.setup_pipe_main(["-f", path]) == 0
    ecs_calls = [operation for service, operation in mutating(calls) if service == "ecs"]
    assert ecs_calls.index("CreateCluster") < ecs_calls.index("PutClusterCapacityProviders")
    [cluster] = client("ecs").describe_clusters(clusters=["yunpipe-demo"])["clusters"]
    assert cluster["capacityProviders"] == ["FARGATE", "FARGATE_SPOT"]
    with watch_calls() as calls:
        assert cli.setup_pipe_main(["-f", path]) == 0
    assert calls and mutating(calls) == []
    assert cli.clean_up_main(["demo", "--purge"]) == 0
    assert tagged_arns() == []


def test_a_message_failing_every_try_lands_in_the_dead_letter_queue(demo):
    sqs = client("sqs")
    url = sqs.get_queue_url(QueueName="yunpipe-demo-change123-s3-queue")["QueueUrl"]
    dlq = sqs.get_queue_url(QueueName="yunpipe-demo-change123-s3-dlq")["QueueUrl"]
    sqs.send_message(QueueUrl=url, MessageBody=json.dumps({"bucket": "demo-in-bucket", "key": "bad.txt"}))
    for _ in range(3):
        assert len(sqs.receive_message(QueueUrl=url, VisibilityTimeout=0)["Messages"]) == 1
    assert sqs.receive_message(QueueUrl=url).get("Messages", []) == []
    moved = sqs.receive_message(QueueUrl=dlq)["Messages"]
    assert json.loads(moved[0]["Body"])["key"] == "bad.txt"


def test_user_credentials_become_ssm_secrets(moto, change123, write_workflow, capsys):
    assert cli.setup_pipe_main(["-f", write_workflow(single_run()), "-uu"]) == 0
    assert "warning: -uu" in capsys.readouterr().err
    ssm = client("ssm")
    parameter = ssm.get_parameter(Name="/yunpipe/demo/aws-access-key-id", WithDecryption=True)["Parameter"]
    own_key = boto3.Session().get_credentials().get_frozen_credentials().access_key
    assert parameter["Type"] == "SecureString" and parameter["Value"] == own_key
    task = client("ecs").describe_task_definition(taskDefinition="yunpipe-demo-change123-s3-task")["taskDefinition"]
    container = task["containerDefinitions"][0]
    assert {s["name"]: s["valueFrom"] for s in container["secrets"]}["AWS_ACCESS_KEY_ID"] == \
        f"arn:aws:ssm:{REGION}:{ACCOUNT}:parameter/yunpipe/demo/aws-access-key-id"
    assert own_key not in json.dumps(task)


def test_create_lambda_exec_role_creates_only_the_launcher_roles(moto, change123, write_workflow):
    assert cli.create_lambda_exec_role_main(["-f", write_workflow(single_run())]) == 0
    roles = [r["RoleName"] for r in client("iam").list_roles(PathPrefix="/yunpipe/")["Roles"]]
    assert roles == ["yunpipe-demo-change123-s3-launcher-role"]
    with watch_calls() as calls:
        assert cli.create_lambda_exec_role_main(["-f", write_workflow(single_run())]) == 0
    assert mutating(calls) == []


def test_dry_run_of_the_example_prints_the_plan_and_changes_nothing(moto, change123, capsys):
    with watch_calls() as calls:
        assert cli.setup_pipe_main(["-f", "examples/change123/workflow.json", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "create input bucket container-clouds-input" in out and "Dry run: nothing was changed." in out
    assert calls and mutating(calls) == []


def test_dry_run_without_any_aws_plans_as_if_nothing_existed(change123, monkeypatch, tmp_path, capsys):
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    assert cli.setup_pipe_main(["-f", "examples/change123/workflow.json", "--dry-run",
                                "--endpoint-url", "http://127.0.0.1:9"]) == 0
    out = capsys.readouterr().out
    assert "not reachable" in out and "create launcher Lambda" in out
    assert "account 000000000000" in out


def test_local_without_a_running_local_cloud_says_so(change123, capsys):
    assert cli.setup_pipe_main(["-f", "examples/change123/workflow.json", "--local", "--dry-run"]) == 1
    assert "run `yunpipe local up` first" in capsys.readouterr().err


def test_local_deploys_to_the_announced_endpoint(aws_env, change123, capsys):
    """--local: the endpoint a running local cloud announced (here a bare moto server on loopback,
    with the local cloud's default VPC, whose subnets route to an internet gateway)."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=free_port())
    server.start()
    try:
        endpoint = f"http://127.0.0.1:{server._port}"
        announcement.write_state(endpoint, server._port)
        with default_vpc_routes_to_internet():
            assert cli.setup_pipe_main(["-f", "examples/change123/workflow.json", "--local"]) == 0
        s3 = boto3.client("s3", endpoint_url=endpoint, region_name=REGION)
        assert "container-clouds-input" in [b["Name"] for b in s3.list_buckets()["Buckets"]]
        assert cli.clean_up_main(["container-clouds-input", "--local", "--purge"]) == 0
        assert s3.list_buckets()["Buckets"] == []
    finally:
        server.stop()


def test_unreachable_aws_outside_a_dry_run_is_one_clear_error(change123, monkeypatch, capsys):
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    assert cli.setup_pipe_main(["-f", "examples/change123/workflow.json", "--endpoint-url", "http://127.0.0.1:9"]) == 1
    assert "cannot reach AWS" in capsys.readouterr().err


def test_a_step_pinning_an_older_version_than_the_newest_is_warned_about_with_the_way_to_move_it(
        change123, monkeypatch, tmp_path, write_workflow, capsys):
    """After a fix is wrapped, a workflow that pins the old version does not run it: said so.
    One that names the algorithm without a version takes the newest, and nothing is said."""
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    newest = record_algorithm("change123-s3", "user/change123-s3:2")
    offline = ["--dry-run", "--endpoint-url", "http://127.0.0.1:9"]
    pinned = write_workflow(single_run(algorithm="change123-s3@1"), "pinned.json")
    assert cli.setup_pipe_main(["-f", pinned, *offline]) == 0
    assert (f"warning: step change123-s3 runs change123-s3@1 ({pinned}: process.algorithms[0].name), but "
            f"{newest.reference} is the newest recorded: to run it, write {newest.reference} there (or change123-s3 "
            "for the newest at each setup-pipe) and run setup-pipe again") in capsys.readouterr().out
    for latest in ("change123-s3", newest.reference):
        assert cli.setup_pipe_main(["-f", write_workflow(single_run(algorithm=latest), "latest.json"), *offline]) == 0
        assert "warning" not in capsys.readouterr().out
