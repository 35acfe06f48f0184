"""What the work cost: the price table shipped as data (prices.json, with its date and source) and
the cost of measured tasks, by step, per file and per run.

Fargate (and Fargate Spot) bills a task per second from its start to its stop, one minute at
least, for the vCPUs and memory it asked for. A task on EC2 instances is charged a share of its
instance's hourly price: the larger of its share of the instance's vCPUs and of its memory (what
it keeps other tasks from using), per second, with no minimum; instance time no task uses (an
instance starting, or idle before scale-in) is on the bill but in no run. A task's seconds are
shared among the runs whose jobs it ran, in proportion to the jobs' wall time (its idle minutes go
to the runs it waited for).
"""
from __future__ import annotations

import json
import os
from typing import Any, Iterable, Mapping

from .records import now_iso, parse_iso

PRICES_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "prices.json")
FARGATE_MINIMUM_SECONDS = 60
CAPACITY_TABLE = {"FARGATE": "fargate", "FARGATE_SPOT": "fargate_spot", "": "fargate"}
# The region whose figures stand in for an item a region's table lacks (said in the assumptions).
FALLBACK_REGION = "us-east-1"
# An EC2 capacity provider's name ends with this and its instance type, '.' written '-'
# (engine.instances.capacity_provider_name: yunpipe-<pipeline>-ec2-<type>).
EC2_PROVIDER_MARK = "-ec2-"


def load_prices(path: str = PRICES_FILE) -> dict[str, Any]:
    with open(path, encoding="utf-8") as file:
        return json.load(file)


def item_prices(prices: Mapping[str, Any], region: str, item: str) -> tuple[str, Mapping[str, Any]]:
    """One item of the region's prices ("fargate", "ec2", "lambda", ...), or us-east-1's when the
    region's table lacks it; ("", {}) when neither has it."""
    for name in (region, FALLBACK_REGION):
        found = prices["regions"].get(name, {}).get(item)
        if found:
            return name, found
    return "", {}


def instance_type(capacity: str, prices: Mapping[str, Any]) -> str | None:
    """The instance type of an EC2 capacity provider's name, among the table's types; None when
    the name is not one or the table does not know its type."""
    if EC2_PROVIDER_MARK not in capacity:
        return None
    suffix = capacity.rsplit(EC2_PROVIDER_MARK, 1)[1]
    for name in prices.get("instance_types", {}):
        if name.replace(".", "-") == suffix:
            return name
    return None


def billed_seconds(task: Mapping[str, Any], now: str | None = None,
                   minimum: float = FARGATE_MINIMUM_SECONDS) -> tuple[float, bool]:
    """A task's billed seconds, and whether it is still running (then counted up to `now`)."""
    stopped = task.get("stopped_at")
    end = parse_iso(stopped or now or now_iso())
    seconds = max((end - parse_iso(task["started_at"])).total_seconds(), 0.0)
    return max(seconds, minimum), stopped is None


def hourly_rate(task: Mapping[str, Any], prices: Mapping[str, Any], region: str) -> tuple[float | None, str, str]:
    """What one hour of the task costs, where its price came from (a region, "" when unknown) and
    what it ran on ("fargate", "fargate_spot", or the instance type; the capacity as recorded
    when the table cannot price it, then the rate is None)."""
    capacity = str(task.get("capacity") or "")
    vcpu, gib = float(task.get("cpu") or 0) / 1024, float(task.get("memory_mib") or 0) / 1024
    if capacity in CAPACITY_TABLE:
        item = CAPACITY_TABLE[capacity]
        used, rates = item_prices(prices, region, item)
        if not rates:
            return None, "", item
        return vcpu * rates["vcpu_hour"] + gib * rates["gb_hour"], used, item
    kind = instance_type(capacity, prices)
    if kind is None:
        return None, "", capacity
    used = region if kind in prices["regions"].get(region, {}).get("ec2", {}) else FALLBACK_REGION
    hourly = prices["regions"].get(used, {}).get("ec2", {}).get(kind)
    if hourly is None:
        return None, "", kind
    size = prices["instance_types"][kind]
    share = min(max(vcpu / size["vcpu"], gib / size["memory_gib"]), 1.0)
    return hourly * share, used, kind


def minimum_seconds(task: Mapping[str, Any]) -> float:
    """What a task is billed at least: Fargate's minute; an EC2 instance's share has none."""
    return FARGATE_MINIMUM_SECONDS if str(task.get("capacity") or "") in CAPACITY_TABLE else 0


