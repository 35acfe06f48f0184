"""Steps on EC2 instance types and GPUs (issue 11, docs/compute.md): an ECS capacity provider on
an Auto Scaling group that ECS scales from zero. Deploy, redeploy and clean-up against the strict
moto; the spec's checks; the policies of the instances' role."""
import base64
import json
import warnings

import boto3
import pytest
from botocore.exceptions import ClientError
from helpers import REGION, record_algorithm, single_run

from yunpipe import cli
from yunpipe.aws.facade import is_mutating, watch_calls
from yunpipe.engine import compiler, instances
from yunpipe.engine import model as m
from yunpipe.engine.state import state_path
from yunpipe.engine.target import Target
from yunpipe.registry import AlgorithmRegistry
from yunpipe.resolve import resolve_workflow
from yunpipe.runtime import contract
from yunpipe.runtime.launcher.tasks import run_task_params
from yunpipe.specs.workflow import parse_workflow

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    warnings.simplefilter("ignore", UserWarning)
    import parliament

PROVIDER = "yunpipe-demo-ec2-g4dn-xlarge"
ROLE = "yunpipe-demo-instance-role"
LAUNCHER = "yunpipe-demo-change123-s3-launcher"
# AWS's delays after a change (tests/strict_aws.py), which setup-pipe waits out.
SETTLING = {"lambda-role-not-assumable-yet", "s3-permission-not-visible-yet", "autoscaling-instance-profile-not-valid-yet",
            "ecs-service-linked-role-not-assumable-yet", "ecs-capacity-provider-name-in-use"}
TARGET = Target("123456789012", "us-east-1", ("subnet-1",), ("sg-1",))


def client(service):
    return boto3.client(service, region_name=REGION)


def mutating(calls):
    return [c for c in calls if is_mutating(c[1])]


def workflow(**step) -> dict:
    return {**single_run(), "process": {"type": "single_run", "algorithms": [
        {"name": "change123-s3", "variables": {"TEST_ENV": "x"}, **step}]}}


def compile_model(document):
    return compiler.build_model(resolve_workflow(parse_workflow(document, "workflow.json"), AlgorithmRegistry()), TARGET)


def test_a_gpu_step_deploys_an_auto_scaling_group_scaled_by_ecs_from_zero(moto, change123, write_workflow, capsys):
    path = write_workflow(workflow(gpu=1, concurrency=3))
    assert cli.setup_pipe_main(["-f", path]) == 0
    out = capsys.readouterr().out
    assert f"create capacity provider {PROVIDER}" in out and "on g4dn.xlarge instances, 1 GPU(s)" in out

    [template] = client("ec2").describe_launch_template_versions(
        LaunchTemplateName=PROVIDER, Versions=["$Latest"])["LaunchTemplateVersions"]
    data = template["LaunchTemplateData"]
    assert data["ImageId"] == f"resolve:ssm:{instances.ECS_AMI_PARAMETERS[True]}"
    assert data["InstanceType"] == "g4dn.xlarge" and data["IamInstanceProfile"] == {"Name": ROLE}
    assert data["MetadataOptions"] == {"HttpTokens": "required", "HttpEndpoint": "enabled", "HttpPutResponseHopLimit": 1}
    assert "echo ECS_CLUSTER=yunpipe-demo >> /etc/ecs/ecs.config" in base64.b64decode(data["UserData"]).decode()

    [group] = client("autoscaling").describe_auto_scaling_groups(AutoScalingGroupNames=[PROVIDER])["AutoScalingGroups"]
    assert (group["MinSize"], group["MaxSize"], group["DesiredCapacity"]) == (0, 3, 0)
    assert group["NewInstancesProtectedFromScaleIn"] is False
    # Every default subnet but us-east-1e's: that zone offers no g4dn.xlarge (as on AWS).
    subnets = sorted(s["SubnetId"] for s in client("ec2").describe_subnets()["Subnets"]
                     if s["DefaultForAz"] and s["AvailabilityZone"] != "us-east-1e")
    assert sorted(group["VPCZoneIdentifier"].split(",")) == subnets and len(subnets) == 5

    ecs = client("ecs")
    [provider] = ecs.describe_capacity_providers(capacityProviders=[PROVIDER])["capacityProviders"]
    assert provider["autoScalingGroupProvider"]["managedScaling"]["status"] == "ENABLED"
    assert provider["autoScalingGroupProvider"]["managedScaling"]["targetCapacity"] == 100
    [cluster] = ecs.describe_clusters(clusters=["yunpipe-demo"])["clusters"]
    assert cluster["capacityProviders"] == [PROVIDER]
    profile = client("iam").get_instance_profile(InstanceProfileName=ROLE)["InstanceProfile"]
    assert [r["RoleName"] for r in profile["Roles"]] == [ROLE]

    definition = ecs.describe_task_definition(taskDefinition="yunpipe-demo-change123-s3-task")["taskDefinition"]
    assert definition["requiresCompatibilities"] == ["EC2"] and definition["networkMode"] == "bridge"
    assert definition["containerDefinitions"][0]["resourceRequirements"] == [{"type": "GPU", "value": "1"}]

    with watch_calls() as calls:
        assert cli.setup_pipe_main(["-f", path]) == 0
    assert calls and mutating(calls) == []

    # The launcher starts the step's tasks on the provider, with no launch type or awsvpc settings.
    environment = client("lambda").get_function_configuration(FunctionName=LAUNCHER)["Environment"]["Variables"]
    assert environment["YUNPIPE_CAPACITY_PROVIDER"] == PROVIDER
    params = run_task_params(contract.LauncherConfig.from_env(environment), 1)
    assert params["capacityProviderStrategy"] == [{"capacityProvider": PROVIDER, "weight": 1}]
    assert "launchType" not in params and "networkConfiguration" not in params
    [task] = ecs.run_task(**params)["tasks"]
    assert task["capacityProviderName"] == PROVIDER
    assert moto.rules_fired() <= SETTLING  # retried, as on AWS


