"""`yunpipe calibrate ALGORITHM[@VERSION] --sample DIR`: run a sample through a one-step pipeline
on the local cloud at a few sizes, read what the workers measured (each job's record in the
reports bucket: wall time, CPU seconds, peak memory, outcome), and advise a size, parallelism
and files_per_task, with what N files would take and cost on AWS (calibrate_advice.py).

The sizes: one file at a time at 0.25, 0.5, 1, 2, 4 vCPU (those this machine has), each with the
most memory Fargate gives that CPU so a job's real peak shows; the sweep stops at the first CPU
that makes a file less than FASTER_ENOUGH times faster. Then, at the CPU chosen, 2 and 4 files at
once while it pays. Each size is a redeploy of the same pipeline (calibrate-<algorithm>, one task,
`force` so every file runs again, one try) and an upload of the sample as a run of its own; the
pipeline is removed at the end, whatever happens. Bad input (the algorithm, the sample, the
workflow to write, the region) is refused before anything runs.
"""
from __future__ import annotations

import contextlib
import json
import math
import os
import re
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from yunpipe.aws.facade import Aws
from yunpipe.aws.location import AwsOptions
from yunpipe.aws.reader import Reader
from yunpipe.engine.state import PipelineState, PipelineSummary, require_summary
from yunpipe.errors import InputError, YunpipeError
from yunpipe.operations import prices, runs
from yunpipe.operations.calibrate_advice import (
    FASTER_ENOUGH,
    MARGIN,
    Advice,
    Projection,
    Trial,
    choose_cpu,
    largest_memory,
    project,
    recommend,
    task_memory,
)
from yunpipe.operations.deploy import CleanUpOptions, DeployOptions, apply_clean_up, deploy, plan_clean_up
from yunpipe.operations.reach import reach
from yunpipe.operations.transfer import UploadOptions, upload
from yunpipe.registry import AlgorithmRecord, AlgorithmRegistry
from yunpipe.runtime import contract
from yunpipe.runtime.accounting import records
from yunpipe.specs.loading import YAML_SUFFIXES, load_document
from yunpipe.specs.workflow import parse_workflow

LOCAL = AwsOptions(local=True)
CPUS = (0.25, 0.5, 1.0, 2.0, 4.0)
PARALLELISMS = (2, 4)
# A sample, not a data set: each size runs all of it.
MAX_SAMPLE_FILES = 100
# More files at once must finish this much more per second to be tried further.
PARALLEL_GAIN = 1.1
# The sample's workers exit this soon after their last file, so the next size starts cold.
IDLE_SECONDS = 1
# Longest wait for one size's files, beyond their own timeouts.
SLACK_SECONDS = 120
POLL_SECONDS = 0.5


@dataclass(frozen=True)
class CalibrateOptions:
    algorithm: str  # NAME[@VERSION]
    sample: str  # a folder of files
    files: int = 1000  # the projection's
    region: str | None = None  # the prices'; else the workflow's, else us-east-1
    write: str | None = None  # a workflow file to add the settings to
    cpus: tuple[float, ...] = CPUS
    parallelisms: tuple[int, ...] = PARALLELISMS


@dataclass(frozen=True)
class Target:
    """The workflow --write names: its document, the indexes of the steps running the algorithm,
    the first one's concurrency and the workflow's idle_seconds (the projection's), its region."""
    path: Path
    document: dict[str, Any]
    steps: tuple[int, ...]
    concurrency: int
    idle_seconds: int
    region: str | None


@dataclass(frozen=True)
class Checked:
    record: AlgorithmRecord
    files: tuple[Path, ...]
    table: dict[str, Any]
    region: str
    target: Target | None


@dataclass(frozen=True)
class Calibration:
    reference: str
    trials: tuple[Trial, ...]
    advice: Advice
    projection: Projection
    written: str | None  # the workflow file written, with the steps' field path


def sample_files(sample: str) -> tuple[Path, ...]:
    folder = Path(sample)
    if not folder.is_dir():
        what = "is a file" if folder.is_file() else "does not exist"
        raise InputError("calibrate", "--sample", f"expected a folder of sample files, {sample} {what}")
    files = tuple(f for f in sorted(folder.rglob("*")) if f.is_file())
    if not files:
        raise InputError("calibrate", "--sample", f"expected a folder with at least one file, {sample} has none")
    if len(files) > MAX_SAMPLE_FILES:
        raise InputError("calibrate", "--sample", f"expected at most {MAX_SAMPLE_FILES} files (a sample: each size "
                                                  f"runs all of them), {sample} has {len(files)}")
    return files


def steps_of(document: dict[str, Any]) -> list[dict[str, Any]]:
    process = document["process"]
    return process["steps"] if process["type"] == "graph" else process["algorithms"]


