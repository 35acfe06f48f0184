"""A pipeline records where it lives: the commands that name it go back there without flags, a
flag naming another place is an error, and setup-pipe never deploys over a same-named pipeline
that lives elsewhere (the local demo over an AWS pipeline called demo)."""
import json
import urllib.request

import boto3
import pytest
from helpers import REGION, free_port, single_run
from moto.server import ThreadedMotoServer

from yunpipe import cli
from yunpipe.aws import announcement
from yunpipe.aws.facade import watch_calls
from yunpipe.engine.state import state_path
from yunpipe.local.moto_patches import default_vpc_routes_to_internet

ACCOUNT = "123456789012"


@pytest.fixture
def server(aws_env, monkeypatch):
    """A moto server on loopback. Anything not sent to loopback goes to a proxy on a closed
    loopback port: a command that lost its way fails here instead of reaching out."""
    for name in ("HTTPS_PROXY", "HTTP_PROXY", "https_proxy", "http_proxy"):
        monkeypatch.setenv(name, "http://127.0.0.1:9")
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.setenv(name, "127.0.0.1")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=free_port())
    moto.start()
    endpoint = f"http://127.0.0.1:{moto._port}"
    # The local cloud's default VPC, whose subnets route to an internet gateway, as AWS's do.
    with default_vpc_routes_to_internet():
        yield endpoint
        # moto's backends are process-wide: leave the next test an empty AWS.
        urllib.request.urlopen(urllib.request.Request(f"{endpoint}/moto-api/reset", method="POST"), timeout=30)
    moto.stop()


def s3_at(endpoint):
    return boto3.client("s3", endpoint_url=endpoint, region_name=REGION)


def location(pipeline="demo"):
    return json.loads(state_path(pipeline).read_text())["summary"]["location"]


def run(capsys, *argv):
    """(exit status, stdout, stderr) of `yunpipe ARGV`."""
    capsys.readouterr()
    status = cli.main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


def test_the_state_records_where_and_never_credentials(moto, change123, write_workflow, tmp_path, monkeypatch):
    config, credentials = tmp_path / "config", tmp_path / "credentials"
    config.write_text(f"[profile work]\nregion = {REGION}\n")
    credentials.write_text("[work]\naws_access_key_id = work-key-id\naws_secret_access_key = work-secret\n")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(credentials))
    assert cli.setup_pipe_main(["-f", write_workflow(single_run()), "--profile", "work"]) == 0
    assert location() == {"cloud": "aws", "endpoint_url": None, "account_id": ACCOUNT, "region": REGION,
                          "profile": "work"}
    text = state_path("demo").read_text()
    assert "work-key-id" not in text and "work-secret" not in text and "testing" not in text


def test_commands_go_to_the_recorded_endpoint_and_refuse_flags_naming_another_place(
        server, change123, write_workflow, tmp_path, capsys, monkeypatch):
    assert cli.setup_pipe_main(["-f", write_workflow(single_run()), "--endpoint-url", server]) == 0
    assert location() == {"cloud": "aws", "endpoint_url": server, "account_id": ACCOUNT, "region": REGION,
                          "profile": None}
    sample = tmp_path / "a.txt"
    sample.write_text("a")
    assert run(capsys, "upload", "demo", str(sample))[0] == 0
    assert [o["Key"] for o in s3_at(server).list_objects_v2(Bucket="demo-in-bucket")["Contents"]] == ["a.txt"]
    s3_at(server).put_object(Bucket="demo-out-bucket", Key="a.txt", Body=b"A")
    status, out, _ = run(capsys, "results", "demo")
    assert status == 0 and "1 result(s) in s3://demo-out-bucket" in out
    status, out, _ = run(capsys, "status", "demo")
    assert status == 0 and "step change123-s3: " in out and " done, 0 waiting" in out
    assert run(capsys, "logs", "demo")[0] == 0
    # A flag that agrees with the record is fine.
    assert run(capsys, "status", "demo", "--endpoint-url", server, "--region", REGION)[0] == 0

    where = f"pipeline 'demo' lives in AWS account {ACCOUNT} region {REGION} at {server}"
    for argv, flag in (((("--local",), "--local")), (("--endpoint-url", "http://127.0.0.1:9"), "--endpoint-url"),
                       (("--region", "eu-west-1"), "--region"), (("--localstack",), "--localstack")):
        for verb in (("status", "demo"), ("logs", "demo"), ("results", "demo"), ("upload", "demo", str(sample)),
                     ("clean-up", "demo")):
            status, _, err = run(capsys, *verb, *argv)
            assert status == 2, (verb, argv)
            assert err.startswith(f"error: {flag}") and where in err and err.count("\n") == 1, err
    for variable, value in (("AWS_ENDPOINT_URL", "http://127.0.0.1:9"), ("YUNPIPE_LOCAL", "1")):
        with monkeypatch.context() as patch:
            patch.setenv(variable, value)
            status, _, err = run(capsys, "status", "demo")
        assert status == 2 and err.startswith(f"error: {variable}") and where in err

    assert run(capsys, "clean-up", "demo", "--purge")[0] == 0
    assert s3_at(server).list_buckets()["Buckets"] == []
    assert not state_path("demo").exists()


