"""A non-editable install carries the Dockerfile templates and the runtime (contract, worker, launcher) along."""
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from yunpipe.specs.algorithm import SUPPORTED_SYSTEMS

REPO = Path(__file__).resolve().parent.parent
# Runs in the fresh venv, installed without dependencies: it imports nothing but yunpipe.
CHECK = textwrap.dedent("""
    import importlib.resources as resources
    import sys
    import yunpipe

    # Installed, not read from the source tree.
    assert "site-packages" in yunpipe.__file__, yunpipe.__file__
    dockerfiles = resources.files("yunpipe.templates").joinpath("dockerfiles")
    names = {entry.name for entry in dockerfiles.iterdir()}
    missing = {f"{system}.Dockerfile.j2" for system in sys.argv[2:]} - names
    assert not missing, missing
    assert resources.files("yunpipe.runtime").joinpath("contract.py").is_file()
    # The dashboard's pages, script and style (`yunpipe ui`).
    ui = resources.files("yunpipe.ui")
    assert all(ui.joinpath(*part).is_file() for part in (("templates", "pipeline.html"), ("static", "ui.js")))
    assert resources.files("yunpipe.runtime.worker").joinpath("main.py").is_file()
    assert resources.files("yunpipe.runtime.launcher").joinpath("scaling.py").is_file()
    # The launcher's zip is made from the installed files (launcher_package is stdlib only).
    from yunpipe.runtime.launcher_package import launcher_files
    assert any(path == "yunpipe/runtime/launcher/handler.py" for path, _ in launcher_files())
    assert resources.files("yunpipe.wrapper").joinpath("entrypoint.py").is_file()
    # The HTML report's page (`yunpipe report --html`).
    assert resources.files("yunpipe.templates").joinpath("report", "report.html.j2").is_file()
    # Every module of the source tree, in every package.
    import pathlib
    installed = pathlib.Path(yunpipe.__file__).parent
    absent = [name for name in sys.argv[1].split(",") if not (installed / name).is_file()]
    assert not absent, absent
    print("ok")
""")


@pytest.mark.timeout(300)
def test_pip_install_carries_templates_and_the_runtime(tmp_path):
    # A copy of the source, so the build leaves no build/ or egg-info in the work tree.
    source = tmp_path / "src"
    shutil.copytree(REPO, source, ignore=shutil.ignore_patterns(
        ".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", ".pytest_cache", "bench"))
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    # The ordinary `pip install .`: pip fetches setuptools and wheel for the isolated build
    # (ensurepip's setuptools lacks bdist_wheel); --no-deps keeps it to yunpipe itself.
    subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--no-deps", str(source)],
                   check=True, cwd=tmp_path)
    # Every base system's template, and the runtime image's of packaged algorithms.
    templates = [*SUPPORTED_SYSTEMS, "runtime"]
    modules = ",".join(str(p.relative_to(REPO / "yunpipe")) for p in sorted((REPO / "yunpipe").rglob("*.py")))
    result = subprocess.run([str(python), "-c", CHECK, modules, *templates], capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"