def read_target(path: str, algorithm: str) -> Target:
    """The workflow to write, checked as setup-pipe checks it, with its steps that run `algorithm`."""
    document = load_document(path)
    spec = parse_workflow(document, path)
    steps = tuple(i for i, step in enumerate(spec.steps) if step.algorithm_name == algorithm)
    if not steps:
        raise InputError(path, spec.steps_field, f"expected a step running {algorithm} to write its settings to, "
                                                 f"found {', '.join(s.algorithm_name for s in spec.steps)}")
    return Target(Path(path), document, steps, spec.steps[steps[0]].concurrency, spec.idle_seconds, spec.region)


def check(options: CalibrateOptions) -> Checked:
    """Everything the user typed, before anything runs (InputError, exit 2)."""
    record = AlgorithmRegistry().resolve(options.algorithm, "calibrate", "ALGORITHM")
    if options.files < 1:
        raise InputError("calibrate", "--files", f"expected a number of files of at least 1, got {options.files}")
    files = sample_files(options.sample)
    target = read_target(options.write, record.spec.name) if options.write else None
    table, _ = prices.load()
    region = options.region or (target.region if target else None) or "us-east-1"
    prices.check_region(table, region)
    return Checked(record, files, table, region, target)


def pipeline_name(algorithm: str) -> str:
    """calibrate-<algorithm>, within a pipeline name's 24 characters and letters."""
    slug = re.sub(r"[^a-z0-9-]+", "-", algorithm.lower()).strip("-")[:14].rstrip("-")
    return f"calibrate-{slug or 'algorithm'}"


@contextlib.contextmanager
def local_cloud(say: Callable[[str], None]) -> Iterator[None]:
    """The running local cloud, or one of this process's own for the calibration."""
    from yunpipe.local import cloud

    if cloud.running_state() is not None:
        yield
        return
    say("starting the local cloud (embedded AWS on 127.0.0.1, ECS tasks on Docker)")
    own = cloud.LocalCloud(port=0)
    try:
        own.start()
    except cloud.DockerUnavailable as error:
        raise YunpipeError(f"{error}: calibrate runs the sample on the local cloud, which needs Docker") from None
    try:
        yield
    finally:
        own.stop()


def _quiet(_line: str) -> None:
    pass


@contextlib.contextmanager
def _no_progress(_total: int, _description: str) -> Iterator[Callable[[int], object]]:
    yield lambda _size: None


class Bench:
    """The calibration's pipeline: redeployed at each size, its sample uploaded and measured."""

    def __init__(self, record: AlgorithmRecord, files: tuple[Path, ...], sample: str, folder: Path):
        from yunpipe.local.cloud import default_region

        self.record, self.files, self.sample, self.folder = record, files, sample, folder
        self.name = pipeline_name(record.spec.name)
        self.region = default_region()

    def workflow(self, cpu: float, memory: int, parallelism: int) -> Path:
        # One task takes the whole sample (files_per_task, concurrency 1): each file is measured
        # in the task the size describes.
        step = {"name": self.record.reference, "cpu": cpu, "memory": memory, "parallelism": parallelism,
                "concurrency": 1, "files_per_task": MAX_SAMPLE_FILES, "force": True,
                "max_receive_count": 1}
        document = {"name": self.name, "input_s3_name": f"yunpipe-{self.name}-input",
                    "output_s3_name": f"yunpipe-{self.name}-output", "region": self.region,
                    "idle_seconds": IDLE_SECONDS, "process": {"type": "single_run", "algorithms": [step]}}
        path = self.folder / f"{self.name}.json"
        path.write_text(json.dumps(document, indent=2))
        return path

    def trial(self, cpu: float, memory: int, parallelism: int) -> Trial:
        for _ in deploy(DeployOptions((str(self.workflow(cpu, memory, parallelism)),), LOCAL), echo=_quiet):
            pass
        summary = require_summary(self.name)
        aws = reach(LOCAL, self.name, summary)
        wait_idle(aws, summary)
        began = time.time()
        uploaded = upload(UploadOptions(self.name, (self.sample,), where=LOCAL), _no_progress)
        if uploaded.run is None:
            raise YunpipeError(f"pipeline {self.name} keeps no records (accounting is off)")
        timeout = self.record.spec.timeout_seconds or contract.DEFAULT_VISIBILITY_SECONDS
        deadline = time.monotonic() + SLACK_SECONDS + timeout * math.ceil(len(self.files) / parallelism)
        jobs = wait_for_jobs(Reader(aws), summary, uploaded.run.run, len(self.files), deadline)
        first = min(records.parse_iso(job["started_at"]).timestamp() for job in jobs)
        return Trial(cpu, memory, parallelism, tuple(jobs), max(0.0, first - began))

    def clean_up(self) -> None:
        """The pipeline removed once its last worker has exited (its logs go to the log group)."""
        state = PipelineState.load(self.name)
        if not state.exists:
            return  # its first deploy stopped before creating anything
        if state.summary:
            with contextlib.suppress(YunpipeError):
                wait_idle(reach(LOCAL, self.name, state.summary), state.summary)
        for work in plan_clean_up(CleanUpOptions((self.name,), purge=True, where=LOCAL)):
            apply_clean_up(work, purge=True, echo=_quiet)


