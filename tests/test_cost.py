"""What the work cost: cost.run_cost against sums worked by hand from the price table, and
`yunpipe cost` reading a deployed pipeline's records (settled and open runs) in moto."""
import json

import boto3
import pytest
from helpers import single_run

from yunpipe import cli
from yunpipe.engine.state import PipelineState
from yunpipe.runtime.accounting import cost, records

PRICES = cost.load_prices()
# Fargate and Spot of us-east-1, and a g4dn.xlarge there, as the table records them (by hand, not by code).
VCPU, GB, SPOT_VCPU, SPOT_GB, G4DN = 0.04048, 0.004445, 0.012144, 0.0013335, 0.526


def job(step, key, seconds, task, run="r1", final=True):
    return records.job_record(pipeline="p", run=run, step=step, key=key, attempt=1, final=final, outcome="ok",
                              wall_seconds=seconds, task=task)


def task(task_id, step, cpu, memory, capacity, started, stopped, job_seconds):
    return {"id": task_id, "pipeline": "p", "step": step, "cpu": cpu, "memory_mib": memory, "capacity": capacity,
            "started_at": started, "stopped_at": stopped, "job_seconds": job_seconds, "jobs": 1, "exit": "idle"}


def worked_run():
    """A run over Fargate, Fargate Spot and a GPU instance, one task of it shared with another run
    and one still running (no task record: its jobs' copy stands in)."""
    fargate = task("t1", "a", 512, 1024, "FARGATE", "2026-12-07T12:00:00Z", "2026-12-07T12:02:30Z",
                   {"r1": 100, "r2": 50})
    spot = task("t2", "b", 1024, 2048, "FARGATE_SPOT", "2026-12-07T12:00:00Z", "2026-12-07T12:00:20Z", {"r1": 15})
    gpu = task("t3", "gpu", 2048, 4096, "yunpipe-p-ec2-g4dn-xlarge", "2026-12-07T12:00:00Z", "2026-12-07T12:10:00Z",
               {"r1": 300})
    running = {"id": "t4", "started_at": "2026-12-07T12:05:00Z", "cpu": 256, "memory_mib": 512, "capacity": "FARGATE"}
    jobs = [job("a", "x.png", 60, {k: fargate[k] for k in records.TASK_FIELDS}),
            job("a", "y.png", 40, {k: fargate[k] for k in records.TASK_FIELDS}),
            job("b", "x.png", 15, {k: spot[k] for k in records.TASK_FIELDS}),
            job("gpu", "x.png", 300, {k: gpu[k] for k in records.TASK_FIELDS}),
            job("a", "z.png", 30, running)]
    return [fargate, spot, gpu], jobs


def test_a_runs_cost_is_the_sum_worked_by_hand_from_its_task_seconds_and_the_table():
    tasks, jobs = worked_run()
    got = cost.run_cost(tasks, jobs, PRICES, "us-east-1", "r1", now="2026-12-07T12:06:00Z")
    # t1: 150 s billed, this run's jobs 100 of its 150 job-seconds -> 100 s of 0.5 vCPU and 1 GB.
    t1 = 100 / 3600 * (0.5 * VCPU + 1 * GB)
    # t2: 20 s, billed Fargate's minute, all of it this run's, at Spot's price.
    t2 = 60 / 3600 * (1 * SPOT_VCPU + 2 * SPOT_GB)
    # t3: 600 s on a g4dn.xlarge (4 vCPU, 16 GiB): 2 vCPU are half of it, 4 GiB a quarter -> half its price, no minimum.
    t3 = 600 / 3600 * G4DN * 0.5
    # t4: running since 12:05, counted to now (12:06): 60 s of 0.25 vCPU and 0.5 GB.
    t4 = 60 / 3600 * (0.25 * VCPU + 0.5 * GB)
    assert got["by_step"] == {"a": pytest.approx(t1 + t4, abs=1e-6), "b": pytest.approx(t2, abs=1e-6),
                              "gpu": pytest.approx(t3, abs=1e-6)}
    assert got["total"] == pytest.approx(t1 + t2 + t3 + t4, abs=1e-6)
    assert got["task_seconds"] == pytest.approx(100 + 60 + 600 + 60)
    assert got["task_seconds_by_step"] == {"a": 160, "b": 60, "gpu": 600}
    assert got["files_by_step"] == {"a": 3, "b": 1, "gpu": 1}
    assert got["per_file"] == pytest.approx((t1 + t2 + t3 + t4) / 3, abs=1e-6)
    assert got["estimated"] is True
    said = "\n".join(got["assumptions"])
    assert "prices of us-east-1 from 2026-12-07" in said
    assert "one minute at least" in said and "Fargate Spot" in said and "larger of its shares" in said
    assert "tasks still running are counted up to now" in said


def test_a_region_without_an_item_is_priced_at_us_east_1s_and_says_so():
    tasks, jobs = worked_run()
    got = cost.run_cost(tasks, jobs, PRICES, "eu-central-1", "r1", now="2026-12-07T12:06:00Z")
    # Fargate has eu-central-1's own figures; the g4dn.xlarge has none there.
    assert got["by_step"]["gpu"] == pytest.approx(600 / 3600 * G4DN * 0.5, abs=1e-6)
    assert got["by_step"]["a"] == pytest.approx(
        100 / 3600 * (0.5 * 0.04656 + 1 * 0.00511) + 60 / 3600 * (0.25 * 0.04656 + 0.5 * 0.00511), abs=1e-6)
    assert "no price for g4dn.xlarge in eu-central-1: us-east-1's is used" in got["assumptions"]


