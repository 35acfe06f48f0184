"""A settled run's summary (records.py names its fields): counts per step and outcome, wall-time
percentiles, peak memory against the step's limit, the failures with their reasons and log
tails, task-seconds and cost.

Cost is cost.run_cost over the task records (tasks/<pipeline>/<step>/<id>.json) of the tasks
that ran the run's jobs, each read by its name from the jobs' `task` field; a task still running
(it writes its record as it exits, the worker that settles is one) is counted up to now and the
cost says it is estimated.
"""
from __future__ import annotations

import json
import math
from datetime import datetime, timezone
from typing import Any, Iterable, Mapping, Sequence

from botocore.exceptions import ClientError

from . import cost
from .records import DONE_OUTCOMES, VERSION, parse_iso, summary_key, task_key

_prices: dict[str, Any] = {}


def percentile(values: list[float], share: float) -> float | None:
    """The nearest-rank percentile (share 0.5: the median) of the values, None without any."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)]


def _numbers(records: Iterable[Mapping[str, Any]], name: str) -> list[float]:
    return [float(r[name]) for r in records if isinstance(r.get(name), (int, float)) and not isinstance(r[name], bool)]


def step_stats(records: Sequence[Mapping[str, Any]], limit_mib: int | None) -> dict[str, Any]:
    """One step's counts per outcome, wall seconds p50/p95/max, peak memory p50/max and the limit."""
    stats: dict[str, Any] = {}
    for record in records:
        stats[record["outcome"]] = stats.get(record["outcome"], 0) + 1
    walls, peaks = _numbers(records, "wall_seconds"), _numbers(records, "peak_memory_mib")
    stats["wall_seconds"] = {"p50": percentile(walls, 0.5), "p95": percentile(walls, 0.95),
                             "max": max(walls) if walls else None}
    stats["peak_memory_mib"] = {"p50": percentile(peaks, 0.5), "max": max(peaks) if peaks else None}
    limits = _numbers(records, "memory_limit_mib")
    stats["memory_limit_mib"] = max(limits) if limits else limit_mib
    # Jobs that ended at a larger memory than the step's (out of memory, runtime/worker/grow.py).
    grown = [m for m in (_task_memory(r) for r in records) if limit_mib and m and m > limit_mib]
    if grown:
        stats["grown"] = {"jobs": len(grown), "max_memory_mib": max(grown)}
    return stats


def _task_memory(record: Mapping[str, Any]) -> int | None:
    task = record.get("task")
    memory = task.get("memory_mib") if isinstance(task, dict) else None
    return memory if isinstance(memory, int) and not isinstance(memory, bool) else None


def failure(record: Mapping[str, Any]) -> dict[str, Any]:
    return {"step": record["step"], "key": record.get("key"), "outcome": record["outcome"],
            "reason": record.get("reason"), "exit_code": record.get("exit_code"), "attempts": record.get("attempt"),
            "report": record.get("report"), "log_tail": record.get("log_tail"),
            # The task's memory: for an oom at the largest size, the largest tried.
            "memory_mib": _task_memory(record)}


def task_records(s3: Any, bucket: str, pipeline: str, jobs: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The records of the tasks that ran the jobs; a task without one yet (still running) is left
    out (run_cost counts it from the jobs' `task` field, up to now)."""
    found = []
    wanted = sorted({(str(j["step"]), str((j.get("task") or {}).get("id"))) for j in jobs
                     if isinstance(j.get("task"), dict) and j["task"].get("id")})
    for step, task_id in wanted:
        try:
            body = json.loads(s3.get_object(Bucket=bucket, Key=task_key(pipeline, step, task_id))["Body"].read())
        except ClientError as error:
            # Not written yet; 403 is S3's answer for a missing key to a caller that may not list it.
            if str(error.response.get("Error", {}).get("Code")) in ("NoSuchKey", "404", "NotFound", "403", "AccessDenied"):
                continue
            raise
        except ValueError:
            continue
        if isinstance(body, dict) and body.get("id") and body.get("started_at"):
            found.append(body)
    return found


def build_summary(s3: Any, bucket: str, descriptor: Mapping[str, Any], manifest: Mapping[str, Any],
                  jobs: list[dict[str, Any]], tries: list[dict[str, Any]], now: datetime) -> dict[str, Any]:
    """The summary of a settled run: `jobs` its final records (one per job), `tries` the records
    of the tries before them (their task time is the run's too)."""
    pipeline, run = str(descriptor["pipeline"]), str(manifest["run"])
    limits = {str(s["name"]): s.get("memory_mib") for s in descriptor.get("steps", [])}
    order = [str(s["name"]) for s in descriptor.get("steps", [])]
    by_step: dict[str, list[dict[str, Any]]] = {}
    for job in jobs:
        by_step.setdefault(job["step"], []).append(job)
    steps = {step: step_stats(by_step[step], limits.get(step))
             for step in sorted(by_step, key=lambda s: (order.index(s) if s in order else len(order), s))}
    failures = [failure(job) for job in jobs if job["outcome"] not in DONE_OUTCOMES]
    if not _prices:
        _prices.update(cost.load_prices())
    settled_at = now.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    spent = [*jobs, *(t for t in tries if t.get("step"))]
    run_cost = cost.run_cost(task_records(s3, bucket, pipeline, spent), spent, _prices,
                             str(descriptor.get("region") or "us-east-1"), run, now=settled_at)
    finished = [parse_iso(j["finished_at"]) for j in jobs if isinstance(j.get("finished_at"), str)]
    opened = parse_iso(str(manifest["opened_at"]))
    inputs = manifest.get("inputs")
    return {
        "version": VERSION, "pipeline": pipeline, "run": run, "kind": manifest["kind"],
        "opened_at": manifest["opened_at"], "settled_at": settled_at,
        "finished_at": max(finished).isoformat().replace("+00:00", "Z") if finished else None,
        # From its opening to its last job's end: the settling check's own delay is not the run's.
        "duration_seconds": round(max((max(finished) - opened).total_seconds(), 0.0), 3) if finished else 0.0,
        "inputs": len(inputs) if isinstance(inputs, list) else len({(j["step"], j.get("key")) for j in jobs
                                                                   if _entry(descriptor, j["step"])}),
        "jobs": len(jobs), "steps": steps, "failures": failures,
        "task_seconds": run_cost["task_seconds"], "cost": run_cost, "report": summary_key(pipeline, run),
    }


def _entry(descriptor: Mapping[str, Any], step: str) -> bool:
    return any(s.get("name") == step and s.get("entry") for s in descriptor.get("steps", []))
