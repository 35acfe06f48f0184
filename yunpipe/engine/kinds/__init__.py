"""Every kind of resource yunpipe deploys, one module each, registered here in creation order.

KINDS lists them in the order they can be created, each after those it refers to;
PipelineModel.resources() yields resources in this order, and the sweeper deletes in
SWEEP_ORDER. To add a kind: write its module (dataclass + a Kind subclass + KIND), and add
one line to KINDS at its place in the order.
"""
from typing import Any

from yunpipe.engine.kinds import (
    accounting_descriptor,
    auto_scaling_group,
    bucket,
    bucket_events,
    capacity_provider,
    cluster,
    cluster_capacity_providers,
    event_invoke_config,
    function,
    instance_profile,
    launch_template,
    log_group,
    notification,
    parameter,
    permission,
    queue,
    role,
    rule,
    service_linked_role,
    subscription,
    task_definition,
    topic,
)
from yunpipe.engine.kinds.base import Kind, PlanContext, ResourceKey, SweepContext

KINDS: tuple[Kind[Any], ...] = (
    service_linked_role.KIND,
    bucket.KIND,
    accounting_descriptor.KIND,
    log_group.KIND,
    queue.KIND,
    parameter.KIND,
    role.KIND,
    topic.KIND,
    subscription.KIND,
    instance_profile.KIND,
    launch_template.KIND,
    auto_scaling_group.KIND,
    cluster.KIND,
    capacity_provider.KIND,
    cluster_capacity_providers.KIND,
    task_definition.KIND,
    function.KIND,
    event_invoke_config.KIND,
    permission.KIND,
    notification.KIND,
    bucket_events.KIND,
    rule.KIND,
)
BY_NAME: dict[str, Kind[Any]] = {kind.name: kind for kind in KINDS}
CREATION_ORDER = tuple(kind.name for kind in KINDS)


def _sweep_order() -> tuple[str, ...]:
    """Dependents before what they depend on: the reverse of the creation order, except that the
    Auto Scaling groups and then the cluster go before the providers' association. The groups'
    instances are the cluster's container instances, which keep ECS from deleting the cluster;
    the cluster's sweep stops its tasks (ECS detaches no provider a task still uses) and its
    deletion detaches its capacity providers, which ECS deletes only once detached."""
    moved = ("auto_scaling_group", "cluster")
    reverse = [name for name in reversed(CREATION_ORDER) if name not in moved]
    at = reverse.index("cluster_capacity_providers")
    return (*reverse[:at], *moved, *reverse[at:])


SWEEP_ORDER = _sweep_order()

__all__ = ["BY_NAME", "CREATION_ORDER", "KINDS", "SWEEP_ORDER", "Kind", "PlanContext", "ResourceKey", "SweepContext"]
