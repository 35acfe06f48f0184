"""Calibration benchmark: how well `yunpipe calibrate`'s projection, made from a small sample,
predicts the local cloud's own time for N files, against a real run of N files.

    .venv/bin/python bench/calibrate.py [--sample 6] [--files 400] [--concurrency 10] [--sleep 0.5]

The algorithm is the tests' tester (tests/e2e/algorithms/tester), wrapped with `wrap --local`;
each file asks it to sleep --sleep seconds (a job of known length that leaves the CPU to the
emulator and the workers). On an in-process LocalCloud: `calibrate` on --sample files (the
command's own sizes), then its advice projected for --files files on this machine's local
cloud (the start it measured instead of Fargate's minute, its CPUs shared by the tasks), then a
pipeline deployed with the advised cpu, memory, parallelism and files_per_task at --concurrency,
the N files uploaded (`yunpipe upload`) and the output bucket listed every 0.25 s until every
result is there; each result is checked. Figures go to stdout and bench/results/calibrate.json
(calibrate-<files>-c<concurrency>-s<sample>.json when not run with the defaults); see
bench/README.md. The target (issue 24): the prediction within 25% of the real run.
"""
import os
import statistics
import sys
import time
from pathlib import Path

import benchlib

from yunpipe.aws.location import open_aws
from yunpipe.aws.reader import Reader
from yunpipe.commands import demo
from yunpipe.engine.state import require_summary
from yunpipe.errors import YunpipeError
from yunpipe.local import cloud
from yunpipe.operations import prices, runs
from yunpipe.operations.calibrate import CalibrateOptions, calibrate
from yunpipe.operations.calibrate_advice import Advice, project
from yunpipe.registry import AlgorithmRegistry
from yunpipe.runtime.accounting import records

PIPELINE = "bench-calibrate"
TESTER = benchlib.REPO / "tests" / "e2e" / "algorithms" / "tester" / "tester.json"
IDLE_SECONDS = 10
POLL_SECONDS = 0.25
WAIT_SECONDS = 900


def write_files(folder: Path, count: int, sleep: float, prefix: str) -> Path:
    folder.mkdir(parents=True)
    for index in range(count):
        (folder / f"{prefix}-{index:04d}.txt").write_text(f"SLEEP {sleep:g}\n{prefix} {index}\n")
    return folder


def expected(text: str) -> bytes:
    """What the tester writes: the input and its stamp line."""
    return f"{text.rstrip()}\n-- tested\n".encode()


def real_run(reference: str, work: Path, advice: Advice, folder: Path, concurrency: int) -> dict:
    step = {"name": reference, **advice.settings(), "concurrency": concurrency}
    workflow = benchlib.write_workflow(work, PIPELINE, "single_run", [step], IDLE_SECONDS)
    demo.run("setup-pipe", "--local", "-f", str(workflow))
    summary = require_summary(PIPELINE)
    aws = open_aws(demo.LOCAL, summary.region)
    s3, ecs = aws.client("s3"), aws.client("ecs")
    wanted = {f.name: f.read_text() for f in folder.iterdir()}
    began = time.time()
    demo.run("upload", "--local", PIPELINE, str(folder))
    uploaded = time.time()
    seen: set[str] = set()
    deadline = time.monotonic() + WAIT_SECONDS
    while len(seen) < len(wanted):
        if time.monotonic() > deadline:
            raise YunpipeError(f"broken run: {len(wanted) - len(seen)} results missing after {WAIT_SECONDS} s")
        time.sleep(POLL_SECONDS)
        seen.update(o["Key"] for o in aws.pages("s3", "list_objects_v2", "Contents", Bucket=summary.output_bucket))
    finished = time.time()
    for key, text in wanted.items():
        body = s3.get_object(Bucket=summary.output_bucket, Key=key)["Body"].read()
        if body != expected(text):
            raise YunpipeError(f"broken run: wrong result for {key}: {body[:60]!r}")
    tasks = sum(len(ecs.list_tasks(cluster=summary.cluster, desiredStatus=status)["taskArns"])
                for status in ("RUNNING", "STOPPED"))
    measured = measured_jobs(aws, summary, began)
    demo.run("clean-up", "--local", "--purge", PIPELINE)
    return {"seconds": round(finished - began, 2), "upload_seconds": round(uploaded - began, 2), "tasks": tasks,
            **measured}


def measured_jobs(aws, summary, began: float) -> dict:
    """What the workers recorded of the real run: a file's mean time, and each task's first job
    (seconds after the upload began), files and files per second while it had them; where the
    projection's inputs (a file's time, all tasks at once) held and where they did not."""
    reader = Reader(aws)
    found = runs.read_jobs(reader, summary, runs.read_run(reader, summary, runs.list_runs(reader, summary)[-1]))
    ok = [job for job in found.jobs if job["outcome"] == "ok"]
    by_task: dict[str, list[dict]] = {}
    for job in ok:
        by_task.setdefault(str((job.get("task") or {}).get("id")), []).append(job)
    tasks = []
    for jobs in by_task.values():
        first = min(records.parse_iso(j["started_at"]).timestamp() for j in jobs)
        last = max(records.parse_iso(j["finished_at"]).timestamp() for j in jobs)
        tasks.append({"first_job_seconds": round(first - began, 2), "files": len(jobs),
                      "files_per_second": round(len(jobs) / max(last - first, 1e-3), 3)})
    return {"mean_file_seconds": round(statistics.mean(float(j["wall_seconds"]) for j in ok), 3),
            "per_task": sorted(tasks, key=lambda t: t["first_job_seconds"])}


