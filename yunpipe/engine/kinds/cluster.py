"""The pipeline's ECS cluster, with the capacity providers its steps run on."""
import dataclasses
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from yunpipe.engine.kinds.base import TAG_KEY, Kind, Named, PlanContext, SweepContext, call, delete, tag_list
from yunpipe.engine.plan import Call, Transient
from yunpipe.engine.template import Template

# ECS's service-linked role, created moments ago (service_linked_role.py), is not yet assumable.
ROLE_SETTLING = (Transient("InvalidParameterException", "Unable to assume the service linked role"),)


@dataclass(frozen=True)
class Cluster(Named):
    name: str
    arn: str
    tags: Mapping[str, str]
    # Associated only when a step runs on Fargate Spot or on EC2 instances: RunTask may name
    # only these providers.
    capacity_providers: tuple[str, ...] = ()
    kind = "cluster"


class ClusterKind(Kind[Cluster]):
    name = "cluster"
    arn_pattern = re.compile(r"^arn:[^:]+:ecs:[^:]*:\d+:cluster/(?P<key>.+)$")

    def plan(self, cluster: Cluster, ctx: PlanContext) -> list[Call]:
        found = ctx.reader.read("ecs", "describe_clusters", clusters=[cluster.name])
        active = [c for c in (found or {}).get("clusters", []) if c["status"] == "ACTIVE"]
        providers = list(cluster.capacity_providers)
        if not active:
            # A cluster of steps all on on-demand Fargate is created exactly as before, with no providers.
            extra: dict[str, Any] = {"capacityProviders": providers} if providers else {}
            what = f" with capacity providers {', '.join(providers)}" if providers else ""
            created = call(cluster, "create", "ecs", "create_cluster", f"create ECS cluster {cluster.name}{what}",
                           clusterName=cluster.name, tags=tag_list(cluster.tags, "key", "value"), **extra)
            return [dataclasses.replace(created, retry_on=ROLE_SETTLING)]
        current = list(active[0].get("capacityProviders") or [])
        missing = [p for p in providers if p not in current]
        # Providers of instance types no step asks for any more: detached here, so the sweep can delete them.
        stale = [p for p in current if p not in providers and ("capacity_provider", p) in ctx.owned]
        if not missing and not stale:
            return []
        changes = ([f"run tasks on {', '.join(missing)}"] if missing else []) + (
            [f"stop using {', '.join(stale)}"] if stale else [])
        # The call replaces the cluster's providers and default strategy: both are kept as they are.
        updated = call(cluster, "update", "ecs", "put_cluster_capacity_providers",
                       f"let ECS cluster {cluster.name} {' and '.join(changes)}", cluster=cluster.name,
                       capacityProviders=[p for p in current if p not in stale] + missing,
                       defaultCapacityProviderStrategy=active[0].get("defaultCapacityProviderStrategy") or [])
        return [dataclasses.replace(updated, retry_on=ROLE_SETTLING)]

    def sweep(self, name: str, ctx: SweepContext) -> list[Call]:
        found = ctx.reader.read("ecs", "describe_clusters", clusters=[name])
        if not found or not any(c["status"] == "ACTIVE" for c in found["clusters"]):
            return []
        calls = [delete("cluster", name, "ecs", "stop_task", f"stop task {arn.rsplit('/', 1)[-1]}", last=False,
                        cluster=name, task=arn, reason="yunpipe clean-up")
                 for arn in ctx.reader.pages("ecs", "list_tasks", "taskArns", cluster=name)]
        # A deleted cluster lingers as INACTIVE; untagged, it no longer shows as the pipeline's.
        calls.append(delete("cluster", name, "ecs", "untag_resource", f"untag ECS cluster {name}", last=False,
                            resourceArn=found["clusters"][0]["clusterArn"], tagKeys=[TAG_KEY]))
        deleted = delete("cluster", name, "ecs", "delete_cluster", f"delete ECS cluster {name}", cluster=name)
        # Stopped tasks take a moment to leave the cluster, instances of a deleted Auto Scaling group too.
        calls.append(dataclasses.replace(deleted, retry_on=(Transient("ClusterContainsTasksException"),
                                                            Transient("ClusterContainsContainerInstancesException"))))
        return calls

    def cloudformation(self, cluster: Cluster, template: Template) -> dict[str, dict]:
        """The cluster, and its capacity providers as a resource of their own (as AWS advises): the
        instances' launch templates name the cluster, so it is created before them and deleted after
        their Auto Scaling groups, whose instances would keep ECS from deleting it."""
        logical_id = template.id(cluster.kind, cluster.key)
        rendered = {logical_id: {"Type": "AWS::ECS::Cluster", "Properties": {
            "ClusterName": cluster.name, "Tags": tag_list(cluster.tags)}}}
        if cluster.capacity_providers:
            # The call replaces the default strategy: none, as setup-pipe leaves it.
            rendered[logical_id + "CapacityProviders"] = {
                "Type": "AWS::ECS::ClusterCapacityProviderAssociations", "Properties": {
                    "Cluster": {"Ref": logical_id}, "DefaultCapacityProviderStrategy": [],
                    "CapacityProviders": [template.ref("capacity_provider", p) if template.has("capacity_provider", p)
                                          else p for p in cluster.capacity_providers]}}
        return rendered


KIND = ClusterKind()
