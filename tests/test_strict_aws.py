"""The strict layer (tests/strict_aws.py) refuses, with AWS's own error codes, each
misconfiguration real AWS refuses and plain moto accepts: if a rule stopped firing, the deploy
tests that lean on it would prove nothing."""
import io
import json
import zipfile

import boto3
import pytest
import requests
from botocore.exceptions import ClientError
from helpers import REGION

BUCKET = "strict-bucket"


def client(service):
    return boto3.client(service, region_name=REGION)


def refused(call, code: str, message: str = "") -> None:
    with pytest.raises(ClientError) as raised:
        call()
    assert raised.value.response["Error"]["Code"] == code
    assert message in raised.value.response["Error"]["Message"]


def _zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("handler.py", "def handler(event, context):\n    return event\n")
    return buffer.getvalue()


def new_function(strict, name: str, allow_bucket: str | None = None) -> str:
    role = client("iam").create_role(RoleName=f"{name}-role", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    strict.clock.sleep(strict.role_propagation_seconds)
    arn = client("lambda").create_function(FunctionName=name, Runtime="python3.12", Role=role, Handler="handler.handler",
                                           Code={"ZipFile": _zip()})["FunctionArn"]
    if allow_bucket:
        client("lambda").add_permission(FunctionName=name, StatementId="s3", Action="lambda:InvokeFunction",
                                        Principal="s3.amazonaws.com", SourceArn=f"arn:aws:s3:::{allow_bucket}")
        strict.clock.sleep(strict.permission_propagation_seconds)
    return arn


def lambda_entry(entry_id: str, arn: str, events=("s3:ObjectCreated:*",), prefix="", suffix="") -> dict:
    entry = {"Id": entry_id, "LambdaFunctionArn": arn, "Events": list(events)}
    rules = [{"Name": n, "Value": v} for n, v in (("prefix", prefix), ("suffix", suffix)) if v]
    if rules:
        entry["Filter"] = {"Key": {"FilterRules": rules}}
    return entry


def notify(*entries) -> None:
    client("s3").put_bucket_notification_configuration(
        Bucket=BUCKET, NotificationConfiguration={"LambdaFunctionConfigurations": list(entries)})


@pytest.fixture
def functions(moto):
    client("s3").create_bucket(Bucket=BUCKET)
    return new_function(moto, "first", BUCKET), new_function(moto, "second", BUCKET)


@pytest.mark.parametrize("first, second", [
    (dict(prefix="in/"), dict(prefix="in/deep/")),        # one prefix starts the other
    (dict(), dict(suffix=".txt")),                        # an empty filter overlaps everything
    (dict(prefix="in/", suffix=".txt"), dict(prefix="in/", suffix="a.txt")),
    (dict(events=("s3:ObjectCreated:*",)), dict(events=("s3:ObjectCreated:Put",))),
])
def test_overlapping_notifications_for_one_event_type_are_ambiguous(functions, first, second):
    refused(lambda: notify(lambda_entry("a", functions[0], **first), lambda_entry("b", functions[1], **second)),
            "InvalidArgument", "Configuration is ambiguously defined")


@pytest.mark.parametrize("first, second", [
    (dict(prefix="in/"), dict(prefix="out/")),
    (dict(suffix=".txt"), dict(suffix=".csv")),
    (dict(events=("s3:ObjectCreated:*",)), dict(events=("s3:ObjectRemoved:*",))),
])
def test_disjoint_notifications_are_accepted(functions, first, second):
    notify(lambda_entry("a", functions[0], **first), lambda_entry("b", functions[1], **second))
    assert len(client("s3").get_bucket_notification_configuration(Bucket=BUCKET)["LambdaFunctionConfigurations"]) == 2


def test_a_lambda_destination_needs_its_s3_permission_first(moto):
    client("s3").create_bucket(Bucket=BUCKET)
    unpermitted = new_function(moto, "unpermitted")
    refused(lambda: notify(lambda_entry("a", unpermitted)), "InvalidArgument", "Unable to validate")
    other_bucket = new_function(moto, "other-bucket", allow_bucket="another-bucket")
    refused(lambda: notify(lambda_entry("a", other_bucket)), "InvalidArgument", "Unable to validate")
    permitted = new_function(moto, "permitted", allow_bucket=BUCKET)
    notify(lambda_entry("a", permitted))


def test_an_sqs_destination_needs_a_queue_policy_letting_s3_send(moto):
    s3, sqs = client("s3"), client("sqs")
    s3.create_bucket(Bucket=BUCKET)
    url = sqs.create_queue(QueueName="destination")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    configuration = {"QueueConfigurations": [{"Id": "q", "QueueArn": arn, "Events": ["s3:ObjectCreated:*"]}]}
    refused(lambda: s3.put_bucket_notification_configuration(Bucket=BUCKET, NotificationConfiguration=configuration),
            "InvalidArgument", "Unable to validate")
    sqs.set_queue_attributes(QueueUrl=url, Attributes={"Policy": json.dumps({"Statement": [{
        "Effect": "Allow", "Principal": {"Service": "s3.amazonaws.com"}, "Action": "sqs:SendMessage", "Resource": arn}]})})
    s3.put_bucket_notification_configuration(Bucket=BUCKET, NotificationConfiguration=configuration)


def test_a_role_created_moments_ago_cannot_be_assumed_by_lambda(moto):
    role = client("iam").create_role(RoleName="fresh", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    create = lambda: client("lambda").create_function(  # noqa: E731
        FunctionName="fresh", Runtime="python3.12", Role=role, Handler="handler.handler", Code={"ZipFile": _zip()})
    refused(create, "InvalidParameterValueException", "cannot be assumed by Lambda")
    moto.clock.sleep(moto.role_propagation_seconds)
    assert create()["FunctionName"] == "fresh"


def test_a_queue_name_is_refused_for_60_seconds_after_its_deletion(moto):
    sqs = client("sqs")
    sqs.delete_queue(QueueUrl=sqs.create_queue(QueueName="reused")["QueueUrl"])
    moto.clock.sleep(59)
    refused(lambda: sqs.create_queue(QueueName="reused"), "AWS.SimpleQueueService.QueueDeletedRecently")
    moto.clock.sleep(1)
    assert sqs.create_queue(QueueName="reused")["QueueUrl"].endswith("/reused")


def _register(cpu="256", memory="512", **extra):
    return client("ecs").register_task_definition(
        family="sized", networkMode="awsvpc", requiresCompatibilities=["FARGATE"], cpu=cpu, memory=memory,
        containerDefinitions=[{"name": "main", "image": "image", "memory": int(memory)}], **extra)


@pytest.mark.parametrize("cpu, memory", [("256", "4096"), ("512", "512"), ("1024", "9216"), ("300", "1024"),
                                         ("8192", "17408")])
def test_fargate_refuses_a_cpu_memory_pair_it_does_not_offer(moto, cpu, memory):
    refused(lambda: _register(cpu, memory), "ClientException", "No Fargate configuration exists")


@pytest.mark.parametrize("cpu, memory", [("256", "512"), ("256", "2048"), ("512", "4096"), ("4096", "30720"),
                                         ("8192", "20480"), ("16384", "122880")])
def test_fargate_accepts_its_pairs(moto, cpu, memory):
    assert _register(cpu, memory)["taskDefinition"]["cpu"] == cpu


@pytest.mark.parametrize("size, accepted", [(20, False), (21, True), (200, True), (201, False)])
def test_ephemeral_storage_is_21_to_200_gib(moto, size, accepted):
    register = lambda: _register(ephemeralStorage={"sizeInGiB": size})  # noqa: E731
    if accepted:
        assert register()["taskDefinition"]["ephemeralStorage"] == {"sizeInGiB": size}
    else:
        refused(register, "ClientException", "between 21 and 200")


def test_reserved_concurrency_leaves_100_unreserved_and_account_settings_say_so(aws_env):
    from moto import mock_aws
    from strict_aws import Clock, StrictAws

    strict = StrictAws(clock=Clock(manual=True), lambda_concurrency_limit=103)
    with mock_aws(), strict.active():
        lam = client("lambda")
        assert lam.get_account_settings()["AccountLimit"]["UnreservedConcurrentExecutions"] == 103
        for name in ("one", "two", "three"):
            new_function(strict, name)
        lam.put_function_concurrency(FunctionName="one", ReservedConcurrentExecutions=2)
        lam.put_function_concurrency(FunctionName="two", ReservedConcurrentExecutions=1)
        refused(lambda: lam.put_function_concurrency(FunctionName="three", ReservedConcurrentExecutions=1),
                "InvalidParameterValueException", "below its minimum value of [100]")
        assert lam.get_account_settings()["AccountLimit"]["UnreservedConcurrentExecutions"] == 100


def test_a_notification_to_another_regions_function_is_refused(moto):
    """Issue 20, item 6: S3 sends a bucket's events only within its region. moto 5.2 refuses it
    itself, with AWS's code and message, so the strict layer needs no rule; this keeps it so."""
    s3 = boto3.client("s3", region_name="eu-west-1")
    s3.create_bucket(Bucket="far-bucket", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    arn = new_function(moto, "near", allow_bucket="far-bucket")
    refused(lambda: s3.put_bucket_notification_configuration(
        Bucket="far-bucket", NotificationConfiguration={"LambdaFunctionConfigurations": [lambda_entry("n", arn)]}),
        "InvalidArgument", "The notification destination service region is not valid for the bucket location "
                           "constraint")
    assert moto.rules_fired() == set()
    client("s3").create_bucket(Bucket="near-bucket")
    client("lambda").add_permission(FunctionName="near", StatementId="near", Action="lambda:InvokeFunction",
                                    Principal="s3.amazonaws.com", SourceArn="arn:aws:s3:::near-bucket")
    moto.clock.sleep(moto.permission_propagation_seconds)
    client("s3").put_bucket_notification_configuration(
        Bucket="near-bucket", NotificationConfiguration={"LambdaFunctionConfigurations": [lambda_entry("n", arn)]})


def _group(name: str, profile: str | None = None) -> None:
    ec2 = client("ec2")
    data = {"InstanceType": "m5.large", **({"IamInstanceProfile": {"Name": profile}} if profile else {})}
    ec2.create_launch_template(LaunchTemplateName=f"{name}-lt", LaunchTemplateData=data)
    client("autoscaling").create_auto_scaling_group(
        AutoScalingGroupName=name, MinSize=0, MaxSize=1, VPCZoneIdentifier=ec2.describe_subnets()["Subnets"][0]["SubnetId"],
        LaunchTemplate={"LaunchTemplateName": f"{name}-lt", "Version": "$Latest"})


def test_a_fresh_account_has_no_ecs_service_linked_role_for_capacity_providers(moto):
    """CreateCapacityProvider needs ECS's role; CreateCluster with providers creates it, as ECS
    does, and cannot assume it until it settles; IAM refuses to create it twice."""
    ecs, iam = client("ecs"), client("iam")
    _group("g")
    create_provider = lambda: ecs.create_capacity_provider(  # noqa: E731
        name="p", autoScalingGroupProvider={"autoScalingGroupArn": "g"})
    refused(create_provider, "ClientException", "ECS Service Linked Role does not exist")
    create_cluster = lambda: ecs.create_cluster(clusterName="spot", capacityProviders=["FARGATE_SPOT"])  # noqa: E731
    refused(create_cluster, "InvalidParameterException", "Unable to assume the service linked role")
    assert [r["Path"] for r in iam.list_roles(PathPrefix="/aws-service-role/")["Roles"]] == [
        "/aws-service-role/ecs.amazonaws.com/"]
    refused(lambda: iam.create_service_linked_role(AWSServiceName="ecs.amazonaws.com"), "InvalidInput",
            "has been taken in this account")
    assert create_provider()["capacityProvider"]["name"] == "p"
    moto.clock.sleep(moto.service_linked_role_propagation_seconds)
    assert create_cluster()["cluster"]["capacityProviders"] == ["FARGATE_SPOT"]
    assert moto.rules_fired() == {"ecs-service-linked-role-missing", "ecs-service-linked-role-not-assumable-yet",
                                  "iam-service-linked-role-taken"}


def test_an_account_that_used_ecs_is_not_fresh(aws_env):
    from moto import mock_aws
    from strict_aws import Clock, StrictAws

    with mock_aws(), StrictAws(clock=Clock(manual=True), fresh_account=False).active() as strict:
        client("ecs").create_cluster(clusterName="spot", capacityProviders=["FARGATE_SPOT"])
    assert not strict.rules_fired()


def test_s3_sees_a_new_lambda_permission_only_some_seconds_later(moto):
    client("s3").create_bucket(Bucket=BUCKET)
    arn = new_function(moto, "late")
    client("lambda").add_permission(FunctionName="late", StatementId="s3", Action="lambda:InvokeFunction",
                                    Principal="s3.amazonaws.com", SourceArn=f"arn:aws:s3:::{BUCKET}")
    moto.clock.sleep(moto.permission_propagation_seconds - 1)
    refused(lambda: notify(lambda_entry("a", arn)), "InvalidArgument", "Unable to validate the following destination")
    moto.clock.sleep(1)
    notify(lambda_entry("a", arn))
    assert moto.rules_fired() == {"s3-permission-not-visible-yet"}


def test_a_capacity_provider_name_is_refused_for_a_while_after_its_deletion(moto):
    client("iam").create_service_linked_role(AWSServiceName="ecs.amazonaws.com")
    _group("g")
    ecs = client("ecs")
    create = lambda: ecs.create_capacity_provider(name="p", autoScalingGroupProvider={"autoScalingGroupArn": "g"})  # noqa: E731
    create()
    ecs.delete_capacity_provider(capacityProvider="p")
    moto.clock.sleep(moto.capacity_provider_reuse_seconds - 1)
    refused(create, "ClientException", "The specified capacity provider already exists")
    moto.clock.sleep(1)
    assert create()["capacityProvider"]["name"] == "p"
    assert moto.rules_fired() == {"ecs-capacity-provider-name-in-use"}


def test_auto_scaling_refuses_a_launch_template_whose_instance_profile_is_new(moto):
    client("iam").create_instance_profile(InstanceProfileName="fresh")
    refused(lambda: _group("g", "fresh"), "ValidationError",
            "Value (fresh) for parameter iamInstanceProfile.name is invalid. Invalid IAM Instance Profile name")
    moto.clock.sleep(moto.instance_profile_propagation_seconds)
    client("autoscaling").create_auto_scaling_group(
        AutoScalingGroupName="g", MinSize=0, MaxSize=1,
        VPCZoneIdentifier=client("ec2").describe_subnets()["Subnets"][0]["SubnetId"],
        LaunchTemplate={"LaunchTemplateName": "g-lt", "Version": "$Latest"})
    assert moto.rules_fired() == {"autoscaling-instance-profile-not-valid-yet"}


# Issue 20, items 4, 5, 9, 10: starting tasks and holding messages.

def _fargate_task(cpu="1024", memory="2048") -> str:
    return client("ecs").register_task_definition(
        family=f"f{cpu}", networkMode="awsvpc", requiresCompatibilities=["FARGATE"], cpu=cpu, memory=memory,
        containerDefinitions=[{"name": "main", "image": "image", "memory": int(memory)}])["taskDefinition"]["taskDefinitionArn"]


def _run(task_definition, count=1, **params):
    ec2 = client("ec2")
    network = {"subnets": [ec2.describe_subnets()["Subnets"][0]["SubnetId"]],
               "securityGroups": [ec2.describe_security_groups()["SecurityGroups"][0]["GroupId"]]}
    return client("ecs").run_task(cluster="c", taskDefinition=task_definition, count=count, launchType="FARGATE",
                                  networkConfiguration={"awsvpcConfiguration": network}, **params)


def test_fargate_starts_tasks_only_within_the_accounts_vcpu_limit(moto):
    moto.fargate_vcpu_limit = 3
    client("ecs").create_cluster(clusterName="c")
    two_vcpus, one_vcpu = _fargate_task("2048", "4096"), _fargate_task("1024", "2048")
    response = _run(one_vcpu, count=2)
    assert len(response["tasks"]) == 2 and response["failures"] == []
    response = _run(two_vcpus, count=1)
    assert response["tasks"] == []
    assert response["failures"] == [{"reason": "The requested CPU configuration is above your limit"}]
    response = _run(one_vcpu, count=3)
    assert len(response["tasks"]) == 1 and len(response["failures"]) == 2
    # A stopped task gives its vCPUs back.
    ecs = client("ecs")
    for arn in ecs.list_tasks(cluster="c")["taskArns"][:2]:
        ecs.stop_task(cluster="c", task=arn)
    assert len(_run(two_vcpus)["tasks"]) == 1
    assert moto.rules_fired() == {"ecs-fargate-vcpu-limit"}


def test_an_unverified_account_starts_no_fargate_task(moto):
    moto.unverified_account = True
    client("ecs").create_cluster(clusterName="c")
    response = _run(_fargate_task(), count=2)
    assert response["tasks"] == []
    assert [f["reason"] for f in response["failures"]] == [
        "You've reached the limit on the number of tasks you can run concurrently. For more information, see the "
        "Troubleshooting section of the Amazon ECS Developer Guide."] * 2
    assert moto.rules_fired() == {"ecs-fargate-unverified-account"}


def _instance_provider(strict, instance_type: str) -> None:
    """A cluster "c" whose capacity provider "p" is an Auto Scaling group of `instance_type`."""
    client("iam").create_service_linked_role(AWSServiceName="ecs.amazonaws.com")
    strict.clock.sleep(strict.service_linked_role_propagation_seconds)
    ec2 = client("ec2")
    ec2.create_launch_template(LaunchTemplateName="tmpl", LaunchTemplateData={"InstanceType": instance_type})
    subnet = next(s["SubnetId"] for s in ec2.describe_subnets()["Subnets"] if s["AvailabilityZone"] == "us-east-1a")
    client("autoscaling").create_auto_scaling_group(AutoScalingGroupName="g", MinSize=0, MaxSize=1,
                                                    VPCZoneIdentifier=subnet, LaunchTemplate={"LaunchTemplateName": "tmpl"})
    client("ecs").create_capacity_provider(name="p", autoScalingGroupProvider={"autoScalingGroupArn": "g"})
    client("ecs").create_cluster(clusterName="c", capacityProviders=["p"])


@pytest.mark.parametrize("memory, gpus, reason", [
    (16384, 1, "RESOURCE:MEMORY"),   # all of a g4dn.xlarge's memory: ECS registers 97.5% of it
    (15974, 2, "RESOURCE:GPU"),      # it has one GPU
    (15974, 1, None),
])
def test_a_task_bigger_than_its_capacity_providers_instance_type_is_not_placed(moto, memory, gpus, reason):
    _instance_provider(moto, "g4dn.xlarge")
    ecs = client("ecs")
    arn = ecs.register_task_definition(family="gpu", requiresCompatibilities=["EC2"], networkMode="bridge",
                                       memory=str(memory), containerDefinitions=[{
                                           "name": "main", "image": "image", "memory": memory,
                                           "resourceRequirements": [{"type": "GPU", "value": str(gpus)}]}],
                                       )["taskDefinition"]["taskDefinitionArn"]
    response = ecs.run_task(cluster="c", taskDefinition=arn, capacityProviderStrategy=[{"capacityProvider": "p"}])
    if reason:
        assert response["tasks"] == [] and [f["reason"] for f in response["failures"]] == [reason]
    else:
        assert len(response["tasks"]) == 1 and response["failures"] == []
    assert moto.rules_fired() == ({"ecs-instance-too-small"} if reason else set())


def test_an_auto_scaling_group_in_a_zone_without_its_instance_type_is_refused(moto):
    ec2 = client("ec2")
    ec2.create_launch_template(LaunchTemplateName="tmpl", LaunchTemplateData={"InstanceType": "g4dn.xlarge"})
    zones = {s["AvailabilityZone"]: s["SubnetId"] for s in ec2.describe_subnets()["Subnets"]}
    create = lambda *subnets: client("autoscaling").create_auto_scaling_group(  # noqa: E731
        AutoScalingGroupName="g", MinSize=0, MaxSize=1, VPCZoneIdentifier=",".join(subnets),
        LaunchTemplate={"LaunchTemplateName": "tmpl"})
    refused(lambda: create(zones["us-east-1a"], zones["us-east-1e"]), "ValidationError",
            "Your requested instance type (g4dn.xlarge) is not supported in your requested Availability Zone "
            "(us-east-1e). Please retry your request by not specifying an Availability Zone or choosing us-east-1a, "
            "us-east-1b, us-east-1c, us-east-1d, us-east-1f.")
    create(zones["us-east-1a"], zones["us-east-1f"])
    assert moto.rules_fired() == {"autoscaling-instance-type-not-in-zone"}


def test_a_message_stays_invisible_at_most_12_hours_from_its_receive(moto):
    sqs = client("sqs")
    url = sqs.create_queue(QueueName="long")["QueueUrl"]
    sqs.send_message(QueueUrl=url, MessageBody="job")
    [message] = sqs.receive_message(QueueUrl=url, VisibilityTimeout=600)["Messages"]
    change = lambda seconds: sqs.change_message_visibility(  # noqa: E731
        QueueUrl=url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=seconds)
    moto.clock.sleep(40000)
    change(3200)  # 43,200 s in all
    refused(lambda: change(3201), "InvalidParameterValue",
            "Value 3201 for parameter VisibilityTimeout is invalid. Reason: Total VisibilityTimeout for the message "
            "is beyond the limit [43200 seconds]")
    assert moto.rules_fired() == {"sqs-visibility-beyond-12h"}


def throttled_launcher(strict, destination: bool, allowed: bool = True) -> str:
    """A function S3 notifies of every new object in BUCKET, with (or without) an SQS queue as its
    on-failure destination, which its role may (or may not) send to: the queue's URL or ""."""
    client("s3").create_bucket(Bucket=BUCKET)
    notify(lambda_entry("launch", new_function(strict, "launcher", BUCKET)))
    if not destination:
        return ""
    url = client("sqs").create_queue(QueueName="launcher-failed")["QueueUrl"]
    arn = client("sqs").get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    if allowed:
        client("iam").put_role_policy(RoleName="launcher-role", PolicyName="p", PolicyDocument=json.dumps(
            {"Version": "2012-10-17",
             "Statement": [{"Effect": "Allow", "Action": "sqs:SendMessage", "Resource": arn}]}))
    client("lambda").put_function_event_invoke_config(
        FunctionName="launcher", MaximumEventAgeInSeconds=3600, MaximumRetryAttempts=2,
        DestinationConfig={"OnFailure": {"Destination": arn}})
    return url


def test_a_throttled_event_without_a_destination_is_dropped_after_its_maximum_age(moto):
    throttled_launcher(moto, destination=False)
    moto.throttle("launcher")
    before = moto.clock.time()

    client("s3").put_object(Bucket=BUCKET, Key="lost.txt", Body=b"x")

    assert moto.clock.time() - before == 21600  # Lambda's default maximum event age
    dropped = [r.detail for r in moto.refusals if r.rule == "lambda-throttled-event-dropped"]
    assert len(dropped) == 1 and "lost.txt" in dropped[0]


def test_a_throttled_event_goes_to_the_on_failure_destination_with_its_payload(moto):
    url = throttled_launcher(moto, destination=True)
    moto.throttle("launcher")
    before = moto.clock.time()

    client("s3").put_object(Bucket=BUCKET, Key="late.txt", Body=b"x")
    client("s3").put_object(Bucket=BUCKET, Key="passes.txt", Body=b"x")  # the throttle was for one event

    assert moto.clock.time() - before == 3600  # the function's own maximum event age
    messages = client("sqs").receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]
    assert len(messages) == 1
    record = json.loads(messages[0]["Body"])
    assert record["requestContext"]["condition"] == "EventAgeExceeded"
    assert record["requestContext"]["functionArn"].endswith(":function:launcher:$LATEST")
    assert record["requestPayload"]["Records"][0]["s3"]["object"]["key"] == "late.txt"
    assert moto.rules_fired() == {"lambda-throttled-event-to-destination"}


def test_a_destination_the_execution_role_may_not_send_to_is_refused_and_would_drop_the_event(moto):
    with pytest.raises(ClientError) as raised:
        throttled_launcher(moto, destination=True, allowed=False)
    assert raised.value.response["Error"]["Code"] == "InvalidParameterValueException"
    assert "does not have permissions to call SendMessage on SQS" in raised.value.response["Error"]["Message"]
    assert moto.rules_fired() == {"lambda-destination-not-permitted"}


@pytest.mark.parametrize("subject, accepted", [
    ("yunpipe demo: run r1 settled", True), ("x" * 100, True), ("(run) settled", True),
    ("x" * 101, False), ("", False), (" leading space", False), ("two\nlines", False), ("tab\there", False),
    ("caf\u00e9 failed", False),
])
def test_sns_takes_a_subject_of_printable_ascii_of_at_most_100_characters(moto, subject, accepted):
    sns = client("sns")
    topic = sns.create_topic(Name="subjects")["TopicArn"]
    if accepted:
        sns.publish(TopicArn=topic, Subject=subject, Message="{}")
    else:
        refused(lambda: sns.publish(TopicArn=topic, Subject=subject, Message="{}"), "InvalidParameter",
                "Invalid parameter")
        assert moto.rules_fired() <= {"sns-subject"}


def test_the_notifications_subject_line_is_one_sns_takes(moto):
    from yunpipe.runtime.accounting.notify import subject_line
    sns = client("sns")
    topic = sns.create_topic(Name="subjects")["TopicArn"]
    for text in ("yunpipe lab: résumé\nfailed in step (oom) " + "x" * 200, "yunpipe: \u2028\x00"):
        sns.publish(TopicArn=topic, Subject=subject_line(text), Message="{}")
    assert moto.refusals == []


@pytest.mark.parametrize("protocol, endpoint, message", [
    ("https", "http://hooks.example.org/x", "Endpoint must match the specified protocol"),
    ("http", "https://hooks.example.org/x", "Endpoint must match the specified protocol"),
    ("email", "someone", "Email address"),
    ("email", "someone@example", "Email address"),
    ("lambda", "arn:aws:sqs:us-east-1:123456789012:q", "Lambda endpoint ARN"),
])
def test_sns_subscribes_only_an_endpoint_its_protocol_takes(moto, protocol, endpoint, message):
    sns = client("sns")
    topic = sns.create_topic(Name="endpoints")["TopicArn"]
    refused(lambda: sns.subscribe(TopicArn=topic, Protocol=protocol, Endpoint=endpoint), "InvalidParameter",
            f"Invalid parameter: {message}")
    assert moto.rules_fired() == {"sns-endpoint"}


def test_an_email_or_http_subscription_awaits_confirmation_and_gets_nothing_until_then(moto):
    sns, sqs = client("sns"), client("sqs")
    topic = sns.create_topic(Name="confirm")["TopicArn"]
    queue = sqs.create_queue(QueueName="subscriber")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    down = "http://127.0.0.1:1/nobody-listens"  # moto POSTs within Publish: a delivery would fail it
    for protocol, endpoint in (("email", "someone@example.org"), ("http", down), ("sqs", queue_arn)):
        sns.subscribe(TopicArn=topic, Protocol=protocol, Endpoint=endpoint)
    listed = {s["Protocol"]: s["SubscriptionArn"] for s in sns.list_subscriptions_by_topic(TopicArn=topic)["Subscriptions"]}
    assert listed["email"] == listed["http"] == "PendingConfirmation" and listed["sqs"].startswith(topic + ":")
    sns.publish(TopicArn=topic, Message="{}")  # delivered to the queue only
    assert len(sqs.receive_message(QueueUrl=queue)["Messages"]) == 1
    moto.confirm(topic, down)
    listed = {s["Protocol"]: s["SubscriptionArn"] for s in sns.list_subscriptions_by_topic(TopicArn=topic)["Subscriptions"]}
    assert listed["http"].startswith(topic + ":") and listed["email"] == "PendingConfirmation"
    with pytest.raises(requests.exceptions.ConnectionError):
        sns.publish(TopicArn=topic, Message="{}")


def test_run_task_copies_the_task_definitions_tags_and_refuses_service_or_over_50(moto):
    ecs = client("ecs")
    ecs.create_cluster(clusterName="c")
    tags = [{"key": f"k{i}", "value": "v"} for i in range(45)]
    arn = ecs.register_task_definition(
        family="tagged", networkMode="awsvpc", requiresCompatibilities=["FARGATE"], cpu="256", memory="512", tags=tags,
        containerDefinitions=[{"name": "main", "image": "image", "memory": 512}])["taskDefinition"]["taskDefinitionArn"]
    started = _run(arn, propagateTags="TASK_DEFINITION", tags=[{"key": "k0", "value": "own"}])["tasks"][0]["taskArn"]
    got = {t["key"]: t["value"] for t in ecs.list_tags_for_resource(resourceArn=started)["tags"]}
    # RunTask's own tag wins over the definition's of the same key.
    assert got == {**{f"k{i}": "v" for i in range(45)}, "k0": "own"}
    plain = _run(arn)["tasks"][0]["taskArn"]
    assert ecs.list_tags_for_resource(resourceArn=plain)["tags"] == []
    refused(lambda: _run(arn, propagateTags="SERVICE"), "InvalidParameterException", "propagateTags SERVICE")
    six = [{"key": f"own{i}", "value": "v"} for i in range(6)]
    refused(lambda: _run(arn, propagateTags="TASK_DEFINITION", tags=six), "InvalidParameterException",
            "a maximum of 50 per resource")
    assert moto.rules_fired() == {"ecs-run-task-propagate-service", "ecs-run-task-too-many-tags"}