def wait_idle(aws: Aws, summary: PipelineSummary) -> None:
    """Until the pipeline runs no task: the last size's worker must not take this size's files."""
    ecs = aws.client("ecs")
    deadline = time.monotonic() + SLACK_SECONDS
    while ecs.list_tasks(cluster=summary.cluster, desiredStatus="RUNNING")["taskArns"]:
        if time.monotonic() > deadline:
            raise YunpipeError(f"the workers of pipeline {summary.pipeline} did not exit within {SLACK_SECONDS} s")
        time.sleep(POLL_SECONDS)


def wait_for_jobs(reader: Reader, summary: PipelineSummary, run: str, count: int, deadline: float) -> list[dict]:
    """The final record of each file of the run (ok, or its one try's failure), once a listing of
    its records counts them all."""
    while True:
        ended = runs.ended_count(reader, summary, run)
        if ended >= count:
            break
        if time.monotonic() > deadline:
            raise YunpipeError(f"{count - ended} of {count} sample files had no outcome in time: "
                               f"`yunpipe status {summary.pipeline}` and `yunpipe logs {summary.pipeline}` say why")
        time.sleep(POLL_SECONDS)
    found = runs.read_jobs(reader, summary, runs.read_run(reader, summary, run))
    return [job for job in found.jobs if runs.ended(job)]


def sweep(bench: Bench, options: CalibrateOptions, say: Callable[[str], None]) -> list[Trial]:
    """The sizes, one after another, each chosen from what the last ones showed."""
    trials: list[Trial] = []

    def run(cpu: float, parallelism: int) -> Trial:
        memory = largest_memory(cpu)
        say(f"running the sample at {cpu:g} vCPU, {memory} MiB, {parallelism} at once")
        trial = bench.trial(cpu, memory, parallelism)
        trials.append(trial)
        return trial

    best: Trial | None = None
    for cpu in (c for c in options.cpus if c <= (os.cpu_count() or 1)):
        trial = run(cpu, 1)
        if not trial.ok and not trial.outcomes.get("oom"):
            break  # it fails whatever its size: no point in more
        if trial.clean:
            if best is not None and trial.mean_seconds * FASTER_ENOUGH > best.mean_seconds:
                break
            best = trial if best is None or trial.mean_seconds < best.mean_seconds else best
    if best is None:
        return trials
    chosen, previous = choose_cpu(trials), None
    peak = max((t.peak_mib or 0.0) for t in trials if t.clean)
    for parallelism in options.parallelisms:
        if parallelism > len(bench.files) or task_memory(chosen.cpu, parallelism, math.ceil(peak * MARGIN) or 1) is None:
            break
        trial = run(chosen.cpu, parallelism)
        baseline = previous or chosen
        if not trial.clean or trial.rate(chosen.gap_seconds) < baseline.rate(chosen.gap_seconds) * PARALLEL_GAIN:
            break
        previous = trial
    return trials


def write_settings(target: Target, settings: dict[str, Any]) -> str:
    """The settings on each step of the target that runs the algorithm, checked again as
    setup-pipe reads them, then the file replaced whole (never half-written)."""
    document = json.loads(json.dumps(target.document))
    for index in target.steps:
        steps_of(document)[index].update(settings)
    parse_workflow(document, str(target.path))
    if target.path.suffix.lower() in YAML_SUFFIXES:
        text = yaml.safe_dump(document, sort_keys=False, allow_unicode=True)
    else:
        text = json.dumps(document, indent=2, ensure_ascii=False) + "\n"
    partial = target.path.with_name(target.path.name + ".calibrate-tmp")
    partial.write_text(text, encoding="utf-8")
    partial.replace(target.path)
    field = "process.steps" if document["process"]["type"] == "graph" else "process.algorithms"
    return f"{target.path}: {', '.join(f'{field}[{i}]' for i in target.steps)}"


def calibrate(options: CalibrateOptions, say: Callable[[str], None] = print) -> Calibration:
    checked = check(options)
    record = checked.record
    with local_cloud(say), tempfile.TemporaryDirectory(prefix="yunpipe-calibrate-") as folder:
        bench = Bench(record, checked.files, options.sample, Path(folder))
        try:
            trials = sweep(bench, options, say)
        finally:
            say(f"removing the calibration's pipeline {bench.name}")
            bench.clean_up()
    advice = recommend(trials, record.spec.memory_suggested, checked.table, checked.region)
    target = checked.target
    projection = project(advice, options.files, target.concurrency if target else contract.DEFAULT_CONCURRENCY,
                         target.idle_seconds if target else contract.DEFAULT_IDLE_SECONDS, checked.table, checked.region)
    written = write_settings(checked.target, advice.settings()) if checked.target else None
    return Calibration(record.reference, tuple(trials), advice, projection, written)
