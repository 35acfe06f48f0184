"""`yunpipe calibrate`, the arithmetic: from the job records of a sample run at each size tried
(operations/calibrate.py runs them on the local cloud), the size, parallelism and files_per_task
to recommend, and what N files would take and cost. No AWS and no Docker here: records in,
advice out, so bench/calibrate.py can hold the projection against a real run.

How it decides (each rule printed with the advice, as an assumption):
- memory: the largest peak any job of the sample reached, times MARGIN, per job; a task holds
  `parallelism` such jobs and its worker (WORKER_MIB), rounded up to Fargate's sizes;
- CPU: the smallest size tried whose file took at most FASTER_ENOUGH times the fastest size's
  time (more vCPUs that do not make a file faster only cost more);
- parallelism: of those tried at that CPU, the one with the lowest cost per file (a task's
  price over the files it finishes per second with a backlog: that many at once, each its mean
  time and the pause between files that one file at a time showed);
- files_per_task: the files one task finishes in Fargate's billed minimum (a minute): a task
  started for fewer would be billed for idling.
"""
from __future__ import annotations

import math
import statistics
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from yunpipe.engine.sizing import FARGATE_SIZES, fargate_size
from yunpipe.errors import YunpipeError
from yunpipe.runtime.accounting import cost
from yunpipe.runtime.accounting.records import parse_iso

MARGIN = 1.5
# What the worker itself (Python, botocore, its threads) holds in a task beside the jobs.
WORKER_MIB = 64
FASTER_ENOUGH = 1.25
# What the projection takes a Fargate task's start to be (placement, image pull, the worker's
# start): a minute is typical for an image of a few hundred MB, and Fargate bills from the pull.
AWS_START_SECONDS = 60
MAX_FILES_PER_TASK = 1000
SHARED = "shared among the runs"


def largest_memory(cpu: float) -> int:
    """The most memory Fargate gives a task of this many vCPUs (MiB)."""
    for units, memories in FARGATE_SIZES:
        if units >= cpu * 1024:
            return memories[-1]
    raise ValueError(f"Fargate has no size of {cpu:g} vCPU")