def task_cost(task: Mapping[str, Any], prices: Mapping[str, Any], region: str,
              now: str | None = None) -> tuple[float | None, float]:
    """One task's cost over all its billed seconds (None when the table cannot price what it ran
    on), and those seconds (a running task's up to `now`)."""
    hourly, _, _ = hourly_rate(task, prices, region)
    billed, _ = billed_seconds(task, now, minimum_seconds(task))
    return (None if hourly is None else hourly * billed / 3600), billed


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
    by_step: dict[str, float] = {}
    seconds_by_step: dict[str, float] = {}
    total_seconds, estimated = 0.0, False
    used: set[tuple[str, str]] = set()  # (what it ran on, the region priced)
    unpriced: dict[str, float] = {}
    for task_id, seconds_of_run in mine.items():
        task = by_id.get(task_id)
        if task is None:
            continue
        hourly, where, ran_on = hourly_rate(task, prices, region)
        billed, running = billed_seconds(task, now, minimum_seconds(task))
        estimated = estimated or running
        all_jobs = sum(float(v) for v in (task.get("job_seconds") or {}).values()) or seconds_of_run
        share = billed * (seconds_of_run / all_jobs if all_jobs else 1.0)
        step = str(task.get("step", ""))
        total_seconds += share
        seconds_by_step[step] = seconds_by_step.get(step, 0.0) + share
        if hourly is None:
            unpriced[ran_on] = unpriced.get(ran_on, 0.0) + share
            by_step.setdefault(step, 0.0)
            continue
        used.add((ran_on, where))
        by_step[step] = by_step.get(step, 0.0) + hourly * share / 3600
    finals = [job for job in jobs if job.get("step") and job.get("final")]
    files = len({job["key"] for job in finals}) or 1
    files_by_step: dict[str, set[str]] = {}
    for job in finals:
        files_by_step.setdefault(str(job["step"]), set()).add(job["key"])
    total = sum(by_step.values())
    return {
        "run": run, "currency": prices.get("currency", "USD"), "total": round(total, 6),
        "by_step": {step: round(value, 6) for step, value in sorted(by_step.items())},
        "per_file": round(total / files, 6), "task_seconds": round(total_seconds, 3), "estimated": estimated,
        "task_seconds_by_step": {step: round(value, 3) for step, value in sorted(seconds_by_step.items())},
        "files_by_step": {step: len(keys) for step, keys in sorted(files_by_step.items())},
        "assumptions": assumptions(prices, region, used, unpriced, estimated),
    }


def assumptions(prices: Mapping[str, Any], region: str, used: set[tuple[str, str]], unpriced: Mapping[str, float],
                estimated: bool) -> list[str]:
    """The sentences a cost is read with: whose prices, how tasks are charged, what is left out."""
    regions = sorted({where for _, where in used}) or [region if region in prices["regions"] else FALLBACK_REGION]
    lines = []
    for name in regions:
        table = prices["regions"].get(name, {})
        lines.append(f"prices of {name} from {table.get('date') or prices.get('date')} "
                     f"({table.get('source') or prices.get('source')})")
    ran_on = {what for what, _ in used}
    if ran_on & {"fargate", "fargate_spot"} or not used:
        lines.append("Fargate bills each task per second, one minute at least, for the vCPUs and memory it asked for")
    if "fargate_spot" in ran_on:
        lines.append("Fargate Spot at the table's figure, an estimate: its real price moves with spare capacity")
    if ran_on - {"fargate", "fargate_spot"}:
        lines.append("an EC2 task is charged its instance's On-Demand hourly price times the larger of its shares of "
                     "the instance's vCPUs and memory, per second; instance time no task uses is not counted")
    lines.append("a task's seconds are shared among the runs it served in proportion to their jobs' wall time")
    lines += [f"no price for {what} in {region}: {where}'s is used" for what, where in sorted(used) if where != region]
    lines += [f"no price for {what}: its {seconds:.0f} task-seconds are not counted"
              for what, seconds in sorted(unpriced.items())]
    if estimated:
        lines.append("tasks still running are counted up to now")
    lines.append("Lambda, SQS, S3 and CloudWatch Logs charges (requests, storage, logs), Fargate task storage "
                 "over 20 GiB and data transfer are not included")
    return lines
