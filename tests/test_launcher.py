"""The launcher Lambda against moto's in-process AWS (mock_aws), driven by real event shapes."""

import concurrent.futures
import hashlib
import io
import json
import logging
import threading
import urllib.parse
from types import SimpleNamespace

import boto3
import pytest
from botocore.awsrequest import AWSResponse
from moto import mock_aws

from yunpipe.runtime import contract
from yunpipe.runtime.launcher import handler as launcher
from yunpipe.runtime.launcher import scaling
from yunpipe.runtime.launcher.clients import Clients, clients_for, clients_from_env
from yunpipe.runtime.launcher.sending import BACKOFF_SECONDS, SEND_RETRIES, SendError
from yunpipe.runtime.launcher.tasks import CAPACITY_RETRIES, run_task_params

REGION = "us-east-1"
STARTED_BY = "yunpipe-demo-step1"


@pytest.fixture
def aws_env(monkeypatch):
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SECURITY_TOKEN": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": REGION,
    }.items():
        monkeypatch.setenv(name, value)
    for name in ("AWS_REGION", "AWS_ENDPOINT_URL", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    # Cached clients would carry event hooks registered by an earlier test.
    clients_for.cache_clear()
    yield
    clients_for.cache_clear()


@pytest.fixture
def step(aws_env, monkeypatch):
    """A queue, a cluster and a FARGATE task definition in moto, and the launcher env naming them."""
    with mock_aws():
        sqs = boto3.client("sqs", region_name=REGION)
        ecs = boto3.client("ecs", region_name=REGION)
        ec2 = boto3.client("ec2", region_name=REGION)
        queue_url = sqs.create_queue(QueueName="yunpipe-demo-step1-queue")["QueueUrl"]
        ecs.create_cluster(clusterName="yunpipe-demo")
        ecs.register_task_definition(
            family="yunpipe-demo-step1",
            requiresCompatibilities=["FARGATE"],
            networkMode="awsvpc",
            cpu="256",
            memory="512",
            # moto sizes tasks from the container's memory, so it must be set here too.
            containerDefinitions=[{"name": "step1", "image": "step1:latest", "memory": 512, "essential": True}],
        )
        subnet = ec2.describe_subnets()["Subnets"][0]["SubnetId"]
        group = ec2.describe_security_groups(GroupNames=["default"])["SecurityGroups"][0]["GroupId"]
        env = {
            "YUNPIPE_PIPELINE": "demo",
            "YUNPIPE_STEP": "step1",
            "YUNPIPE_QUEUE_URL": queue_url,
            "YUNPIPE_CLUSTER": "yunpipe-demo",
            "YUNPIPE_TASK_DEFINITION": "yunpipe-demo-step1",
            "YUNPIPE_STARTED_BY": STARTED_BY,
            "YUNPIPE_CONCURRENCY": "10",
            # One task per waiting message, so the cap tests below count tasks by files.
            "YUNPIPE_FILES_PER_TASK": "1",
            "YUNPIPE_SUBNETS": subnet,
            "YUNPIPE_SECURITY_GROUPS": group,
        }
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        yield SimpleNamespace(sqs=sqs, ecs=ecs, queue_url=queue_url, subnet=subnet, group=group, env=env)


def s3_record(key, etag="9a0364b9e99bb480dd25e1f0284c8555", size=12, bucket="in-bucket", name="ObjectCreated:Put"):
    """One record as S3 delivers it to Lambda; `key` is given decoded and encoded the way S3 does."""
    return {
        "eventVersion": "2.1",
        "eventSource": "aws:s3",
        "awsRegion": REGION,
        "eventTime": "2024-05-01T12:00:00.000Z",
        "eventName": name,
        "userIdentity": {"principalId": "AWS:AIDAEXAMPLE"},
        "requestParameters": {"sourceIPAddress": "127.0.0.1"},
        "responseElements": {"x-amz-request-id": "C3D13FE58DE4C810", "x-amz-id-2": "FMyUVURIY8/IgAtTv8xRjskZQpcIZ9KG4V5Wp6S7S/JRWeUWerMUE5JgHvANOjpD"},
        "s3": {
            "s3SchemaVersion": "1.0",
            "configurationId": "yunpipe-demo-step1",
            "bucket": {"name": bucket, "ownerIdentity": {"principalId": "A3NL1KOZZKExample"}, "arn": f"arn:aws:s3:::{bucket}"},
            "object": {"key": urllib.parse.quote_plus(key, safe="/"), "size": size, "eTag": etag, "sequencer": "0055AED6DCD90281E5"},
        },
    }


def s3_event(*records):
    return {"Records": list(records)}


SCHEDULED_EVENT = {
    "version": "0",
    "id": "53dc4d37-cffa-4f76-80c9-8b7d4a4d2eaa",
    "detail-type": "Scheduled Event",
    "source": "aws.events",
    "account": "123456789012",
    "time": "2024-05-01T12:00:00Z",
    "region": REGION,
    "resources": ["arn:aws:events:us-east-1:123456789012:rule/yunpipe-demo-step1-schedule"],
    "detail": {},
}


def queued_bodies(step):
    bodies = []
    while True:
        messages = step.sqs.receive_message(QueueUrl=step.queue_url, MaxNumberOfMessages=10).get("Messages", [])
        if not messages:
            return bodies
        bodies.extend(json.loads(m["Body"]) for m in messages)


def running_tasks(step):
    return step.ecs.list_tasks(cluster="yunpipe-demo", startedBy=STARTED_BY, desiredStatus="RUNNING")["taskArns"]


def launcher_clients():
    return clients_from_env()


def record_calls(client, operation):
    """Collect the parameters of each call of `operation` the launcher's client makes."""
    calls = []
    client.meta.events.register(f"provide-client-params.{client.meta.service_model.service_id.hyphenize()}.{operation}",
                                lambda params, **_: calls.append(dict(params)))
    return calls


class _RawBody(io.BytesIO):
    def stream(self, **_):
        yield self.getvalue()


def _http(status=200, body=b"{}"):
    return AWSResponse("https://ecs.us-east-1.amazonaws.com/", status, {}, _RawBody(body))


# --- S3 events -> messages ---------------------------------------------------


def test_put_event_queues_one_message_per_object_with_decoded_key_and_contract_body(step):
    event = s3_event(
        s3_record("data/a b.txt", etag="e1", size=12),
        s3_record("data/x(1)+ü.csv", etag="e2", size=3),
    )
    assert event["Records"][0]["s3"]["object"]["key"] == "data/a+b.txt"

    summary = launcher.handler(event, None)

    assert summary["enqueued"] == 2 and summary["skipped"] == 0
    assert sorted(queued_bodies(step), key=lambda b: b["etag"]) == [
        {"bucket": "in-bucket", "key": "data/a b.txt", "etag": "e1", "size": 12, "pipeline": "demo", "step": "step1"},
        {"bucket": "in-bucket", "key": "data/x(1)+ü.csv", "etag": "e2", "size": 3, "pipeline": "demo", "step": "step1"},
    ]


def test_duplicate_notifications_for_same_bucket_key_etag_are_queued_once(step):
    event = s3_event(
        s3_record("big.bin", etag="abc-2", name="ObjectCreated:CompleteMultipartUpload"),
        s3_record("big.bin", etag="abc-2", name="ObjectCreated:Put"),
        # A new version of the same key, and the same key in another bucket, are new work.
        s3_record("big.bin", etag="def-2"),
        s3_record("big.bin", etag="abc-2", bucket="other-bucket"),
    )

    summary = launcher.handler(event, None)

    assert summary["enqueued"] == 3 and summary["skipped"] == 1
    assert sorted((b["bucket"], b["etag"]) for b in queued_bodies(step)) == [
        ("in-bucket", "abc-2"), ("in-bucket", "def-2"), ("other-bucket", "abc-2"),
    ]


def test_s3_test_event_is_ignored_without_queueing_or_starting_tasks(step):
    test_event = {
        "Service": "Amazon S3",
        "Event": "s3:TestEvent",
        "Time": "2024-05-01T12:00:00.000Z",
        "Bucket": "in-bucket",
        "RequestId": "5582815E1AEA5ADF",
        "HostId": "8cLeGAmw098X5cv4Zkwcmo8vvZa3eH3eKxsPzbB9wrR+YstdA6Knx4Ip8EXAMPLE",
    }
    step.sqs.send_message(QueueUrl=step.queue_url, MessageBody="{}")

    summary = launcher.handler(test_event, None)

    assert summary == {"enqueued": 0, "skipped": 0, "started": 0, "running": 0, "failures": []}
    assert running_tasks(step) == []


def test_folder_keys_and_non_create_records_are_skipped(step):
    event = s3_event(
        s3_record("data/", size=0),
        s3_record("data/sub folder/", size=0),
        s3_record("data/gone.txt", name="ObjectRemoved:Delete"),
        s3_record("data/real.txt"),
    )

    summary = launcher.handler(event, None)

    assert summary["enqueued"] == 1 and summary["skipped"] == 3
    assert [b["key"] for b in queued_bodies(step)] == ["data/real.txt"]


def test_many_objects_are_sent_in_batches_of_ten(step):
    calls = record_calls(launcher_clients().sqs, "SendMessageBatch")
    event = s3_event(*(s3_record(f"f{i:02}.txt", etag=f"e{i}") for i in range(23)))

    summary = launcher.handler(event, None)

    assert summary["enqueued"] == 23
    assert [len(c["Entries"]) for c in calls] == [10, 10, 3]
    assert sorted(b["key"] for b in queued_bodies(step)) == [f"f{i:02}.txt" for i in range(23)]


def fail_entries_once(sqs, failing_ids):
    """Rewrite the first SendMessageBatch response so `failing_ids` look failed (as SQS may report)."""
    state = {"done": False}

    def rewrite(parsed, **_):
        if state["done"]:
            return
        state["done"] = True
        parsed["Successful"] = [e for e in parsed["Successful"] if e["Id"] not in failing_ids]
        parsed["Failed"] = [
            {"Id": i, "SenderFault": False, "Code": "InternalError", "Message": "try again"} for i in failing_ids
        ]

    sqs.meta.events.register("after-call.sqs.SendMessageBatch", rewrite)


def test_failed_batch_entries_are_resent_alone(step):
    sqs = launcher_clients().sqs
    calls = record_calls(sqs, "SendMessageBatch")
    fail_entries_once(sqs, {"1"})
    sleeps = []
    event = s3_event(s3_record("a.txt", etag="ea"), s3_record("b.txt", etag="eb"), s3_record("c.txt", etag="ec"))

    summary = launcher.handle(event, contract.LauncherConfig.from_env(), launcher_clients(), sleep=sleeps.append)

    assert summary["enqueued"] == 3
    assert len(calls) == 2
    assert [e["Id"] for e in calls[1]["Entries"]] == ["1"]
    assert json.loads(calls[1]["Entries"][0]["MessageBody"])["key"] == "b.txt"
    assert sleeps == [BACKOFF_SECONDS]


def test_batch_entries_that_keep_failing_raise_so_lambda_retries_the_event(step):
    sqs = launcher_clients().sqs

    def always_fail(parsed, **_):
        parsed["Failed"] = [{"Id": "0", "SenderFault": False, "Code": "InternalError", "Message": "down"}]
        parsed["Successful"] = [e for e in parsed.get("Successful", []) if e["Id"] != "0"]

    sqs.meta.events.register("after-call.sqs.SendMessageBatch", always_fail)
    calls = record_calls(sqs, "SendMessageBatch")

    with pytest.raises(SendError, match="1 message"):
        launcher.handle(s3_event(s3_record("a.txt")), contract.LauncherConfig.from_env(), launcher_clients(), sleep=lambda _: None)
    assert len(calls) == 1 + SEND_RETRIES


def test_sender_fault_entries_are_not_resent(step):
    sqs = launcher_clients().sqs

    def sender_fault(parsed, **_):
        parsed["Failed"] = [{"Id": "0", "SenderFault": True, "Code": "InvalidParameterValue", "Message": "too big"}]
        parsed["Successful"] = []

    sqs.meta.events.register("after-call.sqs.SendMessageBatch", sender_fault)
    calls = record_calls(sqs, "SendMessageBatch")

    with pytest.raises(SendError, match="InvalidParameterValue"):
        launcher.handler(s3_event(s3_record("a.txt")), None)
    assert len(calls) == 1


# --- EventBridge events -> messages --------------------------------------------


def eventbridge_event(key, etag="9a0364b9e99bb480dd25e1f0284c8555", size=12, bucket="in-bucket",
                      detail_type="Object Created", etag_field="etag"):
    """An S3 event as an EventBridge rule delivers it to Lambda: one object, the key as stored.
    AWS names the tag field "etag"; moto names it "eTag"."""
    return {
        "version": "0",
        "id": "17793124-05d4-b198-2fde-7ededc63b103",
        "detail-type": detail_type,
        "source": "aws.s3",
        "account": "123456789012",
        "time": "2024-05-01T12:00:00Z",
        "region": REGION,
        "resources": [f"arn:aws:s3:::{bucket}"],
        "detail": {
            "version": "0",
            "bucket": {"name": bucket},
            "object": {"key": key, "size": size, etag_field: etag, "version-id": "IYV3p45BT0ac8hjHg1houSdS1a.Mro8e",
                       "sequencer": "617f08299329d189"},
            "request-id": "N4N7GDK58NMKJ12R",
            "requester": "123456789012",
            "source-ip-address": "1.2.3.4",
            "reason": "PutObject",
        },
    }


def test_eventbridge_events_queue_the_same_bodies_as_s3_notifications(step):
    objects = [("data/a b.txt", "e1", 12), ("data/x(1)+ü.csv", "e2", 3), ("top%20level.txt", "e3", 5)]
    launcher.handler(s3_event(*(s3_record(key, etag=etag, size=size) for key, etag, size in objects)), None)
    from_notifications = queued_bodies(step)

    for (key, etag, size), etag_field in zip(objects, ("etag", "eTag", "etag"), strict=True):
        summary = launcher.handler(eventbridge_event(key, etag=etag, size=size, etag_field=etag_field), None)
        assert (summary["enqueued"], summary["skipped"]) == (1, 0)
    from_eventbridge = queued_bodies(step)

    assert sorted(from_eventbridge, key=lambda b: b["etag"]) == sorted(from_notifications, key=lambda b: b["etag"])
    assert sorted(b["key"] for b in from_eventbridge) == ["data/a b.txt", "data/x(1)+ü.csv", "top%20level.txt"]


def test_eventbridge_folder_markers_and_other_object_events_are_skipped(step):
    for event in (eventbridge_event("data/", size=0), eventbridge_event("data/gone.txt", detail_type="Object Deleted")):
        summary = launcher.handler(event, None)
        assert (summary["enqueued"], summary["skipped"]) == (0, 1)
    assert queued_bodies(step) == []


@pytest.mark.parametrize("event, trigger", [
    (s3_event(s3_record("a.txt")), "s3"),
    (eventbridge_event("a.txt"), "eventbridge"),
    (SCHEDULED_EVENT, "schedule"),
])
def test_each_trigger_is_named_in_the_summary_line(step, caplog, event, trigger):
    with caplog.at_level(logging.INFO, logger="yunpipe.launcher"):
        summary = launcher.handler(event, None)

    [line] = [r.getMessage() for r in caplog.records if r.name == "yunpipe.launcher"
              and not r.getMessage().startswith(contract.TASK_STARTS_MARKER)]
    assert line.startswith(f"yunpipe launcher demo/step1 {trigger}: ")
    # A scheduled event comes through EventBridge too, but only tops up workers.
    assert summary["enqueued"] == (0 if trigger == "schedule" else 1)



# --- starting workers --------------------------------------------------------


def test_tasks_started_match_messages_when_below_cap_with_awsvpc_and_started_by(step):
    calls = record_calls(launcher_clients().ecs, "RunTask")

    summary = launcher.handler(s3_event(*(s3_record(f"{i}.txt", etag=str(i)) for i in range(3))), None)

    assert summary["started"] == 3 and summary["running"] == 0 and summary["failures"] == []
    assert len(running_tasks(step)) == 3
    assert calls == [{
        "cluster": "yunpipe-demo",
        "taskDefinition": "yunpipe-demo-step1",
        "count": 3,
        "launchType": "FARGATE",
        "startedBy": STARTED_BY,
        "propagateTags": "TASK_DEFINITION",
        "networkConfiguration": {"awsvpcConfiguration": {
            "subnets": [step.subnet], "securityGroups": [step.group], "assignPublicIp": "ENABLED",
        }},
    }]


def test_tasks_never_exceed_concurrency_cap_across_invocations(step, monkeypatch):
    monkeypatch.setenv("YUNPIPE_CONCURRENCY", "4")

    first = launcher.handler(s3_event(*(s3_record(f"a{i}.txt", etag=f"a{i}") for i in range(6))), None)
    second = launcher.handler(s3_event(*(s3_record(f"b{i}.txt", etag=f"b{i}") for i in range(3))), None)

    assert (first["started"], first["running"]) == (4, 0)
    assert (second["started"], second["running"]) == (0, 4)
    assert len(running_tasks(step)) == 4


def test_a_launch_that_finds_the_cap_exceeded_stops_only_its_own_new_tasks(step, monkeypatch):
    """As after a simultaneous launch: two tasks already at work, the cap 2, and this launch's
    own third task. It stops its own; the two at work go on (moto gives tasks no createdAt, so
    all tie and a launch's own rank last)."""
    monkeypatch.setenv("YUNPIPE_CONCURRENCY", "2")
    config = contract.LauncherConfig.from_env()
    at_work = [t["taskArn"] for t in step.ecs.run_task(**run_task_params(config, 2))["tasks"]]
    own = [t["taskArn"] for t in step.ecs.run_task(**run_task_params(config, 1))["tasks"]]

    assert scaling.keep_within_cap(launcher_clients().ecs, config, own) == 1
    assert sorted(running_tasks(step)) == sorted(at_work)
    # Within the cap nothing is described or stopped.
    calls = record_calls(launcher_clients().ecs, "DescribeTasks")
    assert scaling.keep_within_cap(launcher_clients().ecs, config, at_work[:1]) == 0
    assert calls == [] and sorted(running_tasks(step)) == sorted(at_work)


def test_at_the_cap_the_queue_is_not_asked_how_many_messages_wait(step, monkeypatch):
    monkeypatch.setenv("YUNPIPE_CONCURRENCY", "2")
    calls = record_calls(launcher_clients().sqs, "GetQueueAttributes")

    first = launcher.handler(s3_event(s3_record("a.txt", etag="a"), s3_record("b.txt", etag="b")), None)
    second = launcher.handler(s3_event(s3_record("c.txt", etag="c")), None)

    assert (first["started"], second["started"], second["running"]) == (2, 0, 2)
    assert len(calls) == 1
    assert len(queued_bodies(step)) == 3


def test_running_tasks_are_subtracted_from_wanted(step, monkeypatch):
    monkeypatch.setenv("YUNPIPE_CONCURRENCY", "5")

    first = launcher.handler(s3_event(s3_record("a.txt", etag="a"), s3_record("b.txt", etag="b")), None)
    # The queue now holds 4 messages and 2 tasks run: 2 more are wanted.
    second = launcher.handler(s3_event(s3_record("c.txt", etag="c"), s3_record("d.txt", etag="d")), None)

    assert first["started"] == 2
    assert (second["started"], second["running"]) == (2, 2)
    assert len(running_tasks(step)) == 4


def test_tasks_are_started_for_the_backlog_one_per_files_per_task(step, monkeypatch):
    monkeypatch.setenv("YUNPIPE_FILES_PER_TASK", "10")

    summary = launcher.handler(s3_event(*(s3_record(f"{i}.txt", etag=str(i)) for i in range(25))), None)

    assert (summary["enqueued"], summary["started"]) == (25, 3)
    assert len(running_tasks(step)) == 3


def test_one_waiting_file_and_no_task_running_starts_one_task(step, monkeypatch):
    monkeypatch.setenv("YUNPIPE_FILES_PER_TASK", "10")

    summary = launcher.handler(s3_event(s3_record("a.txt")), None)

    assert (summary["started"], summary["running"]) == (1, 0)
    assert len(running_tasks(step)) == 1


def test_a_busy_step_looks_at_its_backlog_on_one_event_in_files_per_task_over_5(step, monkeypatch):
    """With a task at work, single-file events mostly skip GetQueueAttributes; the sampled ones
    (by key hash: one in 50 // 5 = 10) still scale up for the backlog."""
    monkeypatch.setenv("YUNPIPE_FILES_PER_TASK", "50")
    config = contract.LauncherConfig.from_env()
    keys = [f"f{i}.txt" for i in range(200)]
    sampled = [k for k in keys if scaling.backlog_check_due(config, (k,), 1)]
    assert 8 <= len(sampled) <= 40  # about one in 10
    quiet = [k for k in keys if k not in sampled]
    assert launcher.handler(s3_event(s3_record("first.txt", etag="x")), None)["started"] == 1
    for key in quiet[:60]:
        launcher.handler(s3_event(s3_record(key, etag=key)), None)
    calls = record_calls(launcher_clients().sqs, "GetQueueAttributes")

    unsampled = launcher.handler(s3_event(s3_record(quiet[60], etag="q")), None)
    assert (calls, unsampled["started"], len(running_tasks(step))) == ([], 0, 1)
    # 63 waiting: the next sampled event asks, and a second task starts.
    assert launcher.handler(s3_event(s3_record(sampled[0], etag="s")), None)["started"] == 1
    assert len(calls) == 1 and len(running_tasks(step)) == 2
    # The scheduled top-up (no keys) always asks.
    assert scaling.backlog_check_due(config, (), 0)


def lists_per_event(step, monkeypatch):
    """A launcher on a clock of the test's own (now[0], seconds); lists(event) -> how many times it
    listed the step's tasks for the event, and its summary."""
    now = [100.0]
    monkeypatch.setattr(scaling, "_clock", lambda: now[0])
    calls = record_calls(launcher_clients().ecs, "ListTasks")

    def lists(event):
        before = len(calls)
        summary = launcher.handler(event, None)
        return len(calls) - before, summary

    return now, lists


def test_a_busy_step_lists_its_tasks_once_a_second_and_a_stopped_step_at_once(step, monkeypatch):
    """A warm launcher's events within RUNNING_MEMO_SECONDS of an event's last ListTasks trust what
    it found, plus the tasks it started since; a later event and the schedule list again, and
    neither a schedule's listing nor one that finds none is trusted."""
    monkeypatch.setenv("YUNPIPE_FILES_PER_TASK", "1000")  # no backlog check on a single file's event
    now, lists = lists_per_event(step, monkeypatch)
    # None runs: it lists, starts one, and lists again to keep within the cap.
    assert lists(s3_event(s3_record("a.txt", etag="a")))[0] == 2
    now[0] += scaling.RUNNING_MEMO_SECONDS / 2
    listed, trusted = lists(s3_event(s3_record("b.txt", etag="b")))
    assert (listed, trusted["enqueued"], trusted["started"], trusted["running"]) == (0, 1, 0, 1)
    # A scheduled run lists, and its listing is not trusted: the worker it counted may be leaving
    # idle, and a file dropped just after it must start one (else it waits for the next schedule).
    assert lists(SCHEDULED_EVENT)[0] == 1
    step.ecs.stop_task(cluster="yunpipe-demo", task=running_tasks(step)[0])
    listed, after_schedule = lists(s3_event(s3_record("c.txt", etag="c")))
    assert (listed, after_schedule["started"]) == (2, 1)
    # After the memo's second an event lists again.
    now[0] += scaling.RUNNING_MEMO_SECONDS
    assert lists(s3_event(s3_record("d.txt", etag="d")))[0] == 1
    # A listing that finds none is not kept: the next event lists again at once.
    step.ecs.stop_task(cluster="yunpipe-demo", task=running_tasks(step)[0])
    monkeypatch.setattr(scaling, "run_tasks", lambda *args: ([], []))  # nothing can start now
    now[0] += scaling.RUNNING_MEMO_SECONDS
    assert lists(s3_event(s3_record("e.txt", etag="e")))[0] == 1
    assert lists(s3_event(s3_record("f.txt", etag="f")))[0] == 1
    assert len(queued_bodies(step)) == 6


def test_a_burst_s_backlog_checks_count_the_tasks_started_since_the_listing_and_start_no_more(step, monkeypatch):
    """Every event's backlog check is due here (one task per file): within the memo's second they
    ask the queue but not ECS, and count the tasks the launcher started since its listing, so the
    burst starts one task per file, not more."""
    monkeypatch.setenv("YUNPIPE_FILES_PER_TASK", "1")
    monkeypatch.setenv("YUNPIPE_CONCURRENCY", "5")
    _now, lists = lists_per_event(step, monkeypatch)
    listings = [lists(s3_event(s3_record(f"{i}.txt", etag=str(i))))[0] for i in range(4)]
    # The first counts what runs; every one that starts a task lists once more to keep the cap.
    assert listings == [2, 1, 1, 1]
    assert len(running_tasks(step)) == 4


def test_backlog_scaling_subtracts_running_tasks_and_keeps_the_cap(step, monkeypatch):
    monkeypatch.setenv("YUNPIPE_FILES_PER_TASK", "10")
    monkeypatch.setenv("YUNPIPE_CONCURRENCY", "4")

    first = launcher.handler(s3_event(s3_record("a.txt", etag="a")), None)
    # 25 waiting want 3 tasks; 1 runs.
    second = launcher.handler(s3_event(*(s3_record(f"b{i}.txt", etag=f"b{i}") for i in range(24))), None)
    # 85 waiting would want 9: the cap of 4 holds.
    third = launcher.handler(s3_event(*(s3_record(f"c{i}.txt", etag=f"c{i}") for i in range(60))), None)

    assert [s["started"] for s in (first, second, third)] == [1, 2, 1]
    assert len(running_tasks(step)) == 4


def test_a_spot_step_runs_its_tasks_on_the_fargate_spot_capacity_provider(step, monkeypatch):
    monkeypatch.setenv("YUNPIPE_CAPACITY_PROVIDER", "FARGATE_SPOT")
    step.ecs.put_cluster_capacity_providers(cluster="yunpipe-demo", capacityProviders=["FARGATE", "FARGATE_SPOT"],
                                            defaultCapacityProviderStrategy=[])
    calls = record_calls(launcher_clients().ecs, "RunTask")

    summary = launcher.handler(s3_event(s3_record("a.txt")), None)

    assert (summary["started"], summary["failures"]) == (1, [])
    # ECS refuses a launch type together with a capacity provider strategy.
    assert "launchType" not in calls[0]
    assert calls[0]["capacityProviderStrategy"] == [{"capacityProvider": "FARGATE_SPOT", "weight": 1}]
    assert calls[0]["networkConfiguration"]["awsvpcConfiguration"]["assignPublicIp"] == "ENABLED"
    [task] = step.ecs.describe_tasks(cluster="yunpipe-demo", tasks=running_tasks(step))["tasks"]
    assert task["capacityProviderName"] == "FARGATE_SPOT"


def test_more_than_ten_wanted_tasks_are_started_in_run_task_chunks_of_ten(step, monkeypatch):
    monkeypatch.setenv("YUNPIPE_CONCURRENCY", "25")
    calls = record_calls(launcher_clients().ecs, "RunTask")

    summary = launcher.handler(s3_event(*(s3_record(f"{i}.txt", etag=str(i)) for i in range(23))), None)

    assert summary["started"] == 23
    assert [c["count"] for c in calls] == [10, 10, 3]
    assert len(running_tasks(step)) == 23


def test_just_sent_messages_count_when_queue_attribute_lags(step):
    def lagging(parsed, **_):
        parsed["Attributes"]["ApproximateNumberOfMessages"] = "0"

    launcher_clients().sqs.meta.events.register("after-call.sqs.GetQueueAttributes", lagging)

    summary = launcher.handler(s3_event(s3_record("a.txt", etag="a"), s3_record("b.txt", etag="b")), None)

    assert summary["started"] == 2


def test_scheduled_event_starts_workers_only_when_messages_wait(step):
    idle = launcher.handler(SCHEDULED_EVENT, None)
    for i in range(2):
        step.sqs.send_message(QueueUrl=step.queue_url, MessageBody=json.dumps({"key": f"{i}.txt"}))
    busy = launcher.handler(SCHEDULED_EVENT, None)

    assert idle == {"enqueued": 0, "skipped": 0, "started": 0, "running": 0, "failures": []}
    assert (busy["enqueued"], busy["started"]) == (0, 2)
    assert len(running_tasks(step)) == 2


def test_scheduled_event_replaces_stopped_tasks(step):
    launcher.handler(s3_event(s3_record("a.txt", etag="a"), s3_record("b.txt", etag="b")), None)
    step.ecs.stop_task(cluster="yunpipe-demo", task=running_tasks(step)[0], reason="exited")

    summary = launcher.handler(SCHEDULED_EVENT, None)

    assert (summary["started"], summary["running"]) == (1, 1)
    assert len(running_tasks(step)) == 2


def test_running_count_follows_list_tasks_pages(step):
    pages = iter([
        {"taskArns": [f"arn:aws:ecs:us-east-1:123456789012:task/yunpipe-demo/{i}" for i in range(100)], "nextToken": "page2"},
        {"taskArns": [f"arn:aws:ecs:us-east-1:123456789012:task/yunpipe-demo/x{i}" for i in range(5)]},
    ])
    # moto returns every task in one page; serve two pages so the paginator must follow nextToken.
    launcher_clients().ecs.meta.events.register("before-call.ecs.ListTasks", lambda **_: (_http(), next(pages)))

    summary = launcher.handler(SCHEDULED_EVENT, None)

    assert summary["running"] == 105 and summary["started"] == 0


def test_other_tasks_in_cluster_are_not_counted_as_running(step):
    step.ecs.run_task(
        cluster="yunpipe-demo", taskDefinition="yunpipe-demo-step1", count=3, launchType="FARGATE",
        startedBy="yunpipe-demo-step2",
        networkConfiguration={"awsvpcConfiguration": {"subnets": [step.subnet], "securityGroups": [step.group]}},
    )

    summary = launcher.handler(s3_event(s3_record("a.txt")), None)

    assert (summary["started"], summary["running"]) == (1, 0)


def capacity_failure(count):
    return {
        "tasks": [],
        "failures": [{"arn": "arn:aws:ecs:us-east-1:123456789012:container-instance/x", "reason": "RESOURCE:MEMORY"}] * count,
    }


def test_capacity_failures_are_retried_with_backoff_then_reported_without_raising(step, caplog):
    calls = record_calls(launcher_clients().ecs, "RunTask")
    # Short-circuit RunTask with the response ECS gives when no capacity is left.
    launcher_clients().ecs.meta.events.register(
        "before-call.ecs.RunTask", lambda **_: (_http(), capacity_failure(calls[-1]["count"]))
    )
    sleeps = []
    event = s3_event(s3_record("a.txt", etag="a"), s3_record("b.txt", etag="b"))

    with caplog.at_level(logging.INFO, logger="yunpipe.launcher"):
        summary = launcher.handle(event, contract.LauncherConfig.from_env(), launcher_clients(), sleep=sleeps.append)

    assert summary["enqueued"] == 2 and summary["started"] == 0
    assert {f["reason"] for f in summary["failures"]} == {"RESOURCE:MEMORY"}
    assert len(calls) == 1 + CAPACITY_RETRIES
    assert sleeps == [0.5, 1.0, 2.0]
    # One line for `yunpipe status`: how many tasks did not start, why, and when.
    [record] = [contract.read_task_starts_line(r.getMessage()) for r in caplog.records if r.levelno == logging.WARNING]
    assert (record["pipeline"], record["step"], record["started"], record["not_started"]) == ("demo", "step1", 0, 2)
    assert {f["reason"] for f in record["failures"]} == {"RESOURCE:MEMORY"} and record["at"].endswith("Z")
    assert len(queued_bodies(step)) == 2


def test_capacity_failure_recovered_on_retry_starts_only_the_missing_tasks(step):
    calls = record_calls(launcher_clients().ecs, "RunTask")
    responses = iter([(_http(), {"tasks": [], "failures": [{"arn": "", "reason": "AGENT"}] * 3})])
    # The first RunTask finds no capacity; later ones go through to moto.
    launcher_clients().ecs.meta.events.register("before-call.ecs.RunTask", lambda **_: next(responses, None))
    sleeps = []
    event = s3_event(*(s3_record(f"{i}.txt", etag=str(i)) for i in range(3)))

    summary = launcher.handle(event, contract.LauncherConfig.from_env(), launcher_clients(), sleep=sleeps.append)

    assert (summary["started"], summary["failures"]) == (3, [])
    assert [c["count"] for c in calls] == [3, 3]
    assert sleeps == [0.5]
    assert len(running_tasks(step)) == 3


def test_partial_run_task_failure_retries_only_the_shortfall(step):
    calls = record_calls(launcher_clients().ecs, "RunTask")
    state = {"first": True}

    def drop_one(parsed, **_):
        # ECS started 3 but reports one as failed: pretend only 2 came up on the first call.
        if state["first"]:
            state["first"] = False
            parsed["failures"] = [{"arn": "", "reason": "RESOURCE:CPU"}]
            parsed["tasks"] = parsed["tasks"][:2]

    launcher_clients().ecs.meta.events.register("after-call.ecs.RunTask", drop_one)

    summary = launcher.handle(
        s3_event(*(s3_record(f"{i}.txt", etag=str(i)) for i in range(3))),
        contract.LauncherConfig.from_env(), launcher_clients(), sleep=lambda _: None,
    )

    assert summary["started"] == 3 and summary["failures"] == []
    assert [c["count"] for c in calls] == [3, 1]


def test_throttled_run_task_is_retried_by_botocore_standard_mode(step):
    ecs = launcher_clients().ecs
    attempts = []
    throttled = json.dumps({"__type": "ThrottlingException", "message": "Rate exceeded"}).encode()

    def throttle_first(**_):
        attempts.append(1)
        return _http(400, throttled) if len(attempts) == 1 else None

    # Ahead of moto's own before-send hook, so the first attempt never reaches moto.
    ecs.meta.events.register_first("before-send.ecs.RunTask", throttle_first)

    summary = launcher.handler(s3_event(s3_record("a.txt")), None)

    assert (summary["started"], summary["failures"]) == (1, [])
    assert len(attempts) == 2


def test_api_error_while_topping_up_is_reported_and_messages_stay_queued(step, monkeypatch, caplog):
    monkeypatch.setenv("YUNPIPE_CLUSTER", "no-such-cluster")

    with caplog.at_level(logging.INFO, logger="yunpipe.launcher"):
        summary = launcher.handler(s3_event(s3_record("a.txt")), None)

    assert summary["enqueued"] == 1 and summary["started"] == 0
    assert summary["failures"][0]["reason"] == "ClusterNotFoundException"
    [record] = [r for m in caplog.messages if (r := contract.read_task_starts_line(m))]
    assert record["failures"][0]["reason"] == "ClusterNotFoundException"
    assert len(queued_bodies(step)) == 1


def test_handler_logs_one_summary_line_and_one_line_of_task_starts(step, caplog):
    with caplog.at_level(logging.INFO, logger="yunpipe.launcher"):
        summary = launcher.handler(s3_event(s3_record("a.txt")), None)

    starts, line = [r.getMessage() for r in caplog.records if r.name == "yunpipe.launcher"]
    assert line.startswith("yunpipe launcher demo/step1 s3: ")
    assert json.loads(line.split(": ", 1)[1]) == summary
    # What `yunpipe status` reads: every task asked for started.
    record = contract.read_task_starts_line(starts)
    assert (record["started"], record["not_started"], record["failures"]) == (1, 0, [])


# --- RunTask parameters and configuration ------------------------------------


REQUIRED_ENV = {
    "YUNPIPE_PIPELINE": "demo",
    "YUNPIPE_STEP": "step1",
    "YUNPIPE_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/q",
    "YUNPIPE_CLUSTER": "c",
    "YUNPIPE_TASK_DEFINITION": "td",
    "YUNPIPE_STARTED_BY": "yunpipe-demo-step1",
}


def test_config_defaults_follow_the_contract():
    config = contract.LauncherConfig.from_env(REQUIRED_ENV)

    assert config == contract.LauncherConfig(
        pipeline="demo", step="step1", queue_url=REQUIRED_ENV["YUNPIPE_QUEUE_URL"], cluster="c",
        task_definition="td", started_by="yunpipe-demo-step1", concurrency=10, files_per_task=10,
        launch_type="FARGATE", capacity_provider="", subnets=(), security_groups=(), assign_public_ip="ENABLED",
    )


def test_config_splits_comma_separated_subnets_and_groups():
    config = contract.LauncherConfig.from_env(
        {**REQUIRED_ENV, "YUNPIPE_SUBNETS": "subnet-1, subnet-2,", "YUNPIPE_SECURITY_GROUPS": "sg-1",
         "YUNPIPE_LAUNCH_TYPE": "ec2", "YUNPIPE_ASSIGN_PUBLIC_IP": "disabled", "YUNPIPE_CONCURRENCY": "3"}
    )

    assert (config.subnets, config.security_groups) == (("subnet-1", "subnet-2"), ("sg-1",))
    assert (config.launch_type, config.assign_public_ip, config.concurrency) == ("EC2", "DISABLED", 3)


def test_config_is_frozen():
    config = contract.LauncherConfig.from_env(REQUIRED_ENV)
    with pytest.raises(AttributeError):
        config.concurrency = 99


def test_config_missing_required_variables_are_all_named():
    env = {k: v for k, v in REQUIRED_ENV.items() if k not in ("YUNPIPE_QUEUE_URL", "YUNPIPE_STARTED_BY")}
    env["YUNPIPE_CLUSTER"] = "  "

    with pytest.raises(contract.ConfigError) as error:
        contract.LauncherConfig.from_env(env)

    message = str(error.value)
    assert "YUNPIPE_QUEUE_URL" in message and "YUNPIPE_STARTED_BY" in message and "YUNPIPE_CLUSTER" in message


@pytest.mark.parametrize(
    "name, value, fragment",
    [
        ("YUNPIPE_CONCURRENCY", "ten", "integer"),
        ("YUNPIPE_CONCURRENCY", "0", "at least 1"),
        ("YUNPIPE_FILES_PER_TASK", "many", "YUNPIPE_FILES_PER_TASK must be an integer"),
        ("YUNPIPE_FILES_PER_TASK", "0", "YUNPIPE_FILES_PER_TASK must be at least 1"),
        ("YUNPIPE_FILES_PER_TASK", "-5", "YUNPIPE_FILES_PER_TASK must be at least 1"),
        ("YUNPIPE_CAPACITY_PROVIDER", "spot please", "FARGATE, FARGATE_SPOT"),
        ("YUNPIPE_LAUNCH_TYPE", "EXTERNAL", "FARGATE, EC2"),
        ("YUNPIPE_ASSIGN_PUBLIC_IP", "yes", "ENABLED, DISABLED"),
        ("YUNPIPE_STARTED_BY", "x" * 37, "36"),
    ],
)
def test_config_rejects_invalid_values(name, value, fragment):
    with pytest.raises(contract.ConfigError, match=fragment):
        contract.LauncherConfig.from_env({**REQUIRED_ENV, name: value})


def test_a_capacity_provider_needs_the_fargate_launch_type():
    with pytest.raises(contract.ConfigError, match="YUNPIPE_CAPACITY_PROVIDER FARGATE_SPOT needs YUNPIPE_LAUNCH_TYPE"):
        contract.LauncherConfig.from_env({**REQUIRED_ENV, "YUNPIPE_LAUNCH_TYPE": "EC2", "YUNPIPE_CAPACITY_PROVIDER": "fargate_spot"})


def test_files_per_task_and_capacity_provider_round_trip_through_the_environment():
    config = contract.LauncherConfig(**{**contract.LauncherConfig.from_env(REQUIRED_ENV).__dict__, "files_per_task": 7,
                                "capacity_provider": "FARGATE_SPOT"})

    env = config.to_env()

    assert (env["YUNPIPE_FILES_PER_TASK"], env["YUNPIPE_CAPACITY_PROVIDER"]) == ("7", "FARGATE_SPOT")
    assert contract.LauncherConfig.from_env(env) == config
    assert contract.LauncherConfig.from_env({**REQUIRED_ENV, "YUNPIPE_FILES_PER_TASK": " 20 "}).files_per_task == 20


def test_run_task_params_on_spot_name_the_capacity_provider_instead_of_the_launch_type():
    config = contract.LauncherConfig.from_env({**REQUIRED_ENV, "YUNPIPE_CAPACITY_PROVIDER": "FARGATE_SPOT",
                                       "YUNPIPE_SUBNETS": "subnet-1"})

    assert run_task_params(config, 2) == {
        "cluster": "c", "taskDefinition": "td", "count": 2, "startedBy": "yunpipe-demo-step1",
        "propagateTags": "TASK_DEFINITION", "capacityProviderStrategy": [{"capacityProvider": "FARGATE_SPOT", "weight": 1}],
        "networkConfiguration": {"awsvpcConfiguration": {"subnets": ["subnet-1"], "assignPublicIp": "ENABLED"}},
    }


def test_run_task_params_on_an_auto_scaling_group_provider_keep_its_name_and_take_no_network_configuration():
    # The provider's tasks use bridge networking on their instances (docs/compute.md); any launch type is ignored.
    config = contract.LauncherConfig.from_env({**REQUIRED_ENV, "YUNPIPE_CAPACITY_PROVIDER": "yunpipe-demo-ec2-g4dn-xlarge",
                                       "YUNPIPE_LAUNCH_TYPE": "EC2", "YUNPIPE_SUBNETS": "subnet-1"})

    assert config.on_instances and config.to_env()["YUNPIPE_CAPACITY_PROVIDER"] == "yunpipe-demo-ec2-g4dn-xlarge"
    assert run_task_params(config, 2) == {
        "cluster": "c", "taskDefinition": "td", "count": 2, "startedBy": "yunpipe-demo-step1",
        "propagateTags": "TASK_DEFINITION",
        "capacityProviderStrategy": [{"capacityProvider": "yunpipe-demo-ec2-g4dn-xlarge", "weight": 1}],
    }


def test_handler_without_configuration_raises_config_error(aws_env, monkeypatch):
    for name in REQUIRED_ENV:
        monkeypatch.delenv(name, raising=False)

    with pytest.raises(contract.ConfigError, match="YUNPIPE_PIPELINE"):
        launcher.handler(SCHEDULED_EVENT, None)


def test_run_task_params_without_subnets_omit_network_configuration():
    params = run_task_params(contract.LauncherConfig.from_env({**REQUIRED_ENV, "YUNPIPE_LAUNCH_TYPE": "EC2"}), 2)

    assert params == {"cluster": "c", "taskDefinition": "td", "count": 2, "launchType": "EC2", "startedBy": "yunpipe-demo-step1",
                      "propagateTags": "TASK_DEFINITION"}


def test_run_task_params_for_ec2_awsvpc_omit_assign_public_ip():
    config = contract.LauncherConfig.from_env({**REQUIRED_ENV, "YUNPIPE_LAUNCH_TYPE": "EC2", "YUNPIPE_SUBNETS": "subnet-1"})

    assert run_task_params(config, 1)["networkConfiguration"] == {"awsvpcConfiguration": {"subnets": ["subnet-1"]}}


def test_clients_are_cached_per_region_and_endpoint(aws_env):
    first = clients_from_env({"AWS_DEFAULT_REGION": REGION})
    again = clients_from_env({"AWS_DEFAULT_REGION": REGION})
    local = clients_from_env({"AWS_REGION": "eu-west-1", "AWS_ENDPOINT_URL": "http://127.0.0.1:5000"})

    assert first is again
    assert local is not first
    assert local.sqs.meta.endpoint_url == "http://127.0.0.1:5000"
    assert local.ecs.meta.region_name == "eu-west-1"
    assert first.ecs.meta.config.retries["mode"] == "standard"


# --- join steps -----------------------------------------------------------------


JOIN = [{"step": "a", "bucket": "demo-a-out"}, {"step": "b", "bucket": "demo-b-out"}]
CLAIMS = "demo-reports"


@pytest.fixture
def join(step, monkeypatch):
    """The step joins steps a and b: their result buckets and the claim bucket, in moto."""
    s3 = boto3.client("s3", region_name=REGION)
    for bucket in ("demo-a-out", "demo-b-out", CLAIMS):
        s3.create_bucket(Bucket=bucket)
    monkeypatch.setenv("YUNPIPE_JOIN", json.dumps(JOIN))
    monkeypatch.setenv("YUNPIPE_CLAIM_BUCKET", CLAIMS)
    return SimpleNamespace(s3=s3, step=step)


def result(join, step, key, body):
    """Upstream step `step` stores its result for `key`; returns the arrival event and the etag."""
    bucket = f"demo-{step}-out"
    etag = join.s3.put_object(Bucket=bucket, Key=key, Body=body)["ETag"].strip('"')
    return s3_event(s3_record(key, etag=etag, size=len(body), bucket=bucket)), etag


def claims(join):
    return [o["Key"] for o in join.s3.list_objects_v2(Bucket=CLAIMS).get("Contents", [])]


def test_join_waits_for_every_upstream_result_then_queues_one_message_with_all_inputs(join):
    key = "data/a b+c.txt"
    first, etag_a = result(join, "a", key, b"from a")

    waiting = launcher.handler(first, None)

    assert (waiting["enqueued"], waiting["skipped"], waiting["waiting"]) == (0, 0, 1)
    assert queued_bodies(join.step) == [] and claims(join) == []

    second, etag_b = result(join, "b", key, b"from b!")
    joined = launcher.handler(second, None)

    assert (joined["enqueued"], joined["skipped"], joined["waiting"], joined["started"]) == (1, 0, 0, 1)
    assert queued_bodies(join.step) == [{
        "bucket": "demo-b-out", "key": key, "etag": etag_b, "size": 7, "pipeline": "demo", "step": "step1",
        "inputs": [{"step": "a", "bucket": "demo-a-out", "key": key, "etag": etag_a},
                   {"step": "b", "bucket": "demo-b-out", "key": key, "etag": etag_b}],
    }]
    digest = hashlib.sha256("\n".join(sorted([etag_a, etag_b])).encode()).hexdigest()
    assert claims(join) == [f"joins/demo/step1/{key}/{digest}"]


def test_a_repeated_arrival_queues_nothing_and_new_content_joins_again(join):
    result(join, "a", "k.txt", b"a1")
    arrival_b, etag_b = result(join, "b", "k.txt", b"b1")
    assert launcher.handler(arrival_b, None)["enqueued"] == 1
    queued_bodies(join.step)

    # The same object reported again (a retried notification, or a's arrival after b's).
    again = launcher.handler(arrival_b, None)
    assert (again["enqueued"], again["skipped"]) == (0, 1)
    assert queued_bodies(join.step) == []

    new_a, etag_a2 = result(join, "a", "k.txt", b"a2")
    rejoined = launcher.handler(new_a, None)

    assert rejoined["enqueued"] == 1
    [body] = queued_bodies(join.step)
    assert [(i["step"], i["etag"]) for i in body["inputs"]] == [("a", etag_a2), ("b", etag_b)]
    assert len(claims(join)) == 2


def test_two_launches_racing_for_one_join_queue_it_once(join):
    arrivals = [result(join, "a", "k.txt", b"a")[0], result(join, "b", "k.txt", b"b")[0]]
    s3 = launcher_clients().s3
    # Both launches have found every input before either claims the join.
    both_found = threading.Barrier(2, timeout=30)
    # moto checks If-None-Match and stores the object in two steps, S3 in one: the claims go one
    # at a time, so the test does not depend on moto's window between the two.
    one_write = threading.Lock()

    def before_claim(**_):
        both_found.wait()
        assert one_write.acquire(timeout=30)  # returns nothing: a value would replace the parameters

    s3.meta.events.register("provide-client-params.s3.PutObject", before_claim)
    s3.meta.events.register("after-call.s3.PutObject", lambda **_: one_write.release())
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        summaries = list(pool.map(lambda event: launcher.handler(event, None), arrivals))

    assert sorted((s["enqueued"], s["skipped"]) for s in summaries) == [(0, 1), (1, 0)]
    assert len(queued_bodies(join.step)) == 1 and len(claims(join)) == 1


def test_a_join_that_cannot_be_queued_releases_its_claim_so_the_retried_event_joins(join):
    result(join, "a", "k.txt", b"a")
    arrival, _ = result(join, "b", "k.txt", b"b")
    sqs = launcher_clients().sqs

    def queue_down(**_):
        # Short-circuits the call: SQS answers that the message was not queued.
        return _http(), {"Failed": [{"Id": "0", "SenderFault": False, "Code": "InternalError", "Message": "down"}],
                         "Successful": []}

    sqs.meta.events.register("before-call.sqs.SendMessageBatch", queue_down)
    with pytest.raises(SendError):
        launcher.handle(arrival, contract.LauncherConfig.from_env(), launcher_clients(), sleep=lambda _: None)
    assert claims(join) == [] and queued_bodies(join.step) == []

    sqs.meta.events.unregister("before-call.sqs.SendMessageBatch", queue_down)
    assert launcher.handler(arrival, None)["enqueued"] == 1
    assert len(queued_bodies(join.step)) == 1 and len(claims(join)) == 1


def test_an_object_outside_the_join_buckets_is_skipped(join):
    summary = launcher.handler(s3_event(s3_record("k.txt", bucket="in-bucket")), None)

    assert (summary["enqueued"], summary["skipped"], summary["waiting"]) == (0, 1, 0)


def test_a_step_that_is_no_join_needs_no_s3_client(step):
    made = []
    clients = Clients(sqs=launcher_clients().sqs, ecs=launcher_clients().ecs, make_s3=lambda: made.append(1))

    launcher.handle(s3_event(s3_record("a.txt")), contract.LauncherConfig.from_env(), clients)

    assert made == []


# --- gather steps ---------------------------------------------------------------


def test_a_gather_marker_queues_one_job_over_its_folder(step, monkeypatch):
    monkeypatch.setenv("YUNPIPE_GATHER", "1")

    summary = launcher.handler(s3_event(s3_record("batch 1/_DONE", etag="m1"), s3_record("_DONE", etag="m2")), None)

    assert summary["enqueued"] == 2
    assert sorted(queued_bodies(step), key=lambda b: b["key"]) == [
        {"key": "_DONE", "bucket": "in-bucket", "etag": "", "gather": {"prefix": ""},
         "pipeline": "demo", "step": "step1"},
        {"key": "batch 1/_DONE", "bucket": "in-bucket", "etag": "", "gather": {"prefix": "batch 1/"},
         "pipeline": "demo", "step": "step1"},
    ]


# --- join and gather configuration ------------------------------------------------


def test_config_with_join_or_gather_round_trips_through_the_environment():
    base = contract.LauncherConfig.from_env(REQUIRED_ENV)
    inputs = (contract.JoinInput("a", "a-out"), contract.JoinInput("b", "b-out"))
    joined = contract.LauncherConfig(**{**base.__dict__, "join": inputs, "claim_bucket": "reports"})
    gathering = contract.LauncherConfig(**{**base.__dict__, "gather": True})

    for config in (base, joined, gathering):
        assert contract.LauncherConfig.from_env(config.to_env()) == config
    assert (base.join, base.claim_bucket, base.gather) == ((), "", False)
    assert {k: base.to_env()[k] for k in ("YUNPIPE_JOIN", "YUNPIPE_CLAIM_BUCKET", "YUNPIPE_GATHER")} == {
        "YUNPIPE_JOIN": "", "YUNPIPE_CLAIM_BUCKET": "", "YUNPIPE_GATHER": "0"}
    assert json.loads(joined.to_env()["YUNPIPE_JOIN"]) == [{"step": "a", "bucket": "a-out"},
                                                            {"step": "b", "bucket": "b-out"}]
    assert contract.LauncherConfig.from_env({**REQUIRED_ENV, "YUNPIPE_JOIN": "[]"}).join == ()


@pytest.mark.parametrize(
    "settings, fragment",
    [
        ({"YUNPIPE_JOIN": "[{'step': 'a'}]", "YUNPIPE_CLAIM_BUCKET": "r"}, "YUNPIPE_JOIN is not valid JSON"),
        ({"YUNPIPE_JOIN": '{"step": "a", "bucket": "x"}', "YUNPIPE_CLAIM_BUCKET": "r"},
         "YUNPIPE_JOIN must be a JSON list"),
        ({"YUNPIPE_JOIN": '[{"step": "a"}, {"step": "b", "bucket": "y"}]', "YUNPIPE_CLAIM_BUCKET": "r"},
         "YUNPIPE_JOIN must be a JSON list"),
        ({"YUNPIPE_JOIN": '[{"step": "a", "bucket": "x"}]', "YUNPIPE_CLAIM_BUCKET": "r"}, "at least two steps"),
        ({"YUNPIPE_JOIN": '[{"step": "a", "bucket": "x"}, {"step": "b", "bucket": "x"}]', "YUNPIPE_CLAIM_BUCKET": "r"},
         "each with its own bucket"),
        ({"YUNPIPE_JOIN": json.dumps(JOIN)}, "YUNPIPE_CLAIM_BUCKET is required"),
        ({"YUNPIPE_GATHER": "yes"}, "YUNPIPE_GATHER must be 1 or 0"),
        ({"YUNPIPE_JOIN": json.dumps(JOIN), "YUNPIPE_CLAIM_BUCKET": "r", "YUNPIPE_GATHER": "1"}, "exclude each other"),
    ],
)
def test_config_rejects_invalid_join_and_gather_settings(settings, fragment):
    with pytest.raises(contract.ConfigError, match=fragment):
        contract.LauncherConfig.from_env({**REQUIRED_ENV, **settings})


# --- events Lambda could not deliver ------------------------------------------------


def destination_record(event, condition="EventAgeExceeded"):
    """What Lambda puts in an on-failure destination for an event it could not deliver."""
    return json.dumps({"version": "1.0", "timestamp": "2024-05-01T18:00:00.000Z",
                       "requestContext": {"requestId": "e4b46cbf-b738-4a8e-8880-a18cdf61200e", "condition": condition,
                                          "functionArn": "arn:aws:lambda:us-east-1:123456789012:function:launcher:$LATEST",
                                          "approximateInvokeCount": 0},
                       "requestPayload": event})


@pytest.fixture
def failed_events(step, monkeypatch):
    """The step's failed-events queue, named in the launcher's environment."""
    url = step.sqs.create_queue(QueueName="yunpipe-demo-step1-launcher-failed")["QueueUrl"]
    monkeypatch.setenv(contract.FAILED_EVENTS_URL_VARIABLE, url)
    return url


def waiting(sqs, url):
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages",
                                                                        "ApproximateNumberOfMessagesNotVisible"])
    return sum(int(value) for value in attributes["Attributes"].values())


