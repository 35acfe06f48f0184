"""submit and retry against pipelines deployed in moto: the messages they queue, the dead letters
they move, and the launcher they wake (on the local cloud, the launcher really runs on the host)."""
import json

import boto3
import pytest
from botocore.awsrequest import AWSResponse
from botocore.exceptions import ClientError
from helpers import REGION, record_algorithm, single_run, wait_for
from moto.moto_api import state_manager

from yunpipe import cli
from yunpipe.aws.facade import watch_calls
from yunpipe.local.moto_patches import stop_task_deferred
from yunpipe.local.server import ECS_TASK_TRANSITION
from yunpipe.operations import backfill
from yunpipe.registry import AlgorithmRegistry
from yunpipe.runtime import contract
from yunpipe.runtime.launcher.tasks import run_task_params
from yunpipe.specs.algorithm import load_algorithm

ACCOUNT = "123456789012"
STEP = "change123-s3"
QUEUE, DLQ = f"yunpipe-demo-{STEP}-queue", f"yunpipe-demo-{STEP}-dlq"
LAUNCHER = f"yunpipe-demo-{STEP}-launcher"


def sqs():
    return boto3.client("sqs", region_name=REGION)


def url(queue: str) -> str:
    return sqs().get_queue_url(QueueName=queue)["QueueUrl"]


def drain(queue: str) -> list[str]:
    """Every message body of the queue (received and kept hidden, so none comes twice)."""
    found = []
    while messages := sqs().receive_message(QueueUrl=url(queue), MaxNumberOfMessages=10,
                                            VisibilityTimeout=600).get("Messages", []):
        found += [m["Body"] for m in messages]
    return found


def counts(queue: str) -> tuple[int, int]:
    attributes = sqs().get_queue_attributes(QueueUrl=url(queue), AttributeNames=[
        "ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"])["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"]), int(attributes["ApproximateNumberOfMessagesNotVisible"])


def put_objects(bucket: str, keys: list[str]) -> None:
    s3 = boto3.client("s3", region_name=REGION)
    for key in keys:
        s3.put_object(Bucket=bucket, Key=key, Body=key.encode())


def contract_bodies(bucket: str, keys: list[str], step: str = STEP, pipeline: str = "demo") -> list[dict]:
    """The launcher's message for each object (docs/runtime-contract.md, "Queue message")."""
    s3 = boto3.client("s3", region_name=REGION)
    bodies = []
    for key in keys:
        head = s3.head_object(Bucket=bucket, Key=key)
        bodies.append({"bucket": bucket, "key": key, "etag": head["ETag"].strip('"'), "size": head["ContentLength"],
                       "pipeline": pipeline, "step": step})
    return bodies


def run(argv: list[str]) -> tuple[int, list[tuple[str, str]]]:
    """`yunpipe ARGV`: its exit status and the Lambda calls it made."""
    with watch_calls() as calls:
        status = cli.main(argv)
    return status, [call for call in calls if call[0] == "lambda"]


KEYS = [f"batch/file {i:02}.txt" for i in range(15)] + [f"other/{i}.txt" for i in range(5)]


@pytest.fixture
def deployed(moto, change123, write_workflow):
    """Pipeline demo, set up over an input bucket that already held 20 objects and a folder
    marker, so S3 notified nobody of them."""
    boto3.client("s3", region_name=REGION).create_bucket(Bucket="demo-in-bucket")
    put_objects("demo-in-bucket", [*KEYS, "batch/"])
    assert cli.setup_pipe_main(["-f", write_workflow(single_run())]) == 0


def test_submit_queues_every_object_once_as_the_launcher_would_and_wakes_the_launcher(deployed, capsys):
    capsys.readouterr()
    status, calls = run(["submit", "demo"])
    assert status == 0
    queued = [json.loads(body) for body in drain(QUEUE)]
    assert len(queued) == 20
    # Each message names the run submit opened (tests/test_run_opening.py), and is otherwise the launcher's.
    [submitted_run] = {body.pop("run") for body in queued}
    assert sorted(queued, key=lambda b: b["key"]) == contract_bodies("demo-in-bucket", sorted(KEYS))
    assert calls == [("lambda", "Invoke")]
    out = capsys.readouterr().out
    assert "Queued 20 object(s) of s3://demo-in-bucket/ to step change123-s3" in out
    assert f"Invoked launcher {LAUNCHER}" in out
    assert f"Run {submitted_run}: follow it with `yunpipe runs demo`" in out


