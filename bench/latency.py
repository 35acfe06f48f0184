"""Latency benchmark: one file on an idle one-step local pipeline (cold) and on one whose
worker is still up (warm), with where a cold start's time goes.

    .venv/bin/python bench/latency.py [--runs 5] [--cpu VCPU]

Pipeline: examples/uppercase, wrapped with `wrap --local`, deployed with setup-pipe on an
in-process LocalCloud. Each round puts one file when no worker runs (cold), waits for its
result, then at once puts another while that worker idles (warm). The result is looked for
with HeadObject every 10 ms. Every result is checked. Figures go to stdout and
bench/results/latency.json (latency-<runs>[-cpu<VCPU>].json when not run with the defaults);
see bench/README.md. --cpu sizes the step's tasks (the algorithm asks 0.25 vCPU, Fargate's
smallest, whose hard CPU limit the local cloud applies as Docker's --cpus).
"""
import re
import statistics
import sys
import threading
import time

import benchlib

from yunpipe.aws.location import open_aws
from yunpipe.aws.reader import Reader
from yunpipe.commands import demo
from yunpipe.engine.state import PipelineSummary, require_summary
from yunpipe.errors import YunpipeError
from yunpipe.local import cloud, moto_patches
from yunpipe.local.ecs_runner import LABEL
from yunpipe.operations import status as pipeline_status
from yunpipe.registry import AlgorithmRegistry
from yunpipe.wrapper import images

PIPELINE = "bench-latency"
POLL_SECONDS = 0.01
# A warm file must find the worker still up; a cold one must find it gone: workers exit after
# this long without work, and each round waits for that before its cold file.
IDLE_SECONDS = 3
WAIT_SECONDS = 60
TEXT = b"the quick brown fox jumps over the lazy dog\n"


def step(reference: str, cpu: float | None) -> dict:
    fields: dict = {"name": reference}
    if cpu is not None:
        fields["cpu"] = cpu
    return fields


class DockerEvents(threading.Thread):
    """Records when the local cloud's containers are created and started (Docker's own clock)."""

    def __init__(self, client):
        super().__init__(daemon=True)
        self._stream = client.events(decode=True, filters={"label": LABEL, "type": "container"})
        self.seen: list[tuple[str, float]] = []

    def run(self) -> None:
        try:
            for event in self._stream:
                self.seen.append((event["Action"], event["timeNano"] / 1e9))
        except Exception:  # noqa: BLE001 - the stream is closed at the end
            pass

    def first(self, action: str, after: float) -> float | None:
        times = [t for a, t in self.seen if a == action and t >= after]
        return min(times) if times else None

    def close(self) -> None:
        self._stream.close()


class RunTaskClock:
    """When moto's ECS accepted each RunTask (the local cloud runs in this process, and moto's
    tasks carry no createdAt); observed through yunpipe.local.moto_patches.run_task_observed."""

    def __init__(self) -> None:
        self.times: list[float] = []

    def tick(self) -> None:
        self.times.append(time.time())

    def first(self, after: float) -> float | None:
        times = [t for t in self.times if t >= after]
        return min(times) if times else None


def running_tasks(ecs, summary: PipelineSummary) -> list[str]:
    return ecs.list_tasks(cluster=summary.cluster, desiredStatus="RUNNING")["taskArns"]


def wait_until(predicate, what: str) -> None:
    deadline = time.monotonic() + WAIT_SECONDS
    while not predicate():
        if time.monotonic() > deadline:
            raise YunpipeError(f"broken run: {what} took over {WAIT_SECONDS} s")
        time.sleep(0.05)


