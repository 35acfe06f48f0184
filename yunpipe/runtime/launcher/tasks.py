"""ECS: the step's running tasks, and RunTask with its capacity retries."""
from __future__ import annotations

import datetime
import json
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from ..contract import LauncherConfig, task_starts_line
from .log import LOG
from .sending import BACKOFF_SECONDS

DESCRIBE_BATCH = 100
# RunTask starts at most 10 tasks per call (its count's range in the ECS API reference).
RUN_TASK_MAX_COUNT = 10
# RunTask capacity failures: retried this many times, sleeping 0.5 s, 1 s, 2 s (3.5 s in all),
# so a Lambda with a modest timeout still finishes; the scheduled run picks up the rest.
CAPACITY_RETRIES = 3


def running_task_arns(ecs: Any, config: LauncherConfig) -> list[str]:
    """Tasks of this step that are running or about to (desired status RUNNING includes PENDING)."""
    pages = ecs.get_paginator("list_tasks").paginate(
        cluster=config.cluster, startedBy=config.started_by, desiredStatus="RUNNING"
    )
    return [arn for page in pages for arn in page.get("taskArns", [])]


def count_running_tasks(ecs: Any, config: LauncherConfig) -> int:
    return len(running_task_arns(ecs, config))


def run_task_params(config: LauncherConfig, count: int) -> dict[str, Any]:
    params: dict[str, Any] = {
        "cluster": config.cluster,
        "taskDefinition": config.task_definition,
        "count": count,
        "startedBy": config.started_by,
        # Each task carries its task definition's tags (the pipeline's, the step's and the
        # workflow's own) for cost allocation: they reach the task through ECS, not through the
        # launcher's environment (at most 4 KB; 47 tags of 384 characters would not fit).
        "propagateTags": "TASK_DEFINITION",
    }
    # ECS refuses a launch type together with a capacity provider strategy.
    if config.capacity_provider:
        params["capacityProviderStrategy"] = [{"capacityProvider": config.capacity_provider, "weight": 1}]
    else:
        params["launchType"] = config.launch_type
    if config.subnets and not config.on_instances:
        vpc: dict[str, Any] = {"subnets": list(config.subnets)}
        if config.security_groups:
            vpc["securityGroups"] = list(config.security_groups)
        # ECS rejects assignPublicIp for the EC2 launch type.
        if config.launch_type == "FARGATE":
            vpc["assignPublicIp"] = config.assign_public_ip
        params["networkConfiguration"] = {"awsvpcConfiguration": vpc}
    return params


def run_tasks(ecs: Any, config: LauncherConfig, wanted: int, sleep: Callable[[float], None]) -> tuple[list[str], list[dict[str, str]]]:
    """Start up to `wanted` tasks; capacity failures are retried with backoff, then reported.
    Returns the ARNs of the tasks started."""
    arns: list[str] = []
    retries = 0
    while len(arns) < wanted:
        count = min(RUN_TASK_MAX_COUNT, wanted - len(arns))
        response = ecs.run_task(**run_task_params(config, count))
        arns += [task["taskArn"] for task in response.get("tasks", [])]
        if len(response.get("tasks", [])) == count:
            continue
        failures = [
            {"arn": f.get("arn", ""), "reason": f.get("reason", ""), "detail": f.get("detail", "")}
            for f in response.get("failures", [])
        ] or [{"arn": "", "reason": "SHORTFALL", "detail": f"RunTask started fewer than {count} tasks"}]
        if retries == CAPACITY_RETRIES:
            return arns, failures
        LOG.info("yunpipe launcher %s/%s: RunTask failures, retrying: %s", config.pipeline, config.step, json.dumps(failures))
        sleep(BACKOFF_SECONDS * 2**retries)
        retries += 1
    return arns, []


def report_task_starts(config: LauncherConfig, started: int, not_started: int,
                       failures: Iterable[Mapping[str, Any]]) -> None:
    """Say in the launcher's log, as one line `yunpipe status` reads (contract.task_starts_line),
    how many tasks this launch started, how many it left to the scheduled run, and why.

    A log line rather than, say, an SSM parameter per step: the launcher already writes its log
    group, so its role gains no permission and nothing outlives the pipeline; a stalled step
    fails again on every scheduled run, so its newest line is at most a schedule period old; and
    SSM's PutParameter (a few writes per second per account) would throttle in a burst."""
    at = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    line = task_starts_line(config.pipeline, config.step, at, started, not_started, failures)
    if not_started or failures:
        LOG.warning("%s", line)
    else:
        LOG.info("%s", line)
