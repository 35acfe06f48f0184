"""End to end on the local cloud: moto on loopback, the launcher on the host, tasks in Docker.

Needs a Docker daemon and the local image yunpipe/base:bookworm (Debian bookworm + python3);
skips only when no Docker daemon answers.
"""
import contextlib
import itertools
import json
import logging
import os
import re
import subprocess
import threading
from concurrent.futures import wait

import docker
import docker.errors
import pytest
from helpers import launcher_function, launcher_step, wait_for

from yunpipe.aws import announcement
from yunpipe.local.clients import local_client
from yunpipe.local.cloud import LocalCloud, running_state, start_detached, stop_running
from yunpipe.local.ecs_runner import LABEL
from yunpipe.local.lambda_host import LAUNCHER_LOGGER

REGION = "us-east-1"
IMAGE = "yunpipe/base:bookworm"


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("YUNPIPE_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


@pytest.fixture
def cloud(home, docker_client):
    local = LocalCloud(port=0, regions=[REGION], schedule_speedup=60, docker_client=docker_client)
    local.start()
    yield local
    local.stop()


def _client(cloud, service):
    return local_client(service, cloud.endpoint_url, REGION)


def _network(cloud):
    ec2 = _client(cloud, "ec2")
    subnet = ec2.describe_subnets()["Subnets"][0]["SubnetId"]
    group = ec2.describe_security_groups()["SecurityGroups"][0]["GroupId"]
    return subnet, group


def _register(cloud, family, command, environment=(), log_group=None, secrets=()):
    definition = {
        "name": "main",
        "image": IMAGE,
        "memory": 128,
        "cpu": 256,
        "essential": True,
        "command": list(command),
        "environment": [{"name": k, "value": v} for k, v in environment],
        "secrets": [{"name": k, "valueFrom": v} for k, v in secrets],
    }
    if log_group:
        definition["logConfiguration"] = {
            "logDriver": "awslogs",
            "options": {"awslogs-group": log_group, "awslogs-region": REGION, "awslogs-stream-prefix": "yunpipe"},
        }
    _client(cloud, "ecs").register_task_definition(
        family=family,
        networkMode="awsvpc",
        requiresCompatibilities=["FARGATE"],
        cpu="256",
        memory="512",
        containerDefinitions=[definition],
    )


def _run(cloud, cluster, family, overrides=None):
    subnet, group = _network(cloud)
    return _client(cloud, "ecs").run_task(
        cluster=cluster,
        taskDefinition=family,
        launchType="FARGATE",
        overrides=overrides or {},
        networkConfiguration={"awsvpcConfiguration": {"subnets": [subnet], "securityGroups": [group]}},
    )["tasks"][0]["taskArn"]


def _stopped(cloud, cluster, arn):
    task = _client(cloud, "ecs").describe_tasks(cluster=cluster, tasks=[arn])["tasks"][0]
    return task if task["lastStatus"] == "STOPPED" else None


def _task_containers(docker_client, arn):
    return docker_client.containers.list(all=True, filters={"label": f"yunpipe.task-arn={arn}"}, ignore_removed=True)


def _step(cloud, name, command, reserved_concurrency=None):
    """Queue, cluster, task definition and launcher function of one step."""
    queue_url, fn_arn = launcher_step(lambda service: _client(cloud, service), name, command)
    if reserved_concurrency is not None:
        _client(cloud, "lambda").put_function_concurrency(
            FunctionName=fn_arn, ReservedConcurrentExecutions=reserved_concurrency
        )
    return queue_url, fn_arn


def _notify(cloud, bucket, fn_arn):
    s3 = _client(cloud, "s3")
    s3.create_bucket(Bucket=bucket)
    s3.put_bucket_notification_configuration(
        Bucket=bucket,
        NotificationConfiguration={
            "LambdaFunctionConfigurations": [{"LambdaFunctionArn": fn_arn, "Events": ["s3:ObjectCreated:*"]}]
        },
    )
    return s3


def _log_events(cloud, group):
    """{stream name: [events]} of a CloudWatch Logs group."""
    logs = _client(cloud, "logs")
    return {
        stream["logStreamName"]: logs.get_log_events(logGroupName=group, logStreamName=stream["logStreamName"])["events"]
        for stream in logs.describe_log_streams(logGroupName=group)["logStreams"]
    }


def _invocations(cloud, fn_arn, trigger):
    return [i for i in cloud.status()["recent_lambda_invocations"] if i["function"] == fn_arn and i["trigger"] == trigger]


def test_task_runs_in_docker_with_env_override_secret_logs_and_exit_code_in_stop_reason(cloud, docker_client):
    _client(cloud, "logs").create_log_group(logGroupName="/yunpipe/demo")
    _client(cloud, "ssm").put_parameter(Name="/yunpipe/demo/token", Value="s3cret", Type="SecureString")
    _client(cloud, "ecs").create_cluster(clusterName="demo")
    _register(
        cloud,
        "exit3",
        ["python3", "-c", "import os, sys; print('hi', os.environ['KEEP'], os.environ['OVER'], os.environ['TOKEN']); sys.exit(3)"],
        environment=[("KEEP", "kept"), ("OVER", "from-definition")],
        secrets=[("TOKEN", "/yunpipe/demo/token")],
        log_group="/yunpipe/demo",
    )
    arn = _run(cloud, "demo", "exit3", {"containerOverrides": [{"name": "main", "environment": [{"name": "OVER", "value": "from-override"}]}]})

    task = wait_for(lambda: _stopped(cloud, "demo", arn), what="the task to stop")
    assert task["stoppedReason"] == "Essential container exited with code 3"
    stream = f"yunpipe/main/{arn.rsplit('/', 1)[-1]}"
    events = _client(cloud, "logs").get_log_events(logGroupName="/yunpipe/demo", logStreamName=stream)["events"]
    assert [e["message"] for e in events] == ["hi kept from-override s3cret"]
    wait_for(lambda: not _task_containers(docker_client, arn), what="the container to be removed")


def test_secrets_from_ssm_and_secrets_manager_reach_the_container_as_ecs_resolves_them(cloud):
    """An SSM parameter by ARN, a Secrets Manager secret whole and one key of a JSON secret
    (ECS's `ARN:json-key:version-stage:version-id`), read when the task starts."""
    _client(cloud, "logs").create_log_group(logGroupName="/yunpipe/secrets")
    _client(cloud, "ecs").create_cluster(clusterName="secrets")
    _client(cloud, "ssm").put_parameter(Name="/lab/db-password", Value="pw-1", Type="SecureString")
    manager = _client(cloud, "secretsmanager")
    whole = manager.create_secret(Name="plain", SecretString="tok-2")["ARN"]
    keyed = manager.create_secret(Name="keyed", SecretString=json.dumps({"token": "tok-3", "other": "x"}))["ARN"]
    _register(cloud, "secrets",
              ["python3", "-c", "import os; print(os.environ['DB'], os.environ['WHOLE'], os.environ['KEYED'])"],
              secrets=[("DB", f"arn:aws:ssm:{REGION}:123456789012:parameter/lab/db-password"), ("WHOLE", whole),
                       ("KEYED", f"{keyed}:token:AWSCURRENT:")],
              log_group="/yunpipe/secrets")
    arn = _run(cloud, "secrets", "secrets")
    task = wait_for(lambda: _stopped(cloud, "secrets", arn), what="the task to stop")
    assert task["stoppedReason"] == "Essential container exited with code 0"
    events = _client(cloud, "logs").get_log_events(logGroupName="/yunpipe/secrets",
                                                   logStreamName=f"yunpipe/main/{arn.rsplit('/', 1)[-1]}")["events"]
    assert [e["message"] for e in events] == ["pw-1 tok-2 tok-3"]


def test_a_secret_that_cannot_be_read_stops_the_task_with_the_reason(cloud):
    _client(cloud, "ecs").create_cluster(clusterName="secrets")
    keyed = _client(cloud, "secretsmanager").create_secret(Name="keyed", SecretString="{}")["ARN"]
    _register(cloud, "secrets", ["true"], secrets=[("KEYED", f"{keyed}:token::")])
    arn = _run(cloud, "secrets", "secrets")
    task = wait_for(lambda: _stopped(cloud, "secrets", arn), what="the task to stop")
    assert task["stoppedReason"] == f"CannotStartContainerError: cannot read secret {keyed}:token::: no JSON key 'token' in it"


def test_a_fargate_spot_task_runs_in_docker_like_any_other(cloud):
    """RunTask with a capacity provider strategy instead of a launch type, as a Spot step's launcher sends it."""
    ecs = _client(cloud, "ecs")
    ecs.create_cluster(clusterName="spot", capacityProviders=["FARGATE", "FARGATE_SPOT"])
    _register(cloud, "exit4", ["python3", "-c", "import sys; sys.exit(4)"])
    subnet, group = _network(cloud)
    [task] = ecs.run_task(
        cluster="spot", taskDefinition="exit4", capacityProviderStrategy=[{"capacityProvider": "FARGATE_SPOT", "weight": 1}],
        networkConfiguration={"awsvpcConfiguration": {"subnets": [subnet], "securityGroups": [group]}},
    )["tasks"]

    stopped = wait_for(lambda: _stopped(cloud, "spot", task["taskArn"]), what="the Spot task to stop")
    assert stopped["stoppedReason"] == "Essential container exited with code 4"
    assert stopped["capacityProviderName"] == "FARGATE_SPOT"


def test_a_task_starts_when_it_is_run_not_at_the_next_poll(home, docker_client):
    """RunTask wakes the ECS runner: with a poll every minute, the container still runs at once."""
    local = LocalCloud(port=0, regions=[REGION], docker_client=docker_client, poll_interval=60)
    local.start()
    try:
        _client(local, "ecs").create_cluster(clusterName="demo")
        _register(local, "sleeper", ["sleep", "300"])
        # The runner polled once when it started; without a wake-up this task would wait a minute.
        arn = _run(local, "demo", "sleeper")
        wait_for(lambda: [c for c in _task_containers(docker_client, arn) if c.status == "running"],
                 what="the task's container", timeout=20)
    finally:
        local.stop()


def test_task_with_missing_image_stops_with_the_error_as_reason(cloud):
    _client(cloud, "ecs").create_cluster(clusterName="demo")
    _client(cloud, "ecs").register_task_definition(
        family="missing",
        containerDefinitions=[{"name": "main", "image": "yunpipe/does-not-exist:1", "memory": 64}],
    )
    arn = _run(cloud, "demo", "missing")
    task = wait_for(lambda: _stopped(cloud, "demo", arn), what="the task to stop")
    assert "yunpipe/does-not-exist:1" in task["stoppedReason"]


def test_running_task_container_has_limits_host_network_labels_and_emulator_endpoint(cloud, docker_client):
    _client(cloud, "ecs").create_cluster(clusterName="demo")
    _register(cloud, "sleeper", ["sleep", "300"])
    arn = _run(cloud, "demo", "sleeper")
    [container] = wait_for(
        lambda: [c for c in _task_containers(docker_client, arn) if c.status == "running"], what="a running container"
    )
    host = container.attrs["HostConfig"]
    assert (host["NanoCpus"], host["Memory"], host["NetworkMode"]) == (250_000_000, 128 * 2**20, "host")
    assert container.labels["yunpipe.local"] == str(os.getpid())
    assert container.labels["yunpipe.cluster"].endswith(":cluster/demo")
    env = dict(item.split("=", 1) for item in container.attrs["Config"]["Env"])
    assert env["AWS_ENDPOINT_URL"] == cloud.endpoint_url
    assert env["AWS_REGION"] == env["AWS_DEFAULT_REGION"] == REGION


def _graceful_task(cloud, docker_client):
    """A running task of cluster demo whose container, on SIGTERM, says so and exits only once
    /tmp/go exists (which a test writes after looking at the stopping task): its ARN and container."""
    _client(cloud, "logs").create_log_group(logGroupName="/yunpipe/demo")
    _client(cloud, "ecs").create_cluster(clusterName="demo")
    graceful = ("import os, signal, sys, time\n"
                "def leave(*_):\n"
                "    print('terminated', flush=True)\n"
                "    while not os.path.exists('/tmp/go'): time.sleep(0.1)\n"
                "    sys.exit(0)\n"
                "signal.signal(signal.SIGTERM, leave)\n"
                "print('ready', flush=True)\n"
                "time.sleep(300)\n")
    _register(cloud, "graceful", ["python3", "-c", graceful], log_group="/yunpipe/demo")
    arn = _run(cloud, "demo", "graceful")
    [container] = wait_for(lambda: [c for c in _task_containers(docker_client, arn)
                                    if c.status == "running" and b"ready" in c.logs()], what="a running container")
    return arn, container


def test_stop_task_through_the_api_terms_the_container_and_is_stopping_until_it_exits(cloud, docker_client):
    """As on ECS: SIGTERM, the task STOPPING (no longer desired RUNNING) while its container runs
    on, STOPPED with the API's reason once it has exited. A caller waiting for STOPPED knows the
    container is gone."""
    arn, container = _graceful_task(cloud, docker_client)
    ecs = _client(cloud, "ecs")

    ecs.stop_task(cluster="demo", task=arn, reason="stopped by the user")
    wait_for(lambda: b"terminated" in container.logs(), what="SIGTERM to reach the container")
    task = ecs.describe_tasks(cluster="demo", tasks=[arn])["tasks"][0]
    assert (task["lastStatus"], task["desiredStatus"]) == ("STOPPING", "STOPPED"), task
    assert arn not in ecs.list_tasks(cluster="demo", desiredStatus="RUNNING")["taskArns"]
    container.exec_run(["touch", "/tmp/go"])

    stopped = wait_for(lambda: _stopped(cloud, "demo", arn), what="the task to stop")
    assert stopped["stoppedReason"] == "stopped by the user"
    wait_for(lambda: not _task_containers(docker_client, arn), what="the container to go")


def test_a_task_interrupted_like_spot_says_so_at_once_then_gets_sigterm(cloud, docker_client):
    """As a Fargate Spot interruption: stop code SpotInterruption and ECS's reason in DescribeTasks
    while the container still runs, SIGTERM to it, STOPPED with that reason once it has exited."""
    arn, container = _graceful_task(cloud, docker_client)
    ecs = _client(cloud, "ecs")

    cloud.interrupt_like_spot(arn)
    task = ecs.describe_tasks(cluster="demo", tasks=[arn])["tasks"][0]
    assert (task["stopCode"], task["stoppedReason"], task["desiredStatus"]) == (
        "SpotInterruption", "Your Spot Task was interrupted.", "STOPPED"), task
    wait_for(lambda: b"terminated" in container.logs(), what="SIGTERM to reach the container")
    container.exec_run(["touch", "/tmp/go"])
    stopped = wait_for(lambda: _stopped(cloud, "demo", arn), what="the task to stop")
    assert (stopped["stopCode"], stopped["stoppedReason"]) == ("SpotInterruption", "Your Spot Task was interrupted.")
    with pytest.raises(ValueError, match="the local cloud runs no task"):
        cloud.interrupt_like_spot(arn)


def test_s3_notification_runs_the_launcher_on_the_host_which_queues_and_starts_a_task(cloud):
    queue_url, fn_arn = _step(cloud, "s3step", ["python3", "-c", "print('worker')"])
    s3 = _notify(cloud, "demo-input", fn_arn)
    s3.put_object(Bucket="demo-input", Key="data/a b.txt", Body=b"hello")

    [invocation] = wait_for(lambda: _invocations(cloud, fn_arn, "s3"), what="the launcher to run")
    assert invocation["ok"], invocation["result"]
    assert invocation["result"]["enqueued"] == 1 and invocation["result"]["started"] == 1
    message = _client(cloud, "sqs").receive_message(QueueUrl=queue_url, WaitTimeSeconds=1)["Messages"][0]
    body = json.loads(message["Body"])
    assert (body["bucket"], body["key"], body["step"]) == ("demo-input", "data/a b.txt", "s3step")
    ecs = _client(cloud, "ecs")
    [arn] = ecs.list_tasks(cluster="s3step-cluster", startedBy="yunpipe-s3step")["taskArns"]
    task = wait_for(lambda: _stopped(cloud, "s3step-cluster", arn), what="the started task to finish")
    assert task["stoppedReason"] == "Essential container exited with code 0"


def test_reserved_concurrency_1_runs_one_launcher_at_a_time_and_never_starts_more_tasks_than_files(cloud):
    files = 6
    # Workers that never take a message: each started task stays counted as running.
    _, fn_arn = _step(cloud, "serial", ["sleep", "300"], reserved_concurrency=1)
    s3 = _notify(cloud, "serial-input", fn_arn)
    # All at once: each PutObject hands its notification to the host before the previous run ends.
    threads = [
        threading.Thread(target=s3.put_object, kwargs={"Bucket": "serial-input", "Key": f"f{i}", "Body": b"x"})
        for i in range(files)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    runs = wait_for(lambda: r if len(r := _invocations(cloud, fn_arn, "s3")) == files else None, what="every launcher run")
    assert all(run["ok"] for run in runs), runs
    assert sum(run["result"]["enqueued"] for run in runs) == files
    started = sum(run["result"]["started"] for run in runs)
    listed = _client(cloud, "ecs").list_tasks(cluster="serial-cluster", startedBy="yunpipe-serial")["taskArns"]
    assert 1 <= started == len(listed) <= files
    # One at a time: each run's START comes after the previous run's END.
    windows = sorted(
        (events[0]["timestamp"], events[-1]["timestamp"])
        for events in _log_events(cloud, "/aws/lambda/serial-launcher").values()
    )
    assert len(windows) == files
    assert all(later[0] >= earlier[1] for earlier, later in itertools.pairwise(windows)), windows


def test_reserved_concurrency_0_throttles_every_invocation(cloud):
    _, fn_arn = _step(cloud, "throttled", ["true"], reserved_concurrency=0)
    future = cloud._lambda_host.invoke_function(fn_arn, {"detail-type": "Scheduled Event"})
    with pytest.raises(RuntimeError, match="TooManyRequestsException"):
        future.result(timeout=10)
    [run] = _invocations(cloud, fn_arn, "invoke")
    assert not run["ok"] and run["log_stream"] is None


class _Collect(logging.Handler):
    def __init__(self):
        super().__init__()
        self.records = []

    def emit(self, record):
        self.records.append(record)


@pytest.fixture
def console():
    """What reaches the root logger's handlers (the console). Not caplog: pytest also hooks
    its handler onto non-propagating loggers, the launcher's among them."""
    handler = _Collect()
    root = logging.getLogger()
    root.addHandler(handler)
    yield handler.records
    root.removeHandler(handler)


def test_launcher_logs_go_to_the_function_log_group_not_the_console(cloud, console):
    fns = {step: _step(cloud, step, ["true"])[1] for step in ("alpha", "beta")}
    # The log group is missing (setup-pipe would create it): the host creates it, as Lambda does.
    host = cloud._lambda_host
    futures = [host.invoke_function(fn, {"detail-type": "Scheduled Event"}) for _ in range(4) for fn in fns.values()]
    wait(futures, timeout=60)
    assert all(f.result()["enqueued"] == 0 for f in futures)

    stream_name = re.compile(r"^\d{4}/\d\d/\d\d/\[\$LATEST\][0-9a-f]{32}$")
    for step, fn_arn in fns.items():
        streams = _log_events(cloud, f"/aws/lambda/{step}-launcher")
        runs = _invocations(cloud, fn_arn, "invoke")
        assert sorted(streams) == sorted(run["log_stream"] for run in runs) and len(streams) == 4
        for name, events in streams.items():
            assert stream_name.match(name), name
            messages = [e["message"] for e in events]
            request_id = messages[0].removeprefix("START RequestId: ").split()[0]
            assert messages[0] == f"START RequestId: {request_id} Version: $LATEST"
            # Only this function's records, though both functions ran at the same time.
            [summary] = messages[1:-2]
            assert summary.startswith("[INFO]\t") and f"\t{request_id}\tyunpipe launcher demo/{step} schedule: " in summary
            assert messages[-2] == f"END RequestId: {request_id}"
            assert messages[-1].startswith(f"REPORT RequestId: {request_id}\tDuration: ")
    assert not [r for r in console if r.name.startswith(LAUNCHER_LOGGER)]

    # Outside an invocation the launcher's logger still reaches the host's handlers.
    logging.getLogger(f"{LAUNCHER_LOGGER}.child").warning("outside any invocation")
    assert [r.getMessage() for r in console if r.name.startswith(LAUNCHER_LOGGER)] == ["outside any invocation"]


def test_failed_launcher_logs_its_error_to_the_function_log_and_one_line_to_the_console(cloud, console):
    fn_arn = launcher_function(lambda service: _client(cloud, service), "broken-launcher", {"YUNPIPE_STEP": "broken"})
    # Not tried again (Lambda would, twice by default: tests/test_local_faults.py): one run to read.
    _client(cloud, "lambda").put_function_event_invoke_config(FunctionName=fn_arn, MaximumRetryAttempts=0)
    future = cloud._lambda_host.invoke_function(fn_arn, {"detail-type": "Scheduled Event"})
    with pytest.raises(Exception, match="YUNPIPE_PIPELINE"):
        future.result(timeout=30)

    [run] = _invocations(cloud, fn_arn, "invoke")
    assert not run["ok"] and run["result"].startswith("ConfigError: ")
    messages = [e["message"] for e in _log_events(cloud, "/aws/lambda/broken-launcher")[run["log_stream"]]]
    assert messages[1].startswith("[ERROR] ConfigError: ") and "Traceback (most recent call last):" in messages[1]
    assert messages[2].startswith("END RequestId: ")
    # One line for the failure, one for its event, which no destination takes.
    [warning, dropped] = [r.getMessage() for r in console if r.levelno >= logging.WARNING]
    assert "broken-launcher failed: ConfigError" in warning and run["log_stream"] in warning
    assert dropped == "Lambda function broken-launcher failed 1 times: its event is dropped (no on-failure destination)"


def test_scheduler_fires_a_rate_rule_lambda_target_sped_up(cloud):
    _, fn_arn = _step(cloud, "sched", ["true"])
    events = _client(cloud, "events")
    events.put_rule(Name="sched-topup", ScheduleExpression="rate(1 minute)", State="ENABLED")
    events.put_targets(Rule="sched-topup", Targets=[{"Id": "launcher", "Arn": fn_arn}])

    # speedup 60: one minute becomes one second.
    runs = wait_for(lambda: _invocations(cloud, fn_arn, "invoke"), timeout=15, what="the scheduled run")
    assert runs[0]["ok"], runs[0]["result"]
    assert runs[0]["result"]["enqueued"] == 0


def test_state_file_names_the_endpoint_while_running(cloud, home):
    current = running_state()
    assert current == json.loads(announcement.state_path().read_text())
    assert current["endpoint"] == cloud.endpoint_url == f"http://127.0.0.1:{cloud.port}"
    assert announcement.state_path() == home / "local" / "cloud.json"


def test_stop_kills_and_removes_every_yunpipe_local_container(home, docker_client):
    local = LocalCloud(port=0, regions=[REGION], docker_client=docker_client)
    local.start()
    try:
        _client(local, "ecs").create_cluster(clusterName="demo")
        _register(local, "sleeper", ["sleep", "300"])
        arn = _run(local, "demo", "sleeper")
        wait_for(lambda: [c for c in _task_containers(docker_client, arn) if c.status == "running"], what="a running container")
    finally:
        local.stop()
    assert docker_client.containers.list(all=True, filters={"label": f"{LABEL}={os.getpid()}"}) == []
    assert running_state() is None


def test_detached_daemon_announces_its_endpoint_and_stops_on_request(home, docker_client):
    current = start_detached(port=0)
    try:
        assert current["endpoint"].startswith("http://127.0.0.1:")
        local_client("s3", current["endpoint"], REGION).list_buckets()
    finally:
        assert stop_running() is True
    assert running_state() is None


def test_a_local_cloud_removes_only_its_own_and_orphaned_containers(home, docker_client):
    """Several local clouds (a user's, a test run's, a benchmark's) may share one daemon."""
    gone = subprocess.Popen(["true"])
    gone.wait()
    def sleeper(owner: int):
        return docker_client.containers.run("yunpipe/base:bookworm", ["sleep", "120"], detach=True,
                                            labels={LABEL: str(owner)}, network_mode="none")
    alive, orphan = sleeper(1), sleeper(gone.pid)  # pid 1 never exits; `true` has exited
    try:
        local = LocalCloud(port=0)
        local.start()
        local.stop()
        remaining = {c.id for c in docker_client.containers.list(all=True, filters={"label": LABEL}, ignore_removed=True)}
        assert alive.id in remaining and orphan.id not in remaining
    finally:
        for container in (alive, orphan):
            with contextlib.suppress(docker.errors.NotFound):
                container.remove(force=True)


def _after_queued_runs(cloud, fn_arn):
    """Waits until every invocation already queued for a function reserved at 1 has run: a run
    queued now comes after them."""
    cloud._lambda_host.invoke_function(fn_arn, {"detail-type": "Scheduled Event", "source": "aws.events"}).result(60)


def test_an_eventbridge_rule_runs_the_launcher_on_the_host_for_matching_objects_only(cloud):
    queue_url, fn_arn = _step(cloud, "fanout", ["true"], reserved_concurrency=1)
    s3 = _client(cloud, "s3")
    s3.create_bucket(Bucket="fanout-input")
    s3.put_bucket_notification_configuration(Bucket="fanout-input",
                                             NotificationConfiguration={"EventBridgeConfiguration": {}})
    events = _client(cloud, "events")
    pattern = {"source": ["aws.s3"], "detail-type": ["Object Created"],
               "detail": {"bucket": {"name": ["fanout-input"]}, "object": {"key": [{"prefix": "data/"}]}}}
    events.put_rule(Name="fanout-input", EventPattern=json.dumps(pattern), State="ENABLED")
    events.put_targets(Rule="fanout-input", Targets=[{"Id": "launcher", "Arn": fn_arn}])
    # A schedule aimed at the same launcher takes no S3 events (moto would match it to all).
    events.put_rule(Name="fanout-topup", ScheduleExpression="rate(1 day)", State="ENABLED")
    events.put_targets(Rule="fanout-topup", Targets=[{"Id": "launcher", "Arn": fn_arn}])
    # A second reader's rule, made after the schedule: moto fails on the schedule rule and then
    # skips every later rule unless the hook contains that failure.
    _, second_arn = _step(cloud, "fanout-b", ["true"], reserved_concurrency=1)
    events.put_rule(Name="fanout-input-b", EventPattern=json.dumps(pattern), State="ENABLED")
    events.put_targets(Rule="fanout-input-b", Targets=[{"Id": "launcher", "Arn": second_arn}])

    s3.put_object(Bucket="fanout-input", Key="data/a b+c.txt", Body=b"hello")
    s3.put_object(Bucket="fanout-input", Key="elsewhere/x.txt", Body=b"not for this step")
    _after_queued_runs(cloud, fn_arn)

    _after_queued_runs(cloud, second_arn)
    [run] = _invocations(cloud, fn_arn, "eventbridge")
    assert run["ok"], run["result"]
    assert (run["result"]["enqueued"], run["result"]["skipped"]) == (1, 0)
    [second] = _invocations(cloud, second_arn, "eventbridge")
    assert second["ok"] and second["result"]["enqueued"] == 1, second["result"]
    body = json.loads(_client(cloud, "sqs").receive_message(QueueUrl=queue_url)["Messages"][0]["Body"])
    assert (body["bucket"], body["key"], body["size"]) == ("fanout-input", "data/a b+c.txt", 5)


def test_a_join_step_queues_once_every_upstream_result_exists(cloud):
    queue_url, fn_arn = _step(cloud, "joined", ["true"], reserved_concurrency=1)
    awslambda = _client(cloud, "lambda")
    environment = awslambda.get_function_configuration(FunctionName=fn_arn)["Environment"]["Variables"]
    join = [{"step": "a", "bucket": "joined-a-out"}, {"step": "b", "bucket": "joined-b-out"}]
    awslambda.update_function_configuration(FunctionName=fn_arn, Environment={"Variables": {
        **environment, "YUNPIPE_JOIN": json.dumps(join), "YUNPIPE_CLAIM_BUCKET": "joined-reports"}})
    s3 = _client(cloud, "s3")
    s3.create_bucket(Bucket="joined-reports")
    for upstream in join:
        _notify(cloud, upstream["bucket"], fn_arn)

    etags = []
    for upstream in join:
        stored = s3.put_object(Bucket=upstream["bucket"], Key="k.txt", Body=upstream["step"].encode())
        etags.append(stored["ETag"].strip('"'))
        _after_queued_runs(cloud, fn_arn)

    runs = _invocations(cloud, fn_arn, "s3")
    assert [(run["result"]["enqueued"], run["result"]["waiting"]) for run in runs] == [(0, 1), (1, 0)]
    body = json.loads(_client(cloud, "sqs").receive_message(QueueUrl=queue_url)["Messages"][0]["Body"])
    assert [(i["step"], i["etag"]) for i in body["inputs"]] == [("a", etags[0]), ("b", etags[1])]
    [claim] = s3.list_objects_v2(Bucket="joined-reports")["Contents"]
    assert claim["Key"].startswith("joins/demo/joined/k.txt/")
