"""Shared fixtures (helpers are in tests/helpers.py): fake AWS credentials, an isolated YUNPIPE_HOME, moto's in-process AWS held
to real AWS's rules (tests/strict_aws.py) and the example algorithm recorded in the registry."""
import json
import os
import tempfile
from pathlib import Path

import botocore_model
import docker
import docker.errors
import pytest
from helpers import BASE_IMAGE, REGION, free_port, unavailable
from moto import mock_aws
from strict_aws import Clock, StrictAws
from ui_browser import headless, served

from yunpipe.engine import executor
from yunpipe.local.moto_patches import (
    capacity_providers_scale,
    compute_quotas_answered,
    conditional_writes_atomic,
    event_bridge_reported,
    multipart_uploads_notify_once,
    sqs_clock_fast,
)
from yunpipe.registry import AlgorithmRegistry
from yunpipe.runtime.accounting import runs
from yunpipe.specs.algorithm import load_algorithm


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


@pytest.fixture(scope="session", autouse=True)
def botocore_model_checked():
    """Every call of every test against botocore's service models (tests/botocore_model.py)."""
    with botocore_model.active():
        yield


@pytest.fixture(autouse=True)
def launcher_memo_forgotten(monkeypatch):
    """Each test's launcher starts cold: a warm one trusts a listing of the step's tasks for a
    second (scaling.RUNNING_MEMO_SECONDS), and tests reuse step names within one."""
    from yunpipe.runtime.launcher import scaling

    monkeypatch.setattr(scaling, "_running_seen", {})


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


@pytest.fixture
def aws_env(monkeypatch, tmp_path):
    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                        "AWS_DEFAULT_REGION": REGION, "YUNPIPE_HOME": str(tmp_path / "home")}.items():
        monkeypatch.setenv(name, value)
    # A worker under test must not look for an ECS task metadata endpoint this machine has not.
    for name in ("AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_REGION", "AWS_ENDPOINT_URL", "AWS_PROFILE",
                 "YUNPIPE_LOCAL", "ECS_CONTAINER_METADATA_URI_V4"):
        monkeypatch.delenv(name, raising=False)
    # A worker remembers its pipeline's drop-run; each test's moto starts without one.
    monkeypatch.setattr(runs, "_cache", {})


@pytest.fixture
def moto(aws_env, monkeypatch):
    """moto in this process, refusing what real AWS refuses. Its clock is manual: it moves only
    when the deploy engine backs off, so waiting out AWS's delays costs no real time."""
    strict = StrictAws(clock=Clock(manual=True))
    monkeypatch.setattr(executor, "backoff_sleep", strict.clock.sleep)
    # Entered before the strict layer, which checks RunTask's capacity providers before they scale.
    with (mock_aws(), capacity_providers_scale(), strict.active(), event_bridge_reported(), conditional_writes_atomic(),
          multipart_uploads_notify_once(), sqs_clock_fast(), compute_quotas_answered()):
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


# The browser tests' (Debian's headless chromium, tests/ui_browser.py) and the dashboard they drive.
@pytest.fixture
def browser():
    with headless() as driver:
        yield driver


@pytest.fixture
def board():
    with served() as dashboard:
        yield dashboard
