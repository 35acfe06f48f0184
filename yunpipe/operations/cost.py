"""What a pipeline's runs cost, from the measured task-seconds in its reports bucket
(runtime/accounting/records.py): a settled run's summary.json holds its cost as settled; a run
still open is priced here from its job records (ends/, tries/ and pages/) and the tasks/ records
of the tasks that ran them (cost.run_cost, with this machine's price table: operations/prices.py).
"""
from dataclasses import dataclass
from typing import Any

from yunpipe.aws.reader import Reader
from yunpipe.engine.state import PipelineSummary
from yunpipe.operations import prices, runs
from yunpipe.runtime.accounting import cost


@dataclass(frozen=True)
class PipelineCost:
    pipeline: str
    region: str
    # Each run's cost (cost.run_cost's fields, plus "settled" and the records it "skipped"), oldest first.
    runs: tuple[dict, ...]
    table: str  # the price table open runs were priced with

    @property
    def total(self) -> float:
        return round(sum(run["total"] for run in self.runs), 6)

    def to_document(self) -> dict:
        return {"pipeline": self.pipeline, "region": self.region,
                "currency": self.runs[0]["currency"] if self.runs else "USD", "total": self.total,
                "price_table": self.table, "runs": list(self.runs)}


def run_cost(reader: Reader, summary: PipelineSummary, run: str, table: Any) -> dict:
    """A settled run's cost as its summary recorded it; an open one's from its records, so far."""
    found = runs.read_run(reader, summary, run)
    if found.summary is not None:
        spent = runs.mapping(found.summary.get("cost")) or cost.run_cost([], [], table, summary.region, run)
        return {**spent, "run": run, "settled": True, "skipped": found.skipped}
    runs.read_jobs(reader, summary, found)
    return {**cost.run_cost(found.tasks, found.jobs, table, summary.region, run), "settled": False,
            "skipped": found.skipped}


def pipeline_cost(reader: Reader, summary: PipelineSummary, run: str | None = None) -> PipelineCost:
    """The cost of one run of the pipeline, or of each of its runs."""
    table, where = prices.load()
    names = runs.list_runs(reader, summary)
    if run is not None:
        names = [runs.require_run(names, summary.pipeline, run)]
    return PipelineCost(summary.pipeline, summary.region, tuple(run_cost(reader, summary, r, table) for r in names),
                        where)


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
        state = "settled" if run["settled"] else "open, so far" + (", tasks still running" if run.get("estimated") else "")
        lines += ["", f"run {run['run']} ({state}): {_money(run['total'], currency)}, "
                      f"{run.get('task_seconds', 0):.0f} task-seconds, {_money(run.get('per_file', 0), currency)} per file"]
        for step, value in run.get("by_step", {}).items():
            seconds = run.get("task_seconds_by_step", {}).get(step)
            count = run.get("files_by_step", {}).get(step)
            detail = ", ".join(part for part in (
                f"{seconds:.0f} task-seconds" if seconds is not None else "",
                f"{count} file(s), {_money(value / count, currency)} per file" if count else "") if part)
            lines.append(f"  {step:<24}{_money(value, currency):>16}" + (f"  ({detail})" if detail else ""))
        if not run.get("by_step"):
            lines.append("  no job recorded yet")
        if run.get("skipped"):
            lines.append(f"  {len(run['skipped'])} record(s) could not be read and are left out "
                         f"(`yunpipe report {result.pipeline} {run['run']}` names them)")
        assumptions += [a for a in run.get("assumptions", []) if a not in assumptions]
    lines += ["", "Assumptions:"] + [f"  - {a}" for a in assumptions]
    if any(not run["settled"] for run in result.runs):
        lines.append(f"  - open runs are priced with {result.table}")
    return "\n".join(lines)
