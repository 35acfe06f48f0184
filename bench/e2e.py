"""End-to-end benchmark: N small files through a local pipeline, against the naive way.

    .venv/bin/python bench/e2e.py [--files 200] [--steps 2] [--concurrency 10] [--files-per-task N]
                                  [--caps 1,2,4] [--rounds 3] [--floor-threads 4] [--accounting-cost]
    .venv/bin/python bench/e2e.py --sizes 200,2000 [--rounds 3]

Pipeline: uppercase (examples/) then checksum (tests/e2e/algorithms/), wrapped with
`wrap --local`, deployed with setup-pipe on an in-process LocalCloud; the files are put
into the input bucket one after another while the output bucket is listed every 0.25 s, each
from a process of its own (bench/dropper.py put and watch), as a user's upload comes from one.
The same files then go through the pipeline again for each hand-tuned cap of --caps (at most
that many tasks per step, one task started per waiting file: the scaling before issue 11).
All of that --rounds times, each round in another order; each configuration is reported by its
median run, since one run of each differs from the next by +-15% on a shared 2-core machine.
The floor (bench/floor.py, on a local cloud of its own): a plain Python process making per file
per step exactly a job's AWS calls (receive, get, put, delete), no container.
Naive: the same developer images (unwrapped) on the same files, one `docker run` per file
per step through the Docker SDK: sequentially, then nproc and 2 x nproc files at once.
Every result of all is checked.
Figures go to stdout and bench/results/e2e.json (e2e-<files>x<steps>-c<concurrency>[-f<N>].json
when not run with the defaults); see bench/README.md.

--accounting-cost: the defaults with the workflow's accounting on and off instead (no caps, no
naive baseline), --rounds times each, alternating; prints both files/s and their ratio, and
writes bench/results/e2e-accounting.json. With accounting on, every job's record is checked too.

--sizes 200,2000: the defaults at each file count instead (no caps, no baselines), each run's
files/s, latency, containers per 100 files and peak memory, and the largest over the smallest.
"""
import collections
import os
import sys
import time
from pathlib import Path

import benchlib
import dropper
from baselines import Drop, percentile, run_floor, run_naive, verify

from yunpipe.aws.location import open_aws
from yunpipe.aws.reader import Reader
from yunpipe.commands import demo
from yunpipe.engine.state import PipelineSummary, require_summary
from yunpipe.errors import YunpipeError
from yunpipe.local import cloud
from yunpipe.operations import runs as pipeline_runs
from yunpipe.operations import status as pipeline_status
from yunpipe.registry import AlgorithmRegistry

PIPELINE = "bench-e2e"
# Dead letters are looked for this often while waiting: each look is a dozen API calls the
# emulator answers in this process, which at 2 s took 3% of its CPU (the floor makes none).
STATUS_EVERY_SECONDS = 10.0
# Bounds a broken run only; a healthy one takes well under a minute.
WAIT_SECONDS = 300
WAIT_SECONDS_PER_FILE = 0.25
# How long after IDLE_SECONDS every worker must have exited. A minute was seen too short for a
# 2,000-file run on a 2-core machine under a load average of 50 (other sessions' tests).
WORKER_EXIT_SECONDS = 180
# Workers exit after the queue stayed empty this long (as in the demo).
IDLE_SECONDS = 10
CLEAN_EXIT = "Essential container exited with code 0"
WARM_UP_FILES = 20
# The floor's threads per step: beyond 4 its files/s no longer rises here (the upload bounds it).
FLOOR_THREADS = 4






def workflow_steps(references: list[str], concurrency: int, files_per_task: int | None) -> list[dict]:
    step: dict = {"concurrency": concurrency}
    if files_per_task is not None:
        step["files_per_task"] = files_per_task
    return [{"name": ref, **step} for ref in references]




