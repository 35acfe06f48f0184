"""The Lambda handler: queue the event's new objects for the step (on a scheduled run, those of
the events Lambda could not deliver, and settle the pipeline's runs that have ended), then top
up its workers (on a scheduled run also those of its larger sizes)."""
from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from typing import Any

from ..accounting.settle import settle_open_runs
from ..contract import LauncherConfig
from .clients import Clients, clients_from_env
from .events import NewObject, gather_body, object_body, read_event
from .joins import queue_joins
from .log import LOG
from .recovery import recover_failed_events
from .scaling import top_up_grow_paths, top_up_workers
from .sending import send_messages


def handler(event: Mapping[str, Any], context: Any) -> dict[str, Any]:
    return handle(event, LauncherConfig.from_env(), clients_from_env())


def handle(
    event: Mapping[str, Any],
    config: LauncherConfig,
    clients: Clients,
    sleep: Callable[[float], None] = time.sleep,
) -> dict[str, Any]:
    """Queue the event's new objects, then top up workers. Returns the invocation summary."""
    if event.get("Event") == "s3:TestEvent":
        # S3 sends this once when a notification is configured; there is nothing to run.
        idle: dict[str, Any] = {"enqueued": 0, "skipped": 0, "started": 0, "running": 0, "failures": []}
        _log_summary(config, "s3:TestEvent", idle)
        return idle

    trigger, objects, skipped = read_event(event)
    counts = queue_objects(objects, config, clients, sleep)
    counts["skipped"] += skipped
    if trigger == "schedule" and config.failed_events_url:
        recovered = recover_failed_events(config, clients, lambda found: queue_objects(found, config, clients, sleep))
        counts["enqueued"] += recovered.pop("enqueued")
        counts.update(recovered)
    keys = tuple(obj.key for obj in objects)
    summary: dict[str, Any] = {**counts, **top_up_workers(config, clients, counts["enqueued"], sleep, keys)}
    if trigger in ("schedule", "grow") and config.grow:
        # Jobs out of memory wait for the larger sizes: a worker that sends one there wakes the
        # launcher, and the schedule looks too (S3 events do not: no calls on their hot path).
        summary["grow"] = top_up_grow_paths(config, clients, sleep)
    if trigger == "schedule" and config.report_bucket and config.accounting:
        summary["settled"] = settle_runs(config, clients)
    _log_summary(config, trigger, summary)
    return summary


def queue_objects(
    objects: list[NewObject], config: LauncherConfig, clients: Clients, sleep: Callable[[float], None]
) -> dict[str, int]:
    """Queue the step's messages for the new objects; returns the counts for the summary."""
    if config.join:
        return queue_joins(objects, config, clients, sleep)
    body = gather_body if config.gather else object_body
    bodies = [body(obj, config) for obj in objects]
    return {"enqueued": send_messages(clients.sqs, config.queue_url, bodies, sleep), "skipped": 0}


def settle_runs(config: LauncherConfig, clients: Clients) -> list[str]:
    """Settle the pipeline's runs that have ended (every step's launcher looks: the summary's
    conditional write lets one win). Never raises: settling never stops the launches."""
    try:
        return settle_open_runs(clients.s3, lambda: clients.sns, config.report_bucket, config.pipeline,
                                datetime.now(timezone.utc), sqs=clients.sqs)
    except Exception:  # noqa: BLE001 - logged whole; a bug in settling must not stop the launches
        LOG.exception("yunpipe launcher %s/%s: could not settle runs; the next scheduled run looks again",
                      config.pipeline, config.step)
        return []


def _log_summary(config: LauncherConfig, trigger: str, summary: Mapping[str, Any]) -> None:
    LOG.info("yunpipe launcher %s/%s %s: %s", config.pipeline, config.step, trigger, json.dumps(summary))
