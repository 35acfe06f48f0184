"""Least privilege, proven: the launcher and the worker run with the credentials of the roles
setup-pipe created (`sts.assume_role`), in moto with IAM enforcement on. Each role can do what a
job needs and is refused the rest.

What moto 5.2 enforces here, and what it cannot:

- S3 and SQS: every call made with assumed-role keys is checked against the role's own inline
  policy, with the object ARN or the queue ARN as the resource. These checks are real.
- SQS batch calls, and S3's ListObjectsV2: moto checks them as `sqs:SendMessageBatch`,
  `sqs:DeleteMessageBatch`, `sqs:ChangeMessageVisibilityBatch` and `s3:ListObjectsV2`, which are
  not IAM actions (AWS authorises ListObjectsV2 as s3:ListBucket): AWS authorises a batch call with
  the single call's action ("You cannot set permissions explicitly for SendMessageBatch ...",
  docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/sqs-batch-api.html).
  `AwsActionNames` and `S3ActionNames` make moto name them as AWS does; nothing else changes.
- ECS: moto checks ECS calls by action name only, always against Resource "*", so a RunTask
  statement scoped to a task definition could never match. `_ecs_run_task_resource` makes moto
  use the task definition revision ARN RunTask names (the resource AWS authorises RunTask on),
  so moto's own policy engine decides. This resource lookup is the test's addition to moto, as is
  SQS GetQueueUrl's (the queue it names, `_sqs_queue_resource`; moto checks "*").
  moto does not evaluate the `ecs:cluster` condition of the launcher's ECS statements (it ignores
  ArnEquals) nor `iam:PassedToService` (it has no value for it), and it does not check the
  iam:PassRole that RunTask implies at all: the deployed statements are pinned as data by
  test_what_moto_cannot_enforce_is_pinned_as_deployed, and linted in tests/test_policy_lint.py.
- Lambda: the launcher's handler runs in this process with the launcher role's keys, on the
  event moto's S3 produced for the deployed notification. moto's own Lambda invoke is not used:
  it hands the code fixed fake keys, not the function role's, and needs a runtime image this
  machine cannot pull.
- SNS: moto checks SNS calls against Resource "*" too; `_sns_topic_resource` makes it use the
  topic a call names (the resource AWS authorises Publish on). moto ignores topic policies: the
  topic's own policy is linted and checked in tests/test_policy_lint.py.
- CloudWatch Logs writes (launcher and execution roles) and ECR pulls (execution role) are made
  by Lambda and the ECS agent, not by yunpipe's code: nothing here exercises them.
- AssumeRole itself runs before enforcement is turned on: moto 5.2 crashes evaluating a
  service-only trust policy for an authenticated AssumeRole, and the trust policies name only
  lambda.amazonaws.com and ecs-tasks.amazonaws.com, as they must.
"""
import json
from pathlib import Path
from unittest import mock

import boto3
import moto.s3.notifications as s3_notifications
import pytest
from botocore.exceptions import ClientError
from helpers import REGION, record_algorithm, single_run
from moto.core import enable_iam_authentication
from moto.ecs.exceptions import TaskDefinitionNotFoundException
from moto.ecs.responses import EC2ContainerServiceResponse
from moto.iam import access_control
from moto.sns.responses import SNSResponse
from moto.sqs.exceptions import QueueDoesNotExist
from moto.sqs.responses import SQSResponse

from yunpipe import cli
from yunpipe.runtime.launcher import handler as launcher
from yunpipe.runtime.launcher.clients import clients_for
from yunpipe.runtime.worker import main as worker

ACCOUNT = "123456789012"
STEP = "change123-s3"
PREFIX = f"yunpipe-demo-{STEP}"
INPUT, OUTPUT, REPORTS = "demo-in-bucket", "demo-out-bucket", f"yunpipe-demo-reports-{ACCOUNT}"
ADMIN = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}

SQS_BATCH_ACTIONS = {
    "sqs:SendMessageBatch": "sqs:SendMessage",
    "sqs:DeleteMessageBatch": "sqs:DeleteMessage",
    "sqs:ChangeMessageVisibilityBatch": "sqs:ChangeMessageVisibility",
}
# moto checks these requests under their operations' names; AWS authorises them as these actions
# (S3 API Reference, ListObjectsV2: "you must have permission to perform the s3:ListBucket action";
# HeadObject: "you must have the s3:GetObject permission").
S3_ACTIONS = {"s3:HeadObject": "s3:GetObject", "s3:ListObjectsV2": "s3:ListBucket"}


