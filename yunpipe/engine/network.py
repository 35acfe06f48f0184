"""What a task can reach from its subnets, read before compiling, and the public IP it gets.

A Fargate task reaches its image (ECR's API and registry, the layers in S3), its queue, its
buckets and its logs through one of: a public IP in a subnet whose default route goes to an
internet gateway; a NAT gateway (or another hop yunpipe cannot look through: a transit gateway,
a NAT instance, a firewall); or VPC endpoints (an S3 gateway endpoint on the subnet's route
table, interface endpoints with private DNS for the rest). Institutional accounts often give
only private subnets and forbid public IPs, so a public IP is asked for only where the subnets
route to an internet gateway, or where the workflow says (`assign_public_ip`).

`subnet_reach` returns data; the compiler (via `public_ip`) refuses a step that could reach
nothing at plan time, and `yunpipe doctor` shows the same data.
"""
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from yunpipe.aws.reader import Reader
from yunpipe.engine.target import InstanceOffer, Target
from yunpipe.errors import InputError
from yunpipe.resolve import ResolvedWorkflow

# What every task reaches, by VPC endpoint service short name. An image outside ECR adds its
# registry's host, which no endpoint serves.
TASK_SERVICES = ("ecr.api", "ecr.dkr", "s3", "sqs", "logs")
# The ECS agent on an EC2 container instance also talks to ECS itself.
INSTANCE_SERVICES = ("ecs", "ecs-agent", "ecs-telemetry")
# The services a VPC endpoint may stand for here (anything else in a `needed` list is outside AWS).
ENDPOINT_SERVICES = (*TASK_SERVICES, *INSTANCE_SERVICES, "ssm", "secretsmanager")
# com.amazonaws.<region>.<service> (cn.com.amazonaws... in China).
_SERVICE_NAME = re.compile(r"\.[a-z]{2}(?:-[a-z]+)+-\d\.(?P<service>[a-z0-9.-]+)$")
_DEAD_ENDPOINT = ("deleting", "deleted", "failed", "rejected", "expired")
# Targets of a default route other than an internet or NAT gateway, in the route's own keys.
_OTHER_TARGETS = ("TransitGatewayId", "InstanceId", "NetworkInterfaceId", "VpcPeeringConnectionId",
                  "LocalGatewayId", "CoreNetworkArn", "GatewayId")


@dataclass(frozen=True)
class SubnetReach:
    """One subnet: its default route (0.0.0.0/0 of its own route table, else its VPC's main
    one) and the VPC endpoints its tasks can use."""

    subnet_id: str
    zone: str
    internet_gateway: bool
    nat: bool
    endpoints: frozenset[str]
    vpc_id: str = ""
    # A default route through something else (a transit gateway to a central NAT, a NAT
    # instance, a virtual private gateway): taken as a way out, unverified.
    other_route: str = ""
    # The subnet gives instances a public IP at launch (EC2 container instances take it).
    public_on_launch: bool = False

    @property
    def egress(self) -> str:
        """How the subnet reaches the internet without a public IP ("" when it does not)."""
        return "NAT gateway" if self.nat else self.other_route

    def missing(self, needed: Iterable[str] = TASK_SERVICES, public_ip: bool = True) -> tuple[str, ...]:
        """The needed services a task here cannot reach (none with a way out: an internet
        gateway serves only a task with a public IP)."""
        if self.egress or (self.internet_gateway and public_ip):
            return ()
        return tuple(service for service in needed if service not in self.endpoints)


