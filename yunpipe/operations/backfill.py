"""yunpipe submit / retry: put work into a deployed pipeline by hand. submit queues the objects
already in a step's input bucket (or one gather message), retry moves a step's dead-lettered
messages back to its queue after a fix. Both then wake the step's launcher, so workers start now
rather than at its next scheduled run.

The messages are the launcher's (docs/runtime-contract.md, "Queue message"), sent as it sends
them: batches of 10, failed entries resent.
"""
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from tqdm import tqdm

from yunpipe.aws.facade import Aws
from yunpipe.aws.location import AwsOptions
from yunpipe.aws.reader import Reader
from yunpipe.engine import graph
from yunpipe.engine.state import PipelineSummary, StepSummary, find_step, require_summary
from yunpipe.errors import InputError, YunpipeError
from yunpipe.operations.reach import reach
from yunpipe.runtime.launcher import sending
from yunpipe.runtime.launcher.tasks import DESCRIBE_BATCH

GATHER_KEY = "gather"
# A long poll, however short, asks every SQS server; a short poll may answer empty while messages wait.
RECEIVE_WAIT_SECONDS = 1
# How long a received dead letter stays hidden: one whose move failed returns to the DLQ then.
RECEIVE_VISIBILITY_SECONDS = 60
# ECS gives a stopped task's containers 30 s (its default stopTimeout) before it kills them.
STOP_WAIT_SECONDS = 45


def object_message(summary: PipelineSummary, step: StepSummary, obj: dict) -> dict:
    """The launcher's message for an object of a list_objects_v2 page (whose ETag is quoted)."""
    return {"bucket": step.input_bucket, "key": obj["Key"], "etag": obj["ETag"].strip('"'), "size": obj["Size"],
            "pipeline": summary.pipeline, "step": step.name}


def gather_message(summary: PipelineSummary, step: StepSummary, name: str, prefix: str) -> dict:
    """The one message a gather step's queue expects: gather what is under `prefix`, as `name`."""
    return {"key": name, "bucket": step.input_bucket, "etag": "", "gather": {"prefix": prefix},
            "pipeline": summary.pipeline, "step": step.name}


# The launcher's own batch send (with its retries), which retry also needs for bodies that are
# not JSON: one send path for every message a pipeline's queues get.
send_batch = sending.send_batch


def _send_all(sqs: Any, queue_url: str, bodies: list[str], queued_before: int) -> None:
    errors = send_batch(sqs, queue_url, bodies)
    if errors:
        raise YunpipeError(f"{len(errors)} message(s) not queued to {queue_url} ({'; '.join(set(errors.values()))}); "
                           f"{queued_before + len(bodies) - len(errors)} message(s) were queued")


def wake_launcher(aws: Aws, step: StepSummary) -> None:
    """Invoke the step's launcher asynchronously with an empty event, its scheduled top-up: it
    starts workers for what waits in the queue."""
    aws.call("lambda", "invoke", FunctionName=step.function, InvocationType="Event", Payload=b"{}")


def _queue_url(reader: Reader, name: str, pipeline: str) -> str:
    url = reader.queue_url(name)
    if url is None:
        raise YunpipeError(f"the queue {name} of pipeline {pipeline} does not exist; run setup-pipe again")
    return url


def queue_objects(aws: Aws, queue_url: str, summary: PipelineSummary, step: StepSummary, prefix: str) -> int:
    """Queue every object under `prefix` in the step's input bucket, once; returns how many.
    Sent while listing, so a large bucket starts queuing at once."""
    sqs = aws.client("sqs")
    seen: set[str] = set()
    batch: list[str] = []
    with tqdm(unit="object", desc=f"queue to {step.name}", disable=None) as progress:
        objects = aws.pages("s3", "list_objects_v2", "Contents", Bucket=step.input_bucket, Prefix=prefix)
        for obj in objects:
            # A key ending in '/' is a folder marker, as the launcher skips it.
            if obj["Key"].endswith("/") or obj["Key"] in seen:
                continue
            seen.add(obj["Key"])
            batch.append(json.dumps(object_message(summary, step, obj)))
            if len(batch) == sending.BATCH_SIZE:
                _send_all(sqs, queue_url, batch, len(seen) - len(batch))
                progress.update(len(batch))
                batch = []
        if batch:
            _send_all(sqs, queue_url, batch, len(seen) - len(batch))
            progress.update(len(batch))
    return len(seen)


