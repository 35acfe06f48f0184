"""Skip what is done (issue 24): a job whose results are all there with the provenance it would give
them (its inputs by ETag, the algorithm, the image, the variables) is skipped without running its
command; anything that differs, a missing or half-written result, or `force` runs it (moto)."""
import json

import pytest
from moto import mock_aws
from test_worker import Step, gather_body, join_body
from test_worker_accounting import job_records

from yunpipe.runtime.accounting import runs

COUNTER = "echo run >> {log}; "


@pytest.fixture
def step(aws_env, tmp_path, monkeypatch):
    monkeypatch.setattr(runs, "_cache", {})
    monkeypatch.delenv("LEVEL", raising=False)
    with mock_aws():
        yield Step(tmp_path)



def body(key, etag="e", **extra):
    return json.dumps({"bucket": "in-bucket", "key": key, "etag": etag, "size": 1, **extra})


class Counted:
    """An algorithm whose every run leaves a line in a log: how many times its command ran."""

    def __init__(self, step, tmp_path, command, **fields):
        self.log = tmp_path / "runs.log"
        self.step = step
        self.alg = step.algorithm(f"sh -c '{COUNTER.format(log=self.log)}{command}'", **fields)

    @property
    def runs(self):
        return len(self.log.read_text().split()) if self.log.exists() else 0

    def run(self, message, **env):
        """Send one message and work the queue; the S3 requests the worker made."""
        self.step.send("", body=message)
        seen = []

        def handler(model, params, **_):
            seen.append((model.name, params.get("Bucket")))

        self.step.s3.meta.events.register("before-parameter-build.s3", handler)
        try:
            assert self.step.run(self.alg, self.step.config(**env)) == 0
        finally:
            self.step.s3.meta.events.unregister("before-parameter-build.s3", handler)
        assert self.step.queue_counts() == (0, 0)
        return seen


def records(step):
    found = [r for key, r in job_records(step).items() if "/ends/" in key]
    return sorted(found, key=lambda r: r["finished_at"])


def test_a_new_input_costs_the_check_one_listing_and_a_sibling_of_its_result_is_not_one(step, tmp_path):
    counted = Counted(step, tmp_path, "tr a-z A-Z < $input > $output")
    step.put("a.txt")
    step.s3.put_object(Bucket="out-bucket", Key="a.txt.bak", Body=b"not a result")
    requests = counted.run(body("a.txt"), YUNPIPE_ACCOUNTING="0")
    assert counted.runs == 1
    checks = [r for r in requests if r[1] == "out-bucket" and r[0] != "PutObject"]
    assert checks == [("ListObjectsV2", "out-bucket")]
    assert step.output("a.txt") == b"HELLO WORLD\n"


def test_an_identical_input_is_skipped_after_a_listing_and_one_head_request_and_its_record_says_skipped(step, tmp_path):
    counted = Counted(step, tmp_path, "tr a-z A-Z < $input > $output")
    step.put("a.txt")
    counted.run(body("a.txt", run="20261207T131500Z-upload"))
    first = step.s3.head_object(Bucket="out-bucket", Key="a.txt")
    requests = counted.run(body("a.txt", run="20261207T131600Z-upload"), YUNPIPE_ACCOUNTING="0")
    assert counted.runs == 1
    # The check alone: no download, no upload.
    assert requests == [("ListObjectsV2", "out-bucket"), ("HeadObject", "out-bucket")]
    again = step.s3.head_object(Bucket="out-bucket", Key="a.txt")
    assert (again["ETag"], again["LastModified"], again["Metadata"]) == (first["ETag"], first["LastModified"],
                                                                          first["Metadata"])
    counted.run(body("a.txt", run="20261207T131700Z-upload"))
    ok, skipped = records(step)
    assert (ok["outcome"], skipped["outcome"]) == ("ok", "skipped")
    assert skipped["results"] == ["a.txt"] and skipped["result_bucket"] == "out-bucket"
    assert skipped["exit_code"] is None and skipped["bytes_in"] == 0 and skipped["bytes_out"] == 0
    assert skipped["run"] == "20261207T131700Z-upload"


