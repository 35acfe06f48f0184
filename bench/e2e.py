"""End-to-end benchmark: N small files through a local pipeline, against the naive way.

    .venv/bin/python bench/e2e.py [--files 200] [--steps 2] [--concurrency 10] [--files-per-task N]
                                  [--caps 1,2,4] [--rounds 3] [--accounting-cost]

Pipeline: uppercase (examples/) then checksum (tests/e2e/algorithms/), wrapped with
`wrap --local`, deployed with setup-pipe on an in-process LocalCloud; the files are put
into the input bucket one after another while the output bucket is listed every 0.25 s.
The same files then go through the pipeline again for each hand-tuned cap of --caps (at most
that many tasks per step, one task started per waiting file: the scaling before issue 11).
All of that --rounds times, each round in another order; each configuration is reported by its
median run, since one run of each differs from the next by +-15% on a shared 2-core machine.
Naive: the same developer images (unwrapped) on the same files, one `docker run` per file
per step, sequentially, through the Docker SDK. Every result of all is checked.
Figures go to stdout and bench/results/e2e.json (e2e-<files>x<steps>-c<concurrency>[-f<N>].json
when not run with the defaults); see bench/README.md.

--accounting-cost: the defaults with the workflow's accounting on and off instead (no caps, no
naive baseline), --rounds times each, alternating; prints both files/s and their ratio, and
writes bench/results/e2e-accounting.json. With accounting on, every job's record is checked too.
"""
import collections
import hashlib
import math
import shutil
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import benchlib

from yunpipe.aws.location import open_aws
from yunpipe.aws.reader import Reader
from yunpipe.commands import demo
from yunpipe.engine.state import PipelineSummary, require_summary
from yunpipe.errors import YunpipeError
from yunpipe.local import cloud
from yunpipe.operations import status as pipeline_status
from yunpipe.registry import AlgorithmRegistry
from yunpipe.runtime.worker.command import substitute

PIPELINE = "bench-e2e"
POLL_SECONDS = 0.25
# Dead letters are looked for this often while waiting (each look is several API calls).
STATUS_EVERY_SECONDS = 2.0
# Bounds a broken run only; a healthy one takes well under a minute.
WAIT_SECONDS = 300
# Workers exit after the queue stayed empty this long (as in the demo).
IDLE_SECONDS = 10
CLEAN_EXIT = "Essential container exited with code 0"
WARM_UP_FILES = 20


def expected_result(text: bytes, steps: int) -> bytes:
    """What the pipeline must produce, computed without any container."""
    upper = text.upper()  # `tr '[:lower:]' '[:upper:]'` on the ASCII samples
    if steps == 1:
        return upper
    return hashlib.sha256(upper).hexdigest().encode() + b"\n"


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def workflow_steps(references: list[str], concurrency: int, files_per_task: int | None) -> list[dict]:
    step: dict = {"concurrency": concurrency}
    if files_per_task is not None:
        step["files_per_task"] = files_per_task
    return [{"name": ref, **step} for ref in references]


def upload(s3, bucket: str, files: list[Path], finished: dict[str, float]) -> None:
    """Put the files one by one, noting when each put returned (its drop time)."""
    for path in files:
        s3.put_object(Bucket=bucket, Key=path.name, Body=path.read_bytes())
        finished[path.name] = time.time()


def watch_results(summary: PipelineSummary, files: list[Path]) -> tuple[float, dict[str, float], dict[str, float]]:
    """Upload while polling the output bucket; returns the start time, each key's drop time
    and the time its result was first listed."""
    aws = open_aws(demo.LOCAL, summary.region)
    reader = Reader(aws)
    # The upload has its own client: boto3 clients are not shared across threads here.
    s3_upload = open_aws(demo.LOCAL, summary.region).client("s3")
    keys = {f.name for f in files}
    dropped: dict[str, float] = {}
    seen: dict[str, float] = {}
    started = time.time()
    next_status = time.monotonic() + STATUS_EVERY_SECONDS
    deadline = time.monotonic() + WAIT_SECONDS
    with ThreadPoolExecutor(1) as pool:
        uploading = pool.submit(upload, s3_upload, summary.input_bucket, files, dropped)
        while len(seen) < len(keys):
            if uploading.done():
                uploading.result()  # re-raises a failed upload
            listed = [o["Key"] for o in aws.pages("s3", "list_objects_v2", "Contents", Bucket=summary.output_bucket)]
            now = time.time()
            for key in listed:
                seen.setdefault(key, now)
            if time.monotonic() >= next_status or time.monotonic() > deadline:
                next_status = time.monotonic() + STATUS_EVERY_SECONDS
                dead = pipeline_status.collect(reader, summary, failures=0).dead
                if dead or time.monotonic() > deadline:
                    print(pipeline_status.render(summary, pipeline_status.collect(reader, summary)))
                    raise YunpipeError(f"broken run: {len(seen)} of {len(keys)} results, {dead} dead-lettered")
            time.sleep(POLL_SECONDS)
        uploading.result()
    unexpected = set(seen) - keys
    if unexpected:
        raise YunpipeError(f"broken run: unexpected result keys {sorted(unexpected)[:5]}")
    return started, dropped, seen


