"""yunpipe submit / retry: put work into a deployed pipeline by hand. submit queues the objects
already in a step's input bucket (or one gather message) as one run (each message names it),
retry moves a step's dead-lettered
messages back to its queue after a fix (or, with --discard, drops them). Both then wake the
step's launcher, so workers start now rather than at its next scheduled run.

retry after a redeploy: the workers of an older task definition are stopped, and retry waits
until they have exited before it moves a message, so only workers of the current definition can
take one (a stopping worker would receive it, release it unrun, and burn one of its tries).

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
from yunpipe.operations.opening import OpenRun, keep_sent, open_run
from yunpipe.operations.reach import reach
from yunpipe.registry import AlgorithmRegistry
from yunpipe.runtime.launcher import sending
from yunpipe.runtime.launcher.tasks import DESCRIBE_BATCH

GATHER_KEY = "gather"
# A long poll, however short, asks every SQS server; a short poll may answer empty while messages wait.
RECEIVE_WAIT_SECONDS = 1
# How long a received dead letter stays hidden: one whose move failed returns to the DLQ then.
RECEIVE_VISIBILITY_SECONDS = 60
# ECS gives a stopped task's containers 30 s (its default stopTimeout) before it kills them; a
# worker exits within its receive wait (20 s at most) of the SIGTERM.
STOP_WAIT_SECONDS = 60
# A task's containers have exited in these states (ECS then detaches its network interface).
GONE = ("DEPROVISIONING", "STOPPED")
# How often retry looks whether the stopped workers have gone: each look is one DescribeTasks.
STOP_POLL_SECONDS = 0.5


def object_message(summary: PipelineSummary, step: StepSummary, obj: dict, force: bool = False) -> dict:
    """The launcher's message for an object of a list_objects_v2 page (whose ETag is quoted);
    `force`: run it even where its results are there with matching provenance."""
    return {"bucket": step.input_bucket, "key": obj["Key"], "etag": obj["ETag"].strip('"'), "size": obj["Size"],
            "pipeline": summary.pipeline, "step": step.name, **({"force": True} if force else {})}


def gather_message(summary: PipelineSummary, step: StepSummary, name: str, prefix: str, force: bool = False) -> dict:
    """The one message a gather step's queue expects: gather what is under `prefix`, as `name`."""
    return {"key": name, "bucket": step.input_bucket, "etag": "", "gather": {"prefix": prefix},
            "pipeline": summary.pipeline, "step": step.name, **({"force": True} if force else {})}


# The launcher's own batch send (with its retries), which retry also needs for bodies that are
# not JSON: one send path for every message a pipeline's queues get.
send_batch = sending.send_batch


def _send_all(sqs: Any, queue_url: str, bodies: list[str], queued_before: int) -> None:
    """Send the bodies; NotQueued names those SQS did not take."""
    errors = send_batch(sqs, queue_url, bodies)
    if errors:
        raise NotQueued(f"{len(errors)} message(s) not queued to {queue_url} ({'; '.join(set(errors.values()))}); "
                        f"{queued_before + len(bodies) - len(errors)} message(s) were queued", sorted(errors))


class NotQueued(YunpipeError):
    """Some messages of a batch were not queued: `failed` are their indexes in it."""

    def __init__(self, message: str, failed: list[int]):
        super().__init__(message)
        self.failed = failed


def wake_launcher(aws: Aws, step: StepSummary) -> None:
    """Invoke the step's launcher asynchronously with an empty event, its scheduled top-up: it
    starts workers for what waits in the queue."""
    aws.call("lambda", "invoke", FunctionName=step.function, InvocationType="Event", Payload=b"{}")


def _queue_url(reader: Reader, name: str, pipeline: str) -> str:
    url = reader.queue_url(name)
    if url is None:
        raise YunpipeError(f"the queue {name} of pipeline {pipeline} does not exist; run setup-pipe again")
    return url


def listed_objects(aws: Aws, step: StepSummary, prefix: str) -> list[dict]:
    """The objects under `prefix` in the step's input bucket, each once (a key ending in '/' is a
    folder marker, as the launcher skips it). Listed whole before anything is queued: the run's
    manifest names them all before a worker can finish one."""
    seen: dict[str, dict] = {}
    for obj in aws.pages("s3", "list_objects_v2", "Contents", Bucket=step.input_bucket, Prefix=prefix):
        if not obj["Key"].endswith("/"):
            seen.setdefault(obj["Key"], obj)
    return list(seen.values())


