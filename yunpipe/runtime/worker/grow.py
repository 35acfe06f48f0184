"""Out of memory -> more memory: a job the kernel killed for exceeding its task's memory goes on
at the step's next larger size (its grow path: a queue and a task definition of its own, which
setup-pipe creates, engine/grow.py) instead of failing again at the same size. The worker wakes
the step's launcher, which starts that size's task at once (else its scheduled run does, within
minutes). The other files keep running at the normal size. At the largest size there is no next
queue: the job fails as any other, and its queue (maxReceiveCount 1) dead-letters it, reason `oom`."""
from __future__ import annotations

import json
import logging
import os
import threading
from typing import Any

import botocore.session
from botocore.exceptions import BotoCoreError, ClientError

from ..contract import GROW_EVENT_SOURCE, INTERRUPTIONS_ATTRIBUTE, RECEIVES_ATTRIBUTE, WorkerConfig
from .clients import endpoint_url
from .message import receipt

log = logging.getLogger("yunpipe.worker")
# The Lambda client that wakes the launcher: made once, by the first job that grows (a botocore
# session is not thread-safe), and only then (most tasks never need one).
_lambda: dict[tuple[str, str | None], Any] = {}
_lambda_lock = threading.Lock()


def grows(config: WorkerConfig, reason: str | None) -> bool:
    """Whether a job that failed for `reason` goes on at the next size."""
    return reason == "oom" and bool(config.grow_queue_url)


def forward(sqs: Any, config: WorkerConfig, message: dict) -> bool:
    """Send the job to the next size's queue, body unchanged, carrying its receives and
    interruptions so far (message.Receipt: its tries there are numbered on from them), then
    delete it here. False (logged) when it could not be sent: the message stays for SQS to try
    again here."""
    got = receipt(message)
    attributes = {RECEIVES_ATTRIBUTE: {"DataType": "Number", "StringValue": str(got.attempt)},
                  INTERRUPTIONS_ATTRIBUTE: {"DataType": "Number", "StringValue": str(got.interruptions)}}
    try:
        sqs.send_message(QueueUrl=config.grow_queue_url, MessageBody=message["Body"], MessageAttributes=attributes)
    except (BotoCoreError, ClientError) as exc:
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
    wake(config, sqs.meta.region_name)
    return True


def wake(config: WorkerConfig, region: str) -> None:
    """Invoke the step's launcher (asynchronously) to start the larger size's task now. Never
    raises: without it the launcher's scheduled run starts the task."""
    if not config.launcher:
        return
    endpoint = endpoint_url("lambda", os.environ)
    try:
        with _lambda_lock:
            if (region, endpoint) not in _lambda:
                _lambda[region, endpoint] = botocore.session.get_session().create_client(
                    "lambda", region_name=region, endpoint_url=endpoint)
        _lambda[region, endpoint].invoke(FunctionName=config.launcher, InvocationType="Event",
                                         Payload=json.dumps({"source": GROW_EVENT_SOURCE}).encode())
    except (BotoCoreError, ClientError) as exc:
        log.warning("cannot wake the launcher %s (its scheduled run starts the %s MiB task): %s", config.launcher,
                    config.grow_memory, exc)
