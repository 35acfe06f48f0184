"""Private subnets (issue 20, item 11): what each subnet reaches is read from real moto route
tables, internet and NAT gateways and VPC endpoints (engine/network.py); a task gets a public IP
only where its subnets route to an internet gateway, or as the workflow says; a step whose
subnets reach neither a NAT gateway nor every endpoint it needs is refused at plan time, naming
what is missing, with nothing created."""
import boto3
import pytest
from botocore.exceptions import ClientError
from helpers import REGION, record_algorithm, single_run
from moto import mock_aws

from yunpipe import cli
from yunpipe.aws.facade import Aws, is_mutating, watch_calls
from yunpipe.aws.reader import Reader
from yunpipe.engine.network import TASK_SERVICES, SubnetReach, subnet_reach
from yunpipe.local.moto_patches import default_vpc_routes_to_internet
from yunpipe.runtime.contract import LauncherConfig
from yunpipe.runtime.launcher.tasks import run_task_params

ECR_IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/algo:1"
LAUNCHER = "yunpipe-demo-change123-s3-launcher"


def ec2():
    return boto3.client("ec2", region_name=REGION)


def route_table(vpc, subnet, **route):
    table = ec2().create_route_table(VpcId=vpc)["RouteTable"]["RouteTableId"]
    if route:
        ec2().create_route(RouteTableId=table, DestinationCidrBlock="0.0.0.0/0", **route)
    ec2().associate_route_table(RouteTableId=table, SubnetId=subnet)
    return table


@pytest.fixture
def vpc(moto):
    """A VPC of four subnets: public (internet gateway), behind a NAT gateway, private with
    every endpoint a task needs (S3 gateway endpoint on its table, interface endpoints with
    private DNS), and bare (the main table: no way out)."""
    client = ec2()
    vpc_id = client.create_vpc(CidrBlock="10.1.0.0/16")["Vpc"]["VpcId"]

    def subnet(n, zone="us-east-1a"):
        return client.create_subnet(VpcId=vpc_id, CidrBlock=f"10.1.{n}.0/24", AvailabilityZone=zone)["Subnet"]["SubnetId"]

    public, nat, endpoints, bare = subnet(1), subnet(2, "us-east-1b"), subnet(3), subnet(4)
    gateway = client.create_internet_gateway()["InternetGateway"]["InternetGatewayId"]
    client.attach_internet_gateway(InternetGatewayId=gateway, VpcId=vpc_id)
    route_table(vpc_id, public, GatewayId=gateway)
    allocation = client.allocate_address(Domain="vpc")["AllocationId"]
    nat_gateway = client.create_nat_gateway(SubnetId=public, AllocationId=allocation)["NatGateway"]["NatGatewayId"]
    route_table(vpc_id, nat, NatGatewayId=nat_gateway)
    private_table = route_table(vpc_id, endpoints)
    client.create_vpc_endpoint(VpcId=vpc_id, ServiceName=f"com.amazonaws.{REGION}.s3", RouteTableIds=[private_table])
    for service in ("sqs", "logs", "ecr.api", "ecr.dkr"):
        client.create_vpc_endpoint(VpcId=vpc_id, ServiceName=f"com.amazonaws.{REGION}.{service}",
                                   VpcEndpointType="Interface", SubnetIds=[endpoints], PrivateDnsEnabled=True)
    group = client.create_security_group(GroupName="tasks", Description="tasks", VpcId=vpc_id)["GroupId"]
    return {"id": vpc_id, "public": public, "nat": nat, "endpoints": endpoints, "bare": bare, "group": group,
            "gateway": gateway, "nat_gateway": nat_gateway}


def reach(*subnets):
    return subnet_reach(Reader(Aws(boto3.Session(region_name=REGION))), list(subnets))


def test_each_subnet_s_reach_is_read_from_its_route_table_and_the_vpc_s_endpoints(vpc):
    public, nat, endpoints, bare = reach(vpc["public"], vpc["nat"], vpc["endpoints"], vpc["bare"])
    interface = {"sqs", "logs", "ecr.api", "ecr.dkr"}
    assert public == SubnetReach(vpc["public"], "us-east-1a", True, False, frozenset(interface), vpc["id"])
    assert (nat.internet_gateway, nat.nat, nat.zone) == (False, True, "us-east-1b")
    # The S3 gateway endpoint serves only the route table it is on.
    assert endpoints.endpoints == frozenset(interface | {"s3"}) and not endpoints.egress
    assert (bare.internet_gateway, bare.nat, bare.endpoints) == (False, False, frozenset(interface))
    assert [r.missing() for r in (public, nat, endpoints)] == [(), (), ()]
    assert bare.missing() == ("s3",)
    # An internet gateway serves a task with a public IP only.
    assert public.missing(public_ip=False) == ("s3",)
    assert endpoints.missing((*TASK_SERVICES, "secretsmanager")) == ("secretsmanager",)


