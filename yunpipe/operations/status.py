"""What a deployed pipeline is doing, as data: per step, messages waiting, in flight and dead,
tasks running, the newest failure reports, why its launcher last could not start tasks, and the
events waiting to be recovered. `yunpipe status` prints it; the demo polls it.
"""
import json
import time
from dataclasses import asdict, dataclass
from datetime import datetime, timezone

from yunpipe.aws.reader import NOT_FOUND, Reader
from yunpipe.engine.graph import Layout, Placement, chain_of
from yunpipe.engine.state import PipelineSummary
from yunpipe.runtime.contract import TASK_STARTS_MARKER, read_task_starts_line

# How far back status looks in the launchers' task-start lines. A step that stays stalled
# fails again on every scheduled top-up, so its newest line is recent.
NOT_STARTED_WINDOW_HOURS = 24
_VCPU_QUOTA = ("the account's Fargate vCPU quota is used up: ask for a Service Quotas increase of \"Fargate "
               "On-Demand vCPU resource count\" in {region}, or lower the steps' concurrency or cpu")
# What to do about the reasons ECS gives most often in new accounts (the first match applies;
# matched case-insensitively within the reason or its detail).
NOT_STARTED_FIXES = (
    ("cpu configuration is above your limit", _VCPU_QUOTA),
    ("limit on the number of vcpus", _VCPU_QUOTA),
    ("limit on the number of tasks you can run concurrently",
     "a new account cannot run Fargate tasks until AWS has verified it: contact AWS Support; in an older "
     "account, ask for a Service Quotas increase of the Fargate vCPU quota in {region}"),
    ("blocked", "AWS has blocked this account from starting tasks: contact AWS Support"),
    ("resource:memory",
     "the step's instance type is too small for the task's memory: pick a larger instance_type or ask for less memory"),
    ("resource:gpu", "the step's instance type has fewer GPUs than the task asks for: pick an instance type with more"),
    ("resource:cpu", "the step's instance type has fewer vCPUs than the task asks for: pick a larger instance_type"),
    ("capacity is unavailable", "AWS has no spare capacity in these zones now; the scheduled top-up retries"),
    ("accessdenied", "the launcher's role may not do this: run setup-pipe again to restore its policy"),
)


@dataclass(frozen=True)
class NotStarted:
    """The launcher's newest record of tasks it could not start: when (ISO 8601, UTC), how many,
    ECS's failures (reason, detail, arn), how many such records the window holds, and when tasks
    last started after it ("" while none has)."""
    at: str
    not_started: int
    failures: tuple[dict, ...]
    times: int = 1
    started_since: str = ""


@dataclass(frozen=True)
class StepStatus:
    name: str
    waiting: int
    in_flight: int
    dead: int
    running: int
    failures: tuple[dict, ...] = ()
    not_started: NotStarted | None = None
    # Events Lambda could not deliver to the launcher, waiting for its scheduled run.
    undelivered: int = 0
    # Results the step has written (None: not counted, as in the demo's polling).
    done: int | None = None
    # Files out of memory waiting or running at the step's larger sizes (engine/grow.py).
    growing: int = 0


@dataclass(frozen=True)
class PipelineStatus:
    steps: tuple[StepStatus, ...]
    results: int | None = None  # objects in the final output bucket, when counted

    @property
    def queued(self) -> int:
        return sum(s.waiting + s.in_flight for s in self.steps)

    @property
    def running(self) -> int:
        return sum(s.running for s in self.steps)

    @property
    def dead(self) -> int:
        return sum(s.dead for s in self.steps)


def _queue_counts(reader: Reader, name: str) -> tuple[int, int]:
    url = reader.queue_url(name)
    if url is None:
        return 0, 0
    attributes = reader.read("sqs", "get_queue_attributes", QueueUrl=url, AttributeNames=[
        "ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"])["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"]), int(attributes["ApproximateNumberOfMessagesNotVisible"])


