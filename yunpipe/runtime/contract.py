"""The runtime contract: the defaults and the environments the host, the worker and the launcher share.

WorkerConfig is a worker's task environment (docs/runtime-contract.md, "Task environment"),
LauncherConfig the launcher Lambda's ("Launcher environment"): the deploy engine writes them
with to_env, the worker and the launcher read them back with from_env, and the workflow and
algorithm specs take their defaults from here, once.

Shipped whole into every wrapped image (next to the worker) and into the launcher's zip, so it
imports only the standard library and runs on Python 3.7+. It is past 500 lines as one job: both
environments, whose settings refer to each other (a step's queues, its larger sizes), are read
and written here so the two sides cannot drift; split, each side would still need the other.
"""
from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

# The queue of a step's jobs: the one value of both environments that AWS hands out (a queue's
# URL), so the compiler sets it apart and fills it in once the queue exists.
QUEUE_URL_VARIABLE = "YUNPIPE_QUEUE_URL"
# The queue of a step's next larger size, where a worker sends a job the kernel killed for its
# memory (its grow path): a queue URL too, "" where the step grows no further. The worker then
# wakes its launcher with an event of GROW_EVENT_SOURCE, which starts the larger size's task.
GROW_QUEUE_URL_VARIABLE = "YUNPIPE_GROW_QUEUE_URL"
GROW_EVENT_SOURCE = "yunpipe.grow"
# The step's dead-letter queue, where the worker sends a file at once (a permanent exit code, or
# a last try that SQS's own count would not yet move): filled in the same way.
DEAD_LETTER_URL_VARIABLE = "YUNPIPE_DEAD_LETTER_URL"
# The launcher's queue of events Lambda could not deliver (its on-failure destination): also a
# queue URL, filled in the same way.
FAILED_EVENTS_URL_VARIABLE = "YUNPIPE_FAILED_EVENTS_URL"

# --------------------------------------------------------------------------- the worker

DEFAULT_ALGORITHM_PATH = "/opt/yunpipe/algorithm.json"
# Exit status of a worker whose configuration is bad (sysexits' EX_CONFIG): distinct from the
# 0 of a drained queue, the 1 of an AWS error and the commands' own codes, so a stopped task
# says why it stopped.
CONFIG_ERROR_EXIT = 78
# The contract's defaults, here once: the deploy engine builds its task environment from
# WorkerConfig (WorkerConfig.to_env) and the algorithm spec takes its defaults from ALGORITHM_DEFAULTS.
DEFAULT_MAX_RECEIVE_COUNT = 3
DEFAULT_IDLE_SECONDS = 30
DEFAULT_WAIT_SECONDS = 5
# How long a received message stays hidden; the worker extends it while its job runs, so it
# bounds how soon a crashed worker's file is retried.
DEFAULT_VISIBILITY_SECONDS = 300
# SQS keeps a received message invisible for at most 12 hours from its first receive: an
# extension beyond that is refused ("Total VisibilityTimeout for the message is beyond the limit
# [43200 seconds]", SQS Developer Guide, "Amazon SQS visibility timeout"). A job running longer
# would lose its message, and another task would run the same file again. So a job's
# timeout_seconds and a queue's visibility timeout are at most this.
MAX_VISIBILITY_SECONDS = 43200
# A file the worker hands back when its task is stopped (a Spot interruption) is queued again with
# these message attributes: how many receives it had, and how many of them were interrupted. Its
# tries are the receives less the interruptions, so an interruption uses up none. A message
# without them (the launcher's, `yunpipe retry`'s) is a file's first.
RECEIVES_ATTRIBUTE = "yunpipe-receives"
INTERRUPTIONS_ATTRIBUTE = "yunpipe-interruptions"
# A file interrupted this often is released as any failure is: each further interruption uses up
# a try, so a file no task ever finishes still reaches the dead-letter queue.
MAX_INTERRUPTIONS = 10
# A drop-run (the files other S3 clients drop) closes once no new file came for this long.
DEFAULT_QUIET_SECONDS = 120
# Jobs one worker runs at once. 1 for a task definition that does not say (it behaves as
# before); the deploy engine sets the step's own, by default the task's vCPUs.
DEFAULT_PARALLELISM = 1
ADAPTERS = {"input_adapter": ("path", "stdin"), "output_adapter": ("path", "stdout")}
ALGORITHM_DEFAULTS: dict[str, Any] = {
    "input_file_path": "/yunpipe/input",
    "output_file_path": "/yunpipe/output",
    "input_adapter": "path",
    "output_adapter": "path",
    "timeout_seconds": 3600,
    "environment": {},
    # Exit codes that say the input is bad: no retry, the dead-letter queue at once.
    "permanent_exit_codes": [],
    # False: a result already there is never the job's (the worker never skips).
    "deterministic": True,
}
# One job from a file on this machine, no AWS (`yunpipe try`, `yunpipe replay`): the wrapped
# image's entrypoint takes `--one-job FILE [--shell]` and ends its stdout with a line of this
# marker and the outcome as JSON (worker/once.py).
ONE_JOB_FLAG = "--one-job"
ONE_JOB_SHELL_FLAG = "--shell"
ONE_JOB_MARKER = "yunpipe-one-job"
# The S3 user metadata of every result, in this order (`yunpipe results --provenance`).
# yunpipe-gathered: a gather's inputs (a digest of their keys and ETags); yunpipe-variables: a
# digest of the command's variables; yunpipe-results: how many results the job wrote (a folder's
# count, so a half-uploaded folder is never taken for a done job).
PROVENANCE_FIELDS = (
    "yunpipe-pipeline", "yunpipe-step", "yunpipe-algorithm", "yunpipe-image",
    "yunpipe-input", "yunpipe-input-etag", "yunpipe-gathered", "yunpipe-variables", "yunpipe-results",
    "yunpipe-attempt", "yunpipe-run",
)


