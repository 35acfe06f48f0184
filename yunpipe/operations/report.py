"""A run's report: what ran, what failed, what it cost. A settled run's is its summary.json (written
once when it settled); an open run's is the same shape computed from its records so far, marked
open. `yunpipe report` prints it as text or JSON; report_html draws it.
"""
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from yunpipe.aws.reader import Reader
from yunpipe.engine.state import PipelineSummary
from yunpipe.operations import prices, runs
from yunpipe.operations.runs import is_number, mapping
from yunpipe.runtime.accounting import cost, records
from yunpipe.runtime.accounting import summary as settled


@dataclass
class Report:
    """The summary (records.py's summary fields, plus "open" and "skipped") and the records
    it was read from, which the charts draw."""
    summary: dict[str, Any]
    records: runs.RunRecords


def summarize(summary: PipelineSummary, found: runs.RunRecords, prices: dict[str, Any],
              now: str | None = None) -> dict[str, Any]:
    """The run's summary from its records (the fields of records.py's summary), as of `now`."""
    manifest = found.manifest or {}
    finals = [j for j in found.jobs if runs.ended(j)]
    steps: dict[str, dict[str, Any]] = {}
    for name in dict.fromkeys([s.name for s in summary.steps] + [j["step"] for j in found.jobs]):
        # Of the jobs' final records, as settle counts them (the charts show every try).
        steps[name] = {**dict.fromkeys(records.OUTCOMES, 0),
                       **settled.step_stats([j for j in finals if j["step"] == name], None)}
    failures = [settled.failure(j) for j in sorted(finals, key=lambda j: (j["step"], j["key"]))
                if j["outcome"] in runs.FAILED_OUTCOMES]
    spent = cost.run_cost(found.tasks, found.jobs, prices, summary.region, found.run, now) if found.jobs else None
    inputs, entry = manifest.get("inputs"), runs.entry_steps(summary)
    finished = max((j["finished_at"] for j in finals if j.get("finished_at")), key=records.parse_iso, default=None)
    return {
        "version": records.VERSION, "pipeline": summary.pipeline, "run": found.run, "kind": manifest.get("kind"),
        "opened_at": manifest.get("opened_at"), "settled_at": None, "finished_at": finished,
        "duration_seconds": took({"opened_at": manifest.get("opened_at"), "settled_at": finished}) if finished else 0.0,
        "jobs": len(finals),
        # A drop-run has no list of inputs: the files its first steps took stand for it.
        "inputs": len(inputs) if isinstance(inputs, list) else len({j["key"] for j in found.jobs if j["step"] in entry}),
        "steps": steps, "failures": failures, "task_seconds": spent["task_seconds"] if spent else 0.0,
        "cost": spent, "report": records.summary_key(summary.pipeline, found.run),
    }


def build(reader: Reader, summary: PipelineSummary, run: str, jobs: bool = True, now: str | None = None) -> Report:
    """The run's report; jobs=False reads a settled run's summary alone (text and JSON need no
    more). A settled run whose summary cannot be read is reported from its records."""
    found = runs.read_run(reader, summary, run)
    if found.summary is None or jobs:
        runs.read_jobs(reader, summary, found)
    if found.summary is not None:
        document = {**found.summary, "open": False}
    else:
        document = {**summarize(summary, found, prices.load()[0], now), "open": not found.settled}
        if document["open"]:
            # What the summary of a settled run has no need of: the files still on their way.
            document["progress"] = runs.step_progress(summary, found)
    document["skipped"] = found.skipped
    return Report(document, found)


def duration(value: Any) -> str:
    """Seconds as a person reads them: 7.0 s, 2 min 30 s, 1 h 5 min."""
    if not is_number(value):
        return "?"
    value = float(value)
    if value < 60:
        return f"{value:.1f} s"
    minutes, seconds = divmod(round(value), 60)
    return f"{minutes} min {seconds} s" if minutes < 60 else f"{minutes // 60} h {minutes % 60} min"


def _mib(value: Any) -> str:
    return f"{value:.0f} MiB" if is_number(value) else "?"


