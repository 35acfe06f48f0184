"""The desired resources of a pipeline, compiled from the resolved workflow with no AWS call.

Names are deterministic (`yunpipe-<pipeline>-<step>-<kind>`), and so are the ARNs AWS derives
from names; the queue URL is the one value AWS hands out, so it stays a `QueueUrl` marker
that the planner resolves. Account, region and network are inputs, resolved by the caller.
"""
import base64
import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import jinja2

from yunpipe.errors import InputError
from yunpipe.pipeline.graph import Layout, Placement, lay_out
from yunpipe.pipeline.state import PipelineSummary, StepSummary
from yunpipe.pipeline.target import Target, partition
from yunpipe.resolve import ResolvedStep, ResolvedWorkflow
from yunpipe.runtime import contract
from yunpipe.runtime.launcher_package import launcher_zip
from yunpipe.specs.workflow import WorkflowSpec

TAG_KEY = "yunpipe:pipeline"
# A tag on each task definition revision: the hash of what it was registered from.
SPEC_TAG_KEY = "yunpipe:spec"
ROLE_PATH = "/yunpipe/"
# One launch of a step at a time: concurrent launches would each see the same queue and
# start tasks for the same messages.
LAUNCHER_RESERVED_CONCURRENCY = 1
SCHEDULE = "rate(5 minutes)"
DLQ_RETENTION_SECONDS = 14 * 24 * 3600
S3_PERMISSION_SID = "yunpipe-s3"
EVENTS_PERMISSION_SID = "yunpipe-events"
SCHEDULE_PERMISSION_SID = "yunpipe-schedule"
CREDENTIAL_PARAMETERS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")
# The kinds of resource in the order they can be created, each after those it refers to:
# PipelineModel.resources() yields them in this order, the sweeper deletes in the reverse.
CREATION_ORDER = ("bucket", "log_group", "queue", "parameter", "role", "instance_profile", "launch_template",
                  "auto_scaling_group", "capacity_provider", "cluster", "task_definition", "function", "permission",
                  "notification", "bucket_events", "rule")
# The public SSM parameters naming the current ECS-optimized AMIs (x86-64): with the NVIDIA
# driver for GPU steps, Amazon Linux 2023 otherwise. Launch templates refer to them
# (resolve:ssm:), so each new instance boots the AMI that is current when it starts.
ECS_AMI_PARAMETERS = {
    True: "/aws/service/ecs/optimized-ami/amazon-linux-2/gpu/recommended/image_id",
    False: "/aws/service/ecs/optimized-ami/amazon-linux-2023/recommended/image_id",
}
# ECS managed scaling keeps the instances this full of tasks: 100 adds none beyond what waiting tasks need.
TARGET_CAPACITY = 100

# Fargate's valid (cpu units, memory MiB) combinations.
FARGATE_SIZES = (
    (256, (512, 1024, 2048)),
    (512, tuple(range(1024, 4097, 1024))),
    (1024, tuple(range(2048, 8193, 1024))),
    (2048, tuple(range(4096, 16385, 1024))),
    (4096, tuple(range(8192, 30721, 1024))),
    (8192, tuple(range(16384, 61441, 4096))),
    (16384, tuple(range(32768, 122881, 8192))),
)

# AWS name limits: (length, characters not allowed).
LIMITS = {
    "bucket": (63, r"[^a-z0-9-]"),
    "queue": (80, r"[^A-Za-z0-9_-]"),
    "function": (64, r"[^A-Za-z0-9_-]"),
    "role": (64, r"[^A-Za-z0-9_+=,.@-]"),
    "rule": (64, r"[^A-Za-z0-9_.-]"),
    "ecs": (255, r"[^A-Za-z0-9_-]"),
    "launch_template": (128, r"[^A-Za-z0-9_-]"),
    "started_by": (36, r"[^A-Za-z0-9_-]"),
}


def resource_name(kind: str, *parts: str) -> str:
    """`yunpipe-<parts>` within the AWS limits of `kind`; too long -> truncated + short hash."""
    limit, disallowed = LIMITS[kind]
    full = "-".join(("yunpipe",) + parts)
    name = re.sub(disallowed, "-", full.lower() if kind == "bucket" else full)
    if len(name) <= limit:
        return name
    digest = hashlib.sha256(full.encode()).hexdigest()[:8]
    return f"{name[:limit - 9].rstrip('-.')}-{digest}"


