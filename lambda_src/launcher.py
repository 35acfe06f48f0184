"""yunpipe launcher Lambda: queue each new S3 object for a step and start just enough workers.

One module serves every step; the step is chosen by environment variables
(docs/runtime-contract.md, "Launcher environment"). Handler: ``launcher.handler``.
It takes S3 notifications, S3 events routed by EventBridge and scheduled events (top-up only).
A join step queues a key once every upstream step's result for it exists; a gather step
queues one job over a folder when its marker object arrives.

Only the standard library and boto3 are used, so the file runs unchanged on the
python3.12 Lambda runtime and on the host in the local cloud. It must not import yunpipe.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import math
import os
import re
import time
import urllib.parse
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

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
# Tasks are started for the backlog, one per this many waiting files (KEDA's SQS scaler's
# queueLength, whose own default is 5): a task works through many files, so a task start
# (seconds locally, up to a minute on Fargate, which bills a minute at least) is paid per 10
# files, not per file. bench/e2e.py (200 files, 3 rounds each): 10 gave 22.8 files/s with 5
# tasks per 100 files, 50 gave 17.0 with 2, cap 2 a task per file 21.3-21.5 with 2.
DEFAULT_FILES_PER_TASK = 10
# How often per files_per_task waiting files a busy step looks at its backlog (backlog_check_due).
BACKLOG_CHECKS_PER_TASK = 5
LAUNCH_TYPES = ("FARGATE", "EC2")
# Capacity providers a Fargate task may run on instead of the plain launch type ("" in Config).
FARGATE_CAPACITY_PROVIDERS = ("FARGATE", "FARGATE_SPOT")
# A capacity provider of the cluster's own (an Auto Scaling group): ECS's name rule.
PROVIDER_NAME = re.compile(r"^[A-Za-z0-9_-]{1,255}$")
PUBLIC_IP_SETTINGS = ("ENABLED", "DISABLED")
MAX_STARTED_BY = 36
# HeadObject answers 403 instead of 404 for a missing key when the caller may not list the bucket.
NOT_YET = frozenset({"404", "403", "NoSuchKey", "NotFound"})
# A conditional PutObject that lost: the key exists (412), or a write or delete of it was in flight (409).
CLAIMED = frozenset({"PreconditionFailed", "ConditionalRequestConflict"})


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


class JoinInput(NamedTuple):
    """One upstream step of a join, and the bucket its results land in."""

    step: str
    bucket: str


def _join_inputs(raw: str) -> tuple[JoinInput, ...]:
    """YUNPIPE_JOIN: a JSON list of {"step", "bucket"}; empty means the step is no join."""
    if not raw.strip():
        return ()
    try:
        entries = json.loads(raw)
    except ValueError as error:
        raise ConfigError(f"YUNPIPE_JOIN is not valid JSON: {error}") from None
    if not isinstance(entries, list) or not all(_is_join_entry(entry) for entry in entries):
        raise ConfigError(
            f'YUNPIPE_JOIN must be a JSON list of {{"step": ..., "bucket": ...}} with non-empty strings, got {raw!r}'
        )
    inputs = tuple(JoinInput(entry["step"], entry["bucket"]) for entry in entries)
    # A record is told apart by its bucket, so each upstream step needs its own.
    if inputs and len({join.bucket for join in inputs}) < max(len(inputs), 2):
        raise ConfigError(f"YUNPIPE_JOIN must name at least two steps, each with its own bucket, got {raw!r}")
    return inputs


def _is_join_entry(entry: Any) -> bool:
    return isinstance(entry, dict) and all(isinstance(entry.get(field), str) and entry[field]
                                           for field in JoinInput._fields)


def _positive(env: Mapping[str, str], var: str, default: int) -> int:
    raw = env.get(var, "").strip() or str(default)
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{var} must be an integer, got {raw!r}") from None
    if value < 1:
        raise ConfigError(f"{var} must be at least 1, got {value}")
    return value


def _flag(env: Mapping[str, str], var: str) -> bool:
    value = env.get(var, "").strip() or "0"
    if value not in ("0", "1"):
        raise ConfigError(f"{var} must be 1 or 0, got {value!r}")
    return value == "1"


@dataclass(frozen=True)
class Config:
    pipeline: str
    step: str
    queue_url: str
    cluster: str
    task_definition: str
    started_by: str
    concurrency: int = DEFAULT_CONCURRENCY
    files_per_task: int = DEFAULT_FILES_PER_TASK
    launch_type: str = "FARGATE"
    capacity_provider: str = ""
    subnets: tuple[str, ...] = ()
    security_groups: tuple[str, ...] = ()
    assign_public_ip: str = "ENABLED"
    join: tuple[JoinInput, ...] = ()
    claim_bucket: str = ""
    gather: bool = False

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Config:
        env = os.environ if environ is None else environ
        missing = [var for var in REQUIRED_VARS.values() if not env.get(var, "").strip()]
        if missing:
            raise ConfigError("launcher environment lacks required variable(s): " + ", ".join(missing))
        values = {field: env[var].strip() for field, var in REQUIRED_VARS.items()}

        concurrency = _positive(env, "YUNPIPE_CONCURRENCY", DEFAULT_CONCURRENCY)
        files_per_task = _positive(env, "YUNPIPE_FILES_PER_TASK", DEFAULT_FILES_PER_TASK)

        launch_type = env.get("YUNPIPE_LAUNCH_TYPE", "").strip().upper() or "FARGATE"
        if launch_type not in LAUNCH_TYPES:
            raise ConfigError(f"YUNPIPE_LAUNCH_TYPE must be one of {', '.join(LAUNCH_TYPES)}, got {launch_type!r}")
        capacity_provider = env.get("YUNPIPE_CAPACITY_PROVIDER", "").strip()
        if capacity_provider.upper() in FARGATE_CAPACITY_PROVIDERS:
            capacity_provider = capacity_provider.upper()
        elif capacity_provider and not PROVIDER_NAME.match(capacity_provider):
            raise ConfigError(f"YUNPIPE_CAPACITY_PROVIDER must be empty, one of {', '.join(FARGATE_CAPACITY_PROVIDERS)} "
                              f"or the name of an Auto Scaling group capacity provider, got {capacity_provider!r}")
        if capacity_provider in FARGATE_CAPACITY_PROVIDERS and launch_type != "FARGATE":
            raise ConfigError(f"YUNPIPE_CAPACITY_PROVIDER {capacity_provider} needs YUNPIPE_LAUNCH_TYPE FARGATE, "
                              f"got {launch_type}")

        public_ip = env.get("YUNPIPE_ASSIGN_PUBLIC_IP", "").strip().upper() or "ENABLED"
        if public_ip not in PUBLIC_IP_SETTINGS:
            raise ConfigError(
                f"YUNPIPE_ASSIGN_PUBLIC_IP must be one of {', '.join(PUBLIC_IP_SETTINGS)}, got {public_ip!r}"
            )

        if len(values["started_by"]) > MAX_STARTED_BY:
            raise ConfigError(f"YUNPIPE_STARTED_BY must be at most {MAX_STARTED_BY} characters (ECS limit)")

        join = _join_inputs(env.get("YUNPIPE_JOIN", ""))
        claim_bucket = env.get("YUNPIPE_CLAIM_BUCKET", "").strip()
        if join and not claim_bucket:
            raise ConfigError("YUNPIPE_CLAIM_BUCKET is required when YUNPIPE_JOIN is set (joins are claimed there)")
        gather = _flag(env, "YUNPIPE_GATHER")
        if join and gather:
            raise ConfigError("YUNPIPE_JOIN and YUNPIPE_GATHER=1 exclude each other")

        return cls(
            **values,
            concurrency=concurrency,
            files_per_task=files_per_task,
            launch_type=launch_type,
            capacity_provider=capacity_provider,
            subnets=_split(env.get("YUNPIPE_SUBNETS", "")),
            security_groups=_split(env.get("YUNPIPE_SECURITY_GROUPS", "")),
            assign_public_ip=public_ip,
            join=join,
            claim_bucket=claim_bucket,
            gather=gather,
        )

    @property
    def on_instances(self) -> bool:
        """Tasks go to the EC2 instances of an Auto Scaling group capacity provider: their task
        definitions use bridge networking, which takes no network configuration."""
        return bool(self.capacity_provider) and self.capacity_provider not in FARGATE_CAPACITY_PROVIDERS

    def to_env(self) -> dict[str, str]:
        """The Lambda environment from_env reads back as this Config."""
        return {
            **{var: getattr(self, field) for field, var in REQUIRED_VARS.items()},
            "YUNPIPE_CONCURRENCY": str(self.concurrency),
            "YUNPIPE_FILES_PER_TASK": str(self.files_per_task),
            "YUNPIPE_LAUNCH_TYPE": self.launch_type,
            "YUNPIPE_CAPACITY_PROVIDER": self.capacity_provider,
            "YUNPIPE_SUBNETS": ",".join(self.subnets),
            "YUNPIPE_SECURITY_GROUPS": ",".join(self.security_groups),
            "YUNPIPE_ASSIGN_PUBLIC_IP": self.assign_public_ip,
            "YUNPIPE_JOIN": json.dumps([join._asdict() for join in self.join]) if self.join else "",
            "YUNPIPE_CLAIM_BUCKET": self.claim_bucket,
            "YUNPIPE_GATHER": "1" if self.gather else "0",
        }


@dataclass
class Clients:
    """The launcher's AWS clients. S3 is needed by join steps only, so it is made on first use."""

    sqs: Any
    ecs: Any
    make_s3: Callable[[], Any]

    @functools.cached_property
    def s3(self) -> Any:
        return self.make_s3()


