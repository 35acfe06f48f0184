"""Guards for the moto internals the local cloud relies on (see yunpipe/local/*.py).

If a moto release moves any of them, these tests fail loudly: adapt yunpipe.local and the
moto version range in setup.py together.
"""
import inspect
import io
import json
import logging
import threading
import time
import zipfile

import boto3
import moto.s3.notifications as s3_notifications
import pytest
import requests
from botocore.exceptions import ClientError
from moto import mock_aws
from moto.awslambda.models import LambdaBackend
from moto.awslambda.utils import get_backend
from moto.core import DEFAULT_ACCOUNT_ID
from moto.events.models import EventPattern, Rule
from moto.s3.models import S3Backend

from yunpipe.local.clients import local_client
from yunpipe.local.lambda_host import reserved_concurrency
from yunpipe.local.server import EmulatorServer

REGION = "us-east-1"


def _zip(name: str, source: bytes) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(name, source)
    return buffer.getvalue()


def test_invoke_awslambda_keeps_its_signature():
    assert list(inspect.signature(s3_notifications._invoke_awslambda).parameters) == [
        "account_id",
        "event_body",
        "fn_arn",
        "region_name",
    ]


@mock_aws
def test_s3_notification_to_lambda_goes_through_invoke_awslambda(monkeypatch):
    calls = []
    monkeypatch.setattr(s3_notifications, "_invoke_awslambda", lambda *args: calls.append(args))
    iam = boto3.client("iam", region_name=REGION)
    role = iam.create_role(RoleName="fn-role", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    awslambda = boto3.client("lambda", region_name=REGION)
    code = _zip("launcher.py", b"def handler(event, context):\n    return event\n")
    fn_arn = awslambda.create_function(
        FunctionName="fn",
        Runtime="python3.12",
        Role=role,
        Handler="launcher.handler",
        Code={"ZipFile": code},
        Environment={"Variables": {"YUNPIPE_STEP": "s"}},
    )["FunctionArn"]
    s3 = boto3.client("s3", region_name=REGION)
    s3.create_bucket(Bucket="hook-in")
    s3.put_bucket_notification_configuration(
        Bucket="hook-in",
        NotificationConfiguration={
            "LambdaFunctionConfigurations": [{"LambdaFunctionArn": fn_arn, "Events": ["s3:ObjectCreated:*"]}]
        },
    )
    s3.put_object(Bucket="hook-in", Key="a b.txt", Body=b"x")

    assert len(calls) == 1
    account_id, event_body, called_arn, region_name = calls[0]
    assert (account_id, called_arn, region_name) == (DEFAULT_ACCOUNT_ID, fn_arn, REGION)
    record = event_body["Records"][0]
    assert record["eventName"] == "ObjectCreated:Put"
    assert record["s3"]["bucket"]["name"] == "hook-in"
    assert record["s3"]["object"]["key"] == "a+b.txt"
    json.dumps(event_body)  # the host launcher gets it as is; it must be plain JSON data

    # What yunpipe.local.lambda_host reads from the function moto resolves from that ARN.
    function = get_backend(account_id, region_name).get_function(called_arn)
    assert function.handler == "launcher.handler"
    assert function.environment_vars == {"YUNPIPE_STEP": "s"}
    assert function.code_bytes == code
    assert (function.region, function.function_arn, function.function_name) == (REGION, fn_arn, "fn")

    # The host's concurrency limit: moto keeps put_function_concurrency on the function object.
    assert reserved_concurrency(function) is None
    awslambda.put_function_concurrency(FunctionName="fn", ReservedConcurrentExecutions=1)
    assert function.reserved_concurrency == 1 and reserved_concurrency(function) == 1
    awslambda.delete_function_concurrency(FunctionName="fn")
    assert reserved_concurrency(function) is None


@mock_aws
def test_the_invoke_api_goes_through_the_backend_invoke_and_a_payload_answers_202(monkeypatch):
    # LambdaHost replaces LambdaBackend.invoke to run asynchronous invocations on the host.
    assert list(inspect.signature(LambdaBackend.invoke).parameters) == [
        "self", "function_name", "qualifier", "body", "headers", "response_headers"]
    calls = []

    def invoke(backend, function_name, qualifier, body, headers, response_headers):
        calls.append((function_name, json.loads(body), headers.get("X-Amz-Invocation-Type")))
        return b""

    monkeypatch.setattr(LambdaBackend, "invoke", invoke)
    role = boto3.client("iam", region_name=REGION).create_role(RoleName="fn-role", AssumeRolePolicyDocument="{}")
    awslambda = boto3.client("lambda", region_name=REGION)
    awslambda.create_function(FunctionName="fn", Runtime="python3.12", Role=role["Role"]["Arn"],
                              Handler="launcher.handler", Code={"ZipFile": _zip("launcher.py", b"")})
    response = awslambda.invoke(FunctionName="fn", InvocationType="Event", Payload=b"{}")
    assert response["StatusCode"] == 202 and response["Payload"].read() == b""
    assert calls == [("fn", {}, "Event")]


def test_eventbridge_rule_delivery_keeps_its_signatures():
    assert list(inspect.signature(Rule.send_to_targets).parameters) == ["self", "original_event", "transform_input"]
    assert list(inspect.signature(EventPattern.matches_event).parameters) == ["self", "event"]
    assert list(inspect.signature(s3_notifications._send_event_bridge_message).parameters) == [
        "account_id",
        "bucket",
        "event_name",
        "key",
    ]


@mock_aws
def test_s3_event_bridge_notification_goes_through_every_rule_s_send_to_targets(monkeypatch):
    calls = []
    monkeypatch.setattr(Rule, "send_to_targets", lambda rule, event, transform_input=True: calls.append((rule, event)))
    fn_arn = f"arn:aws:lambda:{REGION}:{DEFAULT_ACCOUNT_ID}:function:fn"
    events = boto3.client("events", region_name=REGION)

    def pattern(bucket):
        return json.dumps({"source": ["aws.s3"], "detail-type": ["Object Created"],
                           "detail": {"bucket": {"name": [bucket]}, "object": {"key": [{"prefix": "data/"}]}}})

    events.put_rule(Name="fan-out", EventPattern=pattern("hook-eb"), State="ENABLED")
    events.put_targets(Rule="fan-out", Targets=[{"Id": "fn", "Arn": fn_arn}])
    events.put_rule(Name="elsewhere", EventPattern=pattern("other-bucket"), State="ENABLED")
    events.put_rule(Name="top-up", ScheduleExpression="rate(5 minutes)", State="ENABLED")
    s3 = boto3.client("s3", region_name=REGION)
    s3.create_bucket(Bucket="hook-eb")
    s3.put_bucket_notification_configuration(
        Bucket="hook-eb", NotificationConfiguration={"EventBridgeConfiguration": {}}
    )
    s3.put_object(Bucket="hook-eb", Key="data/a b+c.txt", Body=b"x")

    # moto's PutObject also raises "Object Tags Added" (a pattern on detail-type leaves it out).
    rules = {rule.name: (rule, event) for rule, event in calls if event["detail-type"] == "Object Created"}
    assert set(rules) == {"fan-out", "elsewhere", "top-up"}
    rule, event = rules["fan-out"]
    assert (event["source"], event["detail"]["bucket"]["name"]) == ("aws.s3", "hook-eb")
    # The key as stored, not URL-encoded as in an S3 notification; moto's tag field is "eTag".
    assert (event["detail"]["object"]["key"], event["detail"]["object"]["size"]) == ("data/a b+c.txt", 1)
    assert event["detail"]["object"]["eTag"]
    json.dumps(event)  # the host launcher gets it as is; it must be plain JSON data

    # What yunpipe.local.lambda_host reads from the rule.
    assert (rule.state, rule.targets) == ("ENABLED", [{"Id": "fn", "Arn": fn_arn}])
    assert rule.event_pattern.matches_event(event)
    assert not rules["elsewhere"][0].event_pattern.matches_event(event)
    others = [other for named, other in calls if named is rule and other is not event]
    assert others and not any(rule.event_pattern.matches_event(other) for other in others)
    # A schedule has no pattern and moto matches it to every event: the host must skip it.
    schedule = rules["top-up"][0].event_pattern
    assert schedule.get_pattern() == {} and schedule.matches_event(event)


@pytest.fixture
def emulator():
    server = EmulatorServer(port=0)
    server.start()
    yield server
    server.stop()


def test_ecs_task_manual_transition_keeps_task_running_until_stop_task(emulator):
    ecs = local_client("ecs", emulator.endpoint_url, REGION)
    ecs.create_cluster(clusterName="c")
    ecs.register_task_definition(
        family="f", containerDefinitions=[{"name": "main", "image": "yunpipe/base:bookworm", "memory": 64}]
    )
    ec2 = local_client("ec2", emulator.endpoint_url, REGION)
    subnet = ec2.describe_subnets()["Subnets"][0]["SubnetId"]
    group = ec2.describe_security_groups()["SecurityGroups"][0]["GroupId"]
    arn = ecs.run_task(
        cluster="c",
        taskDefinition="f",
        launchType="FARGATE",
        networkConfiguration={"awsvpcConfiguration": {"subnets": [subnet], "securityGroups": [group]}},
    )["tasks"][0]["taskArn"]

    # moto's default ("manual", times=1) would have moved it on after the first describe.
    for _ in range(5):
        assert ecs.describe_tasks(cluster="c", tasks=[arn])["tasks"][0]["lastStatus"] == "RUNNING"

    ecs.stop_task(cluster="c", task=arn, reason="done")
    task = ecs.describe_tasks(cluster="c", tasks=[arn])["tasks"][0]
    assert (task["lastStatus"], task["desiredStatus"], task["stoppedReason"]) == ("STOPPED", "STOPPED", "done")


def test_emulator_quiets_moto_request_log(caplog):
    # moto's server logs each request through the "werkzeug" logger at INFO; start() must raise
    # that logger to WARNING (caplog puts the level back after the test).
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.INFO, logger="werkzeug")
    server = EmulatorServer(port=0)
    server.start()
    try:
        local_client("s3", server.endpoint_url, REGION).list_buckets()
    finally:
        server.stop()
    assert not [r for r in caplog.records if r.name == "werkzeug"]