def fargate_size(vcpu: float, memory_mib: int) -> tuple[int, int] | None:
    """The smallest valid Fargate (cpu units, memory MiB) covering the request, or None."""
    for cpu, memories in FARGATE_SIZES:
        if cpu < vcpu * 1024:
            continue
        for memory in memories:
            if memory >= memory_mib:
                return cpu, memory
    return None


_TEMPLATES = jinja2.Environment(
    loader=jinja2.PackageLoader("yunpipe.templates", "iam"), undefined=jinja2.StrictUndefined, autoescape=False
)


def render_policy(template: str, **values: Any) -> dict:
    """A policy document from templates/iam/<template>.json.j2; always valid JSON."""
    return json.loads(_TEMPLATES.get_template(f"{template}.json.j2").render(**values))


class Named:
    """A resource whose name is its key in plans and in the pipeline's state."""

    name: str

    @property
    def key(self) -> str:
        return self.name


@dataclass(frozen=True)
class QueueUrl:
    """Stands for the URL of the queue named `queue`, known only once the queue exists."""

    queue: str


@dataclass(frozen=True)
class Bucket(Named):
    name: str
    purpose: str  # input, output, intermediate or reports
    tags: Mapping[str, str]
    kind = "bucket"


@dataclass(frozen=True)
class Queue(Named):
    name: str
    arn: str
    attributes: Mapping[str, str]
    tags: Mapping[str, str]
    kind = "queue"


@dataclass(frozen=True)
class LogGroup(Named):
    name: str
    retention_days: int
    tags: Mapping[str, str]
    kind = "log_group"


@dataclass(frozen=True)
class Parameter(Named):
    name: str
    arn: str
    variable: str
    value: str = field(repr=False)
    tags: Mapping[str, str] = field(default_factory=dict)
    kind = "parameter"


@dataclass(frozen=True)
class Role(Named):
    name: str
    arn: str
    trust_policy: Mapping[str, Any]
    policy: Mapping[str, Any]
    description: str
    tags: Mapping[str, str]
    kind = "role"
    policy_name = "yunpipe"


@dataclass(frozen=True)
class InstanceProfile(Named):
    """How EC2 instances get the instance role (the ECS agent's permissions)."""

    name: str
    arn: str
    role: str
    tags: Mapping[str, str]
    kind = "instance_profile"


@dataclass(frozen=True)
class LaunchTemplate(Named):
    name: str
    data: Mapping[str, Any]  # create_launch_template's LaunchTemplateData
    tags: Mapping[str, str]
    kind = "launch_template"


@dataclass(frozen=True)
class AutoScalingGroup(Named):
    """Instances of one type, from 0 up to `max_size`; ECS managed scaling sets how many."""

    name: str
    launch_template: str
    max_size: int
    subnets: tuple[str, ...]
    tags: Mapping[str, str]
    kind = "auto_scaling_group"


@dataclass(frozen=True)
class CapacityProvider(Named):
    name: str
    auto_scaling_group: str  # its name: ECS takes a name or an ARN, and the ARN holds a random id
    tags: Mapping[str, str]
    kind = "capacity_provider"


@dataclass(frozen=True)
class InstanceGroup:
    """The EC2 capacity of one instance type, for the steps that ask for it."""

    instance_type: str
    gpu: bool  # some step runs GPU tasks on it: the GPU AMI
    launch_template: LaunchTemplate
    auto_scaling_group: AutoScalingGroup
    capacity_provider: CapacityProvider


@dataclass(frozen=True)
class Cluster(Named):
    name: str
    arn: str
    tags: Mapping[str, str]
    # Associated only when a step runs on Fargate Spot or on EC2 instances: RunTask may name
    # only these providers.
    capacity_providers: tuple[str, ...] = ()
    kind = "cluster"


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
        # or not its URL is known yet.
        text = json.dumps(self.registration, sort_keys=True, default=lambda marker: marker.queue)
        return hashlib.sha256(text.encode()).hexdigest()[:32]


