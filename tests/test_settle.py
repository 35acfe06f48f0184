"""Settling runs (yunpipe/runtime/accounting/settle.py) on moto's S3, SQS and SNS: a run settles
once every job it should have has an outcome, exactly once, and not before. The job records are
written as the worker writes them (records.job_record at records.job_record_key)."""
import dataclasses
import json
import logging
import threading
from datetime import datetime, timedelta, timezone

import boto3
import pytest
from helpers import REGION

from yunpipe.runtime.accounting import cost, records, runs, settle
from yunpipe.runtime.accounting.records import job_record, job_record_key
from yunpipe.runtime.accounting.settle import settle_open_runs
from yunpipe.runtime.accounting.summary import percentile

BUCKET = "demo-reports"
PIPELINE = "demo"
T0 = datetime(2026, 12, 7, 13, 0, 0, tzinfo=timezone.utc)


def step(name, sources=(("input", "in-bucket"),), downstream=(), *, join=False, triggered=True, prefix="", suffix="",
         max_receive_count=3, memory_mib=512):
    return {"name": name, "sources": [{"step": s, "bucket": b} for s, b in sources], "downstream": list(downstream),
            "entry": any(s == "input" for s, _ in sources), "triggered": triggered, "join": join,
            "gather": not triggered, "marker": "", "prefix": prefix, "suffix": suffix, "cpu": 256,
            "memory_mib": memory_mib, "max_receive_count": max_receive_count, "output_bucket": f"{name}-out",
            "queue": f"yunpipe-demo-{name}-queue", "failed_events_queue": f"yunpipe-demo-{name}-launcher-failed"}


CHAIN = [step("a", downstream=["b"]), step("b", sources=[("a", "a-out")])]


@pytest.fixture
def aws(moto):
    s3 = boto3.client("s3", region_name=REGION)
    s3.create_bucket(Bucket=BUCKET)
    settle._bodies.clear()
    settle._queue_urls.clear()
    runs._cache.clear()  # a worker's memory of drop.json, from another test's moto
    return s3


def describe(s3, steps, topic_arn="", quiet=60):
    descriptor = {"version": 1, "pipeline": PIPELINE, "region": REGION, "accounting": True,
                  "run_quiet_seconds": quiet, "topic_arn": topic_arn, "steps": steps}
    s3.put_object(Bucket=BUCKET, Key=records.pipeline_key(PIPELINE), Body=json.dumps(descriptor).encode())


def open_run(s3, keys, kind="upload", steps=None, serial=1):
    run = records.run_id(kind, T0, serial)
    manifest = {"version": 1, "run": run, "pipeline": PIPELINE, "kind": kind, "opened_at": T0.isoformat(),
                "inputs": [{"bucket": "in-bucket", "key": k} for k in keys], "closes_after": None, "by": "test"}
    if steps:
        manifest["steps"] = steps
    assert runs.write_manifest(s3, BUCKET, PIPELINE, manifest)
    return run


def job(s3, run, step_name, key, outcome="ok", results=None, attempt=1, final=None, wall=2.0, task="t1", **extra):
    final = outcome in records.DONE_OUTCOMES or attempt == 3 if final is None else final
    record = job_record(pipeline=PIPELINE, run=run, step=step_name, key=key, outcome=outcome, attempt=attempt,
                        final=final, results=[key] if results is None and outcome == "ok" else (results or []),
                        started_at=(T0 + timedelta(seconds=10)).isoformat(),
                        finished_at=(T0 + timedelta(seconds=10 + wall)).isoformat(), wall_seconds=wall,
                        peak_memory_mib=100.0, memory_limit_mib=512,
                        task={"id": task, "started_at": T0.isoformat(), "cpu": 256, "memory_mib": 512,
                              "capacity": "FARGATE"}, **extra)
    s3.put_object(Bucket=BUCKET, Key=job_record_key(record), Body=json.dumps(record).encode())
    return record


def page(s3, run, step_name, done, task="t1", serial=1):
    """A worker's page of done jobs: `done` the records job() made (their own objects removed)."""
    for record in done:
        s3.delete_object(Bucket=BUCKET, Key=job_record_key(record))
    key = records.page_key(PIPELINE, run, step_name, task, serial, len(done))
    s3.put_object(Bucket=BUCKET, Key=key, Body=json.dumps({"version": 1, "records": list(done)}).encode())
    return key


