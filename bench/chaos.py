"""Chaos: files through a 2-step pipeline on the local cloud while it fails on purpose, against
the same run without faults.

    .venv/bin/python bench/chaos.py [--files 500] [--seed 1] [--kill 0.2] [--launcher-failures 0.1]
                                    [--s3-outage-seconds 3] [--s3-outage-at 15]

Pipeline: uppercase then checksum (as bench/e2e.py), wrapped with `wrap --local` as chaos-uppercase
and chaos-checksum (names of their own on a shared Docker daemon), set up with
setup-pipe on an in-process LocalCloud (schedules 60 times faster: a top-up every 5 s, Lambda's
retries after 1 and 2 s). After an uncounted warm-up of 20 files, the files go through once
without faults, then once with the local cloud's faults (yunpipe.local.faults): --kill of the
worker containers SIGKILLed at a random moment within their first IDLE_SECONDS, --launcher-failures
of the launcher's invocations failing before they send, and the emulator's S3 refusing everything
(503) for --s3-outage-seconds once, --s3-outage-at seconds after the upload began.

Each run must end with every result exactly once (the output keys are exactly the inputs'),
correct (sha256 of the upper-cased text), with its provenance (the result's and the intermediate
result's metadata name their pipeline, step, run, input and the input's ETag, which is the object it
came from), one final job record per file per step, nothing in a dead-letter queue or a
failed-events queue, and every worker that was not killed on purpose exited 0; anything else ends
the benchmark with an error instead of figures. Prints both runs' files/s, latency, containers,
the faults injected and the slowdown; writes bench/results/chaos.json (chaos-<files>.json with
other than 500 files). See bench/README.md.
"""
import collections
import contextlib
import functools
import hashlib
import io
import json
import math
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import benchlib
from botocore.exceptions import BotoCoreError, ClientError

from yunpipe import cli
from yunpipe.aws.location import open_aws
from yunpipe.commands import demo
from yunpipe.engine.state import PipelineSummary, require_summary
from yunpipe.errors import YunpipeError
from yunpipe.local import cloud
from yunpipe.local.faults import FaultCounts, FaultPlan
from yunpipe.registry import AlgorithmRegistry
from yunpipe.runtime.accounting.records import DONE_OUTCOMES, page_records
from yunpipe.specs.algorithm import load_algorithm
from yunpipe.wrapper import images

PIPELINE = "bench-chaos"
POLL_SECONDS = 0.25
# Workers exit after their queue stayed empty this long; a doomed worker is killed within it, so
# it is still there to be killed (a worker lives at least this long).
IDLE_SECONDS = 10
# A killed worker's files come back to its queue this long after its last visibility extension
# (the worker extends every half of it); the same in both runs.
VISIBILITY_SECONDS = 15
# Bounds a broken run only.
WAIT_SECONDS = 600
WARM_UP_FILES = 20
CLEAN_EXIT = "Essential container exited with code 0"
KILLED_EXIT = "Essential container exited with code 137"
# Puts the upload retries itself through an S3 outage (after botocore's own retries).
UPLOAD_TRIES = 60


def expected_result(text: bytes) -> bytes:
    """uppercase then checksum, computed without any container."""
    return hashlib.sha256(text.upper()).hexdigest().encode() + b"\n"


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def retried(call, what: str, tries: int = UPLOAD_TRIES):
    """`call()`, tried again every half second while S3 (or anything botocore reaches) fails."""
    for attempt in range(tries):
        try:
            return call()
        except (ClientError, BotoCoreError):
            if attempt == tries - 1:
                raise
            time.sleep(0.5)
    raise YunpipeError(f"{what}: no tries")


def upload(s3, bucket: str, files: list[Path], dropped: dict[str, float]) -> None:
    """Put the files one by one, as a user's script would: a put that fails is put again."""
    for path in files:
        retried(functools.partial(s3.put_object, Bucket=bucket, Key=path.name, Body=path.read_bytes()),
                f"put {path.name}")
        dropped[path.name] = time.time()


