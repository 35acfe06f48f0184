"""CloudWatch log groups: the pipeline's (tasks' logs) and each launcher's."""
import re
from collections.abc import Mapping
from dataclasses import dataclass

from yunpipe.engine.kinds.base import Kind, Named, PlanContext, SweepContext, call, delete, missing_tags, tag_list
from yunpipe.engine.plan import Call
from yunpipe.engine.template import Template


@dataclass(frozen=True)
class LogGroup(Named):
    name: str
    retention_days: int
    tags: Mapping[str, str]
    kind = "log_group"


class LogGroupKind(Kind[LogGroup]):
    name = "log_group"
    arn_pattern = re.compile(r"^arn:[^:]+:logs:[^:]*:\d+:log-group:(?P<key>[^:]+)(:\*)?$")

    def plan(self, group: LogGroup, ctx: PlanContext) -> list[Call]:
        found = [g for g in ctx.reader.pages("logs", "describe_log_groups", "logGroups", logGroupNamePrefix=group.name)
                 if g["logGroupName"] == group.name]
        calls = []
        if not found:
            calls.append(call(group, "create", "logs", "create_log_group", f"create log group {group.name}",
                              logGroupName=group.name, tags=dict(group.tags)))
        if not found or found[0].get("retentionInDays") != group.retention_days:
            calls.append(call(group, "update", "logs", "put_retention_policy",
                              f"keep logs of {group.name} for {group.retention_days} days",
                              logGroupName=group.name, retentionInDays=group.retention_days))
        if found:
            arn = found[0]["arn"].removesuffix(":*")
            current = ctx.reader.read("logs", "list_tags_for_resource", resourceArn=arn).get("tags") or {}
            missing = missing_tags(current, group.tags)
            if missing:
                calls.append(call(group, "update", "logs", "tag_resource", f"tag log group {group.name}",
                                  resourceArn=arn, tags=missing))
        return calls

    def sweep(self, name: str, ctx: SweepContext) -> list[Call]:
        groups = ctx.reader.pages("logs", "describe_log_groups", "logGroups", logGroupNamePrefix=name)
        if not any(g["logGroupName"] == name for g in groups):
            return []
        return [delete("log_group", name, "logs", "delete_log_group", f"delete log group {name}",
                       logGroupName=name)]

    def cloudformation(self, group: LogGroup, template: Template) -> dict[str, dict]:
        return {template.id(group.kind, group.key): {"Type": "AWS::Logs::LogGroup", "Properties": {
            "LogGroupName": group.name, "RetentionInDays": group.retention_days, "Tags": tag_list(group.tags)}}}


KIND = LogGroupKind()
