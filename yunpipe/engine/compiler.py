"""The compiler: a resolved workflow and its target in, the pipeline's desired resources out
(a PipelineModel), with no AWS call.

Names are deterministic (`yunpipe-<pipeline>-<step>-<kind>`), and so are the ARNs AWS derives
from names; the queue URL is the one value AWS hands out, so it stays a `QueueUrl` marker
that the planner resolves. Account, region and network are inputs, resolved by the caller.
"""
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from yunpipe.aws.ecr import ecr_image
from yunpipe.engine import grow, limits, notifications
from yunpipe.engine.accounting import accounting_arns, accounting_descriptor
from yunpipe.engine.graph import Layout, Placement, lay_out
from yunpipe.engine.instances import capacity_provider_name, instances, service_linked_roles
from yunpipe.engine.kinds.bucket import Bucket
from yunpipe.engine.kinds.bucket_events import BucketEvents
from yunpipe.engine.kinds.cluster import Cluster
from yunpipe.engine.kinds.cluster_capacity_providers import ClusterCapacityProviders
from yunpipe.engine.kinds.event_invoke_config import EventInvokeConfig
from yunpipe.engine.kinds.function import Function
from yunpipe.engine.kinds.log_group import LogGroup
from yunpipe.engine.kinds.notification import Notification
from yunpipe.engine.kinds.parameter import Parameter
from yunpipe.engine.kinds.permission import Permission
from yunpipe.engine.kinds.queue import Queue
from yunpipe.engine.kinds.role import Role
from yunpipe.engine.kinds.rule import Rule
from yunpipe.engine.kinds.task_definition import TaskDefinition
from yunpipe.engine.model import (
    ROLE_PATH,
    STEP_TAG_KEY,
    TAG_KEY,
    GrowLevel,
    PipelineModel,
    QueueUrl,
    StepModel,
    container_name,
    notification_id,
    resource_name,
)
from yunpipe.engine.network import INSTANCE_SERVICES, TASK_SERVICES, SubnetReach, check_subnets, step_public_ip
from yunpipe.engine.policies import render_policy
from yunpipe.engine.sizing import default_parallelism, fargate_size
from yunpipe.engine.target import InstanceOffer, Target, partition
from yunpipe.errors import InputError
from yunpipe.resolve import ResolvedStep, ResolvedWorkflow
from yunpipe.runtime import contract
from yunpipe.runtime.launcher_package import launcher_zip
from yunpipe.specs.workflow import WorkflowSpec

SCHEDULE = "rate(5 minutes)"
DLQ_RETENTION_SECONDS = 14 * 24 * 3600
S3_PERMISSION_SID = "yunpipe-s3"
EVENTS_PERMISSION_SID = "yunpipe-events"
SCHEDULE_PERMISSION_SID = "yunpipe-schedule"
CREDENTIAL_PARAMETERS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")
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


def _ecr_repository_arn(image: str, target: Target) -> str | None:
    """The ECR repository the image is pulled from, or None when it is not in ECR: the
    execution role then gets no ECR permission at all."""
    found = ecr_image(image)
    if found is None:
        return None
    return f"arn:{partition(found.region)}:ecr:{found.region}:{found.account}:repository/{found.repository}"


