"""Which AWS a command talks to: flags, AWS_ENDPOINT_URL, LocalStack, the local cloud."""
import socket

import pytest
from moto.server import ThreadedMotoServer

from yunpipe import cli
from yunpipe.aws import announcement
from yunpipe.aws.location import AwsOptions, open_aws
from yunpipe.commands.common import aws_options
from yunpipe.errors import InputError, YunpipeError
from yunpipe.registry import AlgorithmRegistry
from yunpipe.specs.algorithm import load_algorithm


def options(**given) -> AwsOptions:
    return AwsOptions(**given)


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("YUNPIPE_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.delenv("YUNPIPE_LOCAL", raising=False)
    return tmp_path / "home"


@pytest.fixture
def server():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    moto.start()
    yield port
    moto.stop()


def test_endpoint_flag_wins_over_the_environment(home, monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:1")
    aws = open_aws(options(endpoint_url="http://127.0.0.1:2", region="eu-west-1"))
    assert aws.client("s3").meta.endpoint_url == "http://127.0.0.1:2"
    assert aws.region == "eu-west-1"


def test_aws_endpoint_url_is_honoured(home, monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:3")
    assert open_aws(options(region="us-east-1")).client("sqs").meta.endpoint_url == "http://127.0.0.1:3"


def test_workflow_region_is_used_when_no_flag_gives_one(home):
    assert open_aws(options(), "ap-southeast-2").region == "ap-southeast-2"
    assert open_aws(options(region="us-west-2"), "ap-southeast-2").region == "us-west-2"


def test_unknown_profile_is_bad_input(home, monkeypatch):
    monkeypatch.setenv("AWS_CONFIG_FILE", str(home / "no-config"))
    with pytest.raises(InputError) as caught:
        open_aws(options(profile="nobody"))
    assert caught.value.source == "--profile" and caught.value.field == "nobody"


def test_local_needs_a_running_local_cloud(home):
    with pytest.raises(YunpipeError, match="yunpipe local up"):
        open_aws(options(local=True))


def test_yunpipe_local_variable_means_local(home, monkeypatch, server):
    announcement.write_state(f"http://127.0.0.1:{server}", server)
    monkeypatch.setenv("YUNPIPE_LOCAL", "1")
    aws = open_aws(options())
    assert aws.client("s3").meta.endpoint_url == f"http://127.0.0.1:{server}"
    aws.call("s3", "create_bucket", Bucket="reached")
    assert "reached" in [b["Name"] for b in aws.call("s3", "list_buckets")["Buckets"]]


def test_localstack_target_deploys_through_localstack_client(home, monkeypatch, server, capsys):
    """LocalStack speaks the AWS APIs on one edge port; a moto server stands in for it here."""
    monkeypatch.setenv("LOCALSTACK_HOST", f"127.0.0.1:{server}")
    assert open_aws(options(localstack=True)).client("s3").meta.endpoint_url == f"http://127.0.0.1:{server}"
    AlgorithmRegistry().record(load_algorithm("examples/change123/change123-s3.json"), "user/change123-s3:1")
    assert cli.setup_pipe_main(["-f", "examples/change123/workflow.json", "--localstack"]) == 0
    assert "You will get your result at container-clouds-output" in capsys.readouterr().out
    assert cli.clean_up_main(["container-clouds-input", "--localstack", "--purge"]) == 0
    # moto's backends are process-wide: look for this pipeline's buckets only.
    left = [b["Name"] for b in open_aws(options(localstack=True)).call("s3", "list_buckets")["Buckets"]]
    assert not [name for name in left if "container-clouds" in name]


def test_options_come_from_the_parsed_flags_with_defaults_for_the_missing_ones():
    parser = cli.build_parser()
    args = parser.parse_args(["status", "demo", "--local", "--profile", "lab", "--endpoint-url", "http://127.0.0.1:9"])
    assert aws_options(args) == AwsOptions(local=True, profile="lab", endpoint_url="http://127.0.0.1:9")
    # demo has no AWS flags at all.
    assert aws_options(parser.parse_args(["demo"])) == AwsOptions()