@functools.lru_cache(maxsize=4)
def clients_for(region: str | None, endpoint_url: str | None) -> Clients:
    """Clients are reused across warm invocations; the cache key follows the environment."""
    kwargs = {"region_name": region, "endpoint_url": endpoint_url, "config": BOTO_CONFIG}
    return Clients(sqs=boto3.client("sqs", **kwargs), ecs=boto3.client("ecs", **kwargs),
                   make_s3=functools.partial(boto3.client, "s3", **kwargs))


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
        idle: dict[str, Any] = {"enqueued": 0, "skipped": 0, "started": 0, "running": 0, "failures": []}
        _log_summary(config, "s3:TestEvent", idle)
        return idle

    trigger, objects, skipped = read_event(event)
    counts = queue_objects(objects, config, clients, sleep)
    counts["skipped"] += skipped
    keys = tuple(obj.key for obj in objects)
    summary = {**counts, **top_up_workers(config, clients, counts["enqueued"], sleep, keys)}
    _log_summary(config, trigger, summary)
    return summary


def queue_objects(
    objects: list[NewObject], config: Config, clients: Clients, sleep: Callable[[float], None]
) -> dict[str, int]:
    """Queue the step's messages for the new objects; returns the counts for the summary."""
    if config.join:
        return queue_joins(objects, config, clients, sleep)
    body = gather_body if config.gather else object_body
    bodies = [body(obj, config) for obj in objects]
    return {"enqueued": send_messages(clients.sqs, config.queue_url, bodies, sleep), "skipped": 0}


