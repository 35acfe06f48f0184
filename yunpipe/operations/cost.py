"""What a pipeline's runs cost, from the measured task-seconds in its reports bucket
(runtime/accounting/records.py): a settled run's summary.json holds its cost as settled; a run
still open is priced here from its ends/ and tries/ job records and the tasks/ records of the
tasks that ran them (cost.run_cost, with this machine's price table: operations/prices.py).
"""
import difflib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from yunpipe.aws.reader import Reader
from yunpipe.engine.state import PipelineSummary
from yunpipe.errors import NotFoundError
from yunpipe.operations import prices
from yunpipe.runtime.accounting import cost, records

MISSING = ("NoSuchKey", "NoSuchBucket", "404")


@dataclass(frozen=True)
class PipelineCost:
    pipeline: str
    region: str
    # Each run's cost (cost.run_cost's fields, plus "settled"), oldest first.
    runs: tuple[dict, ...]
    table: str  # the price table open runs were priced with

    @property
    def total(self) -> float:
        return round(sum(run["total"] for run in self.runs), 6)

    def to_document(self) -> dict:
        return {"pipeline": self.pipeline, "region": self.region, "currency": self._currency(),
                "total": self.total, "price_table": self.table, "runs": list(self.runs)}

    def _currency(self) -> str:
        return self.runs[0]["currency"] if self.runs else "USD"


def _json(reader: Reader, bucket: str, key: str) -> Any:
    found = reader.read("s3", "get_object", MISSING, Bucket=bucket, Key=key)
    return None if found is None else json.loads(found["Body"].read())


def list_runs(reader: Reader, summary: PipelineSummary) -> list[str]:
    """The pipeline's runs (each has a folder under runs/<pipeline>/), oldest first: run ids begin
    with when they were opened."""
    prefix = f"runs/{summary.pipeline}/"
    folders = reader.pages("s3", "list_objects_v2", "CommonPrefixes", ("NoSuchBucket",), Bucket=summary.reports_bucket,
                           Prefix=prefix, Delimiter="/")
    names = [folder["Prefix"][len(prefix):].rstrip("/") for folder in folders]
    # open/ holds the open runs' markers, not a run.
    return sorted(name for name in names if name and name + "/" != records.open_prefix(summary.pipeline)[len(prefix):])


def require_run(runs: list[str], pipeline: str, run: str) -> None:
    if run in runs:
        return
    close = difflib.get_close_matches(run, runs, n=1, cutoff=0.5)
    hint = f"; did you mean '{close[0]}'?" if close else ""
    known = ", ".join(runs[-5:]) + (" (the newest 5)" if len(runs) > 5 else "") if runs else "none yet"
    raise NotFoundError(f"no run '{run}' in pipeline '{pipeline}' (runs: {known}){hint}; `yunpipe runs {pipeline}` "
                        "lists them")


def open_run_cost(reader: Reader, summary: PipelineSummary, run: str, table: Mapping[str, Any]) -> dict:
    """A run not settled yet, priced from its job records and their tasks' records."""
    bucket, base = summary.reports_bucket, records.run_prefix(summary.pipeline, run)
    jobs = []
    for folder in ("ends/", "tries/"):
        for obj in reader.pages("s3", "list_objects_v2", "Contents", ("NoSuchBucket",), Bucket=bucket,
                                Prefix=base + folder):
            record = _json(reader, bucket, obj["Key"])
            if isinstance(record, dict) and record.get("step"):
                jobs.append(record)
    tasks = []
    for step, task_id in sorted({(job["step"], str(job["task"]["id"])) for job in jobs
                                 if isinstance(job.get("task"), dict) and job["task"].get("id")}):
        # A task's record is written as it stops: a running one has none, and its jobs' copy stands in.
        task = _json(reader, bucket, records.task_key(summary.pipeline, step, task_id))
        if isinstance(task, dict):
            tasks.append(task)
    return cost.run_cost(tasks, jobs, table, summary.region, run)


def run_cost(reader: Reader, summary: PipelineSummary, run: str, table: Mapping[str, Any]) -> dict:
    settled = _json(reader, summary.reports_bucket, records.summary_key(summary.pipeline, run))
    if isinstance(settled, dict) and isinstance(settled.get("cost"), dict):
        return {**settled["cost"], "run": run, "settled": True}
    return {**open_run_cost(reader, summary, run, table), "settled": False}


def pipeline_cost(reader: Reader, summary: PipelineSummary, run: str | None = None) -> PipelineCost:
    """The cost of one run of the pipeline, or of each of its runs."""
    table, where = prices.load()
    runs = list_runs(reader, summary)
    if run is not None:
        require_run(runs, summary.pipeline, run)
        runs = [run]
    return PipelineCost(summary.pipeline, summary.region, tuple(run_cost(reader, summary, r, table) for r in runs), where)


def _money(value: float, currency: str) -> str:
    return f"{value:.6f} {currency}" if value < 0.01 else f"{value:.4f} {currency}"


def render(result: PipelineCost) -> str:
    if not result.runs:
        return (f"Pipeline {result.pipeline} has no runs yet: `yunpipe upload` or `yunpipe submit` opens one "
                "(files other S3 clients drop join a drop-run)")
    currency = result.runs[0]["currency"]
    lines = [f"Pipeline {result.pipeline} ({result.region}): {_money(result.total, currency)} over "
             f"{len(result.runs)} run(s)"]
    assumptions: list[str] = []
    for run in result.runs:
        state = "settled" if run["settled"] else "open, so far" + (", tasks still running" if run["estimated"] else "")
        lines += ["", f"run {run['run']} ({state}): {_money(run['total'], currency)}, "
                      f"{run['task_seconds']:.0f} task-seconds, {_money(run['per_file'], currency)} per file"]
        for step, value in run["by_step"].items():
            seconds = run.get("task_seconds_by_step", {}).get(step)
            count = run.get("files_by_step", {}).get(step)
            detail = ", ".join(part for part in (
                f"{seconds:.0f} task-seconds" if seconds is not None else "",
                f"{count} file(s), {_money(value / count, currency)} per file" if count else "") if part)
            lines.append(f"  {step:<24}{_money(value, currency):>16}" + (f"  ({detail})" if detail else ""))
        if not run["by_step"]:
            lines.append("  no job recorded yet")
        assumptions += [a for a in run["assumptions"] if a not in assumptions]
    lines += ["", "Assumptions:"] + [f"  - {a}" for a in assumptions]
    if any(not run["settled"] for run in result.runs):
        lines.append(f"  - open runs are priced with {result.table}")
    return "\n".join(lines)