def test_the_scheduled_run_queues_the_objects_of_events_lambda_could_not_deliver(step, failed_events, caplog):
    records = [destination_record(s3_event(s3_record("lost one.txt", etag="e1"))),
               destination_record({"source": "aws.s3", "detail-type": "Object Created",
                                   "detail": {"bucket": {"name": "in-bucket"}, "object": {"key": "lost/two.txt",
                                                                                          "etag": "e2", "size": 3}}},
                                  condition="RetriesExhausted"),
               # A scheduled run that was itself dropped, and an S3 test event: nothing to queue.
               destination_record(SCHEDULED_EVENT),
               destination_record({"Event": "s3:TestEvent"}),
               "not a record"]
    for body in records:
        step.sqs.send_message(QueueUrl=failed_events, MessageBody=body)

    with caplog.at_level(logging.WARNING, logger="yunpipe.launcher"):
        summary = launcher.handler(SCHEDULED_EVENT, None)

    assert sorted(body["key"] for body in queued_bodies(step)) == ["lost one.txt", "lost/two.txt"]
    assert (summary["recovered"], summary["enqueued"], summary["unreadable"], summary["started"]) == (4, 2, 1, 2)
    # The unreadable record stays, for `yunpipe status` to count; the others are gone.
    assert waiting(step.sqs, failed_events) == 1
    assert "a failed-events record without an event" in caplog.text


