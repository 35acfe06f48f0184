"""Lambda permissions: what lets S3 or EventBridge invoke a launcher."""
from dataclasses import dataclass

from yunpipe.engine.kinds.base import Kind, PlanContext, SweepContext, call, delete
from yunpipe.engine.plan import Call
from yunpipe.engine.template import Template


@dataclass(frozen=True)
class Permission:
    function: str
    sid: str
    principal: str
    source_arn: str
    source_account: str
    kind = "permission"

    @property
    def key(self) -> str:
        return f"{self.function}/{self.sid}"


class PermissionKind(Kind[Permission]):
    name = "permission"

    def plan(self, permission: Permission, ctx: PlanContext) -> list[Call]:
        statement = ctx.reader.policy_statements(permission.function).get(permission.sid)
        if statement and _permission_matches(statement, permission):
            return []
        calls = []
        if statement:
            calls.append(call(permission, "update", "lambda", "remove_permission",
                              f"replace permission {permission.sid} of {permission.function}",
                              FunctionName=permission.function, StatementId=permission.sid))
        calls.append(call(permission, "create", "lambda", "add_permission",
                          f"let {permission.principal} invoke {permission.function} from {permission.source_arn}",
                          FunctionName=permission.function, StatementId=permission.sid,
                          Action="lambda:InvokeFunction", Principal=permission.principal,
                          SourceArn=permission.source_arn, SourceAccount=permission.source_account))
        return calls

    def sweep(self, key: str, ctx: SweepContext) -> list[Call]:
        function, sid = key.split("/", 1)
        if sid not in ctx.reader.policy_statements(function):
            return []
        return [delete("permission", key, "lambda", "remove_permission",
                       f"remove permission {sid} of {function}", FunctionName=function, StatementId=sid)]

    def cloudformation(self, permission: Permission, template: Template) -> dict[str, dict]:
        # The source's ARN as it is: a bucket's notification waits for this permission, not the reverse.
        return {template.id(permission.kind, permission.key): {"Type": "AWS::Lambda::Permission", "Properties": {
            "FunctionName": template.ref("function", permission.function), "Action": "lambda:InvokeFunction",
            "Principal": permission.principal, "SourceArn": permission.source_arn,
            "SourceAccount": permission.source_account}}}


def _permission_matches(statement: dict, permission: Permission) -> bool:
    condition = statement.get("Condition", {})
    principal = statement.get("Principal", {})
    principal = principal.get("Service") if isinstance(principal, dict) else principal
    return (principal == permission.principal
            and condition.get("ArnLike", {}).get("AWS:SourceArn") == permission.source_arn
            and condition.get("StringEquals", {}).get("AWS:SourceAccount") == permission.source_account)


KIND = PermissionKind()