def watch_results(endpoint_url: str, summary: PipelineSummary, files: list[Path]) -> tuple[float, dict[str, float], dict[str, float]]:
    """The files put by one Drop and their results watched by another (processes of their own, as
    a user's upload is), while this one looks for dead letters now and then; returns the start
    time, each key's drop time and the time its result was first listed."""
    reader = Reader(open_aws(demo.LOCAL, summary.region))
    deadline = time.monotonic() + WAIT_SECONDS + len(files) * WAIT_SECONDS_PER_FILE
    drops: list[Drop] = []
    try:
        watching = Drop(endpoint_url, summary.region, "watch", summary.output_bucket, files)
        drops.append(watching)
        putting = Drop(endpoint_url, summary.region, "put", summary.input_bucket, files)
        drops.append(putting)
        watching.start()
        putting.start()
        next_status = time.monotonic() + STATUS_EVERY_SECONDS
        while not watching.finished(dropper.POLL_SECONDS):
            putting.check()
            if time.monotonic() >= next_status or time.monotonic() > deadline:
                next_status = time.monotonic() + STATUS_EVERY_SECONDS
                dead = pipeline_status.collect(reader, summary, failures=0).dead
                if dead or time.monotonic() > deadline:
                    print(pipeline_status.render(summary, pipeline_status.collect(reader, summary)))
                    raise YunpipeError(f"broken run: {dead} dead-lettered, or no end after "
                                       f"{WAIT_SECONDS + len(files) * WAIT_SECONDS_PER_FILE:.0f} s")
        if not putting.finished(WAIT_SECONDS):
            raise YunpipeError("broken run: every result is there but the upload has not ended")
        put, seen = putting.result(), watching.result()["seen"]
    finally:
        for drop in drops:
            drop.close()
    unexpected = set(seen) - {f.name for f in files}
    if unexpected:
        raise YunpipeError(f"broken run: unexpected result keys {sorted(unexpected)[:5]}")
    return put["started"], put["dropped"], seen


def wait_for_workers(reader: Reader, summary: PipelineSummary) -> None:
    """Workers exit IDLE_SECONDS after their queue emptied; count containers only after that."""
    deadline = time.monotonic() + IDLE_SECONDS + WORKER_EXIT_SECONDS
    while True:
        running = {step.name: list(reader.pages("ecs", "list_tasks", "taskArns", cluster=summary.cluster,
                                                startedBy=step.started_by, desiredStatus="RUNNING"))
                   for step in summary.steps}
        if not any(running.values()):
            return
        if time.monotonic() > deadline:
            print(pipeline_status.render(summary, pipeline_status.collect(reader, summary)))
            raise YunpipeError(f"workers still running {WORKER_EXIT_SECONDS} s after the queues emptied: "
                               f"{ {step: len(arns) for step, arns in running.items()} }")
        time.sleep(1)


def worker_tasks(aws, summary: PipelineSummary) -> dict[str, list[dict]]:
    """Every task of each step, described; called once none runs, so STOPPED lists them all."""
    tasks = {}
    for step in summary.steps:
        arns = list(aws.pages("ecs", "list_tasks", "taskArns", cluster=summary.cluster,
                              startedBy=step.started_by, desiredStatus="STOPPED"))
        # describe_tasks takes at most 100 tasks per call.
        tasks[step.name] = [task for i in range(0, len(arns), 100)
                               for task in aws.call("ecs", "describe_tasks", cluster=summary.cluster,
                                                    tasks=arns[i:i + 100])["tasks"]]
    return tasks


def check_clean_exits(tasks: dict[str, list[dict]]) -> None:
    """A worker that did not exit 0 crashed or was killed from outside: a broken run, whatever
    its results say."""
    reasons = collections.Counter(t.get("stoppedReason", "")[:70] for step in tasks.values() for t in step)
    reasons.pop(CLEAN_EXIT, None)
    if reasons:
        raise YunpipeError(f"broken run: workers stopped with {dict(reasons.most_common(3))}")




def check_records(reader: Reader, summary: PipelineSummary, files: list[Path], steps: int, accounting: bool) -> int:
    """With accounting, each file's final job record in each step, single or in a page (a fast run
    that lost its records measures nothing); without, none at all. Returns the number of records."""
    ended = sum(pipeline_runs.ended_count(reader, summary, run) for run in pipeline_runs.list_runs(reader, summary))
    expected = len(files) * steps if accounting else 0
    if ended != expected:
        raise YunpipeError(f"broken run: {ended} job records, expected {expected}")
    return ended


