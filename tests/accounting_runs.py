"""Runs written into a deployed pipeline's reports bucket the way the worker and settle write them
(runtime/accounting/records.py's layout and fields), for the tests of `runs`, `report` and the
browser test: pipeline `acct`, two steps (resize, then count).

SETTLED: 20 files, settled; resize ended 18 ok, one `failed` after three tries (poison-1.tif)
and one `oom` (huge.tif); count ran the 18. Its summary.json is written as settle writes it,
with figures worked by hand, so the report must show them, not recompute them.
OPEN: 5 files, still running; resize has 2 done, 1 retrying and 2 waiting; count has 1 done,
and its task is still running (no task record yet).
into_pages moves a run's done jobs' records into pages, as the workers write them now.
"""
import json
from datetime import datetime, timedelta, timezone

from helpers import record_algorithm

from yunpipe import cli
from yunpipe.runtime.accounting import records
from yunpipe.runtime.accounting.runs import write_manifest

PIPELINE = "acct"
REPORTS = "yunpipe-acct-reports-123456789012"
INPUT = "acct-in-bucket"
SETTLED = "20261207T130000Z-upload"
T0 = datetime(2026, 12, 7, 13, 0, 0, tzinfo=timezone.utc)
# The open run opened ten minutes ago: its tasks still run, so its time and cost so far are
# counted up to now.
OPENED = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(minutes=10)
OPEN = records.run_id("submit", OPENED)


def at(seconds: float, base: datetime = T0) -> str:
    return (base + timedelta(seconds=seconds)).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def deploy(write_workflow) -> None:
    """Pipeline acct: resize, then count (setup-pipe in moto)."""
    for name in ("resize", "count"):
        record_algorithm(name, f"user/{name}:1", variables=[])
    path = write_workflow({"name": PIPELINE, "input_s3_name": INPUT, "output_s3_name": "acct-out-bucket",
                           "process": {"type": "graph", "steps": [
                               {"id": "resize", "name": "resize"},
                               {"id": "count", "name": "count", "after": ["resize"]}]}})
    assert cli.setup_pipe_main(["-f", path]) == 0


def task(step: str, number: int, start: float, stop: float | None, base: datetime = T0, jobs: float = 0.0,
         run: str = SETTLED) -> dict:
    """A task record (records.py: TASK_FIELDS, pipeline, step, stopped_at, jobs, job_seconds, exit)."""
    # An ECS task's id: 32 hex digits.
    record = {"version": records.VERSION, "id": f"{number:04x}{'c0' if step == 'count' else 'e5'}"
              "9f3a1d2b4c6e8f0a1b2c3d4e5f6a", "started_at": at(start, base),
              "cpu": 1024 if step == "resize" else 256, "memory_mib": 2048 if step == "resize" else 512,
              "capacity": "FARGATE", "pipeline": PIPELINE, "step": step}
    if stop is not None:
        record.update(stopped_at=at(stop, base), jobs=3, job_seconds={run: jobs}, exit="idle")
    return record


def job(run: str, step: str, key: str, owner: dict, start: float, wall: float, peak: float, outcome: str = "ok",
        attempt: int = 1, final: bool = True, base: datetime = T0, **fields) -> dict:
    limit = owner["memory_mib"]
    return records.job_record(
        pipeline=PIPELINE, run=run, step=step, key=key, inputs=[{"bucket": INPUT, "key": key, "etag": "e"}],
        attempt=attempt, final=final, outcome=outcome, exit_code=0 if outcome == "ok" else fields.pop("exit_code", 1),
        started_at=at(start, base), finished_at=at(start + wall, base), wall_seconds=wall, cpu_seconds=wall * 0.8,
        peak_memory_mib=peak, memory_limit_mib=limit, bytes_in=1000, bytes_out=900 if outcome == "ok" else 0,
        results=[key] if outcome == "ok" else [], result_bucket="acct-out-bucket",
        task={k: owner[k] for k in records.TASK_FIELDS}, **fields)


def put(s3, key: str, body) -> None:
    s3.put_object(Bucket=REPORTS, Key=key, Body=body if isinstance(body, bytes) else json.dumps(body).encode())


def open_run(s3, run: str, kind: str, opened: datetime, inputs: list[str]) -> None:
    manifest = {"version": 1, "run": run, "pipeline": PIPELINE, "kind": kind, "opened_at": at(0, opened),
                "inputs": [{"bucket": INPUT, "key": k} for k in inputs], "closes_after": None, "by": kind}
    assert write_manifest(s3, REPORTS, PIPELINE, manifest)


def write_jobs(s3, jobs: list[dict], tasks: list[dict]) -> None:
    for record in jobs:
        put(s3, records.job_record_key(record), record)
    for record in tasks:
        put(s3, records.task_key(PIPELINE, record["step"], record["id"]), record)