def drop_and_wait(s3, summary: PipelineSummary, key: str) -> tuple[float, float]:
    """Put one file; returns when its put returned and when its result was first found."""
    s3.put_object(Bucket=summary.input_bucket, Key=key, Body=TEXT)
    dropped = time.time()
    deadline = time.monotonic() + WAIT_SECONDS
    while True:
        try:
            body = s3.get_object(Bucket=summary.output_bucket, Key=key)["Body"].read()
            found = time.time()
            break
        except s3.exceptions.NoSuchKey:
            if time.monotonic() > deadline:
                reader = Reader(open_aws(demo.LOCAL, summary.region))
                print(pipeline_status.render(summary, pipeline_status.collect(reader, summary)))
                raise YunpipeError(f"broken run: no result for {key} after {WAIT_SECONDS} s") from None
            time.sleep(POLL_SECONDS)
    if body != TEXT.upper():
        raise YunpipeError(f"broken run: wrong result for {key}: {body[:60]!r}")
    return dropped, found


def worker_log_times(logs, ecs, summary: PipelineSummary, task_arn: str) -> dict[str, float]:
    """When the worker's first line and its job's `ok` line were written (from the log pump's
    copy of Docker's timestamps), and the CPU the worker's start took (its first line says)."""
    definition = ecs.describe_tasks(cluster=summary.cluster, tasks=[task_arn])["tasks"][0]
    container = ecs.describe_task_definition(taskDefinition=definition["taskDefinitionArn"])[
        "taskDefinition"]["containerDefinitions"][0]
    options = container["logConfiguration"]["options"]
    stream = f"{options['awslogs-stream-prefix']}/{container['name']}/{task_arn.rsplit('/', 1)[-1]}"
    events = logs.get_log_events(logGroupName=options["awslogs-group"], logStreamName=stream,
                                 startFromHead=True)["events"]
    times = {}
    for event in events:
        if "worker started" in event["message"]:
            times.setdefault("worker_started", event["timestamp"] / 1000)
            cpu = re.search(r" start_cpu=([0-9.]+)s", event["message"])
            if cpu:
                times.setdefault("start_cpu", float(cpu[1]))
        if " ok key=" in event["message"]:
            times.setdefault("job_done", event["timestamp"] / 1000)
    return times


def cold_round(aws, summary: PipelineSummary, events: DockerEvents, clock: RunTaskClock, key: str) -> dict:
    ecs, s3, logs = aws.client("ecs"), aws.client("s3"), aws.client("logs")
    wait_until(lambda: not running_tasks(ecs, summary), "the idle worker's exit")
    dropped, found = drop_and_wait(s3, summary, key)
    tasks = running_tasks(ecs, summary)
    if len(tasks) != 1:
        raise YunpipeError(f"broken run: {len(tasks)} workers for one cold file")
    marks = {"task_created": clock.first(dropped),
             "container_created": events.first("create", dropped),
             "container_started": events.first("start", dropped)}
    # The log pump copies lines about once a second; wait for the job's line.
    deadline = time.monotonic() + 10
    while "job_done" not in (found_logs := worker_log_times(logs, ecs, summary, tasks[0])):
        if time.monotonic() > deadline:
            break
        time.sleep(0.2)
    start_cpu = found_logs.pop("start_cpu", None)
    marks.update(found_logs)
    phases = {}
    previous = dropped
    for name in ("task_created", "container_created", "container_started", "worker_started", "job_done"):
        if marks.get(name) is not None:
            phases[name] = round(marks[name] - previous, 3)
            previous = marks[name]
    phases["result_found"] = round(found - previous, 3)
    return {"seconds": round(found - dropped, 3), "phases": phases, "start_cpu_seconds": start_cpu}