def test_clean_up_removes_the_instances_resources_and_nothing_of_the_users(moto, change123, write_workflow):
    ec2, autoscaling, ecs, iam = (client(s) for s in ("ec2", "autoscaling", "ecs", "iam"))
    # The user's own: a launch template, a group and a provider, an instance profile under yunpipe's path.
    ec2.create_launch_template(LaunchTemplateName="theirs", LaunchTemplateData={"InstanceType": "m5.large"})
    subnet = ec2.describe_subnets()["Subnets"][0]["SubnetId"]
    autoscaling.create_auto_scaling_group(AutoScalingGroupName="theirs", MinSize=0, MaxSize=1, VPCZoneIdentifier=subnet,
                                          LaunchTemplate={"LaunchTemplateName": "theirs", "Version": "$Latest"})
    iam.create_service_linked_role(AWSServiceName="ecs.amazonaws.com")  # the account's: clean-up keeps it
    ecs.create_capacity_provider(name="theirs", autoScalingGroupProvider={"autoScalingGroupArn": "theirs"})
    iam.create_instance_profile(InstanceProfileName="theirs", Path=m.ROLE_PATH)

    path = write_workflow(workflow(instance_type="g4dn.xlarge", gpu=1))
    assert cli.setup_pipe_main(["-f", path]) == 0
    ecs.run_task(**run_task_params(contract.LauncherConfig.from_env(
        client("lambda").get_function_configuration(FunctionName=LAUNCHER)["Environment"]["Variables"]), 1))
    # The state file lost: clean-up finds them by their tags.
    state_path("demo").unlink()
    with watch_calls() as calls:
        assert cli.clean_up_main(["demo", "--purge"]) == 0
    operations = [op for _, op in mutating(calls)]
    # Instances go first (they keep ECS from deleting the cluster), providers once detached.
    assert (operations.index("DeleteAutoScalingGroup") < operations.index("DeleteCluster")
            < operations.index("DeleteCapacityProvider") < operations.index("DeleteLaunchTemplate"))
    assert [t["LaunchTemplateName"] for t in ec2.describe_launch_templates()["LaunchTemplates"]] == ["theirs"]
    assert [g["AutoScalingGroupName"] for g in autoscaling.describe_auto_scaling_groups()["AutoScalingGroups"]] == ["theirs"]
    providers = ecs.describe_capacity_providers(capacityProviders=["theirs", PROVIDER])["capacityProviders"]
    assert [p["name"] for p in providers] == ["theirs"]
    assert [p["InstanceProfileName"] for p in iam.list_instance_profiles()["InstanceProfiles"]] == ["theirs"]
    assert ROLE not in [r["RoleName"] for r in iam.list_roles()["Roles"]]
    # The service-linked roles are the account's: neither recorded nor found by tag, never deleted.
    assert sorted(r["Path"] for r in iam.list_roles(PathPrefix="/aws-service-role/")["Roles"]) == [
        "/aws-service-role/autoscaling.amazonaws.com/", "/aws-service-role/ecs.amazonaws.com/"]
    assert moto.rules_fired() <= SETTLING  # retried, as on AWS


