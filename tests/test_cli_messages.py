"""Messages that point the right way: what was probably meant, where the pipeline lives, and one
exit status per kind of error (2: what you typed; 1: the world)."""

import pytest

from yunpipe import cli
from yunpipe.aws import announcement
from yunpipe.engine.state import PipelineState, PipelineSummary


def run(capsys, *argv):
    capsys.readouterr()
    try:
        status = cli.main(list(argv))
    except SystemExit as exit_:  # argparse's refusals
        status = exit_.code
    out, err = capsys.readouterr()
    return status, out, err


@pytest.mark.parametrize("argv, suggestion", [
    (("statu", "p"), "did you mean 'status'?"),
    (("algorithms", "lst"), "did you mean 'list'?"),
    (("local", "dwn"), "did you mean 'down'?"),
    (("setup-pipe", "--dryrun", "-f", "w.json"), "did you mean '--dry-run'?"),
    (("status", "p", "--regoin", "eu-west-1"), "did you mean '--region'?"),
])
def test_a_mistyped_verb_or_flag_exits_2_saying_what_was_probably_meant(aws_env, capsys, argv, suggestion):
    status, _, err = run(capsys, *argv)
    assert status == 2 and err.rstrip().endswith(suggestion), err


def test_nothing_close_gets_no_suggestion(aws_env, capsys):
    status, _, err = run(capsys, "zzzzzz")
    assert status == 2 and "did you mean" not in err


def test_a_mistyped_field_of_a_workflow_says_which_field_was_meant(aws_env, change123, write_workflow, capsys):
    path = write_workflow({"process": {"type": "single_run", "algorithms": [{"name": "change123-s3"}]},
                           "input_s3_name": "in-bucket", "output_s3_name": "out-bucket", "regoin": "us-east-1"})
    status, _, err = run(capsys, "setup-pipe", "--dry-run", "-f", str(path))
    assert status == 2
    assert f"{path}: regoin: unknown field (not part of the format); did you mean 'region'?" in err


def _record(pipeline: str) -> None:
    PipelineState(pipeline, PipelineSummary(pipeline, "us-east-1", "123456789012", "in", "out", "reports",
                                            f"/yunpipe/{pipeline}", pipeline, ())).save()


@pytest.mark.parametrize("verb", ["status", "logs", "results", "show", "retry", "submit"])
def test_an_unknown_pipeline_is_what_you_typed_for_every_verb(aws_env, capsys, verb):
    _record("genomics")
    status, out, err = run(capsys, verb, "genomic")
    assert status == 2 and out == ""
    assert "no pipeline 'genomic' set up from this machine (known: genomics); did you mean 'genomics'?" in err


def test_without_a_region_while_a_local_cloud_runs_the_error_says_add_local(aws_env, capsys, monkeypatch):
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    announcement.write_state("http://127.0.0.1:4750", 4750)  # this process: alive
    status, _, err = run(capsys, "clean-up", "--all")
    assert status == 2
    assert err == ("error: --region: expected an AWS region: pass --region, or set region in the workflow or your "
                   "AWS profile; a local cloud runs at http://127.0.0.1:4750: add --local (or set YUNPIPE_LOCAL=1) "
                   "to use it\n")
    announcement.clear_state()
    status, _, err = run(capsys, "clean-up", "--all")
    assert status == 2 and "local cloud" not in err
