"""End-to-end fixtures: the local cloud in this process, the test algorithms built and wrapped
once, and pipelines set up and cleaned up through the CLI exactly as a user would.

Everything here is real: `wrap` builds the images, moto serves the AWS APIs on loopback, the
launcher runs on the host and every ECS task is a Docker container. The suite skips only when
no Docker daemon answers.

The shared fixtures are package-scoped (tests/e2e is a package): they live once for the whole
e2e suite and are torn down as soon as it ends, because one process can host one local cloud
only (moto's backends and its S3 -> Lambda hook are process-wide) and tests elsewhere start
their own.
"""
from __future__ import annotations

import collections
import io
import json
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import boto3
import docker
import pytest
from strict_aws import StrictAws

from yunpipe.engine.state import PipelineSummary, StepSummary, require_summary, state_path
from yunpipe.local.cloud import LocalCloud
from yunpipe.local.ecs_runner import LABEL_CLUSTER, LABEL_TASK
from yunpipe.registry import AlgorithmRegistry
from yunpipe.specs.algorithm import load_algorithm
from yunpipe.wrapper import images

from .helpers import run_cli, run_ok, wait_until

REGION = "us-east-1"
REPOSITORY = Path(__file__).resolve().parents[2]
ALGORITHM_FOLDERS = {
    "uppercase": REPOSITORY / "examples" / "uppercase",
    "wordcount": REPOSITORY / "examples" / "wordcount",
    "tester": Path(__file__).resolve().parent / "algorithms" / "tester",
    "checksum": Path(__file__).resolve().parent / "algorithms" / "checksum",
    # Descriptions only: they run on the checksum image.
    "pair": Path(__file__).resolve().parent / "algorithms" / "checksum",
    "gather": Path(__file__).resolve().parent / "algorithms" / "checksum",
}
# rate(5 minutes) / 100 = a scheduled top-up every 3 s, so a lost worker is replaced quickly.
SCHEDULE_SPEEDUP = 100


def pytest_configure(config):
    config.addinivalue_line("markers", "e2e: end to end on the local cloud (real wrapped images, Docker containers)")


@pytest.fixture(scope="package")
def yunpipe_home(tmp_path_factory):
    """An empty YUNPIPE_HOME (registry, pipeline states, local cloud file) and no stray AWS settings."""
    home = tmp_path_factory.mktemp("yunpipe-home")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("YUNPIPE_HOME", str(home))
        patch.setenv("AWS_ACCESS_KEY_ID", "testing")
        patch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        for name in ("AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_ENDPOINT_URL", "YUNPIPE_LOCAL"):
            patch.delenv(name, raising=False)
        yield home


@pytest.fixture(scope="package")
def strict() -> StrictAws:
    """The strict layer the local cloud runs under, on the real clock. AWS's delays are shortened
    (a role, a permission, a service-linked role or an instance profile usable after 1 s, a
    queue's or a capacity provider's name free 5 s after its deletion) so the suite stays quick;
    the deploy tests wait out the real ones on a manual clock. Tests may tell it to throttle."""
    return StrictAws(role_propagation_seconds=1.0, queue_reuse_seconds=5.0, permission_propagation_seconds=1.0,
                     service_linked_role_propagation_seconds=1.0, capacity_provider_reuse_seconds=5.0,
                     instance_profile_propagation_seconds=1.0)


@pytest.fixture(scope="package")
def local_cloud(docker_client, yunpipe_home, strict):
    """The local cloud, its moto held to real AWS's rules (tests/strict_aws.py)."""
    cloud = LocalCloud(port=0, regions=[REGION], schedule_speedup=SCHEDULE_SPEEDUP, docker_client=docker_client)
    with strict.active():
        cloud.start()
        try:
            yield cloud
        finally:
            # moto keeps its backends after the server stops: leave the next local cloud an empty one.
            urllib.request.urlopen(urllib.request.Request(f"{cloud.endpoint_url}/moto-api/reset", method="POST"),
                                   timeout=30)
            cloud.stop()


@pytest.fixture(scope="package")
def algorithms(docker_client, yunpipe_home) -> dict[str, str]:
    """Each test algorithm built as its developer would, then wrapped once: name -> NAME@VERSION."""
    files = []
    for name, folder in ALGORITHM_FOLDERS.items():
        description = folder / f"{name}.json"
        images.build_image(docker_client, folder, load_algorithm(description).container_name, out=io.StringIO())
        files.append(str(description))
    run_ok("wrap", "--local", "--yes", "-f", *files)
    registry = AlgorithmRegistry()
    return {name: registry.get(name).reference for name in ALGORITHM_FOLDERS}


@pytest.fixture
def aws(local_cloud):
    """Independent boto3 clients on the local cloud's endpoint, to check what the CLI did."""
    clients = {}

    def client(service: str):
        if service not in clients:
            clients[service] = boto3.client(service, endpoint_url=local_cloud.endpoint_url, region_name=REGION,
                                            aws_access_key_id="testing", aws_secret_access_key="testing")
        return clients[service]
    return client