def queue_objects(aws: Aws, queue_url: str, summary: PipelineSummary, step: StepSummary, prefix: str,
                  opened_by: str = "yunpipe submit", force: bool = False) -> tuple[int, OpenRun | None]:
    """Queue every object under `prefix` in the step's input bucket, once, as one run; returns
    how many, and the run (None when the pipeline does not account). `force`: see object_message."""
    objects = listed_objects(aws, step, prefix)
    inputs = [{"bucket": step.input_bucket, "key": obj["Key"]} for obj in objects]
    opened = open_run(aws, summary, "submit", inputs, opened_by, steps=[step.name])
    run = {"run": opened.run} if opened else {}
    sqs = aws.client("sqs")
    sent: list[dict[str, str]] = []
    try:
        with tqdm(total=len(objects), unit="object", desc=f"queue to {step.name}", disable=None) as progress:
            for start in range(0, len(objects), sending.BATCH_SIZE):
                batch = inputs[start:start + sending.BATCH_SIZE]
                bodies = [json.dumps({**object_message(summary, step, obj, force), **run})
                          for obj in objects[start:start + sending.BATCH_SIZE]]
                try:
                    _send_all(sqs, queue_url, bodies, len(sent))
                except NotQueued as error:
                    sent += [entry for index, entry in enumerate(batch) if index not in error.failed]
                    raise
                sent += batch
                progress.update(len(batch))
    except BaseException:
        # Interrupted or refused: the run waits only for what was queued.
        keep_sent(aws, summary, opened, sent)
        raise
    return len(objects), opened


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
    force: bool = False  # run them even where their results are there with matching provenance


@dataclass(frozen=True)
class Submitted:
    """What submit queued: `count` objects, or one gather message named `gathered`."""
    aws: Aws
    step: StepSummary
    count: int = 0
    gathered: str | None = None
    run: OpenRun | None = None  # None when the pipeline does not account for its work


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
        opened = open_run(aws, summary, "submit", [{"bucket": step.input_bucket, "key": name}], "yunpipe submit --gather",
                          steps=[step.name])
        body = {**gather_message(summary, step, name, options.prefix, options.force),
                **({"run": opened.run} if opened else {})}
        try:
            _send_all(aws.client("sqs"), queue_url, [json.dumps(body)], 0)
        except BaseException:
            keep_sent(aws, summary, opened, [])
            raise
        return Submitted(aws, step, gathered=name, run=opened)
    # Asked before the progress bar starts, as upload does: no bucket is one line.
    if not reader.bucket_exists(step.input_bucket):
        raise YunpipeError(f"the input bucket {step.input_bucket} of step {step.name} does not exist; "
                           "run setup-pipe again")
    count, opened = queue_objects(aws, queue_url, summary, step, options.prefix, force=options.force)
    return Submitted(aws, step, count=count, run=opened)


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


def _gone(task: dict) -> bool:
    containers = task.get("containers") or []
    return task["lastStatus"] in GONE or (bool(containers) and all(c.get("lastStatus") == "STOPPED" for c in containers))


@dataclass(frozen=True)
class Definition:
    """A step's current task definition: its ARN and the NAME@VERSION its tasks run."""
    arn: str
    algorithm: str


def current_definition(aws: Aws, step: StepSummary) -> Definition:
    definition = aws.client("ecs").describe_task_definition(taskDefinition=step.task_family)["taskDefinition"]
    environment = {e["name"]: e["value"] for c in definition["containerDefinitions"] for e in c.get("environment", [])}
    return Definition(definition["taskDefinitionArn"], environment.get("YUNPIPE_ALGORITHM_REF", ""))


def stop_outdated_workers(aws: Aws, cluster: str, steps: list[tuple[StepSummary, str]],
                          sleep: Callable[[float], None] = time.sleep) -> list[int]:
    """Stop each step's tasks started from a task definition other than its current one (the
    ARN paired with it), and wait until their containers have exited; returns how many per step.
    After a fix (a new variable, a new algorithm version) they would fail the retried files
    again, and while stopping they would still receive them. Every step's are stopped before
    any message moves: a retried file done upstream soon reaches the next step. A file such a
    task was working on returns to the queue (the worker releases it at SIGTERM). Raises when
    some are still there after STOP_WAIT_SECONDS: nothing is moved then."""
    ecs = aws.client("ecs")
    outdated: list[list[str]] = []
    for step, latest in steps:
        arns = list(aws.pages("ecs", "list_tasks", "taskArns", cluster=cluster, startedBy=step.started_by,
                              desiredStatus="RUNNING"))
        outdated.append([task["taskArn"] for start in range(0, len(arns), DESCRIBE_BATCH)
                         for task in ecs.describe_tasks(cluster=cluster, tasks=arns[start:start + DESCRIBE_BATCH])["tasks"]
                         if task["taskDefinitionArn"] != latest])
    waiting = [arn for arns in outdated for arn in arns]
    for arn in waiting:
        ecs.stop_task(cluster=cluster, task=arn, reason="yunpipe retry: started from an older task definition")
    waited = 0.0
    while waiting:
        waiting = [task["taskArn"] for start in range(0, len(waiting), DESCRIBE_BATCH)
                   for task in ecs.describe_tasks(cluster=cluster, tasks=waiting[start:start + DESCRIBE_BATCH])["tasks"]
                   if not _gone(task)]
        if waiting and waited >= STOP_WAIT_SECONDS:
            raise YunpipeError(f"{len(waiting)} task(s) started from an older task definition are still stopping "
                               f"after {STOP_WAIT_SECONDS} s, and could take the retried messages: none was moved; "
                               "run retry again in a minute")
        if waiting:
            sleep(STOP_POLL_SECONDS)
            waited += STOP_POLL_SECONDS
    return [len(arns) for arns in outdated]


