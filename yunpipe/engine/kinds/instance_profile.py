"""IAM instance profiles: how EC2 instances get the instance role (the ECS agent's permissions)."""
from collections.abc import Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass

from yunpipe.aws.reader import Reader
from yunpipe.engine.kinds.base import (
    ROLE_PATH,
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
from yunpipe.engine.plan import Call
from yunpipe.engine.template import Template


@dataclass(frozen=True)
class InstanceProfile(Named):
    """How EC2 instances get the instance role (the ECS agent's permissions)."""

    name: str
    arn: str
    role: str
    tags: Mapping[str, str]
    kind = "instance_profile"


class InstanceProfileKind(Kind[InstanceProfile]):
    name = "instance_profile"

    def plan(self, profile: InstanceProfile, ctx: PlanContext) -> list[Call]:
        found = ctx.reader.read("iam", "get_instance_profile", ("NoSuchEntity",), InstanceProfileName=profile.name)
        calls = []
        roles = [r["RoleName"] for r in (found or {}).get("InstanceProfile", {}).get("Roles", [])]
        if found is None:
            calls.append(call(profile, "create", "iam", "create_instance_profile",
                              f"create instance profile {profile.name} (for the pipeline's EC2 instances)",
                              InstanceProfileName=profile.name, Path=ROLE_PATH, Tags=tag_list(profile.tags)))
        # A profile holds one role.
        calls += [call(profile, "update", "iam", "remove_role_from_instance_profile",
                       f"remove role {role} from instance profile {profile.name}",
                       InstanceProfileName=profile.name, RoleName=role) for role in roles if role != profile.role]
        if profile.role not in roles:
            calls.append(call(profile, "update", "iam", "add_role_to_instance_profile",
                              f"give instance profile {profile.name} role {profile.role}",
                              InstanceProfileName=profile.name, RoleName=profile.role))
        return calls

    def sweep(self, name: str, ctx: SweepContext) -> list[Call]:
        found = ctx.reader.read("iam", "get_instance_profile", ("NoSuchEntity",), InstanceProfileName=name)
        if found is None:
            return []
        calls = [delete("instance_profile", name, "iam", "remove_role_from_instance_profile",
                        f"remove role {r['RoleName']} from instance profile {name}", last=False,
                        InstanceProfileName=name, RoleName=r["RoleName"])
                 for r in found["InstanceProfile"].get("Roles", [])]
        calls.append(delete("instance_profile", name, "iam", "delete_instance_profile",
                            f"delete instance profile {name}", InstanceProfileName=name))
        return calls

    def cloudformation(self, profile: InstanceProfile, template: Template) -> dict[str, dict]:
        return {template.id(profile.kind, profile.key): {"Type": "AWS::IAM::InstanceProfile", "Properties": {
            "InstanceProfileName": profile.name, "Path": ROLE_PATH, "Roles": [template.ref("role", profile.role)]}}}

    def discover(self, reader: Reader, pipeline: str, found: AbstractSet[ResourceKey]) -> set[ResourceKey]:
        profiles = set()
        for profile in reader.pages("iam", "list_instance_profiles", "InstanceProfiles", PathPrefix=ROLE_PATH):
            # Listings leave tags out.
            tags = reader.read("iam", "get_instance_profile", ("NoSuchEntity",),
                               InstanceProfileName=profile["InstanceProfileName"]) or {}
            if tagged(tags.get("InstanceProfile", {}).get("Tags", []), pipeline):
                profiles.add(("instance_profile", profile["InstanceProfileName"]))
        return profiles


KIND = InstanceProfileKind()
