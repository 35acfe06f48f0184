"""One large file through a one-step pipeline on the local cloud, against a plain s3transfer
copy (what `aws s3 cp s3://in/x ./x && aws s3 cp ./x s3://out/x` does) on the same endpoint.

    .venv/bin/python bench/transfer.py [--size-mib 1024]

The step is `bench/algorithms/copy` (`cp $input $output`), so the pipeline's time is its
transfers plus its fixed costs (launcher, container start). Prints the figures and writes them
with the machine's facts to bench/results/transfer.json (transfer-<size>.json when not run with
the default size); see bench/README.md.
"""
import hashlib
import multiprocessing
import os
import re
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import benchlib
import boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config as BotoConfig

from yunpipe.aws.location import LOCAL_CREDENTIALS, open_aws
from yunpipe.commands import demo
from yunpipe.engine.state import PipelineSummary, require_summary
from yunpipe.errors import YunpipeError
from yunpipe.local import cloud
from yunpipe.registry import AlgorithmRegistry

PIPELINE = "bench-transfer"
COPY = benchlib.BENCH / "algorithms" / "copy" / "copy.json"
KEY = "large.bin"
PLAIN_BUCKET = "yunpipe-bench-transfer-plain"
POLL_SECONDS = 0.25
IDLE_SECONDS = 10
MIB = 1024 * 1024
# What `aws s3 cp` uses: 10 requests at once, 8 MiB parts and ranges, multipart from 8 MiB.
PLAIN = TransferConfig()
CLEAN_EXIT = "Essential container exited with code 0"
# The worker's own account of its transfers (worker.transfers._log_transfer) and of the whole job.
TRANSFER_LINE = re.compile(r"(downloaded|uploaded) s3://\S+ bytes=(\d+) in ([\d.]+)s")
OK_LINE = re.compile(r"ok key=\S+ results=\S+ duration=([\d.]+)s")


def write_input(path: Path, size_mib: int) -> str:
    """`size_mib` MiB of random bytes (no two MiB alike, so nothing compresses or dedupes);
    returns their sha256."""
    digest = hashlib.sha256()
    with open(path, "wb") as out:
        for _ in range(size_mib):
            block = os.urandom(MIB)
            digest.update(block)
            out.write(block)
    return digest.hexdigest()


def sha256_of_object(s3, bucket: str, key: str) -> str:
    """One streamed GetObject, hashed as it arrives (no local copy)."""
    digest = hashlib.sha256()
    body = s3.get_object(Bucket=bucket, Key=key)["Body"]
    for chunk in body.iter_chunks(MIB):
        digest.update(chunk)
    return digest.hexdigest()


def sha256_of_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(MIB):
            digest.update(chunk)
    return digest.hexdigest()


def wait_for_result(s3, bucket: str, key: str, deadline_seconds: float) -> float:
    """Poll HeadObject until the result exists (it appears whole, on CompleteMultipartUpload);
    returns when it was first seen."""
    deadline = time.monotonic() + deadline_seconds
    while True:
        try:
            s3.head_object(Bucket=bucket, Key=key)
            return time.time()
        except s3.exceptions.ClientError as exc:
            if exc.response.get("Error", {}).get("Code") not in ("404", "NoSuchKey", "NotFound"):
                raise
        if time.monotonic() > deadline:
            raise YunpipeError(f"broken run: no result s3://{bucket}/{key} after {deadline_seconds:.0f} s")
        time.sleep(POLL_SECONDS)


def worker_messages(aws, summary: PipelineSummary) -> list[str]:
    return [e["message"] for e in aws.pages("logs", "filter_log_events", "events", logGroupName=summary.log_group)]


