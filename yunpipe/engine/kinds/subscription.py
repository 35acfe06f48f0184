"""The subscriptions of the pipeline's topic: one per entry of the workflow's `notify`.

SNS lists an e-mail or HTTPS subscription not yet confirmed with the ARN "PendingConfirmation":
a subscription is matched by its protocol and endpoint, never by its ARN, so a setup-pipe while
a confirmation waits asks for nothing (subscribing again would send another confirmation). A
pending subscription has no ARN to unsubscribe with: removed from `notify`, it is left to lapse
(SNS deletes unconfirmed subscriptions after three days), which the plan's notes say.
"""
from dataclasses import dataclass

from yunpipe.aws.reader import Reader
from yunpipe.engine.kinds.base import Kind, PlanContext, SweepContext, call, delete
from yunpipe.engine.kinds.topic import NO_TOPIC, topic_arn
from yunpipe.engine.plan import Call
from yunpipe.engine.template import Template

PENDING = ("PendingConfirmation", "pending confirmation")
# What the subscriber's owner does before SNS can deliver, by protocol.
CONFIRMATION = {
    "email": "{endpoint} gets an e-mail from AWS to confirm the subscription; nothing is sent to "
             "it until the link in it is followed",
    "https": "{endpoint} gets a SubscriptionConfirmation POST first: it must visit its SubscribeURL (or call "
             "ConfirmSubscription with its Token) before SNS sends it anything",
    "http": "{endpoint} gets a SubscriptionConfirmation POST first on AWS (the local cloud delivers at once)",
    "sqs": "queue {endpoint} must let SNS send to it: its policy must allow sqs:SendMessage to principal "
           "sns.amazonaws.com with aws:SourceArn {topic} (a queue of another account also confirms the "
           "subscription, from the message it receives)",
    "lambda": "function {endpoint} must let SNS invoke it: aws lambda add-permission --function-name {endpoint} "
              "--statement-id sns --action lambda:InvokeFunction --principal sns.amazonaws.com --source-arn {topic}",
}


@dataclass(frozen=True)
class Subscription:
    topic: str  # the topic's name
    topic_arn: str
    protocol: str
    endpoint: str
    kind = "subscription"

    @property
    def key(self) -> str:
        # Topic names and protocols have no ':', endpoints may: split at the first two.
        return f"{self.topic}:{self.protocol}:{self.endpoint}"


def subscriptions(reader: Reader, topic_arn: str) -> list[dict]:
    return reader.pages("sns", "list_subscriptions_by_topic", "Subscriptions", NO_TOPIC, TopicArn=topic_arn)


class SubscriptionKind(Kind[Subscription]):
    name = "subscription"

    def plan(self, subscription: Subscription, ctx: PlanContext) -> list[Call]:
        found = _find(subscriptions(ctx.reader, subscription.topic_arn), subscription.protocol, subscription.endpoint)
        if found is not None:
            if found["SubscriptionArn"] in PENDING:
                ctx.note(f"{subscription.endpoint} has not confirmed its subscription to topic {subscription.topic} yet")
            return []
        ctx.note(CONFIRMATION[subscription.protocol].format(endpoint=subscription.endpoint,
                                                           topic=subscription.topic_arn))
        return [call(subscription, "create", "sns", "subscribe",
                     f"subscribe {subscription.endpoint} ({subscription.protocol}) to topic {subscription.topic}",
                     TopicArn=subscription.topic_arn, Protocol=subscription.protocol, Endpoint=subscription.endpoint,
                     ReturnSubscriptionArn=True)]

    def sweep(self, key: str, ctx: SweepContext) -> list[Call]:
        topic, protocol, endpoint = key.split(":", 2)
        if ("topic", topic) in ctx.deleting:
            return []  # the topic's deletion deletes its subscriptions
        found = _find(subscriptions(ctx.reader, topic_arn(ctx.reader, topic)), protocol, endpoint)
        if found is None or found["SubscriptionArn"] in PENDING:
            return []  # gone, or pending: SNS lets an unconfirmed subscription lapse
        return [delete("subscription", key, "sns", "unsubscribe", f"unsubscribe {endpoint} from topic {topic}",
                       SubscriptionArn=found["SubscriptionArn"])]

    def cloudformation(self, subscription: Subscription, template: Template) -> dict[str, dict]:
        """Part of the topic's own resource (its Subscription list)."""
        return {template.id("topic", subscription.topic): {"Properties": {"Subscription": [
            {"Protocol": subscription.protocol, "Endpoint": subscription.endpoint}]}}}


def _find(entries: list[dict], protocol: str, endpoint: str) -> dict | None:
    return next((e for e in entries if e.get("Protocol") == protocol and e.get("Endpoint") == endpoint), None)


KIND = SubscriptionKind()