def test_an_event_the_launcher_handles_directly_does_not_drain_the_failed_events(step, failed_events):
    step.sqs.send_message(QueueUrl=failed_events, MessageBody=destination_record(s3_event(s3_record("lost.txt"))))

    summary = launcher.handler(s3_event(s3_record("new.txt")), None)

    assert "recovered" not in summary and waiting(step.sqs, failed_events) == 1
    assert [body["key"] for body in queued_bodies(step)] == ["new.txt"]


def test_records_whose_objects_cannot_be_queued_stay_for_the_next_run(step, failed_events):
    for key in ("a.txt", "b.txt"):
        step.sqs.send_message(QueueUrl=failed_events, MessageBody=destination_record(s3_event(s3_record(key, etag=key))))
    sqs = launcher_clients().sqs
    sent = []

    def fail_the_second(parsed, **_):
        sent.append(1)
        if len(sent) > 1:
            parsed["Failed"] = [{"Id": "0", "SenderFault": True, "Code": "InternalError", "Message": "down"}]
            parsed["Successful"] = []

    sqs.meta.events.register("after-call.sqs.SendMessageBatch", fail_the_second)

    summary = launcher.handle(SCHEDULED_EVENT, contract.LauncherConfig.from_env(), launcher_clients(),
                              sleep=lambda _: None)

    # The first record's object was queued and its record deleted; the second waits, hidden
    # until its visibility timeout, for a later run. The scheduled run itself does not fail.
    assert summary["recovered"] == 1 and summary["enqueued"] == 1
    assert waiting(step.sqs, failed_events) == 1


