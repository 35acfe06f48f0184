"""Shared fixtures: fake AWS credentials, an isolated YUNPIPE_HOME, moto's in-process AWS and
the example algorithm recorded in the registry."""
import json
import time

import docker
import docker.errors
import pytest
from moto import mock_aws

from yunpipe.registry import AlgorithmRegistry
from yunpipe.specs.algorithm import load_algorithm, parse_algorithm

REGION = "us-east-1"
BASE_IMAGE = "yunpipe/base:bookworm"


@pytest.fixture(scope="session")
def docker_client():
    """The Docker daemon, with the offline base image every test image is built FROM. Tests
    that need it skip, saying so, only when no daemon answers (make test starts one)."""
    try:
        client = docker.from_env()
        client.ping()
    except docker.errors.DockerException as exc:
        pytest.skip(f"no Docker daemon answers: {exc}")
    if not client.images.list(name=BASE_IMAGE):
        pytest.fail(f"{BASE_IMAGE} is missing: run scripts/base-image.sh (make bootstrap does)")
    return client


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
def moto(aws_env):
    with mock_aws():
        yield


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
