"""upload, results, status and logs against a deployed pipeline in moto."""
import json
import time

import boto3
import pytest
from helpers import REGION, single_run

from yunpipe import cli
from yunpipe.runtime.contract import WorkerConfig
from yunpipe.runtime.worker.message import Job, Source
from yunpipe.runtime.worker.provenance import provenance


@pytest.fixture
def deployed(moto, change123, write_workflow):
    assert cli.setup_pipe_main(["-f", write_workflow(single_run())]) == 0


def test_upload_files_and_folders(deployed, tmp_path):
    folder = tmp_path / "data"
    (folder / "sub").mkdir(parents=True)
    (folder / "a.txt").write_text("a")
    (folder / "sub" / "b.txt").write_text("b")
    single = tmp_path / "c.txt"
    single.write_text("c")
    assert cli.main(["upload", "demo", str(folder), str(single)]) == 0
    keys = [o["Key"] for o in boto3.client("s3").list_objects_v2(Bucket="demo-in-bucket")["Contents"]]
    assert sorted(keys) == ["a.txt", "c.txt", "sub/b.txt"]


def test_upload_of_a_missing_path_is_an_input_error(deployed, capsys):
    assert cli.main(["upload", "demo", "/no/such/path"]) == 2
    assert "PATH[0]" in capsys.readouterr().err


def test_results_lists_and_downloads(deployed, tmp_path, capsys):
    s3 = boto3.client("s3")
    s3.put_object(Bucket="demo-out-bucket", Key="x/out.txt", Body=b"result")
    assert cli.main(["results", "demo"]) == 0
    assert "x/out.txt" in capsys.readouterr().out
    assert cli.main(["results", "demo", "--download", str(tmp_path / "got")]) == 0
    assert (tmp_path / "got" / "x" / "out.txt").read_bytes() == b"result"


