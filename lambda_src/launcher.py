"""yunpipe launcher Lambda: queue each new S3 object for a step and start just enough workers.

One module serves every step; the step is chosen by environment variables
(docs/runtime-contract.md, "Launcher environment"). Handler: ``launcher.handler``.

Only the standard library and boto3 are used, so the file runs unchanged on the
python3.12 Lambda runtime and on the host in the local cloud. It must not import yunpipe.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import time
import urllib.parse
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping, NamedTuple

import boto3
from botocore.config import Config as BotoConfig
from botocore.exceptions import BotoCoreError, ClientError

LOG = logging.getLogger("yunpipe.launcher")
# The Lambda runtime leaves the root logger at WARNING; the summary line is INFO.
LOG.setLevel(logging.INFO)

# SQS SendMessageBatch and ECS RunTask both take at most 10 per call; DescribeTasks 100.
BATCH_SIZE = 10
DESCRIBE_BATCH = 100
# Failed batch entries are resent this many more times before the event is failed.
SEND_RETRIES = 2
# RunTask capacity failures: retried this many times, sleeping 0.5 s, 1 s, 2 s (3.5 s in all),
# so a Lambda with a modest timeout still finishes; the scheduled run picks up the rest.
CAPACITY_RETRIES = 3
# First backoff delay, doubled on each retry (capacity retries and failed batch entries).
BACKOFF_SECONDS = 0.5
# botocore's standard mode retries throttling and transient errors with jittered backoff.
BOTO_CONFIG = BotoConfig(retries={"mode": "standard", "max_attempts": 5})

# The contract's default cap, here once (the workflow spec takes it from here).
DEFAULT_CONCURRENCY = 10
LAUNCH_TYPES = ("FARGATE", "EC2")
PUBLIC_IP_SETTINGS = ("ENABLED", "DISABLED")
MAX_STARTED_BY = 36


class ConfigError(ValueError):
    """The launcher's environment is missing or has an invalid setting."""


class SendError(RuntimeError):
    """Some messages could not be queued; raised so Lambda retries the whole event."""


REQUIRED_VARS = {
    "pipeline": "YUNPIPE_PIPELINE",
    "step": "YUNPIPE_STEP",
    "queue_url": "YUNPIPE_QUEUE_URL",
    "cluster": "YUNPIPE_CLUSTER",
    "task_definition": "YUNPIPE_TASK_DEFINITION",
    "started_by": "YUNPIPE_STARTED_BY",
}


def _split(value: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in value.split(",") if part.strip())


@dataclass(frozen=True)
class Config:
    pipeline: str
    step: str
    queue_url: str
    cluster: str
    task_definition: str
    started_by: str
    concurrency: int = DEFAULT_CONCURRENCY
    launch_type: str = "FARGATE"
    subnets: tuple[str, ...] = ()
    security_groups: tuple[str, ...] = ()
    assign_public_ip: str = "ENABLED"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> "Config":
        env = os.environ if environ is None else environ
        missing = [var for var in REQUIRED_VARS.values() if not env.get(var, "").strip()]
        if missing:
            raise ConfigError("launcher environment lacks required variable(s): " + ", ".join(missing))
        values = {field: env[var].strip() for field, var in REQUIRED_VARS.items()}

        raw_concurrency = env.get("YUNPIPE_CONCURRENCY", "").strip() or str(DEFAULT_CONCURRENCY)
        try:
            concurrency = int(raw_concurrency)
        except ValueError:
            raise ConfigError(f"YUNPIPE_CONCURRENCY must be an integer, got {raw_concurrency!r}") from None
        if concurrency < 1:
            raise ConfigError(f"YUNPIPE_CONCURRENCY must be at least 1, got {concurrency}")

        launch_type = env.get("YUNPIPE_LAUNCH_TYPE", "").strip().upper() or "FARGATE"
        if launch_type not in LAUNCH_TYPES:
            raise ConfigError(f"YUNPIPE_LAUNCH_TYPE must be one of {', '.join(LAUNCH_TYPES)}, got {launch_type!r}")

        public_ip = env.get("YUNPIPE_ASSIGN_PUBLIC_IP", "").strip().upper() or "ENABLED"
        if public_ip not in PUBLIC_IP_SETTINGS:
            raise ConfigError(
                f"YUNPIPE_ASSIGN_PUBLIC_IP must be one of {', '.join(PUBLIC_IP_SETTINGS)}, got {public_ip!r}"
            )

        if len(values["started_by"]) > MAX_STARTED_BY:
            raise ConfigError(f"YUNPIPE_STARTED_BY must be at most {MAX_STARTED_BY} characters (ECS limit)")

        return cls(
            **values,
            concurrency=concurrency,
            launch_type=launch_type,
            subnets=_split(env.get("YUNPIPE_SUBNETS", "")),
            security_groups=_split(env.get("YUNPIPE_SECURITY_GROUPS", "")),
            assign_public_ip=public_ip,
        )

    def to_env(self) -> dict[str, str]:
        """The Lambda environment from_env reads back as this Config."""
        return {
            **{var: getattr(self, field) for field, var in REQUIRED_VARS.items()},
            "YUNPIPE_CONCURRENCY": str(self.concurrency),
            "YUNPIPE_LAUNCH_TYPE": self.launch_type,
            "YUNPIPE_SUBNETS": ",".join(self.subnets),
            "YUNPIPE_SECURITY_GROUPS": ",".join(self.security_groups),
            "YUNPIPE_ASSIGN_PUBLIC_IP": self.assign_public_ip,
        }


