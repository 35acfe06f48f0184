"""The worker loop: receive messages while jobs run in a pool, exit once the queue stays empty."""
from __future__ import annotations

import logging
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from typing import Any, Mapping

import botocore.session
from botocore.exceptions import BotoCoreError, ClientError

from ..accounting.settle import settle_open_runs
from ..contract import INTERRUPTIONS_ATTRIBUTE, RECEIVES_ATTRIBUTE, WorkerConfig
from .clients import endpoint_url
from .job import JobResult, process_message
from .lease import RETRY_DELAY_SECONDS, DoneMessages, VisibilityHeartbeat, release, settle
from .ledger import Ledger
from .locks import PathLocks

log = logging.getLogger("yunpipe.worker")

# SQS hands out at most this many messages per ReceiveMessage.
RECEIVE_BATCH = 10
# After an empty short poll (YUNPIPE_WAIT_SECONDS 0), the next receive waits this long.
EMPTY_POLL_PAUSE_SECONDS = 0.2
# A worker looks for runs to settle at most this often while it keeps working (a look reads the
# run's records; every worker looking after each lull cost 6% of a busy pipeline's files/s). The
# look before it exits idle is never skipped, and the launcher's schedule looks too.
SETTLE_INTERVAL_SECONDS = 5.0
# The counts that say whether any message of the step waits, runs or waits for its retry.
STEP_QUEUE_COUNTS = ("ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible",
                     "ApproximateNumberOfMessagesDelayed")


def receive_count_attribute(sqs: Any) -> dict:
    """ReceiveMessage's request for each message's ApproximateReceiveCount: by
    MessageSystemAttributeNames where the client's botocore has it (AttributeNames, which SQS
    deprecated for it, takes only queue attribute names in botocore's model), else by
    AttributeNames (the older botocore of an image on Python 3.7 knows no other; SQS still
    accepts it)."""
    members = sqs.meta.service_model.operation_model("ReceiveMessage").input_shape.members
    name = "MessageSystemAttributeNames" if "MessageSystemAttributeNames" in members else "AttributeNames"
    return {name: ["ApproximateReceiveCount"]}


class _Slots:
    """run_worker's jobs in flight: how many, how they ended, and since when none is."""

    def __init__(self, size: int) -> None:
        self.size, self.busy, self.ok, self.failed = size, 0, 0, 0
        self.idle_since = time.monotonic()
        self._changed = threading.Condition()

    def wait_free(self, stop: threading.Event) -> int:
        """The number of free slots, once there is one (or `stop` is set)."""
        with self._changed:
            while self.busy >= self.size and not stop.is_set():
                # `stop` cannot notify: look again now and then.
                self._changed.wait(0.1)
            return self.size - self.busy

    def take(self, count: int) -> None:
        with self._changed:
            self.busy += count

    def end(self, result: JobResult | None) -> None:
        """A job ended: with its result, or None when it crashed."""
        with self._changed:
            self.busy -= 1
            if result is None or not result.interrupted:
                if result is not None and result.ok:
                    self.ok += 1
                else:
                    self.failed += 1
            self.idle_since = time.monotonic()
            self._changed.notify_all()

    def idle_for(self) -> float | None:
        """Seconds since the last job ended (or the worker started), None while one runs."""
        with self._changed:
            return None if self.busy else time.monotonic() - self.idle_since


def step_drained(sqs: Any, config: WorkerConfig) -> bool:
    """Whether the step's queue holds nothing (waiting, in another worker's hands, or waiting for
    its retry): only then can a job of this worker have been a run's last in this step. An
    unreadable count says yes: looking once too often costs little."""
    try:
        counts = sqs.get_queue_attributes(QueueUrl=config.queue_url,
                                          AttributeNames=list(STEP_QUEUE_COUNTS))["Attributes"]
        return not any(int(counts.get(name, 0)) for name in STEP_QUEUE_COUNTS)
    except (BotoCoreError, ClientError, ValueError) as error:
        log.warning("cannot count the messages of %s: %s", config.queue_url, error)
        return True


def settles(config: WorkerConfig) -> bool:
    """Whether this worker settles runs at all (a pipeline with accounting off has no runs)."""
    return bool(config.accounting and config.report_bucket and config.pipeline)


def settle_runs(config: WorkerConfig, s3: Any, sqs: Any, environ: Mapping[str, str]) -> None:
    """Settle the pipeline's runs that have ended: the worker that finds its queue empty after
    its jobs may have ended a run's last job. Never raises: settling never stops the work."""
    bucket = config.report_bucket
    if not settles(config) or bucket is None:  # the second only tells mypy what settles() checked
        return

    def sns() -> Any:
        # Made only to announce a settled run.
        return botocore.session.get_session().create_client("sns", region_name=sqs.meta.region_name,
                                                             endpoint_url=endpoint_url("sns", environ))

    try:
        settled = settle_open_runs(s3, sns, bucket, config.pipeline, datetime.now(timezone.utc), sqs=sqs)
        if settled:
            log.info("settled run(s) %s", ", ".join(settled))
    except Exception:
        log.exception("could not settle the runs of %s; a later check will", config.pipeline)