def run_pipeline(steps: int, concurrency: int, files_per_task: int | None, references: list[str], work: Path,
                 files: list[Path], accounting: bool = True) -> dict:
    # A pipeline without accounting has a name of its own: redeployed under one name, alternating
    # settings, a run was seen working with the other setting's workers (a local cloud's state
    # outlives it in this process).
    name = PIPELINE if accounting else f"{PIPELINE}-off"
    rss_at_start = benchlib.reset_peak_rss()
    # Scheduled top-ups every 5 s instead of 5 min, as in the demo.
    with cloud.LocalCloud(port=0, schedule_speedup=60) as local:
        demo.run("setup-pipe", "--local", "-f", str(benchlib.write_workflow(
            work, name, "sequence_run", workflow_steps(references, concurrency, files_per_task), IDLE_SECONDS,
            accounting=accounting)))
        summary = require_summary(name)
        demo.say(f"uploading {len(files)} files; listing the output bucket every {dropper.POLL_SECONDS} s, from another process")
        started, dropped, seen = watch_results(local.endpoint_url, summary, files)
        aws = open_aws(demo.LOCAL, summary.region)
        s3 = aws.client("s3")
        verified = verify(lambda key: s3.get_object(Bucket=summary.output_bucket, Key=key)["Body"].read(),
                          files, steps, "pipeline")
        demo.say("all results correct; waiting for the workers to go idle and exit")
        reader = Reader(aws)
        wait_for_workers(reader, summary)
        tasks = worker_tasks(aws, summary)
        check_clean_exits(tasks)
        job_records = check_records(reader, summary, files, steps, accounting)
        # Before clean-up, whose own calls are not the run's.
        peak_rss = benchlib.peak_rss_since_reset_mib()
        demo.run("clean-up", "--local", "--purge", name)
    seconds = max(seen.values()) - started
    latencies = [seen[k] - dropped[k] for k in dropped]
    containers = {step: len(described) for step, described in tasks.items()}
    return {
        "seconds": round(seconds, 2),
        "files_per_second": round(len(files) / seconds, 2),
        "upload_seconds": round(max(dropped.values()) - started, 2),
        "latency_p50_seconds": round(percentile(latencies, 50), 2),
        "latency_p95_seconds": round(percentile(latencies, 95), 2),
        "latency_max_seconds": round(max(latencies), 2),
        "containers_per_step": containers,
        "containers_per_100_files": round(100 * sum(containers.values()) / len(files), 1),
        "verified_results": verified,
        "job_records": job_records,
        "rss_at_start_mib": rss_at_start,
        "peak_rss_mib": peak_rss,
    }