def build_model(workflow: ResolvedWorkflow, target: Target, use_user_credential: bool = False,
                offers: Mapping[str, InstanceOffer] | None = None,
                network: Sequence[SubnetReach] | None = None) -> PipelineModel:
    """The pipeline's resources; `offers` (target.resolve_instance_offers) says where and how big
    each instance type is, `network` (network.subnet_reach of the target's subnets) what each
    subnet reaches: without them (a dry-run offline, the first check of the files) every
    subnet is used, tasks get a public IP unless the workflow says otherwise, and nothing is
    checked against the type or the network."""
    spec = workflow.spec
    pipeline = spec.name
    # The one place every resource's tags come from: the workflow's own (specs.workflow.check_tags),
    # then yunpipe's; each step's resources add the step's (StepContext.tags).
    tags = {**spec.tags, TAG_KEY: pipeline}
    log_group = LogGroup(f"/yunpipe/{pipeline}", spec.log_retention_days, tags)
    reports = resource_name("bucket", pipeline, "reports", target.account_id)
    cluster_name = resource_name("ecs", pipeline)
    spot = any(step.spec.capacity == "FARGATE_SPOT" for step in workflow.steps)
    instance_role, instance_profile, groups = instances(workflow, target, tags, cluster_name, offers or {})
    cluster = Cluster(cluster_name, target.arn("ecs", f"cluster/{cluster_name}"), tags)
    providers = (contract.FARGATE_CAPACITY_PROVIDERS if spot else ()) + tuple(g.capacity_provider.name for g in groups)
    cluster_providers = (ClusterCapacityProviders(cluster_name, providers),) if providers else ()

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
    check_subnets(workflow, target, network)
    topic_arn = notifications.topic_arn(spec, target)
    steps = tuple(
        build_step(StepContext(spec, step, layout.step(step.name), layout, target, {**tags, STEP_TAG_KEY: step.name},
                               log_group, cluster, reports,
                               parameters, step_public_ip(workflow, index, target, network or (), offers or {},
                                                          reach_needs(step, target, parameters)), topic_arn), code)
        for index, step in enumerate(workflow.steps))
    for index, (resolved, step_model) in enumerate(zip(workflow.steps, steps, strict=True)):
        limits.check_step(step_model, resolved, spec.source, f"{spec.steps_field}[{index}]", target)
    topic, subscriptions = notifications.resources(spec, target, [r for s in steps for r in (s.task_role, s.launcher_role)],
                                                   tags)
    return PipelineModel(pipeline, target, spec.input_bucket, spec.output_bucket, reports, tuple(buckets),
                         tuple(BucketEvents(b) for b in shared), layout, log_group, cluster, cluster_providers,
                         parameters, steps, spec.launch_type, spec.source, instance_role, instance_profile, groups,
                         service_linked_roles(spot, bool(groups)), topic, subscriptions,
                         (accounting_descriptor(workflow, target, reports, steps, topic_arn),))


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
    # Its Fargate tasks get a public IP (step_public_ip).
    public_ip: bool = True
    # The pipeline's topic, where its workers and launcher announce runs ("" without `notify`).
    topic_arn: str = ""

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
    def failed_events_name(self) -> str:
        """The launcher's on-failure destination."""
        return self.queue_name("launcher-failed")

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


def reach_needs(step: ResolvedStep, target: Target, parameters: Sequence[Parameter]) -> tuple[str, ...]:
    """What a step's tasks reach from their subnets (network.py): the image's registry (ECR's
    endpoints, or its host outside AWS), S3, SQS, Logs, and where their secrets are; on EC2
    instances, ECS itself for the agent."""
    image = step.record.image_uri
    needs = list(TASK_SERVICES) if _ecr_repository_arn(image, target) else [_registry_host(image), "s3", "sqs", "logs"]
    if parameters or any(not s.secrets_manager for s in step.secrets):
        needs.append("ssm")
    if any(s.secrets_manager for s in step.secrets):
        needs.append("secretsmanager")
    if step.instance_type:
        needs += INSTANCE_SERVICES
    return tuple(needs)


def _registry_host(image: str) -> str:
    first = image.split("/", 1)[0]
    return first if "/" in image and ("." in first or ":" in first or first == "localhost") else "docker.io"