def test_a_default_route_elsewhere_is_a_way_out_and_a_blackhole_is_none(vpc):
    """A transit gateway to a central NAT (common in institutional accounts) is taken as a way
    out, unverified; a route whose target is gone is not."""
    transit = ec2().create_transit_gateway()["TransitGateway"]["TransitGatewayId"]
    table = ec2().describe_route_tables(Filters=[{"Name": "association.subnet-id", "Values": [vpc["nat"]]}])
    table_id = table["RouteTables"][0]["RouteTableId"]
    ec2().replace_route(RouteTableId=table_id, DestinationCidrBlock="0.0.0.0/0", TransitGatewayId=transit)
    (through_transit,) = reach(vpc["nat"])
    assert (through_transit.nat, through_transit.other_route, through_transit.missing()) == (False, transit, ())


def test_unknown_subnets_are_left_out_and_offline_reads_nothing(vpc):
    assert [r.subnet_id for r in reach("subnet-0123456789abcdef0", vpc["bare"])] == [vpc["bare"]]
    assert subnet_reach(Reader(Aws(boto3.Session(region_name=REGION)), offline=True), [vpc["bare"]]) == ()


def test_the_default_vpc_routes_to_an_internet_gateway_as_aws_makes_it(moto):
    """The tests' AWS and the local cloud (moto_patches.default_vpc_routes_to_internet)."""
    default = [s["SubnetId"] for s in ec2().describe_subnets(Filters=[{"Name": "default-for-az", "Values": ["true"]}])["Subnets"]]
    reaches = reach(*default)
    assert len(reaches) == len(default) > 1
    assert all(r.internet_gateway and r.public_on_launch for r in reaches)


def launcher_config():
    environment = boto3.client("lambda", region_name=REGION).get_function_configuration(
        FunctionName=LAUNCHER)["Environment"]["Variables"]
    return LauncherConfig.from_env(environment)


def deploy(write_workflow, *subnets, group=None, image_algorithm="change123-s3", **fields):
    document = single_run(algorithm=image_algorithm, subnets=list(subnets), **fields)
    if group:
        document["security_groups"] = [group]
    return cli.setup_pipe_main(["-f", write_workflow(document)])


def test_the_default_vpc_gives_tasks_a_public_ip(moto, change123, write_workflow):
    assert cli.setup_pipe_main(["-f", write_workflow(single_run())]) == 0
    assert launcher_config().assign_public_ip == "ENABLED"


def test_subnets_behind_a_nat_gateway_give_tasks_no_public_ip(vpc, change123, write_workflow):
    assert deploy(write_workflow, vpc["nat"], group=vpc["group"]) == 0
    config = launcher_config()
    assert config.assign_public_ip == "DISABLED"
    network = run_task_params(config, 1)["networkConfiguration"]["awsvpcConfiguration"]
    assert network == {"subnets": [vpc["nat"]], "securityGroups": [vpc["group"]], "assignPublicIp": "DISABLED"}


def test_private_subnets_with_every_endpoint_run_an_ecr_image_without_a_public_ip(vpc, write_workflow):
    record_algorithm("change123-s3", ECR_IMAGE)
    assert deploy(write_workflow, vpc["endpoints"], group=vpc["group"]) == 0
    assert launcher_config().assign_public_ip == "DISABLED"


def refused(write_workflow, capsys, *subnets, **fields):
    with watch_calls() as calls:
        assert deploy(write_workflow, *subnets, **fields) == 2
    assert [c for c in calls if is_mutating(c[1])] == []
    return capsys.readouterr().err


def test_private_subnets_without_nat_or_endpoints_are_refused_naming_what_is_missing(vpc, write_workflow, capsys):
    record_algorithm("change123-s3", ECR_IMAGE)
    err = refused(write_workflow, capsys, vpc["bare"])
    assert "workflow.json: subnets: expected subnets from which tasks reach ecr.api, ecr.dkr, s3, sqs, logs: " \
           f"{vpc['bare']} has no route to an internet or NAT gateway and cannot reach s3 (add a NAT gateway, " \
           "or VPC endpoints: a gateway endpoint for s3)" in err


