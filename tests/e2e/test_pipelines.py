"""End to end: wrapped images, setup-pipe, files dropped into S3, results read back.

Each test deploys its own pipeline through the CLI (see conftest.py) and checks what a user
gets out of it with an independent boto3 client and the Docker SDK.
"""
import hashlib
import json
import threading

import docker.errors
import pytest

from .helpers import run_ok, wait_until, write_inputs

pytestmark = pytest.mark.e2e


def upload(pipeline, folder):
    run_ok("upload", "--local", pipeline.name, str(folder))


def test_single_run_upper_cases_every_file(pipeline, tmp_path):
    uppercase = pipeline([{"name": "uppercase"}], idle_seconds=5)
    inputs = {
        "hello.txt": "hello, world\n",
        # Event keys arrive URL-encoded ('+' for a space): the result keeps the real key.
        "with space.txt": "a key with a space\nsecond line\n",
        "nested/deeper/notes.txt": "nested prefixes are kept\n",
    }
    upload(uppercase, write_inputs(tmp_path / "in", inputs))
    uppercase.wait_for_results({key: text.upper().encode() for key, text in inputs.items()}, timeout=90)


def test_sequence_run_chains_uppercase_tester_checksum(pipeline, tmp_path):
    chain = pipeline([{"name": "uppercase"}, {"name": "tester", "variables": {"STAMP": "e2e-stamp"}},
                      {"name": "checksum"}], idle_seconds=5)
    # No line may upper-case to FAIL or start with SLEEP: tester would fail or sleep.
    inputs = {f"doc-{index}.txt": f"document {index}\nsome text for step {index}\n" for index in range(4)}
    inputs["sub dir/last one.txt"] = "three steps, one result\n"
    upload(chain, write_inputs(tmp_path / "in", inputs))

    def expected(text: str) -> bytes:
        stamped = f"{text.upper().rstrip()}\n-- e2e-stamp\n"
        return f"{hashlib.sha256(stamped.encode()).hexdigest()}\n".encode()
    chain.wait_for_results({key: expected(text) for key, text in inputs.items()}, timeout=150)


def test_an_upload_whose_event_lambda_drops_is_still_processed(pipeline, strict, tmp_path):
    """The strict layer throttles the upload's event beyond its maximum age, as a long burst at
    reserved concurrency 1 would: Lambda puts its record in the launcher's failed-events queue,
    and the launcher's next scheduled run (every 3 s here) queues the file."""
    lost = pipeline([{"name": "uppercase"}], idle_seconds=5)
    strict.throttle(lost.step(0).function)
    upload(lost, write_inputs(tmp_path / "in", {"late.txt": "throttled, then recovered\n"}))
    lost.wait_for_results({"late.txt": b"THROTTLED, THEN RECOVERED\n"}, timeout=90)
    assert [r.detail for r in strict.refusals if r.rule == "lambda-throttled-event-to-destination"] == [
        f"{lost.step(0).function}: late.txt -> arn:aws:sqs:{lost.summary.region}:{lost.summary.account_id}:"
        f"{lost.step(0).failed_events_queue}"]


class Sampler(threading.Thread):
    """Samples, every half second, how many tasks ECS runs for a step and how many of the
    pipeline's containers Docker runs: the launcher's cap is about both."""

    def __init__(self, pipeline, step: int):
        super().__init__(daemon=True)
        self.pipeline, self.step = pipeline, step
        self.most_tasks = self.most_containers = 0
        self.container_tasks: set[str] = set()
        self.done = threading.Event()
        self.error: Exception | None = None

    def run(self):
        try:
            while not self.done.wait(0.5):
                self.most_tasks = max(self.most_tasks, len(self.pipeline.tasks(self.step, "RUNNING")))
                running = self.pipeline.containers()
                self.most_containers = max(self.most_containers, len(running))
                self.container_tasks.update(self.pipeline.task_of(c) for c in running)
        except Exception as exc:  # noqa: BLE001 - reported by the test, not lost in a thread
            self.error = exc


def test_burst_of_200_files_each_has_its_result_and_workers_stay_capped(pipeline, tmp_path):
    cap = 3
    burst = pipeline([{"name": "uppercase", "concurrency": cap}], idle_seconds=5)
    inputs = {f"burst/file-{index:03d}.txt": f"file number {index}\n" for index in range(200)}
    folder = write_inputs(tmp_path / "in", inputs)
    sampler = Sampler(burst, 0)
    sampler.start()
    try:
        upload(burst, folder)
        burst.wait_for_results({key: text.upper().encode() for key, text in inputs.items()}, timeout=240)
    finally:
        sampler.done.set()
        sampler.join()
    assert sampler.error is None, f"sampling failed: {sampler.error!r}"
    started = burst.tasks(0, "RUNNING") + burst.tasks(0, "STOPPED")
    assert 1 <= len(started) <= 3 * cap, f"{len(started)} tasks started for 200 files with concurrency {cap}"
    assert sampler.most_tasks <= cap, f"ECS ran {sampler.most_tasks} tasks of the step at once (cap {cap})"
    assert sampler.most_containers <= cap, f"Docker ran {sampler.most_containers} containers at once (cap {cap})"
    assert sampler.container_tasks <= set(started), "containers ran for tasks the step never started"


