"""`yunpipe demo`, what `make demo` runs: the whole flow ends with results printed and exit 0."""
import re

import pytest

from .conftest import run_cli

pytestmark = pytest.mark.e2e


def test_demo_wraps_runs_a_two_step_pipeline_prints_results_and_cleans_up(local_cloud):
    # With a local cloud already running (the suite's), the demo uses it, as after `local up`.
    status, out = run_cli("demo", "--files", "4")
    assert status == 0, out
    assert "4 files, median" in out
    assert "s3://yunpipe-demo-output/sample-003.txt" in out
    assert "You can start upload files at yunpipe-demo-input" in out
    assert "Pipeline demo is cleaned up." in out
    # A second run reuses the wrapped images the first one recorded.
    status, out = run_cli("demo", "--files", "2")
    assert status == 0, out
    assert re.search(r"uppercase@\d+ is up to date", out) and re.search(r"wordcount@\d+ is up to date", out)
