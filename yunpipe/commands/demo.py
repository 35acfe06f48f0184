"""`yunpipe demo`: the whole flow on the local cloud, from wrap to clean-up.

1. build the two example algorithm containers (examples/uppercase, examples/wordcount);
2. wrap them (reusing the recorded version when nothing changed);
3. start the local cloud (or use the one `yunpipe local up` runs);
4. setup-pipe a 2-step sequence_run: uppercase -> wordcount;
5. upload a folder of sample files, wait with a live count, print each result and its latency;
6. clean-up --purge (--keep: the pipeline stays, on a local cloud that outlives the demo), and
   the command that opens the dashboard on it.
"""
import argparse
import io
import json
import random
import sys
import time
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from tqdm import tqdm

from yunpipe import cli, paths
from yunpipe.aws.location import AwsOptions, describe, open_aws
from yunpipe.aws.reader import Reader
from yunpipe.engine.state import PipelineState, PipelineSummary, require_summary
from yunpipe.errors import InputError, YunpipeError
from yunpipe.local import cloud
from yunpipe.operations import status as pipeline_status
from yunpipe.registry import AlgorithmRegistry
from yunpipe.specs.algorithm import load_algorithm
from yunpipe.wrapper import images

PIPELINE = "demo"
# The demo's name when a pipeline called demo lives elsewhere (the user's own, on AWS), which the
# demo must never touch: setup-pipe would refuse to deploy over it anyway.
FALLBACK_PIPELINE = "demo-local"
EXAMPLES = ("uppercase", "wordcount")
BASE_IMAGE = "yunpipe/base:bookworm"
# Longest wait for the results; the demo's files take seconds, this only bounds a broken run.
WAIT_SECONDS = 600
# Scheduled re-runs every 5 s instead of 5 min: the demo should not wait for a worker.
SCHEDULE_SPEEDUP = 60
# The AWS options of a command run with --local.
LOCAL = AwsOptions(local=True)
WORDS = ("data", "cloud", "pipeline", "queue", "bucket", "container", "result", "input", "task", "worker",
         "algorithm", "image", "event", "step", "message", "research", "analysis", "sample", "file", "yunpipe")


@dataclass(frozen=True)
class Result:
    key: str
    location: str
    seconds: float


def say(message: str) -> None:
    print(f"==> {message}", flush=True)


def run(*argv: str) -> None:
    """One yunpipe command, exactly as a user types it; a failure stops the demo."""
    print(f"$ yunpipe {' '.join(argv)}", flush=True)
    status = cli.main(list(argv))
    if status:
        raise YunpipeError(f"`yunpipe {' '.join(argv)}` exited with status {status}")


def example_dir(name: str) -> Path:
    return Path(str(resources.files("yunpipe.examples").joinpath(name)))


def wrap_example(client: Any, registry: AlgorithmRegistry, name: str) -> str:
    return wrap_algorithm(client, registry, example_dir(name) / f"{name}.json")


def wrap_algorithm(client: Any, registry: AlgorithmRegistry, spec_file: Path) -> str:
    """Build the developer's container (the Dockerfile next to `spec_file`), then wrap it (wrap
    records nothing new when that is what its latest version holds); returns the NAME@VERSION."""
    spec = load_algorithm(spec_file)
    say(f"building the algorithm developer's container {spec.container_name}")
    # Its build log is noise here; a failing build still raises with the failing step's output.
    images.build_image(client, spec_file.parent, spec.container_name, out=io.StringIO())
    run("wrap", "--local", "--yes", "-f", str(spec_file))
    recorded = registry.get(spec.name)
    if recorded is None:
        raise YunpipeError(f"wrap recorded no version of {spec.name}")
    return recorded.reference


def pipeline_name() -> str:
    """PIPELINE, unless a pipeline of that name is recorded somewhere other than the local cloud
    (one recorded before yunpipe kept places counts as elsewhere: it may be on AWS)."""
    for name in (PIPELINE, FALLBACK_PIPELINE):
        state = PipelineState.load(name)
        if not state.exists or _recorded_location(state).get("cloud") == "local":
            if name != PIPELINE:
                recorded = _recorded_location(PipelineState.load(PIPELINE))
                where = describe(recorded) if recorded else "a place not recorded (an older yunpipe)"
                say(f"a pipeline named {PIPELINE} lives in {where}; the demo deploys {name} instead and leaves it alone")
            return name
    raise InputError("yunpipe demo", "", f"pipelines '{PIPELINE}' and '{FALLBACK_PIPELINE}' both live elsewhere than "
                     f"the local cloud; clean-up one of them first")


def _recorded_location(state: PipelineState) -> dict:
    """Where the state says its pipeline lives; {} when it does not say."""
    return (state.summary.location if state.summary else None) or {}


def write_workflow(folder: Path, references: list[str], name: str = PIPELINE) -> Path:
    workflow = {
        "name": name,
        "input_s3_name": f"yunpipe-{name}-input",
        "output_s3_name": f"yunpipe-{name}-output",
        "region": "us-east-1",
        "idle_seconds": 10,
        "process": {
            "type": "sequence_run",
            "algorithms": [
                {"name": references[0]},
                {"name": references[1], "variables": {"MIN_LENGTH": 4}, "concurrency": 4},
            ],
        },
    }
    path = folder / "workflow.json"
    path.write_text(json.dumps(workflow, indent=2))
    return path