def check(s3, now=T0 + timedelta(hours=1), sns=None, sqs=None):
    return settle_open_runs(s3, sns, BUCKET, PIPELINE, now, sqs=sqs)


def summary_of(s3, run):
    return json.loads(s3.get_object(Bucket=BUCKET, Key=records.summary_key(PIPELINE, run))["Body"].read())


def is_open(s3, run):
    listed = s3.list_objects_v2(Bucket=BUCKET, Prefix=records.open_key(PIPELINE, run)).get("Contents", [])
    return bool(listed)


def test_a_chain_settles_once_every_file_has_an_end_in_every_step(aws):
    describe(aws, CHAIN)
    run = open_run(aws, ["x.txt", "y.txt", "z.txt"])
    assert check(aws) == []
    for key in ("x.txt", "y.txt", "z.txt"):
        job(aws, run, "a", key)
    job(aws, run, "b", "x.txt")
    job(aws, run, "b", "y.txt")
    assert check(aws) == [] and is_open(aws, run)
    job(aws, run, "b", "z.txt", wall=8.0)
    assert check(aws) == [run]
    summary = summary_of(aws, run)
    assert (summary["inputs"], summary["jobs"], summary["failures"]) == (3, 6, [])
    assert summary["steps"]["a"]["ok"] == 3 and summary["steps"]["b"]["ok"] == 3
    assert summary["steps"]["b"]["wall_seconds"] == {"p50": 2.0, "p95": 8.0, "max": 8.0}
    assert summary["steps"]["b"]["peak_memory_mib"] == {"p50": 100.0, "max": 100.0}
    assert summary["steps"]["b"]["memory_limit_mib"] == 512
    assert summary["duration_seconds"] == 18.0
    assert summary["cost"]["run"] == run and summary["cost"]["total"] > 0
    assert not is_open(aws, run)
    # Settled once: a later check finds nothing open.
    assert check(aws) == []


def test_a_run_whose_done_jobs_are_in_pages_settles_like_one_with_a_record_each(aws):
    describe(aws, CHAIN)
    run = open_run(aws, ["x.txt", "y.txt", "z.txt"])
    page(aws, run, "a", [job(aws, run, "a", "x.txt"), job(aws, run, "a", "y.txt")])
    page(aws, run, "a", [job(aws, run, "a", "z.txt")], task="t2")
    page(aws, run, "b", [job(aws, run, "b", "x.txt"), job(aws, run, "b", "y.txt")])
    assert check(aws) == [] and is_open(aws, run)
    # z.txt failed in b for good: a record of its own beside the pages.
    job(aws, run, "b", "z.txt", outcome="failed", attempt=3, reason="nonzero_exit")
    assert check(aws) == [run]
    summary = summary_of(aws, run)
    assert (summary["inputs"], summary["jobs"]) == (3, 6)
    assert summary["steps"]["a"]["ok"] == 3 and summary["steps"]["b"]["ok"] == 2 and summary["steps"]["b"]["failed"] == 1
    assert [f["key"] for f in summary["failures"]] == ["z.txt"]


def test_pages_too_few_for_the_entry_jobs_are_not_read_and_a_job_in_two_pages_counts_once(aws):
    describe(aws, [step("a")])
    run = open_run(aws, ["x.txt", "y.txt"])
    first = job(aws, run, "a", "x.txt", wall=1.0)
    page(aws, run, "a", [first])
    reads = []
    aws.meta.events.register("before-parameter-build.s3.GetObject",
                             lambda params, **_: reads.append(params["Key"]))
    assert check(aws) == []
    assert not [key for key in reads if "/pages/" in key]  # one page of one record cannot end two jobs
    # x.txt again (a duplicate delivery), in another task's page: the two pages' names count 2, so
    # they are read, and x.txt counts once; y.txt still has no record.
    page(aws, run, "a", [job(aws, run, "a", "x.txt", wall=3.0)], task="t2")
    assert check(aws) == []
    assert len([key for key in reads if "/pages/" in key]) == 2
    page(aws, run, "a", [job(aws, run, "a", "y.txt")], task="t2", serial=2)
    assert check(aws) == [run]
    summary = summary_of(aws, run)
    assert summary["steps"]["a"]["ok"] == 2 and summary["jobs"] == 2
    assert summary["steps"]["a"]["wall_seconds"]["max"] == 3.0  # the latest record of x.txt