def test_failing_inputs_end_in_the_dead_letter_queue_with_a_report(pipeline, aws, tmp_path):
    tester = pipeline([{"name": "tester", "max_receive_count": 2}], idle_seconds=5, visibility_timeout_seconds=5)
    good = {f"good-{index}.txt": f"fine input {index}\n" for index in range(5)}
    bad = {"bad-one.txt": "first line\nFAIL\n", "bad two.txt": "FAIL\n"}
    upload(tester, write_inputs(tmp_path / "in", {**good, **bad}))
    step = tester.step(0)
    sqs = aws("sqs")
    dlq = sqs.get_queue_url(QueueName=step.dead_letter_queue)["QueueUrl"]

    def dead_letters():
        count = int(sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["ApproximateNumberOfMessages"])
                    ["Attributes"]["ApproximateNumberOfMessages"])
        return None if count == len(bad) else f"{count} of {len(bad)} failing inputs in the dead-letter queue"
    wait_until(dead_letters, timeout=150, explain=tester.diagnosis)
    tester.wait_for_results({key: f"{text.rstrip()}\n-- tested\n".encode() for key, text in good.items()}, timeout=60)

    shown = run_ok("status", tester.name, "--local")
    for key in bad:
        line = next((line for line in shown.splitlines() if f"failed {key} " in line and "(final try)" in line), None)
        assert line is not None, f"no final-try failure of {key!r} in `yunpipe status`:\n{shown}"
        assert "nonzero_exit" in line and "exit 3" in line, line
        assert "attempt 2" in line, line

    # The dead letters are the failing inputs' own messages, and their last report says so.
    messages = sqs.receive_message(QueueUrl=dlq, MaxNumberOfMessages=10, WaitTimeSeconds=1)["Messages"]
    assert sorted(json.loads(m["Body"])["key"] for m in messages) == sorted(bad)
    s3 = aws("s3")
    for key in bad:
        report_key = f"failures/{tester.name}/{step.name}/{key}/attempt-2.json"
        report = json.loads(s3.get_object(Bucket=tester.summary.reports_bucket, Key=report_key)["Body"].read())
        assert (report["reason"], report["exit_code"], report["final"]) == ("nonzero_exit", 3, True), report
        assert "asks to fail" in report["stderr_tail"], report


def test_killed_worker_file_is_still_processed(pipeline, aws, tmp_path):
    # A 10 s visibility timeout: the killed job's message is offered again 10 s after the kill.
    slow = pipeline([{"name": "tester"}], idle_seconds=5, visibility_timeout_seconds=10)
    text = "SLEEP 8\nslow payload\n"
    upload(slow, write_inputs(tmp_path / "in", {"slow.txt": text}))

    victim = {}

    def job_running():
        for container in slow.containers():
            try:
                processes = container.top().get("Processes") or []
            except docker.errors.APIError:
                continue  # it exited between the listing and now
            # tester.py is a child of the runscript only while the job runs.
            if any("tester.py" in " ".join(row) for row in processes):
                victim["container"] = container
                return None
        return "no worker container running tester.py yet"
    wait_until(job_running, timeout=90, interval=0.5, explain=slow.diagnosis)
    killed_task = slow.task_of(victim["container"])
    victim["container"].kill()

    # Offered again after 10 s, picked up by the next scheduled top-up (3 s), then an 8 s job:
    # 75 s is ample for that, and short of the 120 s a worker holds a message by default.
    slow.wait_for_results({"slow.txt": f"{text.rstrip()}\n-- tested\n".encode()}, timeout=75)
    ecs = aws("ecs")
    stopped = ecs.describe_tasks(cluster=slow.summary.cluster, tasks=[killed_task])["tasks"][0]
    assert "137" in stopped.get("stoppedReason", ""), f"the killed task was not stopped as killed: {stopped}"
    others = set(slow.tasks(0, "RUNNING") + slow.tasks(0, "STOPPED")) - {killed_task}
    assert others, "no other worker was started for the killed job"


