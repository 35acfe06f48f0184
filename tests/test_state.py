"""The pipeline state file: its schema 1 document loads into a typed summary and saves back
exactly as it was, with and without the location field."""
import copy
import json

import pytest

from yunpipe.engine.state import PipelineState, PipelineSummary, StepSummary, require_summary, state_path
from yunpipe.errors import YunpipeError

# A summary as yunpipe has written it since schema 1 (keys in the order it writes them).
SUMMARY = {
    "pipeline": "demo",
    "region": "us-east-1",
    "account_id": "123456789012",
    "input_bucket": "demo-in",
    "output_bucket": "demo-out",
    "reports_bucket": "yunpipe-demo-reports-123456789012",
    "log_group": "/yunpipe/demo",
    "cluster": "yunpipe-demo",
    "steps": [
        {"name": "upper-1", "input_bucket": "demo-in", "output_bucket": "yunpipe-demo-upper-1-out-123456789012",
         "queue": "yunpipe-demo-upper-1-queue", "dead_letter_queue": "yunpipe-demo-upper-1-dlq",
         "task_family": "yunpipe-demo-upper-1", "function": "yunpipe-demo-upper-1-launcher",
         "started_by": "yunpipe-demo-upper-1"},
        {"name": "count-1", "input_bucket": "yunpipe-demo-upper-1-out-123456789012", "output_bucket": "demo-out",
         "queue": "yunpipe-demo-count-1-queue", "dead_letter_queue": "yunpipe-demo-count-1-dlq",
         "task_family": "yunpipe-demo-count-1", "function": "yunpipe-demo-count-1-launcher",
         "started_by": "yunpipe-demo-count-1"},
    ],
    "location": {"cloud": "aws", "endpoint_url": None, "account_id": "123456789012", "region": "us-east-1",
                 "profile": "lab"},
}


@pytest.fixture(autouse=True)
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("YUNPIPE_HOME", str(tmp_path / "home"))


def document(summary: dict) -> dict:
    return {"schema_version": 1, "pipeline": "demo", "summary": summary,
            "resources": [["bucket", "demo-in"], ["queue", "yunpipe-demo-upper-1-queue"]]}


def without_location() -> dict:
    summary = copy.deepcopy(SUMMARY)
    del summary["location"]
    return summary


@pytest.mark.parametrize("summary", [SUMMARY, without_location(), {}], ids=["located", "before-location", "none"])
def test_a_state_document_round_trips_unchanged(summary):
    written = json.dumps(document(summary), indent=2)
    state_path("demo").parent.mkdir(parents=True, exist_ok=True)
    state_path("demo").write_text(written)
    state = PipelineState.load("demo")
    state.save()
    assert state_path("demo").read_text() == written
    state.delete()


def test_the_summary_is_typed():
    summary = PipelineSummary.from_document(SUMMARY)
    assert summary.steps[1] == StepSummary("count-1", "yunpipe-demo-upper-1-out-123456789012", "demo-out",
                                           "yunpipe-demo-count-1-queue", "yunpipe-demo-count-1-dlq",
                                           "yunpipe-demo-count-1", "yunpipe-demo-count-1-launcher",
                                           "yunpipe-demo-count-1")
    assert summary.location is not None
    assert (summary.cluster, summary.location["profile"]) == ("yunpipe-demo", "lab")
    assert summary.to_document() == SUMMARY
    assert PipelineSummary.from_document(without_location()).location is None


def test_require_summary_returns_the_recorded_summary_or_says_there_is_none():
    PipelineState("demo", PipelineSummary.from_document(SUMMARY)).save()
    try:
        assert require_summary("demo") == PipelineSummary.from_document(SUMMARY)
    finally:
        PipelineState("demo").delete()
    with pytest.raises(YunpipeError, match="no pipeline 'demo' set up from this machine"):
        require_summary("demo")


def test_a_summary_missing_a_field_is_reported_with_the_file():
    broken = without_location()
    del broken["steps"][0]["queue"]
    state_path("demo").parent.mkdir(parents=True, exist_ok=True)
    state_path("demo").write_text(json.dumps(document(broken)))
    try:
        with pytest.raises(YunpipeError, match=r"demo\.json: its summary is not one yunpipe records \(KeyError: 'queue'\)"):
            PipelineState.load("demo")
    finally:
        state_path("demo").unlink()