def _log_summary(config: Config, trigger: str, summary: Mapping[str, Any]) -> None:
    LOG.info("yunpipe launcher %s/%s %s: %s", config.pipeline, config.step, trigger, json.dumps(summary))


class NewObject(NamedTuple):
    """An object an event reports as created, its key decoded."""

    bucket: str
    key: str
    etag: str
    size: int


def read_event(event: Mapping[str, Any]) -> tuple[str, list[NewObject], int]:
    """The trigger's name, the distinct new objects the event reports, and how many of its
    entries were skipped (no creation, a folder marker, or one already reported)."""
    if event.get("source") == "aws.s3":
        trigger, entries = "eventbridge", [_from_eventbridge(event)]
    elif event.get("Records"):
        trigger, entries = "s3", [_from_record(record) for record in event["Records"]]
    else:
        # A scheduled event ("source": "aws.events") or a plain invocation only tops up workers.
        return "schedule", [], 0
    # A multipart upload may be reported more than once for the same object version.
    distinct: dict[tuple[str, str, str], NewObject] = {}
    for entry in entries:
        if entry is not None:
            distinct.setdefault((entry.bucket, entry.key, entry.etag), entry)
    return trigger, list(distinct.values()), len(entries) - len(distinct)


def _from_record(record: Mapping[str, Any]) -> NewObject | None:
    """A record of an S3 notification (event["Records"])."""
    if record.get("eventSource") != "aws:s3" or not record.get("eventName", "").startswith("ObjectCreated:"):
        return None
    s3 = record.get("s3") or {}
    obj = s3.get("object") or {}
    # Keys arrive form-encoded: spaces as '+', other characters %-escaped.
    key = urllib.parse.unquote_plus(obj.get("key", ""))
    return _new_object((s3.get("bucket") or {}).get("name", ""), key, obj.get("eTag", ""), obj.get("size", 0))


