"""End to end: `yunpipe calibrate` runs a sample through its own one-step pipeline on the local
cloud at a few sizes, advises from the workers' job records, writes the advice into a workflow
and leaves no pipeline behind. About 40 s on an idle 2-core machine (three sizes of two files)."""
import json
import os

import pytest

from yunpipe.engine.sizing import fargate_size
from yunpipe.engine.state import PipelineState
from yunpipe.operations.calibrate import pipeline_name
from yunpipe.operations.calibrate_advice import MARGIN, WORKER_MIB
from yunpipe.registry import AlgorithmRegistry
from yunpipe.specs.workflow import load_workflow

from .conftest import ALGORITHM_FOLDERS
from .helpers import run_cli, run_ok

pytestmark = pytest.mark.e2e
# Each sample file makes the tester hold this many MiB: the advice's memory must follow it.
HOLD_MIB = 150


@pytest.fixture(scope="module")
def tester(algorithms, tmp_path_factory) -> str:
    """The tester wrapped under a name of this module's own (the Docker daemon may be shared:
    a wrap elsewhere of tester@1 retags yunpipe-local/tester:1)."""
    folder = tmp_path_factory.mktemp("calibrate")
    document = json.loads((ALGORITHM_FOLDERS["tester"] / "tester.json").read_text())
    document["name"] = "cal-tester"
    (folder / "cal-tester.json").write_text(json.dumps(document))
    run_ok("wrap", "--local", "--yes", "-f", str(folder / "cal-tester.json"))
    return AlgorithmRegistry().get("cal-tester").reference


def test_calibrate_measures_the_sample_at_several_sizes_and_writes_its_advice(local_cloud, tester, tmp_path):
    sample = tmp_path / "sample"
    sample.mkdir()
    for index in range(2):
        (sample / f"s{index}.txt").write_text(f"ALLOCATE {HOLD_MIB}\nsample {index}\n")
    workflow = tmp_path / "workflow.json"
    workflow.write_text(json.dumps({"name": "lab", "input_s3_name": "lab-in", "output_s3_name": "lab-out",
                                    "process": {"type": "single_run",
                                                "algorithms": [{"name": "cal-tester", "concurrency": 4}]}}))

    status, out = run_cli("calibrate", tester, "--sample", str(sample), "--files", "200", "--write", str(workflow))

    assert status == 0, out
    table = out[out.index("peak MiB"):out.index("Recommended")].splitlines()[1:-1]
    # One file at a time at 0.25 vCPU first, with the most memory Fargate gives it; then larger
    # CPUs (up to this machine's cores) while they pay, and 2 at once (the sample has 2 files, so
    # never 4). How many CPUs pay depends on the machine's load: only the bounds are fixed.
    assert table[0].split()[:3] == ["0.25", "2048", "1"], out
    cpus = [c for c in (0.25, 0.5, 1, 2, 4) if c <= (os.cpu_count() or 1)]
    assert 2 <= len(table) <= len(cpus) + 1 and {row.split()[2] for row in table} <= {"1", "2"}, out
    peaks = [float(row.split()[6]) for row in table]
    assert min(peaks) >= HOLD_MIB, out
    step = load_workflow(workflow).steps[0]
    assert step.concurrency == 4
    assert step.parallelism in (1, 2)
    # The task holds its jobs at their peak with the margin, and the worker: a size Fargate has.
    assert step.memory >= step.parallelism * max(peaks) * MARGIN + WORKER_MIB
    assert fargate_size(step.cpu, step.memory) == (round(step.cpu * 1024), step.memory)
    assert step.files_per_task >= 1
    assert f"Wrote cpu, memory, parallelism and files_per_task to {workflow}: process.algorithms[0]" in out
    assert "200 files on AWS at concurrency 4: about" in out and "Assumptions:" in out
    # The calibration's pipeline is gone, its record too.
    assert not PipelineState.load(pipeline_name("cal-tester")).exists
