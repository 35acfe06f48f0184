"""scripts/aws-smoke.sh --local, exactly as a maintainer runs it against AWS without --local, so
the script cannot rot. Cost: about 2 minutes (two pipelines, one with a Spot and a GPU step,
each set up twice and cleaned up twice; 6 files through Docker containers)."""
import os
import subprocess
from pathlib import Path

import pytest
from helpers import free_port

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "aws-smoke.sh"


def test_the_aws_smoke_script_passes_on_the_local_cloud(docker_client, tmp_path):
    # A home of its own: the script starts (and stops) its own local cloud, not this suite's.
    env = {**os.environ, "YUNPIPE_HOME": str(tmp_path / "home")}
    done = subprocess.run([str(SCRIPT), "--local", "--port", str(free_port())], env=env, capture_output=True,
                          text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-3000:]
    for seen in ("smoke-fargate-", "smoke-gpu-", ": 3 results, each the upper-cased input:",
                 "== round 2: setting up both pipelines", "== smoke test passed on the local cloud"):
        assert seen in done.stdout


def test_the_aws_smoke_script_refuses_aws_without_the_account_confirmed(tmp_path):
    env = {**os.environ, "YUNPIPE_HOME": str(tmp_path / "home")}
    done = subprocess.run([str(SCRIPT)], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "costs money; confirm with --account-id ACCOUNT (or use --local)" in done.stderr
