"""scripts/bootstrap.sh decides what to install by the programs it really runs: a machine with a
`docker` client on the PATH and no engine (this project's own kind of machine) gets docker.io."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

BOOTSTRAP = Path(__file__).resolve().parents[1] / "scripts" / "bootstrap.sh"
ALL = ["docker.io", "debootstrap", "docker-registry", "graphviz", "busybox-static", "chromium", "chromium-driver"]


def fake(folder: Path, name: str, target: str | None = None) -> None:
    """A program on the PATH: a link to a real one, or a script that does nothing."""
    path = folder / name
    if target:
        path.symlink_to(target)
    else:
        path.write_text("#!/bin/sh\nexit 0\n")
        path.chmod(0o755)


def missing(folder: Path) -> list[str]:
    # The tools the script itself needs, and a Python with venv's ensurepip (this one).
    for tool in ("dirname", "ldd"):
        if not (folder / tool).exists():
            fake(folder, tool, shutil.which(tool))
    if not (folder / "python3").exists():
        fake(folder, "python3", sys.executable)
    result = subprocess.run(["/bin/bash", str(BOOTSTRAP), "--missing"], capture_output=True, text=True,
                            env={"PATH": str(folder)}, timeout=30)
    assert result.returncode == 0, result.stderr
    return result.stdout.split()


def test_a_docker_client_without_an_engine_installs_the_engine(tmp_path):
    fake(tmp_path, "docker")
    assert missing(tmp_path) == ALL


def test_a_machine_with_everything_installs_nothing(tmp_path):
    for name in ("docker", "dockerd", "debootstrap", "docker-registry", "dot", "busybox", "chromium", "chromedriver"):
        fake(tmp_path, name)  # a script: ldd finds it is no dynamic executable, like busybox-static
    assert missing(tmp_path) == []


def test_a_dynamically_linked_busybox_is_replaced_by_the_static_one(tmp_path):
    for name in ("docker", "dockerd", "debootstrap", "docker-registry", "dot", "chromium", "chromedriver"):
        fake(tmp_path, name)
    dynamic = shutil.which("ls")
    assert subprocess.run(["ldd", dynamic], capture_output=True).returncode == 0
    fake(tmp_path, "busybox", dynamic)
    assert missing(tmp_path) == ["busybox-static"]


def test_an_engine_without_a_client_installs_docker_io(tmp_path):
    fake(tmp_path, "dockerd")
    assert "docker.io" in missing(tmp_path)


@pytest.mark.skipif(os.geteuid() != 0, reason="installing needs root")
def test_this_machine_after_make_test_set_up_lacks_nothing():
    """make test ran bootstrap first: everything it checks for is here now."""
    result = subprocess.run(["/bin/bash", str(BOOTSTRAP), "--missing"], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0 and result.stdout.split() == [], result.stdout + result.stderr


def test_a_browser_without_its_driver_installs_the_driver(tmp_path):
    """The browser test drives chromium through chromedriver: one without the other is not enough."""
    for name in ("docker", "dockerd", "debootstrap", "docker-registry", "dot", "busybox", "chromium"):
        fake(tmp_path, name)
    assert missing(tmp_path) == ["chromium-driver"]


def test_a_machine_without_graphviz_installs_it(tmp_path):
    """`yunpipe ui` draws a pipeline's graph with dot."""
    for name in ("docker", "dockerd", "debootstrap", "docker-registry", "busybox", "chromium", "chromedriver"):
        fake(tmp_path, name)
    assert missing(tmp_path) == ["graphviz"]