def write_settled(s3) -> dict:
    """The settled run; returns the summary written."""
    files = [f"img-{n:02d}.tif" for n in range(18)] + ["poison-1.tif", "huge.tif"]
    open_run(s3, SETTLED, "upload", T0, files)
    resize = [task("resize", 1, 0, 130, jobs=120.0), task("resize", 2, 2, 140, jobs=126.0)]
    count = [task("count", 1, 20, 100, jobs=36.0)]
    jobs = []
    for n in range(18):
        owner = resize[n % 2]
        jobs.append(job(SETTLED, "resize", files[n], owner, 5 + 6 * (n // 2), 5.0 + (n % 5), 300 + 40 * (n % 7)))
        jobs.append(job(SETTLED, "count", files[n], count[0], 25 + 4 * n, 2.0, 60 + n))
    for attempt in (1, 2, 3):
        jobs.append(job(SETTLED, "resize", "poison-1.tif", resize[attempt % 2], 60 + 10 * attempt, 1.5, 150,
                        outcome="failed", attempt=attempt, final=attempt == 3, exit_code=3,
                        reason="exit status 3", report=f"failures/acct/resize/poison-1.tif/attempt-{attempt}.json",
                        log_tail="reading poison-1.tif\nTraceback (most recent call last):\n"
                                 "ValueError: not a TIFF file"))
    jobs.append(job(SETTLED, "resize", "huge.tif", resize[0], 100, 9.0, 2048, outcome="oom", attempt=3,
                    exit_code=137, reason="killed for exceeding its memory (2048 MiB)",
                    log_tail="allocating 40000 x 40000 pixels"))
    write_jobs(s3, jobs, resize + count)
    summary = {
        "version": 1, "pipeline": PIPELINE, "run": SETTLED, "kind": "upload", "opened_at": at(0),
        "settled_at": at(150), "finished_at": at(109), "duration_seconds": 109.0, "inputs": 20, "jobs": 38,
        "steps": {"resize": {"ok": 18, "skipped": 0, "failed": 1, "timeout": 0, "oom": 1, "interrupted": 0,
                             "wall_seconds": {"p50": 7.0, "p95": 9.0, "max": 9.0},
                             "peak_memory_mib": {"p50": 420.0, "max": 2048.0}, "memory_limit_mib": 2048},
                  "count": {"ok": 18, "skipped": 0, "failed": 0, "timeout": 0, "oom": 0, "interrupted": 0,
                            "wall_seconds": {"p50": 2.0, "p95": 2.0, "max": 2.0},
                            "peak_memory_mib": {"p50": 68.0, "max": 77.0}, "memory_limit_mib": 512}},
        "failures": [
            {"step": "resize", "key": "huge.tif", "outcome": "oom", "reason": "killed for exceeding its memory (2048 MiB)",
             "exit_code": 137, "attempts": 3, "report": None, "log_tail": "allocating 40000 x 40000 pixels"},
            {"step": "resize", "key": "poison-1.tif", "outcome": "failed", "reason": "exit status 3", "exit_code": 3,
             "attempts": 3, "report": "failures/acct/resize/poison-1.tif/attempt-3.json",
             "log_tail": "reading poison-1.tif\nTraceback (most recent call last):\nValueError: not a TIFF file"}],
        "task_seconds": 348.0,
        "cost": {"run": SETTLED, "currency": "USD", "total": 0.0123, "by_step": {"count": 0.0011, "resize": 0.0112},
                 "per_file": 0.000615, "task_seconds": 348.0, "estimated": False,
                 "assumptions": ["prices of us-east-1 from 2026-12-01 (AWS Price List API)"]},
        "report": records.summary_key(PIPELINE, SETTLED),
    }
    put(s3, records.summary_key(PIPELINE, SETTLED), summary)
    s3.delete_object(Bucket=REPORTS, Key=records.open_key(PIPELINE, SETTLED))
    return summary


def write_open(s3) -> None:
    """The open run (see the module's docstring)."""
    files = ["a.tif", "b.tif", "c.tif", "d.tif", "e.tif"]
    open_run(s3, OPEN, "submit", OPENED, files)
    resize = task("resize", 7, 0, None, OPENED)
    counting = task("count", 7, 8, None, OPENED)
    write_jobs(s3, [
        job(OPEN, "resize", "a.tif", resize, 1, 4.0, 350, base=OPENED),
        job(OPEN, "resize", "b.tif", resize, 6, 5.0, 380, base=OPENED),
        job(OPEN, "resize", "c.tif", resize, 12, 2.0, 200, outcome="timeout", final=False, exit_code=None,
            reason="timed out", base=OPENED),
        job(OPEN, "count", "a.tif", counting, 9, 2.0, 70, base=OPENED),
    ], [])  # both tasks still run: no task record yet


def into_pages(s3, run: str) -> list[str]:
    """The run's done jobs' ends/ records moved into pages of at most PAGE_RECORDS, a series per
    task, as the workers write them now; returns the pages' keys."""
    done: dict[tuple[str, str], list[dict]] = {}
    for obj in s3.list_objects_v2(Bucket=REPORTS, Prefix=records.run_prefix(PIPELINE, run) + "ends/")["Contents"]:
        record = json.loads(s3.get_object(Bucket=REPORTS, Key=obj["Key"])["Body"].read())
        if record["outcome"] in records.DONE_OUTCOMES:
            done.setdefault((record["step"], record["task"]["id"]), []).append(record)
            s3.delete_object(Bucket=REPORTS, Key=obj["Key"])
    keys = []
    for (step, task_id), jobs in done.items():
        for serial, first in enumerate(range(0, len(jobs), records.PAGE_RECORDS), 1):
            page = jobs[first:first + records.PAGE_RECORDS]
            keys.append(records.page_key(PIPELINE, run, step, task_id, serial, len(page)))
            put(s3, keys[-1], {"version": records.VERSION, "records": page})
    return keys
