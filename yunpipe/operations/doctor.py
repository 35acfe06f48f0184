"""`yunpipe doctor`: a read-only preflight of the account and, given workflow files, of what
they need there. Each check is a `Check`: ok, or not and blocking (setup-pipe would refuse or
fail: the same functions it plans with say so), or not and only a warning (the pipeline deploys
but runs slower, or its tasks cannot start until the user acts).

The checks that setup-pipe also makes are its own functions, not copies: the instance types
(engine.instances.instance_findings), the buckets' regions and the notifications already on
them (each kind's `check`), the service-linked roles (their kind's plan), the Lambda
concurrency rule (kinds.function.can_reserve).

Driven without a command line:
    for check in run_checks(DoctorOptions(("workflow.json",), AwsOptions(local=True))):
        print(check.line())
"""
import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from yunpipe.aws.ecr import ecr_image, image_missing
from yunpipe.aws.facade import Aws, BotoCoreError, ClientError, error_code, explain
from yunpipe.aws.location import AwsOptions, describe, open_with_region, resolve
from yunpipe.aws.reader import NOT_FOUND, Reader
from yunpipe.engine import compiler
from yunpipe.engine.instances import instance_findings
from yunpipe.engine.kinds import BY_NAME, PlanContext
from yunpipe.engine.kinds.bucket import FIELDS
from yunpipe.engine.kinds.function import (
    LAUNCHER_RESERVED_CONCURRENCY,
    MIN_UNRESERVED_EXECUTIONS,
    can_reserve,
    unreserved_executions,
)
from yunpipe.engine.model import PipelineModel
from yunpipe.engine.network import subnet_reach
from yunpipe.engine.quotas import Quota, QuotaNeed, instance_quota, quota_needs
from yunpipe.engine.state import PipelineState
from yunpipe.engine.target import InstanceOffer, Target, resolve_instance_offers, resolve_target
from yunpipe.errors import InputError, YunpipeError
from yunpipe.operations.deploy import load_workflows, refuse_elsewhere
from yunpipe.resolve import ResolvedWorkflow

MARKS = {"ok": "✓", "blocking": "✗", "warning": "!"}
# The reads doctor makes; a refused one is a warning that names what could not be checked.
READS_FAILED = (ClientError, BotoCoreError)


@dataclass(frozen=True)
class Check:
    """One line of the report. Not ok and blocking: setup-pipe would stop (exit 1); not ok and
    not blocking: a warning."""

    name: str
    ok: bool
    detail: str
    fix: str = ""
    blocking: bool = False

    @property
    def mark(self) -> str:
        return MARKS["ok" if self.ok else "blocking" if self.blocking else "warning"]

    def line(self) -> str:
        text = f"{self.mark} {self.name}: {self.detail}"
        return f"{text} — {self.fix}" if self.fix and not self.ok else text


@dataclass(frozen=True)
class DoctorOptions:
    files: tuple[str, ...] = ()
    where: AwsOptions = field(default_factory=AwsOptions)


def run_checks(options: DoctorOptions) -> list[Check]:
    """Every check, in the order they are shown; bad workflow files raise InputError (exit 2)
    before any AWS call, as setup-pipe's do."""
    workflows = load_workflows(options.files, options.where) if options.files else []
    if not workflows:
        identity, aws, _ = _identity(options.where, None)
        if aws is None:
            return [identity]
        reader = Reader(aws)
        return [identity, *_guarded("Lambda concurrency", lambda: [_concurrency(reader, None)])]
    checks: list[Check] = []
    for workflow in workflows:
        identity, aws, here = _identity(options.where, workflow.spec.region)
        checks.append(identity)
        if aws is not None:
            checks.extend(workflow_checks(aws, workflow, here))
    return list(dict.fromkeys(checks))  # one identity line for workflows that go to one place


def _identity(where: AwsOptions, region: str | None) -> tuple[Check, Aws | None, dict]:
    """Who the credentials are, and where the checks (and setup-pipe) go: the facade and the
    place as a pipeline's state records it (None and {} when AWS cannot be reached)."""
    try:
        place = resolve(where, region)
        aws = open_with_region(place)
        caller = aws.call("sts", "get_caller_identity")
    except YunpipeError as error:
        return Check("identity", False, str(error), blocking=True), None, {}
    except Exception as error:  # every AWS failure becomes one line, as in cli.dispatch
        explained = explain(error)
        if explained is None:
            raise
        return Check("identity", False, str(explained), "give credentials (--profile, AWS_PROFILE or keys) and a "
                     "reachable endpoint, or use --local", blocking=True), None, {}
    here = place.record(aws, caller["Account"])
    return Check("identity", True, f"{caller['Arn']} in {describe(here)}"), aws, here