def latest_failures(reader: Reader, summary: PipelineSummary, step: str, count: int | None = 5) -> tuple[dict, ...]:
    """The newest failure reports of a step (runtime contract: failures/<pipeline>/<step>/...);
    count None: every one."""
    objects = reader.pages("s3", "list_objects_v2", "Contents", ("NoSuchBucket",), Bucket=summary.reports_bucket,
                           Prefix=f"failures/{summary.pipeline}/{step}/")
    newest = sorted(objects, key=lambda o: o["LastModified"], reverse=True)[:count]
    reports = []
    for obj in newest:
        body = reader.read("s3", "get_object", ("NoSuchKey",), Bucket=summary.reports_bucket, Key=obj["Key"])
        if body:
            try:
                reports.append(json.loads(body["Body"].read()))
            except json.JSONDecodeError:
                reports.append({"key": obj["Key"], "reason": "unreadable report"})
    return tuple(reports)


def latest_not_started(reader: Reader, function: str, now: float | None = None) -> NotStarted | None:
    """The newest record of tasks a step's launcher could not start (runtime contract:
    contract.task_starts_line) within NOT_STARTED_WINDOW_HOURS, read from the launcher's CloudWatch
    Logs (the launcher writes it there so that its role needs no more than its own log writes);
    None when there is none."""
    start = int(((time.time() if now is None else now) - NOT_STARTED_WINDOW_HOURS * 3600) * 1000)
    events = reader.pages("logs", "filter_log_events", "events", NOT_FOUND, logGroupName=f"/aws/lambda/{function}",
                          startTime=start, filterPattern=f'"{TASK_STARTS_MARKER}"')
    records = [record for event in sorted(events, key=lambda e: e["timestamp"])
               if (record := read_task_starts_line(event["message"])) is not None]
    failed = [index for index, r in enumerate(records) if r.get("not_started") or r.get("failures")]
    if not failed:
        return None
    newest = records[failed[-1]]
    since = next((str(r.get("at", "")) for r in reversed(records[failed[-1] + 1:]) if r.get("started")), "")
    return NotStarted(str(newest.get("at", "")), int(newest.get("not_started", 0)),
                      tuple(newest.get("failures") or ()), len(failed), since)


def not_started_fix(failure: dict, region: str) -> str:
    """How to fix a known reason ("" for another)."""
    text = f"{failure.get('reason', '')} {failure.get('detail', '')}".lower()
    return next((fix.format(region=region) for known, fix in NOT_STARTED_FIXES if known in text), "")


def render_not_started(record: NotStarted, region: str) -> list[str]:
    count = f"{record.not_started} task(s) " if record.not_started else "tasks "
    times = f", {record.times} time(s) in the last {NOT_STARTED_WINDOW_HOURS} h" if record.times > 1 else ""
    lines = [f"  {count}not started at {record.at}{times}:"]
    reasons: dict[str, dict] = {}
    for failure in record.failures:
        reasons.setdefault(f"{failure.get('reason', '')}: {failure.get('detail', '')}".strip(": "), failure)
    for reason, failure in reasons.items():
        lines.append(f"    {reason or 'no reason given'}")
        fix = not_started_fix(failure, region)
        if fix and not record.started_since:
            lines.append(f"      fix: {fix}")
    if record.started_since:
        lines.append(f"    tasks have started since, at {record.started_since}")
    return lines


def step_results(reader: Reader, placement: Placement) -> dict[str, datetime]:
    """The results a step has written: input key -> when (its output bucket, under the prefix a
    step of several final ones writes to)."""
    objects = reader.pages("s3", "list_objects_v2", "Contents", ("NoSuchBucket",), Bucket=placement.output_bucket,
                           Prefix=placement.output_prefix)
    return {o["Key"][len(placement.output_prefix):]: o["LastModified"] for o in objects if not o["Key"].endswith("/")}


def superseded(report: dict, results: dict[str, datetime]) -> bool:
    """Whether a result of the report's input was written after the failure (a later try or a
    retry succeeded)."""
    written = results.get(str(report.get("key", "")))
    if written is None:
        return False
    try:
        failed = datetime.fromisoformat(str(report.get("finished_at", "")).replace("Z", "+00:00"))
    except ValueError:
        return True  # no time to compare: the result is there
    return written >= (failed if failed.tzinfo else failed.replace(tzinfo=timezone.utc))