def run(reference: str, work, runs: int, cpu: float | None) -> dict:
    client = images.docker_client()
    events = DockerEvents(client)
    events.start()
    clock = RunTaskClock()
    cold, warm = [], []
    try:
        with moto_patches.run_task_observed(clock.tick), cloud.LocalCloud(port=0, schedule_speedup=60):
            demo.run("setup-pipe", "--local", "-f", str(benchlib.write_workflow(work, PIPELINE, "single_run", [step(reference, cpu)], IDLE_SECONDS)))
            summary = require_summary(PIPELINE)
            aws = open_aws(demo.LOCAL, summary.region)
            s3 = aws.client("s3")
            # A first file wakes everything up (imports, connections, the image's page cache);
            # it is not counted.
            drop_and_wait(s3, summary, "warm-up.txt")
            for index in range(runs):
                cold.append(cold_round(aws, summary, events, clock, f"cold-{index}.txt"))
                dropped, found = drop_and_wait(s3, summary, f"warm-{index}.txt")
                warm.append(round(found - dropped, 3))
                demo.say(f"round {index + 1}: cold {cold[-1]['seconds']} s, warm {warm[-1]} s")
            demo.run("clean-up", "--local", "--purge", PIPELINE)
    finally:
        events.close()
    cold_seconds = [c["seconds"] for c in cold]
    phase_names = list(cold[0]["phases"])
    return {
        "cold_median_seconds": round(statistics.median(cold_seconds), 3),
        "cold_min_seconds": min(cold_seconds),
        "cold_max_seconds": max(cold_seconds),
        "cold_phase_medians": {name: round(statistics.median(c["phases"].get(name, 0) for c in cold), 3)
                               for name in phase_names},
        # None when no round found the worker's first line.
        "cold_start_cpu_median_seconds": round(statistics.median(cpus), 3) if (cpus := [
            c["start_cpu_seconds"] for c in cold if c["start_cpu_seconds"] is not None]) else None,
        "warm_median_seconds": round(statistics.median(warm), 3),
        "warm_min_seconds": min(warm),
        "warm_max_seconds": max(warm),
        "cold": cold,
        "warm": warm,
    }


PHASES = {
    "task_created": "put returned -> task created (S3 event, launcher, RunTask)",
    "container_created": "-> container created (ECS runner notices, describes, creates)",
    "container_started": "-> container started",
    "worker_started": "-> worker's first line (interpreter, imports, clients)",
    "job_done": "-> job done (receive, get, command, put, delete)",
    "result_found": "-> result found by this benchmark",
}
START_CPU = "the worker's CPU from its start to its first line"


def report(doc: dict) -> None:
    r = doc["latency"]
    print(f"  cold (no worker up)  median {r['cold_median_seconds']} s  "
          f"(min {r['cold_min_seconds']}, max {r['cold_max_seconds']})")
    for name, seconds in r["cold_phase_medians"].items():
        print(f"    {PHASES[name]:<62} {seconds:.3f} s")
    if r["cold_start_cpu_median_seconds"] is not None:
        print(f"    {START_CPU:<62} {r['cold_start_cpu_median_seconds']:.3f} s")
    print(f"  warm (worker idling) median {r['warm_median_seconds']} s  "
          f"(min {r['warm_min_seconds']}, max {r['warm_max_seconds']})")
    print(f"  peak RSS of this process {doc['peak_rss_mib']} MiB")


def main(argv: list[str] | None = None) -> int:
    parser = benchlib.arguments(__doc__)
    parser.add_argument("--runs", type=int, default=5, help="cold and warm files each (default 5)")
    parser.add_argument("--cpu", type=float, default=None, help="vCPUs of the step's tasks (default: the algorithm's 0.25)")
    args = parser.parse_args(argv)
    with benchlib.bench() as bench:
        reference = demo.wrap_algorithm(bench.client, AlgorithmRegistry(), benchlib.UPPERCASE)
        latency = run(reference, bench.work, args.runs, args.cpu)
    doc = {
        "benchmark": "latency",
        "machine": bench.machine,
        "parameters": {"runs": args.runs, "cpu": args.cpu, "algorithm": reference, "idle_seconds": IDLE_SECONDS,
                       "poll_seconds": POLL_SECONDS},
        "latency": latency,
        "peak_rss_mib": benchlib.peak_rss_mib(),
    }
    name = "latency" if (args.runs, args.cpu) == (5, None) else f"latency-{args.runs}"
    if args.cpu is not None:
        name += f"-cpu{args.cpu:g}"
    return benchlib.finish(name, doc, report)


if __name__ == "__main__":
    sys.exit(main())
