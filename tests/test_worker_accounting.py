"""The worker's accounting: what a command used (real commands), the OOM verdict (a real memory
limit, in Docker), and the job and task records it writes to the reports bucket (moto)."""
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import boto3
import helpers
import pytest
from moto import mock_aws
from test_worker import PATIENCE, Step, gather_body, join_body

from yunpipe.runtime.accounting import records
from yunpipe.runtime.worker import cgroup
from yunpipe.runtime.worker.cgroup import MemoryCgroup, find_memory_cgroup
from yunpipe.runtime.worker.ledger import Ledger
from yunpipe.runtime.worker.process import run_command

REPOSITORY = Path(__file__).resolve().parent.parent
BASE_IMAGE = "yunpipe/base:bookworm"
# Allocates and touches N MiB, so each page is resident.
ALLOCATE = "import sys; b = bytearray({mib} * 2**20); b[::4096] = b'x' * len(b[::4096]); print('done', file=sys.stderr)"
# Burns CPU until its own CPU clock passed N seconds: CPU time, whatever the machine's load.
BURN = "import time\nwhile time.process_time() < {seconds}: pass"



@pytest.fixture
def step(aws_env, tmp_path):
    with mock_aws():
        yield Step(tmp_path)


def objects(step, prefix):
    """The reports bucket's objects under `prefix`: JSON, None for an empty marker."""
    listed = step.s3.list_objects_v2(Bucket="report-bucket", Prefix=prefix).get("Contents", [])
    bodies = {o["Key"]: step.s3.get_object(Bucket="report-bucket", Key=o["Key"])["Body"].read() for o in listed}
    return {key: json.loads(body) if body else None for key, body in bodies.items()}


def job_records(step):
    """The job records in the reports bucket by their ends/ or tries/ key (helpers.job_records)."""
    return helpers.job_records(step.s3, "report-bucket", "runs/")


def the_record(step):
    """The one job record in the reports bucket."""
    found = job_records(step)
    assert len(found) == 1, sorted(found)
    return found.popitem()


# ----------------------------------------------------------------------------- the command's measurements


def test_a_command_that_allocates_200_mib_reports_a_peak_of_at_least_that():
    outcome = run_command([sys.executable, "-c", ALLOCATE.format(mib=200)], env=os.environ)
    assert outcome.exit_code == 0 and "done" in outcome.stderr_tail
    assert outcome.peak_memory_mib >= 200


def resident_mib() -> float:
    status = Path("/proc/self/status").read_text()
    return int(next(line for line in status.splitlines() if line.startswith("VmRSS:")).split()[1]) / 1024


def test_a_small_command_is_not_charged_the_worker_s_own_peak():
    held = bytearray(300 * 2**20)
    held[::4096] = b"x" * len(held[::4096])
    del held
    # The kernel would start `true`'s peak at the worker's peak, 300 MiB above what it holds now;
    # the worker lowers its own peak to what it holds first.
    assert run_command(["true"], env=os.environ).peak_memory_mib < resident_mib() + 100


def test_a_cpu_bound_command_reports_its_cpu_seconds():
    outcome = run_command(["sh", "-c", f"{sys.executable} -c '{BURN.format(seconds=0.5)}'"], env=os.environ)
    assert outcome.exit_code == 0
    # The shell's child included: rusage counts the descendants the command waited for.
    assert outcome.cpu_seconds >= 0.5


def test_a_command_killed_by_a_signal_without_an_oom_kill_is_no_oom(tmp_path):
    memory = MemoryCgroup(str(tmp_path), 2)
    (tmp_path / "memory.events").write_text("low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\n")
    outcome = run_command(["sh", "-c", "kill -KILL $$"], env=os.environ, cgroup=memory)
    assert outcome.exit_code == -9 and not outcome.oom