def _from_eventbridge(event: Mapping[str, Any]) -> NewObject | None:
    """An S3 event routed by an EventBridge rule: one object, its key as stored (not encoded)."""
    if event.get("detail-type") != "Object Created":
        return None
    detail = event.get("detail") or {}
    obj = detail.get("object") or {}
    # AWS names the field "etag"; moto, like S3 notifications, "eTag".
    etag = obj.get("etag") or obj.get("eTag", "")
    return _new_object((detail.get("bucket") or {}).get("name", ""), obj.get("key", ""), etag, obj.get("size", 0))


def _new_object(bucket: str, key: str, etag: str, size: int) -> NewObject | None:
    # A key ending in '/' is a console "folder" marker, not a file to process.
    if not bucket or not key or key.endswith("/"):
        return None
    return NewObject(bucket, key, etag, size)


def object_body(obj: NewObject, config: Config) -> dict[str, Any]:
    return {"bucket": obj.bucket, "key": obj.key, "etag": obj.etag, "size": obj.size,
            "pipeline": config.pipeline, "step": config.step}


def gather_body(marker: NewObject, config: Config) -> dict[str, Any]:
    """One job over every object of the marker's folder ("" at the bucket's root)."""
    folder, slash, _ = marker.key.rpartition("/")
    return {"key": marker.key, "bucket": marker.bucket, "etag": "", "gather": {"prefix": folder + slash},
            "pipeline": config.pipeline, "step": config.step}


def queue_joins(
    objects: Iterable[NewObject], config: Config, clients: Clients, sleep: Callable[[float], None]
) -> dict[str, int]:
    """Queue the join of each object's key once every upstream step's result for it exists.

    Two launches may see the last input arrive at once (one per upstream bucket), so a join is
    claimed with a conditional write before it is queued, and queued right after: a failure
    never leaves a claim without its message (the claim is released and the event retried).
    """
    counts = {"enqueued": 0, "skipped": 0, "waiting": 0}
    buckets = {join.bucket for join in config.join}
    for obj in objects:
        if obj.bucket not in buckets:
            counts["skipped"] += 1
            continue
        inputs = join_inputs(clients.s3, config, obj)
        if inputs is None:
            counts["waiting"] += 1
            continue
        body = {**object_body(obj, config), "inputs": inputs}
        claim = claim_key(config, obj.key, inputs)
        if not claim_join(clients.s3, config.claim_bucket, claim, body):
            counts["skipped"] += 1
            continue
        try:
            counts["enqueued"] += send_messages(clients.sqs, config.queue_url, [body], sleep)
        except Exception:
            _release_claim(clients.s3, config, claim)
            raise
    return counts


def join_inputs(s3: Any, config: Config, obj: NewObject) -> list[dict[str, str]] | None:
    """Each upstream step's result for the object's key, in Config order; None while one is missing."""
    inputs = []
    for join in config.join:
        etag = obj.etag if join.bucket == obj.bucket else _etag(s3, join.bucket, obj.key)
        if etag is None:
            return None
        inputs.append({"step": join.step, "bucket": join.bucket, "key": obj.key, "etag": etag})
    return inputs


