"""End to end: the loop a researcher lives in. Some files fail into the dead-letter queue; the
algorithm is fixed (a new version wrapped), the pipeline set up again, the failed files retried;
they are all done within seconds, by the new version only.

The step's scheduled top-up is switched off before the retry, so nothing but retry itself can
start a worker: a file that waits for a worker would wait for ever, and the test fails at its
bound instead of passing on the schedule (sped up 100 times in this suite). What retry says of a
step running an older version than the newest is tested on moto (tests/test_backfill.py).
"""
import json
import time

import pytest

from yunpipe.registry import AlgorithmRegistry

from .conftest import ALGORITHM_FOLDERS
from .helpers import run_ok, wait_until, write_inputs

pytestmark = pytest.mark.e2e

# From `retry` to the last retried result: the old workers exit (within their 5 s receive wait),
# the launcher starts a current one (a second or two), which runs four quick jobs: 4 to 10 s.
RETRY_BOUND_SECONDS = 60


def wrap_picky(folder, refuse: str) -> str:
    """picky: the tester image under another name, refusing inputs with a `refuse` line by
    default; wrapped, it is a new version of picky. Returns NAME@VERSION."""
    document = json.loads((ALGORITHM_FOLDERS["tester"] / "tester.json").read_text())
    document["name"], document["description"] = "picky", "tester, refusing what REFUSE names by default"
    for variable in document["user_specified_environment_variables"]:
        if variable["name"] == "REFUSE":
            variable["schema"]["default"] = refuse
    path = folder / f"picky-{refuse}.json"
    path.write_text(json.dumps(document))
    run_ok("wrap", "--local", "--yes", "-f", str(path))
    return AlgorithmRegistry().get("picky").reference


def dead_letter_count(sqs, url: str) -> int:
    return int(sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])
               ["Attributes"]["ApproximateNumberOfMessages"])


def test_fix_redeploy_retry_runs_every_failed_file_on_the_new_version_within_seconds(
        pipeline, algorithms, aws, tmp_path):
    broken = wrap_picky(tmp_path, "FAIL")
    # Workers idle a minute: the broken version's are still there at the retry, as a user meets them.
    picky = pipeline([{"name": "picky", "max_receive_count": 1}], idle_seconds=60)
    step = picky.step(0)
    good = {f"good-{index}.txt": f"fine input {index}\n" for index in range(3)}
    bad = {f"bad-{index}.txt": f"input {index}\nFAIL\n" for index in range(4)}
    run_ok("upload", "--local", picky.name, str(write_inputs(tmp_path / "in", {**good, **bad})))
    sqs = aws("sqs")
    dlq = sqs.get_queue_url(QueueName=step.dead_letter_queue)["QueueUrl"]

    def all_dead_lettered():
        count = dead_letter_count(sqs, dlq)
        return None if count == len(bad) else f"{count} of {len(bad)} failing inputs in the dead-letter queue"
    wait_until(all_dead_lettered, timeout=90, explain=picky.diagnosis)
    expected = {key: f"{text.rstrip()}\n-- tested\n".encode() for key, text in {**good, **bad}.items()}
    picky.wait_for_results({key: expected[key] for key in good}, timeout=60)

    fixed = wrap_picky(tmp_path, "NOTHING")
    assert fixed != broken

    # The workflow says 'picky' (the newest): setup-pipe moves the step to the fix, warning nothing.
    workflow = next(tmp_path.glob(f"{picky.name}.json"))
    out = run_ok("setup-pipe", "--local", "-f", str(workflow))
    assert "warning" not in out, out
    old_tasks = picky.tasks(0, "RUNNING")
    assert old_tasks, "precondition: the broken version's workers should still idle"
    events = aws("events")
    [rule] = [r["Name"] for r in events.list_rules(NamePrefix=f"yunpipe-{picky.name}-")["Rules"]
              if r.get("ScheduleExpression")]
    events.disable_rule(Name=rule)

    started = time.monotonic()
    out = run_ok("retry", "--local", picky.name)
    returned = time.monotonic() - started
    assert "warning" not in out, out
    assert f"step {step.name}: stopped {len(old_tasks)} task(s) started from an older task definition" in out, out
    assert f"moved {len(bad)} message(s)" in out, out
    picky.wait_for_results(expected, timeout=RETRY_BOUND_SECONDS)
    elapsed = time.monotonic() - started
    print(f"\nretry to the last retried result: {elapsed:.1f} s (bound {RETRY_BOUND_SECONDS} s; retry itself, "
          f"which waits for the old workers to exit: {returned:.1f} s)")

    s3 = aws("s3")
    for key in bad:
        metadata = s3.head_object(Bucket=picky.output_bucket, Key=key)["Metadata"]
        assert metadata["yunpipe-algorithm"] == fixed, (key, metadata)
    assert dead_letter_count(sqs, dlq) == 0
    ecs = aws("ecs")
    stopped = ecs.describe_tasks(cluster=picky.summary.cluster, tasks=old_tasks)["tasks"]
    assert {task["lastStatus"] for task in stopped} == {"STOPPED"}, stopped
    old_ids = {arn.rsplit("/", 1)[-1] for arn in old_tasks}
    assert not [c for c in picky.containers() if picky.task_of(c).rsplit("/", 1)[-1] in old_ids]

    # With no worker left and no schedule, a file waiting in the queue is started by a retry
    # whose dead-letter queue is empty.
    current = picky.tasks(0, "RUNNING")
    for arn in current:
        ecs.stop_task(cluster=picky.summary.cluster, task=arn, reason="test: no worker left")

    def no_worker():
        return f"{len(picky.containers())} worker container(s) still running" if picky.containers() else None
    wait_until(no_worker, timeout=60)
    key = "bad-0.txt"
    s3.delete_object(Bucket=picky.output_bucket, Key=key)
    head = s3.head_object(Bucket=picky.input_bucket, Key=key)
    sqs.send_message(QueueUrl=sqs.get_queue_url(QueueName=step.queue)["QueueUrl"], MessageBody=json.dumps(
        {"bucket": picky.input_bucket, "key": key, "etag": head["ETag"].strip('"'), "size": head["ContentLength"],
         "pipeline": picky.name, "step": step.name}))
    out = run_ok("retry", "--local", picky.name)
    assert "moved 0 message(s)" in out and "1 message(s) wait" in out, out
    picky.wait_for_results(expected, timeout=RETRY_BOUND_SECONDS)