def grow_path(step, monkeypatch):
    """Step step1's 1024 MiB size (its queue and task definition) in the launcher's environment:
    the queue's URL and the GrowPath."""
    grown = step.sqs.create_queue(QueueName="yunpipe-demo-step1-grow1024")["QueueUrl"]
    step.ecs.register_task_definition(
        family="yunpipe-demo-step1-grow1024", requiresCompatibilities=["FARGATE"], networkMode="awsvpc", cpu="256",
        memory="1024", containerDefinitions=[{"name": "step1", "image": "step1:latest", "memory": 1024, "essential": True}])
    path = contract.GrowPath(1024, "yunpipe-demo-step1-grow1024", "yunpipe-demo-step1-g1024", grown)
    config = contract.LauncherConfig.from_env(step.env)
    for name, value in contract.LauncherConfig(**{**config.__dict__, "grow": (path,)}).to_env().items():
        monkeypatch.setenv(name, value)
    return grown, path


def test_a_scheduled_run_starts_the_larger_sizes_tasks_for_jobs_out_of_memory_and_events_do_not(step, monkeypatch):
    """A job out of memory waits in its larger size's queue (runtime/worker/grow.py); the schedule
    starts that size's task definition for it, counted by its own startedBy."""
    grown, path = grow_path(step, monkeypatch)
    step.sqs.send_message(QueueUrl=grown, MessageBody=json.dumps({"bucket": "in-bucket", "key": "big.txt",
                                                                  "attempts": 1}))

    event = launcher.handler(s3_event(s3_record("a.txt")), None)
    assert "grow" not in event
    assert step.ecs.list_tasks(cluster="yunpipe-demo", startedBy=path.started_by)["taskArns"] == []

    scheduled = launcher.handler(SCHEDULED_EVENT, None)
    assert scheduled["grow"] == {"1024": {"started": 1, "running": 0, "failures": []}}
    [arn] = step.ecs.list_tasks(cluster="yunpipe-demo", startedBy=path.started_by)["taskArns"]
    task = step.ecs.describe_tasks(cluster="yunpipe-demo", tasks=[arn])["tasks"][0]
    assert task["taskDefinitionArn"].endswith("task-definition/yunpipe-demo-step1-grow1024:1")
    # Started once: the next scheduled run finds it running.
    assert launcher.handler(SCHEDULED_EVENT, None)["grow"]["1024"]["started"] == 0


