"""End to end: a step on an EC2 instance type with a GPU (docs/compute.md) runs on the local
cloud. ECS's capacity provider starts its tasks there as managed scaling would on AWS, and the
runner runs them in Docker (without a GPU on a machine whose Docker has no nvidia runtime)."""
import pytest

from .helpers import run_ok, write_inputs

pytestmark = pytest.mark.e2e


def test_a_gpu_step_on_an_instance_type_processes_files(pipeline, aws, tmp_path, docker_client, caplog):
    gpu = pipeline([{"name": "uppercase", "instance_type": "g4dn.xlarge", "gpu": 1}], idle_seconds=5)
    provider = f"yunpipe-{gpu.name}-ec2-g4dn-xlarge"
    [cluster] = aws("ecs").describe_clusters(clusters=[gpu.summary.cluster])["clusters"]
    assert cluster["capacityProviders"] == [provider]
    inputs = {"frame-1.txt": "pixels on a gpu\n", "frame-2.txt": "more pixels\n"}
    run_ok("upload", "--local", gpu.name, str(write_inputs(tmp_path / "in", inputs)))
    gpu.wait_for_results({key: text.upper().encode() for key, text in inputs.items()}, timeout=90)
    tasks = gpu.tasks(0, "STOPPED") + gpu.tasks(0, "RUNNING")
    described = aws("ecs").describe_tasks(cluster=gpu.summary.cluster, tasks=tasks)["tasks"]
    assert described and {t["capacityProviderName"] for t in described} == {provider}
    if "nvidia" not in (docker_client.info().get("Runtimes") or {}):
        assert "asks for 1 GPU(s), but this Docker has no nvidia runtime: it runs without" in caplog.text
