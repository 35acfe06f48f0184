"""Helpers the tests share (fixtures stay in conftest.py): constants, ports, the launcher as
setup-pipe deploys it, polling, and the example algorithm and workflow in variants."""
import json
import os
import socket
import time
from pathlib import Path

import pytest

from yunpipe.registry import AlgorithmRegistry
from yunpipe.runtime.accounting import records
from yunpipe.specs.algorithm import parse_algorithm

REGION = "us-east-1"
BASE_IMAGE = "yunpipe/base:bookworm"


def free_port() -> int:
    """A loopback port nothing listens on (at the time of asking)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def unavailable(reason: str):
    """Skip for want of a part of the machine (Docker, a Debian package); in CI, where make test
    installed everything, that is a failure instead."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{reason} (CI=true: make test should have provided it)")
    pytest.skip(reason)


def launcher_function(client, name: str, environment: dict) -> str:
    """The launcher Lambda as setup-pipe creates it (same zip, handler, runtime, limits).
    `client(service)` gives a boto3 client of the AWS under test."""
    from yunpipe.runtime import launcher_package as package

    role = client("iam").create_role(RoleName=f"{name}-role", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    return client("lambda").create_function(
        FunctionName=name, Runtime=package.RUNTIME, Role=role, Handler=package.HANDLER,
        Timeout=package.TIMEOUT_SECONDS, MemorySize=package.MEMORY_MIB, Code={"ZipFile": package.launcher_zip()},
        Environment={"Variables": environment},
    )["FunctionArn"]


def launcher_step(client, name: str, command: list[str]) -> tuple[str, str]:
    """Queue, cluster, task definition (BASE_IMAGE running `command`) and launcher of one step,
    wired as docs/runtime-contract.md says: (queue URL, launcher ARN)."""
    queue_url = client("sqs").create_queue(QueueName=f"{name}-queue")["QueueUrl"]
    client("ecs").create_cluster(clusterName=f"{name}-cluster")
    client("ecs").register_task_definition(
        family=f"{name}-task", networkMode="awsvpc", requiresCompatibilities=["FARGATE"], cpu="256", memory="512",
        containerDefinitions=[{"name": "main", "image": BASE_IMAGE, "memory": 128, "cpu": 256, "essential": True,
                               "command": list(command)}],
    )
    ec2 = client("ec2")
    subnet = ec2.describe_subnets()["Subnets"][0]["SubnetId"]
    group = ec2.describe_security_groups()["SecurityGroups"][0]["GroupId"]
    fn_arn = launcher_function(client, f"{name}-launcher", {
        "YUNPIPE_PIPELINE": "demo",
        "YUNPIPE_STEP": name,
        "YUNPIPE_QUEUE_URL": queue_url,
        "YUNPIPE_CLUSTER": f"{name}-cluster",
        "YUNPIPE_TASK_DEFINITION": f"{name}-task",
        "YUNPIPE_STARTED_BY": f"yunpipe-{name}",
        "YUNPIPE_SUBNETS": subnet,
        "YUNPIPE_SECURITY_GROUPS": group,
    })
    return queue_url, fn_arn


def wait_for(predicate, timeout=60, interval=0.25, what="condition"):
    """Poll until predicate() is truthy and return its value; fail after timeout seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {what}")


def record_algorithm(name: str, image: str, variables: list | None = None, **fields):
    """Record a variant of the example algorithm under `name` (a new version each call)."""
    document = json.loads(Path("examples/change123/change123-s3.json").read_text())
    document.update(name=name, **fields)
    if variables is not None:
        document["user_specified_environment_variables"] = variables
    return AlgorithmRegistry().record(parse_algorithm(document, name), image)


def single_run(name: str = "demo", algorithm: str = "change123-s3", **extra) -> dict:
    return {"name": name, "input_s3_name": f"{name}-in-bucket", "output_s3_name": f"{name}-out-bucket",
            "process": {"type": "single_run",
                        "algorithms": [{"name": algorithm, "variables": {"TEST_ENV": "blah blah blah"}}]}, **extra}


def foreign_notification(strict, bucket: str, events: list[str], filter_rules: list[dict] | None = None) -> None:
    """Another user's Lambda notification on `bucket` (the bucket made here), put as AWS would let
    them: their function, its S3 permission, and the waits the strict layer asks for."""
    import boto3

    def client(service):
        return boto3.client(service, region_name=REGION)

    client("s3").create_bucket(Bucket=bucket)
    role = client("iam").create_role(RoleName="theirs", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    strict.clock.sleep(strict.role_propagation_seconds)
    theirs = client("lambda").create_function(FunctionName="theirs", Runtime="python3.12", Role=role,
                                              Handler="h.h", Code={"ZipFile": b"PK\x05\x06" + b"\0" * 18})
    client("lambda").add_permission(FunctionName="theirs", StatementId="s3", Action="lambda:InvokeFunction",
                                    Principal="s3.amazonaws.com", SourceArn=f"arn:aws:s3:::{bucket}")
    strict.clock.sleep(strict.permission_propagation_seconds)
    entry = {"Id": "theirs", "LambdaFunctionArn": theirs["FunctionArn"], "Events": events}
    if filter_rules:
        entry["Filter"] = {"Key": {"FilterRules": filter_rules}}
    client("s3").put_bucket_notification_configuration(
        Bucket=bucket, NotificationConfiguration={"LambdaFunctionConfigurations": [entry]})


def queue_urls_filled(environment) -> dict:
    """A compiled environment with each queue URL marker (known once the queue exists) as a URL."""
    from yunpipe.engine.kinds.base import QueueUrl

    return {k: f"https://sqs.{REGION}.amazonaws.com/123456789012/{v.queue}" if isinstance(v, QueueUrl) else v
            for k, v in environment.items()}


def job_records(s3, bucket: str, prefix: str) -> dict[str, dict]:
    """Every job record under `prefix` of the reports bucket by the key it has on its own: an ends/
    or tries/ record's, and each record of a page by the ends/ key it would have. A job done twice
    (in two pages) keeps its latest record, as a rewritten ends/ record would."""
    found: dict[str, dict] = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            key = item["Key"]
            if "/ends/" not in key and "/tries/" not in key and "/pages/" not in key:
                continue
            body = json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
            if "/pages/" not in key:
                found[key] = body
                continue
            for record in records.page_records(body):
                end = records.end_key(record["pipeline"], record["run"], record["step"], record["key"])
                if end not in found or found[end]["finished_at"] < record["finished_at"]:
                    found[end] = record
    return found
