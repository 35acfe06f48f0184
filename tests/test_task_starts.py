"""Tasks that cannot start, and messages held for long jobs (issue 20, items 4, 5, 9, 10): the
engine's side of the strict layer's rules (tests/strict_aws.py, raw refusals in
tests/test_strict_aws.py). A launcher whose RunTask fails says why in `yunpipe status`; a task
the engine lets through fits its instance type; an Auto Scaling group gets only zones offering
its type; the worker's heartbeat never asks SQS for more than 12 hours."""
import time
from types import SimpleNamespace

import boto3
import pytest
from helpers import REGION, single_run

from yunpipe import cli
from yunpipe.aws.facade import Aws
from yunpipe.aws.reader import Reader
from yunpipe.local.lambda_host import LambdaHost
from yunpipe.operations import status
from yunpipe.runtime import contract
from yunpipe.runtime.launcher import handler as launcher
from yunpipe.runtime.launcher.clients import Clients
from yunpipe.runtime.worker import lease

FUNCTION = "yunpipe-demo-change123-s3-launcher"


def client(service):
    return boto3.client(service, region_name=REGION)


class InProcessHost(LambdaHost):
    """The local cloud's Lambda host (the launcher run as Lambda runs it, its log written to
    CloudWatch Logs) with its clients on the in-process moto of the `moto` fixture."""

    def _client(self, service, region):
        return boto3.client(service, region_name=region)


def test_a_launcher_that_cannot_start_tasks_says_why_in_status(moto, change123, write_workflow, capsys):
    moto.fargate_vcpu_limit = 0  # a new account's Fargate vCPU quota, used up
    assert cli.setup_pipe_main(["-f", write_workflow(single_run())]) == 0
    host = InProcessHost("http://127.0.0.1:9")
    host.install()
    try:
        client("s3").put_object(Bucket="demo-in-bucket", Key="a.txt", Body=b"a")
    finally:
        host.uninstall()  # waits for the invocation the upload started
    [run] = host.recent()
    assert run.ok and run.result["started"] == 0
    assert "ecs-fargate-vcpu-limit" in moto.rules_fired()

    capsys.readouterr()
    assert cli.main(["status", "demo"]) == 0
    out = capsys.readouterr().out
    assert "step change123-s3: 0 of 1 done, 1 waiting, 0 in flight, 0 in the dead-letter queue, 0 task(s) running" in out
    lines = out.splitlines()
    [at] = [i for i, line in enumerate(lines) if line.startswith("  1 task(s) not started at ")]
    assert lines[at + 1:at + 3] == [
        "    The requested CPU configuration is above your limit",
        "      fix: the account's Fargate vCPU quota is used up: ask for a Service Quotas increase of \"Fargate "
        "On-Demand vCPU resource count\" in us-east-1, or lower the steps' concurrency or cpu",
    ]


def _log(*lines):
    """The launcher's log group with `lines` (at, message), a minute apart up to now."""
    logs = client("logs")
    group = f"/aws/lambda/{FUNCTION}"
    logs.create_log_group(logGroupName=group)
    logs.create_log_stream(logGroupName=group, logStreamName="s")
    now = int(time.time())
    logs.put_log_events(logGroupName=group, logStreamName="s", logEvents=[
        {"timestamp": (now - 60 * (len(lines) - i)) * 1000, "message": f"[WARNING]\t{at}\trequest\t{message}"}
        for i, (at, message) in enumerate(lines)])
    return Reader(Aws(boto3.Session(region_name=REGION))), now


def _starts(at, started, not_started, *reasons):
    return at, contract.task_starts_line("demo", "change123-s3", at, started, not_started,
                                         [{"reason": reason} for reason in reasons])


def test_status_finds_the_newest_record_of_tasks_not_started(moto):
    """What the launcher logs, as Lambda's runtime prefixes it, read back by status; older
    failures count, and other lines of the log are left alone."""
    reader, now = _log(_starts("2026-12-07T10:00:00Z", 0, 2, "RESOURCE:GPU"),
                       _starts("2026-12-07T10:01:00Z", 0, 1, "RESOURCE:MEMORY"),
                       ("2026-12-07T10:01:30Z", "yunpipe launcher demo/change123-s3 schedule: {}"))
    record = status.latest_not_started(reader, FUNCTION, now=now)
    assert record == status.NotStarted("2026-12-07T10:01:00Z", 1, ({"reason": "RESOURCE:MEMORY"},), times=2)
    assert status.render_not_started(record, REGION) == [
        "  1 task(s) not started at 2026-12-07T10:01:00Z, 2 time(s) in the last 24 h:",
        "    RESOURCE:MEMORY",
        "      fix: the step's instance type is too small for the task's memory: pick a larger instance_type or ask "
        "for less memory",
    ]
    assert status.latest_not_started(reader, FUNCTION, now=now + 25 * 3600) is None
    assert status.latest_not_started(reader, "no-such-function", now=now) is None


