"""One message's job: stage the input(s), run the command, upload the result(s) with their
provenance, or write a failure report; then its record (ledger). It does not touch the queue
(lease does)."""
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
from .grow import grows
from .ledger import FAILURE_OUTCOMES, Ledger
from .locks import PathLocks, Scratch
from .message import Job, JobFailure, parse_body, receipt
from .paths import job_paths, result_objects
from .process import RunOutcome, run_command
from .provenance import provenance, variables_digest
from .skip import done_results
from .staging import Staged, gather_listing, stage
from .transfers import Meter, upload

log = logging.getLogger("yunpipe.worker")
# The failure reason of an exit code the algorithm declares permanent.
PERMANENT_EXIT = "permanent_exit"

@dataclasses.dataclass
class JobResult:
    ok: bool
    key: str | None
    attempt: int
    final: bool
    result_keys: list[str] = dataclasses.field(default_factory=list)
    # Set when the job was abandoned because the worker is stopping: no report, no retry delay.
    interrupted: bool = False
    # Abandoned before anything of it ran (received as the worker stopped, or waiting for
    # another job's paths): its receive was no attempt.
    untouched: bool = False
    # Its results were already there with matching provenance: nothing was run.
    skipped: bool = False
    reason: str | None = None
    report: dict | None = None
    # Out of memory with a larger size to go on at (grow.py): the message is sent on there.
    grows: bool = False


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


@dataclasses.dataclass
class Measured:
    """What a job measured of itself, for its record."""

    started_at: str = dataclasses.field(default_factory=_now)
    t0: float = dataclasses.field(default_factory=time.monotonic)
    meter: Meter = dataclasses.field(default_factory=Meter)
    command: RunOutcome | None = None
    run: str | None = None
    run_known: bool = False

    def restart(self) -> None:
        self.started_at, self.t0 = _now(), time.monotonic()


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
    ledger: Ledger | None = None,
) -> JobResult:
    """Run one job. Does not touch the queue: run_worker deletes or releases the message.
    With a config_error the job fails at once, reporting it. `locks` holds the local paths of
    the jobs running at once: the job starts once none of its own is among them, unless
    `stop` is set first (then it is abandoned untouched). `ledger` records the job once its
    result or failure report is written (a Ledger of its own when not given); a done job's record
    waits in the ledger's pages until its write_pages, which the caller runs before it deletes
    the message (run_worker's DoneMessages)."""
    ledger = ledger or Ledger(config, s3, environ=environ)
    received = receipt(message)
    attempt = received.attempt
    final = received.tries >= config.max_receive_count
    job: Job | None = None
    key: str | None = None
    scratch = Scratch(locks or PathLocks())
    measured = Measured()
    try:
        job = parse_body(message.get("Body", ""))
        key = job.source.key
        if config_error:
            raise JobFailure("config_error", f"the worker's configuration is bad: {config_error}")
        if not scratch.hold(job_paths(algorithm, job), stop):
            return _abandoned(key, attempt, final, untouched=True)
        # Measured from here: waiting for another job's paths is not this job's time.
        measured.restart()
        # A gather's objects, listed once: what the check compares is what the job would gather.
        listing = gather_listing(s3, job.source, job.gather_prefix) if job.gather_prefix is not None else None
        rerun = config.force or job.force or not algorithm["deterministic"]
        done = [] if rerun else done_results(s3, config, algorithm, job, command_env(algorithm, environ), listing)
        if done:
            log.info("skipped key=%s: results %s are there with matching provenance", key, ",".join(done))
            result = JobResult(ok=True, key=key, attempt=attempt, final=final, result_keys=done, skipped=True)
            _record(ledger, job, key, measured, result, "")
            return result
        staged = stage(s3, algorithm, job, scratch, measured.meter, listing)
        key = staged.key
        outcome = run_staged(config, algorithm, staged, environ, stop, ledger, measured)
        if outcome.interrupted:
            result = _abandoned(key, attempt, final)
            _record(ledger, job, key, measured, result, outcome.stderr_tail)
            return result
        objects = result_objects(config.output_prefix, key, staged.output_path)
        if not objects:
            what = "is an empty directory" if os.path.isdir(staged.output_path) else "was not created"
            raise JobFailure("missing_output", f"output {staged.output_path} {what}", outcome.exit_code)
        metadata = provenance(config, job, key, variables=variables_digest(algorithm, command_env(algorithm, environ)),
                              gathered=staged.gathered, results=len(objects), attempt=attempt,
                              run=_run(ledger, job, key, measured))
        for local, result_key in objects:
            try:
                upload(s3, local, config.output_bucket, result_key, metadata, measured.meter)
            except (BotoCoreError, ClientError, OSError) as exc:
                raise JobFailure("upload_error", f"s3://{config.output_bucket}/{result_key}: {exc}",
                                 outcome.exit_code) from None
        keys = [k for _, k in objects]
        log.info("ok key=%s results=%s duration=%.2fs", key, ",".join(keys), time.monotonic() - measured.t0)
        result = JobResult(ok=True, key=key, attempt=attempt, final=final, result_keys=keys)
        _record(ledger, job, key, measured, result, "")
        return result
    except JobFailure as failure:
        # Another try cannot help: the file goes to the dead-letter queue now (lease.settle); out of
        # memory with a larger size left, it goes on there (grow.py), its last try or not.
        grown = grows(config, failure.reason)
        final = (final or failure.reason == PERMANENT_EXIT) and not grown
        # A job that failed before or outside the command reports why in place of stderr.
        stderr_tail = (measured.command.stderr_tail if measured.command else "") or failure.detail
        report_name = key if key is not None else f"_invalid-message/{message.get('MessageId', 'unknown')}"
        report = {
            "pipeline": config.pipeline,
            "step": config.step,
            "bucket": job.source.bucket if job else None,
            "key": key,
            "etag": job.source.etag if job else None,
            "attempt": attempt,
            # Of its attempts, those its tasks were stopped in (a Spot interruption): no tries.
            "interruptions": received.interruptions,
            "final": final,
            "reason": failure.reason,
            "exit_code": failure.exit_code,
            "stderr_tail": stderr_tail,
            # The size it ran at, and the one it goes on at when it ran out of memory.
            "memory_mib": config.task_memory or ledger.memory_limit_mib,
            "retry_memory_mib": config.grow_memory if grown else None,
            "started_at": measured.started_at,
            "finished_at": _now(),
        }
        log.error(
            "failed key=%s reason=%s try=%d/%d final=%s duration=%.2fs: %s",
            key, failure.reason, received.tries, config.max_receive_count, final, time.monotonic() - measured.t0,
            failure.detail,
        )
        where = report_key(config, report_name, attempt)
        written = write_report(s3, config, where, report)
        result = JobResult(ok=False, key=key, attempt=attempt, final=final, reason=failure.reason, report=report,
                           grows=grown)
        if job is not None and key is not None:
            _record(ledger, job, key, measured, result, stderr_tail, report=where if written else None)
        return result
    finally:
        scratch.clear()


