"""The worker against moto, with real commands (tr, sh, python3, sleep)."""
import dataclasses
import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import unquote

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from yunpipe.runtime import contract
from yunpipe.runtime.contract import CONFIG_ERROR_EXIT
from yunpipe.runtime.contract import WorkerConfig as Config
from yunpipe.runtime.worker import loop, process
from yunpipe.runtime.worker import main as worker
from yunpipe.runtime.worker import transfers as worker_transfers
from yunpipe.runtime.worker.algorithm import check_variables, command_env, load_algorithm
from yunpipe.runtime.worker.command import substitute
from yunpipe.runtime.worker.job import process_message, report_key
from yunpipe.runtime.worker.loop import run_worker
from yunpipe.runtime.worker.message import JobFailure, parse_body
from yunpipe.runtime.worker.paths import (
    gather_folder_name,
    gather_relative_path,
    local_output_path,
    local_paths,
    result_objects,
)
from yunpipe.runtime.worker.provenance import metadata_value
from yunpipe.wrapper.context import write_worker

ENTRYPOINT = Path(__file__).resolve().parent.parent / "yunpipe" / "wrapper" / "entrypoint.py"
PY = sys.executable
# A deadline only for waits on another process, so a broken build fails instead of hanging.
PATIENCE = 30


def process_state(pid):
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return "gone"


@pytest.fixture
def aws_env(monkeypatch):
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_REGION"):
        monkeypatch.delenv(name, raising=False)