def test_submit_with_a_prefix_queues_only_the_keys_under_it(deployed):
    status, _ = run(["submit", "demo", "--prefix", "other/"])
    assert status == 0
    assert sorted(json.loads(body)["key"] for body in drain(QUEUE)) == [f"other/{i}.txt" for i in range(5)]


def test_submit_of_a_prefix_with_no_object_queues_nothing_and_wakes_nobody(deployed, capsys):
    status, calls = run(["submit", "demo", "--prefix", "nothing/"])
    assert (status, calls, drain(QUEUE)) == (0, [], [])
    assert "Queued 0 object(s)" in capsys.readouterr().out


def test_submit_force_asks_every_message_to_run_even_where_its_results_are_there(deployed):
    """Without --force a message says nothing of it (the worker skips what is done); with it, each
    message and a gather message carry "force": true."""
    assert run(["submit", "demo", "--force", "--prefix", "other/"])[0] == 0
    queued = sorted((json.loads(body) for body in drain(QUEUE)), key=lambda b: b["key"])
    assert [{k: v for k, v in body.items() if k != "run"} for body in queued] == [
        {**body, "force": True} for body in contract_bodies("demo-in-bucket", sorted(KEYS[15:]))]
    assert run(["submit", "demo", "--force", "--gather", "--prefix", "batch/"])[0] == 0
    [gather] = [json.loads(body) for body in drain(QUEUE)]
    assert gather["force"] is True and gather["gather"] == {"prefix": "batch/"}


@pytest.fixture
def two_steps(moto, write_workflow):
    for name in ("step-a", "step-b"):
        record_algorithm(name, f"user/{name}:1", variables=[])
    path = write_workflow({"name": "seq", "input_s3_name": "seq-in-bucket", "output_s3_name": "seq-out-bucket",
                           "process": {"type": "sequence_run", "algorithms": [{"name": "step-a"}, {"name": "step-b"}]}})
    assert cli.setup_pipe_main(["-f", path]) == 0


def test_submit_to_a_named_step_queues_its_input_bucket_to_its_queue(two_steps):
    middle = f"yunpipe-seq-step-a-out-{ACCOUNT}"
    put_objects("seq-in-bucket", ["first.txt"])
    put_objects(middle, ["a.txt", "b.txt"])
    status, calls = run(["submit", "seq", "--step", "step-b"])
    assert status == 0
    queued = sorted((json.loads(body) for body in drain("yunpipe-seq-step-b-queue")), key=lambda b: b["key"])
    assert len({body.pop("run") for body in queued}) == 1
    assert queued == contract_bodies(middle, ["a.txt", "b.txt"], step="step-b", pipeline="seq")
    assert drain("yunpipe-seq-step-a-queue") == []
    assert calls == [("lambda", "Invoke")]


def test_submit_to_an_unknown_step_is_an_input_error_naming_the_steps(two_steps, capsys):
    status, calls = run(["submit", "seq", "--step", "step-z"])
    assert (status, calls) == (2, [])
    err = capsys.readouterr().err
    assert "submit: --step:" in err and "(step-a, step-b)" in err and "'step-z'" in err
    assert drain("yunpipe-seq-step-a-queue") == drain("yunpipe-seq-step-b-queue") == []


def test_submit_gather_queues_exactly_one_gather_message(deployed):
    status, calls = run(["submit", "demo", "--gather", "--prefix", "batch/", "--name", "all-of-batch"])
    assert status == 0
    [body] = [json.loads(body) for body in drain(QUEUE)]
    assert body.pop("run").endswith("-submit")
    assert body == {"key": "all-of-batch", "bucket": "demo-in-bucket", "etag": "", "gather": {"prefix": "batch/"},
                    "pipeline": "demo", "step": STEP}
    assert calls == [("lambda", "Invoke")]