class AwsActionNames(access_control.IAMRequest):
    """moto's IAM request check, with SQS batch calls authorised under AWS's action names."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._action = SQS_BATCH_ACTIONS.get(self._action, self._action)


_moto_sqs_resource = SQSResponse._determine_resource


class S3ActionNames(access_control.S3IAMRequest):
    """moto's S3 request check, under AWS's action names and with the s3:prefix condition key of a
    listing, which moto does not supply (a statement conditioned on it would never match)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._action = S3_ACTIONS.get(self._action, self._action)

    def check_action_permitted(self, resource: str) -> None:
        prefix = self._data.get("prefix") if isinstance(self._data, dict) else None
        prefix = prefix[0] if isinstance(prefix, list) else prefix
        values = {"s3:prefix": prefix} if prefix is not None else {}
        results = [access_control.IAMPolicy(policy).is_action_permitted(self._action, resource, None, values)
                   for policy in self._access_key.collect_policies()]
        if access_control.PermissionResult.DENIED in results or access_control.PermissionResult.PERMITTED not in results:
            self._raise_access_denied()


def _sqs_queue_resource(self) -> str:
    """The resource moto checks an SQS call against, for GetQueueUrl too: AWS authorises it on the
    queue it names (QueueName), where moto, finding no QueueUrl, checks "*"."""
    name = self._get_param("QueueName") if self._get_action() == "GetQueueUrl" else None
    if not name:
        return _moto_sqs_resource(self)
    try:
        return self.sqs_backend.get_queue(name).queue_arn
    except QueueDoesNotExist:
        return "*"


def _ecs_run_task_resource(self) -> str:
    """The resource moto checks an ECS call against: for RunTask, the task definition revision
    it names (an unknown one stays "*", which no scoped statement matches); "*" otherwise, as
    moto does for every ECS call."""
    if self._get_action() != "RunTask":
        return "*"
    try:
        return self.ecs_backend.describe_task_definition(self._get_param("taskDefinition")).arn
    except TaskDefinitionNotFoundException:
        return "*"


def _sns_topic_resource(self) -> str:
    """The resource moto checks an SNS call against: the topic it names ("*" for calls naming none)."""
    return self._get_param("TopicArn") or "*"


def admin(service):
    """A client with the deploying user's keys (moto's default account), never the role's."""
    return boto3.client(service, region_name=REGION, **ADMIN)


def as_role(service, credentials):
    return boto3.client(service, region_name=REGION, **credentials)


def assume(role_name: str) -> dict:
    arn = admin("iam").get_role(RoleName=role_name)["Role"]["Arn"]
    keys = admin("sts").assume_role(RoleArn=arn, RoleSessionName="least-privilege")["Credentials"]
    return {"aws_access_key_id": keys["AccessKeyId"], "aws_secret_access_key": keys["SecretAccessKey"],
            "aws_session_token": keys["SessionToken"]}


def use_credentials(monkeypatch, credentials):
    """Make `credentials` the environment's, as Lambda and ECS hand a role's keys to code."""
    for variable, key in (("AWS_ACCESS_KEY_ID", "aws_access_key_id"), ("AWS_SECRET_ACCESS_KEY", "aws_secret_access_key"),
                          ("AWS_SESSION_TOKEN", "aws_session_token")):
        monkeypatch.setenv(variable, credentials[key])
    # boto3's default session caches the keys it found first; the code under test must see these.
    monkeypatch.setattr(boto3, "DEFAULT_SESSION", None)
    clients_for.cache_clear()


@pytest.fixture
def enforced(monkeypatch):
    """A context manager: moto checks every call against the caller's policies while inside."""
    monkeypatch.setattr(access_control, "IAMRequest", AwsActionNames)
    monkeypatch.setattr(access_control, "S3IAMRequest", S3ActionNames)
    monkeypatch.setattr(SQSResponse, "_determine_resource", _sqs_queue_resource)
    monkeypatch.setattr(EC2ContainerServiceResponse, "_determine_resource", _ecs_run_task_resource, raising=False)
    monkeypatch.setattr(SNSResponse, "_determine_resource", _sns_topic_resource, raising=False)
    yield enable_iam_authentication
    clients_for.cache_clear()


@pytest.fixture
def s3_events(moto):
    """The events moto's S3 would deliver to a launcher Lambda, captured instead of invoked.
    Undone before the strict layer under it (a monkeypatch would restore the layer's delivery
    after the layer is gone)."""
    events = []
    with mock.patch.object(s3_notifications, "_invoke_awslambda",
                           lambda account_id, event, fn_arn, region: events.append((fn_arn, event))):
        yield events