def _integer(environ: Mapping[str, str], name: str, default: int, minimum: int) -> int:
    """An integer setting of the worker's or the launcher's environment ("" or unset: `default`)."""
    raw = environ.get(name, "").strip()
    if raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be an integer, got {raw!r}") from None
    if value < minimum:
        raise ConfigError(f"{name} must be at least {minimum}, got {value}")
    return value


@dataclass(frozen=True)
class WorkerConfig:
    """The task environment of the runtime contract."""

    queue_url: str
    output_bucket: str
    output_prefix: str = ""
    report_bucket: str | None = None
    pipeline: str = ""
    step: str = ""
    max_receive_count: int = DEFAULT_MAX_RECEIVE_COUNT
    idle_seconds: int = DEFAULT_IDLE_SECONDS
    wait_seconds: int = DEFAULT_WAIT_SECONDS
    visibility_seconds: int = DEFAULT_VISIBILITY_SECONDS
    algorithm_path: str = DEFAULT_ALGORITHM_PATH
    # Provenance only: NAME@VERSION in the registry, and the image the task runs.
    algorithm_ref: str = ""
    image: str = ""
    # The step's own limit per job; 0 keeps the algorithm's timeout_seconds.
    timeout_seconds: int = 0
    parallelism: int = DEFAULT_PARALLELISM
    # Accounting (yunpipe/runtime/accounting): what the task is billed for (CPU units, MiB, and
    # FARGATE, FARGATE_SPOT or the capacity provider of the EC2 instances it runs on), whether
    # jobs and runs are recorded, a drop-run's quiet period, the pipeline's SNS topic ("" if none).
    task_cpu: int = 0
    task_memory: int = 0
    capacity: str = ""
    accounting: bool = True
    quiet_seconds: int = DEFAULT_QUIET_SECONDS
    topic_arn: str = ""
    # Run every job even when its results are there with matching provenance (a step's `force`).
    force: bool = False
    # Out of memory -> more memory: the queue of the step's next larger size ("" at the largest or
    # without growth), that size in MiB, and the step's launcher (a Lambda function), woken for it.
    grow_queue_url: str = ""
    grow_memory: int = 0
    launcher: str = ""
    # The step's dead-letter queue ("": the worker leaves every last try to SQS's redrive).
    dead_letter_url: str = ""

    @classmethod
    def from_env(cls, environ: Mapping[str, str], strict: bool = True) -> WorkerConfig:
        """The configuration, or ValueError naming the bad setting. Not strict: what a
        misconfigured worker still knows, missing names empty and bad numbers at their default."""
        missing = [n for n in (QUEUE_URL_VARIABLE, "YUNPIPE_OUTPUT_BUCKET") if not environ.get(n)]
        if missing and strict:
            raise ValueError(f"missing required environment variable(s): {', '.join(missing)}")

        def _int(name: str, default: int, minimum: int) -> int:
            try:
                return _integer(environ, name, default, minimum)
            except ValueError:
                if strict:
                    raise
                return default

        try:
            accounting = _flag(environ, "YUNPIPE_ACCOUNTING", default=True)
        except ValueError:
            if strict:
                raise
            accounting = True
        try:
            force = _flag(environ, "YUNPIPE_FORCE", default=False)
        except ValueError:
            if strict:
                raise
            force = False

        return cls(
            queue_url=environ.get(QUEUE_URL_VARIABLE, ""),
            output_bucket=environ.get("YUNPIPE_OUTPUT_BUCKET", ""),
            output_prefix=environ.get("YUNPIPE_OUTPUT_PREFIX", ""),
            report_bucket=environ.get("YUNPIPE_REPORT_BUCKET") or None,
            pipeline=environ.get("YUNPIPE_PIPELINE", ""),
            step=environ.get("YUNPIPE_STEP", ""),
            max_receive_count=_int("YUNPIPE_MAX_RECEIVE_COUNT", DEFAULT_MAX_RECEIVE_COUNT, 1),
            idle_seconds=_int("YUNPIPE_IDLE_SECONDS", DEFAULT_IDLE_SECONDS, 0),
            # SQS rejects long polls over 20 s; clamp rather than crash the task.
            wait_seconds=min(_int("YUNPIPE_WAIT_SECONDS", DEFAULT_WAIT_SECONDS, 0), 20),
            # At least 1 s: the heartbeat ticks every half window.
            visibility_seconds=_int("YUNPIPE_VISIBILITY_SECONDS", DEFAULT_VISIBILITY_SECONDS, 1),
            algorithm_path=environ.get("YUNPIPE_ALGORITHM") or DEFAULT_ALGORITHM_PATH,
            algorithm_ref=environ.get("YUNPIPE_ALGORITHM_REF", ""),
            image=environ.get("YUNPIPE_IMAGE", ""),
            timeout_seconds=_int("YUNPIPE_TIMEOUT_SECONDS", 0, 0),
            parallelism=_int("YUNPIPE_PARALLELISM", DEFAULT_PARALLELISM, 1),
            task_cpu=_int("YUNPIPE_TASK_CPU", 0, 0),
            task_memory=_int("YUNPIPE_TASK_MEMORY", 0, 0),
            capacity=environ.get("YUNPIPE_CAPACITY", ""),
            accounting=accounting,
            quiet_seconds=_int("YUNPIPE_QUIET_SECONDS", DEFAULT_QUIET_SECONDS, 1),
            topic_arn=environ.get("YUNPIPE_TOPIC_ARN", ""),
            force=force,
            grow_queue_url=environ.get(GROW_QUEUE_URL_VARIABLE, ""),
            grow_memory=_int("YUNPIPE_GROW_MEMORY", 0, 0),
            launcher=environ.get("YUNPIPE_LAUNCHER", ""),
            dead_letter_url=environ.get(DEAD_LETTER_URL_VARIABLE, ""),
        )

    def to_env(self) -> dict[str, str]:
        """The task environment from_env reads back as this WorkerConfig (every setting, so a task
        definition says all it means)."""
        return {
            QUEUE_URL_VARIABLE: self.queue_url,
            "YUNPIPE_OUTPUT_BUCKET": self.output_bucket,
            "YUNPIPE_OUTPUT_PREFIX": self.output_prefix,
            "YUNPIPE_REPORT_BUCKET": self.report_bucket or "",
            "YUNPIPE_PIPELINE": self.pipeline,
            "YUNPIPE_STEP": self.step,
            "YUNPIPE_MAX_RECEIVE_COUNT": str(self.max_receive_count),
            "YUNPIPE_IDLE_SECONDS": str(self.idle_seconds),
            "YUNPIPE_WAIT_SECONDS": str(self.wait_seconds),
            "YUNPIPE_VISIBILITY_SECONDS": str(self.visibility_seconds),
            "YUNPIPE_ALGORITHM": self.algorithm_path,
            "YUNPIPE_ALGORITHM_REF": self.algorithm_ref,
            "YUNPIPE_IMAGE": self.image,
            "YUNPIPE_TIMEOUT_SECONDS": str(self.timeout_seconds),
            "YUNPIPE_PARALLELISM": str(self.parallelism),
            "YUNPIPE_TASK_CPU": str(self.task_cpu),
            "YUNPIPE_TASK_MEMORY": str(self.task_memory),
            "YUNPIPE_CAPACITY": self.capacity,
            "YUNPIPE_ACCOUNTING": "1" if self.accounting else "0",
            "YUNPIPE_QUIET_SECONDS": str(self.quiet_seconds),
            "YUNPIPE_TOPIC_ARN": self.topic_arn,
            "YUNPIPE_FORCE": "1" if self.force else "0",
            GROW_QUEUE_URL_VARIABLE: self.grow_queue_url,
            "YUNPIPE_GROW_MEMORY": str(self.grow_memory),
            "YUNPIPE_LAUNCHER": self.launcher,
            DEAD_LETTER_URL_VARIABLE: self.dead_letter_url,
        }


