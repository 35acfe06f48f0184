"""Where a pipeline is deployed: account, region, network (and -uu's credentials), resolved
from AWS once, before the model is compiled; the model itself makes no AWS call."""
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from yunpipe.aws.facade import UNREACHABLE, Aws, ClientError, error_code

# The account of a dry-run when AWS cannot be reached and the workflow names none.
PLACEHOLDER_ACCOUNT = "000000000000"


def partition(region: str) -> str:
    if region.startswith("cn-"):
        return "aws-cn"
    if region.startswith("us-gov-"):
        return "aws-us-gov"
    return "aws"


@dataclass(frozen=True)
class Target:
    """Where the pipeline goes: resolved by the caller (STS, the workflow, the default VPC)."""

    account_id: str
    region: str
    subnets: tuple[str, ...] = ()
    security_groups: tuple[str, ...] = ()
    credentials: Mapping[str, str] = field(default_factory=dict, repr=False)
    # The local cloud: its SNS delivers from this machine, so `notify` may name http://localhost.
    local: bool = False

    @property
    def partition(self) -> str:
        return partition(self.region)

    def arn(self, service: str, resource: str, regional: bool = True) -> str:
        region = self.region if regional else ""
        return f"arn:{self.partition}:{service}:{region}:{self.account_id}:{resource}"


def lookup_default_network(aws: Aws) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Subnets and the default security group of the default VPC (empty when there is none)."""
    vpcs = aws.call("ec2", "describe_vpcs", Filters=[{"Name": "isDefault", "Values": ["true"]}])["Vpcs"]
    if not vpcs:
        return (), ()
    vpc = [{"Name": "vpc-id", "Values": [vpcs[0]["VpcId"]]}]
    subnets = sorted(s["SubnetId"] for s in aws.pages("ec2", "describe_subnets", "Subnets", Filters=vpc))
    groups = aws.call("ec2", "describe_security_groups",
                      Filters=[*vpc, {"Name": "group-name", "Values": ["default"]}])["SecurityGroups"]
    return tuple(subnets), tuple(g["GroupId"] for g in groups[:1])


def resolve_target(aws: Aws, workflow_account: str, dry_run: bool, subnets: Sequence[str] = (),
                   security_groups: Sequence[str] = (),
                   credentials: Mapping[str, str] | None = None) -> tuple[Target, bool]:
    """The account, region and network to deploy to, and whether AWS was unreachable (only
    tolerated in a dry-run: then everything is planned as new)."""
    try:
        account = aws.account_id()
        if not subnets:
            subnets, default_groups = lookup_default_network(aws)
            security_groups = security_groups or default_groups
    except UNREACHABLE:
        if not dry_run:
            raise
        account = workflow_account if workflow_account.isdigit() and len(workflow_account) == 12 else PLACEHOLDER_ACCOUNT
        return Target(account, aws.region, tuple(subnets), tuple(security_groups), credentials or {}), True
    return Target(account, aws.region, tuple(subnets), tuple(security_groups), credentials or {}), False


# What an ECS container instance registers is less than the type's installed memory: the kernel
# and the platform keep part of it ("Reserving Amazon ECS Linux container instance memory", ECS
# Developer Guide: an m4.large's 8192 MiB registers as 7985 MiB, 2.5% less), and the agent
# removes ECS_RESERVED_MEMORY more (yunpipe's user data leaves it unset: 0). A task placed on the
# instance gets at most what is registered, so a step may ask for at most the installed memory
# less ECS_MEMORY_OVERHEAD_PERCENT: twice the documented example's share, as smaller instances lose
# relatively more to the kernel.
ECS_MEMORY_OVERHEAD_PERCENT = 5


@dataclass(frozen=True)
class InstanceOffer:
    """One EC2 instance type in the region: the Availability Zones offering it, the target's
    subnets in those zones, and what one instance has (None when EC2 does not describe it)."""

    zones: tuple[str, ...]
    subnets: tuple[str, ...]
    memory_mib: int | None = None
    gpus: int | None = None
    vcpus: int | None = None  # what the type's vCPU quota counts per instance

    @property
    def task_memory_mib(self) -> int | None:
        """The most memory a task can have on one instance (ECS_MEMORY_OVERHEAD_PERCENT less)."""
        if self.memory_mib is None:
            return None
        return self.memory_mib * (100 - ECS_MEMORY_OVERHEAD_PERCENT) // 100


def resolve_instance_offers(aws: Aws, instance_types: Sequence[str],
                            subnets: Sequence[str]) -> dict[str, InstanceOffer]:
    """Where each instance type is offered (DescribeInstanceTypeOfferings by Availability Zone;
    us-east-1e, say, lacks many types, and a region may lack one entirely) and how big it is
    (DescribeInstanceTypes), read with the target, before compiling: the compiler gives each
    Auto Scaling group only the subnets whose zone offers its type, and refuses a type no zone
    offers, or a step bigger than its instance, naming the field that asked (it knows the steps;
    a kind's plan sees only its resource, and the model must hold the subnets really used)."""
    if not instance_types:
        return {}
    zone_of = {s["SubnetId"]: s["AvailabilityZone"]
               for s in aws.pages("ec2", "describe_subnets", "Subnets", SubnetIds=list(subnets))} if subnets else {}
    offered: dict[str, set[str]] = {t: set() for t in instance_types}
    for offering in aws.pages("ec2", "describe_instance_type_offerings", "InstanceTypeOfferings",
                              LocationType="availability-zone",
                              Filters=[{"Name": "instance-type", "Values": list(instance_types)}]):
        offered.setdefault(offering["InstanceType"], set()).add(offering["Location"])
    described = {t["InstanceType"]: t for t in _describe_instance_types(aws, [t for t in instance_types if offered[t]])}
    offers = {}
    for instance_type in instance_types:
        zones = offered[instance_type]
        info = described.get(instance_type, {})
        gpus = info.get("GpuInfo", {}).get("Gpus", [])
        offers[instance_type] = InstanceOffer(
            tuple(sorted(zones)), tuple(s for s in subnets if zone_of.get(s) in zones),
            info.get("MemoryInfo", {}).get("SizeInMiB"), sum(g.get("Count", 0) for g in gpus) if info else None,
            info.get("VCpuInfo", {}).get("DefaultVCpus"))
    return offers


def _describe_instance_types(aws: Aws, instance_types: Sequence[str]) -> list[dict]:
    if not instance_types:
        return []
    try:
        return list(aws.pages("ec2", "describe_instance_types", "InstanceTypes", InstanceTypes=list(instance_types)))
    except ClientError as error:
        # Offered but not described (an emulator's partial catalogue): sizes unknown, not checked.
        if error_code(error) == "InvalidInstanceType":
            return []
        raise