def run_worker(
    config: WorkerConfig,
    algorithm: dict,
    sqs: Any,
    s3: Any,
    *,
    environ: Mapping[str, str] | None = None,
    stop: threading.Event | None = None,
    retry_delay: int = RETRY_DELAY_SECONDS,
    config_error: str | None = None,
    ledger: Ledger | None = None,
) -> int:
    """Drain the queue until nothing is in flight and it stayed empty for config.idle_seconds,
    or until `stop` is set (jobs running then are abandoned and their messages released).

    Up to config.parallelism jobs run at once, each on a thread of a pool: a receive asks for
    at most as many messages as there are free threads (10 at most), so one job's download or
    upload overlaps another's command. Every message in flight stays in the heartbeat until its
    job is settled. Jobs whose local paths meet take turns (PathLocks).

    Returns the exit code (0). AWS errors outside a job propagate, once the jobs in flight have
    ended. With a config_error every message fails with a report, so SQS moves it to the
    dead-letter queue after its last try. `ledger` records each job and, as the loop ends, the
    task (one of its own when not given)."""
    environ = os.environ if environ is None else environ
    stop = stop or threading.Event()
    ledger = ledger or Ledger(config, s3, environ=environ)
    exit_reason = "error"
    try:
        exit_reason = _drain(config, algorithm, sqs, s3, environ, stop, retry_delay, config_error, ledger)
        return 0
    finally:
        ledger.task_ended(exit_reason)


def _let_go(sqs: Any, config: WorkerConfig, message: dict, result: JobResult | None, retry_delay: int,
            heartbeat: VisibilityHeartbeat, done: DoneMessages) -> None:
    """A job's message once the job ended: a done one is deleted with others once its record is
    written (the heartbeat holds it until then); any other is settled now, or released when the
    job crashed (result None)."""
    if result is not None and result.ok:
        done.add(message)
        return
    heartbeat.drop(message)
    if result is None:
        release(sqs, config, message)
    else:
        settle(sqs, config, message, result, retry_delay)


def _drain(config: WorkerConfig, algorithm: dict, sqs: Any, s3: Any, environ: Mapping[str, str],
           stop: threading.Event, retry_delay: int, config_error: str | None, ledger: Ledger) -> str:
    """run_worker's loop; returns why it ended: "idle" or "signal"."""
    heartbeat = VisibilityHeartbeat(sqs, config.queue_url, config.visibility_seconds)
    done = DoneMessages(sqs, config.queue_url, heartbeat, ledger.write_pages)
    locks = PathLocks()
    slots = _Slots(config.parallelism)

    def work(message: dict) -> None:
        result = None
        try:
            result = process_message(
                message, config, algorithm, s3, environ=environ, stop=stop, config_error=config_error, locks=locks,
                ledger=ledger,
            )
        except Exception:
            # A bug, not the job's failure: the message goes back to SQS, the worker goes on.
            log.exception("job of message %s crashed", message.get("MessageId"))
        finally:
            _let_go(sqs, config, message, result, retry_delay, heartbeat, done)
            slots.end(result)

    checked = 0  # jobs ended when the worker last looked for runs to settle
    looked = -SETTLE_INTERVAL_SECONDS  # when (monotonic) it last looked
    heartbeat.start()
    done.start()
    try:
        with ThreadPoolExecutor(max_workers=config.parallelism, thread_name_prefix="job") as pool:
            while True:
                free = slots.wait_free(stop)
                if stop.is_set():
                    break
                response = sqs.receive_message(
                    QueueUrl=config.queue_url,
                    MaxNumberOfMessages=min(RECEIVE_BATCH, free),
                    WaitTimeSeconds=config.wait_seconds,
                    VisibilityTimeout=config.visibility_seconds,
                    # A handed-back file's receives and interruptions (message.Receipt).
                    MessageAttributeNames=[RECEIVES_ATTRIBUTE, INTERRUPTIONS_ATTRIBUTE],
                    **receive_count_attribute(sqs),
                )
                messages = response.get("Messages", [])
                if not messages:
                    idle = slots.idle_for()
                    leaving = idle is not None and idle >= config.idle_seconds
                    if (settles(config) and idle is not None and slots.ok + slots.failed > checked
                            and (leaving or time.monotonic() - looked >= SETTLE_INTERVAL_SECONDS)):
                        # An empty answer after jobs ended: a run may have ended with them, if
                        # nothing else of the step is left.
                        checked, looked = slots.ok + slots.failed, time.monotonic()
                        # This worker's done messages must not count as the step's work left.
                        done.flush()
                        if step_drained(sqs, config):
                            settle_runs(config, s3, sqs, environ)
                    if leaving:
                        log.info("queue empty for %ss, exiting: %d ok, %d failed",
                                 config.idle_seconds, slots.ok, slots.failed)
                        return "idle"
                    if not config.wait_seconds:
                        # A short poll answers at once: without a pause the loop would ask SQS
                        # (a billed request each) thousands of times a second while jobs run.
                        stop.wait(EMPTY_POLL_PAUSE_SECONDS)
                    continue
                heartbeat.hold(messages)
                slots.take(len(messages))
                for message in messages:
                    # Received as stop was set: process_message abandons it, and it is released.
                    pool.submit(work, message)
        log.info("stopped on request: %d ok, %d failed", slots.ok, slots.failed)
        return "signal"
    finally:
        # The pool has ended every job: delete their messages before the heartbeat stops.
        try:
            done.stop()
        finally:
            heartbeat.stop()