class Step:
    """One pipeline step in moto: input, output and report buckets, a queue with a DLQ."""

    def __init__(self, tmp_path, max_receive_count=1):
        self.tmp = tmp_path
        self.s3 = boto3.client("s3")
        self.sqs = boto3.client("sqs")
        for bucket in ("in-bucket", "out-bucket", "report-bucket"):
            self.s3.create_bucket(Bucket=bucket)
        dlq_url = self.sqs.create_queue(QueueName="step-dlq")["QueueUrl"]
        dlq_arn = self.sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        self.dlq_url = dlq_url
        self.queue_url = self.sqs.create_queue(
            QueueName="step",
            Attributes={
                "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": str(max_receive_count)})
            },
        )["QueueUrl"]
        self.env = {
            "YUNPIPE_QUEUE_URL": self.queue_url,
            "YUNPIPE_OUTPUT_BUCKET": "out-bucket",
            "YUNPIPE_REPORT_BUCKET": "report-bucket",
            "YUNPIPE_PIPELINE": "demo",
            "YUNPIPE_STEP": "upper",
            "YUNPIPE_MAX_RECEIVE_COUNT": str(max_receive_count),
            "YUNPIPE_IDLE_SECONDS": "0",
            "YUNPIPE_WAIT_SECONDS": "0",
            "YUNPIPE_VISIBILITY_SECONDS": "30",
            "YUNPIPE_ALGORITHM": str(tmp_path / "algorithm.json"),
        }
        # Input and output in one folder, like the contract's default "/" for both.
        self.workdir = tmp_path / "work"

    def algorithm(self, run_command, **fields):
        alg = {
            "name": "upper",
            "run_command": run_command,
            "input_file_path": str(self.workdir),
            "output_file_path": str(self.workdir),
            **fields,
        }
        Path(self.env["YUNPIPE_ALGORITHM"]).write_text(json.dumps(alg))
        return load_algorithm(self.env["YUNPIPE_ALGORITHM"])

    def config(self, **env):
        return Config.from_env({**self.env, **env})

    def put(self, key, data=b"hello world\n"):
        self.s3.put_object(Bucket="in-bucket", Key=key, Body=data)

    def send(self, key, body=None):
        body = body if body is not None else json.dumps(
            {"bucket": "in-bucket", "key": key, "etag": "e", "size": 1, "pipeline": "demo", "step": "upper"}
        )
        return self.sqs.send_message(QueueUrl=self.queue_url, MessageBody=body)["MessageId"]

    def run(self, algorithm, config=None, **kwargs):
        kwargs.setdefault("retry_delay", 0)
        return run_worker(config or self.config(), algorithm, self.sqs, self.s3, environ=dict(os.environ), **kwargs)

    def output(self, key):
        return self.s3.get_object(Bucket="out-bucket", Key=key)["Body"].read()

    def output_keys(self):
        return sorted(o["Key"] for o in self.s3.list_objects_v2(Bucket="out-bucket").get("Contents", []))

    def reports(self):
        """The failure reports (the job and task records are tests/test_worker_accounting.py's)."""
        keys = sorted(o["Key"] for o in self.s3.list_objects_v2(Bucket="report-bucket", Prefix="failures/")
                      .get("Contents", []))
        return {k: json.loads(self.s3.get_object(Bucket="report-bucket", Key=k)["Body"].read()) for k in keys}

    def queue_counts(self, url=None):
        attrs = self.sqs.get_queue_attributes(
            QueueUrl=url or self.queue_url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        return int(attrs["ApproximateNumberOfMessages"]), int(attrs["ApproximateNumberOfMessagesNotVisible"])

    def receive_one(self):
        messages = self.sqs.receive_message(
            QueueUrl=self.queue_url, MessageSystemAttributeNames=["ApproximateReceiveCount"], VisibilityTimeout=30
        ).get("Messages", [])
        assert len(messages) == 1
        return messages[0]

    def leftover_files(self):
        return sorted(str(p.relative_to(self.workdir)) for p in self.workdir.rglob("*")) if self.workdir.exists() else []


@pytest.fixture
def step(aws_env, tmp_path):
    with mock_aws():
        yield Step(tmp_path)


# ----------------------------------------------------------------------------- configuration


def test_config_from_env_applies_contract_defaults():
    config = Config.from_env({"YUNPIPE_QUEUE_URL": "https://q", "YUNPIPE_OUTPUT_BUCKET": "out"})
    assert config == Config(
        queue_url="https://q",
        output_bucket="out",
        output_prefix="",
        report_bucket=None,
        pipeline="",
        step="",
        max_receive_count=3,
        idle_seconds=30,
        wait_seconds=5,
        visibility_seconds=300,
        algorithm_path="/opt/yunpipe/algorithm.json",
        algorithm_ref="",
        image="",
        timeout_seconds=0,
        parallelism=1,
    )


def test_config_from_env_reads_every_variable():
    config = Config.from_env(
        {
            "YUNPIPE_QUEUE_URL": "https://q",
            "YUNPIPE_OUTPUT_BUCKET": "out",
            "YUNPIPE_OUTPUT_PREFIX": "results/",
            "YUNPIPE_REPORT_BUCKET": "rep",
            "YUNPIPE_PIPELINE": "p",
            "YUNPIPE_STEP": "s",
            "YUNPIPE_MAX_RECEIVE_COUNT": "5",
            "YUNPIPE_IDLE_SECONDS": "7",
            "YUNPIPE_WAIT_SECONDS": "2",
            "YUNPIPE_VISIBILITY_SECONDS": "60",
            "YUNPIPE_ALGORITHM": "/a.json",
            "YUNPIPE_ALGORITHM_REF": "upper@3",
            "YUNPIPE_IMAGE": "registry/upper@sha256:abc",
            "YUNPIPE_TIMEOUT_SECONDS": "90",
            "YUNPIPE_PARALLELISM": "4",
        }
    )
    assert (config.output_prefix, config.report_bucket, config.pipeline, config.step) == ("results/", "rep", "p", "s")
    assert (config.max_receive_count, config.idle_seconds, config.wait_seconds) == (5, 7, 2)
    assert (config.visibility_seconds, config.algorithm_path) == (60, "/a.json")
    assert (config.algorithm_ref, config.image, config.timeout_seconds) == ("upper@3", "registry/upper@sha256:abc", 90)
    assert config.parallelism == 4


def test_config_to_env_reads_back_as_the_same_config():
    config = Config(
        queue_url="https://q", output_bucket="out", output_prefix="r/", report_bucket="rep", pipeline="p", step="s",
        max_receive_count=4, idle_seconds=9, wait_seconds=3, visibility_seconds=45, algorithm_path="/a.json",
        algorithm_ref="upper@2", image="img@sha256:1", timeout_seconds=12, parallelism=3,
    )
    assert Config.from_env(config.to_env()) == config
    assert len(config.to_env()) == len(dataclasses.fields(Config))


def test_config_from_env_requires_queue_url_and_output_bucket():
    with pytest.raises(ValueError, match="YUNPIPE_QUEUE_URL, YUNPIPE_OUTPUT_BUCKET"):
        Config.from_env({})


def test_config_from_env_clamps_wait_to_sqs_maximum():
    config = Config.from_env({"YUNPIPE_QUEUE_URL": "q", "YUNPIPE_OUTPUT_BUCKET": "o", "YUNPIPE_WAIT_SECONDS": "60"})
    assert config.wait_seconds == 20


@pytest.mark.parametrize(
    "name,value",
    [
        ("YUNPIPE_IDLE_SECONDS", "soon"),
        ("YUNPIPE_VISIBILITY_SECONDS", "0"),
        ("YUNPIPE_MAX_RECEIVE_COUNT", "0"),
        ("YUNPIPE_TIMEOUT_SECONDS", "-1"),
        ("YUNPIPE_PARALLELISM", "0"),
    ],
)
def test_config_from_env_rejects_bad_integers(name, value):
    with pytest.raises(ValueError, match=name):
        Config.from_env({"YUNPIPE_QUEUE_URL": "q", "YUNPIPE_OUTPUT_BUCKET": "o", name: value})


def test_config_not_strict_keeps_what_it_can_and_defaults_the_rest():
    config = Config.from_env(
        {"YUNPIPE_QUEUE_URL": "q", "YUNPIPE_REPORT_BUCKET": "rep", "YUNPIPE_IDLE_SECONDS": "soon", "YUNPIPE_WAIT_SECONDS": "2"},
        strict=False,
    )
    assert (config.queue_url, config.output_bucket, config.report_bucket) == ("q", "", "rep")
    assert (config.idle_seconds, config.wait_seconds) == (30, 2)
    assert Config.from_env({}, strict=False).queue_url == ""


def test_config_is_frozen():
    config = Config.from_env({"YUNPIPE_QUEUE_URL": "q", "YUNPIPE_OUTPUT_BUCKET": "o"})
    with pytest.raises(AttributeError):
        config.queue_url = "other"


def test_load_algorithm_fills_defaults(tmp_path):
    path = tmp_path / "a.json"
    path.write_text(json.dumps({"name": "x", "run_command": "sh /x.sh $input $output", "environment": None}))
    alg = load_algorithm(str(path))
    assert (alg["input_file_path"], alg["output_file_path"]) == ("/yunpipe/input", "/yunpipe/output")
    assert (alg["input_adapter"], alg["output_adapter"]) == ("path", "path")
    assert (alg["timeout_seconds"], alg["environment"]) == (3600, {})


@pytest.mark.parametrize(
    "fields,message",
    [
        ({"run_command": "  "}, "run_command is empty"),
        ({"run_command": "sh -c 'unbalanced"}, "cannot be split"),
        ({"run_command": "cat", "input_adapter": "socket"}, "input_adapter"),
        ({"run_command": "cat", "output_adapter": "stdin"}, "output_adapter"),
    ],
)
def test_load_algorithm_rejects_what_cannot_run(tmp_path, fields, message):
    path = tmp_path / "a.json"
    path.write_text(json.dumps(fields))
    with pytest.raises(ValueError, match=message):
        load_algorithm(str(path))


def test_load_algorithm_names_its_file_when_the_json_is_broken(tmp_path):
    path = tmp_path / "a.json"
    path.write_text("{not json")
    with pytest.raises(ValueError, match=f"{path}: the algorithm description is not valid JSON"):
        load_algorithm(str(path))


def test_check_variables_wants_every_required_variable_set():
    algorithm = {
        "environment": {"FIXED": "1"},
        "user_specified_environment_variables": [
            {"name": "FIXED", "required": True},
            {"name": "TEST_ENV", "required": True},
            {"name": "SEED", "required": False},
            {"name": "MODE", "required": True},
        ],
    }
    with pytest.raises(ValueError, match=r"required variable.* not set: TEST_ENV, MODE$"):
        check_variables(algorithm, {"SEED": "1"})
    check_variables(algorithm, {"TEST_ENV": "", "MODE": "fast"})


def test_command_env_lets_task_variables_override_algorithm_environment():
    env = command_env({"environment": {"A": "alg", "B": 2}}, {"A": "task", "C": "c"})
    assert env == {"A": "task", "B": "2", "C": "c"}


# ----------------------------------------------------------------------------- substitution


def test_substitute_replaces_all_four_placeholders():
    argv = substitute("tool $input ${input_file} --out=$output ${output_file}", "/in/a.txt", "/out/a.txt")
    assert argv == ["tool", "/in/a.txt", "/in/a.txt", "--out=/out/a.txt", "/out/a.txt"]


def test_substitute_keeps_a_path_with_spaces_as_one_argument():
    assert substitute("sh /run.sh $input $output", "/in/a b.txt", "/out/a b.txt") == [
        "sh", "/run.sh", "/in/a b.txt", "/out/a b.txt"
    ]


def test_substitute_leaves_longer_variable_names_alone():
    assert substitute("tool $inputs $output_dir $input.gz", "/i", "/o") == ["tool", "$inputs", "$output_dir", "/i.gz"]


@pytest.mark.parametrize(
    "script",
    [
        "printf %s $input",  # unquoted
        'printf %s "$input"',  # double-quoted by the author
        "printf %s '$input'",  # single-quoted by the author
        "printf %s ${input_file}",
    ],
)
def test_substitute_quotes_paths_inside_a_shell_c_script(script):
    nasty = "/tmp/a b'c\"$HOME`x`\\d.txt"
    argv = substitute(f"sh -c {json.dumps(script)}", nasty, "/o")
    assert subprocess.run(argv, capture_output=True, check=True).stdout.decode() == nasty


def test_substitute_finds_the_script_after_shell_options():
    argv = substitute("bash -e -o pipefail -c 'printf %s $output' name $input", "/i x", "/o y")
    assert argv == ["bash", "-e", "-o", "pipefail", "-c", "printf %s '/o y'", "name", "/i x"]
    assert subprocess.run(argv, capture_output=True, check=True).stdout == b"/o y"


def test_substitute_does_not_quote_arguments_of_a_shell_script_file():
    assert substitute("sh /run.sh $input", "/a b", "/o") == ["sh", "/run.sh", "/a b"]


# ----------------------------------------------------------------------------- paths and keys


def test_local_paths_prefix_output_when_it_would_be_the_input():
    alg = {"input_file_path": "/", "output_file_path": "/"}
    assert local_paths(alg, "data/a b.txt") == ("/a b.txt", "/output-a b.txt")


def test_local_paths_use_the_basename_in_separate_folders():
    alg = {"input_file_path": "/in", "output_file_path": "/out/"}
    assert local_paths(alg, "x/y/z.csv") == ("/in/z.csv", "/out/z.csv")


@pytest.mark.parametrize("key", ["folder/", "a/..", "."])
def test_local_paths_reject_keys_that_do_not_name_a_file(key):
    with pytest.raises(ValueError, match="does not name a file"):
        local_paths({"input_file_path": "/", "output_file_path": "/"}, key)


def test_result_objects_for_a_file_and_a_directory(tmp_path):
    (tmp_path / "f.txt").write_text("x")
    assert result_objects("p/", "k/f.txt", str(tmp_path / "f.txt")) == [(str(tmp_path / "f.txt"), "p/k/f.txt")]
    (tmp_path / "d" / "sub").mkdir(parents=True)
    (tmp_path / "d" / "b.txt").write_text("b")
    (tmp_path / "d" / "sub" / "a.txt").write_text("a")
    assert result_objects("", "k", str(tmp_path / "d")) == [
        (str(tmp_path / "d" / "b.txt"), "k/b.txt"),
        (str(tmp_path / "d" / "sub" / "a.txt"), "k/sub/a.txt"),
    ]
    assert result_objects("", "k", str(tmp_path / "missing")) == []


def test_report_key_follows_the_contract_and_names_unnamed_parts():
    config = Config(queue_url="q", output_bucket="o", pipeline="demo", step="s1")
    assert report_key(config, "data/a b.txt", 2) == "failures/demo/s1/data/a b.txt/attempt-2.json"
    assert report_key(Config(queue_url="q", output_bucket="o"), "k", 1) == "failures/_/_/k/attempt-1.json"


# ----------------------------------------------------------------------------- jobs against moto


def test_path_adapter_sh_tr_uploads_uppercased_result_and_deletes_message(step):
    alg = step.algorithm("sh -c 'tr a-z A-Z < $input > $output'")
    step.put("data/a.txt")
    step.send("data/a.txt")
    assert step.run(alg) == 0
    assert step.output("data/a.txt") == b"HELLO WORLD\n"
    assert step.queue_counts() == (0, 0)
    assert step.reports() == {}
    assert step.leftover_files() == []


@pytest.mark.parametrize(
    ("size", "operations"),
    [(12, ["GetObject"]), (None, ["HeadObject", "GetObject"]), (worker_transfers.SINGLE_REQUEST_BYTES, ["HeadObject", "GetObject"])],
)
def test_a_small_input_of_known_size_is_fetched_with_one_get(step, size, operations):
    alg = step.algorithm("sh -c 'tr a-z A-Z < $input > $output'")
    seen = []
    step.s3.meta.events.register("before-call.s3", lambda model, **_: seen.append(model.name))
    step.put("a.txt")
    body = {"bucket": "in-bucket", "key": "a.txt", "etag": "e"}
    step.send("a.txt", body=json.dumps(body if size is None else {**body, "size": size}))
    # The transfers alone: accounting's requests (a large input's run) are test_worker_accounting.py's,
    # the skip check's test_worker_skip.py's.
    assert step.run(alg, step.config(YUNPIPE_ACCOUNTING="0", YUNPIPE_FORCE="1")) == 0
    assert [name for name in seen if name != "PutObject"] == operations
    assert step.output("a.txt") == b"HELLO WORLD\n"


def test_a_large_result_is_uploaded_in_parts_with_its_provenance_and_a_small_one_in_one_put(step):
    """Results from 8 MiB go through s3transfer's multipart upload; smaller ones take one PutObject."""
    seen = []
    step.s3.meta.events.register("before-call.s3", lambda model, **_: seen.append(model.name))
    for name, size in (("big.txt", worker_transfers.SINGLE_REQUEST_BYTES), ("small.txt", worker_transfers.SINGLE_REQUEST_BYTES - 1)):
        step.put(name)
        step.send(name)
        seen.clear()
        # The results' own requests: the job's record is test_worker_accounting.py's.
        assert step.run(step.algorithm(f"sh -c 'head -c {size} /dev/zero > $output'"),
                        step.config(YUNPIPE_ACCOUNTING="0")) == 0
        uploads = [op for op in seen if op in ("PutObject", "CreateMultipartUpload", "UploadPart")]
        assert uploads == (["CreateMultipartUpload", "UploadPart"] if name == "big.txt" else ["PutObject"])
        head = step.s3.head_object(Bucket="out-bucket", Key=name)
        assert head["ContentLength"] == size and head["Metadata"]["yunpipe-pipeline"] == "demo"


@pytest.mark.parametrize(("threshold", "logged"), [(12, True), (13, False)])
def test_a_large_download_and_upload_are_logged_with_their_size(step, caplog, monkeypatch, threshold, logged):
    monkeypatch.setattr(worker_transfers, "LOG_TRANSFER_BYTES", threshold)
    alg = step.algorithm("sh -c 'cat $input > $output'")
    step.put("a.txt")  # 12 bytes, its size not in the message: fetched by s3transfer
    step.send("a.txt", body=json.dumps({"bucket": "in-bucket", "key": "a.txt", "etag": "e"}))
    with caplog.at_level("INFO", logger="yunpipe.worker"):
        assert step.run(alg) == 0
    transfers = [r.getMessage().split(" in ")[0] for r in caplog.records if r.getMessage().startswith(("downloaded", "uploaded"))]
    expected = ["downloaded s3://in-bucket/a.txt bytes=12", "uploaded s3://out-bucket/a.txt bytes=12"]
    assert transfers == (expected if logged else [])
    assert step.output("a.txt") == b"hello world\n"


def test_stdin_and_stdout_adapters_feed_input_and_capture_result(step):
    alg = step.algorithm("tr -d x", input_adapter="stdin", output_adapter="stdout")
    step.put("in.txt", b"xaxbxc")
    step.send("in.txt")
    step.run(alg)
    assert step.output("in.txt") == b"abc"
    assert step.queue_counts() == (0, 0)
    assert step.leftover_files() == []


def test_python_script_command_in_separate_folders_with_output_prefix(step, tmp_path):
    script = tmp_path / "reverse.py"
    script.write_text("import sys\nopen(sys.argv[2], 'w').write(open(sys.argv[1]).read()[::-1])\n")
    alg = step.algorithm(
        f"{PY} {script} $input $output",
        input_file_path=str(step.workdir / "in"),
        output_file_path=str(step.workdir / "out"),
    )
    step.put("abc.txt", b"abc")
    step.send("abc.txt")
    step.run(alg, step.config(YUNPIPE_OUTPUT_PREFIX="results/"))
    assert step.output_keys() == ["results/abc.txt"]
    assert step.output("results/abc.txt") == b"cba"
    assert step.leftover_files() == ["in", "out"]


def test_directory_output_uploads_every_file_under_the_key(step):
    alg = step.algorithm("sh -c 'mkdir -p $output/sub && cp $input $output/copy.txt && echo two > $output/sub/two.txt'")
    step.put("set/d.txt", b"one")
    step.send("set/d.txt")
    step.run(alg)
    assert step.output_keys() == ["set/d.txt/copy.txt", "set/d.txt/sub/two.txt"]
    assert step.output("set/d.txt/copy.txt") == b"one"
    assert step.output("set/d.txt/sub/two.txt") == b"two\n"
    assert step.leftover_files() == []


def test_key_with_spaces_and_folders_keeps_the_same_result_key(step):
    alg = step.algorithm("sh -c 'tr a-z A-Z < $input > \"$output\"'")
    step.put("my data/a b+c.txt", b"spaced")
    step.send("my data/a b+c.txt")
    step.run(alg)
    assert step.output_keys() == ["my data/a b+c.txt"]
    assert step.output("my data/a b+c.txt") == b"SPACED"


def test_url_encoded_key_in_message_falls_back_to_the_decoded_object(step):
    alg = step.algorithm("sh -c 'tr a-z A-Z < $input > $output'")
    step.put("my data/a b.txt", b"decoded")
    step.send("my+data/a%20b.txt")
    step.run(alg)
    assert step.output_keys() == ["my data/a b.txt"]
    assert step.output("my data/a b.txt") == b"DECODED"
    assert step.queue_counts() == (0, 0)
    metadata = step.s3.head_object(Bucket="out-bucket", Key="my data/a b.txt")["Metadata"]
    assert metadata["yunpipe-input"] == "s3://in-bucket/my data/a b.txt"


def test_url_encoded_key_falls_back_when_s3_answers_403_as_it_does_to_the_task_role(step):
    """The task role may not s3:ListBucket (least privilege), and to such a caller real S3
    answers a missing key with 403 AccessDenied, not 404 (moto always answers 404)."""
    checker = boto3.client("s3")

    def answer_as_to_the_task_role(operation, code):  # a HEAD response has no body, so no error code
        def check(params, **_):
            try:
                checker.head_object(Bucket=params["Bucket"], Key=params["Key"])
            except ClientError:
                raise ClientError({"Error": {"Code": code, "Message": "Access Denied"}}, operation) from None
        return check

    for operation, code in (("GetObject", "AccessDenied"), ("HeadObject", "403")):
        step.s3.meta.events.register(f"before-parameter-build.s3.{operation}", answer_as_to_the_task_role(operation, code))
    alg = step.algorithm("sh -c 'tr a-z A-Z < $input > $output'")
    step.put("my data/a b.txt", b"decoded")
    step.send("my+data/a%20b.txt")
    step.run(alg)
    assert step.output("my data/a b.txt") == b"DECODED"
    assert step.queue_counts() == (0, 0)


def test_many_messages_are_processed_by_one_worker(step):
    alg = step.algorithm("sh -c 'tr a-z A-Z < $input > $output'")
    for i in range(12):
        step.put(f"f{i}.txt", f"file {i}".encode())
        step.send(f"f{i}.txt")
    step.run(alg)
    assert step.output_keys() == sorted(f"f{i}.txt" for i in range(12))
    assert step.output("f11.txt") == b"FILE 11"
    assert step.queue_counts() == (0, 0)


def test_failing_command_reports_exit_code_and_stderr_until_the_final_receive(aws_env, tmp_path):
    with mock_aws():
        step = Step(tmp_path, max_receive_count=2)
        alg = step.algorithm("sh -c 'echo cannot parse $input >&2; exit 3'")
        step.put("bad.txt")
        step.send("bad.txt")
        assert step.run(alg) == 0
        reports = step.reports()
        assert list(reports) == ["failures/demo/upper/bad.txt/attempt-1.json", "failures/demo/upper/bad.txt/attempt-2.json"]
        first, second = reports.values()
        assert (first["attempt"], first["final"], second["attempt"], second["final"]) == (1, False, 2, True)
        assert first["reason"] == "nonzero_exit" and first["exit_code"] == 3
        assert first["stderr_tail"] == f"cannot parse {step.workdir / 'bad.txt'}\n"
        assert (first["pipeline"], first["step"], first["bucket"], first["key"], first["etag"]) == (
            "demo", "upper", "in-bucket", "bad.txt", "e"
        )
        assert first["started_at"] <= first["finished_at"]
        # Never deleted: SQS moved it to the dead-letter queue after the second try.
        assert step.queue_counts() == (0, 0)
        assert step.queue_counts(step.dlq_url) == (1, 0)
        assert step.output_keys() == []
        assert step.leftover_files() == []


def test_failed_message_stays_on_the_queue_invisible_for_the_retry_delay(aws_env, tmp_path):
    with mock_aws():
        step = Step(tmp_path, max_receive_count=3)
        alg = step.algorithm("false")
        step.put("f.txt")
        step.send("f.txt")
        step.run(alg, retry_delay=60)
        (report,) = step.reports().values()
        assert (report["attempt"], report["final"]) == (1, False)
        assert step.queue_counts() == (0, 1)


def test_stderr_tail_keeps_the_last_4kb(step):
    alg = step.algorithm(f"{PY} -c \"import sys; sys.stderr.write('a' * 10000 + 'END'); sys.exit(1)\"")
    step.put("t.txt")
    step.send("t.txt")
    step.run(alg, step.config())
    (report,) = step.reports().values()
    assert len(report["stderr_tail"]) == 4096 and report["stderr_tail"].endswith("aaaEND")


def test_timeout_kills_the_process_group_and_reports_timeout(step, tmp_path):
    pidfile = tmp_path / "child.pid"
    alg = step.algorithm(f"sh -c 'sleep 30 & echo $! > {pidfile}; wait'", timeout_seconds=1)
    step.put("slow.txt")
    step.send("slow.txt")
    step.run(alg, step.config())
    (report,) = step.reports().values()
    assert report["reason"] == "timeout" and report["final"] is True
    assert report["exit_code"] == -signal.SIGTERM
    # The orphaned sleep is gone (or a zombie awaiting its new parent), not sleeping on.
    child = int(pidfile.read_text())
    deadline = time.monotonic() + PATIENCE
    while process_state(child) not in ("Z", "X", "gone") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert process_state(child) in ("Z", "X", "gone")


def test_missing_output_is_a_failure(step):
    alg = step.algorithm("sh -c 'cat $input > /dev/null'")
    step.put("m.txt")
    step.send("m.txt")
    step.run(alg, step.config())
    (report,) = step.reports().values()
    assert (report["reason"], report["exit_code"]) == ("missing_output", 0)
    assert "was not created" in report["stderr_tail"]
    assert step.output_keys() == [] and step.leftover_files() == []


def test_empty_output_directory_is_a_missing_output(step):
    alg = step.algorithm("mkdir $output")
    step.put("e.txt")
    step.send("e.txt")
    step.run(alg, step.config())
    (report,) = step.reports().values()
    assert report["reason"] == "missing_output" and "empty directory" in report["stderr_tail"]
    assert step.leftover_files() == []


def test_stale_output_from_an_earlier_job_is_not_taken_for_a_result(step):
    alg = step.algorithm("true")
    step.workdir.mkdir()
    (step.workdir / "output-s.txt").write_text("stale")
    step.put("s.txt")
    step.send("s.txt")
    step.run(alg, step.config())
    assert [r["reason"] for r in step.reports().values()] == ["missing_output"]
    assert step.output_keys() == []


def test_missing_object_is_a_download_error(step):
    alg = step.algorithm("sh -c 'cp $input $output'")
    step.send("never-uploaded.txt")
    step.run(alg, step.config())
    (report,) = step.reports().values()
    assert (report["reason"], report["exit_code"], report["key"]) == ("download_error", None, "never-uploaded.txt")
    assert "never-uploaded.txt" in report["stderr_tail"]
    assert step.leftover_files() == []


def test_command_that_cannot_start_is_a_start_error(step):
    alg = step.algorithm("/no/such/program $input")
    step.put("p.txt")
    step.send("p.txt")
    step.run(alg, step.config())
    (report,) = step.reports().values()
    assert report["reason"] == "start_error" and "/no/such/program" in report["stderr_tail"]


def test_bad_message_body_is_reported_under_its_message_id(step):
    alg = step.algorithm("true")
    message_id = step.send("", body="not json")
    step.run(alg, step.config())
    reports = step.reports()
    assert list(reports) == [f"failures/demo/upper/_invalid-message/{message_id}/attempt-1.json"]
    (report,) = reports.values()
    assert (report["reason"], report["key"], report["final"]) == ("bad_message", None, True)
    assert "not JSON" in report["stderr_tail"]


def test_message_without_key_is_a_bad_message(step):
    alg = step.algorithm("true")
    step.send("", body=json.dumps({"bucket": "in-bucket"}))
    result = process_message(step.receive_one(), step.config(), alg, step.s3, environ=os.environ)
    assert (result.ok, result.reason) == (False, "bad_message")


def test_without_report_bucket_the_failure_is_only_logged(step, caplog):
    alg = step.algorithm("false")
    step.put("n.txt")
    step.send("n.txt")
    config = Config.from_env({k: v for k, v in step.env.items() if k != "YUNPIPE_REPORT_BUCKET"})
    with caplog.at_level("INFO", logger="yunpipe.worker"):
        result = process_message(step.receive_one(), config, alg, step.s3, environ=os.environ)
    assert result.report["reason"] == "nonzero_exit"
    assert step.reports() == {}
    assert '"reason": "nonzero_exit"' in caplog.text


def test_one_log_line_per_job_names_key_results_and_duration(step, caplog):
    alg = step.algorithm("sh -c 'cp $input $output'")
    step.put("log.txt")
    step.send("log.txt")
    with caplog.at_level("INFO", logger="yunpipe.worker"):
        step.run(alg)
    (line,) = [r.getMessage() for r in caplog.records if r.getMessage().startswith("ok ")]
    assert line.startswith("ok key=log.txt results=log.txt duration=") and line.endswith("s")


def test_algorithm_environment_and_task_variables_reach_the_command(step, monkeypatch):
    monkeypatch.setenv("TEST_ENV", "from-task")
    alg = step.algorithm("sh -c 'echo $FIXED $TEST_ENV > $output'", environment={"FIXED": "from-alg", "TEST_ENV": "x"})
    step.put("v.txt")
    step.send("v.txt")
    step.run(alg)
    assert step.output("v.txt") == b"from-alg from-task\n"


@pytest.mark.parametrize(("parallelism", "batch"), [("1", 1), ("4", 4), ("12", 10)])
def test_worker_exits_zero_after_the_idle_period_on_an_empty_queue(step, parallelism, batch):
    """A receive asks for a message per free job slot, at most SQS's 10."""
    alg = step.algorithm("true")
    calls = []
    step.sqs.meta.events.register("before-parameter-build.sqs.ReceiveMessage", lambda **kw: calls.append(kw["params"]))
    config = step.config(YUNPIPE_IDLE_SECONDS="1", YUNPIPE_WAIT_SECONDS="1", YUNPIPE_PARALLELISM=parallelism)
    assert step.run(alg, config) == 0
    assert calls and all(c["WaitTimeSeconds"] == 1 and c["MaxNumberOfMessages"] == batch for c in calls)
    assert calls[0]["MessageSystemAttributeNames"] == ["ApproximateReceiveCount"]


def test_visibility_is_extended_while_a_long_job_runs(step, tmp_path):
    marker = tmp_path / "extended"

    def on_extend(params, **kwargs):
        if params["VisibilityTimeout"] == 2:
            marker.touch()

    step.sqs.meta.events.register("before-parameter-build.sqs.ChangeMessageVisibility", on_extend)
    # The job ends only once an extension happened, so the test does not depend on timing.
    alg = step.algorithm(f"sh -c 'while [ ! -e {marker} ]; do sleep 0.05; done; cp $input $output'", timeout_seconds=20)
    step.put("long.txt")
    step.send("long.txt")
    step.run(alg, step.config(YUNPIPE_VISIBILITY_SECONDS="2"))
    assert step.output("long.txt") == b"hello world\n"
    assert step.queue_counts() == (0, 0)


def test_stop_abandons_the_running_job_and_releases_its_message(step, tmp_path):
    started = tmp_path / "started"
    alg = step.algorithm(f"sh -c 'touch {started}; sleep 30; cp $input $output'")
    step.put("a.txt")
    step.put("b.txt")
    step.send("a.txt")
    step.send("b.txt")
    stop = threading.Event()
    outcome = []
    worker = threading.Thread(target=lambda: outcome.append(step.run(alg, stop=stop)))
    worker.start()
    deadline = time.monotonic() + PATIENCE
    while not started.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    stop.set()
    worker.join(PATIENCE)
    assert outcome == [0]
    assert step.output_keys() == [] and step.reports() == {}
    # Both the abandoned and the not-yet-started message are visible again at once.
    assert step.queue_counts() == (2, 0)
    assert step.leftover_files() == []


# ----------------------------------------------------------------------------- parallel jobs


def most_at_once(log):
    """The most commands running at once, from the start/end lines they appended to `log`."""
    running = most = 0
    for line in log.read_text().split():
        running += 1 if line == "start" else -1
        most = max(most, running)
    assert running == 0
    return most


def test_parallel_jobs_run_up_to_parallelism_at_once(step, tmp_path):
    log = tmp_path / "log"
    alg = step.algorithm(f"sh -c 'echo start >> {log}; sleep 0.5; echo end >> {log}; tr a-z A-Z < $input > $output'")
    asked = []
    step.sqs.meta.events.register("before-parameter-build.sqs.ReceiveMessage",
                                  lambda params, **_: asked.append(params["MaxNumberOfMessages"]))
    for i in range(6):
        step.put(f"f{i}.txt", f"file {i}".encode())
        step.send(f"f{i}.txt")
    assert step.run(alg, step.config(YUNPIPE_PARALLELISM="3")) == 0
    assert most_at_once(log) == 3
    # Never more messages asked for than there were free slots.
    assert asked and max(asked) == 3
    assert step.output_keys() == [f"f{i}.txt" for i in range(6)]
    assert [step.output(f"f{i}.txt") for i in range(6)] == [f"FILE {i}".encode() for i in range(6)]
    assert step.queue_counts() == (0, 0)
    assert step.reports() == {} and step.leftover_files() == []


def test_parallel_jobs_with_the_same_local_paths_take_turns(step, tmp_path):
    """x/a.txt and y/a.txt both land at <input_file_path>/a.txt: each job must see its own input
    from start to end (it is read twice, apart), and one key queued twice likewise (forced: it would
    be skipped once its first result is there)."""
    log = tmp_path / "log"
    alg = step.algorithm(f"sh -c 'echo start >> {log}; cp $input $output; sleep 0.3; cat $input >> $output; "
                         f"echo end >> {log}'")
    step.put("x/a.txt", b"x\n")
    step.put("y/a.txt", b"y\n")
    for key in ("x/a.txt", "y/a.txt", "x/a.txt"):
        step.send(key)
    assert step.run(alg, step.config(YUNPIPE_PARALLELISM="3", YUNPIPE_FORCE="1")) == 0
    assert most_at_once(log) == 1
    assert log.read_text().split().count("start") == 3
    assert (step.output("x/a.txt"), step.output("y/a.txt")) == (b"x\nx\n", b"y\ny\n")
    assert step.queue_counts() == (0, 0)
    assert step.reports() == {} and step.leftover_files() == []


def test_a_failing_job_among_parallel_ones_is_reported_and_left_for_sqs(aws_env, tmp_path):
    with mock_aws():
        step = Step(tmp_path, max_receive_count=3)
        alg = step.algorithm("sh -c 'case $input in */bad.txt) echo broken >&2; exit 4;; esac; sleep 0.3; "
                             "tr a-z A-Z < $input > $output'")
        for key in ("ok1.txt", "bad.txt", "ok2.txt"):
            step.put(key)
            step.send(key)
        assert step.run(alg, step.config(YUNPIPE_PARALLELISM="3"), retry_delay=60) == 0
        assert step.output_keys() == ["ok1.txt", "ok2.txt"]
        assert step.output("ok2.txt") == b"HELLO WORLD\n"
        (report,) = step.reports().values()
        assert (report["key"], report["reason"], report["exit_code"]) == ("bad.txt", "nonzero_exit", 4)
        assert report["stderr_tail"] == "broken\n"
        # The other two are deleted; the failed one waits invisible for its retry.
        assert step.queue_counts() == (0, 1)
        assert step.leftover_files() == []


def test_stop_releases_every_job_in_flight(step, tmp_path):
    started = tmp_path / "started"
    started.mkdir()
    alg = step.algorithm(f"sh -c 'touch {started}/$(basename $input); sleep 30; cp $input $output'")
    for i in range(4):
        step.put(f"f{i}.txt")
        step.send(f"f{i}.txt")
    stop = threading.Event()
    outcome = []
    worker = threading.Thread(target=lambda: outcome.append(step.run(alg, step.config(YUNPIPE_PARALLELISM="3"),
                                                                     stop=stop)))
    worker.start()
    deadline = time.monotonic() + PATIENCE
    while len(list(started.iterdir())) < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(list(started.iterdir())) == 3
    stop.set()
    worker.join(PATIENCE)
    assert outcome == [0]
    assert step.output_keys() == [] and step.reports() == {}
    # The three abandoned jobs' messages are visible again at once, with the one never received.
    assert step.queue_counts() == (4, 0)
    assert step.leftover_files() == []


def test_a_job_that_crashes_the_worker_code_releases_its_message(aws_env, tmp_path, monkeypatch, caplog):
    with mock_aws():
        step = Step(tmp_path, max_receive_count=1)
        alg = step.algorithm("true")

        def crash(*args, **kwargs):
            raise RuntimeError("bug")

        monkeypatch.setattr(loop, "process_message", crash)
        step.send("a.txt")
        assert step.run(alg, step.config(YUNPIPE_PARALLELISM="2")) == 0
        assert "job of message" in caplog.text and "RuntimeError: bug" in caplog.text
        # Released, not held: the next receive saw it again, over maxReceiveCount, and SQS moved it.
        assert step.queue_counts() == (0, 0) and step.queue_counts(step.dlq_url) == (1, 0)


def test_reaping_orphans_leaves_a_running_command_s_exit_status_alone(monkeypatch):
    """As PID 1 the worker reaps orphaned processes while other jobs' commands run: a zombie that
    is a running command's is left for its job's wait."""
    orphan = subprocess.Popen(["sh", "-c", "exit 0"])
    command = subprocess.Popen(["sh", "-c", "exit 3"])
    monkeypatch.setattr(process, "_COMMANDS", {command.pid})
    deadline = time.monotonic() + PATIENCE
    while {process_state(orphan.pid), process_state(command.pid)} != {"Z"} and time.monotonic() < deadline:
        time.sleep(0.05)
    process._reap_orphans()
    assert (process_state(orphan.pid), process_state(command.pid)) == ("gone", "Z")
    assert command.wait(timeout=PATIENCE) == 3
    orphan.wait(timeout=PATIENCE)


# ----------------------------------------------------------------------------- joins, gathers, provenance


def join_body(key, *inputs):
    """A join message: `inputs` are (step, bucket, etag) in the workflow's order, all at `key`."""
    return json.dumps({
        "bucket": inputs[-1][1], "key": key, "etag": inputs[-1][2], "pipeline": "demo", "step": "upper",
        "inputs": [{"step": s, "bucket": b, "key": key, "etag": e} for s, b, e in inputs],
    })


def gather_body(key, prefix):
    return json.dumps({"key": key, "bucket": "in-bucket", "etag": "", "gather": {"prefix": prefix},
                       "pipeline": "demo", "step": "upper"})


def test_substitute_names_each_join_input_by_its_step():
    inputs = {"a": "/in/a/k", "ab": "/in/ab/k", "a-b": "/in/a-b/k"}
    argv = substitute("tool $input_a $input_ab ${input_a-b} $input_a-b ${input_ab} $input_x $input", "/first", "/o", inputs)
    # A bare name is the whole shell name, so `$input_a-b` is input a then "-b", as a shell reads it.
    assert argv == ["tool", "/in/a/k", "/in/ab/k", "/in/a-b/k", "/in/a/k-b", "/in/ab/k", "$input_x", "/first"]


def test_substitute_keeps_input_file_for_the_first_input_when_a_step_is_named_file():
    argv = substitute("tool ${input_file} $input_file", "/in/seg/k", "/o", {"seg": "/in/seg/k", "file": "/in/file/k"})
    assert argv == ["tool", "/in/seg/k", "/in/file/k"]


def test_substitute_quotes_join_inputs_inside_a_shell_c_script():
    nasty = "/tmp/my-step/a b'c\"$HOME.txt"
    argv = substitute("sh -c 'printf %s ${input_my-step}'", "/first", "/o", {"my-step": nasty})
    assert subprocess.run(argv, capture_output=True, check=True).stdout.decode() == nasty


def test_local_output_path_steps_aside_from_an_input_folder_of_the_same_name():
    alg = {"output_file_path": "/w"}
    assert local_output_path(alg, "a", ["/w/seg/a"]) == "/w/a"
    assert local_output_path(alg, "seg", ["/w/mask/seg", "/w/seg/seg"]) == "/w/output-seg"


@pytest.mark.parametrize(
    ("prefix", "key", "relative"),
    [
        ("runs/r1/", "runs/r1/a.txt", "a.txt"),
        ("runs/r1/", "runs/r1/sub//./b.txt", "sub/b.txt"),
        ("runs/r1", "runs/r1/a.txt", "a.txt"),  # no leading slash: never an absolute path
        ("runs/r1.txt", "runs/r1.txt", "r1.txt"),  # the object at the prefix keeps its name
    ],
)
def test_gather_relative_path_keeps_the_path_under_the_prefix(prefix, key, relative):
    assert gather_relative_path(prefix, key) == relative


@pytest.mark.parametrize("key", ["runs/r1/../evil.txt", "runs/r1/a/../../evil.txt", "runs/r1/.."])
def test_gather_relative_path_refuses_keys_that_leave_the_folder(key):
    with pytest.raises(ValueError, match="does not name a file inside the gather folder"):
        gather_relative_path("runs/r1/", key)


@pytest.mark.parametrize(("key", "folder"), [("runs/r1", "r1"), ("runs/", "gather"), ("..", "gather")])
def test_gather_folder_is_named_for_the_run(key, folder):
    assert gather_folder_name(key) == folder


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"inputs": []}, "non-empty list"),
        ({"inputs": [{"step": "Seg", "bucket": "b", "key": "k"}]}, r"inputs\[0\].step must match"),
        ({"inputs": [{"step": "seg", "bucket": "b", "key": "k"}, {"step": "seg\n", "bucket": "b", "key": "k"}]},
         r"inputs\[1\].step must match"),
        ({"inputs": [{"step": "seg", "bucket": "b", "key": "k"}, {"step": "seg", "bucket": "c", "key": "k"}]},
         "name a step twice"),
        ({"inputs": [{"step": "seg", "bucket": "b"}]}, r"inputs\[0\] lacks bucket or key"),
        ({"gather": "runs/"}, "gather must be"),
        ({"gather": {"prefix": "p/"}, "inputs": [{"step": "seg", "bucket": "b", "key": "k"}]}, "both inputs and gather"),
    ],
)
def test_parse_body_rejects_malformed_joins_and_gathers(body, message):
    with pytest.raises(JobFailure, match=message) as failure:
        parse_body(json.dumps({"bucket": "b", "key": "k", **body}))
    assert failure.value.reason == "bad_message"


