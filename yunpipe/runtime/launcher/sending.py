"""Queueing message bodies in batches, resending failed entries."""
from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

# SQS SendMessageBatch and ECS RunTask both take at most 10 per call; DescribeTasks 100.
BATCH_SIZE = 10
# Failed batch entries are resent this many more times before the event is failed.
SEND_RETRIES = 2
# First backoff delay, doubled on each retry (capacity retries and failed batch entries).
BACKOFF_SECONDS = 0.5


class SendError(RuntimeError):
    """Some messages could not be queued; raised so Lambda retries the whole event."""


def send_batch(sqs: Any, queue_url: str, texts: list[str], sleep: Callable[[float], None] = time.sleep) -> dict[int, str]:
    """Queue at most BATCH_SIZE message bodies as they are, resending failed entries; returns
    the index and error ("Code: Message") of each body SQS never took (empty when all were)."""
    pending = dict(enumerate(texts))
    errors: dict[int, str] = {}
    for attempt in range(SEND_RETRIES + 1):
        if attempt:
            sleep(BACKOFF_SECONDS * 2 ** (attempt - 1))
        response = sqs.send_message_batch(
            QueueUrl=queue_url, Entries=[{"Id": str(index), "MessageBody": text} for index, text in pending.items()])
        failed = response.get("Failed", [])
        errors = {int(entry["Id"]): f"{entry.get('Code')}: {entry.get('Message', '')}" for entry in failed}
        pending = {index: pending[index] for index in errors}
        # A sender fault (e.g. a message too large) fails the same way every time.
        if not pending or any(entry.get("SenderFault") for entry in failed):
            break
    return errors


def send_messages(sqs: Any, queue_url: str, bodies: list[dict[str, Any]], sleep: Callable[[float], None]) -> int:
    """Queue every body, resending failed batch entries; raises SendError if some never make it."""
    for start in range(0, len(bodies), BATCH_SIZE):
        errors = send_batch(sqs, queue_url, [json.dumps(body) for body in bodies[start : start + BATCH_SIZE]], sleep)
        if errors:
            raise SendError(f"{len(errors)} message(s) not queued to {queue_url}: {'; '.join(errors.values())}")
    return len(bodies)
