"""ECS task definitions: one family per step, a new revision when what it is registered from changes."""
import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from yunpipe.engine.kinds.base import Kind, PlanContext, QueueUrl, SweepContext, delete, tag_list
from yunpipe.engine.plan import Call, substitute
from yunpipe.engine.template import Template

# A tag on each task definition revision: the hash of what it was registered from.
SPEC_TAG_KEY = "yunpipe:spec"


@dataclass(frozen=True)
class TaskDefinition:
    family: str
    registration: Mapping[str, Any]  # register_task_definition params; may hold QueueUrl
    tags: Mapping[str, str]
    # How the algorithm's cpu/memory request became a size Fargate offers ("" when exact).
    sizing: str = ""
    # Where its tasks run when not on Fargate ("on g4dn.xlarge instances, 1 GPU(s)"), for the plan.
    placement: str = ""
    kind = "task_definition"

    @property
    def key(self) -> str:
        return self.family

    @property
    def spec_hash(self) -> str:
        # The queue's name stands for its URL: the same queue gives the same hash whether
        # or not its URL is known yet. The tags count too: tasks take theirs from the revision
        # they run (RunTask's propagateTags), so new tags need a new revision.
        text = json.dumps({"registration": self.registration, "tags": dict(self.tags)}, sort_keys=True,
                          default=lambda marker: marker.queue)
        return hashlib.sha256(text.encode()).hexdigest()[:32]


class TaskDefinitionKind(Kind[TaskDefinition]):
    name = "task_definition"
    arn_pattern = re.compile(r"^arn:[^:]+:ecs:[^:]*:\d+:task-definition/(?P<key>[^:]+):\d+$")

    def plan(self, task: TaskDefinition, ctx: PlanContext) -> list[Call]:
        found = ctx.reader.read("ecs", "describe_task_definition", ("ClientException",),
                                taskDefinition=task.family, include=["TAGS"])
        tags = {t["key"]: t["value"] for t in (found or {}).get("tags", [])}
        if found and found["taskDefinition"].get("status") == "ACTIVE" and tags.get(SPEC_TAG_KEY) == task.spec_hash:
            return []
        revision = "new revision of " if found else ""
        params = substitute(dict(task.registration), QueueUrl, lambda url: ctx.queue_urls[url.queue])
        params["tags"] = tag_list({**task.tags, SPEC_TAG_KEY: task.spec_hash}, "key", "value")
        storage = params.get("ephemeralStorage", {}).get("sizeInGiB")
        details = [f"{params['cpu']} CPU units", f"{params['memory']} MiB"] + (
            [f"{storage} GiB of storage"] if storage else []) + [params["containerDefinitions"][0]["image"]]
        sizing = (f"; {task.placement}" if task.placement else "") + (f"; {task.sizing}" if task.sizing else "")
        return [Call("ecs", "register_task_definition", params,
                     f"register {revision}task definition {task.family} ({', '.join(details)}{sizing})",
                     task.kind, task.key, "create")]

    def sweep(self, family: str, ctx: SweepContext) -> list[Call]:
        active, inactive = _revisions(ctx, family, "ACTIVE"), _revisions(ctx, family, "INACTIVE")
        calls = [delete("task_definition", family, "ecs", "deregister_task_definition",
                        f"deregister task definition {arn.rsplit('/', 1)[-1]}", last=False, taskDefinition=arn)
                 for arn in active]
        revisions = active + inactive
        # DeleteTaskDefinitions takes at most 10 revisions per call.
        chunks = [revisions[i:i + 10] for i in range(0, len(revisions), 10)]
        for index, chunk in enumerate(chunks):
            calls.append(delete("task_definition", family, "ecs", "delete_task_definitions",
                                f"delete {len(chunk)} revision(s) of task definition {family}",
                                last=index == len(chunks) - 1, taskDefinitions=chunk))
        return calls

    def cloudformation(self, task: TaskDefinition, template: Template) -> dict[str, dict]:
        registration = substitute(dict(task.registration), QueueUrl, lambda url: template.ref("queue", url.queue))
        properties = _pascal(registration)
        for role in ("TaskRoleArn", "ExecutionRoleArn"):
            properties[role] = template.arn("role", properties[role])
        # The spec tag is the planner's; the stack knows its own changes.
        return {template.id(task.kind, task.key): {"Type": "AWS::ECS::TaskDefinition",
                                                   "Properties": {**properties, "Tags": tag_list(task.tags)}}}


def _pascal(value: Any) -> Any:
    """RegisterTaskDefinition's parameters as AWS::ECS::TaskDefinition's properties: the same
    names, capitalised, except in the log driver's options (free-form)."""
    if isinstance(value, list):
        return [_pascal(v) for v in value]
    if not isinstance(value, dict):
        return value
    return {k[:1].upper() + k[1:]: v if k == "options" else _pascal(v) for k, v in value.items()}


def _revisions(ctx: SweepContext, family: str, status: str) -> list[str]:
    arns = ctx.reader.pages("ecs", "list_task_definitions", "taskDefinitionArns", familyPrefix=family, status=status)
    # familyPrefix is a prefix: keep this family's revisions only.
    return [a for a in arns if a.rsplit("/", 1)[-1].rsplit(":", 1)[0] == family]


KIND = TaskDefinitionKind()
