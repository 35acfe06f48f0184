"""Shared fixtures: fake AWS credentials, an isolated YUNPIPE_HOME, moto's in-process AWS held
to real AWS's rules (tests/strict_aws.py) and the example algorithm recorded in the registry."""
import json
import os
import socket
import tempfile
import time
from pathlib import Path

import docker
import docker.errors
import pytest
from moto import mock_aws

from strict_aws import Clock, StrictAws
from yunpipe.pipeline import executor
from yunpipe.registry import AlgorithmRegistry
from yunpipe.specs.algorithm import load_algorithm, parse_algorithm

REGION = "us-east-1"
BASE_IMAGE = "yunpipe/base:bookworm"


def free_port() -> int:
    """A loopback port nothing listens on (at the time of asking)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def pytest_configure(config):
    """No test depends on what else this machine has: a registry a user runs on 127.0.0.1:5000,
    their ~/.aws, their ~/.yunpipe (and a local cloud running from it). Set here, before any
    fixture, so session- and package-scoped fixtures see it too; tests that want a registry or a
    home of their own set one."""
    isolated = Path(tempfile.mkdtemp(prefix="yunpipe-tests-"))
    os.environ.update({
        "YUNPIPE_LOCAL_REGISTRY": f"127.0.0.1:{free_port()}",
        "YUNPIPE_HOME": str(isolated / "home"),
        "AWS_CONFIG_FILE": str(isolated / "aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(isolated / "aws-credentials"),
    })


def unavailable(reason: str):
    """Skip for want of a part of the machine (Docker, a Debian package); in CI, where make test
    installed everything, that is a failure instead."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{reason} (CI=true: make test should have provided it)")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def docker_client():
    """The Docker daemon, with the offline base image every test image is built FROM. Tests
    that need it skip, saying so, only when no daemon answers (make test starts one), and
    fail instead in CI."""
    try:
        client = docker.from_env()
        client.ping()
    except docker.errors.DockerException as exc:
        unavailable(f"no Docker daemon answers: {exc}")
    if not client.images.list(name=BASE_IMAGE):
        pytest.fail(f"{BASE_IMAGE} is missing: run scripts/base-image.sh (make bootstrap does)")
    return client


def launcher_function(client, name: str, environment: dict) -> str:
    """The launcher Lambda as setup-pipe creates it (same zip, handler, runtime, limits).
    `client(service)` gives a boto3 client of the AWS under test."""
    from yunpipe.lambda_src import package

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


@pytest.fixture
def aws_env(monkeypatch, tmp_path):
    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                        "AWS_DEFAULT_REGION": REGION, "YUNPIPE_HOME": str(tmp_path / "home")}.items():
        monkeypatch.setenv(name, value)
    for name in ("AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_REGION", "AWS_ENDPOINT_URL", "AWS_PROFILE",
                 "YUNPIPE_LOCAL"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def moto(aws_env, monkeypatch):
    """moto in this process, refusing what real AWS refuses. Its clock is manual: it moves only
    when the deploy engine backs off, so waiting out AWS's delays costs no real time."""
    strict = StrictAws(clock=Clock(manual=True))
    monkeypatch.setattr(executor, "backoff_sleep", strict.clock.sleep)
    with mock_aws(), strict.active():
        yield strict


@pytest.fixture
def change123(aws_env):
    """The example algorithm, recorded as its first version."""
    return AlgorithmRegistry().record(load_algorithm("examples/change123/change123-s3.json"), "user/change123-s3:1")


@pytest.fixture
def write_workflow(tmp_path):
    def write(document: dict, name: str = "workflow.json"):
        path = tmp_path / name
        path.write_text(json.dumps(document))
        return str(path)
    return write


def record_algorithm(name: str, image: str, variables: list | None = None, **fields):
    """Record a variant of the example algorithm under `name` (a new version each call)."""
    document = json.loads(open("examples/change123/change123-s3.json").read())
    document.update(name=name, **fields)
    if variables is not None:
        document["user_specified_environment_variables"] = variables
    return AlgorithmRegistry().record(parse_algorithm(document, name), image)


def single_run(name: str = "demo", algorithm: str = "change123-s3", **extra) -> dict:
    return {"name": name, "input_s3_name": f"{name}-in-bucket", "output_s3_name": f"{name}-out-bucket",
            "process": {"type": "single_run",
                        "algorithms": [{"name": algorithm, "variables": {"TEST_ENV": "blah blah blah"}}]}, **extra}