def run_staged(config: WorkerConfig, algorithm: dict, staged: Staged, environ: Mapping[str, str],
               stop: threading.Event | None, ledger: Ledger, measured: Measured) -> RunOutcome:
    """Run the job's command, kept in `measured`; JobFailure unless it succeeded or was interrupted."""
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
            cgroup=ledger.cgroup,
        )
    except OSError as exc:
        raise JobFailure("start_error", f"cannot start {argv[0]!r}: {exc}") from None
    measured.command = outcome
    if outcome.interrupted:
        return outcome
    if outcome.timed_out:
        raise JobFailure("timeout", f"killed after {timeout} s", outcome.exit_code)
    if outcome.oom:
        raise JobFailure("oom", "killed by the kernel for exceeding the task's memory limit "
                                f"({ledger.memory_limit_mib or '?'} MiB)", outcome.exit_code)
    if outcome.exit_code in algorithm["permanent_exit_codes"]:
        raise JobFailure(PERMANENT_EXIT, f"command exited with {outcome.exit_code}, which the algorithm declares "
                                         "permanent (permanent_exit_codes): no retry", outcome.exit_code)
    if outcome.exit_code != 0:
        raise JobFailure("nonzero_exit", f"command exited with {outcome.exit_code}", outcome.exit_code)
    return outcome


def _run(ledger: Ledger, job: Job, key: str, measured: Measured) -> str | None:
    """The job's run, asked for once."""
    if not measured.run_known:
        measured.run, measured.run_known = ledger.run_of(job, key, measured.meter), True
    return measured.run


def _outcome(result: JobResult) -> str:
    if result.ok:
        return "skipped" if result.skipped else "ok"
    if result.interrupted:
        return "interrupted"
    return FAILURE_OUTCOMES.get(result.reason or "", "failed")


def _record(ledger: Ledger, job: Job, key: str, measured: Measured, result: JobResult, log_tail: str,
            report: str | None = None) -> None:
    """The job's record, after its results or its failure report: a failure to write it is logged."""
    wall = time.monotonic() - measured.t0
    command = measured.command
    sources = job.inputs or (dataclasses.replace(job.source, key=key),)
    try:
        ledger.job_ended(
            _run(ledger, job, key, measured), wall, key=key, attempt=result.attempt, final=result.final,
            inputs=[{"bucket": s.bucket, "key": s.key, "etag": s.etag} for s in sources],
            outcome=_outcome(result), reason=None if result.ok else result.reason,
            exit_code=command.exit_code if command else None, started_at=measured.started_at, finished_at=_now(),
            cpu_seconds=round(command.cpu_seconds, 3) if command else None,
            peak_memory_mib=round(command.peak_memory_mib, 1) if command else None,
            memory_limit_mib=ledger.memory_limit_mib, bytes_in=measured.meter.bytes_in,
            bytes_out=measured.meter.bytes_out, results=result.result_keys, result_bucket=ledger.config.output_bucket,
            report=report, log_tail=None if result.ok else log_tail)
    except Exception:  # a bug in accounting must not fail a job that has its result
        log.exception("cannot record the job of %s", key)


def _abandoned(key: str | None, attempt: int, final: bool, untouched: bool = False) -> JobResult:
    log.warning("abandoned key=%s attempt=%d: worker is stopping", key, attempt)
    return JobResult(ok=False, key=key, attempt=attempt, final=final, interrupted=True, untouched=untouched,
                     reason="interrupted")


def report_key(config: WorkerConfig, key: str, attempt: int) -> str:
    # An unnamed pipeline/step becomes "_" so the key has no empty path segment.
    return f"failures/{config.pipeline or '_'}/{config.step or '_'}/{key}/attempt-{attempt}.json"


def write_report(s3: Any, config: WorkerConfig, key: str, report: dict) -> bool:
    """Write a failure report; False (logged with the report) when it could not be."""
    body = json.dumps(report, indent=2)
    if not config.report_bucket:
        log.error("failure report (no YUNPIPE_REPORT_BUCKET): %s", json.dumps(report))
        return False
    try:
        s3.put_object(Bucket=config.report_bucket, Key=key, Body=body.encode(), ContentType="application/json")
        log.info("failure report at s3://%s/%s", config.report_bucket, key)
        return True
    except (BotoCoreError, ClientError) as exc:
        log.error("cannot write failure report s3://%s/%s (%s): %s", config.report_bucket, key, exc, json.dumps(report))
        return False