def test_submit_gather_defaults_to_the_key_gather_over_the_whole_bucket(deployed):
    assert run(["submit", "demo", "--gather"])[0] == 0
    [body] = [json.loads(body) for body in drain(QUEUE)]
    assert (body["key"], body["gather"]) == ("gather", {"prefix": ""})


@pytest.fixture
def gathering(moto, write_workflow):
    """Pipeline g: step one, then a gather step all (and, with two=True, a second gather step)."""
    for name in ("one", "summary"):
        record_algorithm(name, f"user/{name}:1", variables=[])

    def deploy(two: bool = False):
        steps = [{"id": "one", "name": "one"}, {"id": "all", "name": "summary", "after": ["one"], "gather": True}]
        if two:
            steps.append({"id": "again", "name": "summary", "after": ["one"], "gather": True})
        path = write_workflow({"name": "g", "input_s3_name": "g-in-bucket", "output_s3_name": "g-out-bucket",
                               "process": {"type": "graph", "steps": steps}})
        assert cli.setup_pipe_main(["-f", path]) == 0
    return deploy


def test_submit_gather_without_a_step_goes_to_the_pipelines_gather_step(gathering):
    gathering()
    assert run(["submit", "g", "--gather", "--prefix", "batch/"])[0] == 0
    assert drain("yunpipe-g-one-queue") == []
    [body] = [json.loads(body) for body in drain("yunpipe-g-all-queue")]
    assert (body["step"], body["gather"]) == ("all", {"prefix": "batch/"})


def test_submit_gather_with_two_gather_steps_asks_which(gathering, capsys):
    gathering(two=True)
    capsys.readouterr()
    status, calls = run(["submit", "g", "--gather"])
    assert (status, calls) == (2, [])
    assert "submit: --step: expected the gather step to send to: one of all, again" in capsys.readouterr().err


def test_submit_name_without_gather_is_an_input_error(deployed, capsys):
    assert run(["submit", "demo", "--name", "x"]) == (2, [])
    assert "submit: --name: expected only with --gather" in capsys.readouterr().err
    assert drain(QUEUE) == []


def test_send_batch_resends_the_entries_sqs_failed(moto):
    client = sqs()
    queue = client.create_queue(QueueName="q")["QueueUrl"]
    attempts = []

    def fail_the_first_attempt(params, **_):
        entries = json.loads(params["body"])["Entries"]  # the request as sent: SQS speaks JSON
        attempts.append([entry["MessageBody"] for entry in entries])
        if len(attempts) > 1:
            return None
        # Answered before SQS sees the request: nothing of the first attempt is queued.
        failed = [{"Id": entry["Id"], "SenderFault": False, "Code": "InternalError", "Message": "try again"}
                  for entry in entries]
        return AWSResponse(queue, 200, {}, None), {"Successful": [], "Failed": failed}

    client.meta.events.register("before-call.sqs.SendMessageBatch", fail_the_first_attempt)
    assert backfill.send_batch(client, queue, ["a", "b", "c"], sleep=lambda _: None) == {}
    assert attempts == [["a", "b", "c"], ["a", "b", "c"]]
    assert sorted(m["Body"] for m in client.receive_message(QueueUrl=queue, MaxNumberOfMessages=10)["Messages"]) == [
        "a", "b", "c"]


DEAD = [json.dumps({"bucket": "demo-in-bucket", "key": f"k{i}", "etag": "e", "size": 1, "pipeline": "demo",
                    "step": STEP}) for i in range(12)] + ["not json at all"]


def test_retry_moves_every_dead_letter_back_with_its_body_and_wakes_the_launcher(deployed, capsys):
    for body in DEAD:
        sqs().send_message(QueueUrl=url(DLQ), MessageBody=body)
    capsys.readouterr()
    status, calls = run(["retry", "demo"])
    assert status == 0
    assert counts(DLQ) == (0, 0)
    assert sorted(drain(QUEUE)) == sorted(DEAD)
    assert calls == [("lambda", "Invoke")]
    assert f"step {STEP}: moved 13 message(s) from {DLQ} back to {QUEUE}" in capsys.readouterr().out


