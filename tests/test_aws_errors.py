"""Every command that talks to AWS, with no credentials or with an endpoint that does not
answer: one `error:` line on stderr, a non-zero exit, no traceback, within seconds. Run as real
processes, so what a user's terminal shows is what is checked."""
import json
import os
import subprocess
import sys
import time

import pytest
from helpers import single_run

from yunpipe import cli
from yunpipe.engine.state import state_path

CLOSED = "http://127.0.0.1:9"  # discard port on loopback: nothing listens, the connection is refused


@pytest.fixture
def recorded(moto, change123, write_workflow, tmp_path):
    """Pipeline demo deployed (to moto, in this process) and recorded; a workflow "other" with
    no state; a file to upload."""
    assert cli.setup_pipe_main(["-f", write_workflow(single_run())]) == 0
    sample = tmp_path / "a.txt"
    sample.write_text("a")
    return write_workflow(single_run("other"), "other.json"), str(sample)


def commands(other: str, sample: str, endpoint: tuple[str, ...]) -> dict[str, list[str]]:
    """`endpoint` goes to the commands that name no recorded pipeline."""
    return {
        "status": ["status", "demo"],
        "logs": ["logs", "demo"],
        "upload": ["upload", "demo", sample],
        "results": ["results", "demo"],
        "clean-up": ["clean-up", "demo"],
        "setup-pipe": ["setup-pipe", "-f", other, *endpoint],
        "create-lambda-exec-role": ["create-lambda-exec-role", "-f", other, *endpoint],
    }


def yunpipe(argv: list[str], environment: dict) -> tuple[int, str, float]:
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-c", "import sys; from yunpipe import cli; sys.exit(cli.main())", *argv],
                          env=environment, capture_output=True, text=True, timeout=60)
    return done.returncode, done.stderr, time.monotonic() - started


def offline_environment(**changes) -> dict:
    """Never past loopback: no instance metadata, and a proxy that refuses for any other host."""
    environment = {**os.environ, "AWS_EC2_METADATA_DISABLED": "true", "HTTPS_PROXY": CLOSED, "HTTP_PROXY": CLOSED,
                   "NO_PROXY": "127.0.0.1", **changes}
    return {k: v for k, v in environment.items() if v is not None}


def assert_one_line(argv, status, err, seconds, expected):
    assert status != 0, argv
    assert "Traceback" not in err, err
    assert err.splitlines() == [err.rstrip("\n")] and err.startswith(f"error: {expected}"), (argv, err)
    # botocore's retries on a refused connection must not make a user wait.
    assert seconds < 15, (argv, seconds)


def test_an_endpoint_that_does_not_answer(recorded):
    other, sample = recorded
    # The recorded place stopped answering (the endpoint moved, a tunnel closed).
    document = json.loads(state_path("demo").read_text())
    document["summary"]["location"]["endpoint_url"] = CLOSED
    state_path("demo").write_text(json.dumps(document))
    for argv in commands(other, sample, ("--endpoint-url", CLOSED)).values():
        status, err, seconds = yunpipe(argv, offline_environment())
        assert_one_line(argv, status, err, seconds, f'cannot reach AWS: Could not connect to the endpoint URL: "{CLOSED}/')


def test_no_credentials(recorded, tmp_path):
    other, sample = recorded
    environment = offline_environment(
        AWS_ACCESS_KEY_ID=None, AWS_SECRET_ACCESS_KEY=None, AWS_SESSION_TOKEN=None, AWS_PROFILE=None,
        AWS_CONTAINER_CREDENTIALS_RELATIVE_URI=None, AWS_CONTAINER_CREDENTIALS_FULL_URI=None,
        AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "none"), AWS_CONFIG_FILE=str(tmp_path / "none"))
    for argv in commands(other, sample, ()).values():
        status, err, seconds = yunpipe(argv, environment)
        assert_one_line(argv, status, err, seconds, "no AWS credentials found")
