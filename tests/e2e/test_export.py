"""End to end: `yunpipe export` of a workflow, created as a stack by the local cloud's
CloudFormation (moto), and one file processed through it by a real wrapped image."""
import json
import time

import pytest
import yaml
from botocore.exceptions import ClientError
from moto.awslambda.exceptions import InvalidParameterValueException
from moto.awslambda.models import LambdaFunction

from .helpers import run_ok, wait_until

pytestmark = pytest.mark.e2e

REGION = "us-east-1"


@pytest.fixture
def cloudformation_waits_for_iam(monkeypatch):
    """CloudFormation creates a function only once IAM has propagated its new role to Lambda; moto's
    creates it at once, which the strict layer refuses as Lambda refuses a direct caller. Waited out
    here as CloudFormation does."""
    create = LambdaFunction.create_from_cloudformation_json.__func__

    def waiting(cls, *args, **kwargs):
        deadline = time.monotonic() + 30
        while True:
            try:
                return create(cls, *args, **kwargs)
            except InvalidParameterValueException as error:
                if "cannot be assumed" not in str(error) or time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
    monkeypatch.setattr(LambdaFunction, "create_from_cloudformation_json", classmethod(waiting))


def _notifications(template: dict, aws) -> dict[str, dict]:
    """Each bucket's NotificationConfiguration as the template gives it, in S3's API form."""
    functions = {logical: r["Properties"]["FunctionName"] for logical, r in template["Resources"].items()
                 if r["Type"] == "AWS::Lambda::Function"}
    configurations = {}
    for resource in template["Resources"].values():
        lambdas = resource["Properties"].get("NotificationConfiguration", {}).get("LambdaConfigurations", [])
        if resource["Type"] == "AWS::S3::Bucket" and lambdas:
            configurations[resource["Properties"]["BucketName"]] = {"LambdaFunctionConfigurations": [{
                "LambdaFunctionArn": aws("lambda").get_function(FunctionName=functions[c["Function"]["Fn::GetAtt"][0]])[
                    "Configuration"]["FunctionArn"],
                "Events": [c["Event"]],
                **({"Filter": {"Key": {"FilterRules": c["Filter"]["S3Key"]["Rules"]}}} if "Filter" in c else {})}
                for c in lambdas]}
    return configurations


def test_an_exported_stack_processes_a_file(local_cloud, algorithms, aws, cloudformation_waits_for_iam, tmp_path):
    """The template of a one-step workflow, created as a stack on the local cloud (its launcher's zip
    read from S3), processes an uploaded file: the launcher (on the host, with the environment the
    stack gave its Lambda) queues it and starts a task of the stack's task definition in the
    stack's cluster, which the wrapped image runs. moto's AWS::S3::Bucket ignores
    NotificationConfiguration, so the test applies the template's own configuration to the bucket
    (once S3 sees the stack's permission), and its CloudFormation does not wait for IAM
    (cloudformation_waits_for_iam)."""
    workflow = tmp_path / "workflow.json"
    workflow.write_text(json.dumps({
        "name": "exported", "input_s3_name": "e2e-exported-in", "output_s3_name": "e2e-exported-out",
        "region": REGION, "idle_seconds": 5,
        "process": {"type": "single_run", "algorithms": [{"name": algorithms["uppercase"]}]}}))
    run_ok("export", "--local", "-f", str(workflow), "-o", str(tmp_path / "stack.yaml"))
    text = (tmp_path / "stack.yaml").read_text()
    template = yaml.safe_load(text)
    code = template["Parameters"]["LauncherCodeKey"]["Default"]
    s3, cloudformation = aws("s3"), aws("cloudformation")
    s3.create_bucket(Bucket="e2e-exported-code")
    s3.put_object(Bucket="e2e-exported-code", Key=code, Body=(tmp_path / code).read_bytes())
    # moto's CloudFormation has no AWS::Lambda::EventInvokeConfig: it skips it, saying so.
    with pytest.warns(UserWarning, match="AWS::Lambda::EventInvokeConfig but it's not supported"):
        cloudformation.create_stack(StackName="exported", TemplateBody=text, Capabilities=["CAPABILITY_NAMED_IAM"],
                                    Parameters=[{"ParameterKey": "LauncherCodeBucket",
                                                 "ParameterValue": "e2e-exported-code"}])
    try:
        stack = cloudformation.describe_stacks(StackName="exported")["Stacks"][0]
        assert stack["StackStatus"] == "CREATE_COMPLETE", stack.get("StackStatusReason")
        for bucket, configuration in _notifications(template, aws).items():
            def notified(bucket=bucket, configuration=configuration):
                try:
                    s3.put_bucket_notification_configuration(Bucket=bucket, NotificationConfiguration=configuration)
                except ClientError as error:  # S3 does not see the stack's permission yet
                    return str(error)
                return None
            wait_until(notified, timeout=30, interval=0.3)
        s3.put_object(Bucket="e2e-exported-in", Key="from/a stack.txt", Body=b"made by a stack\n")

        def result():
            found = s3.list_objects_v2(Bucket="e2e-exported-out").get("Contents", [])
            return None if found else "no result yet"
        wait_until(result, timeout=90)
        body = s3.get_object(Bucket="e2e-exported-out", Key="from/a stack.txt")["Body"].read()
        assert body == b"MADE BY A STACK\n"
    finally:
        cloudformation.delete_stack(StackName="exported")
        # The stack keeps its buckets (DeletionPolicy Retain), as clean-up does without --purge.
        for bucket in {"e2e-exported-code", *(r["Properties"]["BucketName"] for r in template["Resources"].values()
                                              if r["Type"] == "AWS::S3::Bucket")}:
            for item in s3.list_objects_v2(Bucket=bucket).get("Contents", []):
                s3.delete_object(Bucket=bucket, Key=item["Key"])
            s3.delete_bucket(Bucket=bucket)