class Clients(NamedTuple):
    sqs: Any
    ecs: Any


@functools.lru_cache(maxsize=4)
def clients_for(region: str | None, endpoint_url: str | None) -> Clients:
    """Clients are reused across warm invocations; the cache key follows the environment."""
    kwargs = {"region_name": region, "endpoint_url": endpoint_url, "config": BOTO_CONFIG}
    return Clients(sqs=boto3.client("sqs", **kwargs), ecs=boto3.client("ecs", **kwargs))


def clients_from_env(environ: Mapping[str, str] | None = None) -> Clients:
    env = os.environ if environ is None else environ
    # Lambda sets AWS_REGION; shells and the local cloud usually set AWS_DEFAULT_REGION.
    region = env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or None
    return clients_for(region, env.get("AWS_ENDPOINT_URL") or None)


def handler(event: Mapping[str, Any], context: Any) -> dict[str, Any]:
    return handle(event, Config.from_env(), clients_from_env())


def handle(
    event: Mapping[str, Any],
    config: Config,
    clients: Clients,
    sleep: Callable[[float], None] = time.sleep,
) -> dict[str, Any]:
    """Queue the event's new objects, then top up workers. Returns the invocation summary."""
    if event.get("Event") == "s3:TestEvent":
        # S3 sends this once when a notification is configured; there is nothing to run.
        summary = {"enqueued": 0, "skipped": 0, "started": 0, "running": 0, "failures": []}
        _log_summary(config, "s3:TestEvent", summary)
        return summary

    records = event.get("Records") or []
    bodies, skipped = messages_for_records(records, config)
    enqueued = send_messages(clients.sqs, config.queue_url, bodies, sleep)
    summary = {"enqueued": enqueued, "skipped": skipped}
    summary.update(top_up_workers(config, clients, enqueued, sleep))
    _log_summary(config, "s3" if records else "schedule", summary)
    return summary


def _log_summary(config: Config, trigger: str, summary: Mapping[str, Any]) -> None:
    LOG.info("yunpipe launcher %s/%s %s: %s", config.pipeline, config.step, trigger, json.dumps(summary))


def messages_for_records(records: Iterable[Mapping[str, Any]], config: Config) -> tuple[list[dict[str, Any]], int]:
    """Message bodies for the ObjectCreated records, and how many records were skipped."""
    bodies: list[dict[str, Any]] = []
    seen: set[tuple[str, str, str]] = set()
    skipped = 0
    for record in records:
        s3 = record.get("s3") or {}
        bucket = (s3.get("bucket") or {}).get("name", "")
        obj = s3.get("object") or {}
        # Keys arrive form-encoded: spaces as '+', other characters %-escaped.
        key = urllib.parse.unquote_plus(obj.get("key", ""))
        etag = obj.get("eTag", "")
        created = record.get("eventSource") == "aws:s3" and record.get("eventName", "").startswith("ObjectCreated:")
        # A key ending in '/' is a console "folder" marker, not a file to process.
        if not created or not bucket or not key or key.endswith("/"):
            skipped += 1
            continue
        # A multipart upload may be reported more than once for the same object version.
        identity = (bucket, key, etag)
        if identity in seen:
            skipped += 1
            continue
        seen.add(identity)
        bodies.append(
            {
                "bucket": bucket,
                "key": key,
                "etag": etag,
                "size": obj.get("size", 0),
                "pipeline": config.pipeline,
                "step": config.step,
            }
        )
    return bodies, skipped


def send_messages(sqs: Any, queue_url: str, bodies: list[dict[str, Any]], sleep: Callable[[float], None]) -> int:
    """Queue every body, resending failed batch entries; raises SendError if some never make it."""
    for start in range(0, len(bodies), BATCH_SIZE):
        pending = {str(index): json.dumps(body) for index, body in enumerate(bodies[start : start + BATCH_SIZE])}
        failed: list[dict[str, Any]] = []
        for attempt in range(SEND_RETRIES + 1):
            if attempt:
                sleep(BACKOFF_SECONDS * 2 ** (attempt - 1))
            response = sqs.send_message_batch(
                QueueUrl=queue_url,
                Entries=[{"Id": entry_id, "MessageBody": body} for entry_id, body in pending.items()],
            )
            failed = response.get("Failed", [])
            pending = {entry["Id"]: pending[entry["Id"]] for entry in failed}
            # A sender fault (e.g. a message too large) fails the same way every time.
            if not pending or any(entry.get("SenderFault") for entry in failed):
                break
        if pending:
            details = "; ".join(f"{entry.get('Code')}: {entry.get('Message', '')}" for entry in failed)
            raise SendError(f"{len(pending)} message(s) not queued to {queue_url}: {details}")
    return len(bodies)