@mock_aws
def test_logs_backend_takes_launcher_logs_written_in_process(monkeypatch):
    """yunpipe.local.lambda_host writes launcher logs straight into moto's CloudWatch Logs
    backend (groups, create_log_group, create_log_stream, put_log_events)."""
    from moto.logs.models import logs_backends

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    backend = logs_backends[DEFAULT_ACCOUNT_ID][REGION]
    assert "/aws/lambda/fn" not in backend.groups
    backend.create_log_group("/aws/lambda/fn", tags={})
    backend.create_log_stream("/aws/lambda/fn", "2026/11/21/[$LATEST]abc")
    backend.put_log_events("/aws/lambda/fn", "2026/11/21/[$LATEST]abc", [{"timestamp": int(time.time() * 1000), "message": "hello"}])
    events = boto3.client("logs", region_name=REGION).get_log_events(
        logGroupName="/aws/lambda/fn", logStreamName="2026/11/21/[$LATEST]abc")["events"]
    assert [e["message"] for e in events] == ["hello"]


@mock_aws
def test_moto_still_leaves_eventbridge_out_of_the_notification_configuration():
    """yunpipe.local.moto_patches.event_bridge_reported corrects this; once moto reports the
    setting itself, the fix goes."""
    from yunpipe.local.moto_patches import event_bridge_reported
    s3 = boto3.client("s3", region_name=REGION)
    s3.create_bucket(Bucket="events-bucket")
    s3.put_bucket_notification_configuration(Bucket="events-bucket",
                                             NotificationConfiguration={"EventBridgeConfiguration": {}})
    assert "EventBridgeConfiguration" not in s3.get_bucket_notification_configuration(Bucket="events-bucket")
    with event_bridge_reported():
        assert s3.get_bucket_notification_configuration(Bucket="events-bucket")["EventBridgeConfiguration"] == {}
        s3.put_bucket_notification_configuration(Bucket="events-bucket", NotificationConfiguration={})
        assert "EventBridgeConfiguration" not in s3.get_bucket_notification_configuration(Bucket="events-bucket")