def median_run(runs: list[dict]) -> dict:
    """The run with the median files/s (the lower middle one of an even count), with every run's
    files/s beside it."""
    ordered = sorted(runs, key=lambda run: run["files_per_second"])
    return {**ordered[(len(ordered) - 1) // 2], "files_per_second_runs": [run["files_per_second"] for run in runs]}




def report(doc: dict) -> None:
    p, n, f = doc["pipeline"], doc["naive"], doc["floor"]
    caps = [(f"  cap {cap}, a task per file: files/s (runs), containers per 100 files",
             f"{c['files_per_second']}  {c['files_per_second_runs']}, {c['containers_per_100_files']}")
            for cap, c in doc["caps"].items()]
    if caps:
        caps.append(("default / best cap", f"{doc['default_vs_best_cap']}x  (best: cap {doc['best_cap']})"))
    rows = [
        ("files x steps", f"{doc['parameters']['files']} x {doc['parameters']['steps']}"),
        ("pipeline files/s (first upload -> last result), median (runs)",
         f"{p['files_per_second']}  ({p['seconds']} s)  {p['files_per_second_runs']}"),
        ("upload of the files (part of the above)", f"{p['upload_seconds']} s"),
        ("drop-to-result latency p50 / p95 / max", f"{p['latency_p50_seconds']} / {p['latency_p95_seconds']} / {p['latency_max_seconds']} s"),
        ("containers started per 100 files", f"{p['containers_per_100_files']}  {p['containers_per_step']}"),
        ("naive files/s (sequential docker run)", f"{n['files_per_second']}  ({n['docker_runs']} runs, {n['seconds']} s)"),
        ("pipeline / naive", f"{doc['speedup']}x"),
        *[(f"naive files/s, {parallel} files at once", f"{run['files_per_second']}  ({run['seconds']} s)")
          for parallel, run in doc["naive_parallel"].items()],
        ("pipeline / best parallel naive (target: at least 8)",
         f"{doc['vs_best_naive']}x  (best: {doc['best_naive_parallel']} at once)"),
        ("floor files/s (receive, get, put, delete; no container), median (runs)",
         f"{f['files_per_second']}  ({f['seconds']} s)  {f['files_per_second_runs']}; "
         f"latency p50 / p95 {f['latency_p50_seconds']} / {f['latency_p95_seconds']} s"),
        ("pipeline / floor (target: at least 0.5)", f"{doc['vs_floor']}"),
        *caps,
        ("peak RSS of this process", f"{doc['peak_rss_mib']} MiB"),
    ]
    benchlib.print_rows(rows)


def compare_accounting(args, references: list[str], work: Path, files: list[Path]) -> dict:
    """The defaults with accounting on and off, --rounds times each, each round starting with the
    other one."""
    runs: dict[str, list[dict]] = {"on": [], "off": []}
    for round_ in range(args.rounds):
        for setting in (("on", "off") if round_ % 2 == 0 else ("off", "on")):
            demo.say(f"round {round_ + 1}/{args.rounds}: accounting {setting}")
            runs[setting].append(run_pipeline(args.steps, args.concurrency, args.files_per_task, references, work, files,
                                              accounting=setting == "on"))
    on, off = median_run(runs["on"]), median_run(runs["off"])
    return {"accounting_on": on, "accounting_off": off,
            "on_vs_off": round(on["files_per_second"] / off["files_per_second"], 3)}


def report_accounting(doc: dict) -> None:
    on, off = doc["accounting_on"], doc["accounting_off"]
    benchlib.print_rows([
        ("files x steps", f"{doc['parameters']['files']} x {doc['parameters']['steps']}"),
        ("accounting on: files/s, median (runs); job records",
         f"{on['files_per_second']}  ({on['seconds']} s)  {on['files_per_second_runs']}; {on['job_records']}"),
        ("accounting off: files/s, median (runs)",
         f"{off['files_per_second']}  ({off['seconds']} s)  {off['files_per_second_runs']}"),
        ("on / off (target: at least 0.95)", f"{doc['on_vs_off']}"),
        ("drop-to-result latency p50 on / off", f"{on['latency_p50_seconds']} / {off['latency_p50_seconds']} s"),
        ("peak RSS of this process", f"{doc['peak_rss_mib']} MiB"),
    ])


def main(argv: list[str] | None = None) -> int:
    parser = benchlib.arguments(__doc__)
    parser.add_argument("--files", type=int, default=200, help="number of small files (default 200)")
    parser.add_argument("--steps", type=int, choices=(1, 2), default=2, help="1: uppercase; 2: uppercase -> checksum")
    parser.add_argument("--concurrency", type=int, default=10, help="most tasks per step (default 10, the workflow default)")
    parser.add_argument("--files-per-task", type=int, default=None,
                        help="waiting files per task started (default: the workflow default)")
    parser.add_argument("--caps", default="1,2,4",
                        help="hand-tuned caps to compare, comma-separated (default 1,2,4; '' for none)")
    parser.add_argument("--rounds", type=int, default=3,
                        help="runs of each configuration, reported by the median (default 3)")
    parser.add_argument("--floor-threads", type=int, default=FLOOR_THREADS,
                        help=f"the floor's threads per step (default {FLOOR_THREADS})")
    parser.add_argument("--sizes", default="",
                        help="scale instead: the defaults at each of these file counts, comma-separated (e.g. 200,2000)")
    parser.add_argument("--accounting-cost", action="store_true",
                        help="compare the defaults with accounting on and off instead of caps and naive")
    args = parser.parse_args(argv)
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    caps = [int(cap) for cap in args.caps.split(",") if cap.strip()]
    if args.accounting_cost:
        return main_accounting(args)
    if args.sizes:
        return main_scale(args, [int(size) for size in args.sizes.split(",") if size.strip()])
    with benchlib.bench() as bench:
        client, work = bench.client, bench.work
        registry = AlgorithmRegistry()
        references = [demo.wrap_algorithm(client, registry, spec)
                      for spec in (benchlib.UPPERCASE, benchlib.CHECKSUM)[:args.steps]]
        files = benchlib.write_samples(work / "samples", args.files)
        # Not counted: the process's first pipeline pays for imports, connections and a cold
        # page cache, which would otherwise count against whichever configuration runs first.
        demo.say(f"warm-up: {WARM_UP_FILES} files, not counted")
        run_pipeline(args.steps, args.concurrency, args.files_per_task, references, work, files[:WARM_UP_FILES])
        # None: the defaults; a number: that hand-tuned cap.
        configurations: list[int | None] = [None, *caps]
        runs: dict[int | None, list[dict]] = {c: [] for c in configurations}
        for round_ in range(args.rounds):
            # Each round starts one configuration later, so none always runs first.
            shift = round_ % len(configurations)
            for configuration in configurations[shift:] + configurations[:shift]:
                if configuration is None:
                    demo.say(f"round {round_ + 1}/{args.rounds}: the defaults")
                    run = run_pipeline(args.steps, args.concurrency, args.files_per_task, references, work, files)
                else:
                    demo.say(f"round {round_ + 1}/{args.rounds}: hand-tuned cap {configuration}: at most "
                             f"{configuration} task(s) per step, one started per waiting file")
                    run = run_pipeline(args.steps, configuration, 1, references, work, files)
                runs[configuration].append(run)
        pipeline = median_run(runs[None])
        by_cap = {str(cap): median_run(runs[cap]) for cap in caps}
        floor = median_run([run_floor(files, args.steps, args.floor_threads) for _ in range(args.rounds)])
        # After every local cloud has stopped: the naive runs have the machine to themselves.
        nproc = os.cpu_count() or 1
        naive = {str(p): run_naive(client, registry, references, work, files, args.steps, p) for p in (1, nproc, 2 * nproc)}
    best_naive = max(naive.values(), key=lambda run: run["files_per_second"])
    doc = {
        "benchmark": "e2e",
        "machine": bench.machine,
        "parameters": {"files": args.files, "steps": args.steps, "algorithms": references,
                       "concurrency": args.concurrency, "files_per_task": args.files_per_task, "caps": caps,
                       "rounds": args.rounds, "idle_seconds": IDLE_SECONDS, "poll_seconds": dropper.POLL_SECONDS,
                       "floor_threads": args.floor_threads},
        "pipeline": pipeline,
        "naive": naive["1"],
        "speedup": round(pipeline["files_per_second"] / naive["1"]["files_per_second"], 2),
        "naive_parallel": {p: run for p, run in naive.items() if p != "1"},
        "best_naive_parallel": best_naive["parallel"],
        "vs_best_naive": round(pipeline["files_per_second"] / best_naive["files_per_second"], 2),
        "floor": floor,
        "vs_floor": round(pipeline["files_per_second"] / floor["files_per_second"], 2),
        "caps": by_cap,
        "peak_rss_mib": benchlib.peak_rss_mib(),
    }
    if by_cap:
        best = max(by_cap, key=lambda cap: by_cap[cap]["files_per_second"])
        doc["best_cap"] = int(best)
        doc["default_vs_best_cap"] = round(pipeline["files_per_second"] / by_cap[best]["files_per_second"], 2)
    # Only a run with the defaults replaces e2e.json, the run bench/README.md reports.
    defaults = (args.files, args.steps, args.concurrency, args.files_per_task, caps, args.rounds, args.floor_threads) == (
        200, 2, 10, None, [1, 2, 4], 3, FLOOR_THREADS)
    name = "e2e" if defaults else f"e2e-{args.files}x{args.steps}-c{args.concurrency}"
    if args.files_per_task is not None:
        name += f"-f{args.files_per_task}"
    if args.rounds != 3:
        name += f"-r{args.rounds}"
    if args.floor_threads != FLOOR_THREADS:
        name += f"-t{args.floor_threads}"
    return benchlib.finish(name, doc, report)


def main_accounting(args) -> int:
    with benchlib.bench() as bench:
        registry = AlgorithmRegistry()
        references = [demo.wrap_algorithm(bench.client, registry, spec)
                      for spec in (benchlib.UPPERCASE, benchlib.CHECKSUM)[:args.steps]]
        files = benchlib.write_samples(bench.work / "samples", args.files)
        demo.say(f"warm-up: {WARM_UP_FILES} files, not counted")
        run_pipeline(args.steps, args.concurrency, args.files_per_task, references, bench.work, files[:WARM_UP_FILES])
        compared = compare_accounting(args, references, bench.work, files)
    doc = {
        "benchmark": "e2e-accounting",
        "machine": bench.machine,
        "parameters": {"files": args.files, "steps": args.steps, "algorithms": references,
                       "concurrency": args.concurrency, "files_per_task": args.files_per_task,
                       "rounds": args.rounds, "idle_seconds": IDLE_SECONDS, "poll_seconds": dropper.POLL_SECONDS},
        **compared,
        "peak_rss_mib": benchlib.peak_rss_mib(),
    }
    defaults = (args.files, args.steps, args.concurrency, args.files_per_task, args.rounds) == (200, 2, 10, None, 3)
    name = "e2e-accounting" if defaults else f"e2e-accounting-{args.files}x{args.steps}-r{args.rounds}"
    return benchlib.finish(name, doc, report_accounting)



def main_scale(args, sizes: list[int]) -> int:
    """The defaults at each size, --rounds times, sizes alternating in order each round; each size
    reported by its median run, with the largest size's figures over the smallest's."""
    if len(sizes) < 2 or min(sizes) < 1:
        raise SystemExit("bench/e2e.py: --sizes takes at least two file counts, e.g. 200,2000")
    with benchlib.bench() as bench:
        registry = AlgorithmRegistry()
        references = [demo.wrap_algorithm(bench.client, registry, spec)
                      for spec in (benchlib.UPPERCASE, benchlib.CHECKSUM)[:args.steps]]
        files = benchlib.write_samples(bench.work / "samples", max(sizes))
        demo.say(f"warm-up: {WARM_UP_FILES} files, not counted")
        run_pipeline(args.steps, args.concurrency, args.files_per_task, references, bench.work, files[:WARM_UP_FILES])
        runs: dict[int, list[dict]] = {size: [] for size in sizes}
        for round_ in range(args.rounds):
            order = sizes if round_ % 2 == 0 else sizes[::-1]
            for size in order:
                demo.say(f"round {round_ + 1}/{args.rounds}: {size} files, the defaults")
                runs[size].append(run_pipeline(args.steps, args.concurrency, args.files_per_task, references,
                                               bench.work, files[:size]))
    by_size = {str(size): median_run(runs[size]) for size in sizes}
    small, large = by_size[str(min(sizes))], by_size[str(max(sizes))]
    doc = {
        "benchmark": "e2e-scale",
        "machine": bench.machine,
        "parameters": {"sizes": sizes, "steps": args.steps, "algorithms": references,
                       "concurrency": args.concurrency, "files_per_task": args.files_per_task,
                       "rounds": args.rounds, "idle_seconds": IDLE_SECONDS, "poll_seconds": dropper.POLL_SECONDS},
        "sizes": by_size,
        # Targets (issue 26): files/s at least 0.9, p95 at most 2, peak memory under 1.5.
        "largest_vs_smallest": {
            "files_per_second": round(large["files_per_second"] / small["files_per_second"], 2),
            "latency_p95": round(large["latency_p95_seconds"] / small["latency_p95_seconds"], 2),
            "peak_rss": round(large["peak_rss_mib"] / small["peak_rss_mib"], 2),
        },
    }
    name = "e2e-scale" if (sizes, args.steps, args.concurrency, args.files_per_task, args.rounds) == (
        [200, 2000], 2, 10, None, 3) else f"e2e-scale-{'-'.join(map(str, sizes))}x{args.steps}-r{args.rounds}"
    return benchlib.finish(name, doc, report_scale)


def report_scale(doc: dict) -> None:
    rows = []
    for size, run in doc["sizes"].items():
        rows += [
            (f"{size} files: files/s, median (runs)", f"{run['files_per_second']}  ({run['seconds']} s)  "
                                                      f"{run['files_per_second_runs']}; upload {run['upload_seconds']} s"),
            (f"{size} files: latency p50 / p95 / max",
             f"{run['latency_p50_seconds']} / {run['latency_p95_seconds']} / {run['latency_max_seconds']} s"),
            (f"{size} files: containers per 100 files", f"{run['containers_per_100_files']}  {run['containers_per_step']}"),
            (f"{size} files: peak RSS of this process (local cloud)",
             f"{run['peak_rss_mib']} MiB (at start {run['rss_at_start_mib']})"),
        ]
    ratio = doc["largest_vs_smallest"]
    rows.append(("largest / smallest: files/s (>= 0.9), p95 (<= 2), peak RSS (< 1.5)",
                 f"{ratio['files_per_second']}, {ratio['latency_p95']}, {ratio['peak_rss']}"))
    benchlib.print_rows(rows)


if __name__ == "__main__":
    sys.exit(main())