def test_results_with_provenance_prints_what_each_result_came_from(deployed, capsys):
    """The metadata the worker stores (worker.provenance.provenance), read back decoded; a result
    stored by hand has none."""
    s3 = boto3.client("s3")
    config = WorkerConfig(queue_url="q", output_bucket="demo-out-bucket", pipeline="demo", step="change123-s3",
                              algorithm_ref="change123-s3@1", image="user/change123-s3@sha256:abc")
    key = "données/a 100%.txt"
    job = Job(Source("demo-in-bucket", key, etag="e1"))
    s3.put_object(Bucket="demo-out-bucket", Key=key, Body=b"r", Metadata=provenance(
        config, job, key, variables="sha256:0", results=1, attempt=2, run="20261207T131500Z-upload"))
    s3.put_object(Bucket="demo-out-bucket", Key="z/by-hand.txt", Body=b"h")
    capsys.readouterr()
    assert cli.main(["results", "demo", "--provenance"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        key,
        "    pipeline: demo",
        "    step: change123-s3",
        "    algorithm: change123-s3@1",
        "    image: user/change123-s3@sha256:abc",
        f"    input: s3://demo-in-bucket/{key}",
        "    input-etag: e1",
        "    variables: sha256:0",
        "    results: 1",
        "    attempt: 2",
        "    run: 20261207T131500Z-upload",
        "z/by-hand.txt",
        "    (no provenance: not written by a yunpipe worker)",
        "2 result(s) in s3://demo-out-bucket",
    ]


def test_results_provenance_and_download_do_not_mix(deployed, tmp_path, capsys):
    with pytest.raises(SystemExit) as exited:
        cli.main(["results", "demo", "--provenance", "--download", str(tmp_path)])
    assert exited.value.code == 2
    assert "not allowed with argument" in capsys.readouterr().err


def test_status_shows_queues_and_failure_reports(deployed, capsys):
    sqs, s3 = boto3.client("sqs", region_name=REGION), boto3.client("s3")
    url = sqs.get_queue_url(QueueName="yunpipe-demo-change123-s3-queue")["QueueUrl"]
    sqs.send_message(QueueUrl=url, MessageBody="{}")
    s3.put_object(Bucket="yunpipe-demo-reports-123456789012",
                  Key="failures/demo/change123-s3/in.txt/attempt-3.json",
                  Body=b'{"key": "in.txt", "attempt": 3, "final": true, "reason": "exit status 1"}')
    capsys.readouterr()
    assert cli.main(["status", "demo"]) == 0
    out = capsys.readouterr().out
    assert "step change123-s3: 0 of 1 done, 1 waiting, 0 in flight, 0 in the dead-letter queue, 0 task(s) running" \
        in out
    assert "failed in.txt attempt 3 (final try): exit status 1" in out


def test_status_counts_results_marks_failures_a_later_try_fixed_and_shows_every_report_with_all(deployed, capsys):
    s3 = boto3.client("s3")
    reports = "yunpipe-demo-reports-123456789012"
    for number in range(7):
        s3.put_object(Bucket=reports, Key=f"failures/demo/change123-s3/f{number}.txt/attempt-3.json",
                      Body=json.dumps({"key": f"f{number}.txt", "attempt": 3, "final": True, "reason": "exit status 1",
                                       "finished_at": "2020-01-01T00:00:00Z"}).encode())
    # A retry after the fix: f0's result is written after its failure report.
    for key in ("f0.txt", "other.txt"):
        s3.put_object(Bucket="demo-out-bucket", Key=key, Body=b"done")
    capsys.readouterr()
    assert cli.main(["status", "demo"]) == 0
    out = capsys.readouterr().out
    assert "step change123-s3: 2 of 2 done, 0 waiting" in out
    failed = [line for line in out.splitlines() if line.startswith("  failed ")]
    assert len(failed) == 5  # the newest 5
    assert cli.main(["status", "demo", "--all"]) == 0
    failed = [line for line in capsys.readouterr().out.splitlines() if line.startswith("  failed ")]
    assert len(failed) == 7
    assert [line for line in failed if line.endswith("(a later try succeeded)")] == [
        "  failed f0.txt attempt 3 (final try): exit status 1 2020-01-01T00:00:00Z (a later try succeeded)"]


def test_status_counts_the_events_lambda_could_not_deliver(deployed, moto, capsys):
    moto.throttle("yunpipe-demo-change123-s3-launcher", events=2)
    for key in ("a.txt", "b.txt"):
        boto3.client("s3").put_object(Bucket="demo-in-bucket", Key=key, Body=b"x")
    capsys.readouterr()
    assert cli.main(["status", "demo"]) == 0
    assert ("  2 event(s) Lambda could not deliver to the launcher (throttled or failing): its next scheduled run "
            "queues their files") in capsys.readouterr().out.splitlines()


def test_status_of_an_unknown_pipeline(aws_env, capsys):
    assert cli.main(["status", "nope"]) == 2  # what you typed
    assert "run setup-pipe first" in capsys.readouterr().err


def test_logs_of_several_tasks_come_in_time_order_and_follow_catches_a_late_line(deployed, capsys):
    from yunpipe.operations.logs import LogsOptions, log_lines

    logs = boto3.client("logs", region_name=REGION)
    now = int(time.time() * 1000)
    streams = {"change123-s3/change123-s3/task1": [(now, "one"), (now + 2000, "three")],
               "change123-s3/change123-s3/task2": [(now + 1000, "two"), (now + 3000, "four")]}
    for stream, events in streams.items():
        logs.create_log_stream(logGroupName="/yunpipe/demo", logStreamName=stream)
        logs.put_log_events(logGroupName="/yunpipe/demo", logStreamName=stream,
                            logEvents=[{"timestamp": t, "message": m} for t, m in events])
    capsys.readouterr()
    assert cli.main(["logs", "demo"]) == 0
    assert [line.split(" | ")[1] for line in capsys.readouterr().out.splitlines()] == ["one", "two", "three", "four"]

    def late_line(_seconds):
        # A third task's line, stamped before the newest seen, arrives while following.
        logs.create_log_stream(logGroupName="/yunpipe/demo", logStreamName="change123-s3/change123-s3/task3")
        logs.put_log_events(logGroupName="/yunpipe/demo", logStreamName="change123-s3/change123-s3/task3",
                            logEvents=[{"timestamp": now + 2500, "message": "late"}])

    following = log_lines(LogsOptions("demo", follow=True), sleep=late_line)
    assert [next(following).split(" | ")[1] for _ in range(5)] == ["one", "two", "three", "four", "late"]


def test_logs_of_a_step(deployed, capsys):
    logs = boto3.client("logs", region_name=REGION)
    now = int(time.time() * 1000)
    for stream, message in (("change123-s3/change123-s3/task1", "processing a.txt"), ("other/x/task2", "elsewhere")):
        logs.create_log_stream(logGroupName="/yunpipe/demo", logStreamName=stream)
        logs.put_log_events(logGroupName="/yunpipe/demo", logStreamName=stream,
                            logEvents=[{"timestamp": now, "message": message}])
    capsys.readouterr()
    assert cli.main(["logs", "demo", "--step", "change123-s3"]) == 0
    out = capsys.readouterr().out
    assert "change123-s3 | processing a.txt" in out and "elsewhere" not in out
    assert cli.main(["logs", "demo", "--step", "nope"]) == 2
