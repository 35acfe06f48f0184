"""End to end: out of memory -> more memory, on the local cloud. A step of 512 MiB that may grow to
2048 MiB runs four normal files, one that needs 800 MiB and one that needs 2500 MiB. The kernel
kills the greedy ones at 512 MiB; their workers send them on to the 1024 MiB path and wake the
launcher, which starts its task. There greedy.txt succeeds on its second try, while the normal
files ran once at 512 MiB; huge.txt runs out of memory again at 1024 and at 2048 MiB, the
largest size, whose queue dead-letters it at once with reason `oom`. Its failure reports, the
run summary and `yunpipe status` say so. About 40 s on top of the suite's fixtures.
"""
import json

import pytest
from helpers import job_records

from yunpipe.registry import AlgorithmRegistry
from yunpipe.runtime.accounting import records

from .conftest import ALGORITHM_FOLDERS
from .helpers import run_ok, wait_until, write_inputs

pytestmark = pytest.mark.e2e

SETTLE_BOUND_SECONDS = 180


@pytest.fixture(scope="module")
def grow_tester(algorithms, tmp_path_factory) -> str:
    """The suite's tester wrapped again under a name of this module's own: the Docker daemon may be
    shared, and a wrap elsewhere of tester@1 would retag its image with another worker. NAME@VERSION."""
    document = json.loads((ALGORITHM_FOLDERS["tester"] / "tester.json").read_text())
    description = tmp_path_factory.mktemp("grow") / "grow-tester.json"
    description.write_text(json.dumps({**document, "name": "grow-tester"}))
    run_ok("wrap", "--local", "--yes", "-f", str(description))
    return AlgorithmRegistry().get("grow-tester").reference


def read_json(s3, bucket: str, key: str) -> dict:
    return json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())


def listed(s3, bucket: str, prefix: str) -> list[str]:
    return [o["Key"] for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
            for o in page.get("Contents", [])]


def test_a_job_out_of_memory_succeeds_at_double_the_memory_and_one_out_of_memory_at_the_largest_is_dead_lettered(
        pipeline, grow_tester, aws, tmp_path):
    tester = pipeline([{"name": grow_tester, "id": "tester", "cpu": 0.25, "memory": 512, "max_memory": 2048}],
                      idle_seconds=1)
    step = tester.summary.steps[0]
    assert [q.rsplit("-", 1)[-1] for q in step.grow_queues] == ["grow1024", "grow2048"]
    normal = {f"file-{index}.txt": f"file {index}\n" for index in range(4)}
    greedy = {"greedy.txt": "ALLOCATE 800\nmore than 512 MiB\n", "huge.txt": "ALLOCATE 2500\nmore than 2048 MiB\n"}
    printed = run_ok("upload", "--local", tester.name, str(write_inputs(tmp_path / "in", {**normal, **greedy})))
    [run] = [line.split()[1].rstrip(":") for line in printed.splitlines() if line.startswith("Run ")]
    s3, reports = aws("s3"), tester.summary.reports_bucket

    def settled():
        return None if records.summary_key(tester.name, run) in listed(s3, reports, records.run_prefix(
            tester.name, run)) else "the run has no summary yet"
    wait_until(settled, SETTLE_BOUND_SECONDS, explain=tester.diagnosis)
    tester.wait_for_results({key: f"{text.rstrip()}\n-- tested\n".encode()
                             for key, text in {**normal, "greedy.txt": greedy["greedy.txt"]}.items()}, timeout=30)

    found = job_records(s3, reports, records.run_prefix(tester.name, run))
    ends = {r["key"]: r for k, r in found.items() if "/ends/" in k}
    tries = [r for k, r in found.items() if "/tries/" in k]
    # The normal files ran once, at the step's size.
    for key in normal:
        assert (ends[key]["outcome"], ends[key]["attempt"], ends[key]["task"]["memory_mib"]) == ("ok", 1, 512), ends[key]
    # greedy.txt: out of memory at 512 MiB on its first try, ok on its second at 1024 MiB.
    assert (ends["greedy.txt"]["outcome"], ends["greedy.txt"]["attempt"]) == ("ok", 2), ends["greedy.txt"]
    assert ends["greedy.txt"]["task"]["memory_mib"] == 1024 and ends["greedy.txt"]["memory_limit_mib"] == 1024
    assert sorted((t["key"], t["attempt"], t["outcome"], t["task"]["memory_mib"]) for t in tries) == [
        ("greedy.txt", 1, "oom", 512), ("huge.txt", 1, "oom", 512), ("huge.txt", 2, "oom", 1024)]
    # huge.txt: out of memory at every size; at the largest, 2048 MiB, its one try is its last.
    huge = ends["huge.txt"]
    assert (huge["outcome"], huge["attempt"], huge["final"], huge["task"]["memory_mib"]) == ("oom", 3, True, 2048), huge

    failures = f"failures/{tester.name}/tester/"
    first = read_json(s3, reports, failures + "greedy.txt/attempt-1.json")
    assert (first["reason"], first["final"], first["memory_mib"], first["retry_memory_mib"]) == ("oom", False, 512, 1024)
    last = read_json(s3, reports, failures + "huge.txt/attempt-3.json")
    assert (last["reason"], last["final"], last["memory_mib"], last["retry_memory_mib"]) == ("oom", True, 2048, None)

    # The step's dead-letter queue holds huge.txt only.
    sqs = aws("sqs")
    dead = sqs.receive_message(QueueUrl=sqs.get_queue_url(QueueName=step.dead_letter_queue)["QueueUrl"],
                               MaxNumberOfMessages=10, VisibilityTimeout=0).get("Messages", [])
    assert [json.loads(m["Body"])["key"] for m in dead] == ["huge.txt"]

    summary = read_json(s3, reports, records.summary_key(tester.name, run))
    assert summary["steps"]["tester"]["ok"] == 5 and summary["steps"]["tester"]["oom"] == 1
    assert summary["steps"]["tester"]["grown"] == {"jobs": 2, "max_memory_mib": 2048}
    assert [(f["key"], f["outcome"], f["memory_mib"]) for f in summary["failures"]] == [("huge.txt", "oom", 2048)]

    # Each worker that sent a job on woke the launcher (greedy.txt once, huge.txt twice), which
    # started the larger size's task then, not at its next scheduled run.
    woken = aws("logs").filter_log_events(logGroupName=f"/aws/lambda/{step.function}",
                                          filterPattern=f'"{tester.name}/tester grow:"')["events"]
    assert len(woken) == 3, [e["message"] for e in woken]

    printed = run_ok("report", "--local", tester.name, run)
    assert "2 out of memory, run again at up to 2048 MiB" in printed, printed

    status = tester.status()
    assert "failed greedy.txt attempt 1: oom exit -9 at 512 MiB, tried again at 1024 MiB" in status, status
    assert "failed huge.txt attempt 3 (final try): oom exit -9 at 2048 MiB, the largest size" in status, status