def test_a_task_on_an_instance_type_the_table_lacks_is_not_counted_and_said():
    unknown = task("t9", "a", 1024, 1024, "yunpipe-p-ec2-x9z-huge", "2026-12-07T12:00:00Z", "2026-12-07T12:01:40Z",
                   {"r1": 50})
    got = cost.run_cost([unknown], [job("a", "k", 50, {k: unknown[k] for k in records.TASK_FIELDS})], PRICES,
                        "us-east-1", "r1")
    assert got["total"] == 0 and got["task_seconds"] == 100
    assert "no price for yunpipe-p-ec2-x9z-huge: its 100 task-seconds are not counted" in got["assumptions"]


def test_every_region_has_fargate_and_spot_and_every_ec2_price_a_known_size():
    for region, entry in PRICES["regions"].items():
        assert entry["fargate"]["vcpu_hour"] > entry["fargate_spot"]["vcpu_hour"] > 0, region
        for name in entry.get("ec2", {}):
            assert name in PRICES["instance_types"], (region, name)
    assert PRICES["date"] and PRICES["source"]
    assert "g4dn.xlarge" in PRICES["regions"]["us-east-1"]["ec2"]  # the GPU default (specs.workflow)


@pytest.fixture
def deployed(moto, change123, write_workflow):
    assert cli.setup_pipe_main(["-f", write_workflow(single_run())]) == 0
    return PipelineState.load("demo").summary


def put(bucket, key, document):
    boto3.client("s3").put_object(Bucket=bucket, Key=key, Body=json.dumps(document).encode())


def test_cost_reads_a_settled_runs_summary_and_prices_an_open_run_from_its_records(deployed, capsys):
    bucket, step = deployed.reports_bucket, deployed.steps[0].name
    settled_cost = {"run": "20261207T120000Z-upload", "currency": "USD", "total": 0.5, "by_step": {step: 0.5},
                    "per_file": 0.25, "task_seconds": 900.0, "estimated": False, "assumptions": ["as settled"]}
    put(bucket, records.summary_key("demo", "20261207T120000Z-upload"), {"run": "20261207T120000Z-upload",
                                                                          "cost": settled_cost})
    fargate = task("t1", step, 1024, 2048, "FARGATE", "2026-12-07T13:00:00Z", "2026-12-07T13:05:00Z",
                   {"20261207T130000Z-submit": 200})
    fargate["pipeline"] = "demo"
    put(bucket, records.task_key("demo", step, "t1"), fargate)
    for key, seconds in (("a.txt", 120), ("b.txt", 80)):
        record = records.job_record(pipeline="demo", run="20261207T130000Z-submit", step=step, key=key, attempt=1,
                                    final=True, outcome="ok", wall_seconds=seconds,
                                    task={k: fargate[k] for k in records.TASK_FIELDS})
        put(bucket, records.job_record_key(record), record)
    put(bucket, records.open_key("demo", "20261207T130000Z-submit"), {})

    assert cli.main(["cost", "demo", "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    runs = {run["run"]: run for run in document["runs"]}
    assert sorted(runs) == ["20261207T120000Z-upload", "20261207T130000Z-submit"]
    assert runs["20261207T120000Z-upload"]["settled"] and runs["20261207T120000Z-upload"]["total"] == 0.5
    # 300 s of 1 vCPU and 2 GB, all of it this run's.
    by_hand = 300 / 3600 * (1 * VCPU + 2 * GB)
    assert runs["20261207T130000Z-submit"]["settled"] is False
    assert runs["20261207T130000Z-submit"]["total"] == pytest.approx(by_hand, abs=1e-6)
    assert runs["20261207T130000Z-submit"]["per_file"] == pytest.approx(by_hand / 2, abs=1e-6)
    assert document["total"] == pytest.approx(0.5 + by_hand, abs=1e-6)

    assert cli.main(["cost", "demo", "--run", "20261207T130000Z-submit"]) == 0
    out = capsys.readouterr().out
    assert "run 20261207T130000Z-submit (open, so far)" in out and "300 task-seconds" in out
    assert "2 file(s)" in out and "Assumptions:" in out and "one minute at least" in out


def test_an_unknown_run_or_pipeline_is_exit_2_with_a_suggestion(deployed, capsys):
    put(deployed.reports_bucket, records.manifest_key("demo", "20261207T120000Z-upload"), {})
    assert cli.main(["cost", "demo", "--run", "20261207T120000Z-uplaod"]) == 2
    err = capsys.readouterr().err
    assert "no run '20261207T120000Z-uplaod'" in err and "did you mean '20261207T120000Z-upload'" in err
    assert "Traceback" not in err
    assert cli.main(["cost", "dmeo"]) == 2
    assert "did you mean 'demo'" in capsys.readouterr().err


def test_cost_of_a_pipeline_without_runs_says_how_to_open_one(deployed, capsys):
    assert cli.main(["cost", "demo"]) == 0
    assert "has no runs yet" in capsys.readouterr().out