def _guarded(name: str, checks: Callable[[], list[Check]]) -> list[Check]:
    """The checks, or one warning when AWS refused a read they need (a caller without some
    read-only permission): setup-pipe may still work, doctor just cannot tell."""
    try:
        return checks()
    except READS_FAILED as error:
        return [Check(name, False, f"could not check: {explain(error)}",
                      "allow the read-only calls listed in the README's \"First run on a new account\"")]


def workflow_checks(aws: Aws, workflow: ResolvedWorkflow, here: dict) -> list[Check]:
    """The checks of one workflow where it goes (`here`, as Location.record gives it)."""
    spec = workflow.spec
    state = PipelineState.load(spec.name)
    try:
        refuse_elsewhere(spec, state, here)
    except InputError as error:
        return [Check(f"pipeline {spec.name}", False, str(error), blocking=True)]
    try:
        target, _ = resolve_target(aws, spec.account_id, False, spec.subnets, spec.security_groups)
        target = replace(target, local=here.get("cloud") == "local")  # as setup-pipe: http:// to localhost
        types = sorted({s.instance_type for s in workflow.steps if s.instance_type})
        offers = resolve_instance_offers(aws, types, target.subnets)
    except READS_FAILED as error:
        return [Check("network", False, f"cannot read the subnets or instance types: {explain(error)}",
                      "setup-pipe reads them too: allow ec2:Describe*", blocking=True)]
    # Without offers the compiler refuses nothing; instance_findings below says what it would.
    model = compiler.build_model(workflow, target)
    reader = Reader(aws)
    ctx = PlanContext(reader, model.name, target, model.source, state.keys())
    checks = _instances(workflow, target, offers)
    if here.get("cloud") != "localstack":  # as setup-pipe: LocalStack's tasks never leave the machine
        checks += _guarded("network", lambda: _network(reader, workflow, target))
    checks += _guarded("service-linked roles", lambda: _service_linked_roles(model, ctx))
    checks += _guarded("Lambda concurrency", lambda: [_concurrency(reader, model)])
    checks += _guarded("vCPU quotas", lambda: _quotas(aws, workflow, model, offers))
    checks += _guarded("buckets", lambda: _buckets(model, ctx))
    checks += _guarded("notifications", lambda: _notifications(model, ctx))
    checks += _guarded("other resources", lambda: _other_resources(model, ctx))
    checks += _images(aws, workflow)
    return checks


def _network(reader: Reader, workflow: ResolvedWorkflow, target: Target) -> list[Check]:
    """What the steps' subnets reach (engine.network), and setup-pipe's refusal when a task there
    would miss a service it needs (its image's registry, S3, SQS, Logs; SSM or Secrets Manager
    for secrets), found by compiling with the network as setup-pipe does."""
    reaches = subnet_reach(reader, target.subnets)
    try:
        compiler.build_model(workflow, target, False, None, reaches)
    except InputError as finding:
        if finding.field != "subnets" and not finding.field.endswith("assign_public_ip"):
            raise
        return [Check("network", False, str(finding), "add a NAT gateway, or the VPC endpoints it names, to the "
                      "subnets' route tables; or list other subnets (or set assign_public_ip)", blocking=True)]
    ways = sorted({"internet gateway" if r.internet_gateway else r.egress or "VPC endpoints" for r in reaches})
    return [Check("network", True, f"{len(reaches)} subnet(s) reach out through {' and '.join(ways) or 'nothing'}")]


def _fix_of(finding: InputError) -> str:
    """How to fix what instance_findings found, from the field it names."""
    if finding.field.endswith("instance_type"):
        return ("pick a type that `aws ec2 describe-instance-type-offerings --location-type availability-zone` lists "
                "in the subnets' zones, or give subnets in zones that offer it")
    if finding.field.endswith("gpu"):
        return "ask for fewer GPUs, or pick an instance type with more"
    return "ask for less memory, or pick a larger instance type"


