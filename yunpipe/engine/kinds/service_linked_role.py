"""IAM service-linked roles: the account's roles that let ECS and Auto Scaling act on its behalf.

They belong to the account, not to a pipeline: created when missing (a fresh account has
neither until a service first needs it, and ECS refuses capacity providers until its role
exists), never recorded in a pipeline's state, never tagged, never deleted by a clean-up.
"""
from dataclasses import dataclass

from yunpipe.engine.kinds.base import Kind, PlanContext, SweepContext
from yunpipe.engine.plan import Call, Transient
from yunpipe.engine.template import Template

# IAM's answer when another deploy created the role first: the work is done.
TAKEN = Transient("InvalidInput", "has been taken in this account")


@dataclass(frozen=True)
class ServiceLinkedRole:
    service: str  # the AWS service name, e.g. ecs.amazonaws.com
    name: str  # the role AWS creates for it, e.g. AWSServiceRoleForECS
    kind = "service_linked_role"

    @property
    def key(self) -> str:
        return self.service

    @property
    def path(self) -> str:
        """IAM puts a service's linked roles under this path (the name alone varies by emulator)."""
        return f"/aws-service-role/{self.service}/"


class ServiceLinkedRoleKind(Kind[ServiceLinkedRole]):
    name = "service_linked_role"

    def plan(self, role: ServiceLinkedRole, ctx: PlanContext) -> list[Call]:
        if ctx.reader.pages("iam", "list_roles", "Roles", PathPrefix=role.path):
            return []
        # record="": the account's, not the pipeline's, so no clean-up ever deletes it.
        return [Call("iam", "create_service_linked_role", {"AWSServiceName": role.service},
                     f"create service-linked role {role.name} (the account's, for {role.service}; kept by clean-up)",
                     role.kind, role.key, "create", record="", done_on=(TAKEN,))]

    def sweep(self, key: str, ctx: SweepContext) -> list[Call]:
        return []  # other pipelines and the account's own services need it

    def cloudformation(self, role: ServiceLinkedRole, template: Template) -> dict[str, dict]:
        # AWS::IAM::ServiceLinkedRole fails when the role exists, and deleting the stack would delete
        # the account's role: it stays out of the stack, created once per account beforehand.
        template.note(f"The account needs the service-linked role {role.name}: once per account, run "
                      f"aws iam create-service-linked-role --aws-service-name {role.service} (an answer that "
                      "it has been taken means it exists)")
        return {}


KIND = ServiceLinkedRoleKind()
