"""One message's job: stage the input(s), run the command, upload the result(s) with their
provenance, or write a failure report. It does not touch the queue (lease does)."""
from __future__ import annotations

import dataclasses
import json
import logging
import os
import threading
import time
from datetime import datetime, timezone
from typing import Any, Mapping

from botocore.exceptions import BotoCoreError, ClientError

from ..contract import WorkerConfig
from .algorithm import command_env
from .command import substitute
from .locks import PathLocks, Scratch
from .message import Job, JobFailure, parse_body
from .paths import job_paths, result_objects
from .process import run_command
from .provenance import provenance
from .staging import stage
from .transfers import upload

log = logging.getLogger("yunpipe.worker")

@dataclasses.dataclass
class JobResult:
    ok: bool
    key: str | None
    attempt: int
    final: bool
    result_keys: list[str] = dataclasses.field(default_factory=list)
    # Set when the job was abandoned because the worker is stopping: no report, no retry delay.
    interrupted: bool = False
    reason: str | None = None
    report: dict | None = None


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def process_message(
    message: dict,
    config: WorkerConfig,
    algorithm: dict,
    s3: Any,
    *,
    environ: Mapping[str, str],
    stop: threading.Event | None = None,
    config_error: str | None = None,
    locks: PathLocks | None = None,
) -> JobResult:
    """Run one job. Does not touch the queue: run_worker deletes or releases the message.
    With a config_error the job fails at once, reporting it. `locks` holds the local paths of
    the jobs running at once: the job starts once none of its own is among them, unless
    `stop` is set first (then it is abandoned untouched)."""
    attempt = int(message.get("Attributes", {}).get("ApproximateReceiveCount", "1"))
    final = attempt >= config.max_receive_count
    started_at, t0 = _now(), time.monotonic()
    job: Job | None = None
    key: str | None = None
    scratch = Scratch(locks or PathLocks())
    stderr_tail, exit_code = "", None
    try:
        job = parse_body(message.get("Body", ""))
        key = job.source.key
        if config_error:
            raise JobFailure("config_error", f"the worker's configuration is bad: {config_error}")
        if not scratch.hold(job_paths(algorithm, job), stop):
            return _abandoned(key, attempt, final)
        staged = stage(s3, algorithm, job, scratch)
        key = staged.key
        argv = substitute(algorithm["run_command"], staged.input_path, staged.output_path, staged.step_inputs)
        timeout = config.timeout_seconds or algorithm["timeout_seconds"]
        try:
            outcome = run_command(
                argv,
                env=command_env(algorithm, environ),
                stdin_path=staged.input_path if algorithm["input_adapter"] == "stdin" else None,
                stdout_path=staged.output_path if algorithm["output_adapter"] == "stdout" else None,
                timeout=timeout,
                stop=stop,
            )
        except OSError as exc:
            raise JobFailure("start_error", f"cannot start {argv[0]!r}: {exc}") from None
        stderr_tail, exit_code = outcome.stderr_tail, outcome.exit_code
        if outcome.interrupted:
            return _abandoned(key, attempt, final)
        if outcome.timed_out:
            raise JobFailure("timeout", f"killed after {timeout} s", exit_code)
        if exit_code != 0:
            raise JobFailure("nonzero_exit", f"command exited with {exit_code}", exit_code)
        objects = result_objects(config.output_prefix, key, staged.output_path)
        if not objects:
            what = "is an empty directory" if os.path.isdir(staged.output_path) else "was not created"
            raise JobFailure("missing_output", f"output {staged.output_path} {what}", exit_code)
        metadata = provenance(config, job, key, attempt)
        for local, result_key in objects:
            try:
                upload(s3, local, config.output_bucket, result_key, metadata)
            except (BotoCoreError, ClientError, OSError) as exc:
                raise JobFailure("upload_error", f"s3://{config.output_bucket}/{result_key}: {exc}", exit_code) from None
        keys = [k for _, k in objects]
        log.info("ok key=%s results=%s duration=%.2fs", key, ",".join(keys), time.monotonic() - t0)
        return JobResult(ok=True, key=key, attempt=attempt, final=final, result_keys=keys)
    except JobFailure as failure:
        report_name = key if key is not None else f"_invalid-message/{message.get('MessageId', 'unknown')}"
        report = {
            "pipeline": config.pipeline,
            "step": config.step,
            "bucket": job.source.bucket if job else None,
            "key": key,
            "etag": job.source.etag if job else None,
            "attempt": attempt,
            "final": final,
            "reason": failure.reason,
            "exit_code": failure.exit_code,
            # A job that failed before or outside the command reports why in place of stderr.
            "stderr_tail": stderr_tail or failure.detail,
            "started_at": started_at,
            "finished_at": _now(),
        }
        log.error(
            "failed key=%s reason=%s attempt=%d/%d final=%s duration=%.2fs: %s",
            key, failure.reason, attempt, config.max_receive_count, final, time.monotonic() - t0, failure.detail,
        )
        write_report(s3, config, report_key(config, report_name, attempt), report)
        return JobResult(ok=False, key=key, attempt=attempt, final=final, reason=failure.reason, report=report)
    finally:
        scratch.clear()


def _abandoned(key: str | None, attempt: int, final: bool) -> JobResult:
    log.warning("abandoned key=%s attempt=%d: worker is stopping", key, attempt)
    return JobResult(ok=False, key=key, attempt=attempt, final=final, interrupted=True, reason="interrupted")


def report_key(config: WorkerConfig, key: str, attempt: int) -> str:
    # An unnamed pipeline/step becomes "_" so the key has no empty path segment.
    return f"failures/{config.pipeline or '_'}/{config.step or '_'}/{key}/attempt-{attempt}.json"


def write_report(s3: Any, config: WorkerConfig, key: str, report: dict) -> None:
    body = json.dumps(report, indent=2)
    if not config.report_bucket:
        log.error("failure report (no YUNPIPE_REPORT_BUCKET): %s", json.dumps(report))
        return
    try:
        s3.put_object(Bucket=config.report_bucket, Key=key, Body=body.encode(), ContentType="application/json")
        log.info("failure report at s3://%s/%s", config.report_bucket, key)
    except (BotoCoreError, ClientError) as exc:
        log.error("cannot write failure report s3://%s/%s (%s): %s", config.report_bucket, key, exc, json.dumps(report))