def test_a_malformed_page_leaves_the_run_open_and_others_settle(aws, caplog):
    describe(aws, [step("a")])
    run = open_run(aws, ["x.txt"])
    aws.put_object(Bucket=BUCKET, Key=records.page_key(PIPELINE, run, "a", "t1", 1, 1), Body=b"{not json")
    other = open_run(aws, ["y.txt"], serial=2)
    job(aws, other, "a", "y.txt")
    with caplog.at_level(logging.ERROR):
        assert check(aws) == [other]
    assert is_open(aws, run) and "is not JSON" in caplog.text


def test_a_stray_object_under_pages_is_ignored_and_a_page_of_an_undone_job_leaves_the_run_open(aws, caplog):
    describe(aws, [step("a")])
    run = open_run(aws, ["x.txt"])
    aws.put_object(Bucket=BUCKET, Key=records.page_prefix(PIPELINE, run), Body=b"")  # a console's folder
    page(aws, run, "a", [job(aws, run, "a", "x.txt")])
    assert check(aws) == [run]
    other = open_run(aws, ["y.txt"], serial=2)
    failed = job(aws, other, "a", "y.txt", outcome="failed", attempt=3, reason="nonzero_exit")
    page(aws, other, "a", [failed])
    with caplog.at_level(logging.ERROR):
        assert check(aws) == []
    assert is_open(aws, other) and "not done" in caplog.text


def test_an_entry_filter_decides_which_inputs_a_step_expects(aws):
    describe(aws, [step("a", suffix=".tif")])
    run = open_run(aws, ["scan.tif", "notes.txt", "folder/"])
    job(aws, run, "a", "scan.tif")
    assert check(aws) == [run]
    assert summary_of(aws, run)["steps"] == {"a": {"ok": 1, "wall_seconds": {"p50": 2.0, "p95": 2.0, "max": 2.0},
                                                   "peak_memory_mib": {"p50": 100.0, "max": 100.0},
                                                   "memory_limit_mib": 512}}


def test_a_fan_out_waits_for_every_result_downstream(aws):
    describe(aws, CHAIN)
    run = open_run(aws, ["x"])
    job(aws, run, "a", "x", results=["x/1.txt", "x/2.txt", "x/3.txt"])
    job(aws, run, "b", "x/1.txt")
    job(aws, run, "b", "x/2.txt")
    assert check(aws) == []
    job(aws, run, "b", "x/3.txt", outcome="failed", final=True, attempt=3, reason="nonzero_exit", log_tail="boom")
    assert check(aws) == [run]
    summary = summary_of(aws, run)
    assert (summary["steps"]["b"]["ok"], summary["steps"]["b"]["failed"]) == (2, 1)
    assert [(f["step"], f["key"], f["reason"], f["log_tail"], f["attempts"]) for f in summary["failures"]] == [
        ("b", "x/3.txt", "nonzero_exit", "boom", 3)]


def test_a_join_expects_only_the_keys_every_upstream_step_produced(aws):
    describe(aws, [step("a", downstream=["j"]), step("c", downstream=["j"]),
                   step("j", sources=[("a", "a-out"), ("c", "c-out")], join=True)])
    run = open_run(aws, ["x", "y"])
    for key in ("x", "y"):
        job(aws, run, "a", key)
    job(aws, run, "c", "x")
    assert check(aws) == []
    # y fails in c for good: its join never comes.
    job(aws, run, "c", "y", outcome="oom", attempt=3, final=True, reason="oom")
    assert check(aws) == []
    job(aws, run, "j", "x")
    assert check(aws) == [run]
    summary = summary_of(aws, run)
    assert {s: {k: v for k, v in c.items() if isinstance(v, int)} for s, c in summary["steps"].items()} == {
        "a": {"ok": 2}, "c": {"ok": 1, "oom": 1}, "j": {"ok": 1}}


def test_a_gather_job_is_expected_only_when_submitted_for_the_run(aws):
    describe(aws, [step("a", downstream=["g"]), step("g", sources=[("a", "a-out")], triggered=False)])
    uploaded = open_run(aws, ["x"])
    job(aws, uploaded, "a", "x")
    # The gather step waits for `submit --gather`: the upload's run does not wait for it.
    assert check(aws) == [uploaded]
    gathered = open_run(aws, ["all"], kind="submit", steps=["g"])
    assert check(aws) == []
    job(aws, gathered, "g", "all")
    assert check(aws) == [gathered]
    assert summary_of(aws, gathered)["steps"]["g"]["ok"] == 1


