"""Out of memory -> more memory: a job the kernel killed for exceeding its task's memory goes on
at the step's next larger size (its grow path: a queue and a task definition of its own, which
setup-pipe creates, engine/grow.py) instead of failing again at the same size. The other files
keep running at the normal size. At the largest size there is no next queue: the job fails as
any other, and its queue (maxReceiveCount 1) dead-letters it with reason `oom`."""
from __future__ import annotations

import json
import logging
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from ..contract import WorkerConfig

log = logging.getLogger("yunpipe.worker")


def grows(config: WorkerConfig, reason: str | None) -> bool:
    """Whether a job that failed for `reason` goes on at the next size."""
    return reason == "oom" and bool(config.grow_queue_url)


def forward(sqs: Any, config: WorkerConfig, message: dict, attempt: int) -> bool:
    """Send the job to the next size's queue with the tries it had so far, then delete it here.
    False (logged) when it could not be sent: the message stays for SQS to try again here."""
    try:
        body = json.loads(message["Body"])
        body["attempts"] = attempt
        sqs.send_message(QueueUrl=config.grow_queue_url, MessageBody=json.dumps(body))
    except (BotoCoreError, ClientError, ValueError, TypeError, KeyError) as exc:
        log.error("cannot send message %s on to %s MiB: %s", message.get("MessageId"), config.grow_memory, exc)
        return False
    log.info("out of memory at %s MiB: message %s goes on at %s MiB", config.task_memory, message.get("MessageId"),
             config.grow_memory)
    try:
        sqs.delete_message(QueueUrl=config.queue_url, ReceiptHandle=message["ReceiptHandle"])
    except (BotoCoreError, ClientError) as exc:
        # It comes back here after its visibility timeout; its result is deterministic, so a
        # second run of it overwrites, never duplicates.
        log.warning("cannot delete message %s after sending it on: %s", message.get("MessageId"), exc)
    return True