def test_a_step_back_on_fargate_detaches_and_deletes_its_instance_type(moto, change123, write_workflow):
    assert cli.setup_pipe_main(["-f", write_workflow(workflow(instance_type="m5.large"))]) == 0
    [template] = client("ec2").describe_launch_template_versions(
        LaunchTemplateName="yunpipe-demo-ec2-m5-large", Versions=["$Latest"])["LaunchTemplateVersions"]
    assert template["LaunchTemplateData"]["ImageId"] == f"resolve:ssm:{instances.ECS_AMI_PARAMETERS[False]}"

    with watch_calls() as calls:
        assert cli.setup_pipe_main(["-f", write_workflow(workflow())]) == 0
    operations = [op for _, op in mutating(calls)]
    assert operations.index("PutClusterCapacityProviders") < operations.index("DeleteCapacityProvider")
    ecs = client("ecs")
    [cluster] = ecs.describe_clusters(clusters=["yunpipe-demo"])["clusters"]
    assert not cluster.get("capacityProviders")
    assert client("autoscaling").describe_auto_scaling_groups()["AutoScalingGroups"] == []
    assert client("ec2").describe_launch_templates()["LaunchTemplates"] == []
    definition = ecs.describe_task_definition(taskDefinition="yunpipe-demo-change123-s3-task")["taskDefinition"]
    assert definition["requiresCompatibilities"] == ["FARGATE"] and definition["networkMode"] == "awsvpc"
    assert moto.rules_fired() <= SETTLING  # retried, as on AWS


def test_dry_run_says_what_the_instances_need(moto, change123, write_workflow, capsys):
    assert cli.setup_pipe_main(["-f", write_workflow(workflow(instance_type="c5.2xlarge")), "--dry-run"]) == 0
    out = capsys.readouterr().out
    for line in ("create instance profile yunpipe-demo-instance-role",
                 "create launch template yunpipe-demo-ec2-c5-2xlarge (c5.2xlarge, AMI "
                 "/aws/service/ecs/optimized-ami/amazon-linux-2023/recommended/image_id, IMDSv2 only)",
                 "create Auto Scaling group yunpipe-demo-ec2-c5-2xlarge (0 to 10 instances, scaled by ECS)",
                 "on c5.2xlarge instances"):
        assert line in out
    # ECS's order: the cluster, then the provider, then the provider attached to the cluster.
    cluster = out.index("create ECS cluster yunpipe-demo\n")
    provider = out.index("create capacity provider yunpipe-demo-ec2-c5-2xlarge")
    attached = out.index("let ECS cluster yunpipe-demo run tasks on yunpipe-demo-ec2-c5-2xlarge")
    assert cluster < provider < attached
    assert client("autoscaling").describe_auto_scaling_groups()["AutoScalingGroups"] == []


def test_the_algorithms_instance_type_is_the_default_and_a_step_may_set_fargate(aws_env):
    record_algorithm("change123-s3", "user/change123-s3:1", instance_type="p3.2xlarge", gpu=1)
    model = compile_model(workflow())
    [group] = model.instance_groups
    assert (group.instance_type, group.gpu) == ("p3.2xlarge", True)
    assert model.steps[0].task_definition.registration["requiresCompatibilities"] == ["EC2"]
    # "" on the step: Fargate, whatever the algorithm suggests.
    model = compile_model(workflow(instance_type="", gpu=0))
    assert model.instance_groups == () and model.instance_role == () and model.cluster_capacity_providers == ()
    registration = model.steps[0].task_definition.registration
    assert registration["requiresCompatibilities"] == ["FARGATE"]
    assert "resourceRequirements" not in registration["containerDefinitions"][0]


