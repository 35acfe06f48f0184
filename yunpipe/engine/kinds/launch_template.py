"""EC2 launch templates: how the instances of one instance type boot (AMI, profile, IMDSv2)."""
from collections.abc import Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from typing import Any

from yunpipe.aws.reader import Reader
from yunpipe.engine.kinds.base import (
    TAG_KEY,
    Kind,
    Named,
    PlanContext,
    ResourceKey,
    SweepContext,
    call,
    delete,
    tag_list,
)
from yunpipe.engine.plan import Call
from yunpipe.engine.template import Template
from yunpipe.errors import InputError


@dataclass(frozen=True)
class LaunchTemplate(Named):
    name: str
    data: Mapping[str, Any]  # create_launch_template's LaunchTemplateData
    tags: Mapping[str, str]
    kind = "launch_template"


class LaunchTemplateKind(Kind[LaunchTemplate]):
    name = "launch_template"

    def check(self, template: LaunchTemplate, ctx: PlanContext) -> list[InputError]:
        """The AMI's public parameter exists in the region (a GPU AMI is not in every region)."""
        if ctx.reader.offline:
            return []
        parameter = template.data["ImageId"].split(":", 2)[-1]
        if ctx.reader.read("ssm", "get_parameter", ("ParameterNotFound",), Name=parameter) is not None:
            return []
        return [InputError(ctx.source, "instance_type",
                           f"expected a region with an ECS-optimized AMI for {template.data['InstanceType']}: "
                           f"{ctx.target.region} has no parameter {parameter}")]

    def plan(self, template: LaunchTemplate, ctx: PlanContext) -> list[Call]:
        found = ctx.reader.read("ec2", "describe_launch_template_versions",
                                ("InvalidLaunchTemplateName.NotFoundException", "InvalidLaunchTemplateId.NotFound"),
                                LaunchTemplateName=template.name, Versions=["$Latest"])
        what = (f"{template.data['InstanceType']}, AMI {template.data['ImageId'].split(':', 2)[-1]}, "
                "IMDSv2 only")
        if found is None:
            return [call(template, "create", "ec2", "create_launch_template",
                         f"create launch template {template.name} ({what})", LaunchTemplateName=template.name,
                         LaunchTemplateData=dict(template.data),
                         TagSpecifications=[{"ResourceType": "launch-template", "Tags": tag_list(template.tags)}])]
        current = found["LaunchTemplateVersions"][0]["LaunchTemplateData"]
        if all(current.get(k) == v for k, v in template.data.items()):
            return []
        # The Auto Scaling group launches $Latest: a new version is all a change needs.
        return [call(template, "update", "ec2", "create_launch_template_version",
                     f"new version of launch template {template.name} ({what})",
                     LaunchTemplateName=template.name, LaunchTemplateData=dict(template.data))]

    def sweep(self, name: str, ctx: SweepContext) -> list[Call]:
        found = ctx.reader.read("ec2", "describe_launch_templates", ("InvalidLaunchTemplateName.NotFoundException",),
                                LaunchTemplateNames=[name])
        if not (found or {}).get("LaunchTemplates"):
            return []
        return [delete("launch_template", name, "ec2", "delete_launch_template", f"delete launch template {name}",
                       LaunchTemplateName=name)]

    def cloudformation(self, launch: LaunchTemplate, template: Template) -> dict[str, dict]:
        data = dict(launch.data)
        profile = data["IamInstanceProfile"]["Name"]
        if template.has("instance_profile", profile):
            data["IamInstanceProfile"] = {"Name": template.ref("instance_profile", profile)}
        # Its instances join the pipeline's cluster (user data): created before, deleted after them.
        clusters = [template.id(c.kind, c.key) for c in template.of_kind("cluster")]
        return {template.id(launch.kind, launch.key): {"Type": "AWS::EC2::LaunchTemplate", "DependsOn": clusters,
                                                       "Properties": {
            "LaunchTemplateName": launch.name, "LaunchTemplateData": data,
            "TagSpecifications": [{"ResourceType": "launch-template", "Tags": tag_list(launch.tags)}]}}}

    def discover(self, reader: Reader, pipeline: str, found: AbstractSet[ResourceKey]) -> set[ResourceKey]:
        tag_filter = [{"Name": f"tag:{TAG_KEY}", "Values": [pipeline]}]
        return {("launch_template", template["LaunchTemplateName"])
                for template in reader.pages("ec2", "describe_launch_templates", "LaunchTemplates", Filters=tag_filter)}


KIND = LaunchTemplateKind()