def test_clean_up_purge_leaves_nothing_of_the_pipeline(pipeline, aws, tmp_path):
    # Workers idle for a minute, so clean-up meets a running one and must stop it.
    doomed = pipeline([{"name": "uppercase"}, {"name": "checksum"}], idle_seconds=60)
    inputs = {"one.txt": "one\n", "two.txt": "two\n"}
    upload(doomed, write_inputs(tmp_path / "in", inputs))
    expected = {key: f"{hashlib.sha256(text.upper().encode()).hexdigest()}\n".encode() for key, text in inputs.items()}
    doomed.wait_for_results(expected, timeout=120)
    assert doomed.containers(), "precondition: a worker should still be idling"
    buckets = {doomed.input_bucket, doomed.output_bucket, doomed.summary.reports_bucket,
               *(s.output_bucket for s in doomed.summary.steps)}

    run_ok("clean-up", "--local", "--purge", doomed.name)

    name = doomed.name
    tagged = [m["ResourceARN"] for page in aws("resourcegroupstaggingapi").get_paginator("get_resources").paginate(
        TagFilters=[{"Key": "yunpipe:pipeline", "Values": [name]}]) for m in page["ResourceTagMappingList"]]
    # Tasks carry the pipeline's tags (propagateTags, for cost allocation); a stopped task is no
    # resource to delete: ECS forgets it after an hour. Clean-up has stopped every one (each exits
    # within its stop timeout, after clean-up returns).
    tasks = [arn for arn in tagged if ":task/" in arn]
    assert [arn for arn in tagged if arn not in tasks] == [], f"still tagged yunpipe:pipeline={name}: {tagged}"
    if tasks:
        cluster = tasks[0].split(":task/")[1].split("/")[0]
        described = aws("ecs").describe_tasks(cluster=cluster, tasks=tasks)["tasks"]
        assert {t["desiredStatus"] for t in described} == {"STOPPED"}, described
    iam = aws("iam")
    roles = [r["RoleName"] for r in iam.list_roles(PathPrefix="/yunpipe/")["Roles"]
             if {"Key": "yunpipe:pipeline", "Value": name} in iam.list_role_tags(RoleName=r["RoleName"])["Tags"]
             or r["RoleName"].startswith(f"yunpipe-{name}-")]
    assert roles == [], f"roles left: {roles}"
    queues = aws("sqs").list_queues(QueueNamePrefix=f"yunpipe-{name}-").get("QueueUrls", [])
    assert queues == [], f"queues left: {queues}"
    functions = [f["FunctionName"] for f in aws("lambda").list_functions()["Functions"]
                 if f["FunctionName"].startswith(f"yunpipe-{name}-")]
    assert functions == [], f"functions left: {functions}"
    rules = aws("events").list_rules(NamePrefix=f"yunpipe-{name}-")["Rules"]
    assert rules == [], f"rules left: {rules}"
    left = buckets & {b["Name"] for b in aws("s3").list_buckets()["Buckets"]}
    assert left == set(), f"buckets left: {left}"
    ecs = aws("ecs")
    active = [arn for step in doomed.summary.steps
              for arn in ecs.list_task_definitions(familyPrefix=step.task_family, status="ACTIVE")["taskDefinitionArns"]]
    assert active == [], f"active task definitions left: {active}"

    def no_containers():
        running = [c.name for c in doomed.containers()]
        return f"containers still running: {running}" if running else None
    wait_until(no_containers, timeout=30)


def test_a_step_s_secret_reaches_the_algorithm_by_reference(pipeline, aws, tmp_path):
    """The value sits in the local cloud's SSM; the task definition names it only, and the
    task's container gets it (the local ECS runner resolves it as ECS does). The algorithm is
    this test's own (on the offline base image), so no shared test image changes."""
    description = tmp_path / "secret-echo.json"
    description.write_text(json.dumps({
        "name": "secret-echo", "container_name": "yunpipe/base:bookworm", "system": "debian",
        "run_command": "sh -c 'cat $input > $output && echo \"-- $SECRET_STAMP\" >> $output'"}))
    run_ok("wrap", "--local", "--yes", "-f", str(description))
    aws("ssm").put_parameter(Name="/e2e/stamp", Value="s3cr3t-stamp", Type="SecureString")
    stamped = pipeline([{"name": "secret-echo", "secrets": [{"name": "SECRET_STAMP", "valueFrom": "/e2e/stamp"}]}],
                       idle_seconds=5)
    definition = aws("ecs").describe_task_definition(taskDefinition=stamped.step(0).task_family)
    assert definition["taskDefinition"]["containerDefinitions"][0]["secrets"] == [
        {"name": "SECRET_STAMP", "valueFrom": "/e2e/stamp"}]
    upload(stamped, write_inputs(tmp_path / "in", {"a.txt": "a\n"}))
    stamped.wait_for_results({"a.txt": b"a\n-- s3cr3t-stamp\n"}, timeout=90)