def test_a_local_pipeline_is_found_on_the_local_cloud_while_it_runs(server, change123, write_workflow, tmp_path,
                                                                   capsys):
    port = int(server.rsplit(":", 1)[1])
    announcement.write_state(server, port)
    path = write_workflow(single_run())
    assert cli.setup_pipe_main(["-f", path, "--local"]) == 0
    assert location() == {"cloud": "local", "endpoint_url": server, "account_id": ACCOUNT, "region": REGION,
                          "profile": None, "local_cloud": announcement.read_state()["started_at"]}
    sample = tmp_path / "a.txt"
    sample.write_text("a")
    assert run(capsys, "upload", "demo", str(sample))[0] == 0
    assert [o["Key"] for o in s3_at(server).list_objects_v2(Bucket="demo-in-bucket")["Contents"]] == ["a.txt"]
    status, _, err = run(capsys, "status", "demo", "--endpoint-url", server)
    assert status == 2 and "error: --endpoint-url" in err and "lives in the local cloud" in err

    announcement.clear_state()
    for verb in (("status", "demo"), ("logs", "demo"), ("results", "demo"), ("upload", "demo", str(sample)),
                 ("clean-up", "demo")):
        status, out, err = run(capsys, *verb)
        assert status == 1 and out == ""
        assert err == "error: pipeline 'demo' lives on the local cloud, which is not running: run `yunpipe local up`\n"
    # Deploying it to AWS instead is refused before any AWS call.
    with watch_calls() as calls:
        status, _, err = run(capsys, "setup-pipe", "-f", path)
    assert status == 2 and calls == []
    assert f"{path}: name: pipeline 'demo' already lives in the local cloud" in err

    # Started again, the local cloud is a new run, which holds nothing of the old one: clean-up
    # forgets the record (this test's moto server kept the buckets; its teardown resets it).
    announcement.write_state(server, port)
    assert run(capsys, "clean-up", "demo", "--purge")[0] == 0
    assert not state_path("demo").exists()


def test_a_state_without_a_location_is_reached_with_the_flags(moto, change123, write_workflow, capsys):
    """Written before yunpipe recorded places: same schema_version, no "location"."""
    path = write_workflow(single_run())
    assert cli.setup_pipe_main(["-f", path]) == 0
    document = json.loads(state_path("demo").read_text())
    del document["summary"]["location"]
    state_path("demo").write_text(json.dumps(document))
    status, out, _ = run(capsys, "status", "demo", "--region", REGION)
    assert status == 0 and "step change123-s3: " in out and " done, 0 waiting" in out
    # The next setup-pipe records it.
    assert cli.setup_pipe_main(["-f", path]) == 0
    assert location()["cloud"] == "aws" and json.loads(state_path("demo").read_text())["schema_version"] == 1


def test_setup_pipe_refuses_a_name_that_lives_in_aws_for_the_local_cloud(moto, change123, write_workflow, capsys):
    path = write_workflow(single_run())
    assert cli.setup_pipe_main(["-f", path]) == 0
    before = state_path("demo").read_text()
    # No local cloud runs: the refusal comes first, with no AWS call at all.
    with watch_calls() as calls:
        status, _, err = run(capsys, "setup-pipe", "--local", "-f", path)
    assert status == 2 and calls == []
    assert err == (f"error: {path}: name: pipeline 'demo' already lives in AWS account {ACCOUNT} region {REGION} "
                   f"({state_path('demo')}); clean-up demo first, or pick another name\n")
    assert state_path("demo").read_text() == before