def test_join_downloads_each_input_to_its_step_folder(step):
    step.s3.create_bucket(Bucket="mask-bucket")
    step.put("run/a.txt", b"segmented\n")
    step.s3.put_object(Bucket="mask-bucket", Key="run/a.txt", Body=b"masked\n")
    alg = step.algorithm("sh -c 'printf \"%s\\n\" $input_seg ${input_my-mask} $input > $output; cat $input_seg ${input_my-mask} >> $output'")
    step.send("", body=join_body("run/a.txt", ("seg", "in-bucket", "e1"), ("my-mask", "mask-bucket", "e2")))
    assert step.run(alg) == 0
    seg, mask = step.workdir / "seg" / "a.txt", step.workdir / "my-mask" / "a.txt"
    assert step.output("run/a.txt").decode() == f"{seg}\n{mask}\n{seg}\nsegmented\nmasked\n"
    assert step.queue_counts() == (0, 0) and step.reports() == {}
    # The step folders go with the inputs, being empty.
    assert step.leftover_files() == []


def test_join_feeds_its_first_input_on_stdin(step):
    step.s3.create_bucket(Bucket="mask-bucket")
    step.put("k.txt", b"first")
    step.s3.put_object(Bucket="mask-bucket", Key="k.txt", Body=b"second")
    alg = step.algorithm("tr a-z A-Z", input_adapter="stdin", output_adapter="stdout")
    step.send("", body=join_body("k.txt", ("seg", "in-bucket", "e1"), ("mask", "mask-bucket", "e2")))
    step.run(alg)
    assert step.output("k.txt") == b"FIRST"


