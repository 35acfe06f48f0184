"""The desired resources of a pipeline, compiled from the resolved workflow with no AWS call.

Names are deterministic (`yunpipe-<pipeline>-<step>-<kind>`), and so are the ARNs AWS derives
from names; the queue URL is the one value AWS hands out, so it stays a `QueueUrl` marker
that the planner resolves. Account, region and network are inputs, resolved by the caller.
"""
import base64
import hashlib
import json
import re
from dataclasses import dataclass, field
from typing import Any, Mapping

import jinja2

from yunpipe.errors import InputError
from yunpipe.lambda_src import launcher
from yunpipe.lambda_src.package import launcher_zip
from yunpipe.pipeline.state import PipelineSummary, StepSummary
from yunpipe.pipeline.target import Target, partition
from yunpipe.runtime import runscript
from yunpipe.specs.workflow import ResolvedWorkflow

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
SCHEDULE_PERMISSION_SID = "yunpipe-schedule"
CREDENTIAL_PARAMETERS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")
# The kinds of resource in the order they can be created, each after those it refers to:
# PipelineModel.resources() yields them in this order, the sweeper deletes in the reverse.
CREATION_ORDER = ("bucket", "log_group", "queue", "parameter", "role", "cluster", "task_definition", "function",
                  "permission", "notification", "rule")

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
class Cluster(Named):
    name: str
    arn: str
    tags: Mapping[str, str]
    kind = "cluster"


@dataclass(frozen=True)
class TaskDefinition:
    family: str
    registration: Mapping[str, Any]  # register_task_definition params; may hold QueueUrl
    tags: Mapping[str, str]
    # How the algorithm's cpu/memory request became a size Fargate offers ("" when exact).
    sizing: str = ""
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
class Rule(Named):
    name: str
    arn: str
    schedule: str
    function_arn: str
    tags: Mapping[str, str]
    kind = "rule"
    target_id = "launcher"


def container_name(step: str) -> str:
    """The step's container, also its log stream prefix (`<prefix>/<container>/<task id>`)."""
    return re.sub(r"[^A-Za-z0-9_-]", "-", step)


def notification_id(pipeline: str, step: str) -> str:
    # ':' never appears in pipeline names, so one pipeline's prefix never matches another's.
    return f"yunpipe:{pipeline}:{step}"


@dataclass(frozen=True)
class StepModel:
    name: str
    input_bucket: str
    output_bucket: str
    queue: Queue
    dead_letter_queue: Queue
    launcher_role: Role
    task_role: Role
    execution_role: Role
    task_definition: TaskDefinition
    function: Function
    s3_permission: Permission
    schedule_permission: Permission
    notification: Notification
    rule: Rule
    function_log_group: LogGroup
    started_by: str