def _gather_step(summary: PipelineSummary) -> str | None:
    """The step `submit --gather` means when --step names none: the pipeline's gather step; in a
    pipeline without one, the first step (any worker can gather)."""
    layout = graph.Layout.from_document(summary.layout) if summary.layout else graph.chain_of(summary)
    gathering = [p.step for p in layout.steps if p.gather]
    if not gathering:
        return None
    if len(gathering) > 1:
        raise InputError("submit", "--step", f"expected the gather step to send to: one of {', '.join(gathering)}")
    return gathering[0]


@dataclass(frozen=True)
class SubmitOptions:
    pipeline: str
    prefix: str = ""
    step: str | None = None  # default: the first (with gather: the gather step)
    gather: bool = False  # one gather message for the objects under prefix
    name: str | None = None  # with gather: the key of the gathered result
    where: AwsOptions = field(default_factory=AwsOptions)


@dataclass(frozen=True)
class Submitted:
    """What submit queued: `count` objects, or one gather message named `gathered`."""
    aws: Aws
    step: StepSummary
    count: int = 0
    gathered: str | None = None


def submit(options: SubmitOptions) -> Submitted:
    """Queue the objects under the prefix (or one gather message) to the step's queue; the
    caller then wakes its launcher (wake_launcher) when anything was queued."""
    summary = require_summary(options.pipeline)
    step = find_step(summary, options.step or (_gather_step(summary) if options.gather else None), "submit")
    if options.name is not None and not options.gather:
        raise InputError("submit", "--name", "expected only with --gather (it names the gather message's key)")
    aws = reach(options.where, options.pipeline, summary)
    reader = Reader(aws)
    queue_url = _queue_url(reader, step.queue, options.pipeline)
    if options.gather:
        name = options.name or GATHER_KEY
        _send_all(aws.client("sqs"), queue_url, [json.dumps(gather_message(summary, step, name, options.prefix))], 0)
        return Submitted(aws, step, gathered=name)
    # Asked before the progress bar starts, as upload does: no bucket is one line.
    if not reader.bucket_exists(step.input_bucket):
        raise YunpipeError(f"the input bucket {step.input_bucket} of step {step.name} does not exist; "
                           "run setup-pipe again")
    return Submitted(aws, step, count=queue_objects(aws, queue_url, summary, step, options.prefix))


def move_dead_letters(aws: Aws, dlq_url: str, queue_url: str, step: StepSummary) -> int:
    """Move the messages the dead-letter queue holds when it starts back to the step's queue,
    body unchanged; returns how many. At most that many: a message that fails again while this
    runs returns to the dead-letter queue and must not be moved round and round. Client-side,
    since moto has no StartMessageMoveTask: each message is deleted from the DLQ only once the
    queue has taken it."""
    sqs = aws.client("sqs")
    waiting = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["ApproximateNumberOfMessages"])
    total = int(waiting["Attributes"]["ApproximateNumberOfMessages"])
    moved = 0
    with tqdm(total=total, unit="message", desc=f"retry {step.name}", disable=None) as progress:
        while moved < total:
            messages = sqs.receive_message(
                QueueUrl=dlq_url, MaxNumberOfMessages=min(sending.BATCH_SIZE, total - moved),
                WaitTimeSeconds=RECEIVE_WAIT_SECONDS, VisibilityTimeout=RECEIVE_VISIBILITY_SECONDS).get("Messages", [])
            if not messages:
                return moved
            errors = send_batch(sqs, queue_url, [message["Body"] for message in messages])
            sent = [message for index, message in enumerate(messages) if index not in errors]
            if sent:
                deleted = sqs.delete_message_batch(QueueUrl=dlq_url, Entries=[
                    {"Id": str(index), "ReceiptHandle": message["ReceiptHandle"]} for index, message in enumerate(sent)])
                if deleted.get("Failed"):
                    raise YunpipeError(f"{len(deleted['Failed'])} message(s) were queued to {step.queue} again but "
                                       f"are still in {step.dead_letter_queue}: a later retry queues them twice")
            moved += len(sent)
            progress.update(len(sent))
            if errors:
                raise YunpipeError(f"{len(errors)} message(s) of step {step.name} stay in {step.dead_letter_queue}, "
                                   f"{step.queue} did not take them ({'; '.join(set(errors.values()))}); "
                                   f"{moved} were moved")
    return moved


