"""End to end, beyond a chain: a fan-out, a join and a gather; one algorithm twice in a
sequence; objects queued by `submit`; failed files re-run by `retry` after a fix; provenance."""
import hashlib
import urllib.parse

import pytest

from .helpers import run_cli, run_ok, wait_until, write_inputs

pytestmark = pytest.mark.e2e


def upload(pipeline, folder):
    run_ok("upload", "--local", pipeline.name, str(folder))


def objects(pipeline, bucket: str) -> dict[str, bytes]:
    s3 = pipeline.aws("s3")
    keys = [o["Key"] for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket)
            for o in page.get("Contents", [])]
    return {key: s3.get_object(Bucket=bucket, Key=key)["Body"].read() for key in keys}


def provenance(pipeline, bucket: str, key: str) -> dict[str, str]:
    metadata = pipeline.aws("s3").head_object(Bucket=bucket, Key=key)["Metadata"]
    return {name.removeprefix("yunpipe-"): urllib.parse.unquote(value) for name, value in metadata.items()
            if name.startswith("yunpipe-")}


def test_fan_out_join_and_gather(pipeline, algorithms, tmp_path):
    graph = pipeline([
        {"id": "upper", "name": "uppercase"},
        {"id": "sum", "name": "checksum"},
        {"id": "both", "name": "pair", "after": ["upper", "sum"]},
        {"id": "all", "name": "gather", "after": ["both"], "gather": True},
    ], process_type="graph", idle_seconds=5)
    inputs = {"a.txt": "first file\n", "b.txt": "second file\n", "deep/c.txt": "third, nested\n"}
    upload(graph, write_inputs(tmp_path / "in", inputs))

    # Both steps read the input bucket (fan-out); the join runs once both results of a key exist.
    def joined(text: str) -> bytes:
        return text.upper().encode() + f"{hashlib.sha256(text.encode()).hexdigest()}\n".encode()
    both = graph.summary.steps[2]
    expected = {key: joined(text) for key, text in inputs.items()}
    wait_until(lambda: None if objects(graph, both.output_bucket) == expected else
               f"join results so far: {sorted(objects(graph, both.output_bucket))}", 150, explain=graph.diagnosis)

    # The gather runs one job over every joined result.
    out = run_ok("submit", "--local", graph.name, "--step", "all", "--gather", "--name", "summary")
    assert "1" in out
    summary = b"".join(f"== ./{key}\n".encode() + expected[key] for key in sorted(expected))
    graph.wait_for_results({"summary": summary}, timeout=90)

    joined_from = provenance(graph, both.output_bucket, "b.txt")
    assert joined_from["step"] == "both" and joined_from["algorithm"] == algorithms["pair"]
    assert joined_from["input"].split(",") == [f"s3://{graph.summary.steps[0].output_bucket}/b.txt",
                                               f"s3://{graph.summary.steps[1].output_bucket}/b.txt"]
    gathered = provenance(graph, graph.output_bucket, "summary")
    assert (gathered["pipeline"], gathered["step"], gathered["algorithm"]) == (graph.name, "all", algorithms["gather"])
    assert gathered["image"] and gathered["attempt"] == "1"

    status, shown = run_cli("show", graph.name)
    assert status == 0 and shown.splitlines()[2].startswith(f"both [{algorithms['pair']}]: join on the key of ")
    status, dot = run_cli("show", graph.name, "--dot")
    assert status == 0 and dot.startswith(f'digraph "{graph.name}"')
    _, listed = run_cli("results", "--local", graph.name, "--provenance")
    assert "summary" in listed and f"algorithm: {algorithms['gather']}" in listed


def test_one_algorithm_twice_in_a_sequence(pipeline, tmp_path):
    twice = pipeline([{"name": "tester", "variables": {"STAMP": "one"}},
                      {"id": "tester-again", "name": "tester", "variables": {"STAMP": "two"}}], idle_seconds=5)
    inputs = {"x.txt": "hello\n", "y.txt": "world\n"}
    upload(twice, write_inputs(tmp_path / "in", inputs))
    twice.wait_for_results({key: f"{text.rstrip()}\n-- one\n-- two\n".encode() for key, text in inputs.items()},
                           timeout=120)


def test_submit_processes_objects_put_before_setup(pipeline, aws, request, tmp_path):
    # The input bucket the fixture will name for this test, made and filled first.
    bucket = f"e2e-{request.node.name.removeprefix('test_').replace('_', '-')[:24].rstrip('-')}-in"
    aws("s3").create_bucket(Bucket=bucket)
    inputs = {f"old/{index:02d}.txt": f"object {index} from before\n" for index in range(20)}
    for key, text in inputs.items():
        aws("s3").put_object(Bucket=bucket, Key=key, Body=text.encode())
    backfill = pipeline([{"name": "tester"}], idle_seconds=5)
    assert backfill.input_bucket == bucket
    # Nothing happens to objects that were there before the pipeline.
    assert objects(backfill, backfill.output_bucket) == {}
    out = run_ok("submit", "--local", backfill.name, "--prefix", "old/")
    assert "20" in out
    backfill.wait_for_results({key: f"{text.rstrip()}\n-- tested\n".encode() for key, text in inputs.items()},
                              timeout=150)


def test_retry_reprocesses_dead_letters_after_a_fix(pipeline, aws, tmp_path):
    # Two tries: a worker of the broken revision may still take a retried file in the moment it is being stopped.
    steps = [{"name": "tester", "max_receive_count": 2, "variables": {"REFUSE": "NO"}}]
    broken = pipeline(steps, idle_seconds=5, visibility_timeout_seconds=5)
    inputs = {f"case-{index}.txt": f"case {index}\nNO\n" for index in range(3)}
    upload(broken, write_inputs(tmp_path / "in", inputs))
    dlq = aws("sqs").get_queue_url(QueueName=broken.summary.steps[0].dead_letter_queue)["QueueUrl"]

    def dead_lettered():
        count = int(aws("sqs").get_queue_attributes(QueueUrl=dlq, AttributeNames=["ApproximateNumberOfMessages"])
                    ["Attributes"]["ApproximateNumberOfMessages"])
        return None if count == 3 else f"{count} of 3 in the dead-letter queue"
    wait_until(dead_lettered, 120, explain=broken.diagnosis)

    # The fix: the same workflow with the variable corrected, deployed again; then the re-run.
    fixed = pipeline([{**steps[0], "variables": {"REFUSE": "NEVER"}}], idle_seconds=5, visibility_timeout_seconds=5)
    out = run_ok("retry", "--local", fixed.name)
    assert "3" in out
    fixed.wait_for_results({key: f"{text.rstrip()}\n-- tested\n".encode() for key, text in inputs.items()},
                           timeout=120)