@pytest.mark.parametrize("change", [
    {"message": {"etag": "other"}},
    {"env": {"YUNPIPE_ALGORITHM_REF": "upper@2"}},
    {"env": {"YUNPIPE_IMAGE": "reg/upper@sha256:def"}},
    {"variables": "2"},
], ids=["input", "algorithm-version", "image", "variables"])
def test_a_different_input_algorithm_image_or_variable_runs_again(step, tmp_path, monkeypatch, change):
    declared = [{"name": "LEVEL"}]
    counted = Counted(step, tmp_path, "echo $LEVEL > $output", user_specified_environment_variables=declared)
    monkeypatch.setenv("LEVEL", "1")
    before = {"YUNPIPE_ALGORITHM_REF": "upper@1", "YUNPIPE_IMAGE": "reg/upper@sha256:abc"}
    step.put("a.txt")
    counted.run(body("a.txt"), **before)
    counted.run(body("a.txt"), **before)
    assert counted.runs == 1
    monkeypatch.setenv("LEVEL", change.get("variables", "1"))
    counted.run(body("a.txt", **change.get("message", {})), **{**before, **change.get("env", {})})
    assert counted.runs == 2
    assert step.output("a.txt") == f"{change.get('variables', '1')}\n".encode()


def test_an_undeclared_variable_or_a_secret_does_not_count(step, tmp_path, monkeypatch):
    counted = Counted(step, tmp_path, "echo x > $output", environment={"MODE": "fast"})
    step.put("a.txt")
    monkeypatch.setenv("TOKEN", "secret-1")
    counted.run(body("a.txt"))
    monkeypatch.setenv("TOKEN", "secret-2")
    counted.run(body("a.txt"))
    assert counted.runs == 1
    # The algorithm's own fixed variable does count, as a workflow overriding it.
    monkeypatch.setenv("MODE", "slow")
    counted.run(body("a.txt"))
    assert counted.runs == 2


@pytest.mark.parametrize("force", ["step", "message"])
def test_force_on_the_step_or_in_the_message_runs_it_again(step, tmp_path, force):
    counted = Counted(step, tmp_path, "tr a-z A-Z < $input > $output")
    step.put("a.txt")
    counted.run(body("a.txt"))
    if force == "step":
        counted.run(body("a.txt"), YUNPIPE_FORCE="1")
    else:
        counted.run(body("a.txt", force=True))
    assert counted.runs == 2
    assert [r["outcome"] for r in records(step)] == ["ok"]  # the same run's record, the latest of the job's


def test_an_algorithm_that_is_not_deterministic_always_runs_without_looking_for_its_result(step, tmp_path):
    counted = Counted(step, tmp_path, "tr a-z A-Z < $input > $output", deterministic=False)
    step.put("a.txt")
    counted.run(body("a.txt"))
    requests = counted.run(body("a.txt"))
    assert counted.runs == 2
    assert ("HeadObject", "out-bucket") not in requests, requests


def test_a_deterministic_flag_that_is_no_boolean_is_a_configuration_error(step, tmp_path):
    with pytest.raises(ValueError, match="deterministic must be true or false, got 'no'"):
        Counted(step, tmp_path, "true", deterministic="no")


def test_a_message_without_the_input_s_etag_runs(step, tmp_path):
    counted = Counted(step, tmp_path, "tr a-z A-Z < $input > $output")
    step.put("a.txt")
    counted.run(body("a.txt", etag=""))
    counted.run(body("a.txt", etag=""))
    assert counted.runs == 2


