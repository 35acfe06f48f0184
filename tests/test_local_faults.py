"""The local cloud's faults on purpose (yunpipe.local.faults) and what Lambda does with a failed
asynchronous invocation (yunpipe.local.lambda_retries): on a real local cloud, Docker included.

About 15 s: each test starts its own local cloud; the retries wait 1 then 2 s (speed-up 60).
"""
import json
from concurrent.futures import ThreadPoolExecutor

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from helpers import launcher_step, wait_for

from yunpipe.local.clients import local_client
from yunpipe.local.cloud import LocalCloud
from yunpipe.local.faults import FaultPlan

REGION = "us-east-1"


@pytest.fixture(scope="module")
def cloud(tmp_path_factory, docker_client):
    # One for the module: each test injects its own faults, on resources of its own.
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("YUNPIPE_HOME", str(tmp_path_factory.mktemp("home")))
        with LocalCloud(port=0, regions=[REGION], schedule_speedup=60, docker_client=docker_client) as local:
            yield local


def _client(cloud, service, **config):
    if config:
        return boto3.client(service, endpoint_url=cloud.endpoint_url, region_name=REGION, aws_access_key_id="testing",
                            aws_secret_access_key="testing", config=Config(**config))
    return local_client(service, cloud.endpoint_url, REGION)


def _runs(cloud, fn_arn):
    return [i for i in cloud.status()["recent_lambda_invocations"] if i["function"] == fn_arn]


def _notifying(cloud, bucket, fn_arn):
    s3 = _client(cloud, "s3")
    s3.create_bucket(Bucket=bucket)
    s3.put_bucket_notification_configuration(Bucket=bucket, NotificationConfiguration={
        "LambdaFunctionConfigurations": [{"LambdaFunctionArn": fn_arn, "Events": ["s3:ObjectCreated:*"]}]})
    return s3


def _queued(sqs, url):
    return int(sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])
               ["Attributes"]["ApproximateNumberOfMessages"])