def worker_report(aws, summary: PipelineSummary, size: int) -> dict:
    """Once no worker runs: their exits (all must be 0) and what their logs say the job's
    download, upload and whole run took."""
    step = summary.steps[0]
    # Room for the idle wait and for a second job on the same file, should one come.
    deadline = time.monotonic() + IDLE_SECONDS + 60 + 0.3 * size / MIB
    while list(aws.pages("ecs", "list_tasks", "taskArns", cluster=summary.cluster,
                         startedBy=step.started_by, desiredStatus="RUNNING")):
        if time.monotonic() > deadline:
            print("\n".join(worker_messages(aws, summary)))
            raise YunpipeError("the worker still runs long after its result appeared")
        time.sleep(1)
    arns = list(aws.pages("ecs", "list_tasks", "taskArns", cluster=summary.cluster,
                          startedBy=step.started_by, desiredStatus="STOPPED"))
    tasks = aws.call("ecs", "describe_tasks", cluster=summary.cluster, tasks=arns)["tasks"] if arns else []
    unclean = [t.get("stoppedReason", "") for t in tasks if t.get("stoppedReason") != CLEAN_EXIT]
    if not tasks or unclean:
        raise YunpipeError(f"broken run: {len(tasks)} worker(s), stopped with {unclean[:3]}")
    seconds: dict[str, float] = {}
    jobs = 0
    messages = worker_messages(aws, summary)
    print("\n".join(f"  worker: {m.strip()}" for m in messages if "key=" in m or TRANSFER_LINE.search(m)))
    for message in messages:
        if match := TRANSFER_LINE.search(message):
            seconds.setdefault(f"{match[1]}_seconds", float(match[3]))
        elif match := OK_LINE.search(message):
            jobs += 1
            seconds.setdefault("job_seconds", float(match[1]))
    if "job_seconds" in seconds and "downloaded_seconds" in seconds and "uploaded_seconds" in seconds:
        # What is left of the job: the cp itself, scratch set-up and clean-up.
        seconds["command_and_rest_seconds"] = round(
            seconds["job_seconds"] - seconds["downloaded_seconds"] - seconds["uploaded_seconds"], 2)
    # More than one job: the file was processed again (a duplicate event or a retry); the
    # figures are the first job's.
    return {"workers": len(tasks), "jobs": jobs, "worker_log": seconds}


def run_pipeline(s3, summary: PipelineSummary, source: Path, size: int) -> dict:
    demo.say(f"putting {size // MIB} MiB into s3://{summary.input_bucket}/{KEY} (the put starts the pipeline)")
    started = time.monotonic()
    s3.upload_file(str(source), summary.input_bucket, KEY, Config=PLAIN)
    put_seconds = time.monotonic() - started
    dropped = time.time()
    demo.say(f"waiting for s3://{summary.output_bucket}/{KEY}; HeadObject every {POLL_SECONDS} s")
    seen = wait_for_result(s3, summary.output_bucket, KEY, deadline_seconds=900 + size / MIB)
    seconds = seen - dropped
    return {"input_put_seconds": round(put_seconds, 2), "seconds": round(seconds, 2),
            "mib_per_second": round(size / MIB / seconds, 1)}


def run_plain(s3, bucket: str, local: Path, size: int) -> dict:
    """`aws s3 cp s3://in/x ./x && aws s3 cp ./x s3://out/x`, with the CLI's transfer settings."""
    started = time.monotonic()
    s3.download_file(bucket, KEY, str(local), Config=PLAIN)
    downloaded = time.monotonic()
    s3.upload_file(str(local), PLAIN_BUCKET, KEY, Config=PLAIN)
    finished = time.monotonic()
    seconds = finished - started
    return {"download_seconds": round(downloaded - started, 2), "upload_seconds": round(finished - downloaded, 2),
            "seconds": round(seconds, 2), "mib_per_second": round(size / MIB / seconds, 1)}


def run_plain_apart(endpoint: str, region: str, bucket: str, local: Path, size: int) -> dict:
    """run_plain in a process of its own (spawned: nothing of moto's inherited), as `aws s3 cp`
    runs: its client then does not share this process's GIL with the moto server."""
    client = boto3.client("s3", endpoint_url=endpoint, region_name=region,
                          config=BotoConfig(s3={"addressing_style": "path"}), **LOCAL_CREDENTIALS)
    return run_plain(client, bucket, local, size)


def plain_copies(s3, endpoint: str, region: str, bucket: str, work: Path, size: int, expected: str) -> dict:
    """The plain copy twice, each checked: in this process (which hosts moto) and apart."""
    s3.create_bucket(Bucket=PLAIN_BUCKET)
    local = work / "plain-copy.bin"
    results = {}
    for where in ("in_process", "own_process"):
        demo.say(f"plain s3transfer ({where.replace('_', ' ')}): download s3://{bucket}/{KEY}, "
                 f"upload it to s3://{PLAIN_BUCKET}/{KEY}")
        if where == "in_process":
            results[where] = run_plain(s3, bucket, local, size)
        else:
            with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
                results[where] = pool.submit(run_plain_apart, endpoint, region, bucket, local, size).result()
        if sha256_of_file(local) != expected:
            raise YunpipeError(f"broken run: the plain copy's download ({where}) differs from the input")
        # The check reads the copy back with one streamed GetObject, no ranges: its time shows
        # what moto's ranged GETs cost (each reads the whole object; see bench/README.md).
        started = time.monotonic()
        if sha256_of_object(s3, PLAIN_BUCKET, KEY) != expected:
            raise YunpipeError(f"broken run: the plain copy's upload ({where}) differs from the input")
        results[where]["check_single_get_seconds"] = round(time.monotonic() - started, 2)
        local.unlink()
        s3.delete_object(Bucket=PLAIN_BUCKET, Key=KEY)
    return results