def test_an_image_outside_ecr_needs_a_nat_gateway_in_private_subnets(vpc, change123, write_workflow, capsys):
    err = refused(write_workflow, capsys, vpc["endpoints"])
    assert f"{vpc['endpoints']} has no route to an internet or NAT gateway and cannot reach docker.io " \
           "(outside AWS: only a NAT gateway reaches it)" in err


def test_mixed_subnets_are_refused_unless_the_workflow_says(vpc, change123, write_workflow, capsys):
    """Both kinds, unsaid: either some tasks get a useless public IP or others none where they
    need one. With assign_public_ip the workflow decides, and each subnet is checked under it."""
    err = refused(write_workflow, capsys, vpc["public"], vpc["nat"])
    assert f"subnets: expected subnets that all route to an internet gateway, or none of them: {vpc['public']} do, " \
           f"{vpc['nat']} do not; list one kind, or set assign_public_ip" in err
    assert deploy(write_workflow, vpc["public"], vpc["nat"], assign_public_ip=True) == 0
    assert launcher_config().assign_public_ip == "ENABLED"


def test_no_public_ip_where_only_an_internet_gateway_leads_out_is_refused(vpc, change123, write_workflow, capsys):
    err = refused(write_workflow, capsys, vpc["public"], assign_public_ip=False)
    assert f"workflow.json: assign_public_ip: expected subnets from which tasks reach docker.io, s3, sqs, logs: " \
           f"{vpc['public']} routes to an internet gateway, which serves no task without a public IP, " \
           "and cannot reach s3 (add a NAT gateway" in err


def test_a_step_s_own_setting_wins_and_is_blamed(vpc, change123, write_workflow, capsys):
    document = single_run(subnets=[vpc["public"]], assign_public_ip=True)
    document["process"]["algorithms"][0]["assign_public_ip"] = False
    with watch_calls() as calls:
        assert cli.setup_pipe_main(["-f", write_workflow(document)]) == 2
    assert [c for c in calls if is_mutating(c[1])] == []
    assert "workflow.json: process.algorithms[0].assign_public_ip: expected subnets" in capsys.readouterr().err


def test_subnets_that_do_not_exist_or_span_vpcs_are_refused(vpc, change123, write_workflow, capsys):
    assert "subnets: expected subnets of the account in us-east-1, not found: subnet-0123456789abcdef0" in \
        refused(write_workflow, capsys, vpc["nat"], "subnet-0123456789abcdef0")
    default = ec2().describe_subnets(Filters=[{"Name": "default-for-az", "Values": ["true"]}])["Subnets"][0]
    assert f"subnets: expected subnets of one VPC, got {', '.join(sorted([vpc['id'], default['VpcId']]))}" in \
        refused(write_workflow, capsys, vpc["nat"], default["SubnetId"], assign_public_ip=True)


def test_an_ec2_step_takes_no_public_ip_setting_and_its_instances_need_ecs(vpc, write_workflow, capsys):
    """Tasks on EC2 instances use their instance's network: the instance's subnet must lead
    out (its own public IP at launch, NAT or endpoints, ECS's own included)."""
    record_algorithm("change123-s3", ECR_IMAGE, instance_type="m5.large")
    err = refused(write_workflow, capsys, vpc["endpoints"])
    assert f"{vpc['endpoints']} has no route to an internet or NAT gateway and cannot reach ecs, ecs-agent, " \
           "ecs-telemetry" in err
    document = single_run(subnets=[vpc["nat"]])
    document["process"]["algorithms"][0]["assign_public_ip"] = True
    assert cli.setup_pipe_main(["-f", write_workflow(document)]) == 2
    assert "process.algorithms[0].assign_public_ip: expected no assign_public_ip on a step that runs on EC2 " \
           "instances (m5.large)" in capsys.readouterr().err


@pytest.mark.parametrize("where", ["workflow", "step"])
def test_assign_public_ip_must_be_a_boolean(change123, write_workflow, capsys, where):
    document = single_run()
    (document if where == "workflow" else document["process"]["algorithms"][0])["assign_public_ip"] = "yes"
    assert cli.setup_pipe_main(["-f", write_workflow(document), "--dry-run"]) == 2
    field = "assign_public_ip" if where == "workflow" else "process.algorithms[0].assign_public_ip"
    assert f"workflow.json: {field}: expected boolean, got \"yes\"" in capsys.readouterr().err


