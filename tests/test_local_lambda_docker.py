"""The local cloud with ``lambda_mode="docker"``: moto's own Docker Lambda runs the launcher.

Needs a Docker daemon, the local image yunpipe/base:bookworm and, unless busybox:latest is
already local, Debian's busybox-static on the host; skips only when no Docker daemon answers.
"""
import hashlib
import json
import os

import moto.s3.notifications as s3_notifications
import pytest
from helpers import launcher_step, wait_for

from yunpipe.cli import build_parser
from yunpipe.local.clients import local_client
from yunpipe.local.cloud import LocalCloud
from yunpipe.local.lambda_images import RUNTIME_REPOSITORY
from yunpipe.runtime import launcher_package as package

REGION = "us-east-1"
IMAGE = "yunpipe/base:bookworm"
MOTO_SETTINGS = ("MOTO_DOCKER_LAMBDA_IMAGE", "MOTO_DOCKER_NETWORK_MODE", "MOTO_DOCKER_NETWORK_NAME", "MOTO_PORT")
# moto's own S3 -> Lambda delivery, before any local cloud could replace it.
MOTO_DELIVERY = s3_notifications._invoke_awslambda


@pytest.fixture
def cloud(tmp_path, monkeypatch, docker_client):
    monkeypatch.setenv("YUNPIPE_HOME", str(tmp_path / "home"))
    # A network name would override the host network mode; stop() must give it back.
    monkeypatch.setenv("MOTO_DOCKER_NETWORK_NAME", "users-own-network")
    local = LocalCloud(port=0, regions=[REGION], schedule_speedup=60, docker_client=docker_client, lambda_mode="docker")
    local.start()
    yield local
    local.stop()


def _client(cloud, service):
    return local_client(service, cloud.endpoint_url, REGION)


def _step(cloud, name):
    """One step as setup-pipe makes it, whose worker leaves the queue alone: the message stays
    for the test to read."""
    return launcher_step(lambda service: _client(cloud, service), name, ["true"])


def _function_log(cloud, name):
    logs = _client(cloud, "logs")
    group = f"/aws/lambda/{name}"
    return [
        event["message"]
        for stream in logs.describe_log_streams(logGroupName=group)["logStreams"]
        for event in logs.get_log_events(logGroupName=group, logStreamName=stream["logStreamName"])["events"]
    ]


def test_cli_local_up_takes_the_lambda_mode():
    assert build_parser().parse_args(["local", "up"]).lambda_mode == "host"
    assert build_parser().parse_args(["local", "up", "--lambda", "docker"]).lambda_mode == "docker"


def test_s3_upload_runs_the_launcher_in_a_moto_docker_lambda_container_which_queues_and_starts_a_task(cloud):
    # moto's delivery stays in place: nothing runs the launcher on the host.
    assert s3_notifications._invoke_awslambda is MOTO_DELIVERY
    assert os.environ["MOTO_DOCKER_LAMBDA_IMAGE"].startswith(f"{RUNTIME_REPOSITORY}:")
    assert (os.environ["MOTO_DOCKER_NETWORK_MODE"], os.environ["MOTO_PORT"]) == ("host", str(cloud.port))
    assert "MOTO_DOCKER_NETWORK_NAME" not in os.environ
    queue_url, fn_arn = _step(cloud, "dock")
    s3 = _client(cloud, "s3")
    s3.create_bucket(Bucket="dock-input")
    s3.put_bucket_notification_configuration(
        Bucket="dock-input",
        NotificationConfiguration={
            "LambdaFunctionConfigurations": [{"LambdaFunctionArn": fn_arn, "Events": ["s3:ObjectCreated:*"]}]
        },
    )

    s3.put_object(Bucket="dock-input", Key="data/a b.txt", Body=b"hello")

    message = wait_for(lambda: _client(cloud, "sqs").receive_message(QueueUrl=queue_url, WaitTimeSeconds=1).get("Messages"),
                    what="the launcher's message")[0]
    body = json.loads(message["Body"])
    assert (body["bucket"], body["key"], body["pipeline"], body["step"]) == ("dock-input", "data/a b.txt", "demo", "dock")
    # The container's output, as moto saved it: the runtime image's lines and the launcher's summary.
    lines = _function_log(cloud, "dock-launcher")
    assert any(line.startswith("START RequestId: ") for line in lines), lines
    [summary] = [line for line in lines if "yunpipe launcher demo/dock s3: " in line]
    assert summary.startswith("[INFO]\t")
    assert json.loads(summary.split(" s3: ", 1)[1]) == {
        "enqueued": 1, "skipped": 0, "started": 1, "running": 0, "failures": []
    }
    assert json.loads(lines[-1]) == json.loads(summary.split(" s3: ", 1)[1])
    # The worker exits at once: its task may already be stopped.
    ecs = _client(cloud, "ecs")
    tasks = [arn for status in ("RUNNING", "STOPPED")
             for arn in ecs.list_tasks(cluster="dock-cluster", startedBy="yunpipe-dock", desiredStatus=status)["taskArns"]]
    assert len(tasks) == 1
    # Only the scheduler's invocations pass through the host.
    assert cloud.status()["recent_lambda_invocations"] == []