@dataclass(frozen=True)
class PipelineModel:
    name: str
    target: Target
    input_bucket: str
    output_bucket: str
    reports_bucket: str
    buckets: tuple[Bucket, ...]
    log_group: LogGroup
    cluster: Cluster
    parameters: tuple[Parameter, ...]
    steps: tuple[StepModel, ...]
    launch_type: str
    source: str = ""  # the workflow file, for errors found while planning

    def resources(self) -> tuple:
        """Every desired resource, in the order they can be created (kind by kind, in CREATION_ORDER)."""
        steps = self.steps
        return (
            *self.buckets,
            self.log_group,
            *(s.function_log_group for s in steps),
            *(q for s in steps for q in (s.dead_letter_queue, s.queue)),
            *self.parameters,
            *(r for s in steps for r in (s.launcher_role, s.task_role, s.execution_role)),
            self.cluster,
            *(s.task_definition for s in steps),
            *(s.function for s in steps),
            *(p for s in steps for p in (s.s3_permission, s.schedule_permission)),
            *(s.notification for s in steps),
            *(s.rule for s in steps),
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


def _step_buckets(workflow: ResolvedWorkflow, account_id: str) -> list[tuple[str, str]]:
    """(input, output) bucket of each step: a sequence chains through intermediate buckets."""
    spec = workflow.spec
    names = [spec.input_bucket]
    for step in workflow.steps[:-1]:
        # The account id keeps these global names from colliding with another account's pipeline.
        names.append(resource_name("bucket", spec.name, step.name, "out", account_id))
    names.append(spec.output_bucket)
    return list(zip(names, names[1:]))


def build_model(workflow: ResolvedWorkflow, target: Target, use_user_credential: bool = False) -> PipelineModel:
    spec = workflow.spec
    pipeline = spec.name
    tags = {TAG_KEY: pipeline}
    log_group = LogGroup(f"/yunpipe/{pipeline}", spec.log_retention_days, tags)
    log_group_arn = target.arn("logs", f"log-group:{log_group.name}")
    reports = resource_name("bucket", pipeline, "reports", target.account_id)
    cluster_name = resource_name("ecs", pipeline)
    cluster = Cluster(cluster_name, target.arn("ecs", f"cluster/{cluster_name}"), tags)

    parameters = ()
    if use_user_credential:
        parameters = tuple(
            Parameter(f"/yunpipe/{pipeline}/{variable.lower().replace('_', '-')}",
                      target.arn("ssm", f"parameter/yunpipe/{pipeline}/{variable.lower().replace('_', '-')}"),
                      variable, target.credentials[variable], tags)
            for variable in CREDENTIAL_PARAMETERS if target.credentials.get(variable)
        )

    step_buckets = _step_buckets(workflow, target.account_id)
    purposes = {spec.input_bucket: "input", spec.output_bucket: "output", reports: "reports"}
    buckets = [Bucket(name, purposes.get(name, "intermediate"), tags)
               for name in [pair[0] for pair in step_buckets] + [spec.output_bucket, reports]]
    code = launcher_zip()
    steps = []
    for index, (step, (input_bucket, output_bucket)) in enumerate(zip(workflow.steps, step_buckets)):
        steps.append(_build_step(workflow, index, step, input_bucket, output_bucket, target, tags, log_group,
                                 log_group_arn, cluster, reports, parameters, code))
    return PipelineModel(pipeline, target, spec.input_bucket, spec.output_bucket, reports, tuple(buckets),
                         log_group, cluster, parameters, tuple(steps), spec.launch_type, spec.source)


def _build_step(workflow, index, step, input_bucket, output_bucket, target, tags, log_group, log_group_arn,
                cluster, reports, parameters, code) -> StepModel:
    spec = workflow.spec
    pipeline = spec.name
    algorithm = step.record.spec
    size = fargate_size(algorithm.cpu, algorithm.memory_suggested)
    if size is None:
        raise InputError(step.record.reference, "CPU/memory",
                         f"expected at most 16 vCPU and 120 GiB (the largest Fargate task), got {algorithm.cpu} vCPU "
                         f"and {algorithm.memory_suggested} MiB")
    cpu, memory = size
    sizing = ""
    if (cpu, memory) != (algorithm.cpu * 1024, algorithm.memory_suggested):
        sizing = (f"rounded up from the {algorithm.cpu:g} vCPU and {algorithm.memory_suggested} MiB "
                  f"{step.record.reference} asks for: Fargate offers only fixed cpu/memory pairs")

    def arn_of(service, resource, regional=True):
        return target.arn(service, resource, regional)

    queue_name = resource_name("queue", pipeline, step.name, "queue")
    dlq_name = resource_name("queue", pipeline, step.name, "dlq")
    dlq_arn = arn_of("sqs", dlq_name)
    queue_arn = arn_of("sqs", queue_name)
    sse = {"SqsManagedSseEnabled": "true"}
    dead_letter_queue = Queue(dlq_name, dlq_arn, {**sse, "MessageRetentionPeriod": str(DLQ_RETENTION_SECONDS)}, tags)
    redrive = json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": step.max_receive_count})
    queue = Queue(queue_name, queue_arn,
                  {**sse, "VisibilityTimeout": str(spec.visibility_timeout_seconds), "RedrivePolicy": redrive}, tags)

    family = resource_name("ecs", pipeline, step.name, "task")
    function_name = resource_name("function", pipeline, step.name, "launcher")
    function_arn = arn_of("lambda", f"function:{function_name}")
    function_log_group = LogGroup(f"/aws/lambda/{function_name}", spec.log_retention_days, tags)
    role_names = {kind: resource_name("role", pipeline, step.name, kind, "role") for kind in ("launcher", "task", "exec")}
    role_arns = {kind: arn_of("iam", f"role{ROLE_PATH}{name}", regional=False) for kind, name in role_names.items()}

    def role(kind, service, template, description, **values):
        return Role(role_names[kind], role_arns[kind], render_policy("trust", service=service),
                    render_policy(template, **values), description, tags)

    launcher_role = role(
        "launcher", "lambda.amazonaws.com", "launcher", f"yunpipe {pipeline}/{step.name}: launcher Lambda",
        queue_arn=queue_arn, task_definition_arn=arn_of("ecs", f"task-definition/{family}:*"),
        cluster_arn=cluster.arn, tasks_arn=arn_of("ecs", f"task/{cluster.name}/*"), task_role_arn=role_arns["task"],
        execution_role_arn=role_arns["exec"],
        log_group_arn=arn_of("logs", f"log-group:{function_log_group.name}"))
    bucket_arn = f"arn:{target.partition}:s3:::"
    task_role = role(
        "task", "ecs-tasks.amazonaws.com", "task", f"yunpipe {pipeline}/{step.name}: ECS task",
        input_bucket_arn=bucket_arn + input_bucket, output_bucket_arn=bucket_arn + output_bucket,
        reports_bucket_arn=bucket_arn + reports, queue_arn=queue_arn)
    execution_role = role(
        "exec", "ecs-tasks.amazonaws.com", "execution", f"yunpipe {pipeline}/{step.name}: ECS task execution",
        repository_arn=_ecr_repository_arn(step.record.image_uri, target), log_group_arn=log_group_arn,
        parameter_arns=[p.arn for p in parameters])

    # The worker holds and extends messages for visibility_seconds, so a crashed worker's file
    # is visible again within it.
    worker = runscript.Config(queue_url="", output_bucket=output_bucket, report_bucket=reports, pipeline=pipeline,
                              step=step.name, max_receive_count=step.max_receive_count,
                              idle_seconds=spec.idle_seconds, visibility_seconds=spec.visibility_timeout_seconds)
    environment = {
        **step.environment,
        **worker.to_env(),
        # Known once the queue exists: a marker the planner resolves.
        "YUNPIPE_QUEUE_URL": QueueUrl(queue_name),
        "AWS_REGION": target.region,
    }
    container = container_name(step.name)
    definition: dict[str, Any] = {
        "name": container,
        "image": step.record.image_uri,
        "essential": True,
        # Also set on the container: EC2 tasks and moto size the container from it.
        "memory": memory,
        "environment": [{"name": k, "value": v} for k, v in sorted(environment.items())],
        "logConfiguration": {
            "logDriver": "awslogs",
            "options": {"awslogs-group": log_group.name, "awslogs-region": target.region,
                        "awslogs-stream-prefix": container},
        },
    }
    if algorithm.ports:
        definition["portMappings"] = [{"containerPort": p["port"], "protocol": p.get("protocol", "tcp")}
                                     for p in algorithm.ports]
    if parameters:
        definition["secrets"] = [{"name": p.variable, "valueFrom": p.arn} for p in parameters]
    registration = {
        "family": family,
        "taskRoleArn": role_arns["task"],
        "executionRoleArn": role_arns["exec"],
        "networkMode": "awsvpc",
        "requiresCompatibilities": [spec.launch_type],
        "cpu": str(cpu),
        "memory": str(memory),
        "containerDefinitions": [definition],
    }
    if step.ephemeral_storage_gib:
        registration["ephemeralStorage"] = {"sizeInGiB": step.ephemeral_storage_gib}
    started_by = resource_name("started_by", pipeline, step.name)
    launch = launcher.Config(pipeline=pipeline, step=step.name, queue_url="", cluster=cluster.name,
                             task_definition=family, started_by=started_by, concurrency=step.concurrency,
                             launch_type=spec.launch_type, subnets=target.subnets,
                             security_groups=target.security_groups, assign_public_ip="ENABLED")
    function = Function(function_name, function_arn, role_arns["launcher"],
                        {**launch.to_env(), "YUNPIPE_QUEUE_URL": QueueUrl(queue_name)}, code, tags)
    rule_name = resource_name("rule", pipeline, step.name, "schedule")
    rule_arn = arn_of("events", f"rule/{rule_name}")
    return StepModel(
        name=step.name,
        input_bucket=input_bucket,
        output_bucket=output_bucket,
        queue=queue,
        dead_letter_queue=dead_letter_queue,
        launcher_role=launcher_role,
        task_role=task_role,
        execution_role=execution_role,
        task_definition=TaskDefinition(family, registration, tags, sizing),
        function=function,
        s3_permission=Permission(function_name, S3_PERMISSION_SID, "s3.amazonaws.com", bucket_arn + input_bucket,
                                 target.account_id),
        schedule_permission=Permission(function_name, SCHEDULE_PERMISSION_SID, "events.amazonaws.com", rule_arn,
                                       target.account_id),
        # The workflow's filter selects the user's uploads; later steps take every result.
        notification=Notification(input_bucket, notification_id(pipeline, step.name), function_arn,
                                  spec.filter_prefix if index == 0 else "", spec.filter_suffix if index == 0 else ""),
        rule=Rule(rule_name, rule_arn, SCHEDULE, function_arn, tags),
        function_log_group=function_log_group,
        started_by=started_by,
    )