def test_join_with_a_missing_input_is_a_download_error(step):
    step.s3.create_bucket(Bucket="mask-bucket")
    step.put("k.txt")
    alg = step.algorithm("sh -c 'cat $input_seg $input_mask > $output'")
    step.send("", body=join_body("k.txt", ("seg", "in-bucket", "e1"), ("mask", "mask-bucket", "e2")))
    step.run(alg)
    (report,) = step.reports().values()
    assert (report["reason"], report["key"], report["bucket"]) == ("download_error", "k.txt", "mask-bucket")
    assert report["stderr_tail"].startswith("s3://mask-bucket/k.txt: ")
    assert step.output_keys() == [] and step.leftover_files() == []


def test_join_leaves_a_step_folder_that_holds_other_files(step):
    """A step id may name a folder the image has; the worker removes only its own file there."""
    (step.workdir / "seg").mkdir(parents=True)
    (step.workdir / "seg" / "image-file").write_text("keep")
    step.put("k.txt")
    alg = step.algorithm("sh -c 'cp $input_seg $output'")
    step.send("", body=join_body("k.txt", ("seg", "in-bucket", "e1")))
    step.run(alg)
    assert step.output("k.txt") == b"hello world\n"
    assert step.leftover_files() == ["seg", "seg/image-file"]