def test_retry_of_every_step_moves_each_steps_dead_letters_to_its_own_queue(two_steps, capsys):
    sqs().send_message(QueueUrl=url("yunpipe-seq-step-b-dlq"), MessageBody="b-1")
    sqs().send_message(QueueUrl=url("yunpipe-seq-step-b-dlq"), MessageBody="b-2")
    capsys.readouterr()
    status, calls = run(["retry", "seq"])
    assert status == 0
    out = capsys.readouterr().out
    assert "step step-a: moved 0 message(s)" in out and "step step-b: moved 2 message(s)" in out
    assert sorted(drain("yunpipe-seq-step-b-queue")) == ["b-1", "b-2"]
    assert drain("yunpipe-seq-step-a-queue") == []
    # Only the step that got messages back is woken.
    assert calls == [("lambda", "Invoke")]


def test_retry_deletes_nothing_from_the_dead_letter_queue_when_the_queue_refuses_it(deployed, capsys):
    for body in DEAD[:3]:
        sqs().send_message(QueueUrl=url(DLQ), MessageBody=body)

    def refuse(service, operation):
        if operation == "SendMessageBatch":
            raise ClientError({"Error": {"Code": "AccessDenied", "Message": "no"}}, operation)

    with watch_calls(refuse):
        assert cli.main(["retry", "demo"]) == 1
    assert "AccessDenied" in capsys.readouterr().err
    # Received (so hidden for now) but still there.
    assert sum(counts(DLQ)) == 3
    assert drain(QUEUE) == []


def test_retry_of_an_unknown_step_is_an_input_error(deployed, capsys):
    assert run(["retry", "demo", "--step", "nope"]) == (2, [])
    assert f"retry: --step: expected one of the pipeline's steps ({STEP}), got 'nope'" in capsys.readouterr().err


@pytest.fixture
def local_cloud(aws_env, docker_client):
    from yunpipe.local.cloud import LocalCloud

    # Speedup 1: the launcher's schedule fires after 5 minutes, so any run seen here is submit's.
    with LocalCloud(port=0, regions=[REGION], docker_client=docker_client) as cloud:
        yield cloud


def test_submit_on_the_local_cloud_runs_the_launcher_on_the_host(local_cloud, change123, write_workflow):
    from yunpipe.local.clients import local_client

    def client(service):
        return local_client(service, local_cloud.endpoint_url, REGION)

    client("s3").create_bucket(Bucket="demo-in-bucket")
    for key in KEYS:
        client("s3").put_object(Bucket="demo-in-bucket", Key=key, Body=b"x")
    workflow = single_run()
    workflow["process"]["algorithms"][0].update(concurrency=2, files_per_task=1)
    assert cli.setup_pipe_main(["--local", "-f", write_workflow(workflow)]) == 0

    assert cli.main(["submit", "demo"]) == 0

    def runs():
        return [run for run in local_cloud.status()["recent_lambda_invocations"]
                if run["function"].endswith(f":function:{LAUNCHER}")]
    [run] = wait_for(runs, timeout=30, what="the launcher to run")
    assert run["trigger"] == "invoke" and run["ok"], run
    # The empty event is a top-up: nothing queued by the launcher, workers started for submit's 20.
    assert (run["result"]["enqueued"], run["result"]["started"]) == (0, 2)
    tasks = client("ecs").list_tasks(cluster="yunpipe-demo", startedBy=f"yunpipe-demo-{STEP}")["taskArns"]
    assert len(tasks) == 2


def test_retry_moves_only_what_was_dead_lettered_when_it_started(deployed, monkeypatch, capsys):
    """A worker still running the broken code fails each retried file at once, back into the
    dead-letter queue: retry must not chase those round and round."""
    for body in DEAD[:3]:
        sqs().send_message(QueueUrl=url(DLQ), MessageBody=body)
    real_send = backfill.send_batch

    def send_and_fail_again(client, queue_url, bodies):
        errors = real_send(client, queue_url, bodies)
        for body in bodies:
            sqs().send_message(QueueUrl=url(DLQ), MessageBody=body)
        return errors
    monkeypatch.setattr(backfill, "send_batch", send_and_fail_again)
    capsys.readouterr()
    status, _ = run(["retry", "demo"])
    assert status == 0
    assert f"step {STEP}: moved 3 message(s)" in capsys.readouterr().out
    assert counts(DLQ)[0] == 3 and sorted(drain(QUEUE)) == sorted(DEAD[:3])