@dataclass
class Pipeline:
    name: str
    input_bucket: str
    output_bucket: str
    summary: PipelineSummary
    aws: Callable
    daemon: docker.DockerClient

    def step(self, index: int) -> StepSummary:
        return self.summary.steps[index]

    def status(self) -> str:
        return run_cli("status", self.name, "--local")[1]

    def diagnosis(self) -> str:
        """What a failed wait shows: `yunpipe status`, why each task stopped, the workers' errors."""
        lines = [self.status()]
        ecs = self.aws("ecs")
        for index, step in enumerate(self.summary.steps):
            stopped = self.tasks(index, "STOPPED")
            reasons = collections.Counter(
                task.get("stoppedReason", "?") for start in range(0, len(stopped), 100)
                for task in ecs.describe_tasks(cluster=self.summary.cluster, tasks=stopped[start:start + 100])["tasks"])
            lines.append(f"step {step.name} stopped tasks: {dict(reasons)}")
        problems = [line for line in run_cli("logs", self.name, "--local")[1].splitlines()
                    if " ERROR " in line or " WARNING " in line or "Traceback" in line]
        lines.extend(["worker errors and warnings (last 20):", *problems[-20:]])
        return "\n".join(lines)

    def results(self) -> dict[str, bytes]:
        s3 = self.aws("s3")
        keys = [o["Key"] for page in s3.get_paginator("list_objects_v2").paginate(Bucket=self.output_bucket)
                for o in page.get("Contents", [])]
        return {key: s3.get_object(Bucket=self.output_bucket, Key=key)["Body"].read() for key in keys}

    def wait_for_results(self, expected: dict[str, bytes], timeout: float) -> None:
        """Wait until every expected key is there; then the output must be exactly `expected`."""
        seen: dict[str, bytes] = {}

        def check():
            seen.clear()
            seen.update(self.results())
            missing = sorted(set(expected) - set(seen))
            return f"{len(missing)} of {len(expected)} results missing: {missing[:20]}" if missing else None
        wait_until(check, timeout, explain=self.diagnosis)
        extra = sorted(set(seen) - set(expected))
        assert extra == [], f"results for keys never uploaded: {extra[:20]}"
        wrong = {key: seen[key] for key in expected if seen[key] != expected[key]}
        assert not wrong, "wrong results (key: got vs expected): " + "; ".join(
            f"{key}: {seen[key][:80]!r} vs {expected[key][:80]!r}" for key in sorted(wrong)[:10])

    def tasks(self, step: int, status: str) -> list[str]:
        ecs = self.aws("ecs")
        return [arn for page in ecs.get_paginator("list_tasks").paginate(
                    cluster=self.summary.cluster, startedBy=self.step(step).started_by, desiredStatus=status)
                for arn in page["taskArns"]]

    def containers(self) -> list:
        """The runner's running Docker containers for this pipeline's tasks (one cluster per pipeline)."""
        summary = self.summary
        cluster = f"arn:aws:ecs:{summary.region}:{summary.account_id}:cluster/{summary.cluster}"
        # ignore_removed: a task container may be removed between the listing and its inspection.
        return self.daemon.containers.list(filters={"label": f"{LABEL_CLUSTER}={cluster}"}, ignore_removed=True)

    @staticmethod
    def task_of(container) -> str:
        return container.labels[LABEL_TASK]


@pytest.fixture
def pipeline(request, local_cloud, algorithms, aws, docker_client, tmp_path):
    """deploy(steps, **workflow fields) -> Pipeline: setup-pipe a workflow named after the test;
    clean-up --purge afterwards, whatever the outcome."""
    deployed = []

    def deploy(steps: list[dict], process_type: str | None = None, **fields) -> Pipeline:
        name = request.node.name.removeprefix("test_").replace("_", "-")[:24].rstrip("-")
        kind = process_type or ("single_run" if len(steps) == 1 else "sequence_run")
        document = {
            "name": name,
            "input_s3_name": f"e2e-{name}-in",
            "output_s3_name": f"e2e-{name}-out",
            "region": REGION,
            "process": {"type": kind,
                        # A name the suite did not wrap (a test's own algorithm) is used as it is.
                        "steps" if kind == "graph" else "algorithms": [
                            {**step, "name": algorithms.get(step["name"], step["name"])} for step in steps]},
            **fields,
        }
        workflow = tmp_path / f"{name}.json"
        workflow.write_text(json.dumps(document, indent=2))
        deployed.append(name)
        run_ok("setup-pipe", "--local", "-f", str(workflow))
        return Pipeline(name, document["input_s3_name"], document["output_s3_name"], require_summary(name), aws,
                        docker_client)

    yield deploy
    for name in deployed:
        if state_path(name).exists():
            run_ok("clean-up", "--local", "--purge", name)
