"""The account's vCPU quotas a pipeline's tasks run under (Service Quotas), and how many vCPUs
of each the pipeline may hold at once at its steps' concurrency caps. Quotas are per account
and region, shared with everything else the account runs; a task beyond one is not an error at
deploy time: RunTask fails ("You've reached the limit on the number of vCPUs you can run
concurrently") or Auto Scaling launches no instance (a new account's G and P quotas are 0).

Quota codes: Service Quotas' `fargate` and `ec2` services (ECS Developer Guide, "Amazon ECS
service quotas"; EC2 User Guide, "On-Demand Instance quotas": one vCPU quota per group of
instance families).
"""
import re
from collections.abc import Mapping
from dataclasses import dataclass

from yunpipe.engine.model import PipelineModel
from yunpipe.engine.target import InstanceOffer
from yunpipe.resolve import ResolvedWorkflow


@dataclass(frozen=True)
class Quota:
    service: str  # Service Quotas' service code
    code: str
    name: str


FARGATE = Quota("fargate", "L-3032A538", "Fargate On-Demand vCPU resource count")
FARGATE_SPOT = Quota("fargate", "L-36FBB829", "Fargate Spot vCPU resource count")
STANDARD = Quota("ec2", "L-1216C47A", "Running On-Demand Standard (A, C, D, H, I, M, R, T, Z) instances")
# The other On-Demand quotas, by the letters an instance type's family starts with.
FAMILY_QUOTAS = {
    "g": Quota("ec2", "L-DB2E81BA", "Running On-Demand G and VT instances"),
    "p": Quota("ec2", "L-417A185B", "Running On-Demand P instances"),
    "x": Quota("ec2", "L-7295265B", "Running On-Demand X instances"),
    "f": Quota("ec2", "L-74FC7D96", "Running On-Demand F instances"),
    "inf": Quota("ec2", "L-1945791B", "Running On-Demand Inf instances"),
    "dl": Quota("ec2", "L-6E869C2A", "Running On-Demand DL instances"),
    "trn": Quota("ec2", "L-2C3B7624", "Running On-Demand Trn instances"),
    "hpc": Quota("ec2", "L-F7808C92", "Running On-Demand HPC instances"),
}
FAMILY_QUOTAS["vt"] = FAMILY_QUOTAS["g"]
STANDARD_LETTERS = "acdhimrtz"
# Families outside every quota above (Mac hosts, High Memory "u-"): not checked.
UNQUOTED = ("mac", "u")


def instance_quota(instance_type: str) -> Quota | None:
    """The On-Demand vCPU quota an instance type counts against; None when yunpipe does not know it."""
    letters = re.match(r"^[a-z]+", instance_type)
    family = letters.group(0) if letters else ""
    if family in FAMILY_QUOTAS:
        return FAMILY_QUOTAS[family]
    if family in UNQUOTED or not family or family[0] not in STANDARD_LETTERS:
        return None
    return STANDARD


@dataclass(frozen=True)
class QuotaNeed:
    """What a pipeline may hold of one quota at once: its steps at their caps, and the largest
    single task (or instance) it needs, in vCPUs."""

    quota: Quota
    vcpus: float
    largest: float
    steps: tuple[str, ...]


def quota_needs(workflow: ResolvedWorkflow, model: PipelineModel,
                offers: Mapping[str, InstanceOffer]) -> tuple[list[QuotaNeed], list[str]]:
    """The pipeline's need of each quota, and the instance types whose quota or size is unknown.
    A Fargate task holds its task size; a task on EC2 at most one instance of its type (the Auto
    Scaling group grows by one instance per task, up to the step's cap). A workflow whose
    launch_type is EC2 runs on the user's own instances: nothing to count."""
    totals: dict[Quota, tuple[float, float, tuple[str, ...]]] = {}
    unknown = []
    for step, built in zip(workflow.steps, model.steps, strict=True):
        if step.instance_type:
            offer = offers.get(step.instance_type)
            quota = instance_quota(step.instance_type)
            if quota is None or offer is None or offer.vcpus is None:
                unknown.append(step.instance_type)
                continue
            size = float(offer.vcpus)
        elif model.launch_type == "FARGATE":
            quota = FARGATE_SPOT if step.spec.capacity == "FARGATE_SPOT" else FARGATE
            size = int(built.task_definition.registration["cpu"]) / 1024
        else:
            continue
        vcpus, largest, steps = totals.get(quota, (0.0, 0.0, ()))
        totals[quota] = (vcpus + size * step.concurrency, max(largest, size), (*steps, step.name))
    needs = [QuotaNeed(quota, *total) for quota, total in totals.items()]
    return needs, sorted(set(unknown))
