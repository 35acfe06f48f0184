"""ECS capacity providers: one per instance type, ECS scaling its Auto Scaling group."""
import dataclasses
from collections.abc import Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass

from yunpipe.aws.reader import Reader
from yunpipe.engine.kinds.base import (
    Kind,
    Named,
    PlanContext,
    ResourceKey,
    SweepContext,
    call,
    delete,
    tag_list,
    tagged,
)
from yunpipe.engine.plan import Call, Transient
from yunpipe.engine.template import Template

# ECS managed scaling keeps the instances this full of tasks: 100 adds none beyond what waiting tasks need.
TARGET_CAPACITY = 100
# What passes with time on CreateCapacityProvider: a provider of the same name deleted moments
# ago (a clean-up just before) keeps its name while INACTIVE or DELETE_IN_PROGRESS (the plan
# only creates when no ACTIVE one exists); ECS's service-linked role, created moments ago.
CREATE_SETTLING = (Transient("ClientException", "The specified capacity provider already exists"),
                   Transient("ClientException", "ECS Service Linked Role does not exist"))


@dataclass(frozen=True)
class CapacityProvider(Named):
    name: str
    auto_scaling_group: str  # its name: ECS takes a name or an ARN, and the ARN holds a random id
    tags: Mapping[str, str]
    kind = "capacity_provider"


class CapacityProviderKind(Kind[CapacityProvider]):
    name = "capacity_provider"

    def plan(self, provider: CapacityProvider, ctx: PlanContext) -> list[Call]:
        found = ctx.reader.read("ecs", "describe_capacity_providers", capacityProviders=[provider.name])
        active = [p for p in (found or {}).get("capacityProviders", []) if p.get("status") == "ACTIVE"]
        scaling = {"status": "ENABLED", "targetCapacity": TARGET_CAPACITY}
        if not active:
            return [dataclasses.replace(call(provider, "create", "ecs", "create_capacity_provider",
                         f"create capacity provider {provider.name} (ECS scales {provider.auto_scaling_group} "
                         "from 0 to what waiting tasks need)", name=provider.name,
                         autoScalingGroupProvider={"autoScalingGroupArn": provider.auto_scaling_group,
                                                   "managedScaling": scaling,
                                                   "managedTerminationProtection": "DISABLED"},
                         tags=tag_list(provider.tags, "key", "value")), retry_on=CREATE_SETTLING)]
        current = active[0].get("autoScalingGroupProvider", {}).get("managedScaling", {})
        if all(current.get(k) == v for k, v in scaling.items()):
            return []
        return [call(provider, "update", "ecs", "update_capacity_provider",
                     f"let ECS scale {provider.auto_scaling_group} (managed scaling, target "
                     f"{TARGET_CAPACITY}%)", name=provider.name,
                     autoScalingGroupProvider={"managedScaling": scaling,
                                               "managedTerminationProtection": "DISABLED"})]

    def sweep(self, name: str, ctx: SweepContext) -> list[Call]:
        found = ctx.reader.read("ecs", "describe_capacity_providers", capacityProviders=[name])
        if not any(p.get("status") == "ACTIVE" for p in (found or {}).get("capacityProviders", [])):
            return []
        return [delete("capacity_provider", name, "ecs", "delete_capacity_provider",
                       f"delete capacity provider {name}", capacityProvider=name)]

    def cloudformation(self, provider: CapacityProvider, template: Template) -> dict[str, dict]:
        return {template.id(provider.kind, provider.key): {"Type": "AWS::ECS::CapacityProvider", "Properties": {
            "Name": provider.name,
            "AutoScalingGroupProvider": {
                "AutoScalingGroupArn": template.ref("auto_scaling_group", provider.auto_scaling_group),
                "ManagedScaling": {"Status": "ENABLED", "TargetCapacity": TARGET_CAPACITY},
                "ManagedTerminationProtection": "DISABLED"},
            "Tags": tag_list(provider.tags)}}}

    def discover(self, reader: Reader, pipeline: str, found: AbstractSet[ResourceKey]) -> set[ResourceKey]:
        # A provider is named as its group, and attached to the pipeline's cluster.
        names = {key for kind, key in found if kind == "auto_scaling_group"}
        for kind, cluster in list(found):
            if kind == "cluster":
                clusters = reader.read("ecs", "describe_clusters", clusters=[cluster]) or {}
                names.update(p for c in clusters.get("clusters", []) for p in c.get("capacityProviders") or [])
        names -= {"FARGATE", "FARGATE_SPOT"}
        if not names:
            return set()
        providers = reader.read("ecs", "describe_capacity_providers", capacityProviders=sorted(names),
                                include=["TAGS"]) or {}
        return {("capacity_provider", provider["name"]) for provider in providers.get("capacityProviders", [])
                if tagged([{"Key": t.get("key"), "Value": t.get("value")} for t in provider.get("tags", [])],
                          pipeline)}


KIND = CapacityProviderKind()
