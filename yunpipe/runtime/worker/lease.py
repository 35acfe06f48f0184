"""A message's lease on the queue: kept invisible while its job runs, then deleted or released."""
from __future__ import annotations

import logging
import threading
import time
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from ..contract import MAX_VISIBILITY_SECONDS, WorkerConfig
from .grow import forward
from .job import JobResult

log = logging.getLogger("yunpipe.worker")

# A failed job's message becomes visible again after RETRY_DELAY_SECONDS * attempt (capped by
# the visibility window): prompt enough for a retry, yet a transient S3 or network error does
# not burn every try within a second. The final try is released at once so SQS can move it
# to the dead-letter queue on the next receive.
RETRY_DELAY_SECONDS = 10


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


def settle(sqs: Any, config: WorkerConfig, message: dict, result: JobResult, retry_delay: int) -> None:
    """Delete the message of a successful job; send one out of memory on to the next size;
    otherwise leave it for SQS to retry."""
    if result.grows and forward(sqs, config, message, result.attempt):
        return
    try:
        if result.ok:
            sqs.delete_message(QueueUrl=config.queue_url, ReceiptHandle=message["ReceiptHandle"])
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


def release(sqs: Any, config: WorkerConfig, message: dict) -> None:
    try:
        sqs.change_message_visibility(
            QueueUrl=config.queue_url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0
        )
    except (BotoCoreError, ClientError) as exc:
        log.warning("cannot release message %s: %s", message.get("MessageId"), exc)