def took(document: dict[str, Any], now: datetime | None = None) -> float | None:
    """Seconds from the run's opening to its settling (to now while it is open)."""
    if not document.get("open") and is_number(document.get("duration_seconds")):
        # Settle's own figure: from the opening to the last job's end, not to the check that saw it.
        return float(document["duration_seconds"])
    try:
        opened = records.parse_iso(document["opened_at"])
        end = records.parse_iso(document["settled_at"]) if document.get("settled_at") else \
            (now or datetime.now(timezone.utc))
    except (KeyError, TypeError, ValueError, AttributeError):  # no time, or not a time
        return None
    return max((end - opened).total_seconds(), 0.0)


def step_line(name: str, step: Any, progress: Any = None) -> str:
    """A step's counts, times and memory in a line; `progress` (an open run's) adds its files
    still retrying or waiting."""
    step, progress = mapping(step), mapping(progress)
    counts = ", ".join(f"{step[o]} {o}" for o in records.OUTCOMES if is_number(step.get(o)) and step[o])
    wall, peak = mapping(step.get("wall_seconds")), mapping(step.get("peak_memory_mib"))
    line = f"step {name}: {counts or 'nothing finished'}"
    line += "".join(f", {progress[n]} {n}" for n in ("retrying", "waiting") if progress.get(n))
    if wall.get("max") is not None:
        line += f"; time p50 {duration(wall.get('p50'))}, p95 {duration(wall.get('p95'))}, max {duration(wall['max'])}"
    if peak.get("max") is not None:
        line += f"; peak memory p50 {_mib(peak.get('p50'))}, max {_mib(peak['max'])}"
        if step.get("memory_limit_mib") is not None:
            line += f" of {_mib(step['memory_limit_mib'])}"
    grown = mapping(step.get("grown"))
    if is_number(grown.get("jobs")) and grown["jobs"]:
        line += f"; {grown['jobs']} out of memory, run again at up to {_mib(grown.get('max_memory_mib'))}"
    return line


def amount(spent: Any) -> str:
    """A cost.run_cost's total with its currency ("not known" without one)."""
    if not isinstance(spent, dict) or not is_number(spent.get("total")):
        return "not known"
    return f"{spent.get('currency') or 'USD'} {spent['total']:.4f}"


def money(spent: Any) -> str:
    estimated = " (estimated: tasks still running)" if isinstance(spent, dict) and spent.get("estimated") else ""
    return amount(spent) + estimated


def step_lines(document: dict[str, Any]) -> list[str]:
    progress = mapping(document.get("progress"))
    return [step_line(name, step, progress.get(name)) for name, step in mapping(document.get("steps")).items()]


def render(document: dict[str, Any]) -> str:
    """The report as text."""
    run, pipeline = document.get("run"), document.get("pipeline")
    if document.get("open"):
        state = f"OPEN: still running, these are the counts so far ({duration(took(document))} since it opened)"
    elif document.get("settled_at"):
        state = f"settled at {document.get('settled_at')}, its files done {duration(took(document))} after it opened"
    else:
        state = "settled, but its summary cannot be read: these counts are from its records"
    lines = [f"Run {run} of {pipeline} ({document.get('kind') or '?'}, opened {document.get('opened_at') or '?'}): "
             f"{state}", f"inputs: {document.get('inputs', '?')}"]
    lines += step_lines(document)
    failures = [f for f in document.get("failures") or [] if isinstance(f, dict)]
    if failures:
        lines.append(f"failures ({len(failures)}):")
    for failure in failures:
        exit_code = f", exit {failure['exit_code']}" if failure.get("exit_code") is not None else ""
        lines.append(f"  {failure.get('step')}: {failure.get('key')}: {failure.get('outcome')}{exit_code} after "
                     f"{failure.get('attempts') or '?'} attempt(s): {failure.get('reason') or 'no reason recorded'}")
        tail = str(failure.get("log_tail") or "").strip().splitlines()
        lines += [f"      {line}" for line in tail[-3:]]
    lines.append(f"task-seconds: {document.get('task_seconds', '?')}; cost: {money(document.get('cost'))}")
    lines += [f"  assuming {a}" for a in mapping(document.get("cost")).get("assumptions") or []]
    skipped = document.get("skipped") or []
    if skipped:
        lines.append(f"skipped {len(skipped)} record(s) that could not be read:")
        lines += [f"  {s['key']}: {s['why']}" for s in skipped]
    return "\n".join(lines)
