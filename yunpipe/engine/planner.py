"""Compare the desired resources with what exists (reads only) and return the calls that close
the gap. Unchanged resources give no call, so re-running setup-pipe plans nothing.

Each resource is planned by its kind (yunpipe/engine/kinds/), in the model's order; what the
kinds of one plan share (queue URLs, notes, Lambda executions left) is a PlanContext.
"""
from collections.abc import Iterable
from collections.abc import Set as AbstractSet

from yunpipe.aws.reader import Reader
from yunpipe.engine.kinds import BY_NAME, PlanContext, ResourceKey
from yunpipe.engine.model import PipelineModel
from yunpipe.engine.plan import Call, Plan


class Planner:
    def __init__(self, reader: Reader, owned: AbstractSet[ResourceKey] = frozenset()):
        self.reader = reader
        # What the state says yunpipe created: only those buckets are checked for settings.
        self.owned = owned

    def plan(self, model: PipelineModel, resources: Iterable | None = None) -> Plan:
        """Calls for every resource of the model, or only for `resources` (in model order)."""
        wanted = None if resources is None else [(r.kind, r.key) for r in resources]
        ctx = PlanContext(self.reader, model.name, model.target, model.source, self.owned)
        resources = [r for r in model.resources() if wanted is None or (r.kind, r.key) in wanted]
        # Every resource checked before any is planned: a refusal leaves nothing half-planned.
        for resource in resources:
            for finding in BY_NAME[resource.kind].check(resource, ctx):
                raise finding
        calls: list[Call] = []
        for resource in resources:
            calls.extend(BY_NAME[resource.kind].plan(resource, ctx))
        return Plan(tuple(calls), notes=tuple(ctx.notes))