def stop_outdated_workers(aws: Aws, cluster: str, step: StepSummary, sleep: Callable[[float], None] = time.sleep) -> int:
    """Stop the step's tasks started from an older revision of its task definition, and wait
    until ECS reports them stopped: after a fix (a new variable, a new algorithm version) they
    would fail the retried files again. A file such a task was working on returns to the queue
    after its visibility timeout."""
    ecs = aws.client("ecs")
    latest = ecs.describe_task_definition(taskDefinition=step.task_family)["taskDefinition"]["taskDefinitionArn"]
    arns = list(aws.pages("ecs", "list_tasks", "taskArns", cluster=cluster, startedBy=step.started_by,
                          desiredStatus="RUNNING"))
    outdated = [task["taskArn"] for start in range(0, len(arns), DESCRIBE_BATCH)
                for task in ecs.describe_tasks(cluster=cluster, tasks=arns[start:start + DESCRIBE_BATCH])["tasks"]
                if task["taskDefinitionArn"] != latest]
    for arn in outdated:
        ecs.stop_task(cluster=cluster, task=arn, reason="yunpipe retry: started from an older task definition")
    waited = 0.0
    while outdated and waited < STOP_WAIT_SECONDS:
        tasks = [task for start in range(0, len(outdated), DESCRIBE_BATCH)
                 for task in ecs.describe_tasks(cluster=cluster, tasks=outdated[start:start + DESCRIBE_BATCH])["tasks"]]
        if all(task["lastStatus"] == "STOPPED" for task in tasks):
            break
        sleep(1)
        waited += 1
    return len(outdated)


@dataclass(frozen=True)
class RetryOptions:
    pipeline: str
    step: str | None = None  # default: every step
    where: AwsOptions = field(default_factory=AwsOptions)


@dataclass(frozen=True)
class Retried:
    step: StepSummary
    stopped: int  # tasks stopped, started from an older task definition
    moved: int  # messages moved back from the dead-letter queue


def retry(options: RetryOptions) -> Iterator[Retried]:
    """Per step: stop its outdated workers, move its dead letters back, yield what was done, then
    wake its launcher when any moved."""
    summary = require_summary(options.pipeline)
    steps = [find_step(summary, options.step, "retry")] if options.step else list(summary.steps)
    aws = reach(options.where, options.pipeline, summary)
    reader = Reader(aws)
    # Every queue is found before any message moves.
    urls = [(_queue_url(reader, step.dead_letter_queue, options.pipeline), _queue_url(reader, step.queue, options.pipeline))
            for step in steps]
    for step, (dlq_url, queue_url) in zip(steps, urls, strict=True):
        stopped = stop_outdated_workers(aws, summary.cluster, step)
        moved = move_dead_letters(aws, dlq_url, queue_url, step)
        yield Retried(step, stopped, moved)
        if moved:
            wake_launcher(aws, step)