@dataclass(frozen=True)
class Function(Named):
    name: str
    arn: str
    role_arn: str
    environment: Mapping[str, Any]  # may hold QueueUrl
    code: bytes = field(repr=False)
    tags: Mapping[str, str] = field(default_factory=dict)
    kind = "function"

    @property
    def code_sha256(self) -> str:
        """As Lambda reports it: base64 of the zip's SHA-256."""
        return base64.b64encode(hashlib.sha256(self.code).digest()).decode()


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


@dataclass(frozen=True)
class Notification:
    bucket: str
    id: str
    function_arn: str
    prefix: str = ""
    suffix: str = ""
    kind = "notification"

    @property
    def key(self) -> str:
        return f"{self.bucket}/{self.id}"

    def entry(self) -> dict:
        """The LambdaFunctionConfigurations entry as S3 takes it."""
        entry: dict[str, Any] = {"Id": self.id, "LambdaFunctionArn": self.function_arn, "Events": ["s3:ObjectCreated:*"]}
        rules = [{"Name": name, "Value": value} for name, value in (("prefix", self.prefix), ("suffix", self.suffix)) if value]
        if rules:
            entry["Filter"] = {"Key": {"FilterRules": rules}}
        return entry


@dataclass(frozen=True)
class BucketEvents:
    """The bucket sends its events to EventBridge: how several steps each take what arrives in
    one bucket, which S3's own notifications refuse when their filters overlap."""

    bucket: str
    kind = "bucket_events"

    @property
    def key(self) -> str:
        return self.bucket


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


def object_created_pattern(bucket: str, prefix: str, suffix: str) -> str:
    """The event pattern of S3's "Object Created" events in `bucket` whose key matches the filter."""
    keys: list[dict[str, str]] = []
    if prefix and suffix:
        # Two filters on one field would match either; a wildcard matches both.
        keys = [{"wildcard": prefix.replace("*", "\\*") + "*" + suffix.replace("*", "\\*")}]
    elif prefix or suffix:
        keys = [{"prefix": prefix} if prefix else {"suffix": suffix}]
    detail: dict[str, Any] = {"bucket": {"name": [bucket]}}
    if keys:
        detail["object"] = {"key": keys}
    return json.dumps({"source": ["aws.s3"], "detail-type": ["Object Created"], "detail": detail}, sort_keys=True)


def container_name(step: str) -> str:
    """The step's container, also its log stream prefix (`<prefix>/<container>/<task id>`)."""
    return re.sub(r"[^A-Za-z0-9_-]", "-", step)


def notification_id(pipeline: str, step: str) -> str:
    # ':' never appears in pipeline names, so one pipeline's prefix never matches another's.
    return f"yunpipe:{pipeline}:{step}"


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
    # One per bucket the step reads: an S3 notification where it is the bucket's only reader,
    # else an EventBridge rule; each with the permission that lets it invoke the launcher.
    permissions: tuple[Permission, ...]
    notifications: tuple[Notification, ...]
    event_rules: tuple[Rule, ...]
    rule: Rule
    function_log_group: LogGroup
    started_by: str

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
    parameters: tuple[Parameter, ...]
    steps: tuple[StepModel, ...]
    launch_type: str
    source: str = ""  # the workflow file, for errors found while planning
    # Only for steps with an instance type: one role and profile for the pipeline's instances
    # (the ECS agent's permissions do not depend on the type), one group per instance type.
    instance_role: tuple[Role, ...] = ()
    instance_profile: tuple[InstanceProfile, ...] = ()
    instance_groups: tuple[InstanceGroup, ...] = ()

    def resources(self) -> tuple:
        """Every desired resource, in the order they can be created (kind by kind, in CREATION_ORDER)."""
        steps, groups = self.steps, self.instance_groups
        return (
            *self.buckets,
            self.log_group,
            *(s.function_log_group for s in steps),
            *(q for s in steps for q in (s.dead_letter_queue, s.queue)),
            *self.parameters,
            *(r for s in steps for r in (s.launcher_role, s.task_role, s.execution_role)),
            *self.instance_role,
            *self.instance_profile,
            *(g.launch_template for g in groups),
            *(g.auto_scaling_group for g in groups),
            *(g.capacity_provider for g in groups),
            self.cluster,
            *(s.task_definition for s in steps),
            *(s.function for s in steps),
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
                            task_family=s.task_definition.family, function=s.function.name, started_by=s.started_by)
                for s in self.steps
            ),
            layout=self.layout.to_document(),
        )