def test_a_result_written_before_skipping_existed_or_by_hand_is_not_taken_for_done(step, tmp_path):
    counted = Counted(step, tmp_path, "tr a-z A-Z < $input > $output")
    step.put("a.txt")
    counted.run(body("a.txt"))
    metadata = step.s3.head_object(Bucket="out-bucket", Key="a.txt")["Metadata"]
    older = {k: v for k, v in metadata.items() if k not in ("yunpipe-variables", "yunpipe-results")}
    step.s3.put_object(Bucket="out-bucket", Key="a.txt", Body=b"old", Metadata=older)
    counted.run(body("a.txt"))
    assert counted.runs == 2 and step.output("a.txt") == b"HELLO WORLD\n"


def test_a_folder_result_is_skipped_only_when_every_result_is_there_with_its_provenance(step, tmp_path):
    counted = Counted(step, tmp_path, "mkdir -p $output/sub && cp $input $output/a && cp $input $output/sub/b")
    step.put("d.txt", b"one")
    counted.run(body("d.txt"))
    requests = counted.run(body("d.txt"), YUNPIPE_ACCOUNTING="0")
    assert counted.runs == 1
    # The listing of the result's name finds the folder's results; then a HEAD per result.
    assert requests == [("ListObjectsV2", "out-bucket"), ("HeadObject", "out-bucket"), ("HeadObject", "out-bucket")]
    # Half a folder (an upload that failed midway) is not done.
    step.s3.delete_object(Bucket="out-bucket", Key="d.txt/sub/b")
    counted.run(body("d.txt"))
    assert counted.runs == 2 and step.output_keys() == ["d.txt/a", "d.txt/sub/b"]
    # Nor is a folder with a result of some other writer among them.
    step.s3.put_object(Bucket="out-bucket", Key="d.txt/stray", Body=b"?")
    counted.run(body("d.txt"))
    assert counted.runs == 3


def test_a_stdout_result_is_checked_with_one_head_request(step, tmp_path):
    counted = Counted(step, tmp_path, "tr a-z A-Z", input_adapter="stdin", output_adapter="stdout")
    step.put("s.txt")
    assert counted.run(body("s.txt"), YUNPIPE_ACCOUNTING="0")[0] == ("HeadObject", "out-bucket")
    assert counted.run(body("s.txt"), YUNPIPE_ACCOUNTING="0") == [("HeadObject", "out-bucket")]
    assert counted.runs == 1 and step.output("s.txt") == b"HELLO WORLD\n"


def test_a_join_is_skipped_only_when_every_input_is_the_same(step, tmp_path):
    step.s3.create_bucket(Bucket="mask-bucket")
    step.put("k.txt")
    step.s3.put_object(Bucket="mask-bucket", Key="k.txt", Body=b"m")
    counted = Counted(step, tmp_path, "cat $input_seg $input_mask > $output")
    counted.run(join_body("k.txt", ("seg", "in-bucket", "e1"), ("mask", "mask-bucket", "e2")))
    counted.run(join_body("k.txt", ("seg", "in-bucket", "e1"), ("mask", "mask-bucket", "e2")))
    assert counted.runs == 1
    counted.run(join_body("k.txt", ("seg", "in-bucket", "e1"), ("mask", "mask-bucket", "e3")))
    assert counted.runs == 2


def test_a_gather_is_skipped_only_when_it_would_gather_the_same_objects(step, tmp_path):
    for key in ("batch/a.txt", "batch/b.txt"):
        step.put(key, key.encode())
    counted = Counted(step, tmp_path, "cat $input/* > $output")
    counted.run(gather_body("run-1", "batch/"))
    counted.run(gather_body("run-1", "batch/"))
    assert counted.runs == 1
    # A changed object, then one more: each is a different gather.
    step.put("batch/b.txt", b"changed")
    counted.run(gather_body("run-1", "batch/"))
    step.put("batch/c.txt", b"c")
    counted.run(gather_body("run-1", "batch/"))
    assert counted.runs == 3 and step.output("run-1") == b"batch/a.txtchangedc"
    metadata = step.s3.head_object(Bucket="out-bucket", Key="run-1")["Metadata"]
    assert metadata["yunpipe-gathered"].startswith("sha256:")
