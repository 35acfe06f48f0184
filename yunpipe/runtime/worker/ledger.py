"""What the worker keeps of its work in the reports bucket (accounting/records.py): a record per
job, after its results or its failure report (a done job's in its task's next page, written by
write_pages before the job's message is deleted), and the task's own record as it exits. Also
the run each job belongs to, which its results carry.

A record that cannot be written is logged, never raised: accounting never loses, fails or holds
back a result. With accounting off (WorkerConfig.accounting) or no reports bucket nothing is
written and no drop-run is looked up.
"""
from __future__ import annotations

import json
import logging
import socket
import threading
import urllib.request
from datetime import datetime, timezone
from typing import Any, Mapping

from botocore.exceptions import BotoCoreError, ClientError

from ..accounting import notify
from ..accounting.records import DONE_OUTCOMES, PAGE_RECORDS, job_record, job_record_key, now_iso, page_key, task_key
from ..accounting.runs import RunError, _precondition_failed, drop_run, run_from_metadata
from ..contract import WorkerConfig
from .cgroup import MemoryCgroup, memory_cgroup
from .message import Job, Source
from .transfers import Meter

log = logging.getLogger("yunpipe.worker")

# ECS's task metadata endpoint answers on the task's own link at once; a task without it goes on.
METADATA_TIMEOUT_SECONDS = 2
# How a job's failure reason maps to its outcome (anything else is "failed").
FAILURE_OUTCOMES = {"timeout": "timeout", "oom": "oom"}


def task_id(environ: Mapping[str, str]) -> str:
    """The ECS task's id (the end of its ARN, from the task metadata endpoint v4), else the host's
    name (a Docker container's id)."""
    uri = environ.get("ECS_CONTAINER_METADATA_URI_V4", "")
    if uri:
        try:
            with urllib.request.urlopen(f"{uri}/task", timeout=METADATA_TIMEOUT_SECONDS) as answer:
                arn = json.loads(answer.read().decode())["TaskARN"]
            return str(arn).rsplit("/", 1)[-1]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.warning("cannot read the task metadata at %s/task (%s): the task is named by its host", uri, exc)
    return socket.gethostname()