def test_gather_downloads_every_object_under_the_prefix_page_by_page(step):
    for key in ("runs/r1/a.txt", "runs/r1/sub/b.txt", "runs/r1/", "runs/r1/done", "runs/r10.txt", "other/c.txt"):
        step.put(key, key.encode())
    lists = []

    def small_pages(params, **_):
        # The input's listing; the skip check also lists the (missing) result's folder.
        if params["Bucket"] == "in-bucket":
            lists.append(params.get("ContinuationToken"))
        params["MaxKeys"] = 2

    step.s3.meta.events.register("before-parameter-build.s3.ListObjectsV2", small_pages)
    alg = step.algorithm("sh -c 'cd $input && find . -type f | sort | xargs cat > $output'")
    # The run's own key, a marker under the prefix, is not gathered.
    step.send("", body=gather_body("runs/r1/done", "runs/r1/"))
    assert step.run(alg) == 0
    assert step.output("runs/r1/done") == b"runs/r1/a.txtruns/r1/sub/b.txt"
    assert len(lists) == 2 and lists[1] is not None
    assert step.queue_counts() == (0, 0) and step.leftover_files() == []


def test_gather_result_can_be_a_directory(step):
    for key in ("batch/a.txt", "batch/b.txt"):
        step.put(key, key.encode())
    alg = step.algorithm("sh -c 'mkdir $output && for f in $input/*; do tr a-z A-Z < $f > $output/$(basename $f); done'")
    step.send("", body=gather_body("run-7", "batch/"))
    step.run(alg, step.config(YUNPIPE_OUTPUT_PREFIX="results/"))
    assert step.output_keys() == ["results/run-7/a.txt", "results/run-7/b.txt"]
    assert step.output("results/run-7/b.txt") == b"BATCH/B.TXT"


