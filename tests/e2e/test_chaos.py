"""End to end under faults (the short version of bench/chaos.py): 30 files and one poison file go
through two steps (tester, then checksum) while the local cloud kills worker containers, fails
launcher invocations before they send and stops answering S3 for a few seconds. Every good file's
result is there exactly once, correct, with the provenance of both steps; the poison file, and it
only, is in the dead-letter queue; only the poison file failed a try (the workers' S3 calls
outlast the outage); every job has its final record; the failed launcher events were all tried
again or recovered; every worker not killed on purpose exited 0. About 60 s on top of the suite's
fixtures (2 minutes on a loaded machine).
"""
import collections
import hashlib
import json
import time

import pytest
from helpers import job_records

from yunpipe.local.faults import FaultPlan
from yunpipe.registry import AlgorithmRegistry

from .conftest import ALGORITHM_FOLDERS
from .helpers import run_ok, wait_until, write_inputs

pytestmark = pytest.mark.e2e

FILES = 30
IDLE_SECONDS = 8
# Seed 9: the first worker container seen is doomed, and among the first five launcher runs one fails.
PLAN = dict(seed=9, kill_fraction=0.3, kill_within_seconds=IDLE_SECONDS, launcher_failure_rate=0.2)
# Once the first result is in (the upload is over: the CLI would fail in an outage, as any S3 client
# does), S3 stops answering.
S3_OUTAGE_SECONDS = 3
CLEAN_EXIT = "Essential container exited with code 0"
KILLED_EXIT = "Essential container exited with code 137"


def wrap_own(folder, name: str) -> str:
    """`name`'s image wrapped again as chaos-<name>: wrapped images are tagged by name on the one
    Docker daemon that other test runs share, and this test must run this tree's worker."""
    document = json.loads((ALGORITHM_FOLDERS[name] / f"{name}.json").read_text())
    document["name"] = f"chaos-{name}"
    path = folder / f"chaos-{name}.json"
    path.write_text(json.dumps(document))
    run_ok("wrap", "--local", "--yes", "-f", str(path))
    return AlgorithmRegistry().get(f"chaos-{name}").reference


def queued(sqs, name: str) -> int:
    url = sqs.get_queue_url(QueueName=name)["QueueUrl"]
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=[
        "ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"])["Attributes"]
    return sum(int(value) for value in attributes.values())


