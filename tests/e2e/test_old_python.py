"""End to end on bases whose python3 is older than the host's boto3 supports (issue 10): Debian 11
(python3.9), Ubuntu 20.04 (python3.8), Ubuntu 18.04 whose python3 is made 3.7, and a Debian 11
image without python3, which gets Debian's. Each base is built offline with debootstrap
(scripts/base-image.sh, once per machine), the algorithm on it is wrapped by `wrap` as its
developer would, and a chain of them processes uploaded files: each step runs on its image's
own python3, with the boto3 release that supports it. Ubuntu 18.04's own python3 (3.6) is
refused."""
import io
import json
import os
import subprocess
from pathlib import Path

import pytest
from helpers import unavailable

from yunpipe.registry import AlgorithmRegistry
from yunpipe.wrapper import images

from .helpers import run_cli, run_ok, write_inputs

pytestmark = pytest.mark.e2e

BASE_IMAGE_SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "base-image.sh"
# Name -> (suite, system, the developer's Dockerfile lines after FROM, its python3, the boto3 wrap gives it).
OLD_PYTHON = {
    "oldpy-bullseye": ("bullseye", "debian", "", "3.9", "1.42.97"),
    "oldpy-focal": ("focal", "ubuntu", "", "3.8", "1.37.38"),
    # Amazon Linux 2's python3: 3.7 (Ubuntu 18.04's python3.7 put first on the PATH).
    "oldpy-bionic": ("bionic", "ubuntu", "RUN ln -s /usr/bin/python3.7 /usr/local/bin/python3", "3.7", "1.33.13"),
    # No python3 at all: the wrapped Dockerfile installs Debian 11's, and wrap asks it first.
    "oldpy-none": ("bullseye", "debian",
                   "RUN apt-get purge -y --auto-remove python3 python3-minimal python3.9 python3.9-minimal"
                   " && ! command -v python3", "3.9", "1.42.97"),
}
# Each step appends the version of the python3 its command finds: the image's own, untouched.
RUN_COMMAND = "sh -c 'cat $input > $output && python3 --version >> $output'"


def base_tag(suite: str) -> str:
    return f"yunpipe-tests/{suite}:latest"


def build_bases(docker_client, suites) -> None:
    """Debootstrap the bases this machine lacks, all at once (each takes about a minute, mostly
    downloading)."""
    missing = sorted({suite for suite in suites if not docker_client.images.list(name=base_tag(suite))})
    if missing and os.geteuid() != 0:
        unavailable(f"debootstrap needs root to build {', '.join(map(base_tag, missing))} (scripts/base-image.sh)")
    runs = {suite: subprocess.Popen([str(BASE_IMAGE_SCRIPT), base_tag(suite), suite], stdout=subprocess.PIPE,
                                    stderr=subprocess.STDOUT, text=True) for suite in missing}
    for suite, run in runs.items():
        output, _ = run.communicate(timeout=900)
        assert run.returncode == 0, f"scripts/base-image.sh {base_tag(suite)} {suite} failed:\n{output[-3000:]}"


@pytest.fixture(scope="module")
def old_python_algorithms(docker_client, yunpipe_home, tmp_path_factory) -> dict[str, str]:
    """Each algorithm's developer image built on its base, then all wrapped: name -> NAME@VERSION."""
    build_bases(docker_client, [suite for suite, *_ in OLD_PYTHON.values()])
    files = []
    for name, (suite, system, lines, _, _) in OLD_PYTHON.items():
        folder = tmp_path_factory.mktemp(name)
        (folder / "Dockerfile").write_text(f"FROM {base_tag(suite)}\n{lines}\n")
        container = f"yunpipe-tests/{name}:latest"
        images.build_image(docker_client, folder, container, out=io.StringIO())
        description = folder / f"{name}.json"
        description.write_text(json.dumps({"name": name, "container_name": container, "system": system,
                                           "run_command": RUN_COMMAND, "memory": {"suggested": 128}, "CPU": 0.25,
                                           "timeout_seconds": 60}))
        files.append(str(description))
    run_ok("wrap", "--local", "--yes", "-f", *files)
    registry = AlgorithmRegistry()
    return {name: registry.get(name).reference for name in OLD_PYTHON}


@pytest.fixture
def algorithms(algorithms, old_python_algorithms):
    """The e2e algorithms and these, for the pipeline fixture."""
    return {**algorithms, **old_python_algorithms}


def in_image(docker_client, image: str, code: str) -> str:
    return docker_client.containers.run(image, ["-c", code], entrypoint=["python3"], remove=True,
                                        network_disabled=True).decode().strip()


def test_each_wrapped_image_runs_its_own_python3_with_a_boto3_that_supports_it(docker_client, old_python_algorithms):
    registry = AlgorithmRegistry()
    for name, (_, _, _, python, boto3) in OLD_PYTHON.items():
        image = registry.get(name).image
        found = in_image(docker_client, image, "import sys; sys.path.insert(0, '/opt/yunpipe/site-packages'); "
                                               "import boto3; print('%d.%d' % sys.version_info[:2], boto3.__version__)")
        assert found == f"{python} {boto3}", name
        # The algorithm's own Python does not see yunpipe's boto3.
        assert in_image(docker_client, image, "import importlib.util as u; print(u.find_spec('boto3'))") == "None"


def test_a_chain_of_old_python_bases_processes_files(pipeline, docker_client, old_python_algorithms, tmp_path):
    chain = pipeline([{"name": name} for name in OLD_PYTHON], idle_seconds=5)
    registry = AlgorithmRegistry()
    versions = "".join(in_image(docker_client, registry.get(name).image, "import sys; print('Python', sys.version.split()[0])")
                       + "\n" for name in OLD_PYTHON)
    inputs = {f"doc-{index}.txt": f"document {index}\n" for index in range(3)}
    inputs["sub dir/last one.txt"] = "old pythons, one result\n"
    run_ok("upload", "--local", chain.name, str(write_inputs(tmp_path / "in", inputs)))
    chain.wait_for_results({key: (text + versions).encode() for key, text in inputs.items()}, timeout=180)


def test_a_python3_older_than_3_7_is_refused_and_nothing_is_recorded(docker_client, old_python_algorithms, tmp_path,
                                                                    capsys):
    container = "yunpipe-tests/oldpy-bionic-36:latest"
    (tmp_path / "Dockerfile").write_text(f"FROM {base_tag('bionic')}\n")
    images.build_image(docker_client, tmp_path, container, out=io.StringIO())
    description = tmp_path / "oldpy-36.json"
    description.write_text(json.dumps({"name": "oldpy-36", "container_name": container, "system": "ubuntu",
                                       "run_command": RUN_COMMAND}))
    capsys.readouterr()
    status, _ = run_cli("wrap", "--local", "--yes", "-f", str(description))
    assert status == 2
    assert "oldpy-36: container_name: expected an image whose python3 is 3.7 or newer, got python3 3.6" \
        in capsys.readouterr().err
    assert AlgorithmRegistry().get("oldpy-36") is None