def watch(summary: PipelineSummary, files: list[Path]) -> tuple[float, dict[str, float], dict[str, float]]:
    """Upload while listing the output bucket; returns the start, each key's drop and first listing."""
    aws = open_aws(demo.LOCAL, summary.region)
    s3_upload = open_aws(demo.LOCAL, summary.region).client("s3")
    keys = {f.name for f in files}
    dropped: dict[str, float] = {}
    seen: dict[str, float] = {}
    started = time.time()
    deadline = time.monotonic() + WAIT_SECONDS
    with ThreadPoolExecutor(1) as pool:
        uploading = pool.submit(upload, s3_upload, summary.input_bucket, files, dropped)
        while len(seen) < len(keys):
            if uploading.done():
                uploading.result()
            if time.monotonic() > deadline:
                raise YunpipeError(f"broken run: {len(seen)} of {len(keys)} results after {WAIT_SECONDS} s")
            try:
                listed = [o["Key"] for o in aws.pages("s3", "list_objects_v2", "Contents", Bucket=summary.output_bucket)]
            except (ClientError, BotoCoreError):
                listed = []  # S3 is out: look again at the next poll
            now = time.time()
            for key in listed:
                seen.setdefault(key, now)
            time.sleep(POLL_SECONDS)
        uploading.result()
    return started, dropped, seen


def check_results(s3, summary: PipelineSummary, files: list[Path]) -> int:
    """Exactly once, correct, with provenance (see the module docstring); returns how many."""
    first, last = summary.steps
    listed = [o["Key"] for page in s3.get_paginator("list_objects_v2").paginate(Bucket=summary.output_bucket)
              for o in page.get("Contents", [])]
    counted = collections.Counter(listed)
    expected = {f.name for f in files}
    if set(counted) != expected or max(counted.values()) != 1:
        raise YunpipeError(f"broken run: {len(set(counted) - expected)} unexpected and "
                           f"{len(expected - set(counted))} missing result keys")
    problems = []
    for path in files:
        key, text = path.name, path.read_bytes()
        result = s3.get_object(Bucket=last.output_bucket, Key=key)
        middle = s3.head_object(Bucket=first.output_bucket, Key=key)
        if result["Body"].read() != expected_result(text):
            problems.append(f"{key}: wrong content")
        for obj, step, source, source_etag in (
                (result, last, f"s3://{last.input_bucket}/{key}", middle["ETag"]),
                (middle, first, f"s3://{first.input_bucket}/{key}", hashlib.md5(text).hexdigest())):
            meta = obj["Metadata"]
            wanted = {"yunpipe-pipeline": summary.pipeline, "yunpipe-step": step.name, "yunpipe-input": source,
                      "yunpipe-input-etag": source_etag.strip('"')}
            wrong = {name: meta.get(name) for name, value in wanted.items() if meta.get(name, "").strip('"') != value}
            if not meta.get("yunpipe-run"):
                wrong["yunpipe-run"] = None
            if wrong:
                problems.append(f"{key} ({step.name}): provenance {wrong}")
    if problems:
        raise YunpipeError(f"broken run: {len(problems)} problems, e.g. {problems[:3]}")
    return len(files)


def check_queues(sqs, summary: PipelineSummary) -> None:
    """No dead letter (nothing here is poison), and every failed launcher event recovered."""
    names = [q for step in summary.steps for q in (step.dead_letter_queue, step.failed_events_queue)]
    for name in names:
        url = sqs.get_queue_url(QueueName=name)["QueueUrl"]
        attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=[
            "ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"])["Attributes"]
        count = sum(int(value) for value in attributes.values())
        if count:
            raise YunpipeError(f"broken run: {count} message(s) in {name}")


def check_records(s3, summary: PipelineSummary, files: list[Path]) -> dict[str, int]:
    """A final job record per file per step, each ok or skipped, single (ends/) or in a page; a
    file redone after its worker was killed between writing its page and deleting its message has
    more than one (repeated_final_records). Returns the counts of files' final records, of those
    repeats, and of the tries before them (tries/: failed or interrupted ones)."""
    keys = [o["Key"] for page in s3.get_paginator("list_objects_v2").paginate(
        Bucket=summary.reports_bucket, Prefix=f"runs/{summary.pipeline}/") for o in page.get("Contents", [])]

    def read(key: str):
        return json.loads(s3.get_object(Bucket=summary.reports_bucket, Key=key)["Body"].read())

    finals = [read(key) for key in keys if "/ends/" in key]
    finals += [record for key in keys if "/pages/" in key for record in page_records(read(key))]
    ended = {f"{record.get('step')}/{record.get('key')}" for record in finals}
    wanted = {f"{step.name}/{path.name}" for step in summary.steps for path in files}
    missing = sorted(wanted - ended)
    if ended != wanted:
        raise YunpipeError(f"broken run: {len(ended)} files' final job records, expected {len(wanted)}; "
                           f"missing {missing[:5]}; what the workers logged of them:\n"
                           + "\n".join(worker_lines(summary, missing)))
    outcomes = collections.Counter(record.get("outcome") for record in finals)
    if set(outcomes) - set(DONE_OUTCOMES):
        raise YunpipeError(f"broken run: final job records' outcomes {dict(outcomes)}")
    return {"final_job_records": len(ended), "repeated_final_records": len(finals) - len(ended),
            "earlier_tries": sum("/tries/" in key for key in keys)}