@pytest.fixture
def pipeline(moto, change123, write_workflow, s3_events):
    assert cli.setup_pipe_main(["-f", write_workflow(single_run())]) == 0
    # Someone else's bucket and queue in the same account: the roles must not reach them.
    s3, sqs = admin("s3"), admin("sqs")
    s3.create_bucket(Bucket="unrelated-bucket")
    s3.put_object(Bucket="unrelated-bucket", Key="secret.txt", Body=b"not yours")
    unrelated_queue = sqs.create_queue(QueueName="unrelated-queue")["QueueUrl"]
    return {
        "queue": sqs.get_queue_url(QueueName=f"{PREFIX}-queue")["QueueUrl"],
        "dlq": sqs.get_queue_url(QueueName=f"{PREFIX}-dlq")["QueueUrl"],
        "unrelated_queue": unrelated_queue,
        "launcher": assume(f"{PREFIX}-launcher-role"),
        "task": assume(f"{PREFIX}-task-role"),
    }


def assert_denied(call, action: str):
    with pytest.raises(ClientError) as caught:
        call()
    error = caught.value.response["Error"]
    if action.startswith("s3:"):
        assert error["Code"] == "AccessDenied", error
    elif action.startswith("sns:"):
        assert error["Code"] == "AccessDenied" and f"not authorized to perform: {action}" in error["Message"], error
    else:
        # moto answers SQS and ECS denials with an XML body botocore cannot parse as JSON:
        # the code is the HTTP status, the message holds the denial.
        assert error["Code"] == "403" and f"not authorized to perform: {action}" in error["Message"], error


def worker_algorithm(tmp_path: Path) -> str:
    """An algorithm whose command upper-cases its input, and fails on an input saying 'fail'."""
    script = tmp_path / "upper.sh"
    script.write_text('if grep -q fail "$1"; then echo "refusing $1" >&2; exit 3; fi\ntr a-z A-Z < "$1" > "$2"\n')
    path = tmp_path / "algorithm.json"
    work = tmp_path / "work"
    path.write_text(json.dumps({"name": STEP, "run_command": f"sh {script} $input $output",
                                "input_file_path": str(work), "output_file_path": str(work)}))
    return str(path)


def test_a_file_goes_end_to_end_with_each_role_s_own_credentials(pipeline, s3_events, enforced, monkeypatch, tmp_path,
                                                                 caplog):
    s3 = admin("s3")
    s3.put_object(Bucket=INPUT, Key="data/good one.txt", Body=b"hello\n")
    s3.put_object(Bucket=INPUT, Key="bad.txt", Body=b"please fail\n")
    function = admin("lambda").get_function_configuration(FunctionName=f"{PREFIX}-launcher")
    assert [arn for arn, _ in s3_events] == [function["FunctionArn"]] * 2
    container = admin("ecs").describe_task_definition(taskDefinition=f"{PREFIX}-task")["taskDefinition"][
        "containerDefinitions"][0]

    # The launcher, as Lambda runs it: its environment, its role's keys, the S3 events.
    for name, value in function["Environment"]["Variables"].items():
        monkeypatch.setenv(name, value)
    use_credentials(monkeypatch, pipeline["launcher"])
    with enforced():
        summaries = [launcher.handler(event, None) for _, event in s3_events]
    assert [s["failures"] for s in summaries] == [[], []], summaries
    # Both files wait for one task (one per files_per_task waiting).
    assert sum(s["enqueued"] for s in summaries) == 2 and sum(s["started"] for s in summaries) == 1

    # The worker, as a task runs it: the task definition's environment, the task role's keys.
    for entry in container["environment"]:
        monkeypatch.setenv(entry["name"], entry["value"])
    # Not from the task definition: the algorithm file the image carries, and no idle wait.
    monkeypatch.setenv("YUNPIPE_ALGORITHM", worker_algorithm(tmp_path))
    monkeypatch.setenv("YUNPIPE_IDLE_SECONDS", "0")
    monkeypatch.setenv("YUNPIPE_WAIT_SECONDS", "0")
    use_credentials(monkeypatch, pipeline["task"])
    with enforced():
        assert worker.main() == 0
    # The worker logs, and carries on past, a refused report, visibility change or delete.
    refused = [r.getMessage() for r in caplog.records if r.name == "yunpipe.worker" and "cannot" in r.getMessage()]
    assert refused == []

    assert s3.get_object(Bucket=OUTPUT, Key="data/good one.txt")["Body"].read() == b"HELLO\n"
    report = json.loads(s3.get_object(Bucket=REPORTS, Key=f"failures/demo/{STEP}/bad.txt/attempt-1.json")["Body"].read())
    assert (report["reason"], report["exit_code"], report["final"]) == ("nonzero_exit", 3, False)
    assert "refusing" in report["stderr_tail"]
    # The good file's message is deleted; the failed one waits for its retry.
    attributes = admin("sqs").get_queue_attributes(
        QueueUrl=pipeline["queue"], AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    )["Attributes"]
    assert (attributes["ApproximateNumberOfMessages"], attributes["ApproximateNumberOfMessagesNotVisible"]) == ("0", "1")
    tasks = admin("ecs").list_tasks(cluster="yunpipe-demo", startedBy=function["Environment"]["Variables"]["YUNPIPE_STARTED_BY"])
    assert len(tasks["taskArns"]) == 1
    # Accounting, with the same keys: the drop-run the files joined, each job's record, the task's.
    kept = [o["Key"] for o in s3.list_objects_v2(Bucket=REPORTS).get("Contents", [])]
    (page,) = [k for k in kept if k.startswith("runs/demo/") and f"/pages/{STEP}/" in k]
    page_body = json.loads(s3.get_object(Bucket=REPORTS, Key=page)["Body"].read())
    assert [r["key"] for r in page_body["records"]] == ["data/good one.txt"]
    assert any(k.startswith("runs/demo/") and k.endswith(f"/tries/{STEP}/bad.txt/1.json") for k in kept), kept
    assert "runs/demo/drop.json" in kept and any(k.startswith(f"tasks/demo/{STEP}/") for k in kept), kept


