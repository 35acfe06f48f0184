"""Auto Scaling groups: the instances of one instance type, from 0 up to a maximum; ECS
managed scaling sets how many."""
import dataclasses
from collections.abc import Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from typing import Any

from yunpipe.aws.reader import Reader
from yunpipe.engine.kinds.base import TAG_KEY, Kind, Named, PlanContext, ResourceKey, SweepContext, call, delete
from yunpipe.engine.plan import Call, Transient
from yunpipe.engine.template import Template

# The launch template names an instance profile created moments ago (kinds/instance_profile.py),
# which EC2 Auto Scaling refuses as invalid for some seconds.
PROFILE_SETTLING = (Transient("ValidationError", "Invalid IAM Instance Profile name"),)


@dataclass(frozen=True)
class AutoScalingGroup(Named):
    """Instances of one type, from 0 up to `max_size`; ECS managed scaling sets how many."""

    name: str
    launch_template: str
    max_size: int
    subnets: tuple[str, ...]
    tags: Mapping[str, str]
    kind = "auto_scaling_group"


class AutoScalingGroupKind(Kind[AutoScalingGroup]):
    name = "auto_scaling_group"

    def plan(self, group: AutoScalingGroup, ctx: PlanContext) -> list[Call]:
        found = ctx.reader.read("autoscaling", "describe_auto_scaling_groups", AutoScalingGroupNames=[group.name])
        current = (found or {}).get("AutoScalingGroups") or [{}]
        settings: dict[str, Any] = {
            "LaunchTemplate": {"LaunchTemplateName": group.launch_template, "Version": "$Latest"},
            "MinSize": 0, "MaxSize": group.max_size, "VPCZoneIdentifier": ",".join(group.subnets),
            "NewInstancesProtectedFromScaleIn": False}
        if not current[0]:
            created = call(group, "create", "autoscaling", "create_auto_scaling_group",
                           f"create Auto Scaling group {group.name} (0 to {group.max_size} instances, "
                           f"scaled by ECS)", AutoScalingGroupName=group.name, DesiredCapacity=0, **settings,
                           Tags=[{"Key": k, "Value": v, "PropagateAtLaunch": True} for k, v in group.tags.items()])
            return [dataclasses.replace(created, retry_on=PROFILE_SETTLING)]
        existing = current[0]
        template = existing.get("LaunchTemplate") or {}
        if ({k: template.get(k) for k in ("LaunchTemplateName", "Version")} == settings["LaunchTemplate"]
                and existing.get("MinSize") == 0 and existing.get("MaxSize") == group.max_size
                and set(filter(None, existing.get("VPCZoneIdentifier", "").split(","))) == set(group.subnets)
                and existing.get("NewInstancesProtectedFromScaleIn") is False):
            return []
        # DesiredCapacity is left to ECS managed scaling.
        return [call(group, "update", "autoscaling", "update_auto_scaling_group",
                     f"update Auto Scaling group {group.name} (0 to {group.max_size} instances)",
                     AutoScalingGroupName=group.name, **settings)]

    def sweep(self, name: str, ctx: SweepContext) -> list[Call]:
        found = ctx.reader.read("autoscaling", "describe_auto_scaling_groups", AutoScalingGroupNames=[name])
        if not (found or {}).get("AutoScalingGroups"):
            return []
        # Forced: its instances are terminated with it (their tasks are the pipeline's own).
        return [delete("auto_scaling_group", name, "autoscaling", "delete_auto_scaling_group",
                       f"delete Auto Scaling group {name} and its instances", AutoScalingGroupName=name,
                       ForceDelete=True)]

    def cloudformation(self, group: AutoScalingGroup, template: Template) -> dict[str, dict]:
        # CloudFormation takes no "$Latest": the template's latest version number stands for it.
        return {template.id(group.kind, group.key): {"Type": "AWS::AutoScaling::AutoScalingGroup", "Properties": {
            "AutoScalingGroupName": group.name,
            "LaunchTemplate": {"LaunchTemplateId": template.ref("launch_template", group.launch_template),
                               "Version": template.attribute("launch_template", group.launch_template,
                                                             "LatestVersionNumber")},
            "MinSize": "0", "MaxSize": str(group.max_size), "VPCZoneIdentifier": list(group.subnets),
            "NewInstancesProtectedFromScaleIn": False,
            "Tags": [{"Key": k, "Value": v, "PropagateAtLaunch": True} for k, v in group.tags.items()]}}}

    def discover(self, reader: Reader, pipeline: str, found: AbstractSet[ResourceKey]) -> set[ResourceKey]:
        tag_filter = [{"Name": f"tag:{TAG_KEY}", "Values": [pipeline]}]
        return {("auto_scaling_group", group["AutoScalingGroupName"])
                for group in reader.pages("autoscaling", "describe_auto_scaling_groups", "AutoScalingGroups",
                                          Filters=tag_filter)}


KIND = AutoScalingGroupKind()