def test_a_dry_run_offline_plans_a_public_ip_as_before(change123, write_workflow, capsys, aws_env, monkeypatch):
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    path = write_workflow(single_run())
    assert cli.setup_pipe_main(["-f", path, "--dry-run", "--endpoint-url", "http://127.0.0.1:9"]) == 0
    assert "not reachable" in capsys.readouterr().out


def test_moto_s_default_vpc_still_has_no_internet_gateway():
    """moto_patches.default_vpc_routes_to_internet corrects this; once moto gives its default VPC
    an internet gateway by itself, the fix goes."""
    with mock_aws():
        assert ec2().describe_internet_gateways()["InternetGateways"] == []
        with default_vpc_routes_to_internet():
            (gateway,) = ec2().describe_internet_gateways()["InternetGateways"]
            routes = [r for t in ec2().describe_route_tables()["RouteTables"] for r in t["Routes"]]
            assert {"DestinationCidrBlock": "0.0.0.0/0", "GatewayId": gateway["InternetGatewayId"]}.items() <= \
                next(r for r in routes if r["DestinationCidrBlock"] == "0.0.0.0/0").items()


def run_task(**params):
    return boto3.client("ecs", region_name=REGION).run_task(cluster="c", taskDefinition="t", **params)


@pytest.mark.parametrize("placement", [{"launchType": "EC2"},
                                       {"capacityProviderStrategy": [{"capacityProvider": "asg-provider"}]}])
def test_strict_aws_refuses_a_public_ip_for_tasks_on_ec2(moto, placement):
    """A public IP is Fargate's alone (aws/amazon-ecs-cli#627, aws/aws-cdk#13348)."""
    with pytest.raises(ClientError) as refusal:
        run_task(networkConfiguration={"awsvpcConfiguration": {"subnets": ["subnet-1"], "assignPublicIp": "ENABLED"}},
                 **placement)
    assert refusal.value.response["Error"] == {"Code": "InvalidParameterException",
                                               "Message": "Assign public IP is not supported for this launch type."}
    assert moto.rules_fired() == {"ecs-public-ip-on-ec2"}


def test_the_launcher_asks_no_public_ip_on_ec2(vpc, moto, change123, write_workflow):
    """launch_type EC2 (awsvpc tasks on the cluster's instances): the deployed launcher's RunTask
    names subnets and groups, no public IP, and passes the strict layer."""
    assert deploy(write_workflow, vpc["nat"], group=vpc["group"], launch_type="EC2") == 0
    params = run_task_params(launcher_config(), 1)
    assert "assignPublicIp" not in params["networkConfiguration"]["awsvpcConfiguration"]
    # Past the strict layer, moto looks for a registered instance to place it on; it has none.
    with pytest.raises(Exception, match="No instances found in cluster yunpipe-demo"):
        boto3.client("ecs", region_name=REGION).run_task(**params)
    assert "ecs-public-ip-on-ec2" not in moto.rules_fired()


def test_launch_type_ec2_tasks_have_no_public_ip_so_need_nat_or_endpoints(vpc, change123, write_workflow, capsys):
    """ECS gives awsvpc tasks on EC2 no public IP: an internet gateway alone leads them nowhere."""
    err = refused(write_workflow, capsys, vpc["public"], launch_type="EC2")
    assert f"subnets: expected subnets from which tasks reach docker.io, s3, sqs, logs: {vpc['public']} routes to an " \
           "internet gateway, which serves no task without a public IP" in err
    err = refused(write_workflow, capsys, vpc["nat"], launch_type="EC2", assign_public_ip=True)
    assert "assign_public_ip: expected no public IP with launch_type EC2" in err


def test_doctor_shows_what_the_subnets_reach_and_blocks_where_setup_pipe_would_refuse(vpc, write_workflow, capsys):
    record_algorithm("change123-s3", ECR_IMAGE)
    bare = write_workflow(single_run(subnets=[vpc["bare"]]), "bare.json")
    capsys.readouterr()
    with watch_calls() as calls:
        assert cli.main(["doctor", "-f", str(bare)]) == 1
    assert [c for c in calls if is_mutating(c[1])] == []
    network = [line for line in capsys.readouterr().out.splitlines() if line.startswith("✗ network")]
    assert len(network) == 1 and f"{vpc['bare']} has no route to an internet or NAT gateway" in network[0]
    assert "add a NAT gateway, or the VPC endpoints it names" in network[0]

    behind_nat = write_workflow(single_run(subnets=[vpc["nat"]]), "nat.json")
    assert cli.main(["doctor", "-f", str(behind_nat)]) == 0
    assert "✓ network: 1 subnet(s) reach out through NAT gateway" in capsys.readouterr().out