# Variables an algorithm's secrets may not set: yunpipe's own (WorkerConfig.to_env), the AWS SDK's
# and region settings (a secret AWS_ACCESS_KEY_ID would replace the task role), the ECS agent's.
RESERVED_VARIABLE_PREFIXES = ("YUNPIPE_", "AWS_", "ECS_")

# The placeholders of a run_command that the worker replaces with the job's local paths (a
# join's inputs add `${input_<step>}` and `$input_<step>`); wrap checks for the output's.
INPUT_PLACEHOLDERS = ("$input", "${input_file}")
OUTPUT_PLACEHOLDERS = ("$output", "${output_file}")


# The shells a run_command may start with `-c SCRIPT`: the worker quotes the placeholders in the
# script, and wrap leaves the script's shell syntax to the shell.
SHELLS = {"sh", "bash", "dash", "ash", "ksh", "mksh", "zsh"}


def placeholder_pattern(names: Iterable[str]) -> re.Pattern[str]:
    """Braced placeholders match as written; a bare one only as a whole shell variable name, so
    `$inputs`, and `$input_x` when no input is named x, are left alone (and `$input_ab` is never
    `$input_a` followed by "b")."""
    alternatives = [re.escape(name) + ("" if name.startswith("${") else r"(?![A-Za-z0-9_])") for name in names]
    return re.compile("|".join(alternatives))