def collect(reader: Reader, summary: PipelineSummary, failures: int | None = 5,
            count_results: bool = False) -> PipelineStatus:
    """failures: how many of each step's newest failure reports to read (None: all); 0 reads none,
    nor the launchers' logs, nor the results (the demo's polling)."""
    steps = []
    layout = Layout.from_document(summary.layout) if summary.layout else chain_of(summary)
    for step in summary.steps:
        waiting, in_flight = _queue_counts(reader, step.queue)
        dead, dead_in_flight = _queue_counts(reader, step.dead_letter_queue)
        running = len(reader.pages("ecs", "list_tasks", "taskArns", ("ClusterNotFoundException",),
                                   cluster=summary.cluster, startedBy=step.started_by, desiredStatus="RUNNING"))
        reports = latest_failures(reader, summary, step.name, failures) if failures != 0 else ()
        not_started = latest_not_started(reader, step.function) if failures != 0 else None
        undelivered = sum(_queue_counts(reader, step.failed_events_queue)) if step.failed_events_queue else 0
        growing = sum(sum(_queue_counts(reader, queue)) for queue in step.grow_queues)
        done = None
        if failures != 0:
            written = step_results(reader, layout.step(step.name))
            done = len(written)
            reports = tuple({**r, "superseded": superseded(r, written)} for r in reports)
        steps.append(StepStatus(step.name, waiting, in_flight, dead + dead_in_flight, running, reports, not_started,
                                undelivered, done, growing))
    results = None
    if count_results:
        results = len(reader.pages("s3", "list_objects_v2", "Contents", ("NoSuchBucket",), Bucket=summary.output_bucket))
    return PipelineStatus(tuple(steps), results)


def as_document(summary: PipelineSummary, status: PipelineStatus) -> dict:
    """What `status --json` prints: where the pipeline is, its totals, and each step's counts,
    failure reports and trouble starting tasks (None when there is none)."""
    return {"pipeline": summary.pipeline, "region": summary.region, "input_bucket": summary.input_bucket,
            "output_bucket": summary.output_bucket, "queued": status.queued, "running": status.running,
            "dead": status.dead, "results": status.results, "steps": [asdict(step) for step in status.steps]}


def render(summary: PipelineSummary, status: PipelineStatus) -> str:
    lines = [f"Pipeline {summary.pipeline} ({summary.region}): {summary.input_bucket} -> {summary.output_bucket}"]
    for step in status.steps:
        # Done out of what the step has been given: its results, and the files it still holds.
        done = "" if step.done is None else \
            f"{step.done} of {step.done + step.waiting + step.in_flight + step.dead + step.growing} done, "
        lines.append(f"step {step.name}: {done}{step.waiting} waiting, {step.in_flight} in flight, "
                     f"{step.dead} in the dead-letter queue, {step.running} task(s) running")
        if step.not_started:
            lines += render_not_started(step.not_started, summary.region)
        if step.growing:
            lines.append(f"  {step.growing} file(s) out of memory waiting or running at a larger memory")
        if step.undelivered:
            lines.append(f"  {step.undelivered} event(s) Lambda could not deliver to the launcher (throttled or "
                         "failing): its next scheduled run queues their files")
        for report in step.failures:
            final = " (final try)" if report.get("final") else ""
            exit_code = f" exit {report['exit_code']}" if report.get("exit_code") is not None else ""
            later = " (a later try succeeded)" if report.get("superseded") else ""
            lines.append(f"  failed {report.get('key', '?')} attempt {report.get('attempt', '?')}{final}: "
                         f"{report.get('reason', '')}{exit_code}{_memory(report)} {report.get('finished_at', '')}".rstrip()
                         + later)
            tail = (report.get("stderr_tail") or "").strip().splitlines()
            if tail:
                lines.append(f"    stderr: {tail[-1]}")
    return "\n".join(lines)


def _memory(report: dict) -> str:
    """An out-of-memory report's sizes: the one it ran at, and the one it went on at (or none left)."""
    if report.get("reason") != "oom" or not report.get("memory_mib"):
        return ""
    if report.get("retry_memory_mib"):
        return f" at {report['memory_mib']} MiB, tried again at {report['retry_memory_mib']} MiB"
    return f" at {report['memory_mib']} MiB" + (", the largest size" if report.get("final") else "")