def report(doc: dict) -> None:
    advice, predicted, real = doc["advice"], doc["predicted"], doc["real"]
    rows = [
        ("calibrate (sizes tried)", f"{doc['calibrate_seconds']} s ({len(doc['trials'])} sizes)"),
        ("advice", f"cpu {advice['cpu']:g}, memory {advice['memory']}, parallelism {advice['parallelism']}, "
                   f"files_per_task {advice['files_per_task']}"),
        ("measured rate, start", f"{doc['rate']} files/s per task, first job {doc['start_seconds']} s after upload"),
        ("predicted", f"{predicted['seconds']} s on {predicted['tasks']} task(s)"),
        ("real run", f"{real['seconds']} s on {real['tasks']} task(s) (upload {real['upload_seconds']} s)"),
        ("sample / real: a file's mean time", f"{doc['mean_file_seconds']} s / {real['mean_file_seconds']} s"),
        ("real run's tasks", "; ".join(f"first job at {t['first_job_seconds']} s, {t['files']} files, "
                                       f"{t['files_per_second']} files/s" for t in real["per_task"])),
        ("real / predicted", f"{doc['ratio']} (target: within 0.75-1.25)"),
        ("load average 1 min, start / end", f"{doc['machine']['load_average_1m_at_start']} / {doc['load_at_end']}"),
    ]
    benchlib.print_rows(rows)


def main(argv: list[str] | None = None) -> int:
    parser = benchlib.arguments(__doc__)
    parser.add_argument("--sample", type=int, default=6, help="sample files calibrate runs (default 6)")
    parser.add_argument("--files", type=int, default=400, help="files of the real run (default 400)")
    parser.add_argument("--concurrency", type=int, default=10, help="the real run's step concurrency (default 10)")
    parser.add_argument("--sleep", type=float, default=0.5, help="seconds each file's job sleeps (default 0.5)")
    args = parser.parse_args(argv)
    with benchlib.bench() as bench:
        reference = demo.wrap_algorithm(bench.client, AlgorithmRegistry(), TESTER)
        sample = write_files(bench.work / "sample", args.sample, args.sleep, "sample")
        inputs = write_files(bench.work / "inputs", args.files, args.sleep, "file")
        with cloud.LocalCloud(port=0, schedule_speedup=60):
            started = time.monotonic()
            done = calibrate(CalibrateOptions(reference, str(sample), files=args.files), say=demo.say)
            calibrate_seconds = round(time.monotonic() - started, 1)
            table, _ = prices.load()
            local = project(done.advice, args.files, args.concurrency, IDLE_SECONDS, table, "us-east-1",
                            start_seconds=done.advice.start_seconds, machine_cpus=os.cpu_count())
            demo.say(f"predicted {local.wall_seconds:.1f} s for {args.files} files on {local.tasks} task(s)")
            real = real_run(reference, bench.work, done.advice, inputs, args.concurrency)
    doc = {
        "benchmark": "calibrate",
        "machine": bench.machine,
        "load_at_end": round(os.getloadavg()[0], 2),
        "parameters": {"sample": args.sample, "files": args.files, "concurrency": args.concurrency,
                       "sleep": args.sleep, "algorithm": reference},
        "calibrate_seconds": calibrate_seconds,
        "trials": [{"cpu": t.cpu, "memory": t.memory_mib, "parallelism": t.parallelism,
                    "mean_seconds": round(t.mean_seconds, 3) if t.ok else None,
                    "observed_rate": round(t.observed_rate, 3) if t.ok else None, "outcomes": dict(t.outcomes)}
                   for t in done.trials],
        "advice": done.advice.settings(),
        "rate": round(done.advice.rate, 3),
        "mean_file_seconds": round(next(t.mean_seconds for t in done.trials if (t.cpu, t.parallelism) == (
            done.advice.cpu, done.advice.parallelism)), 3),
        "start_seconds": round(done.advice.start_seconds, 2),
        "predicted": {"seconds": round(local.wall_seconds, 2), "tasks": local.tasks,
                      "assumptions": list(local.assumptions)},
        "real": real,
        "ratio": round(real["seconds"] / local.wall_seconds, 3),
        "aws_projection": {"files": done.projection.files, "seconds": round(done.projection.wall_seconds, 1),
                           "tasks": done.projection.tasks, "cost": done.projection.cost},
        "peak_rss_mib": benchlib.peak_rss_mib(),
    }
    defaults = (args.sample, args.files, args.concurrency, args.sleep) == (6, 400, 10, 0.5)
    name = "calibrate" if defaults else f"calibrate-{args.files}-c{args.concurrency}-s{args.sample}"
    return benchlib.finish(name, doc, report)


if __name__ == "__main__":
    sys.exit(main())
