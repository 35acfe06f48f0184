"""Where a pipeline is deployed: account, region, network (and -uu's credentials), resolved
from AWS once, before the model is compiled; the model itself makes no AWS call."""
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from yunpipe.aws.facade import UNREACHABLE, Aws

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
