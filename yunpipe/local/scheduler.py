"""Fires EventBridge scheduled rules for the local cloud (moto stores them but never fires them).

Every ``poll_interval`` seconds the scheduler lists the enabled rules that have a
``rate(N minute|minutes|hour|hours|day|days)`` ScheduleExpression on every event bus of its
regions, and invokes their Lambda targets through the LambdaHost with a "Scheduled Event"
(or the target's constant ``Input``). A rule first fires one period after the scheduler
first sees it, as on AWS. ``speedup`` divides every period, so ``rate(5 minutes)`` with
``speedup=60`` fires every 5 s. cron() expressions are not evaluated locally: they are
reported once in the log and skipped.

API:
    parse_rate(expression) -> float | None        period in seconds
    Scheduler(endpoint_url, regions, lambda_host, speedup=1.0, poll_interval=1.0)
        .start(), .stop()
"""
from __future__ import annotations

import json
import logging
import re
import time
import uuid
from concurrent.futures import Future
from datetime import datetime, timezone
from typing import Any

from .clients import local_client
from .lambda_host import LambdaHost
from .polling import PollingThread

log = logging.getLogger(__name__)

_RATE = re.compile(r"^rate\(\s*(\d+)\s+(minute|minutes|hour|hours|day|days)\s*\)$")
_UNIT_SECONDS = {"minute": 60, "hour": 3600, "day": 86400}


def parse_rate(expression: str) -> float | None:
    match = _RATE.match(expression.strip())
    if not match:
        return None
    return int(match.group(1)) * _UNIT_SECONDS[match.group(2).rstrip("s")]


def _list_all(client: Any, operation: str, key: str, **kwargs: Any) -> list[Any]:
    # EventBridge's list calls have NextToken but no botocore paginator.
    items: list[Any] = []
    while True:
        page = getattr(client, operation)(**kwargs)
        items.extend(page.get(key, []))
        if not page.get("NextToken"):
            return items
        kwargs["NextToken"] = page["NextToken"]


class Scheduler(PollingThread):
    thread_name = "yunpipe-scheduler"

    def __init__(
        self,
        endpoint_url: str,
        regions: list[str],
        lambda_host: LambdaHost,
        speedup: float = 1.0,
        poll_interval: float = 1.0,
    ):
        if speedup <= 0:
            raise ValueError("speedup must be positive")
        super().__init__(poll_interval)
        self.endpoint_url = endpoint_url
        self.regions = list(regions)
        self.lambda_host = lambda_host
        self.speedup = speedup
        # (region, rule ARN, expression) -> monotonic time of its next firing
        self._next: dict[tuple[str, str, str], float] = {}
        self._warned: set[str] = set()
        self._events: dict[str, object] = {}

    def poll_once(self) -> list[Future]:
        now = time.monotonic()
        fired: list[Future] = []
        seen: set[tuple[str, str, str]] = set()
        for region in self.regions:
            # Building a client costs more than a tick: one per region, used by this thread only.
            if region not in self._events:
                self._events[region] = local_client("events", self.endpoint_url, region)
            events = self._events[region]
            for bus in _list_all(events, "list_event_buses", "EventBuses"):
                for rule in _list_all(events, "list_rules", "Rules", EventBusName=bus["Name"]):
                    expression = rule.get("ScheduleExpression")
                    if not expression or rule.get("State") != "ENABLED":
                        continue
                    period = parse_rate(expression)
                    if period is None:
                        if rule["Arn"] not in self._warned:
                            self._warned.add(rule["Arn"])
                            log.warning("rule %s: %s is not evaluated locally, only rate(...)", rule["Name"], expression)
                        continue
                    key = (region, rule["Arn"], expression)
                    seen.add(key)
                    due = self._next.setdefault(key, now + period / self.speedup)
                    if now >= due:
                        self._next[key] = now + period / self.speedup
                        fired.extend(self._fire(events, region, bus["Name"], rule))
        # Deleted or changed rules start over if they come back.
        for key in set(self._next) - seen:
            del self._next[key]
        return fired

    def _fire(self, events: Any, region: str, bus: str, rule: dict) -> list[Future]:
        futures = []
        targets = _list_all(events, "list_targets_by_rule", "Targets", Rule=rule["Name"], EventBusName=bus)
        for target in targets:
            if ":lambda:" not in target["Arn"]:
                continue
            if "Input" in target:
                event = json.loads(target["Input"])
            else:
                event = {
                    "version": "0",
                    "id": str(uuid.uuid4()),
                    "detail-type": "Scheduled Event",
                    "source": "aws.events",
                    "account": rule["Arn"].split(":")[4],
                    "time": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
                    "region": region,
                    "resources": [rule["Arn"]],
                    "detail": {},
                }
            try:
                futures.append(self.lambda_host.invoke_function(target["Arn"], event, region))
            except Exception:
                log.exception("rule %s: cannot invoke %s", rule["Name"], target["Arn"])
        return futures