def test_the_launchers_scheduled_run_recovers_failed_events_with_its_own_role(pipeline, enforced, monkeypatch):
    """Lambda delivers a failed event's record with the launcher role (SendMessage); the launcher
    receives and deletes it, and queues its file, with the same keys."""
    failed = admin("sqs").get_queue_url(QueueName=f"{PREFIX}-launcher-failed")["QueueUrl"]
    event = {"Records": [{"eventSource": "aws:s3", "eventName": "ObjectCreated:Put",
                          "s3": {"bucket": {"name": INPUT}, "object": {"key": "lost.txt", "eTag": "e", "size": 1}}}]}
    function = admin("lambda").get_function_configuration(FunctionName=f"{PREFIX}-launcher")
    for name, value in function["Environment"]["Variables"].items():
        monkeypatch.setenv(name, value)
    use_credentials(monkeypatch, pipeline["launcher"])
    with enforced():
        as_role("sqs", pipeline["launcher"]).send_message(
            QueueUrl=failed, MessageBody=json.dumps({"requestContext": {"condition": "EventAgeExceeded"},
                                                     "requestPayload": event}))
        summary = launcher.handler({"source": "aws.events", "detail-type": "Scheduled Event"}, None)
        assert_denied(lambda: as_role("sqs", pipeline["task"]).receive_message(QueueUrl=failed), "sqs:ReceiveMessage")
    assert (summary["recovered"], summary["enqueued"], summary["failures"]) == (1, 1, [])
    [message] = admin("sqs").receive_message(QueueUrl=pipeline["queue"])["Messages"]
    assert json.loads(message["Body"])["key"] == "lost.txt"