def _ecr_repository_arn(image: str, target: Target) -> str | None:
    """The ECR repository the image is pulled from (standard, FIPS or dual-stack endpoint), or
    None when it is not in ECR: the execution role then gets no ECR permission at all."""
    match = re.match(r"^(\d{12})\.dkr(?:\.ecr|\.ecr-fips|-ecr)\.([a-z0-9-]+)\.(?:amazonaws\.com(?:\.cn)?|on\.aws)/([^:@]+)",
                     image)
    if not match:
        return None
    account, region, repository = match.groups()
    return f"arn:{partition(region)}:ecr:{region}:{account}:repository/{repository}"


def build_model(workflow: ResolvedWorkflow, target: Target, use_user_credential: bool = False) -> PipelineModel:
    spec = workflow.spec
    pipeline = spec.name
    tags = {TAG_KEY: pipeline}
    log_group = LogGroup(f"/yunpipe/{pipeline}", spec.log_retention_days, tags)
    reports = resource_name("bucket", pipeline, "reports", target.account_id)
    cluster_name = resource_name("ecs", pipeline)
    spot = any(step.spec.capacity == "FARGATE_SPOT" for step in workflow.steps)
    instance_role, instance_profile, groups = instances(workflow, target, tags, cluster_name)
    cluster = Cluster(cluster_name, target.arn("ecs", f"cluster/{cluster_name}"), tags,
                      (contract.FARGATE_CAPACITY_PROVIDERS if spot else ())
                      + tuple(g.capacity_provider.name for g in groups))

    parameters: tuple[Parameter, ...] = ()
    if use_user_credential:
        parameters = tuple(
            Parameter(f"/yunpipe/{pipeline}/{variable.lower().replace('_', '-')}",
                      target.arn("ssm", f"parameter/yunpipe/{pipeline}/{variable.lower().replace('_', '-')}"),
                      variable, target.credentials[variable], tags)
            for variable in CREDENTIAL_PARAMETERS if target.credentials.get(variable)
        )

    # The account id keeps the intermediate buckets' global names from colliding with another account's pipeline.
    layout = lay_out(workflow, lambda step: resource_name("bucket", pipeline, step, "out", target.account_id))
    buckets = ([Bucket(spec.input_bucket, "input", tags)]
               + [Bucket(name, "intermediate", tags) for name in layout.intermediate_buckets]
               + [Bucket(spec.output_bucket, "output", tags), Bucket(reports, "reports", tags)])
    shared = [b for b in dict.fromkeys(s.bucket for p in layout.steps for s in p.sources) if layout.shared(b)]
    code = launcher_zip()
    steps = tuple(
        build_step(StepContext(spec, step, layout.step(step.name), layout, target, tags, log_group, cluster, reports,
                               parameters), code)
        for step in workflow.steps)
    return PipelineModel(pipeline, target, spec.input_bucket, spec.output_bucket, reports, tuple(buckets),
                         tuple(BucketEvents(b) for b in shared), layout, log_group, cluster, parameters, steps,
                         spec.launch_type, spec.source, instance_role, instance_profile, groups)


def capacity_provider_name(pipeline: str, instance_type: str) -> str:
    """The capacity provider (and its launch template and Auto Scaling group) of one instance type."""
    return resource_name("ecs", pipeline, "ec2", instance_type)