def test_steps_of_one_instance_type_share_its_group(aws_env):
    for name in ("step-a", "step-b", "step-c"):
        record_algorithm(name, f"user/{name}:1", variables=[])
    document = {"name": "seq", "input_s3_name": "seq-in-bucket", "output_s3_name": "seq-out-bucket",
                "process": {"type": "sequence_run", "algorithms": [
                    {"name": "step-a", "instance_type": "g5.xlarge", "concurrency": 2},
                    {"name": "step-b", "instance_type": "g5.xlarge", "gpu": 1, "concurrency": 3},
                    {"name": "step-c", "capacity": "FARGATE_SPOT"}]}}
    model = compile_model(document)
    [group] = model.instance_groups
    assert group.gpu and group.auto_scaling_group.max_size == 5
    assert model.cluster_capacity_providers[0].capacity_providers == ("FARGATE", "FARGATE_SPOT", "yunpipe-seq-ec2-g5-xlarge")
    providers = [s.function.environment["YUNPIPE_CAPACITY_PROVIDER"] for s in model.steps]
    assert providers == ["yunpipe-seq-ec2-g5-xlarge", "yunpipe-seq-ec2-g5-xlarge", "FARGATE_SPOT"]


def test_the_instance_role_lints_clean_and_is_scoped_to_the_cluster(aws_env):
    record_algorithm("change123-s3", "user/change123-s3:1")
    [role] = compile_model(workflow(gpu=1)).instance_role
    assert role.trust_policy["Statement"][0]["Principal"] == {"Service": "ec2.amazonaws.com"}
    findings = parliament.analyze_policy_string(json.dumps(role.policy), include_community_auditors=True).findings
    assert [(f.issue, f.detail) for f in findings] == []
    resources = {s["Sid"]: s["Resource"] for s in role.policy["Statement"]}
    assert resources == {"JoinCluster": "arn:aws:ecs:us-east-1:123456789012:cluster/yunpipe-demo",
                         "RunTasks": "arn:aws:ecs:us-east-1:123456789012:container-instance/yunpipe-demo/*",
                         # No resource-level permission exists for it.
                         "FindEndpoint": "*"}


