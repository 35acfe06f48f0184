"""yunpipe calibrate without Docker: the advice and the projection from job records (as the
workers write them), --write, and every bad input refused (exit 2) before anything runs.
The run on the local cloud is tests/e2e/test_calibrate.py."""
import json
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import accounting_runs as acct
import boto3
import pytest
import yaml
from helpers import record_algorithm

from yunpipe import cli
from yunpipe.aws.facade import Aws, watch_calls
from yunpipe.aws.reader import Reader
from yunpipe.engine.state import require_summary
from yunpipe.errors import YunpipeError
from yunpipe.operations import calibrate as calibration
from yunpipe.operations.calibrate_advice import Trial, project, recommend
from yunpipe.runtime.accounting import cost, records
from yunpipe.specs.workflow import load_workflow

PRICES = cost.load_prices()
T0 = datetime(2026, 12, 7, 12, 0, tzinfo=timezone.utc)


def jobs(count: int, seconds: float, at_once: int = 1, peak: float | None = 100.0, outcome: str = "ok",
         cpu_seconds: float = 0.0, gap: float = 0.0) -> tuple[dict, ...]:
    """Job records of `count` files run `at_once` at a time by one task, each `seconds` long and
    `gap` seconds after the one before."""
    made = []
    for index in range(count):
        start = T0 + timedelta(seconds=(seconds + gap) * (index // at_once))
        made.append({"key": f"f{index}", "step": "s", "outcome": outcome, "final": True,
                     "started_at": start.isoformat(), "finished_at": (start + timedelta(seconds=seconds)).isoformat(),
                     "wall_seconds": seconds, "cpu_seconds": cpu_seconds, "peak_memory_mib": peak,
                     "log_tail": "boom: no such column\n" if outcome != "ok" else None})
    return tuple(made)


def trial(cpu: float, parallelism: int, records: tuple[dict, ...], start: float = 2.0) -> Trial:
    return Trial(cpu, 2048, parallelism, records, start)


def test_the_smallest_cpu_that_is_nearly_as_fast_the_cheapest_parallelism_and_a_minute_of_files_per_task():
    trials = [trial(0.25, 1, jobs(4, 2.0)), trial(0.5, 1, jobs(4, 1.0)), trial(1.0, 1, jobs(4, 0.9)),
              trial(0.5, 2, jobs(4, 1.0, at_once=2)), trial(0.5, 4, jobs(4, 3.0, at_once=4))]
    advice = recommend(trials, 128, PRICES, "us-east-1")
    # 0.5 vCPU is within 1.25x of 1 vCPU's 0.9 s; 0.25 vCPU is not.
    assert (advice.cpu, advice.parallelism) == (0.5, 2)
    # Peak 100 MiB x 1.5 per job, 2 jobs and the worker's 64 MiB: 364 MiB, Fargate's smallest at 0.5 vCPU.
    assert (advice.job_memory_mib, advice.memory_mib) == (150, 1024)
    assert advice.rate == pytest.approx(2.0)
    assert advice.files_per_task == 120  # 60 s x 2 files/s
    assert advice.settings() == {"cpu": 0.5, "memory": 1024, "parallelism": 2, "files_per_task": 120}


def test_a_parallel_size_is_rated_by_its_files_at_once_not_by_a_small_samples_last_round():
    # One at a time: 1 s per file and 0.25 s between files. Four at once: 6 files, so the second
    # round runs 2: the sample's span (2.25 s) says 2.7 files/s, a backlog gives 4 / 1.25 s.
    trials = [trial(0.25, 1, jobs(6, 1.0, gap=0.25)), trial(0.25, 4, jobs(6, 1.0, at_once=4, gap=0.25))]
    assert trials[0].gap_seconds == pytest.approx(0.25)
    assert trials[1].observed_rate == pytest.approx(6 / 2.25)
    advice = recommend(trials, 128, PRICES, "us-east-1")
    assert advice.parallelism == 4
    assert advice.rate == pytest.approx(3.2, rel=0.02)


def test_a_parallel_sizes_file_time_is_its_full_rounds():
    # 4 at once take 2 s each; the last round's 2 files, with fewer beside them, 1 s.
    full, last = jobs(4, 2.0, at_once=4), jobs(2, 1.0, at_once=2)
    later = tuple({**job, "started_at": (T0 + timedelta(seconds=2)).isoformat(),
                   "finished_at": (T0 + timedelta(seconds=3)).isoformat()} for job in last)
    assert trial(0.25, 4, full + later).mean_seconds == pytest.approx(2.0)


def test_memory_follows_the_peak_and_a_size_that_ran_out_of_memory_is_left_out():
    trials = [trial(0.25, 1, jobs(2, 1.0, peak=None, outcome="oom")), trial(0.5, 1, jobs(2, 1.0, peak=1500.0))]
    advice = recommend(trials, 128, PRICES, "us-east-1")
    assert advice.cpu == 0.5
    assert advice.memory_mib == 3072  # 1500 x 1.5 + 64 = 2314 MiB, rounded up at 0.5 vCPU
    assert any("out of memory at 0.25 vCPU" in note for note in advice.notes)


def test_a_sample_that_fails_at_every_size_is_an_error_with_the_commands_stderr():
    with pytest.raises(YunpipeError, match="2 failed; the command's last stderr: boom: no such column"):
        recommend([trial(0.25, 1, jobs(2, 1.0, outcome="failed"))], 128, PRICES, "us-east-1")


def test_the_projection_runs_the_backlogs_tasks_side_by_side_and_prices_their_seconds():
    advice = recommend([trial(0.25, 1, jobs(4, 0.5))], 128, PRICES, "us-east-1")  # 2 files/s, 120 per task
    projected = project(advice, 1000, 5, 30, PRICES, "us-east-1")
    assert projected.tasks == 5  # 9 wanted (1000 / 120), at most 5
    assert projected.wall_seconds == pytest.approx(60 + 1000 / 5 / 2.0)
    assert projected.task_seconds == pytest.approx(5 * (60 + 100 + 30))
    rates = PRICES["regions"]["us-east-1"]["fargate"]
    hourly = 0.25 * rates["vcpu_hour"] + 0.5 * rates["gb_hour"]
    assert projected.cost == pytest.approx(hourly * projected.task_seconds / 3600)
    assert any("Fargate bills" in line for line in projected.assumptions)
    assert not any("shared among the runs" in line for line in projected.assumptions)


def test_the_local_projection_slows_down_when_the_tasks_want_more_cpus_than_the_machine_has():
    advice = recommend([trial(1.0, 1, jobs(4, 1.0, cpu_seconds=1.0))], 128, PRICES, "us-east-1")
    alone = project(advice, 600, 4, 1, PRICES, "us-east-1", start_seconds=1.0)
    shared = project(advice, 600, 4, 1, PRICES, "us-east-1", start_seconds=1.0, machine_cpus=2)
    assert alone.tasks == shared.tasks == 4
    assert shared.wall_seconds - 1.0 == pytest.approx(2 * (alone.wall_seconds - 1.0))


def test_the_wait_for_a_samples_jobs_counts_single_records_and_pages_records_from_a_listing(moto, write_workflow):
    acct.deploy(write_workflow)
    s3 = boto3.client("s3")
    acct.write_open(s3)  # resize: a.tif and b.tif done, c.tif to be tried again; count: a.tif done
    acct.into_pages(s3, acct.OPEN)
    dead = acct.job(acct.OPEN, "resize", "d.tif", acct.task("resize", 7, 0, None, acct.OPENED), 20, 1.0, 90,
                    outcome="failed", reason="exit status 1", base=acct.OPENED)
    acct.put(s3, records.job_record_key(dead), dead)
    # Not a page's key: it counts no job.
    acct.put(s3, records.page_prefix(acct.PIPELINE, acct.OPEN) + "resize/notes.txt", b"?")
    summary, reader = require_summary(acct.PIPELINE), Reader(Aws(boto3.Session()))
    jobs = calibration.wait_for_jobs(reader, summary, acct.OPEN, 4, time.monotonic() + 5)
    assert sorted((j["step"], j["key"], j["outcome"]) for j in jobs) == [
        ("count", "a.tif", "ok"), ("resize", "a.tif", "ok"), ("resize", "b.tif", "ok"), ("resize", "d.tif", "failed")]
    with pytest.raises(YunpipeError, match=r"^1 of 5 sample files had no outcome in time"):
        calibration.wait_for_jobs(reader, summary, acct.OPEN, 5, time.monotonic())


# ---------------------------------------------------------------------------- --write


def workflow(algorithm: str = "tester", **step) -> dict:
    return {"name": "lab", "input_s3_name": "lab-in", "output_s3_name": "lab-out",
            "process": {"type": "sequence_run", "algorithms": [{"name": "other"}, {"name": algorithm, **step}]}}


@pytest.mark.parametrize("suffix", [".json", ".yaml"])
def test_write_sets_the_fields_on_the_steps_running_the_algorithm(aws_env, tmp_path, suffix):
    record_algorithm("tester", "user/tester:1")
    path = tmp_path / f"workflow{suffix}"
    document = {**workflow(concurrency=3), "idle_seconds": 12}
    path.write_text(json.dumps(document) if suffix == ".json" else yaml.safe_dump(document))
    target = calibration.read_target(str(path), "tester")
    assert (target.steps, target.concurrency, target.idle_seconds) == ((1,), 3, 12)
    where = calibration.write_settings(target, {"cpu": 0.5, "memory": 1024, "parallelism": 2, "files_per_task": 120})
    assert where == f"{path}: process.algorithms[1]"
    steps = load_workflow(path).steps
    assert (steps[0].cpu, steps[0].memory, steps[0].parallelism) == (None, None, None)
    assert (steps[1].cpu, steps[1].memory, steps[1].parallelism, steps[1].files_per_task, steps[1].concurrency) == \
        (0.5, 1024, 2, 120, 3)


# ---------------------------------------------------------------------------- bad input


def sample(tmp_path: Path, count: int = 2) -> Path:
    folder = tmp_path / "sample"
    folder.mkdir()
    for index in range(count):
        (folder / f"s{index}.txt").write_text("x\n")
    return folder


BAD = {
    "missing sample": (lambda tmp: ["tester", "--sample", str(tmp / "nope")], "--sample: expected a folder of sample files"),
    "empty sample": (lambda tmp: ["tester", "--sample", str((tmp / "empty").mkdir() or tmp / "empty")],
                     "--sample: expected a folder with at least one file"),
    "sample is a file": (lambda tmp: ["tester", "--sample", str(sample(tmp) / "s0.txt")], "is a file"),
    "too big a sample": (lambda tmp: ["tester", "--sample", str(sample(tmp, 101))], "expected at most 100 files"),
    "unknown algorithm": (lambda tmp: ["nope", "--sample", str(sample(tmp))], "calibrate: ALGORITHM: expected a recorded"),
    "no files to project": (lambda tmp: ["tester", "--sample", str(sample(tmp)), "--files", "0"], "--files: expected"),
    "unknown region": (lambda tmp: ["tester", "--sample", str(sample(tmp)), "--region", "xx-nowhere-1"], "--region"),
    "workflow missing": (lambda tmp: ["tester", "--sample", str(sample(tmp)), "--write", str(tmp / "w.json")],
                         "w.json: file not found"),
    "workflow without the algorithm": (
        lambda tmp: ["tester", "--sample", str(sample(tmp)), "--write", write(tmp, workflow("other"))],
        "w.json: process.algorithms: expected a step running tester"),
    "workflow malformed": (
        lambda tmp: ["tester", "--sample", str(sample(tmp)), "--write", write(tmp, {**workflow(), "idle_seconds": 0})],
        "w.json: idle_seconds"),
}


def write(tmp: Path, document: dict) -> str:
    path = tmp / "w.json"
    path.write_text(json.dumps(document))
    return str(path)


@pytest.mark.parametrize("case", BAD)
def test_bad_input_exits_2_naming_the_field_before_anything_runs(case, aws_env, tmp_path, capsys, monkeypatch):
    record_algorithm("tester", "user/tester:1")
    record_algorithm("other", "user/other:1")
    argv, said = BAD[case]
    arguments = argv(tmp_path)
    files = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    monkeypatch.setattr(calibration, "local_cloud", lambda _say: pytest.fail("the local cloud was asked for"))
    with watch_calls() as calls:
        assert cli.main(["calibrate", *arguments]) == 2
    assert said in capsys.readouterr().err
    assert calls == []
    assert {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()} == files


def test_without_docker_it_says_the_local_cloud_needs_it(aws_env, tmp_path, capsys, monkeypatch):
    record_algorithm("tester", "user/tester:1")
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-docker.sock")
    assert cli.main(["calibrate", "tester", "--sample", str(sample(tmp_path))]) == 1
    assert "calibrate runs the sample on the local cloud, which needs Docker" in capsys.readouterr().err