def test_a_gather_step_with_a_marker_expects_one_job_for_the_marker_only(aws):
    describe(aws, [step("a", downstream=["g"]), step("g", sources=[("a", "a-out")], suffix="_DONE")])
    run = open_run(aws, ["batch/1.txt", "batch/2.txt", "batch/_DONE"])
    for key in ("batch/1.txt", "batch/2.txt", "batch/_DONE"):
        job(aws, run, "a", key)
    assert check(aws) == []
    job(aws, run, "g", "batch/_DONE", results=["batch/_DONE"])
    assert check(aws) == [run]
    assert summary_of(aws, run)["steps"]["g"]["ok"] == 1


def test_submit_to_a_later_step_expects_its_jobs_there(aws):
    describe(aws, CHAIN)
    run = open_run(aws, ["p", "q"], kind="submit", steps=["b"])
    job(aws, run, "b", "p")
    assert check(aws) == []
    job(aws, run, "b", "q")
    assert check(aws) == [run]


def test_a_record_written_twice_counts_once(aws):
    describe(aws, CHAIN)
    run = open_run(aws, ["x"])
    job(aws, run, "a", "x")
    job(aws, run, "a", "x")  # a duplicate delivery's job writes the same record again
    job(aws, run, "b", "x")
    job(aws, run, "b", "x", wall=3.0)
    assert check(aws) == [run]
    summary = summary_of(aws, run)
    assert (summary["jobs"], summary["steps"]["a"]["ok"], summary["steps"]["b"]["ok"]) == (2, 1, 1)


def test_a_retry_waits_and_a_dead_lettered_file_ends_its_path(aws):
    describe(aws, CHAIN)
    run = open_run(aws, ["good", "bad", "cut"])
    job(aws, run, "a", "good")
    job(aws, run, "b", "good")
    job(aws, run, "a", "bad", outcome="failed", attempt=1, final=False, reason="nonzero_exit")
    # The last try of "cut" was interrupted (a Spot reclaim): SQS dead-letters it at its next receive.
    job(aws, run, "a", "cut", outcome="interrupted", attempt=3, final=True, reason="interrupted")
    assert check(aws) == []  # "bad" waits for its retry
    job(aws, run, "a", "bad", outcome="failed", attempt=2, final=False, reason="nonzero_exit")
    assert check(aws) == []
    job(aws, run, "a", "bad", outcome="timeout", attempt=3, final=True, reason="timeout", log_tail="slow")
    assert check(aws) == [run]
    summary = summary_of(aws, run)
    assert sorted((f["key"], f["outcome"], f["attempts"]) for f in summary["failures"]) == [
        ("bad", "timeout", 3), ("cut", "interrupted", 3)]
    assert (summary["steps"]["a"]["ok"], summary["steps"]["a"]["timeout"], summary["steps"]["a"]["interrupted"]) == (
        1, 1, 1)


def test_the_cost_is_the_run_s_share_of_its_tasks_recorded_seconds(aws):
    describe(aws, CHAIN)
    run = open_run(aws, ["x"])
    job(aws, run, "a", "x", outcome="failed", attempt=1, final=False, wall=4.0)
    job(aws, run, "a", "x", attempt=2, wall=4.0)
    job(aws, run, "b", "x", wall=2.0, task="t2")
    # t1 ran 100 s (8 s of this run's jobs, retry included, and 8 s of another run's); t2 is still running.
    task = {"id": "t1", "pipeline": PIPELINE, "step": "a", "started_at": T0.isoformat(), "cpu": 1024,
            "memory_mib": 2048, "capacity": "FARGATE", "stopped_at": (T0 + timedelta(seconds=100)).isoformat(),
            "jobs": 3, "job_seconds": {run: 8.0, "20261207T120000Z-upload": 8.0}, "exit": "idle"}
    aws.put_object(Bucket=BUCKET, Key=records.task_key(PIPELINE, "a", "t1"), Body=json.dumps(task).encode())
    assert check(aws, now=T0 + timedelta(seconds=300)) == [run]
    spent = summary_of(aws, run)["cost"]
    # t1: half its 100 s; t2 (256 CPU units, 512 MiB) counted up to now, 300 s.
    assert spent["task_seconds"] == pytest.approx(50.0 + 300.0)
    rates = cost.load_prices()["regions"][REGION]["fargate"]
    expected_a = 50 / 3600 * (1 * rates["vcpu_hour"] + 2 * rates["gb_hour"])
    expected_b = 300 / 3600 * (0.25 * rates["vcpu_hour"] + 0.5 * rates["gb_hour"])
    assert spent["by_step"] == {"a": pytest.approx(expected_a, abs=1e-6), "b": pytest.approx(expected_b, abs=1e-6)}
    assert spent["estimated"]


