"""The desired resources of a pipeline, as the compiler (compiler.py) builds them: a
PipelineModel of StepModels and InstanceGroups, whose resources are the dataclasses of the
kinds (kinds/), and the naming rules every name follows.
"""
import hashlib
import re
from dataclasses import dataclass

from yunpipe.engine.graph import Layout, Placement
from yunpipe.engine.kinds import CREATION_ORDER
from yunpipe.engine.kinds.accounting_descriptor import AccountingDescriptor
from yunpipe.engine.kinds.auto_scaling_group import AutoScalingGroup
from yunpipe.engine.kinds.base import ROLE_PATH, STEP_TAG_KEY, TAG_KEY, QueueUrl
from yunpipe.engine.kinds.bucket import Bucket
from yunpipe.engine.kinds.bucket_events import BucketEvents
from yunpipe.engine.kinds.capacity_provider import CapacityProvider
from yunpipe.engine.kinds.cluster import Cluster
from yunpipe.engine.kinds.cluster_capacity_providers import ClusterCapacityProviders
from yunpipe.engine.kinds.event_invoke_config import EventInvokeConfig
from yunpipe.engine.kinds.function import Function
from yunpipe.engine.kinds.instance_profile import InstanceProfile
from yunpipe.engine.kinds.launch_template import LaunchTemplate
from yunpipe.engine.kinds.log_group import LogGroup
from yunpipe.engine.kinds.notification import Notification, notification_id
from yunpipe.engine.kinds.parameter import Parameter
from yunpipe.engine.kinds.permission import Permission
from yunpipe.engine.kinds.queue import Queue
from yunpipe.engine.kinds.role import Role
from yunpipe.engine.kinds.rule import Rule
from yunpipe.engine.kinds.service_linked_role import ServiceLinkedRole
from yunpipe.engine.kinds.subscription import Subscription
from yunpipe.engine.kinds.task_definition import SPEC_TAG_KEY, TaskDefinition
from yunpipe.engine.kinds.topic import Topic
from yunpipe.engine.state import PipelineSummary, StepSummary
from yunpipe.engine.target import Target
from yunpipe.runtime.contract import MAX_STARTED_BY

# The names model users need, whether defined here or in kinds/.
__all__ = ["CREATION_ORDER", "ROLE_PATH", "SPEC_TAG_KEY", "STEP_TAG_KEY", "TAG_KEY", "GrowLevel", "InstanceGroup", "PipelineModel", "QueueUrl",
           "StepModel", "container_name", "notification_id", "resource_name"]

# AWS name limits: (length, characters not allowed).
LIMITS = {
    "bucket": (63, r"[^a-z0-9-]"),
    "queue": (80, r"[^A-Za-z0-9_-]"),
    "function": (64, r"[^A-Za-z0-9_-]"),
    "role": (64, r"[^A-Za-z0-9_+=,.@-]"),
    "rule": (64, r"[^A-Za-z0-9_.-]"),
    "ecs": (255, r"[^A-Za-z0-9_-]"),
    "launch_template": (128, r"[^A-Za-z0-9_-]"),
    "started_by": (MAX_STARTED_BY, r"[^A-Za-z0-9_-]"),
    "topic": (256, r"[^A-Za-z0-9_-]"),
}


def resource_name(kind: str, *parts: str) -> str:
    """`yunpipe-<parts>` within the AWS limits of `kind`; too long -> truncated + short hash."""
    limit, disallowed = LIMITS[kind]
    full = "-".join(("yunpipe", *parts))
    name = re.sub(disallowed, "-", full.lower() if kind == "bucket" else full)
    if len(name) <= limit:
        return name
    digest = hashlib.sha256(full.encode()).hexdigest()[:8]
    return f"{name[:limit - 9].rstrip('-.')}-{digest}"


@dataclass(frozen=True)
class InstanceGroup:
    """The EC2 capacity of one instance type, for the steps that ask for it."""

    instance_type: str
    gpu: bool  # some step runs GPU tasks on it: the GPU AMI
    launch_template: LaunchTemplate
    auto_scaling_group: AutoScalingGroup
    capacity_provider: CapacityProvider


def container_name(step: str) -> str:
    """The step's container, also its log stream prefix (`<prefix>/<container>/<task id>`)."""
    return re.sub(r"[^A-Za-z0-9_-]", "-", step)


@dataclass(frozen=True)
class GrowLevel:
    """A step's path at a larger memory, for its jobs out of memory (engine/grow.py)."""

    memory: int
    queue: Queue
    task_definition: TaskDefinition
    started_by: str