def test_a_launcher_failing_every_try_is_tried_three_times_then_its_event_goes_to_the_destination(cloud):
    queue_url, fn_arn = launcher_step(lambda service: _client(cloud, service), "flaky", ["true"])
    sqs = _client(cloud, "sqs")
    failed_url = sqs.create_queue(QueueName="flaky-failed-events")["QueueUrl"]
    failed_arn = sqs.get_queue_attributes(QueueUrl=failed_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    _client(cloud, "lambda").put_function_event_invoke_config(
        FunctionName=fn_arn, MaximumRetryAttempts=2, DestinationConfig={"OnFailure": {"Destination": failed_arn}})
    s3 = _notifying(cloud, "flaky-input", fn_arn)

    with cloud.inject_faults(FaultPlan(launcher_failure_rate=1.0)) as counts:
        s3.put_object(Bucket="flaky-input", Key="a.txt", Body=b"x")
        [message] = wait_for(lambda: sqs.receive_message(QueueUrl=failed_url).get("Messages"), timeout=30,
                             what="the event in the failed-events queue")
    record = json.loads(message["Body"])
    assert record["requestContext"]["condition"] == "RetriesExhausted"
    assert record["requestContext"]["approximateInvokeCount"] == 3
    assert record["requestPayload"]["Records"][0]["s3"]["object"]["key"] == "a.txt"
    assert record["responsePayload"]["errorType"] == "InjectedFault"
    runs = _runs(cloud, fn_arn)
    assert [run["ok"] for run in runs] == [False] * 3 and all("before sending" in run["result"] for run in runs)
    assert counts.launcher_invocations == counts.launcher_failures == 3
    # Failed before sending: nothing queued for the workers.
    assert _queued(sqs, queue_url) == 0


def test_a_launcher_that_fails_once_is_tried_again_and_queues_the_file(cloud):
    queue_url, fn_arn = launcher_step(lambda service: _client(cloud, service), "onceflaky", ["true"])
    # Seed 4 draws a failure (below 0.5), then a success.
    with cloud.inject_faults(FaultPlan(seed=4, launcher_failure_rate=0.5)) as counts:
        _notifying(cloud, "onceflaky-input", fn_arn).put_object(Bucket="onceflaky-input", Key="b.txt", Body=b"x")
        wait_for(lambda: len(_runs(cloud, fn_arn)) == 2 or None, timeout=30, what="the retry")
    assert [run["ok"] for run in _runs(cloud, fn_arn)] == [False, True]
    assert counts.launcher_failures == 1
    assert _queued(_client(cloud, "sqs"), queue_url) == 1


def _answers(s3) -> bool:
    try:
        s3.head_bucket(Bucket="outage")
    except ClientError:
        return False
    return True


def test_s3_stops_answering_for_the_outage_only_and_other_services_answer_through_it(cloud):
    s3 = _client(cloud, "s3", retries={"max_attempts": 1})
    s3.create_bucket(Bucket="outage")
    with cloud.inject_faults(FaultPlan(s3_outage_after_seconds=0, s3_outage_seconds=3)) as counts:
        wait_for(lambda: counts.s3_outage_window, timeout=10, what="the outage")
        with pytest.raises(ClientError) as refused:
            s3.put_object(Bucket="outage", Key="k", Body=b"x")
        assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 503
        assert refused.value.response["Error"]["Code"] == "ServiceUnavailable"
        _client(cloud, "sqs").list_queues()
        assert counts.s3_refused >= 1
        # Once it is over, S3 answers again.
        wait_for(lambda: _answers(s3), timeout=30, what="S3 answering")
    s3.put_object(Bucket="outage", Key="after", Body=b"y")
    assert s3.get_object(Bucket="outage", Key="after")["Body"].read() == b"y"


def test_the_worker_s_requests_outlast_a_few_seconds_of_s3_refusing_all_of_them(cloud, monkeypatch):
    """Eight requests of a worker's S3 client at once, all met by a 3-second outage: each is tried
    again until S3 answers (clients.RETRIES), so such a blip costs no job a try."""
    from yunpipe.runtime.worker.clients import make_clients

    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(name, "testing")
    _sqs, s3, _sns = make_clients({"AWS_ENDPOINT_URL": cloud.endpoint_url, "AWS_REGION": REGION}, parallelism=4)
    s3.create_bucket(Bucket="blip")
    keys = [f"k{i}" for i in range(8)]
    with cloud.inject_faults(FaultPlan(s3_outage_after_seconds=0, s3_outage_seconds=3)) as counts:
        wait_for(lambda: counts.s3_outage_window, timeout=10, what="the outage")
        with ThreadPoolExecutor(len(keys)) as pool:
            list(pool.map(lambda key: s3.put_object(Bucket="blip", Key=key, Body=key.encode()), keys))
        assert counts.s3_refused >= len(keys)
    assert [o["Key"] for o in s3.list_objects_v2(Bucket="blip")["Contents"]] == keys


def test_a_doomed_worker_container_is_killed_and_its_task_stops_with_137(cloud):
    launcher_step(lambda service: _client(cloud, service), "doomed", ["sleep", "300"])
    ecs = _client(cloud, "ecs")
    ec2 = _client(cloud, "ec2")
    subnet = ec2.describe_subnets()["Subnets"][0]["SubnetId"]
    group = ec2.describe_security_groups()["SecurityGroups"][0]["GroupId"]
    with cloud.inject_faults(FaultPlan(kill_fraction=1.0, kill_within_seconds=0.5)) as counts:
        arn = ecs.run_task(cluster="doomed-cluster", taskDefinition="doomed-task", launchType="FARGATE",
                           networkConfiguration={"awsvpcConfiguration": {"subnets": [subnet], "securityGroups": [group]}})["tasks"][0]["taskArn"]
        task = wait_for(lambda: next((t for t in ecs.describe_tasks(cluster="doomed-cluster", tasks=[arn])["tasks"]
                                      if t["lastStatus"] == "STOPPED"), None), timeout=60, what="the task stopped")
    assert task["stoppedReason"] == "Essential container exited with code 137"
    assert counts.containers_killed == counts.containers_seen == 1


def test_faults_are_inert_unless_injected_and_a_plan_checks_its_rates(cloud):
    assert cloud.faults._plan is None
    with pytest.raises(ValueError, match="kill_fraction must be from 0 to 1"):
        FaultPlan(kill_fraction=1.5)
    with pytest.raises(ValueError, match="launcher_failure_rate"):
        FaultPlan(launcher_failure_rate=-0.1)
    with cloud.inject_faults(FaultPlan()), pytest.raises(RuntimeError, match="injected already"), \
            cloud.inject_faults(FaultPlan()):
        pass
    assert cloud.faults._plan is None