def test_the_task_role_reaches_nothing_but_its_step(pipeline, enforced):
    s3 = admin("s3")
    s3.put_object(Bucket=INPUT, Key="in.txt", Body=b"x")
    sqs, task_s3 = as_role("sqs", pipeline["task"]), as_role("s3", pipeline["task"])
    with enforced():
        # What a job needs works with the same keys...
        assert task_s3.get_object(Bucket=INPUT, Key="in.txt")["Body"].read() == b"x"
        task_s3.put_object(Bucket=OUTPUT, Key="in.txt", Body=b"X")
        task_s3.put_object(Bucket=REPORTS, Key=f"failures/demo/{STEP}/in.txt/attempt-1.json", Body=b"{}")
        sqs.receive_message(QueueUrl=pipeline["queue"])
        # An interrupted job's file is handed back as a new message; a last try goes to the
        # dead-letter queue at once.
        sqs.send_message(QueueUrl=pipeline["queue"], MessageBody="x")
        sqs.send_message(QueueUrl=pipeline["dlq"], MessageBody="x")
        # Skipping what is done: a result's provenance, and a folder result's listing.
        assert task_s3.head_object(Bucket=OUTPUT, Key="in.txt")["ContentLength"] == 1
        assert task_s3.list_objects_v2(Bucket=OUTPUT, Prefix="in.txt/")["KeyCount"] == 0
        # ...and nothing else does.
        assert_denied(lambda: task_s3.get_object(Bucket="unrelated-bucket", Key="secret.txt"), "s3:GetObject")
        assert_denied(lambda: task_s3.put_object(Bucket=INPUT, Key="overwrite.txt", Body=b"x"), "s3:PutObject")
        assert_denied(lambda: task_s3.list_objects_v2(Bucket="unrelated-bucket", Prefix="in.txt/"), "s3:ListBucket")
        assert_denied(lambda: task_s3.get_object(Bucket=REPORTS, Key=f"failures/demo/{STEP}/in.txt/attempt-1.json"),
                      "s3:GetObject")
        assert_denied(lambda: task_s3.put_object(Bucket=REPORTS, Key="elsewhere.json", Body=b"{}"), "s3:PutObject")
        # Accounting: its pipeline's runs and its step's task records; no other step's, no reading back.
        task_s3.put_object(Bucket=REPORTS, Key="runs/demo/drop.json", Body=b"{}")
        assert task_s3.get_object(Bucket=REPORTS, Key="runs/demo/drop.json")["Body"].read() == b"{}"
        task_s3.put_object(Bucket=REPORTS, Key=f"tasks/demo/{STEP}/t.json", Body=b"{}")
        assert_denied(lambda: task_s3.put_object(Bucket=REPORTS, Key="tasks/demo/other-step/t.json", Body=b"{}"),
                      "s3:PutObject")
        assert_denied(lambda: task_s3.put_object(Bucket=REPORTS, Key="runs/other/drop.json", Body=b"{}"), "s3:PutObject")
        # The last worker of a run settles it, which reads the tasks' records for the run's cost.
        task_s3.get_object(Bucket=REPORTS, Key=f"tasks/demo/{STEP}/t.json")
        assert_denied(lambda: task_s3.delete_object(Bucket=INPUT, Key="in.txt"), "s3:DeleteObject")
        assert_denied(lambda: sqs.send_message(QueueUrl=pipeline["unrelated_queue"], MessageBody="x"), "sqs:SendMessage")
        assert_denied(lambda: sqs.receive_message(QueueUrl=pipeline["dlq"]), "sqs:ReceiveMessage")
        assert_denied(lambda: sqs.receive_message(QueueUrl=pipeline["unrelated_queue"]), "sqs:ReceiveMessage")


def test_the_launcher_role_only_queues_and_starts_its_step(pipeline, enforced):
    s3 = admin("s3")
    s3.put_object(Bucket=INPUT, Key="in.txt", Body=b"x")
    admin("ecs").register_task_definition(
        family="unrelated-task", networkMode="awsvpc", requiresCompatibilities=["FARGATE"], cpu="256", memory="512",
        containerDefinitions=[{"name": "main", "image": "busybox", "memory": 512, "essential": True}])
    sqs, ecs, launcher_s3 = (as_role(service, pipeline["launcher"]) for service in ("sqs", "ecs", "s3"))
    with enforced():
        sqs.send_message(QueueUrl=pipeline["queue"], MessageBody="{}")
        sqs.send_message_batch(QueueUrl=pipeline["queue"], Entries=[{"Id": "1", "MessageBody": "{}"}])
        sqs.get_queue_attributes(QueueUrl=pipeline["queue"], AttributeNames=["ApproximateNumberOfMessages"])
        ecs.list_tasks(cluster="yunpipe-demo")
        assert_denied(lambda: sqs.send_message(QueueUrl=pipeline["unrelated_queue"], MessageBody="x"), "sqs:SendMessage")
        assert_denied(lambda: sqs.send_message_batch(QueueUrl=pipeline["dlq"], Entries=[{"Id": "1", "MessageBody": "x"}]),
                      "sqs:SendMessage")
        assert_denied(lambda: sqs.receive_message(QueueUrl=pipeline["queue"]), "sqs:ReceiveMessage")
        assert_denied(lambda: launcher_s3.get_object(Bucket=INPUT, Key="in.txt"), "s3:GetObject")
        assert_denied(lambda: launcher_s3.put_object(Bucket=INPUT, Key="x.txt", Body=b"x"), "s3:PutObject")
        assert_denied(lambda: ecs.run_task(cluster="yunpipe-demo", taskDefinition="unrelated-task", launchType="FARGATE"),
                      "ecs:RunTask")


def test_out_of_memory_the_task_role_sends_on_to_its_larger_sizes_and_the_launcher_only_counts_them(pipeline, enforced):
    """A job out of memory goes on at the step's next size (runtime/worker/grow.py): its worker
    sends it there and drains that size's queue with the same role; the launcher counts what
    waits there, and sends nothing."""
    admin_sqs = admin("sqs")
    larger = [admin_sqs.get_queue_url(QueueName=f"{PREFIX}-grow{size}")["QueueUrl"] for size in (4096, 8192)]
    task_sqs, launcher_sqs = as_role("sqs", pipeline["task"]), as_role("sqs", pipeline["launcher"])
    with enforced():
        for url in larger:
            task_sqs.send_message(QueueUrl=url, MessageBody="{}")
            [message] = task_sqs.receive_message(QueueUrl=url)["Messages"]
            task_sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
            launcher_sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])
            assert_denied(lambda url=url: launcher_sqs.send_message(QueueUrl=url, MessageBody="x"), "sqs:SendMessage")
            assert_denied(lambda url=url: launcher_sqs.receive_message(QueueUrl=url), "sqs:ReceiveMessage")
        assert_denied(lambda: task_sqs.send_message(QueueUrl=pipeline["unrelated_queue"], MessageBody="x"),
                      "sqs:SendMessage")


