"""What Lambda does with a failed asynchronous invocation, for the local Lambda host: try it again
the function's MaximumRetryAttempts more times (2 without an event invoke config), about 1 then 2
minutes later, then send its event to the on-failure destination (an SQS queue) as a record in
Lambda's format, "requestPayload" the event; without a destination the event is dropped.

API:
    event_invoke_config(function) -> dict    moto's put_function_event_invoke_config, {} if none
    retry_delay(config, attempt, speedup) -> float | None   seconds until the next try, None: no more
    give_up(function, event, attempts, error, config, client)   to the destination, or logged
    failure_record(function, event, attempts, error) -> dict
"""
from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

log = logging.getLogger(__name__)

DEFAULT_RETRY_ATTEMPTS = 2
RETRY_DELAYS_SECONDS = (60.0, 120.0)


def event_invoke_config(function: Any) -> dict:
    configs = getattr(function, "event_invoke_config", None) or []
    return dict(configs[0].config) if configs else {}


def retry_delay(config: dict, attempt: int, speedup: float) -> float | None:
    """After try number `attempt` failed: seconds until the next, or None when it was the last."""
    if attempt > config.get("MaximumRetryAttempts", DEFAULT_RETRY_ATTEMPTS):
        return None
    return RETRY_DELAYS_SECONDS[min(attempt, len(RETRY_DELAYS_SECONDS)) - 1] / speedup


def failure_record(function: Any, event: dict, attempts: int, error: Exception) -> dict:
    return {
        "version": "1.0",
        "timestamp": datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "requestContext": {"requestId": str(uuid.uuid4()), "functionArn": f"{function.function_arn}:$LATEST",
                           "condition": "RetriesExhausted", "approximateInvokeCount": attempts},
        "requestPayload": event,
        "responseContext": {"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"},
        "responsePayload": {"errorMessage": str(error), "errorType": type(error).__name__},
    }


def give_up(function: Any, event: dict, attempts: int, error: Exception, config: dict,
            client: Callable[[str, str], Any]) -> None:
    """The event after its last try: to the on-failure destination (`client(service, region)` makes
    the SQS client), else dropped, as Lambda does. Never raises: it runs after the invocation."""
    destination = ((config.get("DestinationConfig") or {}).get("OnFailure") or {}).get("Destination", "")
    parts = destination.split(":")
    if len(parts) != 6 or parts[2] != "sqs":
        log.warning("Lambda function %s failed %d times: its event is dropped (%s)", function.function_name,
                    attempts, f"on-failure destination {destination} is not a queue" if destination
                    else "no on-failure destination")
        return
    try:
        sqs = client("sqs", parts[3])
        url = sqs.get_queue_url(QueueName=parts[5], QueueOwnerAWSAccountId=parts[4])["QueueUrl"]
        sqs.send_message(QueueUrl=url, MessageBody=json.dumps(failure_record(function, event, attempts, error)))
    except Exception as exc:  # noqa: BLE001 - a lost event is logged, as Lambda would
        log.warning("Lambda function %s: cannot send a failed event to %s: %s", function.function_name, destination, exc)