def test_status_says_when_tasks_started_after_the_last_failure(moto):
    reader, now = _log(_starts("2026-12-07T10:00:00Z", 1, 0),
                       _starts("2026-12-07T10:01:00Z", 0, 1, "Capacity is unavailable at this time."),
                       _starts("2026-12-07T10:02:00Z", 1, 0))
    record = status.latest_not_started(reader, FUNCTION, now=now)
    assert record.started_since == "2026-12-07T10:02:00Z"
    assert status.render_not_started(record, REGION) == [
        "  1 task(s) not started at 2026-12-07T10:01:00Z:",
        "    Capacity is unavailable at this time.",
        "    tasks have started since, at 2026-12-07T10:02:00Z",
    ]


def test_status_says_nothing_of_a_launcher_whose_tasks_all_started(moto):
    reader, now = _log(_starts("2026-12-07T10:00:00Z", 2, 0), _starts("2026-12-07T10:01:00Z", 1, 0))
    assert status.latest_not_started(reader, FUNCTION, now=now) is None


@pytest.mark.parametrize("reason, fix", [
    ("You've reached the limit on the number of tasks you can run concurrently. For more information, see the "
     "Troubleshooting section of the Amazon ECS Developer Guide.", "contact AWS Support"),
    ("RESOURCE:GPU", "fewer GPUs than the task asks for"),
    ("Capacity is unavailable at this time. Please try again later or in a different availability zone",
     "the scheduled top-up retries"),
    ("AccessDeniedException", "run setup-pipe again"),
    ("MISSING", ""),
])
def test_known_reasons_say_how_to_fix_them(reason, fix):
    found = status.not_started_fix({"reason": reason}, REGION)
    assert (fix in found) if fix else found == ""


def test_a_task_the_engine_lets_onto_an_instance_type_is_placed(moto, change123, write_workflow):
    """The most memory setup-pipe lets a g4dn.xlarge step ask for fits what ECS registers."""
    assert cli.setup_pipe_main(["-f", write_workflow({**single_run(), "process": {
        "type": "single_run", "algorithms": [{"name": "change123-s3", "variables": {"TEST_ENV": "x"}, "gpu": 1, "memory": 15564}]}})]) == 0
    environment = client("lambda").get_function_configuration(FunctionName=FUNCTION)["Environment"]["Variables"]
    config = contract.LauncherConfig.from_env(environment)
    client("sqs").send_message(QueueUrl=config.queue_url, MessageBody="{}")
    summary = launcher.handle({"source": "aws.events"}, config,
                              Clients(sqs=client("sqs"), ecs=client("ecs"), make_s3=lambda: client("s3")),
                              sleep=moto.clock.sleep)
    assert (summary["started"], summary["failures"]) == (1, [])
    assert "ecs-instance-too-small" not in moto.rules_fired()


def test_an_auto_scaling_group_gets_only_the_subnets_whose_zone_offers_its_type(moto, change123, write_workflow):
    zones = {s["AvailabilityZone"]: s["SubnetId"] for s in client("ec2").describe_subnets()["Subnets"]}
    path = write_workflow({**single_run(), "subnets": [zones["us-east-1a"], zones["us-east-1e"]],
                           "process": {"type": "single_run", "algorithms": [{"name": "change123-s3", "variables": {"TEST_ENV": "x"}, "gpu": 1}]}})
    assert cli.setup_pipe_main(["-f", path]) == 0
    [group] = client("autoscaling").describe_auto_scaling_groups()["AutoScalingGroups"]
    assert group["VPCZoneIdentifier"] == zones["us-east-1a"]
    assert "autoscaling-instance-type-not-in-zone" not in moto.rules_fired()


class _Ticks:
    """The heartbeat's stop event, on the strict layer's manual clock: each wait moves the clock
    by its timeout; the event is set after `until` seconds."""

    def __init__(self, clock, until):
        self.clock, self.until = clock, until

    def wait(self, timeout):
        self.clock.sleep(timeout)
        return self.clock.time() >= self.until


def test_the_heartbeat_holds_a_long_job_for_12_hours_and_never_asks_beyond(moto, monkeypatch):
    sqs = client("sqs")
    url = sqs.create_queue(QueueName="long")["QueueUrl"]
    sqs.send_message(QueueUrl=url, MessageBody="job")
    [message] = sqs.receive_message(QueueUrl=url, VisibilityTimeout=600)["Messages"]
    asked = []
    sqs.meta.events.register("before-parameter-build.sqs.ChangeMessageVisibility",
                             lambda params, **_: asked.append((moto.clock.time(), params["VisibilityTimeout"])))
    monkeypatch.setattr(lease, "time", SimpleNamespace(monotonic=moto.clock.time))
    heartbeat = lease.VisibilityHeartbeat(sqs, url, 600)
    heartbeat.hold([message])
    heartbeat._stopped = _Ticks(moto.clock, until=contract.MAX_VISIBILITY_SECONDS + 3600)
    heartbeat._run()
    assert "sqs-visibility-beyond-12h" not in moto.rules_fired()
    # Every 300 s an extension, the last for what is left of the 12 h (less a few seconds' margin).
    last_at, last = asked[-1]
    assert len(asked) == contract.MAX_VISIBILITY_SECONDS // 300 - 1
    assert contract.MAX_VISIBILITY_SECONDS - 600 < last_at + last <= contract.MAX_VISIBILITY_SECONDS