def instances(workflow: ResolvedWorkflow, target: Target, tags: Mapping[str, str],
              cluster: str) -> tuple[tuple[Role, ...], tuple[InstanceProfile, ...], tuple[InstanceGroup, ...]]:
    """The instance role and profile and one InstanceGroup per instance type the steps ask for
    (none at all when every step runs on Fargate)."""
    pipeline = workflow.spec.name
    types = sorted({step.instance_type for step in workflow.steps if step.instance_type})
    if not types:
        return (), (), ()
    role_name = resource_name("role", pipeline, "instance", "role")
    role = Role(role_name, target.arn("iam", f"role{ROLE_PATH}{role_name}", regional=False),
                render_policy("trust", service="ec2.amazonaws.com"),
                render_policy("instance", cluster_arn=target.arn("ecs", f"cluster/{cluster}"),
                              container_instances_arn=target.arn("ecs", f"container-instance/{cluster}/*")),
                f"yunpipe {pipeline}: ECS container instances", tags)
    profile = InstanceProfile(role_name, target.arn("iam", f"instance-profile{ROLE_PATH}{role_name}", regional=False),
                              role_name, tags)
    # The ECS agent joins the pipeline's cluster.
    user_data = base64.b64encode(f"#!/bin/bash\necho ECS_CLUSTER={cluster} >> /etc/ecs/ecs.config\n".encode()).decode()
    groups = []
    for instance_type in types:
        steps = [step for step in workflow.steps if step.instance_type == instance_type]
        gpu = any(step.gpu for step in steps)
        name = capacity_provider_name(pipeline, instance_type)
        data: dict[str, Any] = {
            "ImageId": f"resolve:ssm:{ECS_AMI_PARAMETERS[gpu]}",
            "InstanceType": instance_type,
            "IamInstanceProfile": {"Name": profile.name},
            "UserData": user_data,
            # IMDSv2 only, one hop: the host reaches it, task containers (a hop further) do not,
            # so tasks get their task role's credentials and never the instance role's.
            "MetadataOptions": {"HttpTokens": "required", "HttpEndpoint": "enabled", "HttpPutResponseHopLimit": 1},
        }
        if target.security_groups:
            data["SecurityGroupIds"] = list(target.security_groups)
        template = LaunchTemplate(resource_name("launch_template", pipeline, "ec2", instance_type), data, tags)
        # Each task needs at most one instance: the steps' caps bound the instances.
        group = AutoScalingGroup(name, template.name, sum(step.concurrency for step in steps), target.subnets, tags)
        groups.append(InstanceGroup(instance_type, gpu, template, group, CapacityProvider(name, group.name, tags)))
    return (role,), (profile,), tuple(groups)


@dataclass(frozen=True)
class StepContext:
    """One step's place in its pipeline, and the names and ARNs its resources refer to one
    another by (all derived from names, so each builder below can compute what it needs)."""

    spec: WorkflowSpec
    step: ResolvedStep
    placement: Placement
    layout: Layout
    target: Target
    tags: Mapping[str, str]
    log_group: LogGroup
    cluster: Cluster
    reports_bucket: str
    parameters: tuple[Parameter, ...]

    @property
    def pipeline(self) -> str:
        return self.spec.name

    @property
    def name(self) -> str:
        return self.step.name

    @property
    def output_bucket(self) -> str:
        return self.placement.output_bucket

    def resource_name(self, kind: str, *parts: str) -> str:
        return resource_name(kind, self.pipeline, self.name, *parts)

    def arn(self, service: str, resource: str, regional: bool = True) -> str:
        return self.target.arn(service, resource, regional)

    def bucket_arn(self, bucket: str) -> str:
        return f"arn:{self.target.partition}:s3:::{bucket}"

    def queue_name(self, kind: str = "queue") -> str:
        return self.resource_name("queue", kind)

    @property
    def family(self) -> str:
        return self.resource_name("ecs", "task")

    @property
    def function_name(self) -> str:
        return self.resource_name("function", "launcher")

    @property
    def function_arn(self) -> str:
        return self.arn("lambda", f"function:{self.function_name}")

    @property
    def rule_name(self) -> str:
        return self.resource_name("rule", "schedule")

    @property
    def started_by(self) -> str:
        return self.resource_name("started_by")

    def role_name(self, kind: str) -> str:
        return self.resource_name("role", kind, "role")

    def role_arn(self, kind: str) -> str:
        return self.arn("iam", f"role{ROLE_PATH}{self.role_name(kind)}", regional=False)


