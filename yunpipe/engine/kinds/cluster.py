"""The pipeline's ECS cluster (the capacity providers its steps run on are attached to it by
cluster_capacity_providers.py, once they exist)."""
import dataclasses
import re
from collections.abc import Mapping
from dataclasses import dataclass

from yunpipe.engine.kinds.base import (
    TAG_KEY,
    Kind,
    Named,
    PlanContext,
    SweepContext,
    call,
    delete,
    missing_tags,
    tag_list,
)
from yunpipe.engine.plan import Call, Transient
from yunpipe.engine.template import Template


@dataclass(frozen=True)
class Cluster(Named):
    name: str
    arn: str
    tags: Mapping[str, str]
    kind = "cluster"


class ClusterKind(Kind[Cluster]):
    name = "cluster"
    arn_pattern = re.compile(r"^arn:[^:]+:ecs:[^:]*:\d+:cluster/(?P<key>.+)$")

    def plan(self, cluster: Cluster, ctx: PlanContext) -> list[Call]:
        found = ctx.reader.read("ecs", "describe_clusters", clusters=[cluster.name], include=["TAGS"])
        active = [c for c in (found or {}).get("clusters", []) if c["status"] == "ACTIVE"]
        if active:
            missing = missing_tags({t["key"]: t.get("value", "") for t in active[0].get("tags", [])}, cluster.tags)
            return [call(cluster, "update", "ecs", "tag_resource", f"tag ECS cluster {cluster.name}",
                         resourceArn=active[0]["clusterArn"], tags=tag_list(missing, "key", "value"))] if missing else []
        # Without capacity providers: those come after it (cluster_capacity_providers.py).
        return [call(cluster, "create", "ecs", "create_cluster", f"create ECS cluster {cluster.name}",
                     clusterName=cluster.name, tags=tag_list(cluster.tags, "key", "value"))]

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
        """The cluster (its capacity providers are a resource of their own, as in the engine): the
        instances' launch templates name the cluster, so it is created before them and deleted
        after their Auto Scaling groups, whose instances would keep ECS from deleting it."""
        return {template.id(cluster.kind, cluster.key): {"Type": "AWS::ECS::Cluster", "Properties": {
            "ClusterName": cluster.name, "Tags": tag_list(cluster.tags)}}}

KIND = ClusterKind()
