"""End to end: what the worker records of each job and task, on the local cloud. A step of 512 MiB
runs a file that needs 800 MiB: Docker's memory limit is the task's, the kernel kills the
command, and its record says `oom` (not just failed); a normal file's record says ok, with what
it measured. One pipeline, one task, two small files: about 20 s on top of the suite's fixtures.
"""
import json

import pytest
from helpers import job_records as all_job_records

from .helpers import run_ok, wait_until, write_inputs

pytestmark = pytest.mark.e2e


def job_records(s3, bucket: str, pipeline: str) -> dict[str, dict]:
    """The final job records of the pipeline's runs, by input key."""
    return {record["key"]: record for key, record in all_job_records(s3, bucket, f"runs/{pipeline}/").items()
            if "/ends/" in key}


def task_records(s3, bucket: str, pipeline: str) -> dict[str, dict]:
    """The pipeline's task records, by task id."""
    listed = s3.list_objects_v2(Bucket=bucket, Prefix=f"tasks/{pipeline}/").get("Contents", [])
    records = [json.loads(s3.get_object(Bucket=bucket, Key=item["Key"])["Body"].read()) for item in listed]
    return {record["id"]: record for record in records}


def test_a_job_over_its_task_s_memory_is_recorded_oom_and_a_normal_one_ok_with_its_measurements(
        pipeline, aws, tmp_path):
    # max_memory 512: the job out of memory is not tried at a larger size (test_grow.py does that).
    tester = pipeline([{"name": "tester", "cpu": 0.25, "memory": 512, "max_receive_count": 1, "max_memory": 512}],
                      idle_seconds=1)
    files = {"fine.txt": "a normal file\n", "greedy.txt": "ALLOCATE 800\nmore than the task has\n"}
    run_ok("upload", "--local", tester.name, str(write_inputs(tmp_path / "in", files)))
    s3, reports = aws("s3"), tester.summary.reports_bucket

    def both_recorded():
        missing = sorted(set(files) - set(job_records(s3, reports, tester.name)))
        return f"no record yet of {missing}" if missing else None
    wait_until(both_recorded, timeout=120, explain=tester.diagnosis)
    records = job_records(s3, reports, tester.name)

    fine, greedy = records["fine.txt"], records["greedy.txt"]
    assert (fine["outcome"], fine["exit_code"], fine["reason"]) == ("ok", 0, None), fine
    assert fine["bytes_in"] == len(files["fine.txt"]) and fine["bytes_out"] == len(files["fine.txt"]) + len("-- tested\n")
    assert fine["results"] == ["fine.txt"] and fine["result_bucket"] == tester.output_bucket
    assert fine["cpu_seconds"] > 0 and 0 < fine["peak_memory_mib"] < 256, fine
    assert fine["memory_limit_mib"] == 512
    assert fine["task"]["cpu"] == 256 and fine["task"]["memory_mib"] == 512 and fine["task"]["capacity"] == "FARGATE"
    assert fine["run"].endswith("Z-upload")  # upload opened the run
    metadata = s3.head_object(Bucket=tester.output_bucket, Key="fine.txt")["Metadata"]
    assert metadata["yunpipe-run"] == fine["run"]

    assert (greedy["outcome"], greedy["reason"], greedy["exit_code"], greedy["final"]) == ("oom", "oom", -9, True), greedy
    # Killed on its way to 800 MiB, near the 512 MiB the worker shares with it.
    assert 256 < greedy["peak_memory_mib"] <= 512, greedy
    assert greedy["report"] == f"failures/{tester.name}/tester/greedy.txt/attempt-1.json"
    report = json.loads(s3.get_object(Bucket=reports, Key=greedy["report"])["Body"].read())
    assert report["reason"] == "oom" and "memory limit (512 MiB)" in report["stderr_tail"], report

    # The tasks' own records, once they stopped (idle 1 s): one task normally (files_per_task
    # 10), a second if the schedule started one while the first was busy; all of them count both
    # jobs, their seconds, and the peak of the one that ran greedy.txt.
    def tasks_recorded():
        found = task_records(s3, reports, tester.name)
        jobs = sum(task["jobs"] for task in found.values())
        return None if jobs == len(files) else f"task records count {jobs} job(s) of {len(files)}"
    wait_until(tasks_recorded, timeout=60, explain=tester.diagnosis)
    tasks = task_records(s3, reports, tester.name)
    assert {task["exit"] for task in tasks.values()} == {"idle"}, tasks
    assert {fine["task"]["id"], greedy["task"]["id"]} <= set(tasks), tasks
    seconds = sum(task["job_seconds"].get(fine["run"], 0) for task in tasks.values())
    assert seconds == pytest.approx(fine["wall_seconds"] + greedy["wall_seconds"], abs=0.01), tasks
    task = tasks[greedy["task"]["id"]]
    assert task["peak_memory_mib"] >= greedy["peak_memory_mib"], task
    print(f"\nrecords: fine {fine['wall_seconds']} s, {fine['peak_memory_mib']} MiB; greedy "
          f"{greedy['wall_seconds']} s, {greedy['peak_memory_mib']} MiB (oom); {len(tasks)} task(s), "
          f"peak {task['peak_memory_mib']} MiB")