def test_a_sequence_step_s_task_role_reaches_only_its_own_buckets_and_queue(moto, write_workflow, s3_events, enforced):
    for name in ("step-a", "step-b"):
        record_algorithm(name, f"user/{name}:1", variables=[])
    document = {"name": "seq", "input_s3_name": "seq-in-bucket", "output_s3_name": "seq-out-bucket",
                "process": {"type": "sequence_run", "algorithms": [{"name": "step-a"}, {"name": "step-b"}]}}
    assert cli.setup_pipe_main(["-f", write_workflow(document)]) == 0
    middle = f"yunpipe-seq-step-a-out-{ACCOUNT}"
    s3 = admin("s3")
    s3.put_object(Bucket="seq-in-bucket", Key="in.txt", Body=b"x")
    s3.put_object(Bucket=middle, Key="in.txt", Body=b"y")
    queues = {step: admin("sqs").get_queue_url(QueueName=f"yunpipe-seq-{step}-queue")["QueueUrl"]
              for step in ("step-a", "step-b")}
    keys = assume("yunpipe-seq-step-b-task-role")
    task_s3, sqs = as_role("s3", keys), as_role("sqs", keys)
    with enforced():
        assert task_s3.get_object(Bucket=middle, Key="in.txt")["Body"].read() == b"y"
        task_s3.put_object(Bucket="seq-out-bucket", Key="in.txt", Body=b"Y")
        sqs.receive_message(QueueUrl=queues["step-b"])
        # The first step's input, its own input written to, the first step's queue: all refused.
        assert_denied(lambda: task_s3.get_object(Bucket="seq-in-bucket", Key="in.txt"), "s3:GetObject")
        assert_denied(lambda: task_s3.put_object(Bucket=middle, Key="in.txt", Body=b"z"), "s3:PutObject")
        assert_denied(lambda: sqs.receive_message(QueueUrl=queues["step-a"]), "sqs:ReceiveMessage")


def test_only_the_task_and_launcher_roles_publish_and_only_to_their_topic(moto, change123, write_workflow, s3_events,
                                                                          enforced):
    assert cli.setup_pipe_main(["-f", write_workflow(single_run(notify=["someone@example.org"]))]) == 0
    topic = f"arn:aws:sns:{REGION}:{ACCOUNT}:yunpipe-demo-notify"
    other = admin("sns").create_topic(Name="unrelated-topic")["TopicArn"]
    keys = {kind: assume(f"{PREFIX}-{kind}-role") for kind in ("task", "launcher", "exec")}
    with enforced():
        for kind in ("task", "launcher"):
            sns = as_role("sns", keys[kind])
            assert sns.publish(TopicArn=topic, Subject="yunpipe demo", Message="{}")["MessageId"]
            assert_denied(lambda sns=sns: sns.publish(TopicArn=other, Message="{}"), "sns:Publish")
            assert_denied(lambda sns=sns: sns.subscribe(TopicArn=topic, Protocol="email", Endpoint="eve@example.org"),
                          "sns:Subscribe")
        assert_denied(lambda: as_role("sns", keys["exec"]).publish(TopicArn=topic, Message="{}"), "sns:Publish")


