"""The reports bucket's layout and the fields of the records yunpipe keeps there.

Everything a user reads about the work (status, runs, report, cost, the dashboard) is computed
from these objects; the worker, the launcher and the host all build their keys here.

    failures/<pipeline>/<step>/<key>/attempt-<N>.json   a failed try's report (as before)
    pipelines/<pipeline>/accounting.json                the pipeline as accounting needs it (setup-pipe)
    runs/<pipeline>/<run>/manifest.json                 the run: who opened it, its inputs (None: a drop-run)
    runs/<pipeline>/<run>/ends/<step>/<key>.json        the job's final record (ok, skipped, dead-lettered)
    runs/<pipeline>/<run>/tries/<step>/<key>/<N>.json   a try that will be tried again (or was interrupted)
    runs/<pipeline>/<run>/pages/<step>/<task>-<N>-<count>.json   a task's page of done jobs' records (ok, skipped)
    runs/<pipeline>/<run>/summary.json                  written once, with If-None-Match: the run settled
    runs/<pipeline>/<run>/first-failure.json            written once: the run's first dead-lettered file
    runs/<pipeline>/open/<run>                          an empty marker while the run is open
    runs/<pipeline>/drop.json                           the pipeline's open drop-run and its last upload
    tasks/<pipeline>/<step>/<task-id>.json              a task's own record, written as it exits

At most one write per job, one per task. A done job's record (ok, skipped) goes into its task's
next page: a page holds the records of the jobs a worker finished within two seconds (at most
PAGE_RECORDS), written before their messages are deleted, so a worker stopped in between leaves
its files queued (their next job finds the results and records a skip), never done unrecorded. A
page's count is in its name, so a reader can tell from a listing alone whether a step can have
ended. Any other record (a failure, a try to be retried) is written on its own at once: it is
rare, and a run's first failure is announced as it happens. A record is small (a log tail of at
most LOG_TAIL_CHARS) and is written after the job's results, never before or in their way.
"""
from __future__ import annotations

import hashlib
from datetime import datetime, timezone
from typing import Any, Mapping

VERSION = 1
# The S3 user metadata that carries a file's run from upload to every result derived from it
# (one of contract.PROVENANCE_FIELDS).
RUN_METADATA = "yunpipe-run"
# How a job ended. ok, skipped: it has its result. failed, timeout, oom: the command (or the job
# around it) failed; oom when the kernel killed it for exceeding its memory. interrupted: the task
# was stopped under it (a scale-in, a Spot reclaim, clean-up); the file is tried again elsewhere.
OUTCOMES = ("ok", "skipped", "failed", "timeout", "oom", "interrupted")
DONE_OUTCOMES = ("ok", "skipped")
# How a run was opened. A drop-run gathers the files other S3 clients drop; it closes after the
# workflow's quiet period without a new one.
RUN_KINDS = ("upload", "submit", "drop")
LOG_TAIL_CHARS = 2048
# S3 keys are at most 1024 bytes (UTF-8); a record whose key would be longer is named by its
# input key's SHA-256 instead (the record's body still holds the key).
MAX_KEY_BYTES = 1024
# The most records a page holds: a worker writes its page when it has this many (or 2 s after
# its first), so a busy step writes a tenth of the objects one record per job would.
PAGE_RECORDS = 10


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_iso(text: str) -> datetime:
    """A record's timestamp (ISO 8601, 'Z' or an offset) as an aware datetime."""
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _fit(prefix: str, key: str, suffix: str) -> str:
    whole = f"{prefix}{key}{suffix}"
    if len(whole.encode("utf-8")) <= MAX_KEY_BYTES:
        return whole
    return f"{prefix}_sha256/{hashlib.sha256(key.encode('utf-8', 'surrogatepass')).hexdigest()}{suffix}"


def pipeline_key(pipeline: str) -> str:
    return f"pipelines/{pipeline}/accounting.json"


def run_prefix(pipeline: str, run: str) -> str:
    return f"runs/{pipeline}/{run}/"


def manifest_key(pipeline: str, run: str) -> str:
    return run_prefix(pipeline, run) + "manifest.json"


def end_key(pipeline: str, run: str, step: str, key: str) -> str:
    return _fit(run_prefix(pipeline, run) + f"ends/{step}/", key, ".json")


def try_key(pipeline: str, run: str, step: str, key: str, attempt: int) -> str:
    return _fit(run_prefix(pipeline, run) + f"tries/{step}/", key, f"/{attempt}.json")


def summary_key(pipeline: str, run: str) -> str:
    return run_prefix(pipeline, run) + "summary.json"


def first_failure_key(pipeline: str, run: str) -> str:
    return run_prefix(pipeline, run) + "first-failure.json"


def open_prefix(pipeline: str) -> str:
    return f"runs/{pipeline}/open/"


def open_key(pipeline: str, run: str) -> str:
    return open_prefix(pipeline) + run


def drop_key(pipeline: str) -> str:
    return f"runs/{pipeline}/drop.json"


def page_prefix(pipeline: str, run: str) -> str:
    return run_prefix(pipeline, run) + "pages/"


def page_key(pipeline: str, run: str, step: str, task_id: str, serial: int, count: int) -> str:
    """Where a task's `serial`-th page of `count` done jobs' records of the run goes."""
    return f"{page_prefix(pipeline, run)}{step}/{task_id}-{serial:06d}-{count}.json"