def test_setup_pipe_refuses_the_same_name_in_another_region(moto, change123, write_workflow, capsys):
    assert cli.setup_pipe_main(["-f", write_workflow(single_run())]) == 0
    before = state_path("demo").read_text()
    moved = write_workflow(single_run(region="eu-west-1"), "moved.json")
    with watch_calls() as calls:
        status, _, err = run(capsys, "setup-pipe", "-f", moved)
        assert run(capsys, "create-lambda-exec-role", "-f", moved)[0] == 2
    assert status == 2 and [c for c in calls if not c[1].startswith(("Get", "Describe", "List", "Head"))] == []
    assert f"{moved}: name: pipeline 'demo' already lives in AWS account {ACCOUNT} region {REGION}" in err
    assert state_path("demo").read_text() == before


def test_demo_refuses_when_both_of_its_names_live_elsewhere(aws_env, capsys):
    from yunpipe.engine.state import PipelineState, PipelineSummary
    for name in ("demo", "demo-local"):
        PipelineState(name, PipelineSummary(
            name, REGION, ACCOUNT, f"{name}-in", f"{name}-out", f"{name}-reports", f"/yunpipe/{name}", name, (),
            location={"cloud": "aws", "endpoint_url": None, "account_id": ACCOUNT, "region": REGION,
                      "profile": None})).save()
    status, _, err = run(capsys, "demo")
    assert status == 2
    assert err == ("error: yunpipe demo: pipelines 'demo' and 'demo-local' both live elsewhere than the local cloud; "
                   "clean-up one of them first\n")


def _restart_local_cloud(server):
    """What `local down` then `local up` leave: the same endpoint, an empty AWS, a new run."""
    urllib.request.urlopen(urllib.request.Request(f"{server}/moto-api/reset", method="POST"), timeout=30)
    announcement.write_state(server, int(server.rsplit(":", 1)[1]))


def test_a_pipeline_of_a_stopped_local_cloud_is_gone_and_every_command_says_so(server, change123, write_workflow,
                                                                                capsys):
    announcement.write_state(server, int(server.rsplit(":", 1)[1]))
    path = write_workflow(single_run())
    assert cli.setup_pipe_main(["-f", path, "--local"]) == 0
    assert run(capsys, "status", "demo")[0] == 0
    _restart_local_cloud(server)

    for verb in (("status", "demo"), ("logs", "demo"), ("results", "demo"), ("submit", "demo")):
        status, out, err = run(capsys, *verb)
        assert status == 2 and out == "", (verb, out)
        assert err.startswith("error: pipeline 'demo' was on a local cloud that has stopped since") and \
            "yunpipe setup-pipe --local -f WORKFLOW" in err and err.count("\n") == 1, err
    listing = run(capsys, "pipelines")[1]
    assert "a local cloud that has stopped since: gone with it" in listing

    # Set up again: the same names on the new run, which the record now names.
    assert cli.setup_pipe_main(["-f", path, "--local"]) == 0
    status, out, _ = run(capsys, "status", "demo")
    assert status == 0 and "step change123-s3" in out
    assert location()["local_cloud"] == announcement.read_state()["started_at"]

    # Gone again: clean-up forgets the record without a call.
    _restart_local_cloud(server)
    with watch_calls() as calls:
        status, out, _ = run(capsys, "clean-up", "demo")
    assert status == 0 and calls == []
    assert "nothing of it is left there; its record is forgotten" in out and "Pipeline demo is cleaned up." in out
    assert not state_path("demo").exists()
    announcement.clear_state()


def test_local_down_asks_before_throwing_pipelines_away(server, change123, write_workflow, capsys):
    announcement.write_state(server, int(server.rsplit(":", 1)[1]))  # names this process: it is not stopped here
    assert cli.setup_pipe_main(["-f", write_workflow(single_run()), "--local"]) == 0
    # No terminal to ask on (pytest's stdin): refused, naming what would be lost; the cloud still runs.
    status, _, err = run(capsys, "local", "down")
    assert status == 2
    assert err.startswith("error: local down: --yes: expected --yes to stop it anyway. The local cloud holds 1 "
                          "pipeline(s): demo.")
    assert announcement.read_state() is not None and run(capsys, "status", "demo")[0] == 0
    announcement.clear_state()
