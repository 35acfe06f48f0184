"""yunpipe pipelines: one line (or JSON object) per state file under YUNPIPE_HOME/pipelines."""
import json

import pytest
from helpers import single_run

from yunpipe import cli
from yunpipe.engine.state import PipelineState, PipelineSummary, StepSummary, state_path

LOCAL = {"cloud": "local", "endpoint_url": "http://127.0.0.1:4750", "account_id": "123456789012",
         "region": "us-east-1", "profile": None}


def summary(name: str, steps: tuple[str, ...], location: dict | None) -> PipelineSummary:
    return PipelineSummary(
        pipeline=name, region="eu-west-1", account_id="210987654321", input_bucket=f"{name}-in",
        output_bucket=f"{name}-out", reports_bucket=f"yunpipe-{name}-reports", log_group=f"/yunpipe/{name}",
        cluster=f"yunpipe-{name}",
        steps=tuple(StepSummary(name=step, input_bucket="in", output_bucket="out", queue="q", dead_letter_queue="dlq",
                               task_family="task", function="fn", started_by="by") for step in steps),
        location=location)


@pytest.fixture
def states(aws_env):
    PipelineState("here", summary("here", ("upper", "count"), LOCAL)).save()
    PipelineState("old", summary("old", ("upper",), None)).save()
    PipelineState("half").save()
    state_path("broken").write_text("{not json")


def test_each_state_file_is_one_line(states, capsys):
    assert cli.main(["pipelines"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("broken  ") and "unreadable state:" in lines[0]
    assert lines[1] == "half    no summary yet: setup-pipe did not finish (run it again, or clean-up half)"
    assert lines[2] == ("here    eu-west-1  the local cloud (last at http://127.0.0.1:4750)  2 step(s)  "
                        "here-in -> here-out")
    assert lines[3] == ("old     eu-west-1  account 210987654321, place not recorded (reached with the command's "
                        "flags)  1 step(s)  old-in -> old-out")
    assert len(lines) == 4


def test_json_lists_every_pipeline_with_its_location_and_steps(states, capsys):
    assert cli.main(["pipelines", "--json"]) == 0
    listed = {entry["name"]: entry for entry in json.loads(capsys.readouterr().out)}
    assert sorted(listed) == ["broken", "half", "here", "old"]
    assert listed["here"] == {"name": "here", "region": "eu-west-1", "account_id": "210987654321",
                              "where": "the local cloud (last at http://127.0.0.1:4750)", "location": LOCAL,
                              "steps": ["upper", "count"], "input_bucket": "here-in", "output_bucket": "here-out",
                              "problem": None}
    assert listed["half"]["problem"].startswith("no summary yet") and listed["half"]["steps"] == []
    assert listed["old"]["location"] is None


def test_no_pipelines_is_a_line_saying_so(aws_env, capsys):
    assert cli.main(["pipelines"]) == 0
    assert capsys.readouterr().out == "No pipelines set up from this machine (setup-pipe records them)\n"
    assert cli.main(["pipelines", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == []


def test_a_pipeline_set_up_on_aws_names_its_account_and_region(moto, change123, write_workflow, capsys):
    assert cli.setup_pipe_main(["-f", write_workflow(single_run())]) == 0
    capsys.readouterr()
    assert cli.main(["pipelines"]) == 0
    assert capsys.readouterr().out == ("demo  us-east-1  AWS account 123456789012 region us-east-1  1 step(s)  "
                                       "demo-in-bucket -> demo-out-bucket\n")
