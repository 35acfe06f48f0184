"""Run accounting in the model: the pipeline's accounting descriptor (kinds/accounting_descriptor.py)
built from the compiled steps (what the settler, upload and submit need to know of the pipeline), and
what of the reports bucket and the queues a step's roles reach for it."""
from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from yunpipe.engine.graph import INPUT
from yunpipe.engine.kinds.accounting_descriptor import AccountingDescriptor, descriptor_body
from yunpipe.engine.model import StepModel, resource_name
from yunpipe.engine.target import Target
from yunpipe.resolve import ResolvedWorkflow

if TYPE_CHECKING:
    from yunpipe.engine.compiler import StepContext


def accounting_descriptor(workflow: ResolvedWorkflow, target: Target, reports: str,
                          steps: Sequence[StepModel], topic_arn: str = "") -> AccountingDescriptor:
    """What the settler, upload and submit need of the pipeline (kinds/accounting_descriptor.py)."""
    spec = workflow.spec
    described = []
    for resolved, step in zip(workflow.steps, steps, strict=True):
        placement = step.placement
        described.append({
            "name": step.name, "sources": [{"step": s.step, "bucket": s.bucket} for s in placement.sources],
            "prefix": placement.prefix, "suffix": placement.suffix, "join": placement.join,
            "gather": placement.gather, "marker": placement.marker, "triggered": placement.triggered,
            "output_bucket": placement.output_bucket, "output_prefix": placement.output_prefix,
            "cpu": int(step.task_definition.registration["cpu"]),
            "memory_mib": int(step.task_definition.registration["memory"]),
            "max_receive_count": resolved.max_receive_count, "queue": step.queue.name,
            "failed_events_queue": step.failed_events.name})
    body = descriptor_body(spec.name, target.region, spec.accounting,
                           spec.run_quiet_seconds, topic_arn, described)
    return AccountingDescriptor(reports, spec.name, body)


def accounting_arns(ctx: StepContext) -> dict[str, Any]:
    """What run accounting reaches in the reports bucket (runtime/accounting/records.py), this
    pipeline's only: its runs' records, its descriptor, its tasks' records, its open markers
    (deleted as a run settles), the prefixes it lists, and its entry steps' queues (a drop-run
    closes once they are empty)."""
    reports = ctx.bucket_arn(ctx.reports_bucket)
    entry = [p.step for p in ctx.layout.steps if any(s.step == INPUT for s in p.sources)]
    # Without accounting no job, task or run is recorded, nor a run settled: none of it is granted.
    return {"accounting": ctx.spec.accounting, "reports_bucket_arn": reports,
            "runs_arn": f"{reports}/runs/{ctx.pipeline}/*",
            "summaries_arn": f"{reports}/runs/{ctx.pipeline}/*/summary.json",
            "open_runs_arn": f"{reports}/runs/{ctx.pipeline}/open/*",
            "descriptor_arn": f"{reports}/pipelines/{ctx.pipeline}/*",
            "task_records_arn": f"{reports}/tasks/{ctx.pipeline}/*",
            "own_task_records_arn": f"{reports}/tasks/{ctx.pipeline}/{ctx.name}/*",
            "listed_prefixes": [f"runs/{ctx.pipeline}/*", f"tasks/{ctx.pipeline}/*"],
            "entry_queue_arns": entry_queue_arns(ctx, entry)}


# Each entry queue's exact ARN adds some 190 characters to every role of the pipeline; a graph with
# more entry steps than this names them by pattern instead, within IAM's 10,240 characters.
MAX_EXACT_ENTRY_QUEUES = 8


def entry_queue_arns(ctx: StepContext, entry: Sequence[str]) -> list[str]:
    """The entry steps' queues and failed-events queues, whose counts a drop-run's settler reads."""
    if len(entry) > MAX_EXACT_ENTRY_QUEUES:
        # The pipeline's queues (resource_name starts every name `yunpipe-<pipeline>-`); only
        # their counts are read.
        return [ctx.arn("sqs", f"yunpipe-{ctx.pipeline}-*")]
    return [ctx.arn("sqs", resource_name("queue", ctx.pipeline, step, *kind))
            for step in entry for kind in (("queue",), ("launcher-failed",))]