def _instances(workflow: ResolvedWorkflow, target: Target, offers: dict[str, InstanceOffer]) -> list[Check]:
    """Per instance type: what setup-pipe refuses on (instance_findings), or what the type is."""
    checks = []
    for instance_type, offer in sorted(offers.items()):
        name = f"instance type {instance_type}"
        findings = instance_findings(workflow, target, {instance_type: offer})
        checks += [Check(name, False, str(f), _fix_of(f), blocking=True) for f in findings]
        if not findings:
            size = f"{offer.vcpus} vCPU, {offer.memory_mib} MiB, {offer.gpus} GPU(s)" if offer.memory_mib else "size unknown"
            checks.append(Check(name, True, f"offered in {', '.join(offer.zones)}; {size}; its steps fit"))
    return checks


def _service_linked_roles(model: PipelineModel, ctx: PlanContext) -> list[Check]:
    """The account's roles ECS (capacity providers) and Auto Scaling (EC2 steps) need: missing in
    a new account, and created by setup-pipe (the kind's plan says whether it would)."""
    checks = []
    for role in model.service_linked_roles:
        name = f"service-linked role {role.name}"
        if not BY_NAME[role.kind].plan(role, ctx):
            checks.append(Check(name, True, "exists"))
        else:
            checks.append(Check(name, False, f"missing: setup-pipe creates it, which needs iam:CreateServiceLinkedRole "
                                             f"for {role.service}",
                                f"nothing if you may; otherwise an administrator runs `aws iam "
                                f"create-service-linked-role --aws-service-name {role.service}`"))
    return checks


def _concurrency(reader: Reader, model: PipelineModel | None) -> Check:
    """Room to reserve one execution per launcher (the rule setup-pipe plans with: can_reserve)."""
    name = "Lambda concurrency"
    unreserved = unreserved_executions(reader)
    if unreserved is None:
        return Check(name, True, "no account limit reported (an emulator): launchers reserve one execution each")
    if model is None:
        return Check(name, can_reserve(unreserved, LAUNCHER_RESERVED_CONCURRENCY),
                     f"{unreserved} unreserved executions (AWS keeps {MIN_UNRESERVED_EXECUTIONS} unreserved)",
                     "request more \"Concurrent executions\" (Service Quotas, AWS Lambda) so launchers can reserve one each")
    reserved = [reader.read("lambda", "get_function_concurrency", NOT_FOUND, FunctionName=s.function.name) or {}
                for s in model.steps]
    needed = sum(LAUNCHER_RESERVED_CONCURRENCY - r.get("ReservedConcurrentExecutions", 0) for r in reserved
                 if r.get("ReservedConcurrentExecutions") != LAUNCHER_RESERVED_CONCURRENCY)
    launchers = f"{len(model.steps)} launcher(s)"
    if can_reserve(unreserved, needed):
        return Check(name, True, f"{unreserved} unreserved executions: room to reserve one for each of the {launchers}")
    return Check(name, False, f"{unreserved} unreserved executions and AWS keeps {MIN_UNRESERVED_EXECUTIONS}: the "
                              f"{launchers} will run unreserved, so uploads arriving together may start a few more "
                              "tasks than files",
                 "request more \"Concurrent executions\" (Service Quotas, AWS Lambda); setup-pipe works without")


def quota_value(aws: Aws, quota: Quota) -> float:
    """The quota's applied value, else AWS's default (Service Quotas has no applied value for a
    quota nobody changed in some accounts: NoSuchResourceException)."""
    client = aws.client("service-quotas")
    try:
        return float(client.get_service_quota(ServiceCode=quota.service, QuotaCode=quota.code)["Quota"]["Value"])
    except ClientError as error:
        if error_code(error) != "NoSuchResourceException":
            raise
    return float(client.get_aws_default_service_quota(ServiceCode=quota.service, QuotaCode=quota.code)["Quota"]["Value"])