def build_step(ctx: StepContext, code: bytes) -> StepModel:
    queue, dead_letter_queue = step_queues(ctx)
    function_log_group = LogGroup(f"/aws/lambda/{ctx.function_name}", ctx.spec.log_retention_days, ctx.tags)
    rule = Rule(ctx.rule_name, ctx.arn("events", f"rule/{ctx.rule_name}"), ctx.function_arn, ctx.tags, SCHEDULE)
    notifications, event_rules, permissions = step_triggers(ctx)
    return StepModel(
        name=ctx.name,
        placement=ctx.placement,
        queue=queue,
        dead_letter_queue=dead_letter_queue,
        launcher_role=launcher_role(ctx, function_log_group),
        task_role=task_role(ctx),
        execution_role=execution_role(ctx),
        task_definition=task_definition(ctx),
        function=launcher_function(ctx, code),
        permissions=(*permissions, Permission(ctx.function_name, SCHEDULE_PERMISSION_SID, "events.amazonaws.com",
                                              rule.arn, ctx.target.account_id)),
        notifications=notifications,
        event_rules=event_rules,
        rule=rule,
        function_log_group=function_log_group,
        started_by=ctx.started_by,
    )


def step_queues(ctx: StepContext) -> tuple[Queue, Queue]:
    """The step's queue and its dead-letter queue, both encrypted."""
    sse = {"SqsManagedSseEnabled": "true"}
    dlq_arn = ctx.arn("sqs", ctx.queue_name("dlq"))
    dead_letter_queue = Queue(ctx.queue_name("dlq"), dlq_arn,
                              {**sse, "MessageRetentionPeriod": str(DLQ_RETENTION_SECONDS)}, ctx.tags)
    redrive = json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": ctx.step.max_receive_count})
    queue = Queue(ctx.queue_name(), ctx.arn("sqs", ctx.queue_name()),
                  {**sse, "VisibilityTimeout": str(ctx.spec.visibility_timeout_seconds), "RedrivePolicy": redrive},
                  ctx.tags)
    return queue, dead_letter_queue


def _role(ctx: StepContext, kind: str, service: str, template: str, what: str, **values: Any) -> Role:
    return Role(ctx.role_name(kind), ctx.role_arn(kind), render_policy("trust", service=service),
                render_policy(template, **values), f"yunpipe {ctx.pipeline}/{ctx.name}: {what}", ctx.tags)


def launcher_role(ctx: StepContext, function_log_group: LogGroup) -> Role:
    # A join's launcher looks for the key in each bucket it joins, and claims the join once.
    joins = [ctx.bucket_arn(s.bucket) + "/*" for s in ctx.placement.sources] if ctx.placement.join else []
    return _role(ctx, "launcher", "lambda.amazonaws.com", "launcher", "launcher Lambda",
                 join_object_arns=joins, claims_arn=ctx.bucket_arn(ctx.reports_bucket) + "/" + join_claims(ctx) + "*",
                 queue_arn=ctx.arn("sqs", ctx.queue_name()),
                 task_definition_arn=ctx.arn("ecs", f"task-definition/{ctx.family}:*"),
                 cluster_arn=ctx.cluster.arn, tasks_arn=ctx.arn("ecs", f"task/{ctx.cluster.name}/*"),
                 task_role_arn=ctx.role_arn("task"), execution_role_arn=ctx.role_arn("exec"),
                 log_group_arn=ctx.arn("logs", f"log-group:{function_log_group.name}"))


def task_role(ctx: StepContext) -> Role:
    sources = [ctx.bucket_arn(s.bucket) for s in ctx.placement.sources]
    return _role(ctx, "task", "ecs-tasks.amazonaws.com", "task", "ECS task",
                 input_bucket_arns=sources, gather=ctx.placement.gather,
                 output_arn=ctx.bucket_arn(ctx.output_bucket) + "/" + ctx.placement.output_prefix + "*",
                 reports_bucket_arn=ctx.bucket_arn(ctx.reports_bucket), queue_arn=ctx.arn("sqs", ctx.queue_name()))


def execution_role(ctx: StepContext) -> Role:
    return _role(ctx, "exec", "ecs-tasks.amazonaws.com", "execution", "ECS task execution",
                 repository_arn=_ecr_repository_arn(ctx.step.record.image_uri, ctx.target),
                 log_group_arn=ctx.arn("logs", f"log-group:{ctx.log_group.name}"),
                 parameter_arns=[p.arn for p in ctx.parameters])