def build_step(ctx: StepContext, code: bytes) -> StepModel:
    queue, dead_letter_queue = step_queues(ctx)
    base = task_definition(ctx)
    size = base.registration
    definition, levels = grow.levels(ctx, base, dead_letter_queue.arn, int(size["cpu"]), int(size["memory"]))
    failed_events = failed_events_queue(ctx)
    function_log_group = LogGroup(f"/aws/lambda/{ctx.function_name}", ctx.spec.log_retention_days, ctx.tags)
    rule = Rule(ctx.rule_name, ctx.arn("events", f"rule/{ctx.rule_name}"), ctx.function_arn, ctx.tags, SCHEDULE)
    notifications, event_rules, permissions = step_triggers(ctx)
    return StepModel(
        name=ctx.name,
        placement=ctx.placement,
        queue=queue,
        dead_letter_queue=dead_letter_queue,
        launcher_role=launcher_role(ctx, function_log_group, levels),
        task_role=task_role(ctx, levels),
        execution_role=execution_role(ctx),
        task_definition=definition,
        function=launcher_function(ctx, code, levels),
        failed_events=failed_events,
        event_invoke_config=EventInvokeConfig(ctx.function_name, failed_events.arn),
        permissions=(*permissions, Permission(ctx.function_name, SCHEDULE_PERMISSION_SID, "events.amazonaws.com",
                                              rule.arn, ctx.target.account_id)),
        notifications=notifications,
        event_rules=event_rules,
        rule=rule,
        function_log_group=function_log_group,
        started_by=ctx.started_by,
        grow=levels,
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


def failed_events_queue(ctx: StepContext) -> Queue:
    """The launcher's on-failure destination, encrypted; a record waits there for up to 14 days
    (the scheduled run takes it within minutes)."""
    name = ctx.failed_events_name
    return Queue(name, ctx.arn("sqs", name),
                 {"SqsManagedSseEnabled": "true", "MessageRetentionPeriod": str(DLQ_RETENTION_SECONDS)}, ctx.tags)


def _role(ctx: StepContext, kind: str, service: str, template: str, what: str, **values: Any) -> Role:
    return Role(ctx.role_name(kind), ctx.role_arn(kind), render_policy("trust", service=service),
                render_policy(template, **values), f"yunpipe {ctx.pipeline}/{ctx.name}: {what}", ctx.tags)


def launcher_role(ctx: StepContext, function_log_group: LogGroup, levels: tuple[GrowLevel, ...] = ()) -> Role:
    # A join's launcher looks for the key in each bucket it joins, and claims the join once.
    joins = [ctx.bucket_arn(s.bucket) + "/*" for s in ctx.placement.sources] if ctx.placement.join else []
    return _role(ctx, "launcher", "lambda.amazonaws.com", "launcher", "launcher Lambda", **accounting_arns(ctx),
                 join_object_arns=joins, claims_arn=ctx.bucket_arn(ctx.reports_bucket) + "/" + join_claims(ctx) + "*",
                 queue_arn=ctx.arn("sqs", ctx.queue_name()),
                 failed_events_arn=ctx.arn("sqs", ctx.failed_events_name),
                 task_definition_arns=[ctx.arn("ecs", f"task-definition/{family}:*") for family in
                                       (ctx.family, *(g.task_definition.family for g in levels))],
                 grow_queue_arns=[g.queue.arn for g in levels],
                 cluster_arn=ctx.cluster.arn, tasks_arn=ctx.arn("ecs", f"task/{ctx.cluster.name}/*"),
                 task_role_arn=ctx.role_arn("task"), execution_role_arn=ctx.role_arn("exec"),
                 log_group_arn=ctx.arn("logs", f"log-group:{function_log_group.name}"), topic_arn=ctx.topic_arn)


def task_role(ctx: StepContext, levels: tuple[GrowLevel, ...] = ()) -> Role:
    sources = [ctx.bucket_arn(s.bucket) for s in ctx.placement.sources]
    return _role(ctx, "task", "ecs-tasks.amazonaws.com", "task", "ECS task", **accounting_arns(ctx),
                 input_bucket_arns=sources, gather=ctx.placement.gather,
                 output_arn=ctx.bucket_arn(ctx.output_bucket) + "/" + ctx.placement.output_prefix + "*",
                 # Skipping what is done reads the results' provenance, and lists a folder result.
                 output_bucket_arn="" if ctx.step.spec.force else ctx.bucket_arn(ctx.output_bucket),
                 output_prefix=ctx.placement.output_prefix,
                 # Every size's queue: drained, a stopped task's files handed back, a job out of memory sent on.
                 queue_arns=[ctx.arn("sqs", ctx.queue_name()), *(g.queue.arn for g in levels)],
                 dead_letter_queue_arn=ctx.arn("sqs", ctx.queue_name("dlq")),
                 launcher_arn=ctx.function_arn if levels else "",
                 topic_arn=ctx.topic_arn)


def secret_arns(ctx: StepContext, secrets_manager: bool) -> list[str]:
    """The SSM parameters (or Secrets Manager secrets) the step's own secrets name, each once."""
    target = ctx.target
    return sorted({s.resource_arn(target.partition, target.region, target.account_id)
                   for s in ctx.step.secrets if s.secrets_manager == secrets_manager})


def execution_role(ctx: StepContext) -> Role:
    # ECS reads a task's secrets with its execution role: exactly those, and nothing else.
    return _role(ctx, "exec", "ecs-tasks.amazonaws.com", "execution", "ECS task execution",
                 repository_arn=_ecr_repository_arn(ctx.step.record.image_uri, ctx.target),
                 log_group_arn=ctx.arn("logs", f"log-group:{ctx.log_group.name}"),
                 parameter_arns=[p.arn for p in ctx.parameters],
                 secret_parameter_arns=secret_arns(ctx, False), secret_arns=secret_arns(ctx, True))


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
                              algorithm_ref=step.record.reference, image=step.record.image_uri,
                              task_cpu=cpu, task_memory=memory, capacity=task_capacity(ctx),
                              accounting=spec.accounting, quiet_seconds=spec.run_quiet_seconds,
                              topic_arn=ctx.topic_arn, force=step.spec.force)
    environment = {
        **step.environment,
        **worker.to_env(),
        # Known once the queues exist: markers the planner resolves.
        contract.QUEUE_URL_VARIABLE: QueueUrl(ctx.queue_name()),
        contract.DEAD_LETTER_URL_VARIABLE: QueueUrl(ctx.queue_name("dlq")),
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
    # References only: ECS reads the values when a task starts (-uu's keys, then the step's own).
    secrets = [{"name": p.variable, "valueFrom": p.arn} for p in ctx.parameters] + [
        {"name": s.name, "valueFrom": s.value_from} for s in step.secrets]
    if secrets:
        definition["secrets"] = secrets
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


def launcher_function(ctx: StepContext, code: bytes, levels: tuple[GrowLevel, ...] = ()) -> Function:
    placement = ctx.placement
    launch = contract.LauncherConfig(pipeline=ctx.pipeline, step=ctx.name, queue_url="", cluster=ctx.cluster.name,
                             task_definition=ctx.family, started_by=ctx.started_by, concurrency=ctx.step.concurrency,
                             files_per_task=ctx.step.spec.files_per_task, launch_type=ctx.spec.launch_type,
                             capacity_provider=step_capacity_provider(ctx),
                             subnets=ctx.target.subnets,
                             security_groups=ctx.target.security_groups,
                             assign_public_ip="ENABLED" if ctx.public_ip else "DISABLED",
                             join=tuple(contract.JoinInput(s.step, s.bucket) for s in placement.sources) if placement.join else (),
                             claim_bucket=ctx.reports_bucket if placement.join else "", gather=placement.gather,
                             report_bucket=ctx.reports_bucket, accounting=ctx.spec.accounting,
                             topic_arn=ctx.topic_arn, grow=grow.launcher_paths(levels))
    return Function(ctx.function_name, ctx.function_arn, ctx.role_arn("launcher"),
                    {**launch.to_env(), **grow.launcher_environment(levels),
                     contract.QUEUE_URL_VARIABLE: QueueUrl(ctx.queue_name()),
                     contract.FAILED_EVENTS_URL_VARIABLE: QueueUrl(ctx.failed_events_name)}, code, ctx.tags)


def step_capacity_provider(ctx: StepContext) -> str:
    """The capacity provider RunTask names: the instance type's, Fargate Spot, or "" for
    on-demand Fargate, which keeps the plain launch type (no capacity provider needed)."""
    if ctx.step.instance_type:
        return capacity_provider_name(ctx.pipeline, ctx.step.instance_type)
    return "FARGATE_SPOT" if ctx.step.spec.capacity == "FARGATE_SPOT" else ""


def task_capacity(ctx: StepContext) -> str:
    """What a step's tasks are billed as (accounting's price table): FARGATE, FARGATE_SPOT, or the
    capacity provider of the EC2 instances they run on (EC2 for the plain EC2 launch type)."""
    return step_capacity_provider(ctx) or ("EC2" if ctx.spec.launch_type == "EC2" else "FARGATE")


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
