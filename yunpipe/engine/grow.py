"""Out of memory -> more memory (issue 24): a step's larger sizes, for the jobs the kernel kills
for exceeding their task's memory.

Each larger size is a path of its own: a queue and a task definition (the step's, at that memory,
one job at a time, its worker pointed at the next size's queue). A worker sends a job out of
memory to the next size's queue (runtime/worker/grow.py) and the launcher's scheduled run starts
tasks for what waits there (woken by the worker, else within minutes), so the other files keep
running at the normal size. The sizes double
from the step's memory up to its `max_memory` (default DEFAULT_GROWTH times the memory, within
Fargate's sizes for the task's CPU); the largest size's queue dead-letters a failed job at once
(maxReceiveCount 1), so a job out of memory there reaches the step's dead-letter queue with its
report: reason `oom` at the largest size tried. Fargate steps only: an EC2 task's room is its
instance's, which the model does not know offline.
"""
from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from yunpipe.engine.kinds.base import QueueUrl
from yunpipe.engine.kinds.queue import Queue
from yunpipe.engine.kinds.task_definition import TaskDefinition
from yunpipe.engine.model import GrowLevel, resource_name
from yunpipe.engine.sizing import FARGATE_SIZES
from yunpipe.errors import InputError
from yunpipe.runtime import contract

if TYPE_CHECKING:
    from yunpipe.engine.compiler import StepContext

# max_memory when the workflow says none: this many times the step's memory (two doublings).
DEFAULT_GROWTH = 4


def _field(ctx: StepContext) -> str:
    """Where the step's max_memory comes from: its own, else the workflow's."""
    if ctx.step.spec.max_memory is None:
        return "max_memory"
    return f"{ctx.spec.steps_field}[{ctx.spec.steps.index(ctx.step.spec)}].max_memory"


def sizes(ctx: StepContext, cpu: int, memory: int) -> tuple[int, ...]:
    """The step's larger memories (MiB), smallest first: doubling from `memory` (the task's) up to
    its max_memory. InputError (exit 2, naming the field) for a max_memory the compute cannot give."""
    asked = ctx.step.spec.max_memory if ctx.step.spec.max_memory is not None else ctx.spec.max_memory
    if ctx.step.instance_type:
        if asked is not None and asked > memory:
            raise InputError(ctx.spec.source, _field(ctx), f"expected at most the step's {memory} MiB on "
                             f"{ctx.step.instance_type} instances: larger sizes for jobs out of memory are "
                             "Fargate's only")
        return ()
    offered = next(memories for units, memories in FARGATE_SIZES if units == cpu)
    if asked is None:
        ceiling = min(DEFAULT_GROWTH * memory, offered[-1])
    elif asked < memory:
        raise InputError(ctx.spec.source, _field(ctx), f"expected at least the step's memory, {memory} MiB (equal "
                         f"turns growing off), got {asked}")
    elif asked not in offered:
        raise InputError(ctx.spec.source, _field(ctx), f"expected one of Fargate's memories for {cpu} CPU units "
                         f"(the step's task): {', '.join(str(m) for m in offered)} MiB, got {asked}")
    else:
        ceiling = asked
    grown: list[int] = []
    size = memory
    while size < ceiling:
        size = min([m for m in offered if m >= 2 * size] + [ceiling])
        grown.append(size)
    return tuple(grown)


def queue_name(ctx: StepContext, memory: int) -> str:
    return ctx.queue_name(f"grow{memory}")


def levels(ctx: StepContext, base: TaskDefinition, dead_letter_arn: str,
           cpu: int, memory: int) -> tuple[TaskDefinition, tuple[GrowLevel, ...]]:
    """The step's task definition pointed at its first larger size, and one GrowLevel per size."""
    grown = sizes(ctx, cpu, memory)
    found: list[GrowLevel] = []
    for index, size in enumerate(grown):
        top = index == len(grown) - 1
        name = queue_name(ctx, size)
        tries = 1 if top else ctx.step.max_receive_count
        redrive = json.dumps({"deadLetterTargetArn": dead_letter_arn, "maxReceiveCount": tries})
        queue = Queue(name, ctx.arn("sqs", name), {"SqsManagedSseEnabled": "true",
                                                   "VisibilityTimeout": str(ctx.spec.visibility_timeout_seconds),
                                                   "RedrivePolicy": redrive}, ctx.tags)
        registration = _with(base.registration, {
            contract.QUEUE_URL_VARIABLE: QueueUrl(name), "YUNPIPE_TASK_MEMORY": str(size),
            "YUNPIPE_MAX_RECEIVE_COUNT": str(tries),
            # One job at a time: the job that ran out of memory gets the whole task.
            "YUNPIPE_PARALLELISM": "1",
            **_next(ctx, grown, index + 1)}, memory=size, family=ctx.resource_name("ecs", "task", f"grow{size}"))
        definition = TaskDefinition(registration["family"], registration, ctx.tags,
                                    f"for jobs out of memory at {grown[index - 1] if index else memory} MiB")
        found.append(GrowLevel(size, queue, definition, resource_name("started_by", ctx.pipeline, ctx.name, f"g{size}")))
    if not grown:
        return base, ()
    return dataclasses.replace(base, registration=_with(base.registration, _next(ctx, grown, 0))), tuple(found)


def _next(ctx: StepContext, grown: tuple[int, ...], index: int) -> dict[str, Any]:
    """The worker's settings for the size after it ("" at the largest)."""
    if index >= len(grown):
        return {contract.GROW_QUEUE_URL_VARIABLE: "", "YUNPIPE_GROW_MEMORY": "0", "YUNPIPE_LAUNCHER": ""}
    return {contract.GROW_QUEUE_URL_VARIABLE: QueueUrl(queue_name(ctx, grown[index])),
            "YUNPIPE_GROW_MEMORY": str(grown[index]), "YUNPIPE_LAUNCHER": ctx.function_name}


def _with(registration: Mapping[str, Any], environment: Mapping[str, Any], memory: int | None = None,
          family: str | None = None) -> dict[str, Any]:
    """A copy of a registration with its container's variables changed, and its memory and family."""
    container = dict(registration["containerDefinitions"][0])
    variables = {v["name"]: v["value"] for v in container["environment"]}
    container["environment"] = [{"name": k, "value": v} for k, v in sorted({**variables, **environment}.items())]
    copy = {**registration, "containerDefinitions": [container, *registration["containerDefinitions"][1:]]}
    if memory is not None:
        # The container's too: EC2 tasks and moto (the local cloud) size the container from it.
        copy["memory"], container["memory"] = str(memory), memory
    if family is not None:
        copy["family"] = family
    return copy


def launcher_paths(levels_: tuple[GrowLevel, ...]) -> tuple[contract.GrowPath, ...]:
    """The launcher's view of the sizes (their queues' URLs are filled in as markers)."""
    return tuple(contract.GrowPath(level.memory, level.task_definition.family, level.started_by) for level in levels_)


def launcher_environment(levels_: tuple[GrowLevel, ...]) -> dict[str, Any]:
    return {contract.grow_queue_variable(level.memory): QueueUrl(level.queue.name) for level in levels_}