def task_size(ctx: StepContext) -> tuple[int, int, str]:
    """Fargate's (cpu units, memory MiB) for the step's request (its own cpu/memory, else its
    algorithm's), and how it was rounded."""
    step = ctx.step
    # Who asked: the workflow when the step overrides, else the algorithm.
    asker = ctx.spec.source if (step.spec.cpu or step.spec.memory) else step.record.reference
    size = fargate_size(step.cpu, step.memory)
    if size is None:
        raise InputError(asker, "cpu/memory" if asker == ctx.spec.source else "CPU/memory",
                         f"expected at most 16 vCPU and 120 GiB (the largest Fargate task), got {step.cpu} vCPU "
                         f"and {step.memory} MiB")
    cpu, memory = size
    sizing = ""
    if (cpu, memory) != (step.cpu * 1024, step.memory):
        who = f"step {step.name}" if asker == ctx.spec.source else step.record.reference
        sizing = (f"rounded up from the {step.cpu:g} vCPU and {step.memory} MiB "
                  f"{who} asks for: Fargate offers only fixed cpu/memory pairs")
    return cpu, memory, sizing


# Jobs one task runs at once when its memory holds more than one; more would split a
# compute-heavy command's CPU too thinly.
MAX_DEFAULT_PARALLELISM = 4