def test_retry_stops_the_tasks_started_from_an_older_task_definition(deployed, capsys):
    ecs, awslambda = boto3.client("ecs", region_name=REGION), boto3.client("lambda", region_name=REGION)
    family = f"yunpipe-demo-{STEP}-task"
    config = contract.LauncherConfig.from_env(awslambda.get_function_configuration(FunctionName=LAUNCHER)["Environment"]["Variables"])
    old = ecs.run_task(**run_task_params(config, 1))["tasks"][0]["taskArn"]
    # The fix: setup-pipe registered a new revision (here by hand, the same definition).
    current = ecs.describe_task_definition(taskDefinition=family)["taskDefinition"]
    keep = ("family", "taskRoleArn", "executionRoleArn", "networkMode", "containerDefinitions",
            "requiresCompatibilities", "cpu", "memory")
    ecs.register_task_definition(**{k: current[k] for k in keep})
    new = ecs.run_task(**run_task_params(config, 1))["tasks"][0]["taskArn"]
    capsys.readouterr()
    assert cli.main(["retry", "demo"]) == 0
    statuses = {t["taskArn"]: t["desiredStatus"] for t in ecs.describe_tasks(cluster=config.cluster,
                                                                              tasks=[old, new])["tasks"]}
    assert statuses == {old: "STOPPED", new: "RUNNING"}
    assert f"step {STEP}: stopped 1 task(s) started from an older task definition" in capsys.readouterr().out


def test_results_of_an_intermediate_step(two_steps, capsys):
    put_objects(f"yunpipe-seq-step-a-out-{ACCOUNT}", ["a.txt"])
    put_objects("seq-out-bucket", ["final.txt"])
    capsys.readouterr()
    assert cli.main(["results", "seq", "--step", "step-a"]) == 0
    out = capsys.readouterr().out
    assert "a.txt" in out and "final.txt" not in out and f"1 result(s) in s3://yunpipe-seq-step-a-out-{ACCOUNT}" in out
    assert cli.main(["results", "seq"]) == 0
    assert "final.txt" in capsys.readouterr().out
    assert cli.main(["results", "seq", "--step", "step-z"]) == 2
    assert "results: --step: expected one of the pipeline's steps (step-a, step-b), got 'step-z'" in \
        capsys.readouterr().err


def test_retry_with_no_dead_letter_wakes_the_launcher_only_for_what_waits_in_the_queue(deployed, capsys):
    """Files stranded in the queue with no worker: a second retry starts them, not the schedule."""
    assert run(["retry", "demo"]) == (0, [])
    assert "wait in" not in capsys.readouterr().out
    sqs().send_message(QueueUrl=url(QUEUE), MessageBody=DEAD[0])
    status, calls = run(["retry", "demo"])
    assert (status, calls) == (0, [("lambda", "Invoke")])
    out = capsys.readouterr().out
    assert "moved 0 message(s)" in out and f"1 message(s) wait in {QUEUE}; invoked launcher {LAUNCHER}" in out


def test_retry_says_the_step_runs_an_older_version_than_the_newest_and_how_to_move_it(deployed, capsys):
    newer = AlgorithmRegistry().record(load_algorithm("examples/change123/change123-s3.json"), "user/change123-s3:2")
    capsys.readouterr()
    assert run(["retry", "demo"])[0] == 0
    out = capsys.readouterr().out
    assert (f"warning: step {STEP} runs {STEP}@1, but {newer.reference} is the newest recorded: its retried files run "
            f"{STEP}@1 again. To move the step, run setup-pipe again") in out
    assert f"write {newer.reference}, or {STEP} for the newest" in out