# Captured on this project's machine (Docker on cgroup v1, host and container) and from a cgroup
# v2 host (Docker's private cgroup namespace shows the container's cgroup as "/").
V1_CGROUP = "4:memory:/docker/39c6da0d\n3:cpuset:/docker/39c6da0d\n0::/docker/39c6da0d\n"
V1_CONTAINER = ("86 82 0:32 /docker/39c6da0d /sys/fs/cgroup/memory ro,nosuid - cgroup cgroup rw,memory\n"
                "83 82 0:29 /docker/39c6da0d /sys/fs/cgroup/cpu ro,nosuid - cgroup cgroup rw,cpu\n")
V1_HOST = ("35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory\n"
           "41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n")
V2_CONTAINER = "30 25 0:26 / /sys/fs/cgroup ro,nosuid,nodev,noexec,relatime - cgroup2 cgroup2 rw,nsdelegate\n"


@pytest.mark.parametrize(("proc_cgroup", "mountinfo", "existing", "found"), [
    (V1_CGROUP, V1_CONTAINER, (), ("/sys/fs/cgroup/memory", 1)),
    (V1_CGROUP, V1_HOST, ("/sys/fs/cgroup/memory/docker/39c6da0d",), ("/sys/fs/cgroup/memory/docker/39c6da0d", 1)),
    ("0::/\n", V2_CONTAINER, ("/sys/fs/cgroup/",), ("/sys/fs/cgroup/", 2)),
    ("0::/system.slice/x.scope\n", V2_CONTAINER, ("/sys/fs/cgroup/system.slice/x.scope",),
     ("/sys/fs/cgroup/system.slice/x.scope", 2)),
    ("0::/\n", "", (), None),
])
def test_the_memory_cgroup_is_found_on_cgroup_v1_and_v2(proc_cgroup, mountinfo, existing, found):
    assert find_memory_cgroup(proc_cgroup, mountinfo, exists=lambda path: path in existing) == found


@pytest.mark.parametrize(("version", "files", "kills", "limit", "peak"), [
    (1, {"memory.oom_control": "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n",
         "memory.limit_in_bytes": "536870912\n", "memory.max_usage_in_bytes": "104857600\n"}, 2, 512, 100),
    (1, {"memory.limit_in_bytes": "9223372036854771712\n"}, None, None, None),
    (2, {"memory.events": "low 0\nhigh 0\nmax 4\noom 1\noom_kill 1\n", "memory.max": "max\n",
         "memory.peak": "209715200\n"}, 1, None, 200),
])
def test_cgroup_readings_of_v1_and_v2(tmp_path, version, files, kills, limit, peak):
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    memory = MemoryCgroup(str(tmp_path), version)
    assert (memory.oom_kills(), memory.limit_mib(), memory.peak_mib()) == (kills, limit, peak)