def subnet_reach(reader: Reader, subnet_ids: Sequence[str]) -> tuple[SubnetReach, ...]:
    """Each subnet that exists among `subnet_ids`, in their order (read-only: DescribeSubnets,
    DescribeRouteTables, DescribeVpcEndpoints; none offline)."""
    if reader.offline or not subnet_ids:
        return ()
    subnets = {s["SubnetId"]: s for s in reader.pages("ec2", "describe_subnets", "Subnets",
                                                      Filters=[{"Name": "subnet-id", "Values": list(subnet_ids)}])}
    vpcs = sorted({s["VpcId"] for s in subnets.values()})
    if not vpcs:
        return ()
    in_vpcs = [{"Name": "vpc-id", "Values": vpcs}]
    tables = reader.pages("ec2", "describe_route_tables", "RouteTables", Filters=in_vpcs)
    endpoints = [e for e in reader.pages("ec2", "describe_vpc_endpoints", "VpcEndpoints", Filters=in_vpcs)
                 if e.get("State", "").lower() not in _DEAD_ENDPOINT]
    own = {a["SubnetId"]: t for t in tables for a in t.get("Associations", []) if a.get("SubnetId")}
    main = {t["VpcId"]: t for t in tables for a in t.get("Associations", []) if a.get("Main")}
    reaches = []
    for subnet_id in subnet_ids:
        subnet = subnets.get(subnet_id)
        if subnet is None:
            continue
        table = own.get(subnet_id) or main.get(subnet["VpcId"]) or {}
        route: dict = next((r for r in table.get("Routes", []) if r.get("DestinationCidrBlock") == "0.0.0.0/0"
                      and r.get("State") != "blackhole"), {})
        gateway = route.get("GatewayId", "")
        other = "" if gateway.startswith("igw-") or route.get("NatGatewayId") else next(
            (str(route[key]) for key in _OTHER_TARGETS if route.get(key)), "")
        reaches.append(SubnetReach(subnet_id, subnet.get("AvailabilityZone", ""), gateway.startswith("igw-"),
                                   bool(route.get("NatGatewayId")),
                                   frozenset(_services(endpoints, subnet["VpcId"], table.get("RouteTableId", ""))),
                                   subnet["VpcId"], other, bool(subnet.get("MapPublicIpOnLaunch"))))
    return tuple(reaches)


def _services(endpoints: list[dict], vpc_id: str, table_id: str) -> set[str]:
    """The services a subnet reaches through endpoints: a gateway endpoint on its route table,
    an interface endpoint whose private DNS answers the service's usual name in the VPC."""
    found = set()
    for endpoint in endpoints:
        match = _SERVICE_NAME.search(endpoint.get("ServiceName", ""))
        if endpoint.get("VpcId") != vpc_id or not match:
            continue
        kind = endpoint.get("VpcEndpointType", "Gateway")
        if (kind == "Gateway" and table_id in endpoint.get("RouteTableIds", [])) or \
                (kind == "Interface" and endpoint.get("PrivateDnsEnabled")):
            found.add(match["service"])
    return found


def public_ip(reaches: Sequence[SubnetReach], wanted: bool | None, needed: Sequence[str], source: str,
              field: str) -> bool:
    """Whether a Fargate task gets a public IP: as the workflow says (`wanted`, from `field`),
    else where its subnets route to an internet gateway. Subnets of both kinds, without the
    workflow saying, are refused (a task would get a useless public IP in some, or none where
    it needs one); so are subnets from which a task would miss one of the `needed` services.
    Nothing read (offline, a placeholder target): the workflow's word, else a public IP."""
    if not reaches:
        return True if wanted is None else wanted
    said = wanted is not None
    if wanted is None:
        public = [r.subnet_id for r in reaches if r.internet_gateway]
        private = [r.subnet_id for r in reaches if not r.internet_gateway]
        if public and private:
            raise InputError(source, "subnets",
                             f"expected subnets that all route to an internet gateway, or none of them: "
                             f"{', '.join(public)} do, {', '.join(private)} do not; list one kind, or set "
                             "assign_public_ip")
        wanted = bool(public)
    check_reach(reaches, needed, wanted, source, field if said else "subnets")
    return wanted


def check_reach(reaches: Sequence[SubnetReach], needed: Sequence[str], public: bool | None, source: str,
                field: str) -> None:
    """Refuse subnets from which a task (with a public IP or not; None: as each subnet gives
    one at launch, for EC2 instances) cannot reach every needed service, naming what is missing."""
    for reach in reaches:
        missing = reach.missing(needed, reach.public_on_launch if public is None else public)
        if missing:
            raise InputError(source, field, f"expected subnets from which tasks reach {', '.join(needed)}: "
                                            f"{reach.subnet_id} {_why(reach)} and cannot reach "
                                            f"{describe_missing(missing)}")