def test_what_moto_cannot_enforce_is_pinned_as_deployed(pipeline):
    """The launcher's conditions and its PassRole, as setup-pipe deployed them."""
    iam = admin("iam")
    policy = iam.get_role_policy(RoleName=f"{PREFIX}-launcher-role", PolicyName="yunpipe")["PolicyDocument"]
    statements = {s["Sid"]: s for s in policy["Statement"]}
    cluster = f"arn:aws:ecs:{REGION}:{ACCOUNT}:cluster/yunpipe-demo"
    # Its step's tasks and those of its larger sizes, for jobs out of memory.
    assert statements["StartTasks"]["Resource"] == [f"arn:aws:ecs:{REGION}:{ACCOUNT}:task-definition/{PREFIX}-task{size}:*"
                                                    for size in ("", "-grow4096", "-grow8192")]
    assert statements["StartTasks"]["Condition"] == {"ArnEquals": {"ecs:cluster": cluster}}
    assert statements["CountTasks"]["Condition"] == {"ArnEquals": {"ecs:cluster": cluster}}
    assert statements["KeepWithinCap"]["Resource"] == f"arn:aws:ecs:{REGION}:{ACCOUNT}:task/yunpipe-demo/*"
    assert statements["KeepWithinCap"]["Condition"] == {"ArnEquals": {"ecs:cluster": cluster}}
    assert statements["PassTaskRoles"]["Action"] == "iam:PassRole"
    assert statements["PassTaskRoles"]["Resource"] == [
        iam.get_role(RoleName=f"{PREFIX}-{kind}-role")["Role"]["Arn"] for kind in ("task", "exec")]
    assert statements["PassTaskRoles"]["Condition"] == {"StringEquals": {"iam:PassedToService": "ecs-tasks.amazonaws.com"}}
    for kind, service in (("launcher", "lambda.amazonaws.com"), ("task", "ecs-tasks.amazonaws.com"),
                          ("exec", "ecs-tasks.amazonaws.com")):
        trust = iam.get_role(RoleName=f"{PREFIX}-{kind}-role")["Role"]["AssumeRolePolicyDocument"]
        assert [s["Principal"] for s in trust["Statement"]] == [{"Service": service}]


def test_the_execution_role_reads_its_step_s_secrets_and_no_other(moto, write_workflow):
    """ECS reads a task's secrets with the execution role (a call moto never sees): the deployed
    policy, evaluated by moto's own policy engine, allows exactly the step's parameter and
    secret, and nothing next to them."""
    ssm, secrets = admin("ssm"), admin("secretsmanager")
    ssm.put_parameter(Name="/lab/db-password", Value="pw", Type="SecureString")
    ssm.put_parameter(Name="/lab/other", Value="not yours", Type="SecureString")
    arn = secrets.create_secret(Name="api-key", SecretString="k")["ARN"]
    other = secrets.create_secret(Name="api-key-2", SecretString="not yours")["ARN"]
    record_algorithm(STEP, "user/change123-s3:1",
                     secrets=[{"name": "DB_PASSWORD", "valueFrom": "/lab/db-password"}, {"name": "API_KEY", "valueFrom": arn}])
    assert cli.setup_pipe_main(["-f", write_workflow(single_run())]) == 0
    policy = admin("iam").get_role_policy(RoleName=f"{PREFIX}-exec-role", PolicyName="yunpipe")["PolicyDocument"]
    engine = access_control.IAMPolicy(json.dumps(policy))
    parameter = f"arn:aws:ssm:{REGION}:{ACCOUNT}:parameter/lab/"

    def allowed(action, resource):
        return engine.is_action_permitted(action, resource) == access_control.PermissionResult.PERMITTED

    assert allowed("ssm:GetParameters", parameter + "db-password") and allowed("secretsmanager:GetSecretValue", arn)
    assert not allowed("ssm:GetParameters", parameter + "other")
    assert not allowed("secretsmanager:GetSecretValue", other)
    assert not allowed("ssm:GetParameter", parameter + "db-password")
    assert not allowed("kms:Decrypt", "*")


def _job_record(run: str, key: str) -> dict:
    from yunpipe.runtime.accounting.records import job_record
    return job_record(pipeline="demo", run=run, step=STEP, key=key, outcome="ok", attempt=1, final=True, results=[key],
                      started_at="2026-12-07T12:00:00Z", finished_at="2026-12-07T12:00:02Z", wall_seconds=2.0,
                      task={"id": "t1", "started_at": "2026-12-07T12:00:00Z", "cpu": 1024, "memory_mib": 2048,
                            "capacity": ""})