def top_up_workers(config: Config, clients: Clients, just_sent: int, sleep: Callable[[float], None]) -> dict[str, Any]:
    """Start tasks so that min(messages waiting, cap) are running; never raises on AWS errors.

    The messages are already safe in the queue, so a failure here is logged and left to the
    scheduled run rather than failing the event (a retried event would queue duplicates).
    "started" counts the tasks this launch added and kept (see keep_within_cap).
    """
    running, stopped = 0, 0
    started: list[str] = []
    try:
        running = count_running_tasks(clients.ecs, config)
        if running >= config.concurrency:
            # At the cap nothing can start, whatever waits: a busy step's invocations skip the
            # queue's attributes (one call per file otherwise).
            return {"started": 0, "running": running, "failures": []}
        attributes = clients.sqs.get_queue_attributes(
            QueueUrl=config.queue_url, AttributeNames=["ApproximateNumberOfMessages"]
        )["Attributes"]
        # The attribute is approximate and may not yet count what this invocation just sent.
        waiting = max(int(attributes.get("ApproximateNumberOfMessages", 0)), just_sent)
        wanted = max(0, min(waiting, config.concurrency) - running)
        started, failures = run_tasks(clients.ecs, config, wanted, sleep)
        if started:
            stopped = keep_within_cap(clients.ecs, config, started)
    except (ClientError, BotoCoreError) as error:
        LOG.exception("yunpipe launcher %s/%s: could not top up workers", config.pipeline, config.step)
        code = error.response["Error"].get("Code", "") if isinstance(error, ClientError) else type(error).__name__
        return {"started": len(started) - stopped, "running": running,
                "failures": [{"reason": code, "detail": str(error)}]}
    return {"started": len(started) - stopped, "running": running, "failures": failures}


def running_task_arns(ecs: Any, config: Config) -> list[str]:
    """Tasks of this step that are running or about to (desired status RUNNING includes PENDING)."""
    pages = ecs.get_paginator("list_tasks").paginate(
        cluster=config.cluster, startedBy=config.started_by, desiredStatus="RUNNING"
    )
    return [arn for page in pages for arn in page.get("taskArns", [])]


def count_running_tasks(ecs: Any, config: Config) -> int:
    return len(running_task_arns(ecs, config))


def keep_within_cap(ecs: Any, config: Config, started: list[str]) -> int:
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


def run_task_params(config: Config, count: int) -> dict[str, Any]:
    params: dict[str, Any] = {
        "cluster": config.cluster,
        "taskDefinition": config.task_definition,
        "count": count,
        "launchType": config.launch_type,
        "startedBy": config.started_by,
    }
    if config.subnets:
        vpc: dict[str, Any] = {"subnets": list(config.subnets)}
        if config.security_groups:
            vpc["securityGroups"] = list(config.security_groups)
        # ECS rejects assignPublicIp for the EC2 launch type.
        if config.launch_type == "FARGATE":
            vpc["assignPublicIp"] = config.assign_public_ip
        params["networkConfiguration"] = {"awsvpcConfiguration": vpc}
    return params


def run_tasks(ecs: Any, config: Config, wanted: int, sleep: Callable[[float], None]) -> tuple[list[str], list[dict[str, str]]]:
    """Start up to `wanted` tasks; capacity failures are retried with backoff, then reported.
    Returns the ARNs of the tasks started."""
    arns: list[str] = []
    retries = 0
    while len(arns) < wanted:
        count = min(BATCH_SIZE, wanted - len(arns))
        response = ecs.run_task(**run_task_params(config, count))
        arns += [task["taskArn"] for task in response.get("tasks", [])]
        if len(response.get("tasks", [])) == count:
            continue
        failures = [
            {"arn": f.get("arn", ""), "reason": f.get("reason", ""), "detail": f.get("detail", "")}
            for f in response.get("failures", [])
        ] or [{"arn": "", "reason": "SHORTFALL", "detail": f"RunTask started fewer than {count} tasks"}]
        if retries == CAPACITY_RETRIES:
            LOG.warning(
                "yunpipe launcher %s/%s: %d task(s) not started, left to the scheduled run: %s",
                config.pipeline, config.step, wanted - len(arns), json.dumps(failures),
            )
            return arns, failures
        LOG.info("yunpipe launcher %s/%s: RunTask failures, retrying: %s", config.pipeline, config.step, json.dumps(failures))
        sleep(BACKOFF_SECONDS * 2**retries)
        retries += 1
    return arns, []
