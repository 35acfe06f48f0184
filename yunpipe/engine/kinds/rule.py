"""EventBridge rules aimed at a launcher: each step's schedule, and its rules on shared buckets' events."""
import json
import re
from collections.abc import Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass

from yunpipe.aws.reader import NOT_FOUND, Reader
from yunpipe.engine.kinds.base import (
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

SCHEDULE_DESCRIPTION = "yunpipe: re-run the launcher so waiting messages get a worker"
PATTERN_DESCRIPTION = "yunpipe: run the launcher on new objects"


@dataclass(frozen=True)
class Rule(Named):
    """An EventBridge rule aimed at a launcher: on a schedule, or on an event pattern."""

    name: str
    arn: str
    function_arn: str
    tags: Mapping[str, str]
    schedule: str = ""
    pattern: str = ""  # JSON, as EventBridge stores it
    kind = "rule"
    target_id = "launcher"


class RuleKind(Kind[Rule]):
    name = "rule"
    arn_pattern = re.compile(r"^arn:[^:]+:events:[^:]*:\d+:rule/(?P<key>.+)$")

    def plan(self, rule: Rule, ctx: PlanContext) -> list[Call]:
        found = ctx.reader.read("events", "describe_rule", NOT_FOUND, Name=rule.name)
        calls = []
        if rule.schedule:
            trigger = {"ScheduleExpression": rule.schedule, "Description": SCHEDULE_DESCRIPTION}
            what = f"run the launcher {rule.schedule} to top up workers"
        else:
            trigger = {"EventPattern": rule.pattern, "Description": PATTERN_DESCRIPTION}
            what = f"run the launcher on new objects in {json.loads(rule.pattern)['detail']['bucket']['name'][0]}"
        if found is None:
            calls.append(call(rule, "create", "events", "put_rule", f"create rule {rule.name}: {what}",
                              Name=rule.name, State="ENABLED", **trigger, Tags=tag_list(rule.tags)))
        elif (found.get("ScheduleExpression", "") != rule.schedule or found.get("State") != "ENABLED"
              or json.loads(found.get("EventPattern") or "null") != json.loads(rule.pattern or "null")):
            calls.append(call(rule, "update", "events", "put_rule", f"update rule {rule.name}",
                              Name=rule.name, State="ENABLED", **trigger))
        if found is not None:
            current = ctx.reader.read("events", "list_tags_for_resource", NOT_FOUND, ResourceARN=found["Arn"]) or {}
            missing = missing_tags({t["Key"]: t["Value"] for t in current.get("Tags", [])}, rule.tags)
            if missing:
                calls.append(call(rule, "update", "events", "tag_resource", f"tag rule {rule.name}",
                                  ResourceARN=found["Arn"], Tags=tag_list(missing)))
        targets = ctx.reader.pages("events", "list_targets_by_rule", "Targets", NOT_FOUND, Rule=rule.name)
        if not any(t["Id"] == rule.target_id and t["Arn"] == rule.function_arn for t in targets):
            calls.append(call(rule, "update", "events", "put_targets", f"aim rule {rule.name} at the launcher",
                              Rule=rule.name, Targets=[{"Id": rule.target_id, "Arn": rule.function_arn}]))
        return calls

    def sweep(self, name: str, ctx: SweepContext) -> list[Call]:
        if ctx.reader.read("events", "describe_rule", NOT_FOUND, Name=name) is None:
            return []
        calls = []
        targets = [t["Id"] for t in ctx.reader.pages("events", "list_targets_by_rule", "Targets", NOT_FOUND, Rule=name)]
        if targets:
            calls.append(delete("rule", name, "events", "remove_targets", f"remove the targets of rule {name}",
                                last=False, Rule=name, Ids=targets))
        calls.append(delete("rule", name, "events", "delete_rule", f"delete rule {name}", Name=name))
        return calls

    def cloudformation(self, rule: Rule, template: Template) -> dict[str, dict]:
        trigger = ({"ScheduleExpression": rule.schedule, "Description": SCHEDULE_DESCRIPTION} if rule.schedule
                   else {"EventPattern": json.loads(rule.pattern), "Description": PATTERN_DESCRIPTION})
        return {template.id(rule.kind, rule.key): {"Type": "AWS::Events::Rule", "Properties": {
            "Name": rule.name, "State": "ENABLED", **trigger,
            "Targets": [{"Id": rule.target_id, "Arn": template.arn("function", rule.function_arn)}],
            "Tags": tag_list(rule.tags)}}}

    def discover(self, reader: Reader, pipeline: str, found: AbstractSet[ResourceKey]) -> set[ResourceKey]:
        # Not every tagging API lists EventBridge rules: asked directly.
        rules = set()
        for rule in reader.pages("events", "list_rules", "Rules", NamePrefix=f"yunpipe-{pipeline}-"):
            tags = reader.read("events", "list_tags_for_resource", NOT_FOUND, ResourceARN=rule["Arn"]) or {}
            if tagged(tags.get("Tags", []), pipeline):
                rules.add(("rule", rule["Name"]))
        return rules


KIND = RuleKind()