def worker_lines(summary: PipelineSummary, records: list[str]) -> list[str]:
    """The workers' log lines that name the keys of `records` (step/key), or warn, or fail."""
    keys = {record.split("/", 1)[1] for record in records}
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        cli.main(["logs", summary.pipeline, "--local"])
    return [line for line in out.getvalue().splitlines()
            if any(key in line for key in keys) or " WARNING " in line or " ERROR " in line][-40:]


def stopped_tasks(aws, summary: PipelineSummary) -> collections.Counter:
    """Why each task of the pipeline stopped, once none runs."""
    deadline = time.monotonic() + IDLE_SECONDS + 120
    reasons: collections.Counter = collections.Counter()
    for step in summary.steps:
        while list(aws.pages("ecs", "list_tasks", "taskArns", cluster=summary.cluster, startedBy=step.started_by,
                             desiredStatus="RUNNING")):
            if time.monotonic() > deadline:
                raise YunpipeError("workers still running two minutes after the queues emptied")
            time.sleep(1)
        arns = list(aws.pages("ecs", "list_tasks", "taskArns", cluster=summary.cluster, startedBy=step.started_by,
                              desiredStatus="STOPPED"))
        for i in range(0, len(arns), 100):
            for task in aws.call("ecs", "describe_tasks", cluster=summary.cluster, tasks=arns[i:i + 100])["tasks"]:
                reasons[task.get("stoppedReason", "")[:70]] += 1
    return reasons


def wrap_own(client, registry: AlgorithmRegistry, spec_file: Path, work: Path) -> str:
    """The developer's image built, then wrapped as chaos-<name>: wrapped images are tagged by name
    on a Docker daemon that other runs (tests of other trees) may share, and this benchmark must
    run this tree's worker."""
    spec = load_algorithm(spec_file)
    images.build_image(client, spec_file.parent, spec.container_name, out=io.StringIO())
    document = json.loads(spec_file.read_text())
    document["name"] = f"chaos-{spec.name}"
    path = work / f"chaos-{spec.name}.json"
    path.write_text(json.dumps(document))
    demo.run("wrap", "--local", "--yes", "-f", str(path))
    return registry.get(document["name"]).reference


def run(references: list[str], work: Path, files: list[Path], plan: FaultPlan | None) -> dict:
    with cloud.LocalCloud(port=0, schedule_speedup=60) as local:
        demo.run("setup-pipe", "--local", "-f", str(benchlib.write_workflow(
            work, PIPELINE, "sequence_run", [{"name": ref} for ref in references], IDLE_SECONDS,
            visibility_timeout_seconds=VISIBILITY_SECONDS)))
        summary = require_summary(PIPELINE)
        aws = open_aws(demo.LOCAL, summary.region)
        with local.inject_faults(plan) if plan else contextlib.nullcontext(FaultCounts()) as counts:
            demo.say(f"uploading {len(files)} files" + (" under faults" if plan else ", no faults"))
            started, dropped, seen = watch(summary, files)
        s3 = aws.client("s3")
        verified = check_results(s3, summary, files)
        # Once every worker has exited: a done job's record may wait up to 2 s for its page.
        reasons = stopped_tasks(aws, summary)
        records = check_records(s3, summary, files)
        check_queues(aws.client("sqs"), summary)
        demo.say("every result once, correct, with its provenance; no dead letter")
        demo.run("clean-up", "--local", "--purge", PIPELINE)
    killed = reasons.pop(KILLED_EXIT, 0)
    clean = reasons.pop(CLEAN_EXIT, 0)
    if reasons or killed != counts.containers_killed:
        raise YunpipeError(f"broken run: {killed} workers exited 137 ({counts.containers_killed} killed on purpose), "
                           f"others stopped with {dict(reasons)}")
    seconds = max(seen.values()) - started
    latencies = [seen[k] - dropped[k] for k in dropped]
    outage = counts.s3_outage_window
    return {
        "seconds": round(seconds, 2),
        "files_per_second": round(len(files) / seconds, 2),
        "latency_p50_seconds": round(percentile(latencies, 50), 2),
        "latency_p95_seconds": round(percentile(latencies, 95), 2),
        "latency_max_seconds": round(max(latencies), 2),
        "containers": killed + clean,
        "verified_results": verified,
        **records,
        "faults": {
            "containers_killed": counts.containers_killed,
            "containers_seen": counts.containers_seen,
            "launcher_invocations": counts.launcher_invocations,
            "launcher_failures": counts.launcher_failures,
            "s3_refused": counts.s3_refused,
            "s3_outage_seconds": round(outage[1] - outage[0], 2) if outage else 0,
        },
    }