def test_a_drop_run_closes_after_its_quiet_period_once_its_entry_queues_are_empty(aws):
    describe(aws, [step("a")], quiet=60)
    sqs = boto3.client("sqs", region_name=REGION)
    queue = sqs.create_queue(QueueName="yunpipe-demo-a-queue")["QueueUrl"]
    sqs.create_queue(QueueName="yunpipe-demo-a-launcher-failed")
    run = runs.drop_run(aws, BUCKET, PIPELINE, T0, 60)
    assert runs.drop_run(aws, BUCKET, PIPELINE, T0 + timedelta(seconds=30), 60) == run
    job(aws, run, "a", "dropped-1")
    job(aws, run, "a", "dropped-2")
    # Inside the quiet period (and the slack of `last`): more files may come.
    assert check(aws, now=T0 + timedelta(seconds=90), sqs=sqs) == []
    # Past it, a file uploaded inside the window still waits in the queue: it joins when taken.
    sqs.send_message(QueueUrl=queue, MessageBody=json.dumps({"bucket": "in-bucket", "key": "dropped-3"}))
    later = T0 + timedelta(seconds=200)
    assert check(aws, now=later, sqs=sqs) == []
    assert check(aws, now=later) == []  # no SQS client: the queues cannot be seen, it stays open
    [message] = sqs.receive_message(QueueUrl=queue)["Messages"]
    sqs.delete_message(QueueUrl=queue, ReceiptHandle=message["ReceiptHandle"])
    job(aws, run, "a", "dropped-3")
    assert check(aws, now=later, sqs=sqs) == [run]
    summary = summary_of(aws, run)
    assert (summary["kind"], summary["inputs"], summary["steps"]["a"]["ok"]) == ("drop", 3, 3)


def test_a_drop_run_closes_once_the_next_one_opened(aws):
    describe(aws, [step("a")], quiet=60)
    first = runs.drop_run(aws, BUCKET, PIPELINE, T0, 60)
    job(aws, first, "a", "one")
    runs._cache.clear()
    second = runs.drop_run(aws, BUCKET, PIPELINE, T0 + timedelta(seconds=600), 60)
    assert second != first
    job(aws, second, "a", "two")
    # No SQS needed for the first: a file joins only the newest drop-run.
    assert check(aws, now=T0 + timedelta(seconds=601)) == [first]


def test_an_open_drop_run_is_judged_without_listing_its_records(aws):
    # Each worker whose queue empties checks; a drop-run's records grow by one per job, so a
    # listing per check made a large batch slower per file.
    describe(aws, [step("a")], quiet=60)
    run = runs.drop_run(aws, BUCKET, PIPELINE, T0, 60)
    for index in range(3):
        job(aws, run, "a", f"dropped-{index}")
    listed = []
    aws.meta.events.register("provide-client-params.s3.ListObjectsV2",
                             lambda params, **_: listed.append(params["Prefix"]))
    assert check(aws, now=T0 + timedelta(seconds=30)) == []
    assert listed == [records.open_prefix(PIPELINE)]  # the open runs, not the run's records


def test_a_manifest_of_another_kind_than_its_run_name_says_is_not_settled(aws, caplog):
    describe(aws, [step("a")])
    run = open_run(aws, ["x"], kind="upload")
    manifest = json.loads(aws.get_object(Bucket=BUCKET, Key=records.manifest_key(PIPELINE, run))["Body"].read())
    aws.put_object(Bucket=BUCKET, Key=records.manifest_key(PIPELINE, run),
                   Body=json.dumps({**manifest, "kind": "drop"}).encode())
    job(aws, run, "a", "x")
    with caplog.at_level(logging.ERROR):
        assert check(aws) == []
    assert "the kind its name says" in caplog.text


