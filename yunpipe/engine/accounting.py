"""The pipeline's accounting descriptor (kinds/accounting_descriptor.py) built from the compiled
steps: what the settler, upload and submit need to know of the pipeline."""
from collections.abc import Sequence

from yunpipe.engine.kinds.accounting_descriptor import AccountingDescriptor, descriptor_body
from yunpipe.engine.model import StepModel
from yunpipe.engine.target import Target
from yunpipe.resolve import ResolvedWorkflow
from yunpipe.runtime import contract


def accounting_descriptor(workflow: ResolvedWorkflow, target: Target, reports: str,
                          steps: Sequence[StepModel]) -> AccountingDescriptor:
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
    # `accounting` and `run_quiet_seconds` are the workflow's (specs/workflow.py); older specs lack them.
    body = descriptor_body(spec.name, target.region, bool(getattr(spec, "accounting", True)),
                           int(getattr(spec, "run_quiet_seconds", contract.DEFAULT_QUIET_SECONDS)), "", described)
    return AccountingDescriptor(reports, spec.name, body)
