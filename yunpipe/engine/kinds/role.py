"""IAM roles: each step's launcher, task and task-execution roles, and the instances' role."""
import json
import urllib.parse
from collections.abc import Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from typing import Any

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
    missing_tags,
    tag_list,
    tagged,
)
from yunpipe.engine.plan import Call
from yunpipe.engine.template import Template


@dataclass(frozen=True)
class Role(Named):
    name: str
    arn: str
    trust_policy: Mapping[str, Any]
    policy: Mapping[str, Any]
    description: str
    tags: Mapping[str, str]
    kind = "role"
    policy_name = "yunpipe"


def policy_document(value: Any) -> Any:
    """IAM documents come back as dicts from boto3, or URL-encoded strings from some emulators."""
    if isinstance(value, str):
        return json.loads(urllib.parse.unquote(value))
    return value


class RoleKind(Kind[Role]):
    name = "role"

    def plan(self, role: Role, ctx: PlanContext) -> list[Call]:
        read = ctx.reader.read
        found = read("iam", "get_role", ("NoSuchEntity",), RoleName=role.name)
        calls = []
        if found is None:
            calls.append(call(role, "create", "iam", "create_role", f"create role {role.name}",
                              RoleName=role.name, Path=ROLE_PATH, Description=role.description,
                              AssumeRolePolicyDocument=json.dumps(role.trust_policy), Tags=tag_list(role.tags)))
        elif policy_document(found["Role"]["AssumeRolePolicyDocument"]) != role.trust_policy:
            calls.append(call(role, "update", "iam", "update_assume_role_policy",
                              f"update who may assume role {role.name}", RoleName=role.name,
                              PolicyDocument=json.dumps(role.trust_policy)))
        missing = found and missing_tags({t["Key"]: t.get("Value", "") for t in found["Role"].get("Tags", [])}, role.tags)
        if missing:
            calls.append(call(role, "update", "iam", "tag_role", f"tag role {role.name}", RoleName=role.name,
                              Tags=tag_list(missing)))
        policy = found and read("iam", "get_role_policy", ("NoSuchEntity",), RoleName=role.name,
                                PolicyName=role.policy_name)
        if not policy or policy_document(policy["PolicyDocument"]) != role.policy:
            calls.append(call(role, "update", "iam", "put_role_policy", f"set the policy of role {role.name}",
                              RoleName=role.name, PolicyName=role.policy_name,
                              PolicyDocument=json.dumps(role.policy)))
        return calls

    def sweep(self, name: str, ctx: SweepContext) -> list[Call]:
        reader = ctx.reader
        if reader.read("iam", "get_role", ("NoSuchEntity",), RoleName=name) is None:
            return []
        calls = [delete("role", name, "iam", "delete_role_policy", f"delete policy {policy} of role {name}",
                        last=False, RoleName=name, PolicyName=policy)
                 for policy in reader.pages("iam", "list_role_policies", "PolicyNames", RoleName=name)]
        calls += [delete("role", name, "iam", "detach_role_policy",
                         f"detach policy {p['PolicyName']} from role {name}", last=False, RoleName=name,
                         PolicyArn=p["PolicyArn"])
                  for p in reader.pages("iam", "list_attached_role_policies", "AttachedPolicies", RoleName=name)]
        calls.append(delete("role", name, "iam", "delete_role", f"delete role {name}", RoleName=name))
        return calls

    def cloudformation(self, role: Role, template: Template) -> dict[str, dict]:
        # The policy names other resources by their ARNs as they are: IAM does not need them to exist,
        # and references would make cycles (a bucket's notification needs its launcher, which needs its role).
        return {template.id(role.kind, role.key): {"Type": "AWS::IAM::Role", "Properties": {
            "RoleName": role.name, "Path": ROLE_PATH, "Description": role.description,
            "AssumeRolePolicyDocument": dict(role.trust_policy),
            "Policies": [{"PolicyName": role.policy_name, "PolicyDocument": dict(role.policy)}],
            "Tags": tag_list(role.tags)}}}

    def discover(self, reader: Reader, pipeline: str, found: AbstractSet[ResourceKey]) -> set[ResourceKey]:
        # IAM is global: the tagging API of a region does not list roles.
        roles = set()
        for role in reader.pages("iam", "list_roles", "Roles", PathPrefix=ROLE_PATH):
            tags = reader.read("iam", "list_role_tags", ("NoSuchEntity",), RoleName=role["RoleName"]) or {}
            if tagged(tags.get("Tags", []), pipeline):
                roles.add(("role", role["RoleName"]))
        return roles


KIND = RoleKind()