@mock_aws
def test_moto_still_checks_a_conditional_put_apart_from_storing_it(monkeypatch):
    """yunpipe.local.moto_patches.conditional_writes_atomic corrects this: a put that slips in
    between moto's If-None-Match check and its store makes both conditional puts succeed, where S3
    lets exactly one create the object (two colleagues publishing one algorithm version). Once
    moto refuses the rival by itself, the fix goes."""
    from yunpipe.local.moto_patches import conditional_writes_atomic
    s3 = boto3.client("s3", region_name=REGION)
    s3.create_bucket(Bucket="race")
    original = S3Backend.put_object
    rival: dict = {}

    def attempt(key: str) -> str:
        try:
            s3.put_object(Bucket="race", Key=key, Body=b"x", IfNoneMatch="*")
            return "created"
        except ClientError as error:
            return error.response["Error"]["Code"]

    def put_object(self, bucket_name, key_name, *args, **kwargs):
        if "thread" not in rival:
            # The first put, checked and about to store: a rival put of the same key runs now.
            rival["thread"] = threading.Thread(target=lambda: rival.update(result=attempt(key_name)))
            rival["thread"].start()
            rival["thread"].join(timeout=0.5)
        return original(self, bucket_name, key_name, *args, **kwargs)

    monkeypatch.setattr(S3Backend, "put_object", put_object)
    assert (attempt("racy"), rival["result"]) == ("created", "created")
    rival.clear()
    with conditional_writes_atomic():
        first = attempt("atomic")
        rival["thread"].join()
    assert (first, rival["result"]) == ("created", "PreconditionFailed")


