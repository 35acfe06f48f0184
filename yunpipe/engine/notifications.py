"""The pipeline's topic and its subscriptions, from the workflow's `notify` (yunpipe.specs.notify):
what of `notify` depends on where the pipeline goes is checked here, with the target."""
from collections.abc import Mapping, Sequence

from yunpipe.engine.kinds.role import Role
from yunpipe.engine.kinds.subscription import Subscription
from yunpipe.engine.kinds.topic import Topic
from yunpipe.engine.model import resource_name
from yunpipe.engine.policies import render_policy
from yunpipe.engine.target import Target
from yunpipe.errors import InputError
from yunpipe.specs.workflow import WorkflowSpec


def topic_arn(spec: WorkflowSpec, target: Target) -> str:
    """The ARN of the pipeline's topic ("" without `notify`), once `notify` is checked for the target."""
    check_notify(spec, target)
    return target.arn("sns", resource_name("topic", spec.name, "notify")) if spec.notify else ""


def check_notify(spec: WorkflowSpec, target: Target) -> None:
    """http:// reaches this machine only from the local cloud's SNS; SNS delivers to queues and
    functions of its own partition only."""
    for subscriber in spec.notify:
        if subscriber.protocol == "http" and not target.local:
            raise InputError(spec.source, subscriber.field,
                             f"expected an https:// URL, got {subscriber.endpoint!r}: http:// to this machine "
                             "works only on the local cloud (--local)")
        partition = subscriber.arn.get("partition")
        if partition and partition != target.partition:
            raise InputError(spec.source, subscriber.field,
                             f"expected an ARN of partition {target.partition} (region {target.region}), got "
                             f"{subscriber.endpoint!r}: SNS delivers within its partition only")


def resources(spec: WorkflowSpec, target: Target, publishers: Sequence[Role],
              tags: Mapping[str, str]) -> tuple[tuple[Topic, ...], tuple[Subscription, ...]]:
    """The topic, whose policy lets `publishers` (the steps' task and launcher roles) publish and
    nobody publish without TLS, and one subscription per `notify` entry; none without `notify`."""
    if not spec.notify:
        return (), ()
    arn = topic_arn(spec, target)
    name = arn.rsplit(":", 1)[-1]
    policy = render_policy("topic", topic_arn=arn, publisher_arns=[role.arn for role in publishers])
    return (Topic(name, arn, policy, tags, f"yunpipe {spec.name}"),), tuple(Subscription(name, arn, s.protocol, s.endpoint) for s in spec.notify)
