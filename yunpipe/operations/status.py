"""What a deployed pipeline is doing, as data: per step, messages waiting, in flight and dead,
tasks running, the newest failure reports, and events waiting to be recovered. `yunpipe status` prints it; the demo polls it.
"""
import json
from dataclasses import dataclass

from yunpipe.aws.reader import Reader
from yunpipe.engine.state import PipelineSummary


@dataclass(frozen=True)
class StepStatus:
    name: str
    waiting: int
    in_flight: int
    dead: int
    running: int
    failures: tuple[dict, ...] = ()
    # Events Lambda could not deliver to the launcher, waiting for its scheduled run.
    undelivered: int = 0


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


def latest_failures(reader: Reader, summary: PipelineSummary, step: str, count: int = 5) -> tuple[dict, ...]:
    """The newest failure reports of a step (runtime contract: failures/<pipeline>/<step>/...)."""
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


def collect(reader: Reader, summary: PipelineSummary, failures: int = 5, count_results: bool = False) -> PipelineStatus:
    steps = []
    for step in summary.steps:
        waiting, in_flight = _queue_counts(reader, step.queue)
        dead, dead_in_flight = _queue_counts(reader, step.dead_letter_queue)
        running = len(reader.pages("ecs", "list_tasks", "taskArns", ("ClusterNotFoundException",),
                                   cluster=summary.cluster, startedBy=step.started_by, desiredStatus="RUNNING"))
        reports = latest_failures(reader, summary, step.name, failures) if failures else ()
        undelivered = sum(_queue_counts(reader, step.failed_events_queue)) if step.failed_events_queue else 0
        steps.append(StepStatus(step.name, waiting, in_flight, dead + dead_in_flight, running, reports, undelivered))
    results = None
    if count_results:
        results = len(reader.pages("s3", "list_objects_v2", "Contents", ("NoSuchBucket",), Bucket=summary.output_bucket))
    return PipelineStatus(tuple(steps), results)


def render(summary: PipelineSummary, status: PipelineStatus) -> str:
    lines = [f"Pipeline {summary.pipeline} ({summary.region}): {summary.input_bucket} -> {summary.output_bucket}"]
    for step in status.steps:
        lines.append(f"step {step.name}: {step.waiting} waiting, {step.in_flight} in flight, "
                     f"{step.dead} in the dead-letter queue, {step.running} task(s) running")
        if step.undelivered:
            lines.append(f"  {step.undelivered} event(s) Lambda could not deliver to the launcher (throttled or "
                         "failing): its next scheduled run queues their files")
        for report in step.failures:
            final = " (final try)" if report.get("final") else ""
            exit_code = f" exit {report['exit_code']}" if report.get("exit_code") is not None else ""
            lines.append(f"  failed {report.get('key', '?')} attempt {report.get('attempt', '?')}{final}: "
                         f"{report.get('reason', '')}{exit_code} {report.get('finished_at', '')}".rstrip())
            tail = (report.get("stderr_tail") or "").strip().splitlines()
            if tail:
                lines.append(f"    stderr: {tail[-1]}")
    return "\n".join(lines)