def run(reference: str, work: Path, source: Path, expected: str, size: int) -> tuple[dict, dict]:
    with cloud.LocalCloud(port=0, schedule_speedup=60) as local_cloud:
        demo.run("setup-pipe", "--local", "-f", str(benchlib.write_workflow(
            work, PIPELINE, "sequence_run", [{"name": reference, "concurrency": 1}], IDLE_SECONDS)))
        summary = require_summary(PIPELINE)
        aws = open_aws(demo.LOCAL, summary.region)
        s3 = aws.client("s3")
        pipeline = run_pipeline(s3, summary, source, size)
        demo.say(f"result present {pipeline['seconds']} s after the put returned; checking its content, waiting for the worker to exit")
        if sha256_of_object(s3, summary.output_bucket, KEY) != expected:
            raise YunpipeError("broken run: the pipeline's result differs from the input")
        pipeline.update(worker_report(aws, summary, size))
        # The same endpoint, once the worker is gone (it would share the CPU).
        pipeline["endpoint"] = local_cloud.endpoint_url
        plain = plain_copies(s3, local_cloud.endpoint_url, summary.region, summary.input_bucket, work, size, expected)
        # No clean-up: the local cloud (with the 2-3 GiB it holds) and YUNPIPE_HOME are
        # thrown away whole; bench/deploy.py measures clean-up.
    return pipeline, plain


def report(doc: dict) -> None:
    p = doc["pipeline"]
    log = p["worker_log"]
    rows = [
        ("file", f"{doc['parameters']['size_mib']} MiB"),
        ("pipeline: put returned -> result present", f"{p['seconds']} s  ({p['mib_per_second']} MiB/s)"),
        ("  worker log: download / upload / whole job",
         f"{log.get('downloaded_seconds', '?')} / {log.get('uploaded_seconds', '?')} / {log.get('job_seconds', '?')} s"),
        ("  jobs the worker ran on the one file", f"{p['jobs']}"),
    ]
    for where, b in doc["plain"].items():
        rows += [
            (f"plain s3transfer, {where.replace('_', ' ')}: down + up",
             f"{b['seconds']} s  ({b['mib_per_second']} MiB/s; {b['download_seconds']} + {b['upload_seconds']} s)"),
            ("  plain / pipeline time (target >= 0.9)", f"{doc['ratio'][where]}"),
        ]
    rows += [
        ("input put (s3transfer upload)", f"{p['input_put_seconds']} s"),
        ("peak RSS of this process", f"{doc['peak_rss_mib']} MiB"),
    ]
    benchlib.print_rows(rows)


def main(argv: list[str] | None = None) -> int:
    parser = benchlib.arguments(__doc__)
    parser.add_argument("--size-mib", type=int, default=1024, help="size of the file in MiB (default 1024)")
    args = parser.parse_args(argv)
    if args.size_mib < 1:
        parser.error("--size-mib must be at least 1")
    size = args.size_mib * MIB
    with benchlib.bench() as bench:
        reference = demo.wrap_algorithm(bench.client, AlgorithmRegistry(), COPY)
        work = bench.work
        source = work / KEY
        demo.say(f"writing {args.size_mib} MiB of random bytes to {source}")
        expected = write_input(source, args.size_mib)
        pipeline, plain = run(reference, work, source, expected, size)
    doc = {
        "benchmark": "transfer",
        "machine": bench.machine,
        "parameters": {"size_mib": args.size_mib, "algorithm": reference, "poll_seconds": POLL_SECONDS,
                       "transfer_config": {"max_concurrency": PLAIN.max_concurrency,
                                           "multipart_chunksize": PLAIN.multipart_chunksize,
                                           "multipart_threshold": PLAIN.multipart_threshold}},
        "pipeline": pipeline,
        "plain": plain,
        "ratio": {where: round(b["seconds"] / pipeline["seconds"], 2) for where, b in plain.items()},
        "verified": True,
        "peak_rss_mib": benchlib.peak_rss_mib(),
    }
    name = "transfer" if args.size_mib == 1024 else f"transfer-{args.size_mib}"
    return benchlib.finish(name, doc, report)


if __name__ == "__main__":
    sys.exit(main())