def _quota_check(aws: Aws, need: QuotaNeed) -> Check:
    quota = need.quota
    name = f"quota {quota.name}"
    value = quota_value(aws, quota)
    steps = ", ".join(need.steps)
    fix = (f"request {math.ceil(need.vcpus)} vCPU: `aws service-quotas request-service-quota-increase --service-code "
           f"{quota.service} --quota-code {quota.code} --desired-value {math.ceil(need.vcpus)} --region {aws.region}`")
    if value < need.largest:
        return Check(name, False, f"{value:g} vCPU, less than one task of step(s) {steps} needs ({need.largest:g}): "
                                  "none of their tasks can start until it is raised", fix)
    if value < need.vcpus:
        return Check(name, False, f"{value:g} vCPU; step(s) {steps} may use {need.vcpus:g} at their concurrency caps: "
                                  f"at most {int(value // need.largest)} task(s) at once, the others wait", fix)
    return Check(name, True, f"{value:g} vCPU; step(s) {steps} use at most {need.vcpus:g} (the quota is shared "
                             "with everything else in the account and region)")


def _quotas(aws: Aws, workflow: ResolvedWorkflow, model: PipelineModel, offers: dict[str, InstanceOffer]) -> list[Check]:
    needs, unknown = quota_needs(workflow, model, offers)
    checks = [_quota_check(aws, need) for need in needs]
    for instance_type in unknown:
        offer = offers.get(instance_type)
        if offer and offer.zones and instance_quota(instance_type) is None:
            checks.append(Check(f"quota for {instance_type}", False, "not checked: yunpipe knows no On-Demand vCPU "
                                "quota for its family", "look it up in the Service Quotas console (Amazon EC2)"))
    return checks


def _buckets(model: PipelineModel, ctx: PlanContext) -> list[Check]:
    """The input and output buckets: a user's own must be in the pipeline's region (the bucket
    kind's check), a name another account holds cannot be used."""
    checks = []
    for bucket in model.buckets:
        if bucket.purpose not in FIELDS:
            continue
        name = f"{bucket.purpose} bucket {bucket.name}"
        try:
            findings = BY_NAME[bucket.kind].check(bucket, ctx)
            exists = ctx.reader.bucket_exists(bucket.name)
        except YunpipeError as error:
            checks.append(Check(name, False, str(error), "pick another bucket name", blocking=True))
            continue
        checks += [Check(name, False, str(f), "deploy to that region (--region) or pick another bucket", blocking=True)
                   for f in findings]
        if not findings:
            checks.append(Check(name, True, f"exists in {model.target.region}" if exists else "setup-pipe creates it"))
    return checks


def _notifications(model: PipelineModel, ctx: PlanContext) -> list[Check]:
    """Notifications already on the buckets the steps are told about: none may overlap a step's."""
    checks = []
    for step in model.steps:
        for notification in step.notifications:
            name = f"notification {notification.id} on {notification.bucket}"
            findings = BY_NAME[notification.kind].check(notification, ctx)
            checks += [Check(name, False, str(f), "give the step a filter prefix or suffix of its own, or remove the "
                             "other notification", blocking=True) for f in findings]
            if not findings:
                checks.append(Check(name, True, "no other notification on the bucket overlaps it"))
    return checks


def _other_resources(model: PipelineModel, ctx: PlanContext) -> list[Check]:
    """What the other kinds' checks find (an instance type's AMI missing in the region): a line
    only when something would stop setup-pipe."""
    return [Check(f"{resource.kind.replace('_', ' ')} {resource.key}", False, str(finding), blocking=True)
            for resource in model.resources() if resource.kind not in ("bucket", "notification")
            for finding in BY_NAME[resource.kind].check(resource, ctx)]


def _images(aws: Aws, workflow: ResolvedWorkflow) -> list[Check]:
    """Each algorithm image in ECR exists and can be described by the caller; a task whose image
    is missing fails to start (CannotPullContainerError), which setup-pipe does not check: the
    image may be pushed after the pipeline is set up."""
    checks = []
    for uri in dict.fromkeys(step.record.image_uri for step in workflow.steps):
        name = f"image {uri}"
        image = ecr_image(uri)
        if image is None:
            checks.append(Check(name, True, "not in ECR: not checked (tasks pull it from its registry)"))
            continue
        try:
            missing = image_missing(aws.client("ecr", image.region), image)
        except READS_FAILED as error:
            checks.append(Check(name, False, f"could not describe it: {explain(error)}",
                                "allow ecr:DescribeImages on the repository, or check it in the ECR console"))
            continue
        checks.append(Check(name, True, "in ECR") if not missing else
                      Check(name, False, f"{missing}: its tasks cannot start",
                            "push it (`yunpipe wrap -f ALGORITHM.json -r ecr`), or fix the algorithm's image"))
    return checks
