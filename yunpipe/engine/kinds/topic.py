"""The pipeline's SNS topic (only when the workflow has `notify`): where the workers and the
launchers announce a run's first failed file and a settled run, to the topic's subscriptions
(kinds/subscription.py)."""
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from yunpipe.aws.reader import Reader
from yunpipe.engine.kinds.base import Kind, Named, PlanContext, SweepContext, call, delete, tag_list
from yunpipe.engine.plan import Call
from yunpipe.engine.target import partition
from yunpipe.engine.template import Template

# SNS's answer for a topic that does not exist.
NO_TOPIC = ("NotFound", "NotFoundException")


@dataclass(frozen=True)
class Topic(Named):
    name: str
    arn: str
    # Replaces SNS's default policy (every principal of the account may publish and subscribe).
    policy: Mapping[str, Any]
    tags: Mapping[str, str]
    # The sender's name of its e-mails (else "AWS Notifications").
    display_name: str = ""
    kind = "topic"

    def attributes(self) -> dict[str, str]:
        return {"Policy": json.dumps(self.policy), "DisplayName": self.display_name}


class TopicKind(Kind[Topic]):
    name = "topic"
    arn_pattern = re.compile(r"^arn:[^:]+:sns:[^:]*:\d+:(?P<key>[^:]+)$")

    def plan(self, topic: Topic, ctx: PlanContext) -> list[Call]:
        found = ctx.reader.read("sns", "get_topic_attributes", NO_TOPIC, TopicArn=topic.arn)
        if found is None:
            return [call(topic, "create", "sns", "create_topic", f"create topic {topic.name} (notifications)",
                         Name=topic.name, Attributes=topic.attributes(), Tags=tag_list(topic.tags))]
        current = found.get("Attributes", {})
        # SNS takes one attribute per call.
        return [call(topic, "update", "sns", "set_topic_attributes", f"set the {name} of topic {topic.name}",
                     TopicArn=topic.arn, AttributeName=name, AttributeValue=value)
                for name, value in topic.attributes().items() if not _same(name, current.get(name), value)]

    def sweep(self, name: str, ctx: SweepContext) -> list[Call]:
        arn = topic_arn(ctx.reader, name)
        if ctx.reader.read("sns", "get_topic_attributes", NO_TOPIC, TopicArn=arn) is None:
            return []
        # Its subscriptions go with it.
        return [delete("topic", name, "sns", "delete_topic", f"delete topic {name} and its subscriptions",
                       TopicArn=arn)]

    def cloudformation(self, topic: Topic, template: Template) -> dict[str, dict]:
        topic_id = template.id(topic.kind, topic.key)
        # The policy names the publishing roles by their ARNs, which SNS checks exist: created after them.
        named = json.dumps(topic.policy)
        roles = [template.id(r.kind, r.key) for r in template.of_kind("role", lambda r: json.dumps(r.arn) in named)]
        return {
            topic_id: {"Type": "AWS::SNS::Topic", "Properties": {"TopicName": topic.name, "DisplayName": topic.display_name,
                                                                  "Tags": tag_list(topic.tags)}},
            f"{topic_id}Policy": {"Type": "AWS::SNS::TopicPolicy", "DependsOn": roles, "Properties": {
                "Topics": [{"Ref": topic_id}], "PolicyDocument": dict(topic.policy)}},
        }


def _same(name: str, current: str | None, desired: str) -> bool:
    if name == "Policy":
        return current is not None and json.loads(current) == json.loads(desired)
    return (current or "") == desired


def topic_arn(reader: Reader, name: str) -> str:
    """The ARN of topic `name` where `reader` reads (a sweep knows names; SNS wants ARNs)."""
    region = reader.aws.region
    return f"arn:{partition(region)}:sns:{region}:{reader.aws.account_id()}:{name}"


KIND = TopicKind()
