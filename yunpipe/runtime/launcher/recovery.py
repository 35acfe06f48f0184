"""Events Lambda could not deliver, brought back on the scheduled run.

S3 and EventBridge invoke the launcher asynchronously. An event throttled for longer than its
maximum age, or failing every retry, goes to the launcher's on-failure destination: the step's
failed-events queue, one record per event, the original event in its "requestPayload". The
scheduled run drains that queue and queues each record's objects as if the event had arrived,
deleting a record only once its objects are queued; a record it cannot handle stays for the next
run (and `yunpipe status` counts what waits).

A record's event was never queued by a throttled launcher, and a failing one raises only before
or while sending (so a multi-object event may have queued some of its objects before it failed:
those few are queued again, and run again, overwriting their results under the same keys). A
join's claim makes its replay queue nothing twice.
"""
from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from ..contract import LauncherConfig
from .clients import Clients
from .events import NewObject, read_event
from .log import LOG
from .sending import BATCH_SIZE, SendError

# Records handled per scheduled run, at most: the rest wait for the next run, five minutes on.
# Each batch of ten costs three SQS calls, well within the launcher's timeout.
MAX_RECORDS_PER_RUN = 200
# A received record stays hidden this long (longer than a launcher invocation may run), so a
# run that crashes leaves it for a later one.
RECORD_VISIBILITY_SECONDS = 120


def recover_failed_events(
    config: LauncherConfig, clients: Clients, queue: Callable[[list[NewObject]], Mapping[str, int]]
) -> dict[str, int]:
    """Queue the objects of the events Lambda could not deliver, with `queue` (the handler's
    queueing of an event's objects); returns the counts for the summary. Never raises on AWS
    errors: what is not recovered now stays in the queue."""
    counts = {"recovered": 0, "enqueued": 0, "unreadable": 0}
    try:
        while counts["recovered"] + counts["unreadable"] < MAX_RECORDS_PER_RUN:
            messages = clients.sqs.receive_message(
                QueueUrl=config.failed_events_url, MaxNumberOfMessages=BATCH_SIZE, WaitTimeSeconds=0,
                VisibilityTimeout=RECORD_VISIBILITY_SECONDS,
            ).get("Messages", [])
            if not messages:
                break
            handled: list[Mapping[str, Any]] = []
            try:
                for message in messages:
                    payload = request_payload(message.get("Body", ""))
                    if payload is None:
                        counts["unreadable"] += 1
                        LOG.warning("yunpipe launcher %s/%s: a failed-events record without an event, left in %s: "
                                    "%.200s", config.pipeline, config.step, config.failed_events_url,
                                    message.get("Body", ""))
                        continue
                    _, objects, _ = read_event(payload)
                    counts["enqueued"] += queue(objects).get("enqueued", 0)
                    counts["recovered"] += 1
                    handled.append(message)
            finally:
                # What was queued goes, even when a later record failed: it must not be queued twice.
                if handled:
                    clients.sqs.delete_message_batch(QueueUrl=config.failed_events_url, Entries=[
                        {"Id": str(index), "ReceiptHandle": message["ReceiptHandle"]}
                        for index, message in enumerate(handled)])
    except (ClientError, BotoCoreError, SendError):
        LOG.exception("yunpipe launcher %s/%s: could not recover failed events; they stay queued for the next run",
                      config.pipeline, config.step)
    return counts


def request_payload(body: str) -> Mapping[str, Any] | None:
    """The original event of an on-failure destination's record, or None when it has none."""
    try:
        record = json.loads(body)
    except ValueError:
        return None
    payload = record.get("requestPayload") if isinstance(record, dict) else None
    return payload if isinstance(payload, dict) else None