def page_parts(prefix: str, key: str) -> tuple[str, int]:
    """(step, count of records) of a page's key under the run's page_prefix; ValueError otherwise."""
    step, _, name = key[len(prefix):].partition("/")
    task, _, rest = name.removesuffix(".json").rpartition("-")
    if not key.startswith(prefix) or not step or "/" in name or not name.endswith(".json") \
            or not task or not rest.isdigit() or int(rest) < 1:
        raise ValueError(f"{key} is not a page's key")
    return step, int(rest)


def page_records(body: Any) -> list[dict[str, Any]]:
    """The job records of a page's JSON body; ValueError when it is not a page."""
    found = body.get("records") if isinstance(body, dict) else None
    if not isinstance(found, list) or not all(isinstance(r, dict) for r in found):
        raise ValueError("a page is a JSON object whose records are a list of job records")
    return found


def task_key(pipeline: str, step: str, task_id: str) -> str:
    return f"tasks/{pipeline}/{step}/{task_id}.json"


def run_id(kind: str, at: datetime, serial: int = 1) -> str:
    """A run's name: when and how it was opened, e.g. 20261207T131500Z-upload; a second run of the
    same kind in the same second is -2, and so on (taken with a conditional write of its manifest)."""
    if kind not in RUN_KINDS:
        raise ValueError(f"run kind must be one of {', '.join(RUN_KINDS)}, got {kind!r}")
    name = f"{at.astimezone(timezone.utc):%Y%m%dT%H%M%SZ}-{kind}"
    return name if serial == 1 else f"{name}-{serial}"


# The fields of each record, as written (JSON objects; "version" is VERSION in each).
#
# manifest: run, pipeline, kind, opened_at, inputs ([{"bucket", "key"}] or None for a drop-run),
#   closes_after (a drop-run's quiet period, seconds), by (the command or "s3"); submit's also
#   steps (the steps it sent them to; without it, the entry steps whose filters take them), and
#   one whose sending stopped half-way stopped ("N of M sent", inputs then what was sent).
# descriptor (pipeline_key, written by setup-pipe): pipeline, region, accounting, run_quiet_seconds,
#   topic_arn, steps ([{name, sources [{step ("input": the input bucket), bucket}], entry,
#   downstream, triggered, join, gather, marker, prefix, suffix, output_bucket, output_prefix,
#   cpu (units), memory_mib, max_receive_count, queue, failed_events_queue}], workflow order).
# page: version, records (job records, each with outcome ok or skipped).
# job record (ends/, tries/ and in pages): pipeline, run, step, key, inputs ([{"bucket", "key", "etag"}]),
#   attempt, final, outcome (OUTCOMES), reason (the failure reason of the report, or None),
#   exit_code, started_at, finished_at, wall_seconds, cpu_seconds, peak_memory_mib,
#   memory_limit_mib, bytes_in, bytes_out, results ([keys] in result_bucket), result_bucket,
#   report (the failures/ key, or None), log_tail (the command's stderr tail, failures only),
#   task (TASK_FIELDS of the task that ran it).
# task record: TASK_FIELDS plus pipeline, step, stopped_at, jobs (count), job_seconds
#   ({run: seconds of jobs of that run}), exit (why it stopped: "idle", "signal", "error").
# summary: pipeline, run, kind, opened_at, settled_at, inputs (count), steps ({step: {outcome:
#   count, "wall_seconds": {p50, p95, max}, "peak_memory_mib": {p50, max}, "memory_limit_mib", and
#   "grown": {jobs, max_memory_mib} when jobs ended at a larger memory than the step's}}),
#   failures ([{step, key, outcome, reason, exit_code, attempts, report, log_tail, memory_mib}]),
#   task_seconds, cost (cost.run_cost), report (its own key); also finished_at (its last job's
#   end), duration_seconds (opened_at to finished_at) and jobs (count).
TASK_FIELDS = ("id", "started_at", "cpu", "memory_mib", "capacity")
JOB_FIELDS = ("pipeline", "run", "step", "key", "inputs", "attempt", "final", "outcome", "reason", "exit_code",
              "started_at", "finished_at", "wall_seconds", "cpu_seconds", "peak_memory_mib", "memory_limit_mib",
              "bytes_in", "bytes_out", "results", "result_bucket", "report", "log_tail", "task")


def job_record(**fields: Any) -> dict[str, Any]:
    """A job record with every JOB_FIELDS field (missing ones None), checked for its outcome."""
    unknown = set(fields) - set(JOB_FIELDS)
    if unknown:
        raise ValueError(f"unknown job record field(s): {', '.join(sorted(unknown))}")
    record = {"version": VERSION, **{name: fields.get(name) for name in JOB_FIELDS}}
    if record["outcome"] not in OUTCOMES:
        raise ValueError(f"outcome must be one of {', '.join(OUTCOMES)}, got {record['outcome']!r}")
    if isinstance(record["log_tail"], str):
        record["log_tail"] = record["log_tail"][-LOG_TAIL_CHARS:]
    return record


def job_record_key(record: Mapping[str, Any]) -> str:
    """Where a job record goes: ends/ when the file is done with this step (its result, a skip, or a
    last try's failure, which SQS moves to the dead-letter queue), tries/ otherwise."""
    ended = record["outcome"] in DONE_OUTCOMES or (record["final"] and record["outcome"] != "interrupted")
    if ended:
        return end_key(record["pipeline"], record["run"], record["step"], record["key"])
    return try_key(record["pipeline"], record["run"], record["step"], record["key"], record["attempt"])