@dataclass(frozen=True)
class StepModel:
    name: str
    placement: Placement
    queue: Queue
    dead_letter_queue: Queue
    launcher_role: Role
    task_role: Role
    execution_role: Role
    task_definition: TaskDefinition
    function: Function
    # Where Lambda puts the events it could not deliver to the launcher, which its scheduled
    # run queues again.
    failed_events: Queue
    event_invoke_config: EventInvokeConfig
    # One per bucket the step reads: an S3 notification where it is the bucket's only reader,
    # else an EventBridge rule; each with the permission that lets it invoke the launcher.
    permissions: tuple[Permission, ...]
    notifications: tuple[Notification, ...]
    event_rules: tuple[Rule, ...]
    rule: Rule
    function_log_group: LogGroup
    started_by: str
    # Its larger sizes, smallest first (none: it does not grow).
    grow: tuple[GrowLevel, ...] = ()

    @property
    def input_bucket(self) -> str:
        return self.placement.sources[0].bucket

    @property
    def output_bucket(self) -> str:
        return self.placement.output_bucket


@dataclass(frozen=True)
class PipelineModel:
    name: str
    target: Target
    input_bucket: str
    output_bucket: str
    reports_bucket: str
    buckets: tuple[Bucket, ...]
    bucket_events: tuple[BucketEvents, ...]
    layout: Layout
    log_group: LogGroup
    cluster: Cluster
    # Only when a step runs on Fargate Spot or on EC2 instances.
    cluster_capacity_providers: tuple[ClusterCapacityProviders, ...]
    parameters: tuple[Parameter, ...]
    steps: tuple[StepModel, ...]
    launch_type: str
    source: str = ""  # the workflow file, for errors found while planning
    # Only for steps with an instance type: one role and profile for the pipeline's instances
    # (the ECS agent's permissions do not depend on the type), one group per instance type.
    instance_role: tuple[Role, ...] = ()
    instance_profile: tuple[InstanceProfile, ...] = ()
    instance_groups: tuple[InstanceGroup, ...] = ()
    # The account's roles for ECS and Auto Scaling, when a step needs capacity providers or EC2.
    service_linked_roles: tuple[ServiceLinkedRole, ...] = ()
    # Only when the workflow has `notify`: the pipeline's topic and one subscription per entry.
    topic: tuple[Topic, ...] = ()
    subscriptions: tuple[Subscription, ...] = ()
    # The pipeline as run accounting reads it, in the reports bucket.
    accounting: tuple[AccountingDescriptor, ...] = ()

    @property
    def topic_arn(self) -> str:
        """Where the pipeline's runs are announced ("" without `notify`): the workers' and the
        launchers' setting, and the pipeline's descriptor's."""
        return self.topic[0].arn if self.topic else ""

    def resources(self) -> tuple:
        """Every desired resource, in the order they can be created (kind by kind, in CREATION_ORDER)."""
        steps, groups = self.steps, self.instance_groups
        return (
            *self.service_linked_roles,
            *self.buckets,
            *self.accounting,
            self.log_group,
            *(s.function_log_group for s in steps),
            *(q for s in steps for q in (s.dead_letter_queue, s.queue, *(g.queue for g in s.grow), s.failed_events)),
            *self.parameters,
            *(r for s in steps for r in (s.launcher_role, s.task_role, s.execution_role)),
            *self.instance_role,
            *self.topic,
            *self.subscriptions,
            *self.instance_profile,
            *(g.launch_template for g in groups),
            *(g.auto_scaling_group for g in groups),
            self.cluster,
            *(g.capacity_provider for g in groups),
            *self.cluster_capacity_providers,
            *(t for s in steps for t in (s.task_definition, *(g.task_definition for g in s.grow))),
            *(s.function for s in steps),
            *(s.event_invoke_config for s in steps),
            *(p for s in steps for p in s.permissions),
            *(n for s in steps for n in s.notifications),
            *self.bucket_events,
            *(r for s in steps for r in (*s.event_rules, s.rule)),
        )

    def keys(self) -> set[tuple[str, str]]:
        return {(r.kind, r.key) for r in self.resources()}

    def summary(self) -> PipelineSummary:
        """What other commands (status, logs, upload, results) need to find the pipeline."""
        return PipelineSummary(
            pipeline=self.name,
            region=self.target.region,
            account_id=self.target.account_id,
            input_bucket=self.input_bucket,
            output_bucket=self.output_bucket,
            reports_bucket=self.reports_bucket,
            log_group=self.log_group.name,
            cluster=self.cluster.name,
            steps=tuple(
                StepSummary(name=s.name, input_bucket=s.input_bucket, output_bucket=s.output_bucket,
                            queue=s.queue.name, dead_letter_queue=s.dead_letter_queue.name,
                            failed_events_queue=s.failed_events.name, grow_queues=tuple(g.queue.name for g in s.grow),
                            task_family=s.task_definition.family, function=s.function.name, started_by=s.started_by)
                for s in self.steps
            ),
            layout=self.layout.to_document(),
        )
