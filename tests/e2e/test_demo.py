"""`yunpipe demo`, what `make demo` runs: the whole flow ends with results printed and exit 0."""
import re

import pytest

from yunpipe.engine.state import PipelineState, PipelineSummary, state_path

from .helpers import run_cli

pytestmark = pytest.mark.e2e


def test_demo_wraps_runs_a_two_step_pipeline_prints_results_and_cleans_up(local_cloud):
    # With a local cloud already running (the suite's), the demo uses it, as after `local up`.
    status, out = run_cli("demo", "--files", "4")
    assert status == 0, out
    assert "4 files, median" in out
    assert "s3://yunpipe-demo-output/sample-003.txt" in out
    assert "You can start upload files at yunpipe-demo-input" in out
    assert "Pipeline demo is cleaned up." in out
    assert out.rstrip().splitlines()[-1] == "==> to see it in the dashboard, keep it: yunpipe demo --keep, then yunpipe ui demo"
    # A second run reuses the wrapped images the first one recorded.
    status, out = run_cli("demo", "--files", "2")
    assert status == 0, out
    assert re.search(r"uppercase: unchanged, still uppercase@\d+", out)
    assert re.search(r"wordcount: unchanged, still wordcount@\d+", out)


def test_demo_leaves_an_aws_pipeline_called_demo_alone(local_cloud):
    aws_demo = PipelineState("demo", PipelineSummary(
        "demo", "eu-west-1", "111122223333", "demo-in", "demo-out", "demo-reports", "/yunpipe/demo", "demo", (),
        location={"cloud": "aws", "endpoint_url": None, "account_id": "111122223333", "region": "eu-west-1",
                  "profile": None}))
    aws_demo.save()
    before = state_path("demo").read_text()
    try:
        status, out = run_cli("demo", "--files", "1")
        assert status == 0, out
        assert "a pipeline named demo lives in AWS account 111122223333 region eu-west-1" in out
        assert "s3://yunpipe-demo-local-output/sample-000.txt" in out
        assert "Pipeline demo-local is cleaned up." in out
        assert state_path("demo").read_text() == before
    finally:
        aws_demo.delete()