# --------------------------------------------------------------------------- the launcher
# The contract's default cap, here once (the workflow spec takes it from here).
DEFAULT_CONCURRENCY = 10
# Tasks are started for the backlog, one per this many waiting files (KEDA's SQS scaler's
# queueLength, whose own default is 5): a task works through many files, so a task start
# (seconds locally, up to a minute on Fargate, which bills a minute at least) is paid per 10
# files, not per file. bench/e2e.py (200 files, 3 rounds each): 10 gave 22.8 files/s with 5
# tasks per 100 files, 50 gave 17.0 with 2, cap 2 a task per file 21.3-21.5 with 2.
DEFAULT_FILES_PER_TASK = 10
LAUNCH_TYPES = ("FARGATE", "EC2")
# Capacity providers a Fargate task may run on instead of the plain launch type ("" in LauncherConfig).
FARGATE_CAPACITY_PROVIDERS = ("FARGATE", "FARGATE_SPOT")
# A capacity provider of the cluster's own (an Auto Scaling group): ECS's name rule.
PROVIDER_NAME = re.compile(r"^[A-Za-z0-9_-]{1,255}$")
PUBLIC_IP_SETTINGS = ("ENABLED", "DISABLED")
# An AWS region's name, whole: a workflow's `region` and the --region flag (a trailing newline
# would otherwise reach boto3 and come back as "cannot reach AWS").
REGION_PATTERN = r"\A[a-z]{2}(-[a-z]+)+-\d\Z"
MAX_STARTED_BY = 36


class ConfigError(ValueError):
    """The worker's or the launcher's environment is missing or has an invalid setting."""


REQUIRED_VARS = {
    "pipeline": "YUNPIPE_PIPELINE",
    "step": "YUNPIPE_STEP",
    "queue_url": QUEUE_URL_VARIABLE,
    "cluster": "YUNPIPE_CLUSTER",
    "task_definition": "YUNPIPE_TASK_DEFINITION",
    "started_by": "YUNPIPE_STARTED_BY",
}


class GrowPath(NamedTuple):
    """A larger size of a step (YUNPIPE_GROW, JSON; its queue's URL: YUNPIPE_GROW_QUEUE_URL_<MiB>)."""

    memory: int
    task_definition: str
    started_by: str
    queue_url: str = ""


def grow_queue_variable(memory: int) -> str:
    return f"{GROW_QUEUE_URL_VARIABLE}_{memory}"


def _grow_paths(env: Mapping[str, str]) -> tuple[GrowPath, ...]:
    raw = env.get("YUNPIPE_GROW", "").strip()
    try:
        paths = tuple(GrowPath(int(e["memory"]), str(e["task_definition"]), str(e["started_by"]),
                               env.get(grow_queue_variable(int(e["memory"])), "").strip())
                      for e in (json.loads(raw) if raw else ()))
    except (ValueError, KeyError, TypeError) as error:
        raise ConfigError(f'YUNPIPE_GROW must be a JSON list of {{"memory", "task_definition", "started_by"}}, '
                          f"got {raw!r} ({error})") from None
    if any(not p.queue_url for p in paths):
        raise ConfigError(f"YUNPIPE_GROW names a queue without its {grow_queue_variable(0)[:-1]}<MiB> URL")
    return paths


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