@dataclass(frozen=True)
class Trial:
    """The sample run once at one size: its jobs' final records, and how long the first job
    waited after the upload began (the launcher, RunTask, the container's and worker's start)."""

    cpu: float
    memory_mib: int
    parallelism: int
    jobs: tuple[dict[str, Any], ...]
    start_seconds: float

    @property
    def outcomes(self) -> Counter:
        return Counter(str(job.get("outcome")) for job in self.jobs)

    @property
    def ok(self) -> list[dict[str, Any]]:
        return [job for job in self.jobs if job.get("outcome") == "ok"]

    @property
    def clean(self) -> bool:
        """Every file ended ok: the size is one to measure by."""
        return bool(self.jobs) and len(self.ok) == len(self.jobs)

    @property
    def mean_seconds(self) -> float:
        """A file's mean time with `parallelism` files at once: of the jobs of the full rounds (the
        first parallelism x (files // parallelism) to start), as a small sample's last round runs
        fewer at once."""
        ok = sorted(self.ok, key=lambda job: parse_iso(job["started_at"]))
        full = ok[:max(1, len(ok) // self.parallelism) * self.parallelism]
        return statistics.mean(float(job.get("wall_seconds") or 0.0) for job in full)

    @property
    def span_seconds(self) -> float:
        """From the first ok job's start to the last one's end."""
        starts = [parse_iso(job["started_at"]) for job in self.ok]
        ends = [parse_iso(job["finished_at"]) for job in self.ok]
        return max((max(ends) - min(starts)).total_seconds(), 1e-3)

    @property
    def observed_rate(self) -> float:
        """Files the task finished per second while it had them."""
        return len(self.ok) / self.span_seconds

    @property
    def gap_seconds(self) -> float:
        """What a task running one file at a time spends between files (receiving, deleting,
        recording): the span less the files' own time, over the gaps between them."""
        count = len(self.ok)
        busy = sum(float(job.get("wall_seconds") or 0.0) for job in self.ok)
        return max(0.0, (self.span_seconds - busy) / (count - 1)) if count > 1 else 0.0

    def rate(self, gap: float) -> float:
        """Files one task finishes per second at this size once it has a backlog: `parallelism`
        files at once, each its mean time and `gap` after it. (A small sample's own span
        undercounts a parallel size: its last round runs fewer files at once.)"""
        return self.parallelism / max(self.mean_seconds + gap, 1e-3)

    @property
    def cpu_share(self) -> float:
        """The vCPUs a running job keeps busy: its CPU seconds over its wall seconds."""
        wall = sum(float(job.get("wall_seconds") or 0.0) for job in self.ok)
        return sum(float(job.get("cpu_seconds") or 0.0) for job in self.ok) / wall if wall else 0.0

    @property
    def peak_mib(self) -> float | None:
        peaks = [float(job["peak_memory_mib"]) for job in self.ok if job.get("peak_memory_mib") is not None]
        return max(peaks) if peaks else None


@dataclass(frozen=True)
class Advice:
    cpu: float
    memory_mib: int  # the task's, a Fargate size
    parallelism: int
    files_per_task: int
    job_memory_mib: int  # one job's peak with the margin
    peak_mib: float | None
    file_seconds: float  # a file's mean time at this size
    rate: float  # files per second of one task at this size
    cpu_share: float
    start_seconds: float  # the local cloud's, median of the trials
    notes: tuple[str, ...]

    def settings(self) -> dict[str, Any]:
        """The step fields a workflow takes (--write)."""
        return {"cpu": self.cpu, "memory": self.memory_mib, "parallelism": self.parallelism,
                "files_per_task": self.files_per_task}


def task_memory(cpu: float, parallelism: int, job_memory: int) -> int | None:
    """Fargate's memory for `parallelism` jobs and the worker at this CPU; None when it has none."""
    size = fargate_size(cpu, parallelism * job_memory + WORKER_MIB)
    return None if size is None or size[0] != round(cpu * 1024) else size[1]


def hourly(cpu: float, memory_mib: int, prices: Mapping[str, Any], region: str) -> float | None:
    rate, _, _ = cost.hourly_rate({"cpu": cpu * 1024, "memory_mib": memory_mib, "capacity": "FARGATE"}, prices, region)
    return rate


def _failures(trials: list[Trial]) -> str:
    seen = Counter(o for trial in trials for o in trial.outcomes.elements() if o != "ok")
    tail = next((str(job.get("log_tail") or "").strip() for trial in trials for job in trial.jobs
                 if job.get("outcome") != "ok" and job.get("log_tail")), "")
    text = ", ".join(f"{count} {outcome}" for outcome, count in sorted(seen.items()))
    return text + (f"; the command's last stderr: {tail.splitlines()[-1]}" if tail else "")


def gap_at(trials: list[Trial], cpu: float) -> float:
    """The gap between files of the one-file-at-a-time size at this CPU (0 when none ran clean)."""
    return next((t.gap_seconds for t in trials if t.cpu == cpu and t.parallelism == 1 and t.clean), 0.0)


def choose_cpu(trials: list[Trial]) -> Trial:
    """The smallest CPU tried one file at a time whose files took at most FASTER_ENOUGH times the
    fastest's."""
    single = [t for t in trials if t.parallelism == 1 and t.clean]
    if not single:
        raise YunpipeError(f"no size ran every file of the sample: {_failures(trials)}")
    fastest = min(t.mean_seconds for t in single)
    return min((t for t in single if t.mean_seconds <= fastest * FASTER_ENOUGH), key=lambda t: t.cpu)


def recommend(trials: list[Trial], fallback_memory: int, prices: Mapping[str, Any], region: str) -> Advice:
    """The advice from the trials; YunpipeError when no size ran the whole sample."""
    chosen = choose_cpu(trials)
    notes = []
    peaks = [p for p in (t.peak_mib for t in trials if t.clean) if p is not None]
    peak = max(peaks) if peaks else None
    if peak is None:
        notes.append(f"no job reported its peak memory: the algorithm's own {fallback_memory} MiB is used")
    job_memory = max(1, math.ceil((peak if peak is not None else fallback_memory / MARGIN) * MARGIN))
    ooms = sorted({(t.cpu, t.memory_mib) for t in trials if t.outcomes.get("oom")})
    notes += [f"out of memory at {cpu:g} vCPU / {memory} MiB" for cpu, memory in ooms]
    failed = [t for t in trials if not t.clean and not t.outcomes.get("oom")]
    if failed:
        notes.append(f"some files failed and are left out: {_failures(failed)}")
    best: tuple[float, float, Trial, int] | None = None
    for trial in (t for t in trials if t.cpu == chosen.cpu and t.clean):
        memory = task_memory(trial.cpu, trial.parallelism, job_memory)
        price = hourly(trial.cpu, memory, prices, region) if memory else None
        if memory is None:
            notes.append(f"{trial.parallelism} jobs at once need more memory than {trial.cpu:g} vCPU can have")
            continue
        rate = trial.rate(chosen.gap_seconds)
        per_file = (price or 0.0) / 3600 / rate
        if best is None or (per_file, -rate) < (best[0], -best[1]):
            best = (per_file, rate, trial, memory)
    if best is None:
        raise YunpipeError(f"one job needs {job_memory} MiB with its margin: more than Fargate gives "
                           f"{chosen.cpu:g} vCPU ({largest_memory(chosen.cpu)} MiB)")
    _, rate, picked, memory = best
    files_per_task = max(1, min(MAX_FILES_PER_TASK, math.ceil(cost.FARGATE_MINIMUM_SECONDS * rate)))
    return Advice(picked.cpu, memory, picked.parallelism, files_per_task, job_memory, peak, picked.mean_seconds,
                  rate, picked.cpu_share, statistics.median(t.start_seconds for t in trials), tuple(notes))


@dataclass(frozen=True)
class Projection:
    files: int
    concurrency: int
    tasks: int
    wall_seconds: float
    task_seconds: float  # billed, all tasks
    cost: float | None
    currency: str
    assumptions: tuple[str, ...]


def project(advice: Advice, files: int, concurrency: int, idle_seconds: int, prices: Mapping[str, Any],
            region: str, start_seconds: float = AWS_START_SECONDS, machine_cpus: int | None = None) -> Projection:
    """N files at the advice's settings: tasks started for the backlog (one per files_per_task,
    at most `concurrency`), all at once, each working at the measured rate. `machine_cpus`: the
    tasks share this many CPUs (the local cloud's machine), so they slow down when their jobs
    want more."""
    tasks = max(1, min(concurrency, math.ceil(files / advice.files_per_task)))
    work = files / tasks / advice.rate
    assumptions = [
        f"a file takes {advice.file_seconds:.2f} s and a task finishes {advice.rate:.2f} files/s at "
        f"{advice.cpu:g} vCPU running {advice.parallelism} at once, as measured on this machine (its CPU, "
        "disk and the local cloud's S3 stand in for Fargate's)",
        f"{tasks} task(s) work side by side (one per {advice.files_per_task} files, at most {concurrency}), "
        f"each working {start_seconds:.0f} s after the upload began"
        + (" (placement, image pull, the worker's start: typical for Fargate, not measured)"
           if start_seconds == AWS_START_SECONDS else ""),
    ]
    if machine_cpus:
        wanted = tasks * min(advice.parallelism * advice.cpu_share, advice.cpu)
        if wanted > machine_cpus:
            work *= wanted / machine_cpus
            assumptions.append(f"the tasks' jobs want {wanted:.1f} CPUs of this machine's {machine_cpus}: "
                               "they slow down in proportion")
    billed = tasks * max(start_seconds + work + idle_seconds, cost.FARGATE_MINIMUM_SECONDS)
    rate = hourly(advice.cpu, advice.memory_mib, prices, region)
    assumptions.append(f"each task is billed from its start until it exits {idle_seconds} s after its last file, "
                       "one minute at least")
    priced = {("fargate", region if region in prices["regions"] else cost.FALLBACK_REGION)}
    # Of the cost's own assumptions, all but how a task is shared among runs (one run here).
    assumptions += [line for line in cost.assumptions(prices, region, priced, {}, False) if SHARED not in line]
    return Projection(files, concurrency, tasks, start_seconds + work, billed,
                      None if rate is None else rate * billed / 3600, prices.get("currency", "USD"),
                      tuple(assumptions))


TRIAL_HEADER = f"  {'vCPU':>5} {'MiB':>6} {'at once':>7} {'s/file':>7} {'files/s':>8} {'vCPU busy':>9} {'peak MiB':>8}"


def _trial_line(trial: Trial, gap: float) -> str:
    size = f"  {trial.cpu:>5g} {trial.memory_mib:>6} {trial.parallelism:>7}"
    if not trial.ok:
        return f"{size}  {_failures([trial])}"
    peak = f"{trial.peak_mib:.0f}" if trial.peak_mib is not None else "?"
    failed = "" if trial.clean else f"  ({_failures([trial])})"
    return f"{size} {trial.mean_seconds:>7.2f} {trial.rate(gap):>8.2f} {trial.cpu_share:>9.2f} {peak:>8}{failed}"


def render(reference: str, trials: list[Trial], advice: Advice, projection: Projection) -> str:
    lines = [f"{reference}: {len(trials[0].jobs)} sample file(s) at {len(trials)} size(s) on the local cloud "
             "(files/s: of one task; vCPU busy: a running job's CPU seconds over its wall seconds):",
             TRIAL_HEADER, *(_trial_line(t, gap_at(trials, t.cpu)) for t in trials), "",
             f"Recommended: cpu {advice.cpu:g}, memory {advice.memory_mib}, parallelism {advice.parallelism}, "
             f"files_per_task {advice.files_per_task}",
             f"  one job's peak {advice.peak_mib if advice.peak_mib is not None else '?'} MiB x {MARGIN} = "
             f"{advice.job_memory_mib} MiB, {advice.parallelism} at once and the worker's {WORKER_MIB} MiB, "
             "rounded up to Fargate's sizes",
             *(f"  note: {note}" for note in advice.notes), ""]
    p = projection
    money = "no price in the table" if p.cost is None else f"{p.cost:.4f} {p.currency}"
    lines += [f"{p.files} files on AWS at concurrency {p.concurrency}: about {_duration(p.wall_seconds)} "
              f"on {p.tasks} task(s), {p.task_seconds:.0f} task-seconds, {money}", "Assumptions:",
              *(f"  - {a}" for a in p.assumptions)]
    return "\n".join(lines)


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"