def test_scheduled_rule_invokes_the_launcher_through_moto_docker_lambda(cloud):
    _, fn_arn = _step(cloud, "tick")
    events = _client(cloud, "events")
    events.put_rule(Name="tick-topup", ScheduleExpression="rate(1 minute)", State="ENABLED")
    events.put_targets(Rule="tick-topup", Targets=[{"Id": "launcher", "Arn": fn_arn}])

    # speedup 60: one minute becomes one second.
    runs = wait_for(lambda: [i for i in cloud.status()["recent_lambda_invocations"] if i["function"] == fn_arn],
                 timeout=60, what="the scheduled run")
    assert runs[0]["trigger"] == "invoke" and runs[0]["ok"], runs[0]["result"]
    assert runs[0]["result"]["enqueued"] == 0
    assert any("yunpipe launcher demo/tick schedule: " in line for line in _function_log(cloud, "tick-launcher"))


def test_a_failing_function_is_reported_as_failed(cloud):
    role = _client(cloud, "iam").create_role(RoleName="bare-role", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    # The launcher without its environment: LauncherConfig.from_env raises inside the container.
    fn_arn = _client(cloud, "lambda").create_function(
        FunctionName="bare-launcher", Runtime=package.RUNTIME, Role=role, Handler=package.HANDLER,
        Code={"ZipFile": package.launcher_zip()},
    )["FunctionArn"]
    # Not tried again (Lambda would, twice by default: tests/test_local_faults.py): one run to read.
    _client(cloud, "lambda").put_function_event_invoke_config(FunctionName=fn_arn, MaximumRetryAttempts=0)
    with pytest.raises(RuntimeError, match="ConfigError"):
        cloud._lambda_host.invoke_function(fn_arn, {"detail-type": "Scheduled Event"}, REGION).result(timeout=120)
    [run] = cloud.status()["recent_lambda_invocations"]
    assert not run["ok"] and run["result"]["errorType"] == "ConfigError"


def test_stop_gives_moto_settings_back(tmp_path, monkeypatch, docker_client):
    monkeypatch.setenv("YUNPIPE_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("MOTO_DOCKER_NETWORK_MODE", "bridge")
    for name in ("MOTO_DOCKER_LAMBDA_IMAGE", "MOTO_DOCKER_NETWORK_NAME", "MOTO_PORT"):
        monkeypatch.delenv(name, raising=False)
    before = {name: os.environ.get(name) for name in MOTO_SETTINGS}
    with LocalCloud(port=0, regions=[REGION], docker_client=docker_client, lambda_mode="docker"):
        assert os.environ["MOTO_DOCKER_NETWORK_MODE"] == "host"
    assert {name: os.environ.get(name) for name in MOTO_SETTINGS} == before


def test_an_empty_code_volume_left_behind_is_removed_at_start(tmp_path, monkeypatch, docker_client):
    monkeypatch.setenv("YUNPIPE_HOME", str(tmp_path / "home"))
    # What an interrupted copy leaves: moto would mount it, empty, as the launcher's /var/task.
    docker_client.volumes.create(hashlib.sha256(package.launcher_zip()).hexdigest())
    with LocalCloud(port=0, regions=[REGION], docker_client=docker_client, lambda_mode="docker") as local:
        _, fn_arn = _step(local, "fresh")
        result = local._lambda_host.invoke_function(fn_arn, {"detail-type": "Scheduled Event"}, REGION).result(timeout=120)
    assert result["enqueued"] == 0