def test_under_killed_workers_failing_launchers_and_an_s3_outage_every_result_arrives_once_and_right(
        pipeline, local_cloud, algorithms, aws, tmp_path):
    steps = [{"name": wrap_own(tmp_path, name)} for name in ("tester", "checksum")]
    chaos = pipeline(steps, idle_seconds=IDLE_SECONDS,
                     visibility_timeout_seconds=10)
    first, last = chaos.summary.steps
    # Each job takes a second: jobs are in flight when S3 stops answering.
    good = {f"good-{index:02d}.txt": f"SLEEP 1\nfile {index}\n" + "words " * index + "\n" for index in range(FILES)}
    poison = {"poison.txt": "this one\nFAIL\n"}
    cluster = f"arn:aws:ecs:{chaos.summary.region}:{chaos.summary.account_id}:cluster/{chaos.summary.cluster}"
    sqs, s3 = aws("sqs"), aws("s3")
    with local_cloud.inject_faults(FaultPlan(**PLAN, cluster=cluster)) as counts:
        run_ok("upload", "--local", chaos.name, str(write_inputs(tmp_path / "in", {**good, **poison})))

        def first_result():
            return None if s3.list_objects_v2(Bucket=first.output_bucket).get("KeyCount") else "no result yet"
        wait_until(first_result, timeout=120, interval=0.2, explain=chaos.diagnosis)
        _, back = local_cloud.faults.stop_s3(S3_OUTAGE_SECONDS)
        # This test's own listing is no more patient than a worker's: it looks once S3 is back.
        time.sleep(max(0.0, back - time.monotonic()))
        expected = {key: hashlib.sha256(f"{text.rstrip()}\n-- tested\n".encode()).hexdigest().encode() + b"\n"
                    for key, text in good.items()}
        chaos.wait_for_results(expected, timeout=240)

        def poison_dead_lettered():
            return None if queued(sqs, first.dead_letter_queue) == 1 else "the poison file not dead-lettered yet"
        wait_until(poison_dead_lettered, timeout=120, explain=chaos.diagnosis)
    # Every fault happened.
    assert counts.containers_killed >= 1 and counts.launcher_failures >= 1 and counts.s3_refused >= 1, counts

    dlq = sqs.get_queue_url(QueueName=first.dead_letter_queue)["QueueUrl"]
    [dead] = sqs.receive_message(QueueUrl=dlq, VisibilityTimeout=60)["Messages"]
    assert '"poison.txt"' in dead["Body"]
    assert queued(sqs, last.dead_letter_queue) == 0
    assert all(queued(sqs, step.failed_events_queue) == 0 for step in chaos.summary.steps)

    # Accounting: one final record per file per step (the poison file's in the first step only).
    records = job_records(s3, chaos.summary.reports_bucket, f"runs/{chaos.name}/")
    ends = collections.Counter(key.split("/ends/")[1].rsplit(".json", 1)[0] for key in records if "/ends/" in key)
    wanted = collections.Counter([f"{step.name}/{key}" for step in (first, last) for key in good]
                                 + [f"{first.name}/poison.txt"])
    assert ends == wanted, (f"missing {sorted(wanted - ends)[:5]}, extra {sorted(ends - wanted)[:5]}\n"
                            + chaos.diagnosis())
    # Only the poison file failed a try: the workers outlasted the S3 outage instead of failing their
    # jobs (a killed worker's job leaves no record; a try whose task was stopped, by the launcher
    # above its cap say, is `interrupted` and handed back: not the file's failure).
    failed = {}
    for key, record in records.items():
        if "/tries/" in key and record["outcome"] != "interrupted":
            failed[key.split("/tries/")[1].split("/")[1]] = (record["outcome"], record.get("reason"))
    assert set(failed) == {"poison.txt"}, failed

    # Provenance: each result names its step, its input, and that input's ETag.
    for key, text in good.items():
        middle = s3.head_object(Bucket=first.output_bucket, Key=key)
        result = s3.head_object(Bucket=last.output_bucket, Key=key)
        for obj, step, source_etag in ((middle, first, hashlib.md5(text.encode()).hexdigest()),
                                       (result, last, middle["ETag"].strip('"'))):
            meta = obj["Metadata"]
            assert (meta["yunpipe-pipeline"], meta["yunpipe-step"], meta["yunpipe-input"],
                    meta["yunpipe-input-etag"].strip('"'), bool(meta.get("yunpipe-run"))) == (
                chaos.name, step.name, f"s3://{step.input_bucket}/{key}", source_etag, True), (key, step.name, meta)

    # Workers: the killed ones exited 137, every other one 0 (none crashed on an S3 error).
    def workers_gone():
        running = chaos.tasks(0, "RUNNING") + chaos.tasks(1, "RUNNING")
        return f"{len(running)} workers still running" if running else None
    wait_until(workers_gone, timeout=IDLE_SECONDS + 60, explain=chaos.diagnosis)
    ecs = aws("ecs")
    stopped = chaos.tasks(0, "STOPPED") + chaos.tasks(1, "STOPPED")
    reasons = collections.Counter(task.get("stoppedReason") for start in range(0, len(stopped), 100)
                                  for task in ecs.describe_tasks(cluster=chaos.summary.cluster,
                                                                 tasks=stopped[start:start + 100])["tasks"])
    assert reasons.pop(KILLED_EXIT, 0) == counts.containers_killed
    assert set(reasons) == {CLEAN_EXIT}, reasons
