"""What the work cost: the price table shipped as data (prices.json, with its date and source) and
the cost of measured tasks, by step, per file and per run.

Fargate bills a task per second from its start to its stop, one minute at least, for the vCPUs
and memory it asked for; a task's seconds are shared among the runs whose jobs it ran, in
proportion to the jobs' wall time (its idle minutes go to the runs it waited for).
"""
from __future__ import annotations

import json
import os
from typing import Any, Iterable, Mapping

from .records import now_iso, parse_iso

PRICES_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "prices.json")
FARGATE_MINIMUM_SECONDS = 60
CAPACITY_TABLE = {"FARGATE": "fargate", "FARGATE_SPOT": "fargate_spot", "": "fargate"}


def load_prices(path: str = PRICES_FILE) -> dict[str, Any]:
    with open(path, encoding="utf-8") as file:
        return json.load(file)


def region_prices(prices: Mapping[str, Any], region: str) -> tuple[str, Mapping[str, Any]]:
    """The region's prices, or us-east-1's when the table has none for it (said in the assumptions)."""
    regions = prices["regions"]
    return (region, regions[region]) if region in regions else ("us-east-1", regions["us-east-1"])


def billed_seconds(task: Mapping[str, Any], now: str | None = None) -> tuple[float, bool]:
    """A task's billed seconds, and whether it is still running (then counted up to `now`)."""
    stopped = task.get("stopped_at")
    end = parse_iso(stopped or now or now_iso())
    seconds = max((end - parse_iso(task["started_at"])).total_seconds(), 0.0)
    return max(seconds, FARGATE_MINIMUM_SECONDS), stopped is None


def task_cost(task: Mapping[str, Any], table: Mapping[str, Any], seconds: float) -> float:
    """The cost of `seconds` of a task of task["cpu"] CPU units (1024 a vCPU) and task["memory_mib"]."""
    rates = table[CAPACITY_TABLE.get(task.get("capacity") or "", "fargate")]
    vcpu, gb = task["cpu"] / 1024, task["memory_mib"] / 1024
    return seconds / 3600 * (vcpu * rates["vcpu_hour"] + gb * rates["gb_hour"])


def run_cost(tasks: Iterable[Mapping[str, Any]], jobs: Iterable[Mapping[str, Any]], prices: Mapping[str, Any],
             region: str, run: str, now: str | None = None) -> dict[str, Any]:
    """The run's share of its tasks' cost. `tasks`: task records (a task still running has no
    stopped_at; its job records' `task` field stands for it); `jobs`: the run's job records, and
    for a shared task, its other runs' share in its record's job_seconds."""
    jobs = list(jobs)
    by_id: dict[str, dict[str, Any]] = {str(t["id"]): dict(t) for t in tasks}
    for job in jobs:
        task = job.get("task") or {}
        if task.get("id") and str(task["id"]) not in by_id:
            by_id[str(task["id"])] = {**task, "step": job["step"], "job_seconds": {}}
    mine: dict[str, float] = {}
    for job in jobs:
        task_id = str((job.get("task") or {}).get("id", ""))
        mine[task_id] = mine.get(task_id, 0.0) + float(job.get("wall_seconds") or 0.0)
    used, table = region_prices(prices, region)
    by_step: dict[str, float] = {}
    total_seconds, estimated = 0.0, False
    for task_id, seconds_of_run in mine.items():
        task = by_id.get(task_id)
        if task is None:
            continue
        billed, running = billed_seconds(task, now)
        estimated = estimated or running
        all_jobs = sum(float(v) for v in (task.get("job_seconds") or {}).values()) or seconds_of_run
        share = billed * (seconds_of_run / all_jobs if all_jobs else 1.0)
        total_seconds += share
        step = str(task.get("step", ""))
        by_step[step] = by_step.get(step, 0.0) + task_cost(task, table, share)
    files = len({job["key"] for job in jobs if job.get("step") and job.get("final")}) or 1
    total = sum(by_step.values())
    return {
        "run": run, "currency": prices.get("currency", "USD"), "total": round(total, 6),
        "by_step": {step: round(value, 6) for step, value in sorted(by_step.items())},
        "per_file": round(total / files, 6), "task_seconds": round(total_seconds, 3), "estimated": estimated,
        "assumptions": [
            f"prices of {used} from {prices.get('date')} ({prices.get('source')})",
            "Fargate bills each task per second, one minute at least, for the vCPUs and memory it asked for",
            "a task's seconds are shared among the runs it served in proportion to their jobs' wall time",
            *(["tasks still running are counted up to now"] if estimated else []),
            *([f"no prices for {region}: {used}'s are used"] if used != region else []),
        ],
    }