def test_an_empty_gather_fails(step):
    step.put("runs/r1/")
    step.put("runs/r1/done")
    alg = step.algorithm("sh -c 'ls $input > $output'")
    step.send("", body=gather_body("runs/r1/done", "runs/r1/"))
    step.run(alg)
    (report,) = step.reports().values()
    assert (report["reason"], report["key"]) == ("empty_gather", "runs/r1/done")
    assert report["stderr_tail"] == "no objects under s3://in-bucket/runs/r1/"
    assert step.output_keys() == [] and step.leftover_files() == []


def test_a_gather_key_that_would_leave_its_folder_fails_before_any_download(step):
    step.put("runs/r1/a.txt")
    step.put("runs/r1/../evil.txt")
    fetched = []
    step.s3.meta.events.register("before-parameter-build.s3.GetObject", lambda params, **_: fetched.append(params))
    alg = step.algorithm("sh -c 'ls $input > $output'")
    step.send("", body=gather_body("run", "runs/r1/"))
    step.run(alg)
    # Nothing of the input bucket (the failure's record may read the drop-run's state).
    assert [p for p in fetched if p["Bucket"] == "in-bucket"] == []
    (report,) = step.reports().values()
    assert report["reason"] == "download_error" and "runs/r1/../evil.txt" in report["stderr_tail"]
    assert step.leftover_files() == [] and not (step.tmp / "evil.txt").exists()


