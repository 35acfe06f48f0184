"""The scaling policy: how many workers a step's backlog wants, when to look at it, and the cap."""
from __future__ import annotations

import dataclasses
import hashlib
import math
import time
from collections.abc import Callable, Mapping
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from ..contract import LauncherConfig
from .clients import Clients
from .log import LOG
from .tasks import DESCRIBE_BATCH, count_running_tasks, report_task_starts, run_tasks, running_task_arns

# How often per files_per_task waiting files a busy step looks at its backlog (backlog_check_due).
BACKLOG_CHECKS_PER_TASK = 5
# A warm launcher remembers, per step, when an S3 event's ListTasks last found the step's workers
# at work and how many (plus those it started since); an event this soon after it trusts that
# count instead of asking again (_remember says which listings are kept). ListTasks on every
# file's event was a burst's busiest call, and ECS rate-limits it per account. The race a
# listing always had (it counts a task that is just leaving, until ECS has seen it stop) lasts at
# most this much longer; the next event after it, or the schedule, starts a task for what waits.
RUNNING_MEMO_SECONDS = 1.0
# (cluster, startedBy) -> (_clock() of the listing, the tasks it found). Module state
# outlives an invocation in a warm Lambda, as the clients do.
_running_seen: dict[tuple[str, str], tuple[float, int]] = {}
_clock = time.monotonic


def top_up_workers(config: LauncherConfig, clients: Clients, just_sent: int, sleep: Callable[[float], None],
                   keys: tuple[str, ...] = ()) -> dict[str, Any]:
    """Start tasks so that min(one per files_per_task messages waiting, cap) are running, at least
    one while anything waits; never raises on AWS errors. With tasks running, an event of a few
    files looks at the backlog only when backlog_check_due says so, and lists the step's tasks
    at most once in RUNNING_MEMO_SECONDS (counting those it started since).

    The messages are already safe in the queue, so a failure here is logged and left to the
    scheduled run rather than failing the event (a retried event would queue duplicates).
    "started" counts the tasks this launch added and kept (see keep_within_cap).
    """
    running, stopped, wanted = 0, 0, 0
    started: list[str] = []
    step = (config.cluster, config.started_by)
    seen = _running_seen.get(step)
    trusted = seen if keys and seen and _clock() - seen[0] < RUNNING_MEMO_SECONDS else None
    try:
        if trusted:
            listed_at, running = trusted
        else:
            listed_at, running = _clock(), count_running_tasks(clients.ecs, config)
            _remember(step, keys, listed_at, running)
        if running >= config.concurrency:
            # At the cap nothing can start, whatever waits: a busy step's invocations skip the
            # queue's attributes (one call per file otherwise).
            return {"started": 0, "running": running, "failures": []}
        if running and not backlog_check_due(config, keys, just_sent):
            return {"started": 0, "running": running, "failures": []}
        attributes = clients.sqs.get_queue_attributes(
            QueueUrl=config.queue_url, AttributeNames=["ApproximateNumberOfMessages"]
        )["Attributes"]
        # The attribute is approximate and may not yet count what this invocation just sent.
        waiting = max(int(attributes.get("ApproximateNumberOfMessages", 0)), just_sent)
        wanted = tasks_wanted(config, waiting, running)
        started, failures = run_tasks(clients.ecs, config, wanted, sleep)
        if wanted:
            report_task_starts(config, len(started), wanted - len(started), failures)
        if started:
            stopped = keep_within_cap(clients.ecs, config, started)
            # The tasks this launch added count until the next listing, whose time stays the memo's.
            _remember(step, keys, listed_at, running + len(started) - stopped)
    except (ClientError, BotoCoreError) as error:
        LOG.exception("yunpipe launcher %s/%s: could not top up workers", config.pipeline, config.step)
        code = error.response["Error"].get("Code", "") if isinstance(error, ClientError) else type(error).__name__
        failures = [{"reason": code, "detail": str(error)}]
        report_task_starts(config, len(started), max(wanted - len(started), 0), failures)
        return {"started": len(started) - stopped, "running": running, "failures": failures}
    return {"started": len(started) - stopped, "running": running, "failures": failures}


