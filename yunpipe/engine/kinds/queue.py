"""SQS queues: each step's queue of files to process, and its dead-letter queue."""
import dataclasses
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from yunpipe.engine.kinds.base import Kind, Named, PlanContext, SweepContext, call, delete, missing_tags, tag_list
from yunpipe.engine.plan import Call, Ref, Transient
from yunpipe.engine.template import Template

# SQS refuses a queue name for 60 s after its deletion (a setup right after a clean-up).
QUEUE_NAME_IN_USE = (Transient("AWS.SimpleQueueService.QueueDeletedRecently"), Transient("QueueDeletedRecently"))


@dataclass(frozen=True)
class Queue(Named):
    name: str
    arn: str
    attributes: Mapping[str, str]
    tags: Mapping[str, str]
    kind = "queue"


class QueueKind(Kind[Queue]):
    name = "queue"
    arn_pattern = re.compile(r"^arn:[^:]+:sqs:[^:]*:\d+:(?P<key>.+)$")

    def plan(self, queue: Queue, ctx: PlanContext) -> list[Call]:
        """Also records the queue's URL (or a Ref to it) for the kinds that refer to it."""
        url = ctx.reader.queue_url(queue.name)
        if url is None:
            ref = Ref(f"queue_url:{queue.name}")
            ctx.queue_urls[queue.name] = ref
            created = call(queue, "create", "sqs", "create_queue", f"create queue {queue.name} (encrypted)",
                           QueueName=queue.name, Attributes=dict(queue.attributes), tags=dict(queue.tags))
            return [dataclasses.replace(created, outputs=((ref.name, "QueueUrl"),), retry_on=QUEUE_NAME_IN_USE)]
        ctx.queue_urls[queue.name] = url
        current = ctx.reader.read("sqs", "get_queue_attributes", QueueUrl=url, AttributeNames=["All"])["Attributes"]
        changed = {k: v for k, v in queue.attributes.items() if not _same_attribute(k, current.get(k), v)}
        calls = []
        if changed:
            calls.append(call(queue, "update", "sqs", "set_queue_attributes",
                              f"update queue {queue.name}: {', '.join(sorted(changed))}", QueueUrl=url, Attributes=changed))
        missing = missing_tags(ctx.reader.read("sqs", "list_queue_tags", QueueUrl=url).get("Tags") or {}, queue.tags)
        if missing:
            calls.append(call(queue, "update", "sqs", "tag_queue", f"tag queue {queue.name}", QueueUrl=url, Tags=missing))
        return calls

    def sweep(self, name: str, ctx: SweepContext) -> list[Call]:
        url = ctx.reader.queue_url(name)
        if url is None:
            return []
        return [delete("queue", name, "sqs", "delete_queue", f"delete queue {name}", QueueUrl=url)]

    def cloudformation(self, queue: Queue, template: Template) -> dict[str, dict]:
        # AWS::SQS::Queue's properties are the queue's attributes, typed.
        properties: dict[str, Any] = {"QueueName": queue.name}
        for name, value in queue.attributes.items():
            if name == "RedrivePolicy":
                redrive = json.loads(value)
                properties[name] = {**redrive, "deadLetterTargetArn": template.arn("queue", redrive["deadLetterTargetArn"])}
            elif value in ("true", "false"):
                properties[name] = value == "true"
            else:
                properties[name] = int(value) if value.isdigit() else value
        return {template.id(queue.kind, queue.key): {"Type": "AWS::SQS::Queue",
                                                     "Properties": {**properties, "Tags": tag_list(queue.tags)}}}


def _same_attribute(name: str, current: str | None, desired: str) -> bool:
    if current is None:
        return False
    if name == "RedrivePolicy":
        return {k: str(v) for k, v in json.loads(current).items()} == {k: str(v) for k, v in json.loads(desired).items()}
    return current.lower() == desired.lower()


KIND = QueueKind()