def test_a_worker_s_wake_up_starts_the_larger_size_s_task_at_once(step, monkeypatch):
    """The worker that sends a job on to a larger size invokes the launcher with a grow event
    (runtime/worker/grow.py): it starts that size's task without waiting for the schedule."""
    grown, _ = grow_path(step, monkeypatch)
    step.sqs.send_message(QueueUrl=grown, MessageBody=json.dumps({"bucket": "in-bucket", "key": "big.txt"}))

    summary = launcher.handler({"source": contract.GROW_EVENT_SOURCE}, None)

    assert summary["grow"] == {"1024": {"started": 1, "running": 0, "failures": []}}
    assert (summary["enqueued"], summary["started"]) == (0, 0)
    assert "settled" not in summary and "recovered" not in summary


def test_grow_paths_round_trip_through_the_environment_and_a_bad_one_is_refused(step):
    path = contract.GrowPath(2048, "family-grow2048", "started-g2048", "https://queue/grow2048")
    config = contract.LauncherConfig.from_env(step.env)
    grown = contract.LauncherConfig(**{**config.__dict__, "grow": (path,)})
    assert contract.LauncherConfig.from_env(grown.to_env()) == grown
    without_url = {**grown.to_env(), contract.grow_queue_variable(2048): ""}
    with pytest.raises(contract.ConfigError, match="YUNPIPE_GROW names a queue without its"):
        contract.LauncherConfig.from_env(without_url)
    with pytest.raises(contract.ConfigError, match="YUNPIPE_GROW must be a JSON list"):
        contract.LauncherConfig.from_env({**grown.to_env(), "YUNPIPE_GROW": '[{"memory": "x"}]'})
