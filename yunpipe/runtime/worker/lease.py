"""A message's lease on the queue: kept invisible while its job runs, then deleted or released."""
from __future__ import annotations

import logging
import threading
import time
from typing import Any, Callable

from botocore.exceptions import BotoCoreError, ClientError

from ..accounting.records import PAGE_RECORDS
from ..contract import (
    INTERRUPTIONS_ATTRIBUTE,
    MAX_INTERRUPTIONS,
    MAX_VISIBILITY_SECONDS,
    RECEIVES_ATTRIBUTE,
    WorkerConfig,
)
from .grow import forward
from .job import JobResult
from .message import receipt

log = logging.getLogger("yunpipe.worker")

# A failed job's message becomes visible again after RETRY_DELAY_SECONDS * attempt (capped by
# the visibility window): prompt enough for a retry, yet a transient S3 or network error does
# not burn every try within a second. The final try is released at once so SQS can move it
# to the dead-letter queue on the next receive.
RETRY_DELAY_SECONDS = 10
# A done job's message waits at most about this long to be deleted with others (DoneMessages).
DONE_WAIT_SECONDS = 2.0
# SQS deletes at most this many messages per DeleteMessageBatch.
DELETE_BATCH = 10


class VisibilityHeartbeat:
    """Keeps every message this worker holds invisible to other workers, extending each by
    `visibility` seconds every `visibility / 2` seconds: every job in flight, also one waiting
    for another job's local paths. SQS refuses an extension past 12 h from the receive
    (MAX_VISIBILITY_SECONDS), so the last one asks for what is left rather than being refused
    and losing the message early."""

    def __init__(self, sqs: Any, queue_url: str, visibility: int) -> None:
        self._sqs, self._queue_url, self._visibility = sqs, queue_url, visibility
        self._held: dict[str, tuple[str, float]] = {}  # receipt handle -> message id, when held
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="visibility-heartbeat", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopped.set()
        self._thread.join()

    def hold(self, messages: list[dict]) -> None:
        with self._lock:
            now = time.monotonic()
            self._held.update((m["ReceiptHandle"], (m.get("MessageId", ""), now)) for m in messages)

    def drop(self, message: dict) -> None:
        """Stop extending; once this returns no extension is in flight for the message, so the
        caller's delete or visibility change is the last word."""
        with self._lock:
            self._held.pop(message["ReceiptHandle"], None)

    def _run(self) -> None:
        while not self._stopped.wait(self._visibility / 2):
            with self._lock:
                for handle, (message_id, held) in list(self._held.items()):
                    # Held a moment after SQS's receive: a few seconds to spare.
                    left = int(MAX_VISIBILITY_SECONDS - (time.monotonic() - held)) - 5
                    if left <= 0:
                        continue
                    try:
                        self._sqs.change_message_visibility(
                            QueueUrl=self._queue_url, ReceiptHandle=handle,
                            VisibilityTimeout=min(self._visibility, left),
                        )
                    except (BotoCoreError, ClientError) as exc:
                        log.warning("cannot extend visibility of message %s: %s", message_id, exc)