def report(doc: dict) -> None:
    calm, chaos = doc["without_faults"], doc["with_faults"]
    f = chaos["faults"]
    benchlib.print_rows([
        ("files x steps", f"{doc['parameters']['files']} x 2"),
        ("without faults: files/s, latency p50 / p95 / max, containers",
         f"{calm['files_per_second']}  ({calm['seconds']} s), {calm['latency_p50_seconds']} / "
         f"{calm['latency_p95_seconds']} / {calm['latency_max_seconds']} s, {calm['containers']}"),
        ("with faults: files/s, latency p50 / p95 / max, containers",
         f"{chaos['files_per_second']}  ({chaos['seconds']} s), {chaos['latency_p50_seconds']} / "
         f"{chaos['latency_p95_seconds']} / {chaos['latency_max_seconds']} s, {chaos['containers']}"),
        ("workers killed (of those seen)", f"{f['containers_killed']} of {f['containers_seen']}"),
        ("launcher invocations failed on purpose", f"{f['launcher_failures']} of {f['launcher_invocations']}"),
        ("S3 outage: seconds, requests refused", f"{f['s3_outage_seconds']}, {f['s3_refused']}"),
        ("tries before the final ones (failed or interrupted): without / with faults",
         f"{calm['earlier_tries']} / {chaos['earlier_tries']}"),
        ("results: lost, duplicated, wrong (both runs)", "0, 0, 0"),
        ("slowdown (files/s without / with faults)", f"{doc['slowdown']}x"),
        ("peak RSS of this process", f"{doc['peak_rss_mib']} MiB"),
    ])


def main(argv: list[str] | None = None) -> int:
    parser = benchlib.arguments(__doc__)
    parser.add_argument("--files", type=int, default=500, help="number of small files (default 500)")
    parser.add_argument("--seed", type=int, default=1, help="seed of the faults' random draws (default 1)")
    parser.add_argument("--kill", type=float, default=0.2, help="fraction of worker containers killed (default 0.2)")
    parser.add_argument("--launcher-failures", type=float, default=0.1,
                        help="fraction of launcher invocations that fail (default 0.1)")
    parser.add_argument("--s3-outage-seconds", type=float, default=3.0, help="length of the S3 outage (default 3)")
    parser.add_argument("--s3-outage-at", type=float, default=15.0,
                        help="seconds after the upload began that S3 stops answering (default 15)")
    args = parser.parse_args(argv)
    if args.files < 1:
        parser.error("--files must be at least 1")
    plan = FaultPlan(seed=args.seed, kill_fraction=args.kill, kill_within_seconds=IDLE_SECONDS,
                     launcher_failure_rate=args.launcher_failures, s3_outage_after_seconds=args.s3_outage_at,
                     s3_outage_seconds=args.s3_outage_seconds)
    with benchlib.bench() as bench:
        registry = AlgorithmRegistry()
        references = [wrap_own(bench.client, registry, spec, bench.work) for spec in (benchlib.UPPERCASE, benchlib.CHECKSUM)]
        files = [bench.work / "samples" / name for name in demo.write_samples(bench.work / "samples", args.files)]
        demo.say(f"warm-up: {WARM_UP_FILES} files, not counted")
        run(references, bench.work, files[:WARM_UP_FILES], None)
        calm = run(references, bench.work, files, None)
        chaos = run(references, bench.work, files, plan)
    doc = {
        "benchmark": "chaos",
        "machine": bench.machine,
        "parameters": {"files": args.files, "algorithms": references, "seed": args.seed, "kill": args.kill,
                       "launcher_failures": args.launcher_failures, "s3_outage_seconds": args.s3_outage_seconds,
                       "s3_outage_at": args.s3_outage_at, "idle_seconds": IDLE_SECONDS,
                       "visibility_seconds": VISIBILITY_SECONDS},
        "without_faults": calm,
        "with_faults": chaos,
        "slowdown": round(calm["files_per_second"] / chaos["files_per_second"], 2),
        "peak_rss_mib": benchlib.peak_rss_mib(),
    }
    return benchlib.finish("chaos" if args.files == 500 else f"chaos-{args.files}", doc, report)


if __name__ == "__main__":
    sys.exit(main())
