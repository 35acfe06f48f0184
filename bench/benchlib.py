"""What the benchmarks share: a throw-away yunpipe home on an idle Docker daemon, machine facts,
the workflow file, the results file."""
import argparse
import contextlib
import dataclasses
import datetime
import importlib.metadata
import json
import os
import platform
import resource
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import docker

from yunpipe.commands import demo
from yunpipe.errors import YunpipeError
from yunpipe.local.ecs_runner import LABEL
from yunpipe.wrapper import images

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
RESULTS = BENCH / "results"
UPPERCASE = REPO / "examples" / "uppercase" / "uppercase.json"
CHECKSUM = REPO / "tests" / "e2e" / "algorithms" / "checksum" / "checksum.json"


@contextlib.contextmanager
def scratch_home() -> Iterator[Path]:
    """A fresh YUNPIPE_HOME, so the benchmark's registry, pipelines and local cloud never
    touch (or are helped by) the user's."""
    home = Path(tempfile.mkdtemp(prefix="yunpipe-bench-"))
    os.environ["YUNPIPE_HOME"] = str(home)
    try:
        yield home
    finally:
        shutil.rmtree(home, ignore_errors=True)


@dataclasses.dataclass(frozen=True)
class Bench:
    """Where a benchmark runs: its scratch home, a folder there for its files and workflows,
    the Docker client and the machine's facts at the start."""
    home: Path
    work: Path
    client: docker.DockerClient
    machine: dict


@contextlib.contextmanager
def bench() -> Iterator[Bench]:
    """A scratch home on an idle Docker daemon (see require_idle_docker)."""
    with scratch_home() as home:
        client = images.docker_client()
        require_idle_docker(client)
        machine = machine_facts(client)
        work = home / "bench"
        work.mkdir()
        yield Bench(home, work, client, machine)


def write_samples(folder: Path, count: int) -> list[Path]:
    """The demo's `count` sample files (yunpipe.commands.demo.write_samples), named so that key
    order is the order written (sample-0000.txt .. at 1,000 files or more: the demo's sample-1000
    sorts before sample-101), which bench/e2e.py's listing of the results relies on."""
    width = len(str(count - 1))
    paths = []
    for index, name in enumerate(demo.write_samples(folder, count)):
        path = folder / f"sample-{index:0{width}d}.txt"
        (folder / name).rename(path)
        paths.append(path)
    return paths


def arguments(doc: str | None) -> argparse.ArgumentParser:
    """A benchmark's command line, described by the first paragraph of its docstring."""
    return argparse.ArgumentParser(description=(doc or "").split("\n\n")[0])


def write_workflow(folder: Path, name: str, process_type: str, steps: list[dict],
                   idle_seconds: int | None = None, **fields: object) -> Path:
    """The workflow file of pipeline `name` (buckets yunpipe-<name>-input and -output, us-east-1),
    with any other workflow `fields`: folder/<name>.json."""
    workflow: dict = {
        "name": name,
        "input_s3_name": f"yunpipe-{name}-input",
        "output_s3_name": f"yunpipe-{name}-output",
        "region": "us-east-1",
        **fields,
    }
    if idle_seconds is not None:
        workflow["idle_seconds"] = idle_seconds
    workflow["process"] = {"type": process_type, "algorithms": steps}
    path = folder / f"{name}.json"
    path.write_text(json.dumps(workflow, indent=2))
    return path


def require_idle_docker(client: docker.DockerClient) -> None:
    """Another local cloud's tasks would compete for the CPU and skew every figure: refuse."""
    others = client.containers.list(filters={"label": LABEL}, ignore_removed=True)
    if others:
        names = ", ".join(c.name for c in others[:5])
        raise YunpipeError(f"{len(others)} local-cloud container(s) run on this Docker daemon ({names}): "
                           "another local cloud is busy; stop it (yunpipe local down) or wait")


def machine_facts(client: docker.DockerClient) -> dict:
    def git(*argv: str) -> str:
        return subprocess.run(["git", *argv], cwd=REPO, capture_output=True, text=True).stdout.strip()

    return {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "nproc": os.cpu_count(),
        # Other work on the machine skews every figure; this says how busy it was.
        "load_average_1m_at_start": round(os.getloadavg()[0], 2),
        "python": platform.python_version(),
        "docker": client.version()["Version"],
        "moto": importlib.metadata.version("moto"),
        "boto3": importlib.metadata.version("boto3"),
        "commit": git("describe", "--always", "--dirty"),
    }


def peak_rss_mib() -> float:
    """Peak resident memory of this process (it hosts the local cloud too); Linux reports KiB."""
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def reset_peak_rss() -> float:
    """Start measuring this process's peak resident memory anew (Linux's clear_refs 5 resets VmHWM
    to the present RSS: ru_maxrss keeps the whole process's peak); returns the present RSS in MiB."""
    Path("/proc/self/clear_refs").write_text("5")
    return _status_mib("VmRSS")


def peak_rss_since_reset_mib() -> float:
    """Peak resident memory of this process since reset_peak_rss (VmHWM)."""
    return _status_mib("VmHWM")


def _status_mib(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return round(int(line.split()[1]) / 1024, 1)  # kB
    raise YunpipeError(f"/proc/self/status has no {field}")


def print_rows(rows: list[tuple[str, str]]) -> None:
    """A benchmark's figures, one labelled line each, the values aligned."""
    width = max(len(label) for label, _ in rows)
    for label, value in rows:
        print(f"  {label:<{width}}  {value}")


def finish(name: str, document: dict, report: Callable[[dict], None]) -> int:
    """Print a benchmark's figures and write them to bench/results/<name>.json; main's exit status."""
    report(document)
    print(f"results: {write_results(name, document)}")
    return 0


def write_results(name: str, document: dict) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    # Written whole then renamed, so an interrupted run never leaves half a file.
    partial = path.with_suffix(".json.tmp")
    partial.write_text(json.dumps(document, indent=2) + "\n")
    partial.replace(path)
    return path