def write_samples(folder: Path, count: int) -> list[str]:
    """Deterministic little texts, so every run processes the same files."""
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*.txt"):
        old.unlink()
    rng = random.Random(2016)
    names = []
    for index in range(count):
        lines = [" ".join(rng.choice(WORDS) for _ in range(rng.randint(5, 12))) for _ in range(rng.randint(3, 8))]
        name = f"sample-{index:03d}.txt"
        (folder / name).write_text("\n".join(lines) + "\n")
        names.append(name)
    return names


def wait_for_results(summary: PipelineSummary, keys: list[str], uploaded_at: float) -> list[Result]:
    """Poll until every input has a result (or is dead-lettered), showing a live count."""
    aws = open_aws(LOCAL, summary.region)
    reader = Reader(aws)
    bucket = summary.output_bucket
    done: dict[str, float] = {}
    deadline = time.monotonic() + WAIT_SECONDS
    with tqdm(total=len(keys), desc="results", unit="file", file=sys.stdout, disable=None) as bar:
        while True:
            for obj in aws.pages("s3", "list_objects_v2", "Contents", Bucket=bucket):
                if obj["Key"] in keys and obj["Key"] not in done:
                    # Seen now: S3's LastModified has whole seconds only (moto), too coarse here.
                    done[obj["Key"]] = time.time()
                    bar.update(1)
            now = pipeline_status.collect(reader, summary, failures=0)
            bar.set_postfix(queued=now.queued, running=now.running, done=len(done), failed=now.dead, refresh=True)
            if len(done) + now.dead >= len(keys) or time.monotonic() > deadline:
                break
            time.sleep(0.5)
    if len(done) < len(keys):
        print(pipeline_status.render(summary, pipeline_status.collect(reader, summary)))
        raise YunpipeError(f"{len(keys) - len(done)} of {len(keys)} files have no result")
    return [Result(k, f"s3://{bucket}/{k}", max(0.0, done[k] - uploaded_at)) for k in sorted(done)]


def show_results(results: list[Result], summary: PipelineSummary) -> None:
    s3 = open_aws(LOCAL, summary.region).client("s3")
    first = results[0]
    body = s3.get_object(Bucket=summary.output_bucket, Key=first.key)["Body"].read().decode()
    say("results (seconds from the start of the upload to the result):")
    for result in results:
        print(f"  {result.location}  {result.seconds:5.1f} s")
    latencies = sorted(r.seconds for r in results)
    print(f"  {len(results)} files, median {latencies[len(latencies) // 2]:.1f} s, slowest {latencies[-1]:.1f} s")
    print(f"  first result, {first.key}:")
    for line in body.splitlines()[:5]:
        print(f"    {line}")


def run_demo(args: argparse.Namespace) -> int:
    started = time.monotonic()
    # First: a name clash is known without Docker or the local cloud.
    name = pipeline_name()
    client = images.docker_client()
    try:
        client.images.get(BASE_IMAGE)
    except Exception:  # noqa: BLE001 - docker.errors.ImageNotFound, or a daemon hiccup
        raise YunpipeError(f"the base image {BASE_IMAGE} is missing: run scripts/bootstrap.sh (make demo does)") from None
    registry = AlgorithmRegistry()
    references = [wrap_example(client, registry, name) for name in EXAMPLES]

    own_cloud = None
    if cloud.running_state() is None and args.keep:
        # The kept pipeline lives as long as its local cloud: one in the background outlives the demo.
        say("starting the local cloud in the background (`yunpipe local down` stops it)")
        try:
            cloud.start_detached(port=0, extra_args=("--schedule-speedup", str(SCHEDULE_SPEEDUP)))
        except (RuntimeError, TimeoutError) as exc:
            raise YunpipeError(str(exc)) from None
    elif cloud.running_state() is None:
        say("starting the local cloud (embedded AWS on 127.0.0.1, ECS tasks on Docker)")
        own_cloud = cloud.LocalCloud(port=0, schedule_speedup=SCHEDULE_SPEEDUP)
        own_cloud.start()
    try:
        work = paths.home() / "demo"
        work.mkdir(parents=True, exist_ok=True)
        workflow = write_workflow(work, references, name)
        run("setup-pipe", "--local", "-f", str(workflow))
        keys = write_samples(work / "samples", args.files)
        summary = require_summary(name)
        uploaded_at = time.time()
        run("upload", "--local", name, str(work / "samples"))
        say(f"waiting for {len(keys)} results (queued / running / done / failed)")
        results = wait_for_results(summary, keys, uploaded_at)
        show_results(results, summary)
        run("status", "--local", name)
        if not args.keep:
            run("clean-up", "--local", "--purge", name)
    finally:
        if own_cloud is not None:
            own_cloud.stop()
    say(f"demo done in {time.monotonic() - started:.0f} s")
    if args.keep:
        say(f"see it in the dashboard: yunpipe ui {name}")
    else:
        say(f"to see it in the dashboard, keep it: yunpipe demo --keep, then yunpipe ui {name}")
    return 0