def wait_for_workers(reader: Reader, summary: PipelineSummary) -> None:
    """Workers exit IDLE_SECONDS after their queue emptied; count containers only after that."""
    deadline = time.monotonic() + IDLE_SECONDS + 60
    while any(reader.pages("ecs", "list_tasks", "taskArns", cluster=summary.cluster,
                           startedBy=step.started_by, desiredStatus="RUNNING") for step in summary.steps):
        if time.monotonic() > deadline:
            raise YunpipeError("workers still running a minute after the queues emptied")
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


def verify(read, files: list[Path], steps: int, where: str) -> int:
    """Every result's content, so a broken run cannot report a fast number."""
    wrong = [f.name for f in files if read(f.name) != expected_result(f.read_bytes(), steps)]
    if wrong:
        raise YunpipeError(f"{where}: {len(wrong)} of {len(files)} results are wrong, e.g. {wrong[:3]}")
    return len(files)


def check_records(s3, summary: PipelineSummary, files: list[Path], steps: int, accounting: bool) -> int:
    """With accounting, each file's final job record in each step (a fast run that lost its
    records measures nothing); without, none at all. Returns the number of records."""
    keys = [o["Key"] for page in s3.get_paginator("list_objects_v2").paginate(
        Bucket=summary.reports_bucket, Prefix=f"runs/{summary.pipeline}/") for o in page.get("Contents", [])]
    ends = [key for key in keys if "/ends/" in key]
    expected = len(files) * steps if accounting else 0
    if len(ends) != expected:
        raise YunpipeError(f"broken run: {len(ends)} job records, expected {expected}")
    return len(ends)


def run_pipeline(steps: int, concurrency: int, files_per_task: int | None, references: list[str], work: Path,
                 files: list[Path], accounting: bool = True) -> dict:
    # A pipeline without accounting has a name of its own: redeployed under one name, alternating
    # settings, a run was seen working with the other setting's workers (a local cloud's state
    # outlives it in this process).
    name = PIPELINE if accounting else f"{PIPELINE}-off"
    # Scheduled top-ups every 5 s instead of 5 min, as in the demo.
    with cloud.LocalCloud(port=0, schedule_speedup=60):
        demo.run("setup-pipe", "--local", "-f", str(benchlib.write_workflow(
            work, name, "sequence_run", workflow_steps(references, concurrency, files_per_task), IDLE_SECONDS,
            accounting=accounting)))
        summary = require_summary(name)
        demo.say(f"uploading {len(files)} files; listing the output bucket every {POLL_SECONDS} s")
        started, dropped, seen = watch_results(summary, files)
        aws = open_aws(demo.LOCAL, summary.region)
        s3 = aws.client("s3")
        verified = verify(lambda key: s3.get_object(Bucket=summary.output_bucket, Key=key)["Body"].read(),
                          files, steps, "pipeline")
        demo.say("all results correct; waiting for the workers to go idle and exit")
        reader = Reader(aws)
        wait_for_workers(reader, summary)
        tasks = worker_tasks(aws, summary)
        check_clean_exits(tasks)
        job_records = check_records(s3, summary, files, steps, accounting)
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
    }