def _flag(env: Mapping[str, str], var: str, default: bool = False) -> bool:
    value = env.get(var, "").strip() or ("1" if default else "0")
    if value not in ("0", "1"):
        raise ConfigError(f"{var} must be 1 or 0, got {value!r}")
    return value == "1"


@dataclass(frozen=True)
class LauncherConfig:
    """The launcher Lambda's environment of the runtime contract."""

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
    # "" for a launcher without an on-failure destination: its scheduled runs recover nothing.
    failed_events_url: str = ""
    # Accounting: the reports bucket whose open runs its scheduled runs settle, and the topic
    # a settled run is announced on ("" if none).
    report_bucket: str = ""
    accounting: bool = True
    topic_arn: str = ""
    # The step's paths at larger memories, smallest first (a job out of memory takes the next).
    grow: tuple[GrowPath, ...] = ()

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> LauncherConfig:
        env = os.environ if environ is None else environ
        missing = [var for var in REQUIRED_VARS.values() if not env.get(var, "").strip()]
        if missing:
            raise ConfigError("launcher environment lacks required variable(s): " + ", ".join(missing))
        values = {field: env[var].strip() for field, var in REQUIRED_VARS.items()}

        concurrency = _integer(env, "YUNPIPE_CONCURRENCY", DEFAULT_CONCURRENCY, 1)
        files_per_task = _integer(env, "YUNPIPE_FILES_PER_TASK", DEFAULT_FILES_PER_TASK, 1)

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
            failed_events_url=env.get(FAILED_EVENTS_URL_VARIABLE, "").strip(),
            report_bucket=env.get("YUNPIPE_REPORT_BUCKET", "").strip(),
            accounting=_flag(env, "YUNPIPE_ACCOUNTING", default=True),
            topic_arn=env.get("YUNPIPE_TOPIC_ARN", "").strip(),
            grow=_grow_paths(env),
        )

    @property
    def on_instances(self) -> bool:
        """Tasks go to the EC2 instances of an Auto Scaling group capacity provider: their task
        definitions use bridge networking, which takes no network configuration."""
        return bool(self.capacity_provider) and self.capacity_provider not in FARGATE_CAPACITY_PROVIDERS

    def to_env(self) -> dict[str, str]:
        """The Lambda environment from_env reads back as this LauncherConfig."""
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
            FAILED_EVENTS_URL_VARIABLE: self.failed_events_url,
            "YUNPIPE_REPORT_BUCKET": self.report_bucket,
            "YUNPIPE_ACCOUNTING": "1" if self.accounting else "0",
            "YUNPIPE_TOPIC_ARN": self.topic_arn,
            "YUNPIPE_GROW": json.dumps([{"memory": p.memory, "task_definition": p.task_definition,
                                         "started_by": p.started_by} for p in self.grow]) if self.grow else "",
            **{grow_queue_variable(p.memory): p.queue_url for p in self.grow},
        }


# --------------------------------------------------------------------------- task starts
# Each time the launcher asks RunTask for tasks it writes one line to its own CloudWatch Logs:
# this marker, then JSON saying how many started, how many did not, and ECS's reasons. `yunpipe
# status` reads them back with FilterLogEvents (a quoted-term filter on the marker).
TASK_STARTS_MARKER = "yunpipe-task-starts"


def task_starts_line(pipeline: str, step: str, at: str, started: int, not_started: int,
                     failures: Iterable[Mapping[str, Any]]) -> str:
    """The log line: `at` is when (ISO 8601, UTC); `failures` ECS's reasons (reason, detail, arn)
    for the tasks not started, or the error that stopped the launcher starting any."""
    record = {"pipeline": pipeline, "step": step, "at": at, "started": started, "not_started": not_started,
              "failures": [dict(failure) for failure in failures]}
    return f"{TASK_STARTS_MARKER} {json.dumps(record, sort_keys=True)}"


def read_task_starts_line(message: str) -> dict[str, Any] | None:
    """The record of a log event's message (the runtime's prefix before the marker is skipped),
    or None when the message holds none."""
    start = message.find(TASK_STARTS_MARKER + " ")
    if start < 0:
        return None
    try:
        record, _ = json.JSONDecoder().raw_decode(message[start + len(TASK_STARTS_MARKER) + 1:])
    except ValueError:
        return None
    return record if isinstance(record, dict) else None