def _etag(s3: Any, bucket: str, key: str) -> str | None:
    try:
        return s3.head_object(Bucket=bucket, Key=key)["ETag"].strip('"')
    except ClientError as error:
        if _error_code(error) in NOT_YET:
            return None
        raise


def claim_key(config: Config, key: str, inputs: Iterable[Mapping[str, str]]) -> str:
    # The inputs' content is part of the name: a re-upload with new content joins again.
    digest = hashlib.sha256("\n".join(sorted(entry["etag"] for entry in inputs)).encode()).hexdigest()
    return f"joins/{config.pipeline}/{config.step}/{key}/{digest}"


def claim_join(s3: Any, bucket: str, claim: str, body: Mapping[str, Any]) -> bool:
    """Create the claim object unless it exists; False when another launch has claimed the join."""
    try:
        s3.put_object(Bucket=bucket, Key=claim, Body=json.dumps(body).encode(), IfNoneMatch="*")
    except ClientError as error:
        if _error_code(error) in CLAIMED:
            return False
        raise
    return True


def _release_claim(s3: Any, config: Config, claim: str) -> None:
    try:
        s3.delete_object(Bucket=config.claim_bucket, Key=claim)
    except (ClientError, BotoCoreError):
        LOG.exception("yunpipe launcher %s/%s: a join is claimed but not queued; delete s3://%s/%s to let it run",
                      config.pipeline, config.step, config.claim_bucket, claim)


def _error_code(error: ClientError) -> str:
    return error.response.get("Error", {}).get("Code", "")


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


def top_up_workers(config: Config, clients: Clients, just_sent: int, sleep: Callable[[float], None],
                   keys: tuple[str, ...] = ()) -> dict[str, Any]:
    """Start tasks so that min(one per files_per_task messages waiting, cap) are running, at least
    one while anything waits; never raises on AWS errors. With tasks running, an event of a few
    files looks at the backlog only when backlog_check_due says so.

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
        if running and not backlog_check_due(config, keys, just_sent):
            return {"started": 0, "running": running, "failures": []}
        attributes = clients.sqs.get_queue_attributes(
            QueueUrl=config.queue_url, AttributeNames=["ApproximateNumberOfMessages"]
        )["Attributes"]
        # The attribute is approximate and may not yet count what this invocation just sent.
        waiting = max(int(attributes.get("ApproximateNumberOfMessages", 0)), just_sent)
        wanted = max(0, min(math.ceil(waiting / config.files_per_task), config.concurrency) - running)
        started, failures = run_tasks(clients.ecs, config, wanted, sleep)
        if started:
            stopped = keep_within_cap(clients.ecs, config, started)
    except (ClientError, BotoCoreError) as error:
        LOG.exception("yunpipe launcher %s/%s: could not top up workers", config.pipeline, config.step)
        code = error.response["Error"].get("Code", "") if isinstance(error, ClientError) else type(error).__name__
        return {"started": len(started) - stopped, "running": running,
                "failures": [{"reason": code, "detail": str(error)}]}
    return {"started": len(started) - stopped, "running": running, "failures": failures}


def backlog_check_due(config: Config, keys: tuple[str, ...], just_sent: int) -> bool:
    """Whether an invocation with tasks already at work asks how many messages wait. The answer
    changes what to start only once per files_per_task files, and asking on every file's event
    was the busiest call of a burst, so one event in files_per_task / BACKLOG_CHECKS_PER_TASK
    asks, chosen by a hash of its key (deterministic, spread evenly over a burst). Scheduled
    top-ups (no keys) and events of that many files always ask."""
    every = max(1, config.files_per_task // BACKLOG_CHECKS_PER_TASK)
    if not keys or just_sent >= every:
        return True
    return any(int(hashlib.sha256(key.encode()).hexdigest()[:8], 16) % every == 0 for key in keys)


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
        "startedBy": config.started_by,
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
