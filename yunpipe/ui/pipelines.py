"""What the dashboard shows of the pipelines recorded on this machine: each one's place and health
at a glance, and one pipeline's steps with their live counts, runs and cost. Everything is read
(operations.status, the reports bucket); nothing here changes AWS.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

from yunpipe.aws.location import AwsOptions
from yunpipe.aws.reader import Reader
from yunpipe.engine.graph import Layout, chain_of
from yunpipe.engine.state import PipelineSummary, require_summary
from yunpipe.errors import YunpipeError
from yunpipe.operations import status
from yunpipe.operations.listing import ListedPipeline, list_pipelines
from yunpipe.operations.reach import reach
from yunpipe.ui import runs

# How many runs a pipeline's page lists (the newest).
RUNS_SHOWN = 10
# How often the costlier parts of a pipeline's page are read again (see Slow).
SLOW_SECONDS = 6.0

_readers: dict[tuple[str, str], Reader] = {}
_readers_lock = threading.Lock()


def open_pipeline(name: str) -> tuple[PipelineSummary, Reader]:
    """The pipeline's summary and a reader where its record says it lives, with the user's own
    credentials (never sent to the page). One reader per pipeline and place, kept: its clients
    are thread-safe and cost ~50 ms each to make."""
    summary = require_summary(name)
    aws = reach(AwsOptions(), name, summary)
    place = f"{aws.endpoint_url}|{aws.region}"
    with _readers_lock:
        return summary, _readers.setdefault((name, place), Reader(aws))


def layout_of(summary: PipelineSummary) -> Layout:
    return Layout.from_document(summary.layout) if summary.layout else chain_of(summary)


def gathers(layout: Layout) -> frozenset[str]:
    """The steps that gather: one job per gathering, not one per file."""
    return frozenset(p.step for p in layout.steps if p.gather)


@dataclass(frozen=True)
class Health:
    """A pipeline's line on the Pipelines page; `problem` when it cannot be reached."""
    listed: ListedPipeline
    waiting: int = 0
    in_flight: int = 0
    running: int = 0
    dead: int = 0
    open_runs: int = 0
    problem: str | None = None

    @property
    def state(self) -> str:
        if self.problem:
            return "unreachable"
        if self.dead:
            return "dead"
        return "busy" if self.waiting or self.in_flight or self.running else "idle"


def health(listed: ListedPipeline) -> Health:
    if listed.problem:
        return Health(listed, problem=listed.problem)
    try:
        summary, reader = open_pipeline(listed.name)
        now = status.collect(reader, summary, failures=0)
        _, opened = runs.run_names(reader, summary)
    except YunpipeError as error:
        return Health(listed, problem=str(error))
    except Exception as error:  # noqa: BLE001 - AWS unreachable or refusing: said on its line, the others still show
        return Health(listed, problem=f"cannot read it: {error}")
    return Health(listed, sum(s.waiting for s in now.steps), sum(s.in_flight for s in now.steps), now.running,
                  now.dead, len(opened))


def every_health() -> list[Health]:
    return [health(listed) for listed in list_pipelines()]


def step_state(step: status.StepStatus) -> str:
    """How the graph colours the step: dead letters first, then work in hand, else idle."""
    if step.dead:
        return "dead"
    return "busy" if step.waiting or step.in_flight or step.running else "idle"


@dataclass(frozen=True)
class Slow:
    """What costs more to read (listings of the results and the reports bucket, failure reports,
    the launchers' logs: CloudWatch allows 5 FilterLogEvents a second per account), read at most
    every SLOW_SECONDS however many pages ask."""
    at: float
    status: status.PipelineStatus
    runs: list[runs.Run]
    runs_total: int
    cost: dict[str, Any]


_slow: dict[str, Slow] = {}


def slow_parts(name: str, summary: PipelineSummary, reader: Reader) -> Slow:
    known = _slow.get(name)
    if known is not None and time.monotonic() - known.at < SLOW_SECONDS:
        return known
    recent, total = runs.recent_runs(reader, summary, RUNS_SHOWN)
    fresh = Slow(time.monotonic(), status.collect(reader, summary, failures=5), recent, total,
                 runs.tasks_cost(reader, summary))
    _slow[name] = fresh
    return fresh


def live(name: str) -> dict[str, Any]:
    """The parts of a pipeline's page that change: each step's counts (waiting, in flight, done,
    skipped, dead-lettered, running tasks; the queues' and tasks' read each time, the rest every
    SLOW_SECONDS) and its newest failures, the newest runs with their progress bars, and the cost
    of the tasks recorded so far."""
    summary, reader = open_pipeline(name)
    now, slow = status.collect(reader, summary, failures=0), slow_parts(name, summary, reader)
    order = [s.name for s in summary.steps]
    layout = layout_of(summary)
    skipped = {step: sum(run.steps[step]["skipped"] for run in slow.runs if step in run.steps) for step in order}
    steps = [{"name": s.name, "waiting": s.waiting, "in_flight": s.in_flight, "done": later.done or 0,
              "skipped": skipped[s.name], "dead": s.dead, "running": s.running, "state": step_state(s),
              "undelivered": s.undelivered, "failures": later.failures, "gather": layout.step(s.name).gather,
              "not_started": status.render_not_started(later.not_started, summary.region) if later.not_started else []}
             for s, later in zip(now.steps, slow.status.steps, strict=True)]
    failures = sorted((f for s in slow.status.steps for f in s.failures), key=lambda f: str(f.get("finished_at", "")),
                      reverse=True)
    return {"summary": summary, "steps": steps, "failures": failures, "runs_total": slow.runs_total,
            "runs": [(run, run.bars(order, gathers(layout))) for run in slow.runs], "cost": slow.cost}
