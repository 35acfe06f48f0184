"""Which capacity providers the pipeline's ECS cluster may run tasks on. A step of its own, as
ECS asks: the cluster is created without providers, the providers after it (they exist only
once ECS's service-linked role does), and PutClusterCapacityProviders, which names only
existing providers, attaches them last."""
import dataclasses
from dataclasses import dataclass

from yunpipe.aws.reader import Reader
from yunpipe.engine.kinds.base import Kind, PlanContext, SweepContext, call, delete
from yunpipe.engine.plan import Call, Transient
from yunpipe.engine.template import Template

# ECS's service-linked role, created moments ago (service_linked_role.py), is not yet assumable.
ROLE_SETTLING = (Transient("InvalidParameterException", "Unable to assume the service linked role"),)


@dataclass(frozen=True)
class ClusterCapacityProviders:
    cluster: str  # its name
    # What the steps run on (Fargate Spot, EC2 instance types): RunTask may name only these.
    capacity_providers: tuple[str, ...]
    kind = "cluster_capacity_providers"

    @property
    def key(self) -> str:
        return self.cluster


def _active(reader: Reader, cluster: str) -> dict | None:
    found = reader.read("ecs", "describe_clusters", clusters=[cluster])
    return next((c for c in (found or {}).get("clusters", []) if c["status"] == "ACTIVE"), None)


class ClusterCapacityProvidersKind(Kind[ClusterCapacityProviders]):
    name = "cluster_capacity_providers"

    def plan(self, wanted: ClusterCapacityProviders, ctx: PlanContext) -> list[Call]:
        active = _active(ctx.reader, wanted.cluster) or {}  # none yet: created earlier in this plan
        current = list(active.get("capacityProviders") or [])
        missing = [p for p in wanted.capacity_providers if p not in current]
        # Providers of instance types no step asks for any more: detached here, so the sweep can delete them.
        stale = [p for p in current if p not in wanted.capacity_providers and ("capacity_provider", p) in ctx.owned]
        if not missing and not stale:
            return []
        changes = ([f"run tasks on {', '.join(missing)}"] if missing else []) + (
            [f"stop using {', '.join(stale)}"] if stale else [])
        # The call replaces the cluster's providers and default strategy: both are kept as they are.
        put = call(wanted, "update" if current else "create", "ecs", "put_cluster_capacity_providers",
                   f"let ECS cluster {wanted.cluster} {' and '.join(changes)}", cluster=wanted.cluster,
                   capacityProviders=[p for p in current if p not in stale] + missing,
                   defaultCapacityProviderStrategy=active.get("defaultCapacityProviderStrategy") or [])
        return [dataclasses.replace(put, retry_on=ROLE_SETTLING)]

    def sweep(self, cluster: str, ctx: SweepContext) -> list[Call]:
        # Swept after the cluster, whose deletion detaches every provider: this detaches them
        # from a cluster that stays (its steps no longer need any provider), so that the
        # providers can be deleted next.
        if ("cluster", cluster) in ctx.deleting:
            return []
        active = _active(ctx.reader, cluster)
        if not active or not active.get("capacityProviders"):
            return []
        return [delete(self.name, cluster, "ecs", "put_cluster_capacity_providers",
                       f"detach the capacity providers of ECS cluster {cluster}", cluster=cluster,
                       capacityProviders=[], defaultCapacityProviderStrategy=[])]

    def cloudformation(self, association: ClusterCapacityProviders, template: Template) -> dict[str, dict]:
        """The association, after the cluster and the providers (Ref orders both); no default
        strategy, as setup-pipe leaves it."""
        return {template.id(association.kind, association.key): {
            "Type": "AWS::ECS::ClusterCapacityProviderAssociations", "Properties": {
                "Cluster": template.ref("cluster", association.cluster), "DefaultCapacityProviderStrategy": [],
                "CapacityProviders": [template.ref("capacity_provider", p) if template.has("capacity_provider", p)
                                      else p for p in association.capacity_providers]}}}


KIND = ClusterCapacityProvidersKind()