def test_retry_moves_nothing_while_an_outdated_worker_is_still_stopping(deployed, monkeypatch, capsys):
    """A stopping worker still receives: retry waits until it has exited, and refuses past its wait."""
    ecs = boto3.client("ecs", region_name=REGION)
    awslambda = boto3.client("lambda", region_name=REGION)
    config = contract.LauncherConfig.from_env(awslambda.get_function_configuration(FunctionName=LAUNCHER)["Environment"]["Variables"])
    old = ecs.run_task(**run_task_params(config, 1))["tasks"][0]["taskArn"]
    family = f"yunpipe-demo-{STEP}-task"
    current = ecs.describe_task_definition(taskDefinition=family)["taskDefinition"]
    ecs.register_task_definition(**{k: current[k] for k in ("family", "taskRoleArn", "executionRoleArn", "networkMode",
                                                             "containerDefinitions", "requiresCompatibilities", "cpu", "memory")})
    for body in DEAD[:2]:
        sqs().send_message(QueueUrl=url(DLQ), MessageBody=body)
    monkeypatch.setattr(backfill, "STOP_WAIT_SECONDS", 0)
    # Its containers never exit: the task stays STOPPING, as on ECS (and as on the local cloud,
    # moto's state manager does not move it on by itself).
    state_manager.set_transition("ecs::task", ECS_TASK_TRANSITION)
    try:
        with stop_task_deferred(lambda arn: True):
            assert cli.main(["retry", "demo"]) == 1
        assert ecs.describe_tasks(cluster=config.cluster, tasks=[old])["tasks"][0]["lastStatus"] == "STOPPING"
    finally:
        state_manager.unset_transition("ecs::task")
    assert "still stopping after 0 s" in capsys.readouterr().err
    assert counts(DLQ) == (2, 0) and counts(QUEUE) == (0, 0)


REPORT = f"failures/demo/{STEP}/k0/attempt-3.json"


@pytest.fixture
def dead_lettered(deployed):
    """Three dead letters of pipeline demo, and the failure report of one."""
    for body in DEAD[:3]:
        sqs().send_message(QueueUrl=url(DLQ), MessageBody=body)
    bucket = next(b["Name"] for b in boto3.client("s3", region_name=REGION).list_buckets()["Buckets"]
                  if b["Name"].startswith("yunpipe-demo-reports"))
    boto3.client("s3", region_name=REGION).put_object(Bucket=bucket, Key=REPORT, Body=b"{}")
    return bucket


def test_retry_discard_drops_the_dead_letters_and_keeps_their_reports(dead_lettered, capsys):
    capsys.readouterr()
    assert run(["retry", "demo", "--discard", "--yes"]) == (0, [])
    assert counts(DLQ) == (0, 0) and counts(QUEUE) == (0, 0)
    assert f"step {STEP}: discarded 3 message(s) from {DLQ}; their failure reports stay" in capsys.readouterr().out
    boto3.client("s3", region_name=REGION).head_object(Bucket=dead_lettered, Key=REPORT)


def test_retry_discard_without_a_terminal_wants_yes_and_discards_nothing(dead_lettered, monkeypatch, capsys):
    monkeypatch.setattr("sys.stdin.isatty", lambda: False)
    assert run(["retry", "demo", "--discard"]) == (2, [])
    err = capsys.readouterr().err
    assert "retry --discard: --yes: expected --yes to discard without a terminal" in err and f"3 in {DLQ}" in err
    assert counts(DLQ) == (3, 0)


def test_retry_discard_asks_first_on_a_terminal(dead_lettered, monkeypatch, capsys):
    monkeypatch.setattr("sys.stdin.isatty", lambda: True)
    answers, asked = ["", "y"], []
    monkeypatch.setattr("builtins.input", lambda prompt: asked.append(prompt) or answers.pop(0))
    assert run(["retry", "demo", "--discard"])[0] == 1
    out = capsys.readouterr().out
    assert f"reports: s3://{dead_lettered}/failures/demo/{STEP}/" in out and "Nothing was discarded." in out
    assert sum(counts(DLQ)) == 3
    assert run(["retry", "demo", "--discard"])[0] == 0
    assert asked == ["Discard them? [y/N] "] * 2
    assert sum(counts(DLQ)) == 0


def test_retry_yes_is_for_discard_which_asks_nothing_without_dead_letters(deployed, capsys):
    assert run(["retry", "demo", "--yes"]) == (2, [])
    assert "retry: --yes: expected only with --discard" in capsys.readouterr().err
    assert run(["retry", "demo", "--discard"]) == (0, [])
    assert "No dead letter to discard." in capsys.readouterr().out