def test_moto_counts_the_users_of_a_code_volume_in_the_process():
    """yunpipe.local.lambda_images forgets a stale count when a local cloud starts or stops."""
    from moto.awslambda.models import _DockerDataVolumeContext
    assert isinstance(_DockerDataVolumeContext._data_vol_map, dict)
    assert hasattr(_DockerDataVolumeContext._lock, "acquire")


@mock_aws
def test_moto_still_places_auto_scaling_group_provider_tasks_only_on_registered_instances():
    """yunpipe.local.moto_patches.capacity_providers_scale corrects this: RunTask on an Auto Scaling
    group capacity provider fails without container instances (ECS's managed scaling starts one).
    Once moto starts such tasks by itself, the fix goes."""
    from yunpipe.local.moto_patches import capacity_providers_scale
    ecs = boto3.client("ecs", region_name=REGION)
    ecs.create_capacity_provider(name="gpus", autoScalingGroupProvider={"autoScalingGroupArn": "gpus"})
    ecs.create_cluster(clusterName="c", capacityProviders=["gpus"])
    ecs.register_task_definition(family="f", requiresCompatibilities=["EC2"], networkMode="bridge",
                                 containerDefinitions=[{"name": "c", "image": "i", "memory": 128}])
    strategy = [{"capacityProvider": "gpus", "weight": 1}]
    with pytest.raises(Exception, match="No instances found"):
        ecs.run_task(cluster="c", taskDefinition="f", capacityProviderStrategy=strategy)
    with capacity_providers_scale():
        [task] = ecs.run_task(cluster="c", taskDefinition="f", capacityProviderStrategy=strategy)["tasks"]
        assert (task["capacityProviderName"], task["launchType"]) == ("gpus", "EC2")