def queued(aws: Aws, queue_url: str) -> int:
    """Messages waiting in a queue (visible ones: a worker takes them next)."""
    attributes = aws.client("sqs").get_queue_attributes(QueueUrl=queue_url, AttributeNames=["ApproximateNumberOfMessages"])
    return int(attributes["Attributes"]["ApproximateNumberOfMessages"])


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
    waiting: int  # messages waiting in the step's queue after the move; its launcher is woken when any
    runs: str = ""  # NAME@VERSION the step's current task definition runs
    newest: str = ""  # the newest recorded version of that algorithm, when newer than `runs`


def newer_version(registry: AlgorithmRegistry, runs: str) -> str:
    """The newest recorded NAME@VERSION of the algorithm `runs` names, when it is newer; else ""."""
    newer = registry.newer_than(runs) if runs else None
    return newer.reference if newer else ""


def _steps(options: RetryOptions) -> tuple[PipelineSummary, list[StepSummary], Aws, list[tuple[str, str]]]:
    """The pipeline, the steps retry works on, where they are, and each one's (dead-letter queue,
    queue) URLs: every queue is found before any message moves."""
    summary = require_summary(options.pipeline)
    steps = [find_step(summary, options.step, "retry")] if options.step else list(summary.steps)
    aws = reach(options.where, options.pipeline, summary)
    reader = Reader(aws)
    urls = [(_queue_url(reader, step.dead_letter_queue, options.pipeline), _queue_url(reader, step.queue, options.pipeline))
            for step in steps]
    return summary, steps, aws, urls


def retry(options: RetryOptions, registry: AlgorithmRegistry | None = None) -> Iterator[Retried]:
    """Stop the steps' outdated workers (until they have exited); then per step: move its dead
    letters back, wake its launcher when anything waits in its queue (moved now or earlier),
    and yield what was done with the version the step runs and a newer recorded one."""
    registry = registry or AlgorithmRegistry()
    summary, steps, aws, urls = _steps(options)
    current = [current_definition(aws, step) for step in steps]
    stopped = stop_outdated_workers(aws, summary.cluster, [(step, c.arn) for step, c in zip(steps, current, strict=True)])
    for step, (dlq_url, queue_url), definition, count in zip(steps, urls, current, stopped, strict=True):
        moved = move_dead_letters(aws, dlq_url, queue_url, step)
        waiting = max(moved, queued(aws, queue_url))
        if waiting:
            wake_launcher(aws, step)
        yield Retried(step, count, moved, waiting, definition.algorithm, newer_version(registry, definition.algorithm))


@dataclass(frozen=True)
class DeadLetters:
    """A step's dead letters, and where its failure reports are (discard keeps them)."""
    step: StepSummary
    count: int
    reports: str  # s3://BUCKET/failures/PIPELINE/STEP/


def dead_letters(options: RetryOptions) -> list[DeadLetters]:
    """How many dead letters each step holds: what retry --discard asks about."""
    summary, steps, aws, urls = _steps(options)
    return [DeadLetters(step, queued(aws, dlq_url), f"s3://{summary.reports_bucket}/failures/{summary.pipeline}/{step.name}/")
            for step, (dlq_url, _) in zip(steps, urls, strict=True)]


def discard_dead_letters(options: RetryOptions) -> Iterator[tuple[StepSummary, int]]:
    """Per step: delete the messages its dead-letter queue holds when this starts (at most that
    many: one that fails meanwhile is kept); their failure reports stay."""
    _, steps, aws, urls = _steps(options)
    sqs = aws.client("sqs")
    for step, (dlq_url, _) in zip(steps, urls, strict=True):
        total, deleted = queued(aws, dlq_url), 0
        while deleted < total:
            messages = sqs.receive_message(
                QueueUrl=dlq_url, MaxNumberOfMessages=min(sending.BATCH_SIZE, total - deleted),
                WaitTimeSeconds=RECEIVE_WAIT_SECONDS, VisibilityTimeout=RECEIVE_VISIBILITY_SECONDS).get("Messages", [])
            if not messages:
                break
            answer = sqs.delete_message_batch(QueueUrl=dlq_url, Entries=[
                {"Id": str(index), "ReceiptHandle": message["ReceiptHandle"]} for index, message in enumerate(messages)])
            deleted += len(answer.get("Successful", []))
            if answer.get("Failed"):
                raise YunpipeError(f"{len(answer['Failed'])} dead letter(s) of step {step.name} were not deleted "
                                   f"({answer['Failed'][0].get('Message', answer['Failed'][0].get('Code', ''))}); "
                                   f"{deleted} were")
        yield step, deleted