@pytest.mark.parametrize("step, field, message", [
    ({"instance_type": "G4DN.XLARGE"}, "instance_type", "expected an EC2 instance type"),
    ({"gpu": 9}, "gpu", "expected a number of GPUs from 0 to 8"),
    ({"gpu": 1, "capacity": "FARGATE_SPOT"}, "capacity", "expected no capacity with gpu"),
    ({"instance_type": "m5.large", "capacity": "FARGATE_SPOT"}, "capacity", "expected no capacity with instance_type"),
    ({"instance_type": "c7g.large"}, "instance_type", "expected an x86-64 instance type, got Graviton"),
    ({"instance_type": "m5.large", "gpu": 1}, "gpu", "expected a GPU instance type"),
    ({"gpu": 2}, "instance_type", "expected an instance type with 2 GPUs"),
    ({"gpu": 1, "ephemeral_storage_gib": 50}, "ephemeral_storage_gib", "expected no ephemeral_storage_gib"),
])
def test_bad_instance_settings_name_the_file_and_field(change123, write_workflow, capsys, step, field, message):
    path = write_workflow(workflow(**step))
    assert cli.setup_pipe_main(["-f", path, "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert f"{path}: process.algorithms[0].{field}: {message}" in err


def _refused(path, *args):
    """setup-pipe's exit status and stderr, and that no call changed anything."""
    with watch_calls() as calls:
        status = cli.setup_pipe_main(["-f", path, *args])
    assert mutating(calls) == []
    return status


def test_an_instance_type_no_zone_of_the_region_offers_is_refused_before_anything_is_created(
        moto, change123, write_workflow, capsys):
    # moto's offerings, as AWS's: me-central-1 has no g4dn.xlarge in any zone.
    path = write_workflow(workflow(instance_type="g4dn.xlarge", gpu=1))
    assert _refused(path, "--region", "me-central-1") == 2
    assert (f"{path}: process.algorithms[0].instance_type: expected an instance type offered in me-central-1: "
            "no Availability Zone of me-central-1 offers g4dn.xlarge") in capsys.readouterr().err


def test_an_algorithms_instance_type_no_zone_offers_names_the_algorithm(moto, write_workflow, capsys):
    record_algorithm("change123-s3", "user/change123-s3:1", instance_type="g4dn.xlarge")
    assert _refused(write_workflow(workflow()), "--region", "me-central-1") == 2
    assert "change123-s3@1: instance_type: expected an instance type offered in me-central-1" in capsys.readouterr().err


def test_subnets_in_no_zone_offering_the_type_are_refused(moto, change123, write_workflow, capsys):
    [subnet] = [s["SubnetId"] for s in client("ec2").describe_subnets()["Subnets"]
                if s["DefaultForAz"] and s["AvailabilityZone"] == "us-east-1e"]
    path = write_workflow({**workflow(gpu=1), "subnets": [subnet]})
    assert _refused(path) == 2
    assert (f"{path}: process.algorithms[0].instance_type: expected an instance type offered in the Availability "
            f"Zone of a subnet: g4dn.xlarge is offered in us-east-1a, us-east-1b, us-east-1c, us-east-1d, "
            f"us-east-1f, none of the subnets {subnet}") in capsys.readouterr().err


@pytest.mark.parametrize("step, field, message", [
    # 16384 MiB installed, 5% kept by the kernel and the ECS agent (target.ECS_MEMORY_OVERHEAD_PERCENT).
    ({"gpu": 1, "memory": 16384}, "memory",
     "expected at most 15564 MiB on g4dn.xlarge (16384 MiB installed, less what the kernel and ECS agent keep), "
     "got 16384 MiB"),
    ({"instance_type": "g4dn.xlarge", "gpu": 4}, "gpu", "expected at most 1 GPU(s), what one g4dn.xlarge has, got 4"),
])
def test_a_task_bigger_than_its_instance_type_is_refused(moto, change123, write_workflow, capsys, step, field, message):
    path = write_workflow(workflow(**step))
    assert _refused(path) == 2
    assert f"{path}: process.algorithms[0].{field}: {message}" in capsys.readouterr().err


def test_an_algorithms_memory_too_big_for_its_instance_names_the_algorithm(moto, write_workflow, capsys):
    record_algorithm("change123-s3", "user/change123-s3:1", instance_type="m5.large", memory={"suggested": 8000})
    assert _refused(write_workflow(workflow())) == 2
    assert "change123-s3@1: memory.suggested: expected at most 7782 MiB on m5.large" in capsys.readouterr().err


def test_a_task_that_fits_its_instance_deploys(moto, change123, write_workflow):
    # The most a task may ask for on one g4dn.12xlarge: all 4 GPUs; on g4dn.xlarge all its memory
    # but ECS's overhead.
    path = write_workflow(workflow(instance_type="g4dn.12xlarge", gpu=4))
    assert cli.setup_pipe_main(["-f", path]) == 0
    [group] = client("autoscaling").describe_auto_scaling_groups()["AutoScalingGroups"]
    assert group["AutoScalingGroupName"] == "yunpipe-demo-ec2-g4dn-12xlarge"
    assert cli.setup_pipe_main(["-f", write_workflow(workflow(gpu=1, memory=15564))]) == 0
    [group] = client("autoscaling").describe_auto_scaling_groups()["AutoScalingGroups"]
    assert group["AutoScalingGroupName"] == PROVIDER


def test_an_algorithm_asking_for_an_instance_type_refuses_a_spot_step(aws_env, write_workflow, capsys):
    record_algorithm("change123-s3", "user/change123-s3:1", instance_type="m5.large")
    path = write_workflow(workflow(capacity="FARGATE_SPOT"))
    assert cli.setup_pipe_main(["-f", path, "--dry-run"]) == 2
    assert (f"{path}: process.algorithms[0].capacity: expected no capacity on a step that runs on EC2 (m5.large"
            in capsys.readouterr().err)


def test_strict_aws_refuses_what_ecs_refuses_for_instances(moto):
    ecs = client("ecs")
    client("iam").create_service_linked_role(AWSServiceName="ecs.amazonaws.com")
    moto.clock.sleep(moto.service_linked_role_propagation_seconds)
    with pytest.raises(ClientError, match="Auto Scaling group ARN"):
        ecs.create_capacity_provider(name="nogroup", autoScalingGroupProvider={"autoScalingGroupArn": "nogroup"})
    with pytest.raises(ClientError, match="do not support GPU"):
        ecs.register_task_definition(family="f", requiresCompatibilities=["FARGATE"], networkMode="awsvpc", cpu="1024",
                                     memory="2048", containerDefinitions=[{
                                         "name": "c", "image": "i", "memory": 2048,
                                         "resourceRequirements": [{"type": "GPU", "value": "1"}]}])
    ec2 = client("ec2")
    ec2.create_launch_template(LaunchTemplateName="lt-x", LaunchTemplateData={"InstanceType": "m5.large"})
    client("autoscaling").create_auto_scaling_group(
        AutoScalingGroupName="g", MinSize=0, MaxSize=1, VPCZoneIdentifier=ec2.describe_subnets()["Subnets"][0]["SubnetId"],
        LaunchTemplate={"LaunchTemplateName": "lt-x", "Version": "$Latest"})
    ecs.create_capacity_provider(name="p", autoScalingGroupProvider={"autoScalingGroupArn": "g"})
    ecs.create_cluster(clusterName="c", capacityProviders=["p"])
    with pytest.raises(ClientError, match="in use by cluster c"):
        ecs.delete_capacity_provider(capacityProvider="p")
    assert moto.rules_fired() == {"ecs-capacity-provider-no-group", "ecs-fargate-gpu", "ecs-capacity-provider-in-use"}


def test_a_gpu_step_in_a_fresh_account_then_clean_up_then_setup_again(moto, change123, write_workflow):
    """A fresh account has neither ECS's nor Auto Scaling's service-linked role; the instance
    profile is refused by Auto Scaling for a while after its creation; a deleted capacity
    provider's name stays taken for a while. setup-pipe creates the roles and waits out the rest."""
    iam, ecs = client("iam"), client("ecs")
    path = write_workflow(workflow(gpu=1))
    with watch_calls() as calls:
        assert cli.setup_pipe_main(["-f", path]) == 0
    assert [op for _, op in mutating(calls)][:2] == ["CreateServiceLinkedRole", "CreateServiceLinkedRole"]
    assert sorted(r["Path"] for r in iam.list_roles(PathPrefix="/aws-service-role/")["Roles"]) == [
        "/aws-service-role/autoscaling.amazonaws.com/", "/aws-service-role/ecs.amazonaws.com/"]
    assert "autoscaling-instance-profile-not-valid-yet" in moto.rules_fired()
    assert "ecs-service-linked-role-missing" not in moto.rules_fired()

    with watch_calls() as calls:
        assert cli.clean_up_main(["demo", "--purge"]) == 0
    operations = [op for _, op in mutating(calls)]
    # The cluster's deletion detaches its providers: no detaching call of a cluster being deleted.
    assert "PutClusterCapacityProviders" not in operations
    assert operations.index("DeleteCluster") < operations.index("DeleteCapacityProvider")
    # The provider's own delay, not hidden behind the queue's 60 s and the new profile's.
    moto.queue_reuse_seconds = moto.instance_profile_propagation_seconds = 0
    cleaned_at = moto.clock.time()
    assert cli.setup_pipe_main(["-f", path]) == 0
    assert "ecs-capacity-provider-name-in-use" in moto.rules_fired()
    assert moto.clock.time() - cleaned_at >= moto.capacity_provider_reuse_seconds
    [provider] = ecs.describe_capacity_providers(capacityProviders=[PROVIDER])["capacityProviders"]
    assert provider["status"] == "ACTIVE"
    [cluster] = ecs.describe_clusters(clusters=["yunpipe-demo"])["clusters"]
    assert cluster["capacityProviders"] == [PROVIDER]
    assert moto.rules_fired() <= SETTLING | {"sqs-queue-deleted-recently"}  # each waited out, as on AWS


def test_strict_aws_attaches_only_capacity_providers_that_exist(moto):
    """So a cluster can be given its providers only after they exist (the engine's order)."""
    ecs = client("ecs")
    client("iam").create_service_linked_role(AWSServiceName="ecs.amazonaws.com")
    moto.clock.sleep(moto.service_linked_role_propagation_seconds)
    ecs.create_cluster(clusterName="c")
    with pytest.raises(ClientError, match="The specified capacity provider was not found"):
        ecs.put_cluster_capacity_providers(cluster="c", capacityProviders=["FARGATE", PROVIDER],
                                           defaultCapacityProviderStrategy=[])
    ecs.put_cluster_capacity_providers(cluster="c", capacityProviders=["FARGATE_SPOT"], defaultCapacityProviderStrategy=[])
    assert moto.rules_fired() == {"ecs-capacity-provider-not-found"}