def test_two_settlers_racing_write_one_summary_and_one_notification(aws):
    sns = boto3.client("sns", region_name=REGION)
    sqs = boto3.client("sqs", region_name=REGION)
    topic = sns.create_topic(Name="demo-runs")["TopicArn"]
    inbox = sqs.create_queue(QueueName="inbox")["QueueUrl"]
    inbox_arn = sqs.get_queue_attributes(QueueUrl=inbox, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=inbox_arn, Attributes={"RawMessageDelivery": "true"})
    describe(aws, CHAIN, topic_arn=topic)
    run = open_run(aws, ["x"])
    job(aws, run, "a", "x")
    job(aws, run, "b", "x")
    results, start = [], threading.Barrier(4)

    def settler():
        client = boto3.client("s3", region_name=REGION)
        start.wait()
        results.append(settle_open_runs(client, sns, BUCKET, PIPELINE, T0 + timedelta(hours=1)))

    threads = [threading.Thread(target=settler) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == [[], [], [], [run]]
    messages = sqs.receive_message(QueueUrl=inbox, MaxNumberOfMessages=10, WaitTimeSeconds=1).get("Messages", [])
    assert len(messages) == 1
    announced = json.loads(messages[0]["Body"])
    assert (announced["event"], announced["run"], announced["counts"], announced["failures"]) == (
        "settled", run, {"a": {"ok": 1}, "b": {"ok": 1}}, 0)
    assert announced["summary"] == f"s3://{BUCKET}/{records.summary_key(PIPELINE, run)}"
    assert announced["report"] == f"yunpipe report {PIPELINE} {run}"


def test_a_summary_left_by_a_stopped_settler_closes_the_run_without_a_second_one(aws):
    describe(aws, CHAIN)
    run = open_run(aws, ["x"])
    aws.put_object(Bucket=BUCKET, Key=records.summary_key(PIPELINE, run), Body=b'{"run": "first"}')
    assert check(aws) == [] and not is_open(aws, run)
    assert summary_of(aws, run) == {"run": "first"}


def test_malformed_manifests_and_records_are_skipped_and_logged_not_raised(aws, caplog):
    describe(aws, CHAIN)
    good = open_run(aws, ["x"], serial=1)
    job(aws, good, "a", "x")
    job(aws, good, "b", "x")
    broken = records.run_id("upload", T0, 2)
    aws.put_object(Bucket=BUCKET, Key=records.manifest_key(PIPELINE, broken), Body=b"{not json")
    aws.put_object(Bucket=BUCKET, Key=records.open_key(PIPELINE, broken), Body=b"")
    odd = open_run(aws, ["x"], serial=3)
    aws.put_object(Bucket=BUCKET, Key=records.end_key(PIPELINE, odd, "a", "x"), Body=b'["not a record"]')
    aws.put_object(Bucket=BUCKET, Key=records.open_key(PIPELINE, "not-a-run"), Body=b"")
    with caplog.at_level(logging.WARNING, logger="yunpipe.accounting"):
        assert check(aws) == [good]
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert f"run {broken} of demo cannot be settled" in logged and "is not JSON" in logged
    assert f"run {odd} of demo cannot be settled" in logged and "is not a JSON object" in logged
    assert "not-a-run is no run's open marker" in logged
    assert is_open(aws, broken) and is_open(aws, odd)


def test_a_malformed_descriptor_settles_nothing_and_says_so(aws, caplog):
    aws.put_object(Bucket=BUCKET, Key=records.pipeline_key(PIPELINE), Body=b'{"steps": [{"name": "a"}]}')
    open_run(aws, [])
    with caplog.at_level(logging.ERROR, logger="yunpipe.accounting"):
        assert check(aws) == []
    assert "accounting.json is malformed" in caplog.text


def test_percentiles_are_nearest_rank():
    assert percentile([], 0.5) is None
    assert percentile([5.0], 0.95) == 5.0
    assert percentile([float(v) for v in range(1, 21)], 0.95) == 19.0
    assert percentile([4.0, 1.0, 3.0, 2.0], 0.5) == 2.0


def upper_worker(aws, tmp_path, keys, run):
    """A one-step pipeline's queue holding a message for each key (its input there), in `run`; the
    worker's algorithm copies its input; each try is the last (a failed job would come back round)."""
    from yunpipe.runtime.contract import WorkerConfig
    from yunpipe.runtime.worker.algorithm import load_algorithm

    sqs = boto3.client("sqs", region_name=REGION)
    queue = sqs.create_queue(QueueName="yunpipe-demo-upper-queue")["QueueUrl"]
    for key in keys:
        aws.put_object(Bucket="in-bucket", Key=key, Body=key.encode())
        sqs.send_message(QueueUrl=queue, MessageBody=json.dumps({"bucket": "in-bucket", "key": key, "run": run}))
    (tmp_path / "algorithm.json").write_text(json.dumps({
        "name": "upper", "run_command": "cp $input $output", "input_file_path": str(tmp_path / "work"),
        "output_file_path": str(tmp_path / "work")}))
    config = WorkerConfig(queue_url=queue, output_bucket="out-bucket", report_bucket=BUCKET, pipeline=PIPELINE,
                          step="upper", idle_seconds=0, wait_seconds=0, max_receive_count=1)
    return sqs, load_algorithm(str(tmp_path / "algorithm.json")), config


def test_the_worker_settles_when_its_queue_first_comes_back_empty_after_its_jobs(aws, tmp_path, caplog):
    """The last worker of a run settles it: here one job, whose record stands written (the worker's
    own record is MEASURE's), and the worker's queue empty once it ran."""
    from yunpipe.runtime.worker.loop import run_worker

    describe(aws, [step("upper")])
    for bucket in ("in-bucket", "out-bucket"):
        aws.create_bucket(Bucket=bucket)
    run = open_run(aws, ["x"])
    job(aws, run, "upper", "x")
    sqs, algorithm, config = upper_worker(aws, tmp_path, ["x"], run)
    with caplog.at_level(logging.INFO, logger="yunpipe.worker"):
        assert run_worker(config, algorithm, sqs, aws, environ={}, retry_delay=0) == 0
    assert aws.get_object(Bucket="out-bucket", Key="x")["Body"].read() == b"x"
    assert f"settled run(s) {run}" in caplog.text
    assert summary_of(aws, run)["steps"]["upper"]["ok"] == 1
    # Without accounting, the worker leaves runs alone, and does not even count its queue's
    # messages to see whether a run may have ended.
    second = open_run(aws, ["x"], serial=2)
    job(aws, second, "upper", "x")
    sqs.send_message(QueueUrl=config.queue_url, MessageBody=json.dumps({"bucket": "in-bucket", "key": "x"}))
    counted = []
    sqs.meta.events.register("before-call.sqs.GetQueueAttributes", lambda **kwargs: counted.append(kwargs))
    assert run_worker(dataclasses.replace(config, accounting=False), algorithm, sqs, aws, environ={}, retry_delay=0) == 0
    assert is_open(aws, second)
    assert counted == []


def test_a_worker_leaves_settling_to_the_step_s_last_worker(aws, tmp_path, caplog):
    """While another worker of the step still holds a message, a worker that runs dry does not read
    the run's records: the holder's job may be the run's last, and that worker looks then."""
    from yunpipe.runtime.worker.loop import run_worker

    describe(aws, [step("upper")])
    for bucket in ("in-bucket", "out-bucket"):
        aws.create_bucket(Bucket=bucket)
    run = open_run(aws, ["x"])
    job(aws, run, "upper", "x")
    sqs, algorithm, config = upper_worker(aws, tmp_path, ["x", "y"], run)
    # "Another worker" holds the first message, as if its job still ran.
    held = sqs.receive_message(QueueUrl=config.queue_url, MaxNumberOfMessages=1, VisibilityTimeout=600)["Messages"]
    assert len(held) == 1
    with caplog.at_level(logging.INFO, logger="yunpipe.worker"):
        assert run_worker(config, algorithm, sqs, aws, environ={}, retry_delay=0) == 0
    assert "settled run" not in caplog.text
    assert is_open(aws, run)


def test_a_run_settles_even_when_its_announcement_cannot_go_out(aws, caplog):
    describe(aws, CHAIN, topic_arn=f"arn:aws:sns:{REGION}:123456789012:gone")
    run = open_run(aws, ["x"])
    job(aws, run, "a", "x")
    job(aws, run, "b", "x")
    sns = boto3.client("sns", region_name=REGION)  # the topic does not exist: SNS refuses
    with caplog.at_level(logging.ERROR, logger="yunpipe.accounting"):
        assert check(aws, sns=sns) == [run]
    assert "cannot publish to" in caplog.text and not is_open(aws, run)
    other = open_run(aws, ["x"], serial=2)
    job(aws, other, "a", "x")
    job(aws, other, "b", "x")
    with caplog.at_level(logging.ERROR, logger="yunpipe.accounting"):
        assert check(aws, sns=None) == [other]
    assert f"run {other} settled but not announced: no SNS client" in caplog.text