def test_the_task_role_keeps_its_pipeline_s_run_records_and_nothing_else(pipeline, enforced):
    from yunpipe.runtime.accounting import records
    task_s3, sqs = as_role("s3", pipeline["task"]), as_role("sqs", pipeline["task"])
    run = "20261207T120000Z-upload"
    with enforced():
        # A job's record, its task's record, a drop-run's state and manifest: what the worker writes...
        task_s3.put_object(Bucket=REPORTS, Key=records.end_key("demo", run, STEP, "x"), Body=b"{}")
        task_s3.put_object(Bucket=REPORTS, Key=records.task_key("demo", STEP, "t1"), Body=b"{}")
        task_s3.put_object(Bucket=REPORTS, Key=records.drop_key("demo"), Body=b"{}")
        task_s3.put_object(Bucket=REPORTS, Key=records.open_key("demo", run), Body=b"")
        # ...and what it reads and deletes to settle a run.
        task_s3.get_object(Bucket=REPORTS, Key=records.pipeline_key("demo"))
        task_s3.list_objects_v2(Bucket=REPORTS, Prefix=records.run_prefix("demo", run))
        task_s3.delete_object(Bucket=REPORTS, Key=records.open_key("demo", run))
        sqs.get_queue_attributes(QueueUrl=pipeline["queue"], AttributeNames=["ApproximateNumberOfMessages"])
        # Another pipeline's runs, another step's task records, a run's records deleted: refused.
        assert_denied(lambda: task_s3.put_object(Bucket=REPORTS, Key=records.end_key("other", run, STEP, "x"),
                                                 Body=b"{}"), "s3:PutObject")
        assert_denied(lambda: task_s3.put_object(Bucket=REPORTS, Key=records.task_key("demo", "other", "t1"),
                                                 Body=b"{}"), "s3:PutObject")
        assert_denied(lambda: task_s3.put_object(Bucket=REPORTS, Key=records.pipeline_key("demo"), Body=b"{}"),
                      "s3:PutObject")
        assert_denied(lambda: task_s3.delete_object(Bucket=REPORTS, Key=records.manifest_key("demo", run)),
                      "s3:DeleteObject")
        assert_denied(lambda: task_s3.get_object(Bucket=REPORTS, Key="runs/other/drop.json"), "s3:GetObject")
        assert_denied(lambda: sqs.get_queue_attributes(QueueUrl=pipeline["unrelated_queue"],
                                                       AttributeNames=["ApproximateNumberOfMessages"]),
                      "sqs:GetQueueAttributes")
    # moto ignores StringLike: the listing's scope is pinned as deployed, for both roles.
    for kind in ("task", "launcher"):
        policy = admin("iam").get_role_policy(RoleName=f"{PREFIX}-{kind}-role", PolicyName="yunpipe")["PolicyDocument"]
        [listing] = [s for s in policy["Statement"] if s["Sid"] == "ListRunRecords"]
        assert (listing["Action"], listing["Resource"]) == ("s3:ListBucket", f"arn:aws:s3:::{REPORTS}")
        assert listing["Condition"] == {"StringLike": {"s3:prefix": ["runs/demo/*", "tasks/demo/*"]}}


def test_the_launchers_scheduled_run_settles_runs_with_its_own_role(pipeline, enforced, monkeypatch):
    """An upload's run and a drop-run past its quiet period (its entry queues looked at), both
    settled by the scheduled run with the launcher role's keys; it may write summaries only."""
    from datetime import datetime, timedelta, timezone

    from yunpipe.runtime.accounting import records, runs
    s3 = admin("s3")
    run = "20261207T120000Z-upload"
    assert runs.write_manifest(s3, REPORTS, "demo", {"version": 1, "run": run, "pipeline": "demo", "kind": "upload",
                                                     "opened_at": "2026-12-07T12:00:00Z", "by": "test",
                                                     "inputs": [{"bucket": INPUT, "key": "x"}], "closes_after": None})
    runs._cache.clear()
    dropped = runs.drop_run(s3, REPORTS, "demo", datetime.now(timezone.utc) - timedelta(hours=1), 60)
    for record in (_job_record(run, "x"), _job_record(dropped, "y")):
        s3.put_object(Bucket=REPORTS, Key=records.job_record_key(record), Body=json.dumps(record).encode())
    function = admin("lambda").get_function_configuration(FunctionName=f"{PREFIX}-launcher")
    for name, value in function["Environment"]["Variables"].items():
        monkeypatch.setenv(name, value)
    # Compiled in by MEASURE's wiring of LauncherConfig.report_bucket; set here until then.
    monkeypatch.setenv("YUNPIPE_REPORT_BUCKET", REPORTS)
    use_credentials(monkeypatch, pipeline["launcher"])
    launcher_s3 = as_role("s3", pipeline["launcher"])
    with enforced():
        summary = launcher.handler({"source": "aws.events", "detail-type": "Scheduled Event"}, None)
        assert_denied(lambda: launcher_s3.put_object(Bucket=REPORTS, Key=records.end_key("demo", run, STEP, "z"),
                                                     Body=b"{}"), "s3:PutObject")
        assert_denied(lambda: launcher_s3.delete_object(Bucket=REPORTS, Key=records.manifest_key("demo", run)),
                      "s3:DeleteObject")
    assert sorted(summary["settled"]) == sorted([run, dropped])
    for settled in (run, dropped):
        written = json.loads(s3.get_object(Bucket=REPORTS, Key=records.summary_key("demo", settled))["Body"].read())
        assert written["steps"][STEP]["ok"] == 1
    assert s3.list_objects_v2(Bucket=REPORTS, Prefix=records.open_prefix("demo")).get("KeyCount") == 0