def docker_or_skip():
    try:
        subprocess.run(["docker", "info"], capture_output=True, check=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        pytest.skip("no Docker daemon answers")


CONTAINER_SCRIPT = """
import json, os, shlex, sys, types
# The runtime as a wrapped image has it, under a stand-in for the host's yunpipe package.
sys.modules["yunpipe"] = types.ModuleType("yunpipe")
sys.modules["yunpipe"].__path__ = ["/opt/lib/yunpipe"]
from yunpipe.runtime.worker.cgroup import memory_cgroup
from yunpipe.runtime.worker.process import run_command
allocate = sys.argv[1]
memory = memory_cgroup()
seen = {"version": memory.version, "limit": memory.limit_mib()}
for name, argv in (("big", ["python3", "-c", allocate.format(mib=400)]),
                   ("small", ["sh", "-c", "python3 -c " + shlex.quote(allocate.format(mib=50)) + "; exit 3"]),
                   ("shell", ["sh", "-c", "python3 -c " + shlex.quote(allocate.format(mib=400))])):
    outcome = run_command(argv, env=os.environ, cgroup=memory)
    seen[name] = [outcome.exit_code, outcome.oom, outcome.peak_memory_mib]
print(json.dumps(seen))
"""


def test_a_command_over_the_container_s_memory_limit_is_told_oom_and_one_under_it_is_not():
    """The real kernel's OOM killer, in a Docker container of 256 MiB: the cgroup's kill counter
    tells an OOM kill from any other failure. Costs one container (a few seconds)."""
    docker_or_skip()
    runtime = REPOSITORY / "yunpipe" / "runtime"
    completed = subprocess.run(
        ["docker", "run", "--rm", "--memory=256m", "--memory-swap=256m",
         "-v", f"{runtime}:/opt/lib/yunpipe/runtime:ro", "-e", "PYTHONDONTWRITEBYTECODE=1",
         BASE_IMAGE, "python3", "-c", CONTAINER_SCRIPT, ALLOCATE],
        capture_output=True, text=True, timeout=120, check=False)
    assert completed.returncode == 0, completed.stderr
    seen = json.loads(completed.stdout.strip().splitlines()[-1])
    assert seen["limit"] == 256, seen
    assert seen["big"][:2] == [-9, True], seen
    assert 100 < seen["big"][2] <= 256, seen
    assert seen["small"][:2] == [3, False], seen
    assert seen["small"][2] >= 50, seen
    # Through a shell: the shell reports its child's SIGKILL as 128 + 9.
    assert seen["shell"][:2] == [137, True], seen


# ----------------------------------------------------------------------------- job records


def test_an_ok_job_s_record_holds_its_measurements_and_its_results_carry_its_run(step):
    alg = step.algorithm(f"sh -c '{sys.executable} -c \"{BURN.format(seconds=0.2)}\"; tr a-z A-Z < $input > $output'")
    step.put("data/a.txt", b"x" * 1000)
    step.send("data/a.txt")
    assert step.run(alg, step.config(YUNPIPE_TASK_CPU="256", YUNPIPE_TASK_MEMORY="512",
                                      YUNPIPE_CAPACITY="FARGATE_SPOT")) == 0
    key, record = the_record(step)
    run = record["run"]
    assert key == records.end_key("demo", run, "upper", "data/a.txt")
    assert run.endswith("Z-drop")
    assert step.s3.head_object(Bucket="out-bucket", Key="data/a.txt")["Metadata"]["yunpipe-run"] == run
    assert set(record) == {"version", *records.JOB_FIELDS}
    assert record["outcome"] == "ok" and record["exit_code"] == 0 and record["reason"] is None
    assert record["attempt"] == 1 and record["final"] is True
    assert record["inputs"] == [{"bucket": "in-bucket", "key": "data/a.txt", "etag": "e"}]
    assert record["bytes_in"] == 1000 and record["bytes_out"] == 1000
    assert record["cpu_seconds"] >= 0.2
    assert record["wall_seconds"] >= record["cpu_seconds"] - 0.05
    assert record["peak_memory_mib"] > 0
    assert record["results"] == ["data/a.txt"] and record["result_bucket"] == "out-bucket"
    assert record["report"] is None and record["log_tail"] is None
    assert record["task"]["cpu"] == 256 and record["task"]["memory_mib"] == 512
    assert record["task"]["capacity"] == "FARGATE_SPOT" and record["task"]["id"]
    assert records.parse_iso(record["started_at"]) <= records.parse_iso(record["finished_at"])
    # The drop-run the file joined was opened: its manifest and its open marker.
    assert objects(step, records.manifest_key("demo", run))[records.manifest_key("demo", run)]["kind"] == "drop"
    assert step.s3.head_object(Bucket="report-bucket", Key=records.open_key("demo", run))


def test_a_failed_try_is_a_tries_record_and_the_last_one_an_ends_record_with_its_report(aws_env, tmp_path):
    with mock_aws():
        step = Step(tmp_path, max_receive_count=2)
        alg = step.algorithm("sh -c 'echo cannot read it >&2; exit 3'")
        step.put("a.txt")
        step.send("a.txt", body=json.dumps({"bucket": "in-bucket", "key": "a.txt", "etag": "e", "size": 11,
                                            "run": "20261207T131500Z-submit"}))
        step.run(alg)
        found = {k: v for k, v in objects(step, "runs/").items()}
        tried = records.try_key("demo", "20261207T131500Z-submit", "upper", "a.txt", 1)
        ended = records.end_key("demo", "20261207T131500Z-submit", "upper", "a.txt")
        assert sorted(found) == sorted([tried, ended])
        assert found[tried]["final"] is False and found[ended]["final"] is True
        for attempt, record in enumerate((found[tried], found[ended]), start=1):
            assert record["outcome"] == "failed" and record["exit_code"] == 3 and record["reason"] == "nonzero_exit"
            assert record["attempt"] == attempt
            assert "cannot read it" in record["log_tail"]
            assert record["report"] == f"failures/demo/upper/a.txt/attempt-{attempt}.json"
            assert record["results"] == [] and record["bytes_out"] == 0


def test_a_timeout_is_recorded_as_timeout(step):
    alg = step.algorithm("sleep 30", timeout_seconds=1)
    step.put("a.txt")
    step.send("a.txt")
    step.run(alg)
    _, record = the_record(step)
    assert record["outcome"] == "timeout" and record["reason"] == "timeout"
    assert record["exit_code"] == -15


def test_a_job_interrupted_by_a_stop_is_a_tries_record(step, tmp_path):
    started = tmp_path / "started"
    alg = step.algorithm(f"sh -c 'touch {started}; sleep 30'")
    step.put("a.txt")
    step.send("a.txt", body=json.dumps({"bucket": "in-bucket", "key": "a.txt", "etag": "e", "size": 11,
                                        "run": "20261207T131500Z-upload"}))
    stop = threading.Event()
    worker = threading.Thread(target=step.run, args=(alg,), kwargs={"stop": stop})
    worker.start()
    deadline = time.monotonic() + PATIENCE
    while not started.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    stop.set()
    worker.join(PATIENCE)
    key, record = the_record(step)
    assert key == records.try_key("demo", "20261207T131500Z-upload", "upper", "a.txt", 1)
    assert record["outcome"] == "interrupted"
    (task,) = objects(step, "tasks/").values()
    assert task["exit"] == "signal" and task["jobs"] == 1


def test_the_run_comes_from_the_message_then_from_the_input_s_metadata(step):
    alg = step.algorithm("sh -c 'cp $input $output'")
    step.s3.put_object(Bucket="in-bucket", Key="a.txt", Body=b"a", Metadata={"yunpipe-run": "20261207T120000Z-upload"})
    step.s3.put_object(Bucket="in-bucket", Key="b.txt", Body=b"b", Metadata={"yunpipe-run": "20261207T120000Z-upload"})
    step.send("a.txt")
    step.send("b.txt", body=json.dumps({"bucket": "in-bucket", "key": "b.txt", "etag": "e", "size": 1,
                                        "run": "20261207T130000Z-submit"}))
    step.run(alg)
    head = step.s3.head_object
    assert head(Bucket="out-bucket", Key="a.txt")["Metadata"]["yunpipe-run"] == "20261207T120000Z-upload"
    assert head(Bucket="out-bucket", Key="b.txt")["Metadata"]["yunpipe-run"] == "20261207T130000Z-submit"
    assert set(job_records(step)) == {records.end_key("demo", "20261207T120000Z-upload", "upper", "a.txt"),
                                      records.end_key("demo", "20261207T130000Z-submit", "upper", "b.txt")}


def test_done_jobs_records_are_written_in_pages_a_page_per_run_with_its_count_in_its_name(step):
    alg = step.algorithm("sh -c 'cp $input $output'")
    runs = {"a.txt": "20261207T120000Z-upload", "b.txt": "20261207T120000Z-upload", "c.txt": "20261207T130000Z-submit"}
    for key, run in runs.items():
        step.put(key)
        step.send(key, body=json.dumps({"bucket": "in-bucket", "key": key, "size": 11, "run": run}))
    step.run(alg, step.config(YUNPIPE_PARALLELISM="3"))
    pages = {key: body for key, body in objects(step, "runs/").items() if "/pages/" in key}
    by_run = {}
    for key, body in pages.items():
        run = key.split("/")[2]
        step_name, count = records.page_parts(records.page_prefix("demo", run), key)
        assert step_name == "upper" and count == len(records.page_records(body))
        by_run.setdefault(run, set()).update(r["key"] for r in records.page_records(body))
    assert by_run == {"20261207T120000Z-upload": {"a.txt", "b.txt"}, "20261207T130000Z-submit": {"c.txt"}}
    # No job of them has a record of its own.
    assert not [key for key in objects(step, "runs/") if "/ends/" in key or "/tries/" in key]


def test_a_done_job_s_message_is_deleted_only_after_its_page_is_written_and_in_one_batch(step):
    alg = step.algorithm("sh -c 'cp $input $output'")
    for n in range(4):
        step.put(f"{n}.txt")
        step.send(f"{n}.txt")
    calls = []
    step.s3.meta.events.register("before-parameter-build.s3.PutObject", lambda params, **_: calls.append(("put", params["Key"])))
    step.sqs.meta.events.register("before-parameter-build.sqs.DeleteMessage", lambda **_: calls.append(("delete", 1)))
    step.sqs.meta.events.register("before-parameter-build.sqs.DeleteMessageBatch",
                                  lambda params, **_: calls.append(("delete", len(params["Entries"]))))
    assert step.run(alg, step.config(YUNPIPE_PARALLELISM="4")) == 0
    deletes = [n for kind, n in calls if kind == "delete"]
    assert sum(deletes) == 4 and len(deletes) < 4  # in batches, not one request per file
    first_delete = next(i for i, (kind, _) in enumerate(calls) if kind == "delete")
    paged = [key for kind, key in calls[:first_delete] if kind == "put" and "/pages/" in str(key)]
    assert paged, calls
    assert step.sqs.get_queue_attributes(QueueUrl=step.queue_url, AttributeNames=["All"])["Attributes"][
        "ApproximateNumberOfMessagesNotVisible"] == "0"


def test_a_page_that_cannot_be_written_keeps_its_messages_until_a_later_write_succeeds(step, monkeypatch):
    from yunpipe.runtime.worker import ledger as ledger_module
    alg = step.algorithm("sh -c 'cp $input $output'")
    for n in range(3):
        step.put(f"{n}.txt")
        step.send(f"{n}.txt", body=json.dumps({"bucket": "in-bucket", "key": f"{n}.txt", "size": 11,
                                               "run": "20261207T120000Z-upload"}))
    calls = []
    original = ledger_module.Ledger._put_page

    def flaky(self, run, found):
        calls.append(("page", len(found)))
        return False if len(calls) == 1 else original(self, run, found)

    monkeypatch.setattr(ledger_module.Ledger, "_put_page", flaky)
    step.sqs.meta.events.register("before-parameter-build.sqs.DeleteMessageBatch",
                                  lambda params, **_: calls.append(("delete", len(params["Entries"]))))
    assert step.run(alg, step.config(YUNPIPE_PARALLELISM="3")) == 0
    # Nothing deleted after the failed write; the records of the first try were written later.
    assert calls[0][0] == "page" and calls[1][0] == "page", calls
    assert sum(n for kind, n in calls if kind == "delete") == 3
    assert sorted(r["key"] for r in job_records(step).values()) == ["0.txt", "1.txt", "2.txt"]
    assert step.queue_counts() == (0, 0)


def test_a_page_whose_name_is_taken_goes_under_the_next_serial(step):
    import socket
    alg = step.algorithm("sh -c 'cp $input $output'")
    run = "20261207T120000Z-upload"
    taken = records.page_key("demo", run, "upper", socket.gethostname(), 1, 1)
    other = {"version": 1, "records": [{"pipeline": "demo", "run": run, "step": "upper", "key": "other.txt",
                                        "outcome": "ok", "finished_at": "2026-12-07T12:00:00.000Z"}]}
    step.s3.put_object(Bucket="report-bucket", Key=taken, Body=json.dumps(other).encode())
    step.put("a.txt")
    step.send("a.txt", body=json.dumps({"bucket": "in-bucket", "key": "a.txt", "size": 11, "run": run}))
    assert step.run(alg) == 0
    pages = {k: v for k, v in objects(step, "runs/").items() if "/pages/" in k}
    assert pages[taken] == other  # another task's page, not overwritten
    assert [r["key"] for r in pages[records.page_key("demo", run, "upper", socket.gethostname(), 2, 1)]["records"]] \
        == ["a.txt"]


def test_a_worker_stopped_before_its_page_is_written_leaves_the_file_queued_and_its_next_job_records_a_skip(
        aws_env, tmp_path, monkeypatch):
    with mock_aws():
        from yunpipe.runtime.worker import ledger as ledger_module
        step = Step(tmp_path, max_receive_count=2)
        alg = step.algorithm("sh -c 'cp $input $output'")
        step.put("a.txt")
        step.send("a.txt", body=json.dumps({"bucket": "in-bucket", "key": "a.txt", "etag": "e", "size": 11,
                                            "run": "20261207T120000Z-upload"}))

        class Killed(BaseException):
            """Stands for the task's end between the job's result and its page (a SIGKILL)."""

        def killed(self):
            raise Killed()

        with monkeypatch.context() as patched:
            patched.setattr(ledger_module.Ledger, "write_pages", killed)
            with pytest.raises(Killed):
                step.run(alg, step.config(YUNPIPE_VISIBILITY_SECONDS="1"))
        assert step.output("a.txt") == b"hello world\n"
        assert job_records(step) == {}
        time.sleep(1.5)  # the message turns visible again
        assert step.run(alg) == 0
        (record,) = job_records(step).values()
        assert record["outcome"] == "skipped" and record["results"] == ["a.txt"] and record["attempt"] == 2


def test_a_large_input_s_run_is_read_with_a_head_request(step, monkeypatch):
    from yunpipe.runtime.worker import transfers
    monkeypatch.setattr(transfers, "SINGLE_REQUEST_BYTES", 4)
    alg = step.algorithm("sh -c 'cp $input $output'")
    step.s3.put_object(Bucket="in-bucket", Key="a.txt", Body=b"large", Metadata={"yunpipe-run": "20261207T120000Z-upload"})
    step.send("a.txt")
    step.run(alg)
    assert step.s3.head_object(Bucket="out-bucket", Key="a.txt")["Metadata"]["yunpipe-run"] == "20261207T120000Z-upload"


def test_a_join_takes_its_first_input_s_run_and_a_gather_its_marker_s(step):
    step.s3.create_bucket(Bucket="mask-bucket")
    step.s3.put_object(Bucket="in-bucket", Key="k.txt", Body=b"k", Metadata={"yunpipe-run": "20261207T120000Z-upload"})
    step.s3.put_object(Bucket="mask-bucket", Key="k.txt", Body=b"m", Metadata={"yunpipe-run": "20261207T110000Z-upload"})
    step.s3.put_object(Bucket="in-bucket", Key="batch/a.txt", Body=b"a")
    step.s3.put_object(Bucket="in-bucket", Key="batch/_done", Body=b"",
                       Metadata={"yunpipe-run": "20261207T100000Z-upload"})
    alg = step.algorithm("sh -c 'echo done > $output'")
    step.send("", body=join_body("k.txt", ("seg", "in-bucket", "e1"), ("mask", "mask-bucket", "e2")))
    step.send("", body=gather_body("batch/_done", "batch/"))
    step.run(alg)
    head = step.s3.head_object
    assert head(Bucket="out-bucket", Key="k.txt")["Metadata"]["yunpipe-run"] == "20261207T120000Z-upload"
    assert head(Bucket="out-bucket", Key="batch/_done")["Metadata"]["yunpipe-run"] == "20261207T100000Z-upload"
    record = job_records(step)[records.end_key("demo", "20261207T120000Z-upload", "upper", "k.txt")]
    assert [i["bucket"] for i in record["inputs"]] == ["in-bucket", "mask-bucket"] and record["bytes_in"] == 2


def test_a_message_s_run_that_is_not_a_run_name_is_ignored(step):
    alg = step.algorithm("sh -c 'cp $input $output'")
    step.put("a.txt")
    step.send("a.txt", body=json.dumps({"bucket": "in-bucket", "key": "a.txt", "size": 11, "run": "../evil"}))
    step.run(alg)
    assert step.s3.head_object(Bucket="out-bucket", Key="a.txt")["Metadata"]["yunpipe-run"].endswith("Z-drop")


def test_the_task_record_counts_its_jobs_and_their_seconds_per_run(step):
    alg = step.algorithm("sh -c 'cp $input $output'")
    for key, run in (("a.txt", "20261207T120000Z-upload"), ("b.txt", "20261207T120000Z-upload"),
                     ("c.txt", "20261207T130000Z-submit")):
        step.put(key)
        step.send(key, body=json.dumps({"bucket": "in-bucket", "key": key, "size": 11, "run": run}))
    step.run(alg, step.config(YUNPIPE_TASK_CPU="1024", YUNPIPE_TASK_MEMORY="2048", YUNPIPE_CAPACITY="FARGATE"))
    ((key, task),) = objects(step, "tasks/").items()
    assert key == records.task_key("demo", "upper", task["id"])
    assert task["exit"] == "idle" and task["jobs"] == 3
    assert set(task["job_seconds"]) == {"20261207T120000Z-upload", "20261207T130000Z-submit"}
    ends = job_records(step)
    assert task["job_seconds"]["20261207T130000Z-submit"] == pytest.approx(
        ends[records.end_key("demo", "20261207T130000Z-submit", "upper", "c.txt")]["wall_seconds"], abs=0.002)
    assert {k: task[k] for k in ("cpu", "memory_mib", "capacity", "pipeline", "step")} == {
        "cpu": 1024, "memory_mib": 2048, "capacity": "FARGATE", "pipeline": "demo", "step": "upper"}
    assert records.parse_iso(task["started_at"]) <= records.parse_iso(task["stopped_at"])


def test_the_task_is_named_by_the_ecs_task_metadata_endpoint(step, monkeypatch):
    import http.server

    class Metadata(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = json.dumps({"TaskARN": "arn:aws:ecs:us-east-1:123456789012:task/cluster/0123abcd"}).encode()
            self.send_response(200 if self.path == "/v4/abc/task" else 404)
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Metadata)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        environ = {**os.environ, "ECS_CONTAINER_METADATA_URI_V4": f"http://127.0.0.1:{server.server_port}/v4/abc"}
        ledger = Ledger(step.config(), step.s3, environ=environ)
    finally:
        server.shutdown()
    assert ledger.task["id"] == "0123abcd"


def test_with_accounting_off_nothing_is_recorded_and_no_drop_run_is_opened(step):
    alg = step.algorithm("sh -c 'exit 3'")
    step.put("a.txt")
    step.put("b.txt")
    step.send("a.txt")
    step.run(alg, step.config(YUNPIPE_ACCOUNTING="0"))
    alg = step.algorithm("sh -c 'cp $input $output'")
    step.send("b.txt")
    step.run(alg, step.config(YUNPIPE_ACCOUNTING="0"))
    assert objects(step, "runs/") == {} and objects(step, "tasks/") == {}
    assert list(objects(step, "")) == ["failures/demo/upper/a.txt/attempt-1.json"]
    assert "yunpipe-run" not in step.s3.head_object(Bucket="out-bucket", Key="b.txt")["Metadata"]


def test_a_record_that_cannot_be_written_loses_nothing_of_the_result(step, caplog):
    alg = step.algorithm("sh -c 'cp $input $output'")
    step.put("a.txt")
    step.send("a.txt")
    assert step.run(alg, step.config(YUNPIPE_REPORT_BUCKET="no-such-reports")) == 0
    assert step.output("a.txt") == b"hello world\n"
    assert step.queue_counts() == (0, 0)
    assert "cannot tell the run of s3://in-bucket/a.txt" in caplog.text


def test_a_last_failure_tells_the_pipeline_s_topic_once_per_run(aws_env, tmp_path):
    with mock_aws():
        step = Step(tmp_path)
        sns, sqs = boto3.client("sns"), boto3.client("sqs")
        topic = sns.create_topic(Name="demo")["TopicArn"]
        inbox = sqs.create_queue(QueueName="inbox")["QueueUrl"]
        inbox_arn = sqs.get_queue_attributes(QueueUrl=inbox, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=inbox_arn)
        alg = step.algorithm("sh -c 'echo no such thing >&2; exit 3'")
        for key in ("a.txt", "b.txt"):
            step.put(key)
            step.send(key, body=json.dumps({"bucket": "in-bucket", "key": key, "size": 11,
                                            "run": "20261207T131500Z-upload"}))
        config = step.config(YUNPIPE_TOPIC_ARN=topic)
        ledger = Ledger(config, step.s3, environ=os.environ, sns=sns)
        step.run(alg, config, ledger=ledger)
        messages = sqs.receive_message(QueueUrl=inbox, MaxNumberOfMessages=10).get("Messages", [])
        assert len(messages) == 1
        told = json.loads(json.loads(messages[0]["Body"])["Message"])
        assert told["event"] == "first-failure" and told["run"] == "20261207T131500Z-upload"
        assert told["key"] in ("a.txt", "b.txt") and told["outcome"] == "failed"
        assert "no such thing" in told["log_tail"]
        marker = records.first_failure_key("demo", "20261207T131500Z-upload")
        assert json.loads(step.s3.get_object(Bucket="report-bucket", Key=marker)["Body"].read())["key"] == told["key"]


def test_without_readable_cgroup_files_a_job_runs_on_with_what_rusage_tells(monkeypatch, tmp_path):
    """Not Linux, or a runtime that hides /proc and the cgroup files: no cgroup, no OOM verdict."""
    monkeypatch.setattr(cgroup, "_read", lambda path: None)
    assert cgroup.memory_cgroup() is None
    outcome = run_command(["sh", "-c", "kill -KILL $$"], env=os.environ, cgroup=MemoryCgroup(str(tmp_path), 1))
    assert outcome.exit_code == -9 and not outcome.oom


def test_jobs_started_together_agree_on_the_drop_run_with_one_read_of_its_state(step):
    alg = step.algorithm("sh -c 'cp $input $output'")
    for index in range(8):
        step.put(f"f{index}.txt")
        step.send(f"f{index}.txt")
    state_reads = []
    step.s3.meta.events.register("before-parameter-build.s3.GetObject",
                                 lambda params, **_: state_reads.append(params) if params["Key"].endswith("/drop.json")
                                 else None)
    step.run(alg, step.config(YUNPIPE_PARALLELISM="4"))
    runs_of = {step.s3.head_object(Bucket="out-bucket", Key=f"f{index}.txt")["Metadata"]["yunpipe-run"]
               for index in range(8)}
    assert len(runs_of) == 1 and len(state_reads) == 1