@mock_aws
def test_moto_still_notifies_a_multipart_upload_twice():
    """yunpipe.local.moto_patches.multipart_uploads_notify_once corrects this: S3 sends one
    ObjectCreated:CompleteMultipartUpload; moto adds an ObjectCreated:Put, so the launcher would
    queue every large file twice. Once moto sends one event by itself, the fix goes."""
    from yunpipe.local.moto_patches import multipart_uploads_notify_once
    s3, sqs = boto3.client("s3", region_name=REGION), boto3.client("sqs", region_name=REGION)
    queue = sqs.create_queue(QueueName="events")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    s3.create_bucket(Bucket="large")
    s3.put_bucket_notification_configuration(Bucket="large", NotificationConfiguration={
        "QueueConfigurations": [{"QueueArn": arn, "Events": ["s3:ObjectCreated:*"]}]})

    def events_of_one_multipart_upload(key: str) -> list[str]:
        upload = s3.create_multipart_upload(Bucket="large", Key=key)["UploadId"]
        part = s3.upload_part(Bucket="large", Key=key, UploadId=upload, PartNumber=1, Body=b"x" * 5)
        s3.complete_multipart_upload(Bucket="large", Key=key, UploadId=upload, MultipartUpload={
            "Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]})
        names = []
        while messages := sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10).get("Messages"):
            for message in messages:
                names += [r["eventName"] for r in json.loads(message["Body"]).get("Records", [])]
                sqs.delete_message(QueueUrl=queue, ReceiptHandle=message["ReceiptHandle"])
        return sorted(names)

    assert events_of_one_multipart_upload("a.bin") == ["ObjectCreated:CompleteMultipartUpload", "ObjectCreated:Put"]
    with multipart_uploads_notify_once():
        assert events_of_one_multipart_upload("b.bin") == ["ObjectCreated:CompleteMultipartUpload"]
        s3.put_object(Bucket="large", Key="c.txt", Body=b"c")
        assert "ObjectCreated:Put" in json.dumps(sqs.receive_message(QueueUrl=queue)["Messages"][0]["Body"])


@mock_aws
def test_moto_still_knows_no_compute_quotas():
    """yunpipe.local.moto_patches.compute_quotas_answered corrects this: moto's Service Quotas
    knows only VPC's, so `yunpipe doctor` could read no Fargate or EC2 vCPU quota, and has no
    GetAWSDefaultServiceQuota or RequestServiceQuotaIncrease. Once moto answers them, the fix goes."""
    from yunpipe.local.moto_patches import NEW_ACCOUNT_VCPUS, compute_quotas_answered
    quotas = boto3.client("service-quotas", region_name=REGION)
    with pytest.raises(ClientError, match="NoSuchResourceException"):
        quotas.get_service_quota(ServiceCode="fargate", QuotaCode="L-3032A538")
    with pytest.raises(NotImplementedError):
        quotas.get_aws_default_service_quota(ServiceCode="fargate", QuotaCode="L-3032A538")
    with compute_quotas_answered():
        for quota, value in NEW_ACCOUNT_VCPUS.items():
            answered = quotas.get_service_quota(ServiceCode=quota.service, QuotaCode=quota.code)["Quota"]
            assert (answered["QuotaName"], answered["Value"]) == (quota.name, value)
            assert answered["QuotaArn"] == f"arn:aws:servicequotas:{REGION}:{DEFAULT_ACCOUNT_ID}:{quota.service}/{quota.code}"
        quotas.request_service_quota_increase(ServiceCode="fargate", QuotaCode="L-3032A538", DesiredValue=64)
        assert quotas.get_service_quota(ServiceCode="fargate", QuotaCode="L-3032A538")["Quota"]["Value"] == 64
        # Per region, as AWS's quotas; the default stays the default.
        other = boto3.client("service-quotas", region_name="eu-west-1")
        assert other.get_service_quota(ServiceCode="fargate", QuotaCode="L-3032A538")["Quota"]["Value"] == 6
        assert quotas.get_aws_default_service_quota(ServiceCode="fargate", QuotaCode="L-3032A538")["Quota"]["Value"] == 6
        # Other services' quotas are still moto's own.
        assert quotas.get_service_quota(ServiceCode="vpc", QuotaCode="L-F678F1CE")["Quota"]["Value"] == 5
        with pytest.raises(ClientError, match="NoSuchResourceException"):
            quotas.get_aws_default_service_quota(ServiceCode="ec2", QuotaCode="L-00000000")


@mock_aws
def test_moto_still_posts_to_an_http_subscriber_within_publish():
    """yunpipe.local.moto_patches.sns_delivers_after_publish delivers after Publish, as SNS does:
    moto's own Publish fails when an HTTP subscriber is down."""
    sns = boto3.client("sns", region_name=REGION)
    topic = sns.create_topic(Name="t")["TopicArn"]
    sns.subscribe(TopicArn=topic, Protocol="http", Endpoint="http://127.0.0.1:1/nobody-listens")
    with pytest.raises(requests.exceptions.ConnectionError, match="Connection refused"):
        sns.publish(TopicArn=topic, Message="{}")