def median_run(runs: list[dict]) -> dict:
    """The run with the median files/s (the lower middle one of an even count), with every run's
    files/s beside it."""
    ordered = sorted(runs, key=lambda run: run["files_per_second"])
    return {**ordered[(len(ordered) - 1) // 2], "files_per_second_runs": [run["files_per_second"] for run in runs]}


def run_naive(client, registry: AlgorithmRegistry, references: list[str], work: Path, files: list[Path], steps: int) -> dict:
    """What a researcher scripts by hand: for each file, for each step, `docker run --rm -v`
    the developer's image with its run_command, waiting for each before the next."""
    specs = [registry.resolve(ref, "bench", "algorithm").spec for ref in references]
    root = work / "naive"
    shutil.copytree(files[0].parent, root / "step0")
    for index in range(1, steps + 1):
        (root / f"step{index}").mkdir()
    mount = {str(root): {"bind": "/bench", "mode": "rw"}}
    demo.say(f"naive baseline: {len(files) * steps} sequential docker runs")
    started = time.monotonic()
    for path in files:
        for index, spec in enumerate(specs, start=1):
            argv = substitute(spec.run_command, f"/bench/step{index - 1}/{path.name}", f"/bench/step{index}/{path.name}")
            client.containers.run(spec.container_name, argv, volumes=mount, remove=True)
    seconds = time.monotonic() - started
    verified = verify(lambda key: (root / f"step{steps}" / key).read_bytes(), files, steps, "naive")
    return {"docker_runs": len(files) * steps, "seconds": round(seconds, 2),
            "files_per_second": round(len(files) / seconds, 2), "verified_results": verified}


def report(doc: dict) -> None:
    p, n = doc["pipeline"], doc["naive"]
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
    parser.add_argument("--accounting-cost", action="store_true",
                        help="compare the defaults with accounting on and off instead of caps and naive")
    args = parser.parse_args(argv)
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    caps = [int(cap) for cap in args.caps.split(",") if cap.strip()]
    if args.accounting_cost:
        return main_accounting(args)
    with benchlib.bench() as bench:
        client, work = bench.client, bench.work
        registry = AlgorithmRegistry()
        references = [demo.wrap_algorithm(client, registry, spec)
                      for spec in (benchlib.UPPERCASE, benchlib.CHECKSUM)[:args.steps]]
        files = [work / "samples" / name for name in demo.write_samples(work / "samples", args.files)]
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
        naive = run_naive(client, registry, references, work, files, args.steps)
    doc = {
        "benchmark": "e2e",
        "machine": bench.machine,
        "parameters": {"files": args.files, "steps": args.steps, "algorithms": references,
                       "concurrency": args.concurrency, "files_per_task": args.files_per_task, "caps": caps,
                       "rounds": args.rounds, "idle_seconds": IDLE_SECONDS, "poll_seconds": POLL_SECONDS},
        "pipeline": pipeline,
        "naive": naive,
        "speedup": round(pipeline["files_per_second"] / naive["files_per_second"], 2),
        "caps": by_cap,
        "peak_rss_mib": benchlib.peak_rss_mib(),
    }
    if by_cap:
        best = max(by_cap, key=lambda cap: by_cap[cap]["files_per_second"])
        doc["best_cap"] = int(best)
        doc["default_vs_best_cap"] = round(pipeline["files_per_second"] / by_cap[best]["files_per_second"], 2)
    # Only a run with the defaults replaces e2e.json, the run bench/README.md reports.
    defaults = (args.files, args.steps, args.concurrency, args.files_per_task, caps, args.rounds) == (
        200, 2, 10, None, [1, 2, 4], 3)
    name = "e2e" if defaults else f"e2e-{args.files}x{args.steps}-c{args.concurrency}"
    if args.files_per_task is not None:
        name += f"-f{args.files_per_task}"
    if args.rounds != 3:
        name += f"-r{args.rounds}"
    return benchlib.finish(name, doc, report)


def main_accounting(args) -> int:
    with benchlib.bench() as bench:
        registry = AlgorithmRegistry()
        references = [demo.wrap_algorithm(bench.client, registry, spec)
                      for spec in (benchlib.UPPERCASE, benchlib.CHECKSUM)[:args.steps]]
        files = [bench.work / "samples" / name for name in demo.write_samples(bench.work / "samples", args.files)]
        demo.say(f"warm-up: {WARM_UP_FILES} files, not counted")
        run_pipeline(args.steps, args.concurrency, args.files_per_task, references, bench.work, files[:WARM_UP_FILES])
        compared = compare_accounting(args, references, bench.work, files)
    doc = {
        "benchmark": "e2e-accounting",
        "machine": bench.machine,
        "parameters": {"files": args.files, "steps": args.steps, "algorithms": references,
                       "concurrency": args.concurrency, "files_per_task": args.files_per_task,
                       "rounds": args.rounds, "idle_seconds": IDLE_SECONDS, "poll_seconds": POLL_SECONDS},
        **compared,
        "peak_rss_mib": benchlib.peak_rss_mib(),
    }
    defaults = (args.files, args.steps, args.concurrency, args.files_per_task, args.rounds) == (200, 2, 10, None, 3)
    name = "e2e-accounting" if defaults else f"e2e-accounting-{args.files}x{args.steps}-r{args.rounds}"
    return benchlib.finish(name, doc, report_accounting)


if __name__ == "__main__":
    sys.exit(main())