def test_a_gather_for_an_algorithm_reading_stdin_is_refused(step):
    step.put("batch/a.txt")
    alg = step.algorithm("cat", input_adapter="stdin", output_adapter="stdout")
    step.send("", body=gather_body("run", "batch/"))
    step.run(alg)
    (report,) = step.reports().values()
    assert report["reason"] == "unsupported_input" and "input_adapter stdin" in report["stderr_tail"]


def test_every_result_carries_its_provenance(step):
    alg = step.algorithm("sh -c 'mkdir -p $output/sub && cp $input $output/a && cp $input $output/sub/b'")
    step.put("data/x.txt")
    step.send("data/x.txt")
    step.run(alg, step.config(YUNPIPE_ALGORITHM_REF="upper@3", YUNPIPE_IMAGE="reg/upper@sha256:abc"))
    expected = {
        "yunpipe-pipeline": "demo",
        "yunpipe-step": "upper",
        "yunpipe-algorithm": "upper@3",
        "yunpipe-image": "reg/upper@sha256:abc",
        "yunpipe-input": "s3://in-bucket/data/x.txt",
        "yunpipe-input-etag": "e",
        # The command's variables (none here); the gather's inputs would come before.
        "yunpipe-variables": "sha256:" + hashlib.sha256(b"").hexdigest(),
        "yunpipe-results": "2",
        "yunpipe-attempt": "1",
        # The input came with no run: the pipeline's drop-run takes it.
        "yunpipe-run": step.s3.head_object(Bucket="out-bucket", Key="data/x.txt/a")["Metadata"]["yunpipe-run"],
    }
    assert list(expected) == [f for f in contract.PROVENANCE_FIELDS if f != "yunpipe-gathered"]
    assert expected["yunpipe-run"].endswith("Z-drop")
    for key in ("data/x.txt/a", "data/x.txt/sub/b"):
        assert step.s3.head_object(Bucket="out-bucket", Key=key)["Metadata"] == expected


def test_provenance_of_a_join_lists_every_input_and_of_a_gather_its_prefix(step):
    step.s3.create_bucket(Bucket="mask-bucket")
    step.put("k.txt")
    step.s3.put_object(Bucket="mask-bucket", Key="k.txt", Body=b"m")
    step.put("batch/a.txt")
    alg = step.algorithm("sh -c 'echo done > $output'")
    step.send("", body=join_body("k.txt", ("seg", "in-bucket", "e1"), ("mask", "mask-bucket", "e2")))
    step.send("", body=gather_body("run-1", "batch/"))
    step.run(alg)
    join = step.s3.head_object(Bucket="out-bucket", Key="k.txt")["Metadata"]
    assert join["yunpipe-input"] == "s3://in-bucket/k.txt,s3://mask-bucket/k.txt"
    assert join["yunpipe-input-etag"] == "e1,e2"
    gather = step.s3.head_object(Bucket="out-bucket", Key="run-1")["Metadata"]
    assert gather["yunpipe-input"] == "s3://in-bucket/batch/*" and "yunpipe-input-etag" not in gather


def test_provenance_of_a_key_that_is_not_plain_ascii_is_percent_encoded(step):
    key = "données/été 100%.txt"
    alg = step.algorithm("sh -c 'cp $input $output'")
    step.put(key)
    step.send(key)
    step.run(alg)
    metadata = step.s3.head_object(Bucket="out-bucket", Key=key)["Metadata"]
    assert metadata["yunpipe-input"] == "s3://in-bucket/donn%C3%A9es/%C3%A9t%C3%A9%20100%25.txt"
    assert unquote(metadata["yunpipe-input"]) == f"s3://in-bucket/{key}"


@pytest.mark.parametrize(
    ("value", "stored"),
    [
        ("s3://b/a b.txt,s3://c/d*", "s3://b/a b.txt,s3://c/d*"),
        ("s3://b/100%.txt", "s3://b/100%25.txt"),  # so decoding an unencoded value changes nothing
        ("s3://b/é", "s3://b/%C3%A9"),
        ("s3://b/tab\there", "s3://b/tab%09here"),
        ("s3://b/trailing ", "s3://b/trailing%20"),  # an HTTP header would lose the space
    ],
)
def test_metadata_values_are_printable_ascii(value, stored):
    assert metadata_value(value) == stored
    assert unquote(stored) == value


def test_the_step_s_timeout_replaces_the_algorithm_s(step):
    alg = step.algorithm("sh -c 'sleep 30; cp $input $output'", timeout_seconds=600)
    step.put("slow.txt")
    step.send("slow.txt")
    started = time.monotonic()
    step.run(alg, step.config(YUNPIPE_TIMEOUT_SECONDS="1"))
    assert time.monotonic() - started < 15
    (report,) = step.reports().values()
    assert (report["reason"], report["stderr_tail"]) == ("timeout", "killed after 1 s")


# ----------------------------------------------------------------------------- main()


def test_main_runs_the_worker_from_the_environment(step, monkeypatch):
    step.algorithm("sh -c 'tr a-z A-Z < $input > $output'")
    for name, value in step.env.items():
        monkeypatch.setenv(name, value)
    step.put("main.txt", b"main")
    step.send("main.txt")
    previous = signal.getsignal(signal.SIGTERM)
    assert worker.main() == 0
    assert step.output("main.txt") == b"MAIN"
    assert signal.getsignal(signal.SIGTERM) is previous


def test_main_without_a_queue_prints_one_line_and_exits_with_the_config_status(aws_env, monkeypatch, capsys):
    monkeypatch.delenv("YUNPIPE_QUEUE_URL", raising=False)
    monkeypatch.setenv("YUNPIPE_OUTPUT_BUCKET", "out")
    monkeypatch.setenv("YUNPIPE_IDLE_SECONDS", "soon")
    assert worker.main() == CONFIG_ERROR_EXIT == 78
    (line,) = capsys.readouterr().err.splitlines()
    assert line == (
        "yunpipe runscript: configuration error: missing required environment variable(s): YUNPIPE_QUEUE_URL "
        "(no queue to report on; exit status 78)"
    )


