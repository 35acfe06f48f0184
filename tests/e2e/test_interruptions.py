"""End to end: a file whose task is interrupted as Fargate Spot interrupts it (SIGTERM, then stop
code SpotInterruption) uses up no try, however often; an exit code the algorithm declares
permanent sends its file to the dead-letter queue on its first try.

Cost: about 30 s for the interruptions (three task starts, each interrupted as soon as its job's
command runs, then a fourth that runs the 5 s job), about 20 s for the permanent exit code; each
wraps the tester image under a name of its own (a few seconds).
"""
import contextlib
import functools
import json

import docker.errors
import pytest

from yunpipe.local.moto_patches import SPOT_STOP_CODE
from yunpipe.registry import AlgorithmRegistry

from .conftest import ALGORITHM_FOLDERS
from .helpers import run_ok, wait_until, write_inputs

pytestmark = pytest.mark.e2e


def wrap_tester(folder, name: str, **fields) -> str:
    """The tester image wrapped under a name of this module's own, so its wrapped image (which
    carries the worker of this tree) has a tag no other checkout on the Docker daemon rebuilds
    meanwhile; `fields` change its description. Returns NAME@VERSION."""
    document = json.loads((ALGORITHM_FOLDERS["tester"] / "tester.json").read_text())
    document.update(name=name, **fields)
    description = folder / f"{name}.json"
    description.write_text(json.dumps(document))
    run_ok("wrap", "--local", "--yes", "-f", str(description))
    return AlgorithmRegistry().get(name).reference


def queue_counts(sqs, name: str) -> tuple[int, int]:
    """(waiting, in flight) of a queue."""
    url = sqs.get_queue_url(QueueName=name)["QueueUrl"]
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=[
        "ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"])["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"]), int(attributes["ApproximateNumberOfMessagesNotVisible"])


def failure_reports(aws, pipeline) -> list[str]:
    listed = aws("s3").list_objects_v2(Bucket=pipeline.summary.reports_bucket, Prefix=f"failures/{pipeline.name}/")
    return sorted(o["Key"] for o in listed.get("Contents", []))


def running_the_command(pipeline, interrupted: list[str], holder: list[str]) -> str | None:
    """None once a task not yet interrupted runs the tester's command (the job has started, so
    its interruption is one of the file's attempts); that task in `holder`."""
    for container in pipeline.containers():
        arn = pipeline.task_of(container)
        if arn in interrupted:
            continue
        with contextlib.suppress(docker.errors.APIError):  # the container is just starting or gone
            if any("tester.py" in " ".join(process) for process in container.top()["Processes"]):
                holder[:] = [arn]
                return None
    return "no new task runs the job yet"


def stopped_like_spot(pipeline, arn: str) -> str | None:
    [task] = pipeline.aws("ecs").describe_tasks(cluster=pipeline.summary.cluster, tasks=[arn])["tasks"]
    if task["lastStatus"] != "STOPPED":
        return f"task {arn} is {task['lastStatus']}"
    assert task["stopCode"] == SPOT_STOP_CODE, task
    return None


def test_a_file_interrupted_like_spot_three_times_is_not_dead_lettered(pipeline, local_cloud, aws, tmp_path):
    # max_receive_count 3: were interruptions tries, the third would leave the file to the dead-letter queue.
    spot = pipeline([{"name": wrap_tester(tmp_path, "route-spot"), "max_receive_count": 3}])
    step = spot.step(0)
    sqs = aws("sqs")
    text = "SLEEP 5\nworth finishing\n"
    run_ok("upload", "--local", spot.name, str(write_inputs(tmp_path / "in", {"slow.txt": text})))
    interrupted: list[str] = []
    for _ in range(3):
        holder: list[str] = []
        wait_until(functools.partial(running_the_command, spot, interrupted, holder), timeout=60, interval=0.2,
                   explain=spot.diagnosis)
        [arn] = holder
        local_cloud.interrupt_like_spot(arn)
        interrupted.append(arn)
        wait_until(functools.partial(stopped_like_spot, spot, arn), timeout=60, interval=0.2, explain=spot.diagnosis)

    spot.wait_for_results({"slow.txt": f"{text.rstrip()}\n-- tested\n".encode()}, timeout=90)
    assert queue_counts(sqs, step.dead_letter_queue) == (0, 0)
    assert failure_reports(aws, spot) == []
    # Its fourth attempt ran it: the three interrupted ones keep their numbers, none was a try.
    metadata = aws("s3").head_object(Bucket=spot.output_bucket, Key="slow.txt")["Metadata"]
    assert metadata["yunpipe-attempt"] == "4", metadata


def test_a_declared_permanent_exit_code_dead_letters_its_file_at_once(pipeline, aws, tmp_path):
    # The tester's exit code 3 (a FAIL line) declared permanent.
    strict = pipeline([{"name": wrap_tester(tmp_path, "route-permanent", permanent_exit_codes=[3]),
                        "max_receive_count": 3}])
    step = strict.step(0)
    sqs = aws("sqs")
    run_ok("upload", "--local", strict.name,
           str(write_inputs(tmp_path / "in", {"good.txt": "fine\n", "bad.txt": "broken\nFAIL\n"})))

    def dead_lettered():
        counts = queue_counts(sqs, step.dead_letter_queue)
        return None if counts == (1, 0) else f"dead-letter queue holds {counts}"
    wait_until(dead_lettered, timeout=90, interval=0.5, explain=strict.diagnosis)
    strict.wait_for_results({"good.txt": b"fine\n-- tested\n"}, timeout=60)
    # One try, its report final: no retries after it.
    [report_key] = failure_reports(aws, strict)
    assert report_key == f"failures/{strict.name}/{step.name}/bad.txt/attempt-1.json"
    report = json.loads(aws("s3").get_object(Bucket=strict.summary.reports_bucket, Key=report_key)["Body"].read())
    assert (report["reason"], report["exit_code"], report["final"]) == ("permanent_exit", 3, True)
    assert "asks to fail" in report["stderr_tail"]

    def drained():
        # The good file's message is deleted a moment after its result is stored (its record between).
        counts = queue_counts(sqs, step.queue)
        return None if counts == (0, 0) else f"the step's queue holds {counts}"
    wait_until(drained, timeout=30, interval=0.5, explain=strict.diagnosis)
    assert queue_counts(sqs, step.dead_letter_queue) == (1, 0)