def _why(reach: SubnetReach) -> str:
    if reach.internet_gateway:
        return "routes to an internet gateway, which serves no task without a public IP,"
    return "has no route to an internet or NAT gateway"


def describe_missing(missing: Sequence[str]) -> str:
    """What a subnet lacks, and how to add it: VPC endpoints for AWS services (a gateway
    endpoint for S3), a NAT gateway for anything outside AWS."""
    endpoints = [s for s in missing if s in ENDPOINT_SERVICES]
    outside = [s for s in missing if s not in ENDPOINT_SERVICES]
    parts = []
    if endpoints:
        kinds = (["a gateway endpoint for s3"] if "s3" in endpoints else []) + (
            ["interface endpoints with private DNS for the others"] if set(endpoints) - {"s3"} else [])
        parts.append(f"{', '.join(endpoints)} (add a NAT gateway, or VPC endpoints: {', '.join(kinds)})")
    if outside:
        parts.append(f"{', '.join(outside)} (outside AWS: only a NAT gateway reaches it)")
    return "; ".join(parts)


def check_subnets(workflow: ResolvedWorkflow, target: Target, network: Sequence[SubnetReach] | None) -> None:
    """The subnets read (`network` is None when they were not) exist, in one VPC (a task's
    network interface, and its security groups, belong to one)."""
    if network is None:
        return
    unknown = [s for s in target.subnets if s not in {r.subnet_id for r in network}]
    if unknown:
        raise InputError(workflow.spec.source, "subnets", f"expected subnets of the account in {target.region}, "
                                                         f"not found: {', '.join(unknown)}")
    vpcs = sorted({r.vpc_id for r in network})
    if len(vpcs) > 1:
        raise InputError(workflow.spec.source, "subnets", f"expected subnets of one VPC, got {', '.join(vpcs)}")


def step_public_ip(workflow: ResolvedWorkflow, index: int, target: Target, network: Sequence[SubnetReach],
                   offers: Mapping[str, InstanceOffer], needs: Sequence[str]) -> bool:
    """Whether the step's Fargate tasks get a public IP (public_ip: the step's
    assign_public_ip, else the workflow's, else as the subnets route), refusing subnets from
    which its tasks would miss what they need (`needs`: compiler.reach_needs). A step on EC2
    instances takes no setting: its tasks use their instance's network, and an instance the
    public IP its subnet gives at launch. With launch_type EC2 (awsvpc tasks on the cluster's
    instances) a task never has one."""
    spec, step = workflow.spec, workflow.steps[index]
    where = f"{spec.steps_field}[{index}]"
    if step.instance_type:
        if step.spec.assign_public_ip is not None:
            raise InputError(spec.source, f"{where}.assign_public_ip",
                             f"expected no assign_public_ip on a step that runs on EC2 instances ({step.instance_type}): "
                             "its tasks use their instance's network, which has the public IP its subnet gives at launch")
        subnets = offers[step.instance_type].subnets if step.instance_type in offers else target.subnets
        check_reach([r for r in network if r.subnet_id in subnets], needs, None, spec.source, "subnets")
        # Not read: the launcher gives tasks on instances no network configuration.
        return True
    if spec.launch_type == "EC2":
        # ECS gives an awsvpc task on an EC2 instance no public IP (and refuses to be asked).
        said = (f"{where}.assign_public_ip", step.spec.assign_public_ip) if step.spec.assign_public_ip is not None \
            else ("assign_public_ip", spec.assign_public_ip)
        if said[1]:
            raise InputError(spec.source, said[0], "expected no public IP with launch_type EC2: ECS gives tasks on "
                                                   "EC2 instances none (they need NAT or VPC endpoints)")
        check_reach(network, needs, False, spec.source, "subnets")
        return True
    if step.spec.assign_public_ip is not None:
        return public_ip(network, step.spec.assign_public_ip, needs, spec.source, f"{where}.assign_public_ip")
    return public_ip(network, spec.assign_public_ip, needs, spec.source, "assign_public_ip")