def _no_output_bucket(step, env):
    del env["YUNPIPE_OUTPUT_BUCKET"]
    return "missing required environment variable(s): YUNPIPE_OUTPUT_BUCKET"


def _bad_number(step, env):
    env["YUNPIPE_MAX_RECEIVE_COUNT"] = "two"
    return "YUNPIPE_MAX_RECEIVE_COUNT must be an integer, got 'two'"


def _broken_algorithm(step, env):
    Path(env["YUNPIPE_ALGORITHM"]).write_text('{"run_command": ')
    return f"{env['YUNPIPE_ALGORITHM']}: the algorithm description is not valid JSON"


def _no_algorithm(step, env):
    env["YUNPIPE_ALGORITHM"] = str(step.tmp / "missing.json")
    return f"No such file or directory: '{step.tmp / 'missing.json'}'"


def _required_variable(step, env):
    step.algorithm("sh -c 'cp $input $output'", user_specified_environment_variables=[{"name": "TEST_ENV", "required": True}])
    return "required variable(s) of the algorithm not set: TEST_ENV"


@pytest.mark.parametrize("misconfigure", [_no_output_bucket, _bad_number, _broken_algorithm, _no_algorithm, _required_variable])
def test_a_misconfigured_worker_reports_each_message_until_sqs_dead_letters_it(aws_env, monkeypatch, tmp_path, misconfigure):
    """A worker that cannot run its command still drains its queue: each try leaves a report
    naming the setting, the message goes to the DLQ after maxReceiveCount tries, and with the
    queue empty the launcher has nothing to start a worker for."""
    with mock_aws():
        step = Step(tmp_path, max_receive_count=2)
        step.algorithm("sh -c 'cp $input $output'")
        # One-second retry delay (capped by the visibility window), so each run sees the message once.
        env = {**step.env, "YUNPIPE_VISIBILITY_SECONDS": "1"}
        problem = misconfigure(step, env)
        for name in step.env:
            monkeypatch.delenv(name, raising=False)
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        step.put("in.txt")
        step.send("in.txt")
        for attempt in (1, 2):
            deadline = time.monotonic() + PATIENCE
            while step.queue_counts() != (1, 0):  # visible again after the retry delay
                assert time.monotonic() < deadline
                time.sleep(0.1)
            assert worker.main() == CONFIG_ERROR_EXIT
            assert len(step.reports()) == attempt
        reports = step.reports()
        assert list(reports) == ["failures/demo/upper/in.txt/attempt-1.json", "failures/demo/upper/in.txt/attempt-2.json"]
        for attempt, report in enumerate(reports.values(), 1):
            assert (report["reason"], report["attempt"], report["exit_code"]) == ("config_error", attempt, None)
            assert (report["bucket"], report["key"], report["etag"]) == ("in-bucket", "in.txt", "e")
            assert report["stderr_tail"].startswith("the worker's configuration is bad: ")
            assert problem in report["stderr_tail"]
        # With its own maxReceiveCount unreadable the worker cannot tell the last try: it waits
        # out the retry delay, and the next receive finds the message gone to the DLQ.
        assert reports["failures/demo/upper/in.txt/attempt-2.json"]["final"] is (misconfigure is not _bad_number)
        if misconfigure is not _bad_number:
            assert step.queue_counts() == (0, 0) and step.queue_counts(step.dlq_url) == (1, 0)
        deadline = time.monotonic() + PATIENCE
        while step.queue_counts()[1]:
            assert time.monotonic() < deadline
            time.sleep(0.1)
        # A further run finds nothing to do: no new report, the same exit status.
        assert worker.main() == CONFIG_ERROR_EXIT
        assert step.reports() == reports
        assert step.queue_counts() == (0, 0) and step.queue_counts(step.dlq_url) == (1, 0)
        assert step.output_keys() == [] and step.leftover_files() == []


def test_one_long_lived_misconfigured_worker_takes_every_message_to_the_dead_letter_queue(aws_env, tmp_path):
    with mock_aws():
        step = Step(tmp_path, max_receive_count=3)
        for key in ("a.txt", "b.txt"):
            step.put(key)
            step.send(key)
        step.send("b.txt", body="not json")
        assert step.run({}, config_error="YUNPIPE_OUTPUT_BUCKET missing") == 0
        reports = step.reports()
        assert sorted(k for k in reports if "_invalid-message" not in k) == [
            f"failures/demo/upper/{key}/attempt-{n}.json" for key in ("a.txt", "b.txt") for n in (1, 2, 3)
        ]
        assert {r["reason"] for k, r in reports.items() if "_invalid-message" not in k} == {"config_error"}
        assert step.queue_counts() == (0, 0) and step.queue_counts(step.dlq_url) == (3, 0)


def test_script_runs_standalone_and_stops_on_sigterm(aws_env, tmp_path):
    """The worker as its own process against a moto server, as in a container (the image's
    entrypoint and lib folder):
    SIGTERM during a job ends the worker with 0 and leaves the message for another worker."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        s3 = boto3.client("s3", endpoint_url=endpoint)
        sqs = boto3.client("sqs", endpoint_url=endpoint)
        s3.create_bucket(Bucket="in-bucket")
        s3.create_bucket(Bucket="out-bucket")
        queue_url = sqs.create_queue(QueueName="standalone")["QueueUrl"]
        started = tmp_path / "started"
        algorithm = tmp_path / "algorithm.json"
        algorithm.write_text(json.dumps({
            "run_command": f"sh -c 'touch {started}; sleep 60; cp $input $output'",
            "input_file_path": str(tmp_path / "work"),
            "output_file_path": str(tmp_path / "work"),
        }))
        s3.put_object(Bucket="in-bucket", Key="x.txt", Body=b"x")
        sqs.send_message(QueueUrl=queue_url, MessageBody=json.dumps({"bucket": "in-bucket", "key": "x.txt"}))
        env = {
            **os.environ,
            "AWS_ENDPOINT_URL": endpoint,
            "YUNPIPE_QUEUE_URL": queue_url,
            "YUNPIPE_OUTPUT_BUCKET": "out-bucket",
            "YUNPIPE_ALGORITHM": str(algorithm),
            "YUNPIPE_WAIT_SECONDS": "1",
        }
        # Run a copy as a wrapped image lays it out: the worker must not need the yunpipe package.
        alone = tmp_path / "alone"
        write_worker(alone / "lib")
        (alone / "entrypoint.py").write_text(ENTRYPOINT.read_text())
        proc = subprocess.Popen(
            [PY, "-I", str(alone / "entrypoint.py")], env=env, cwd=alone, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + PATIENCE
        while not started.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        output = proc.communicate(timeout=PATIENCE)[0].decode()
        assert proc.returncode == 0, output
        assert "signal 15 received" in output and "abandoned key=x.txt" in output
        # Its first line says the CPU its start took (bench/latency.py reports it).
        assert re.search(r"worker started: .* start_cpu=\d+\.\d{3}s\n", output), output
        attrs = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["ApproximateNumberOfMessages"])
        assert attrs["Attributes"]["ApproximateNumberOfMessages"] == "1"
        assert "Contents" not in s3.list_objects_v2(Bucket="out-bucket")
    finally:
        server.stop()


def test_the_heartbeat_never_asks_sqs_for_more_than_twelve_hours_from_the_receive(monkeypatch):
    """SQS refuses an extension past 12 h from the receive: the last one asks for what is left
    (less a few seconds), and none is asked for once the 12 h are over."""
    from yunpipe.runtime.worker import lease

    now = [1000.0]
    monkeypatch.setattr(lease.time, "monotonic", lambda: now[0])
    asked: list[int] = []

    class Sqs:
        def change_message_visibility(self, **params):
            asked.append(params["VisibilityTimeout"])

    heartbeat = lease.VisibilityHeartbeat(Sqs(), "url", 300)
    heartbeat.hold([{"ReceiptHandle": "h", "MessageId": "m"}])
    for elapsed in (100, contract.MAX_VISIBILITY_SECONDS - 100, contract.MAX_VISIBILITY_SECONDS + 1):
        now[0] = 1000.0 + elapsed
        rounds = iter((False, True))  # one round of extensions, then stopped
        heartbeat._stopped.wait = lambda timeout, rounds=rounds: next(rounds)  # type: ignore[method-assign]
        heartbeat._run()
    assert asked == [300, 95]