class DoneMessages:
    """The messages of jobs that have their results, deleted together: when PAGE_RECORDS of them
    wait, when the first has waited DONE_WAIT_SECONDS, or when the worker asks (it is about to
    count its queue, or to exit). `before_delete` runs first and writes their jobs' records (the
    ledger's pages): a worker stopped in between leaves the files queued, and their next job
    finds the results and records a skip, so no done file goes unrecorded. One DeleteMessageBatch
    for up to ten files, not a DeleteMessage each, saves the queue a request per file."""

    def __init__(self, sqs: Any, queue_url: str, heartbeat: VisibilityHeartbeat,
                 before_delete: Callable[[], bool]) -> None:
        self._sqs, self._queue_url, self._heartbeat = sqs, queue_url, heartbeat
        self._before_delete = before_delete
        self._waiting: list[dict] = []
        self._since = 0.0  # when (monotonic) the first waiting message was added
        self._lock = threading.Lock()
        self._deleting = threading.Lock()
        self._stopped = threading.Event()
        # Set when PAGE_RECORDS wait: the thread writes and deletes them, so a job's thread never
        # waits for those requests before it takes its next job.
        self._full = threading.Event()
        self._thread = threading.Thread(target=self._run, name="done-messages", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Stop the thread, then delete what waits. Messages whose records still cannot be written
        are left to turn visible again: their next job finds the results and records a skip."""
        self._stopped.set()
        self._full.set()
        self._thread.join()
        if not self.flush():
            with self._lock:
                left, self._waiting = self._waiting, []
            for message in left:
                self._heartbeat.drop(message)
            log.warning("%d done message(s) left undeleted: their records could not be written", len(left))

    def add(self, message: dict) -> None:
        with self._lock:
            if not self._waiting:
                self._since = time.monotonic()
            self._waiting.append(message)
            if len(self._waiting) >= PAGE_RECORDS:
                self._full.set()

    def flush(self) -> bool:
        """Write the waiting messages' records, then delete the messages; False, and nothing
        deleted, when a record could not be written (the messages wait for the next flush). The
        heartbeat keeps them invisible until then."""
        with self._deleting:
            with self._lock:
                waiting, self._waiting = self._waiting, []
            # Records first: every message taken above had its record kept before it was added.
            try:
                written = self._before_delete()
            except Exception:  # a bug in accounting must not lose a message or stop this thread
                log.exception("cannot write the records of %d done job(s)", len(waiting))
                written = False
            if not written:
                with self._lock:
                    self._waiting[:0] = waiting
                    self._since = time.monotonic()
                return False
            for start in range(0, len(waiting), DELETE_BATCH):
                self._delete(waiting[start:start + DELETE_BATCH])
            return True

    def _delete(self, messages: list[dict]) -> None:
        for message in messages:
            self._heartbeat.drop(message)
        entries = [{"Id": str(n), "ReceiptHandle": m["ReceiptHandle"]} for n, m in enumerate(messages)]
        try:
            answer = self._sqs.delete_message_batch(QueueUrl=self._queue_url, Entries=entries)
        except (BotoCoreError, ClientError) as exc:
            # Left for SQS to hand out again: the next job finds the results and skips.
            log.warning("cannot delete %d done message(s): %s", len(messages), exc)
            return
        for failed in answer.get("Failed", []):
            message = messages[int(failed["Id"])]
            log.warning("cannot delete message %s: %s", message.get("MessageId"), failed.get("Message"))

    def _run(self) -> None:
        while not self._stopped.is_set():
            self._full.wait(DONE_WAIT_SECONDS / 4)
            with self._lock:
                due = bool(self._waiting) and (self._full.is_set()
                                               or time.monotonic() - self._since >= DONE_WAIT_SECONDS)
                self._full.clear()
            if due:
                self.flush()


def settle(sqs: Any, config: WorkerConfig, message: dict, result: JobResult, retry_delay: int) -> None:
    """Settle the message of a job that did not end with its results (DoneMessages deletes those
    that did). A job out of memory is sent on to the step's next size (grow.py). An interrupted job's file is handed back without using up a try, a last
    try's sent to the dead-letter queue when SQS would not yet move it (a permanent exit code,
    or a file handed back before); otherwise the message is left for SQS to retry."""
    if result.grows and forward(sqs, config, message):
        return
    try:
        if result.interrupted and hand_back(sqs, config, message, result.untouched):
            return
        if (result.final and receipt(message).received < config.max_receive_count
                and dead_letter(sqs, config, message)):
            return
        if result.interrupted or result.final:
            delay = 0
        else:
            delay = min(retry_delay * result.attempt, config.visibility_seconds)
        sqs.change_message_visibility(
            QueueUrl=config.queue_url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=delay
        )
    except (BotoCoreError, ClientError) as exc:
        # Typically an expired receipt handle: SQS already made the message visible again.
        log.warning("cannot settle message %s: %s", message.get("MessageId"), exc)


def _number(value: int) -> dict:
    return {"DataType": "Number", "StringValue": str(value)}


def hand_back(sqs: Any, config: WorkerConfig, message: dict, untouched: bool = False) -> bool:
    """Queue an interrupted job's file again as a new message that carries its receives and
    interruptions (message.Receipt), then delete this one: SQS's receive count, which its
    redrive goes by, starts again, so the interruption uses up no try. A job `untouched` (none
    of it ran: received as the worker stopped) hands back the counts it came with, as if never
    received: a stopping worker's last receive returns such messages, and counting them would
    spend two interruptions of the bound on one stop. False, and nothing sent, once the file
    was interrupted MAX_INTERRUPTIONS times or when SQS refuses: the caller then releases the
    message, and this receive counts as a try."""
    got = receipt(message)
    if untouched:
        receives, interruptions = got.attempt - 1, got.interruptions
    elif got.interruptions >= MAX_INTERRUPTIONS:
        log.warning("message %s was interrupted %d times: this interruption counts as a try",
                    message.get("MessageId"), got.interruptions)
        return False
    else:
        receives, interruptions = got.attempt, got.interruptions + 1
    attributes = {RECEIVES_ATTRIBUTE: _number(receives), INTERRUPTIONS_ATTRIBUTE: _number(interruptions)}
    try:
        sqs.send_message(QueueUrl=config.queue_url, MessageBody=message["Body"], MessageAttributes=attributes)
    except (BotoCoreError, ClientError) as exc:
        log.warning("cannot hand back message %s (%s): it is released and this receive counts as a try",
                    message.get("MessageId"), exc)
        return False
    # Should this fail, the old message turns visible again and the file is queued twice; the
    # later of its two jobs finds the earlier one's results and skips.
    sqs.delete_message(QueueUrl=config.queue_url, ReceiptHandle=message["ReceiptHandle"])
    log.info("handed back message %s (%d interruption(s) of at most %d)", message.get("MessageId"),
             interruptions, MAX_INTERRUPTIONS)
    return True


def dead_letter(sqs: Any, config: WorkerConfig, message: dict) -> bool:
    """Send a failed file's message to the step's dead-letter queue now, body unchanged (so
    `yunpipe retry` queues it as a first try), and delete it here. False, and nothing sent,
    without a dead-letter queue or when SQS refuses: the caller then leaves it to SQS's redrive."""
    if not config.dead_letter_url:
        log.warning("no dead-letter queue set (YUNPIPE_DEAD_LETTER_URL): message %s is left for SQS's redrive",
                    message.get("MessageId"))
        return False
    try:
        sqs.send_message(QueueUrl=config.dead_letter_url, MessageBody=message["Body"])
    except (BotoCoreError, ClientError) as exc:
        log.warning("cannot send message %s to the dead-letter queue (%s): it is left for SQS's redrive",
                    message.get("MessageId"), exc)
        return False
    sqs.delete_message(QueueUrl=config.queue_url, ReceiptHandle=message["ReceiptHandle"])
    log.info("sent message %s to the dead-letter queue", message.get("MessageId"))
    return True


def release(sqs: Any, config: WorkerConfig, message: dict) -> None:
    try:
        sqs.change_message_visibility(
            QueueUrl=config.queue_url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0
        )
    except (BotoCoreError, ClientError) as exc:
        log.warning("cannot release message %s: %s", message.get("MessageId"), exc)
