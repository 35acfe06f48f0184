"""The pipeline's accounting descriptor (kinds/accounting_descriptor.py) built from the compiled
steps: what the settler, upload and submit need to know of the pipeline."""
from collections.abc import Sequence

from yunpipe.engine.kinds.accounting_descriptor import AccountingDescriptor, descriptor_body
from yunpipe.engine.model import StepModel
from yunpipe.engine.target import Target
from yunpipe.resolve import ResolvedWorkflow


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