def _remember(step: tuple[str, str], keys: tuple[str, ...], listed_at: float, running: int) -> None:
    """Keep what an S3 event's listing found (and what was started since), only while something
    runs: a step without workers is listed again on its next event. A scheduled run's listing
    is not kept but clears the memo: between bursts it may count a worker that is leaving idle,
    and a file dropped just after would have waited for the next schedule (bench/latency.py saw
    it); within a burst no worker leaves."""
    if running and keys:
        _running_seen[step] = (listed_at, running)
    else:
        _running_seen.pop(step, None)


def top_up_grow_paths(config: LauncherConfig, clients: Clients, sleep: Callable[[float], None]) -> dict[str, Any]:
    """Start tasks of each larger size for the jobs that ran out of memory and wait in its queue
    (the worker sends them there, runtime/worker/grow.py), as for the step's own queue: by
    {memory MiB: top_up_workers' summary}."""
    return {str(path.memory): top_up_workers(dataclasses.replace(config, queue_url=path.queue_url,
                                                                 task_definition=path.task_definition,
                                                                 started_by=path.started_by, grow=()),
                                             clients, 0, sleep)
            for path in config.grow}


def tasks_wanted(config: LauncherConfig, waiting: int, running: int) -> int:
    """How many tasks to start: one per files_per_task waiting messages (at least one while any
    waits), up to the step's cap, less those running."""
    return max(0, min(math.ceil(waiting / config.files_per_task), config.concurrency) - running)


def backlog_check_due(config: LauncherConfig, keys: tuple[str, ...], just_sent: int) -> bool:
    """Whether an invocation with tasks already at work asks how many messages wait. The answer
    changes what to start only once per files_per_task files, and asking on every file's event
    was the busiest call of a burst, so one event in files_per_task / BACKLOG_CHECKS_PER_TASK
    asks, chosen by a hash of its key (deterministic, spread evenly over a burst). Scheduled
    top-ups (no keys) and events of that many files always ask."""
    every = max(1, config.files_per_task // BACKLOG_CHECKS_PER_TASK)
    if not keys or just_sent >= every:
        return True
    return any(int(hashlib.sha256(key.encode()).hexdigest()[:8], 16) % every == 0 for key in keys)


def keep_within_cap(ecs: Any, config: LauncherConfig, started: list[str]) -> int:
    """Stop what this launch started beyond the step's cap; returns how many it stopped.

    Launches of one step run one at a time where the launcher has reserved concurrency 1. An
    account too small for that (AWS keeps 100 executions unreserved) runs them side by side,
    and each may start tasks for the same waiting messages. Every launch that started tasks then
    ranks all the step's tasks oldest first (by createdAt, its own last among equals), keeps the
    first `cap` and stops only its own beyond them. The launch that looks last sees every task, and its own
    are the newest, so it stops them: no more than `cap` stay, and no task that was already at
    work is touched. A stopped task is seconds old and has most likely taken no message yet (if
    it had, the message returns after its visibility timeout).
    """
    arns = running_task_arns(ecs, config)
    if len(arns) <= config.concurrency:
        return 0
    tasks = []
    for start in range(0, len(arns), DESCRIBE_BATCH):
        tasks += ecs.describe_tasks(cluster=config.cluster, tasks=arns[start : start + DESCRIBE_BATCH])["tasks"]
    mine = set(started)
    ranked = sorted(tasks, key=lambda task: _age_rank(task, mine))
    keep = {task["taskArn"] for task in ranked[: config.concurrency]}
    surplus = [arn for arn in started if arn not in keep]
    for arn in surplus:
        ecs.stop_task(cluster=config.cluster, task=arn, reason="yunpipe launcher: above the step's concurrency cap")
    if surplus:
        LOG.info("yunpipe launcher %s/%s: stopped %d task(s) above the cap of %d started by a simultaneous launch",
                 config.pipeline, config.step, len(surplus), config.concurrency)
    return len(surplus)


def _age_rank(task: Mapping[str, Any], mine: set[str]) -> tuple[float, bool, str]:
    """Oldest first; of tasks created at the same moment (or of unknown age) this launch's own
    come last, so a tie makes it yield rather than keep."""
    created = task.get("createdAt")
    return (created.timestamp() if created else 0.0, task["taskArn"] in mine, task["taskArn"])