class Ledger:
    """One worker's accounting: its task, the runs of its jobs, and the tallies of the task record."""

    def __init__(self, config: WorkerConfig, s3: Any, *, environ: Mapping[str, str], sns: Any = None,
                 started_at: str | None = None, cgroup: MemoryCgroup | None = None) -> None:
        self.config, self.s3, self.sns = config, s3, sns
        self.enabled = bool(config.accounting and config.report_bucket)
        # Read for every job's OOM verdict, accounting or not.
        self.cgroup = cgroup if cgroup is not None else memory_cgroup()
        self.task = {
            "id": task_id(environ) if self.enabled else "",
            "started_at": started_at or now_iso(),
            "cpu": config.task_cpu,
            "memory_mib": config.task_memory,
            "capacity": config.capacity,
        }
        limit = self.cgroup.limit_mib() if self.cgroup else None
        # The job's memory limit: the container's, else the task's size.
        self.memory_limit_mib = round(limit) if limit is not None else (config.task_memory or None)
        self.jobs = 0
        self.job_seconds: dict[str, float] = {}
        # Done jobs' records not written yet, by run; and how many pages this task wrote.
        self._pages: dict[str, list[dict[str, Any]]] = {}
        self._serial = 0
        self._lock = threading.Lock()
        self._writing = threading.Lock()
        self._drop_run_lock = threading.Lock()

    # ------------------------------------------------------------------ runs

    def run_of(self, job: Job, key: str, meter: Meter) -> str | None:
        """The job's run: the message's, else its input's metadata (a join's first input, a
        gather's marker), else the pipeline's drop-run for when the input arrived. None when it
        cannot be told (logged); without accounting, only what costs no request."""
        if job.run:
            return job.run
        source = job.inputs[0] if job.inputs else Source(job.source.bucket, key)
        known = meter.objects.get((source.bucket, source.key))
        if known is None and not self.enabled:
            return None
        try:
            metadata, modified = known if known is not None else self._head(source)
            run = run_from_metadata(metadata)
            if run or not self.enabled:
                return run
            arrived = modified or datetime.now(timezone.utc)
            # One job at a time: the jobs a worker starts together would otherwise all miss
            # drop_run's memory and race each other's conditional writes; after the first, the
            # others find its answer remembered and ask S3 nothing.
            with self._drop_run_lock:
                return drop_run(self.s3, str(self.config.report_bucket), self.config.pipeline, arrived,
                                self.config.quiet_seconds)
        except (BotoCoreError, ClientError, RunError, ValueError) as exc:
            log.warning("cannot tell the run of %s: %s", source.uri, exc)
            return None

    def _head(self, source: Source) -> tuple[dict[str, str], datetime | None]:
        try:
            answer = self.s3.head_object(Bucket=source.bucket, Key=source.key)
        except ClientError:
            # A gather's name from `yunpipe submit --gather` is no object: the job arrived now.
            return {}, None
        return answer.get("Metadata") or {}, answer.get("LastModified")

    # ------------------------------------------------------------------ records

    def job_ended(self, run: str | None, wall_seconds: float, **fields: Any) -> None:
        """Count the job for the task record and write its record (job_record's fields)."""
        with self._lock:
            self.jobs += 1
            if run:
                self.job_seconds[run] = round(self.job_seconds.get(run, 0.0) + wall_seconds, 3)
        if not self.enabled:
            return
        if not run:
            log.warning("no record of the job of %s: its run is unknown", fields.get("key"))
            return
        try:
            record = job_record(pipeline=self.config.pipeline, step=self.config.step, run=run,
                                wall_seconds=round(wall_seconds, 3), task=self.task, **fields)
            key = job_record_key(record)
        except (ValueError, KeyError) as exc:
            log.error("cannot make the record of the job of %s: %s", fields.get("key"), exc)
            return
        if record["outcome"] in DONE_OUTCOMES:
            with self._lock:
                self._pages.setdefault(run, []).append(record)
            return
        failed = record["final"] and record["outcome"] != "interrupted"
        if self._put(key, record) and failed and self.sns is not None:
            # The file is dead-lettered: tell the pipeline's topic if it is its run's first.
            notify.first_failure(self.s3, self.sns, str(self.config.report_bucket), self.config.topic_arn, record)

    def write_pages(self) -> bool:
        """Write the done jobs' records kept so far, pages of at most PAGE_RECORDS per run; whether
        all were written (the caller then deletes their jobs' messages). A page that cannot be
        written (logged) keeps its records for the next call."""
        with self._writing:
            with self._lock:
                pages, self._pages = self._pages, {}
            failed: dict[str, list[dict[str, Any]]] = {}
            for run, found in pages.items():
                for start in range(0, len(found), PAGE_RECORDS):
                    chunk = found[start:start + PAGE_RECORDS]
                    if not self._put_page(run, chunk):
                        failed.setdefault(run, []).extend(chunk)
            with self._lock:
                for run, found in failed.items():
                    self._pages[run] = found + self._pages.get(run, [])
            return not failed

    def _put_page(self, run: str, found: list[dict[str, Any]]) -> bool:
        """One page, written only where no object is: a task named by its host (no task metadata)
        may share the name with another task's, and then takes the next serial."""
        body = json.dumps({"version": 1, "records": found}).encode()
        for _ in range(PAGE_RECORDS):
            self._serial += 1
            key = page_key(self.config.pipeline, run, self.config.step, str(self.task["id"]), self._serial, len(found))
            try:
                self.s3.put_object(Bucket=self.config.report_bucket, Key=key, Body=body, IfNoneMatch="*",
                                   ContentType="application/json")
                return True
            except ClientError as exc:
                if not _precondition_failed(exc):
                    log.error("cannot write the page s3://%s/%s: %s", self.config.report_bucket, key, exc)
                    return False
            except BotoCoreError as exc:
                log.error("cannot write the page s3://%s/%s: %s", self.config.report_bucket, key, exc)
                return False
        log.error("cannot write a page of run %s: every name tried is taken", run)
        return False

    def task_ended(self, exit_reason: str) -> None:
        """The task's own record, as it exits ("idle", "signal" or "error"), after its last page."""
        if not self.enabled:
            return
        self.write_pages()
        peak = self.cgroup.peak_mib() if self.cgroup else None
        with self._lock:
            record = {"version": 1, **self.task, "pipeline": self.config.pipeline, "step": self.config.step,
                      "stopped_at": now_iso(), "jobs": self.jobs, "job_seconds": dict(self.job_seconds),
                      "exit": exit_reason,
                      # The task's whole peak (the worker, its jobs, the page cache), where the cgroup tells it.
                      "peak_memory_mib": round(peak, 1) if peak is not None else None}
        self._put(task_key(self.config.pipeline, self.config.step, str(self.task["id"])), record)

    def _put(self, key: str, record: Mapping[str, Any]) -> bool:
        try:
            self.s3.put_object(Bucket=self.config.report_bucket, Key=key, Body=json.dumps(record).encode(),
                               ContentType="application/json")
            return True
        except (BotoCoreError, ClientError) as exc:
            log.error("cannot write the record s3://%s/%s: %s", self.config.report_bucket, key, exc)
            return False