def default_parallelism(cpu_units: int, task_memory: int, job_memory: int) -> int:
    """Jobs at once in a task of this size: one per vCPU, and as many as the task's memory holds
    at the step's memory (up to 4), whichever is more. A job mostly waits on S3 and SQS, so
    several overlap even on a fraction of a vCPU (bench/README.md: one 0.25 vCPU task running
    4 of the 128 MiB jobs did more than two running one each); memory is what they cannot
    share. Fargate's smallest sizes leave room: 0.25 vCPU comes with at least 512 MiB."""
    by_memory = min(MAX_DEFAULT_PARALLELISM, task_memory // max(1, job_memory))
    return max(1, cpu_units // 1024, by_memory)


def task_definition(ctx: StepContext) -> TaskDefinition:
    spec, step, algorithm = ctx.spec, ctx.step, ctx.step.record.spec
    # On EC2 the task takes what it asks for from its instance; Fargate offers fixed sizes.
    cpu, memory, sizing = (max(128, round(step.cpu * 1024)), step.memory, "") if step.instance_type else task_size(ctx)
    # The worker holds and extends messages for visibility_seconds, so a crashed worker's file
    # is visible again within it.
    worker = contract.WorkerConfig(queue_url="", output_bucket=ctx.output_bucket, output_prefix=ctx.placement.output_prefix,
                              report_bucket=ctx.reports_bucket, pipeline=ctx.pipeline, step=ctx.name,
                              max_receive_count=step.max_receive_count, idle_seconds=spec.idle_seconds,
                              visibility_seconds=spec.visibility_timeout_seconds,
                              timeout_seconds=step.spec.timeout_seconds or 0,
                              parallelism=step.spec.parallelism or default_parallelism(cpu, memory, step.memory),
                              algorithm_ref=step.record.reference, image=step.record.image_uri)
    environment = {
        **step.environment,
        **worker.to_env(),
        # Known once the queue exists: a marker the planner resolves.
        "YUNPIPE_QUEUE_URL": QueueUrl(ctx.queue_name()),
        "AWS_REGION": ctx.target.region,
    }
    container = container_name(ctx.name)
    definition: dict[str, Any] = {
        "name": container,
        "image": step.record.image_uri,
        "essential": True,
        # Also set on the container: EC2 tasks and moto size the container from it.
        "memory": memory,
        "environment": [{"name": k, "value": v} for k, v in sorted(environment.items())],
        "logConfiguration": {
            "logDriver": "awslogs",
            "options": {"awslogs-group": ctx.log_group.name, "awslogs-region": ctx.target.region,
                        "awslogs-stream-prefix": container},
        },
    }
    if algorithm.ports:
        definition["portMappings"] = [{"containerPort": p["port"], "protocol": p.get("protocol", "tcp")}
                                     for p in algorithm.ports]
    if ctx.parameters:
        definition["secrets"] = [{"name": p.variable, "valueFrom": p.arn} for p in ctx.parameters]
    if step.gpu:
        definition["resourceRequirements"] = [{"type": "GPU", "value": str(step.gpu)}]
    registration: dict[str, Any] = {
        "family": ctx.family,
        "taskRoleArn": ctx.role_arn("task"),
        "executionRoleArn": ctx.role_arn("exec"),
        # On EC2 instances, bridge: a task reaches S3 and SQS through its instance's public IP
        # (an awsvpc task on EC2 gets none, so it would need NAT), and the IMDS hop limit keeps
        # it from the instance role.
        "networkMode": "bridge" if step.instance_type else "awsvpc",
        "requiresCompatibilities": ["EC2"] if step.instance_type else [spec.launch_type],
        "cpu": str(cpu),
        "memory": str(memory),
        "containerDefinitions": [definition],
    }
    # Fargate's task storage; an EC2 task writes to its instance's disk.
    if step.ephemeral_storage_gib and not step.instance_type:
        registration["ephemeralStorage"] = {"sizeInGiB": step.ephemeral_storage_gib}
    where = f"on {step.instance_type} instances" + (f", {step.gpu} GPU(s)" if step.gpu else "") if step.instance_type else ""
    return TaskDefinition(ctx.family, registration, ctx.tags, sizing, where)


def launcher_function(ctx: StepContext, code: bytes) -> Function:
    placement = ctx.placement
    launch = contract.LauncherConfig(pipeline=ctx.pipeline, step=ctx.name, queue_url="", cluster=ctx.cluster.name,
                             task_definition=ctx.family, started_by=ctx.started_by, concurrency=ctx.step.concurrency,
                             files_per_task=ctx.step.spec.files_per_task, launch_type=ctx.spec.launch_type,
                             capacity_provider=step_capacity_provider(ctx),
                             subnets=ctx.target.subnets,
                             security_groups=ctx.target.security_groups, assign_public_ip="ENABLED",
                             join=tuple(contract.JoinInput(s.step, s.bucket) for s in placement.sources) if placement.join else (),
                             claim_bucket=ctx.reports_bucket if placement.join else "", gather=placement.gather)
    return Function(ctx.function_name, ctx.function_arn, ctx.role_arn("launcher"),
                    {**launch.to_env(), "YUNPIPE_QUEUE_URL": QueueUrl(ctx.queue_name())}, code, ctx.tags)


def step_capacity_provider(ctx: StepContext) -> str:
    """The capacity provider RunTask names: the instance type's, Fargate Spot, or "" for
    on-demand Fargate, which keeps the plain launch type (no capacity provider needed)."""
    if ctx.step.instance_type:
        return capacity_provider_name(ctx.pipeline, ctx.step.instance_type)
    return "FARGATE_SPOT" if ctx.step.spec.capacity == "FARGATE_SPOT" else ""


def join_claims(ctx: StepContext) -> str:
    """The key prefix under which the launcher claims a step's joins (the runtime contract's)."""
    return f"joins/{ctx.pipeline}/{ctx.name}/"


def step_triggers(ctx: StepContext) -> tuple[tuple[Notification, ...], tuple[Rule, ...], tuple[Permission, ...]]:
    """What tells the launcher about new objects in each bucket the step reads: S3's own
    notification where the step is the bucket's only reader, else an EventBridge rule. A gather
    step without a marker has none: it runs on `yunpipe submit --gather`."""
    placement = ctx.placement
    if placement.gather and not placement.marker:
        return (), (), ()
    notifications, rules, permissions = [], [], []
    for source in placement.sources:
        # One source keeps the names of a chain's step; a join's sources are told apart by step.
        suffix = [source.step] if placement.join else []
        if ctx.layout.shared(source.bucket):
            name = ctx.resource_name("rule", "from", source.step)
            rule = Rule(name, ctx.arn("events", f"rule/{name}"), ctx.function_arn, ctx.tags,
                        pattern=object_created_pattern(source.bucket, placement.prefix, placement.suffix))
            rules.append(rule)
            permissions.append(Permission(ctx.function_name, "-".join([EVENTS_PERMISSION_SID, source.step]),
                                          "events.amazonaws.com", rule.arn, ctx.target.account_id))
        else:
            notifications.append(Notification(source.bucket, notification_id(ctx.pipeline, ctx.name), ctx.function_arn,
                                              placement.prefix, placement.suffix))
            permissions.append(Permission(ctx.function_name, "-".join([S3_PERMISSION_SID, *suffix]), "s3.amazonaws.com",
                                          ctx.bucket_arn(source.bucket), ctx.target.account_id))
    return tuple(notifications), tuple(rules), tuple(permissions)
