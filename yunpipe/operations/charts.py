"""The charts of a run's report, drawn by matplotlib as inline SVG: no JavaScript, nothing fetched
to view them, text kept as text. Each function takes a run's records (operations.runs) or its
summary and returns one <svg> element, or None when there is nothing to draw yet; the HTML
report and the dashboard place them in their pages.

matplotlib is imported with this module only: `yunpipe report --html` and the dashboard need
it, no other command pays for it.
"""
import io
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import matplotlib
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import MaxNLocator

from yunpipe.runtime.accounting import records

OUTCOME_COLOURS = {"ok": "#2e7d32", "skipped": "#9e9e9e", "failed": "#c62828", "timeout": "#ef6c00",
                   "oom": "#6a1b9a", "interrupted": "#546e7a"}
TASK_COLOUR = "#d7e3f4"
LIMIT_COLOUR = "#c62828"
WIDTH = 9.0  # inches; the page scales the SVG to its width
STYLE: Any = {"svg.fonttype": "none", "font.family": "sans-serif", "font.size": 10, "axes.spines.top": False,
         "axes.spines.right": False, "axes.grid": True, "grid.color": "#e6e6e6", "axes.axisbelow": True}
# Rows of the timeline above which tasks are labelled by their step only.
LABELLED_TASKS = 30


@contextmanager
def _style() -> Iterator[None]:
    with matplotlib.rc_context(STYLE):
        yield


def _svg(figure: Figure, name: str) -> str:
    """The figure as an <svg> element; its ids are salted with the chart's name, so several
    charts in one page never share a clip path's id."""
    buffer = io.StringIO()
    with matplotlib.rc_context({**STYLE, "svg.hashsalt": name}):
        figure.savefig(buffer, format="svg", metadata={"Date": None}, bbox_inches="tight")
    text = buffer.getvalue()
    return text[text.index("<svg"):].replace("<svg ", f'<svg class="chart" data-chart="{name}" ', 1)


def _dot(count: int) -> float:
    """A dot's area: smaller as a row holds more of them, so a thousand tries stay apart."""
    return 16.0 if count < 200 else 6.0


def _jitter(count: int) -> list[float]:
    """Offsets that spread a row's dots without randomness (the same report draws the same)."""
    return [((index * 0.618034) % 1.0 - 0.5) * 0.5 for index in range(count)]


def _steps(jobs: list[dict], order: list[str]) -> list[str]:
    seen = {j["step"] for j in jobs}
    return [s for s in order if s in seen] + sorted(seen - set(order))


def _legend(axes: Any, outcomes: set[str], extra: tuple[Any, ...] = (), **where: Any) -> None:
    handles = [Line2D([], [], marker="o", linestyle="", color=OUTCOME_COLOURS[o], label=o)
               for o in records.OUTCOMES if o in outcomes] + list(extra)
    if handles:
        axes.legend(handles=handles, frameon=False, fontsize=9, **where)


def outcomes(summary: dict[str, Any]) -> str | None:
    """Per step, how its files ended: one stacked bar per step."""
    steps = {name: step for name, step in (summary.get("steps") or {}).items() if isinstance(step, dict)}
    counts = {name: {o: int(step[o]) if isinstance(step.get(o), int) else 0 for o in records.OUTCOMES}
              for name, step in steps.items()}
    if not any(sum(c.values()) for c in counts.values()):
        return None
    with _style():
        figure = Figure(figsize=(WIDTH, 0.5 * len(counts) + 1.0))
        axes = figure.add_subplot()
        names = list(counts)[::-1]
        left = [0] * len(names)
        for outcome in records.OUTCOMES:
            values = [counts[n][outcome] for n in names]
            if any(values):
                bars = axes.barh(names, values, left=left, color=OUTCOME_COLOURS[outcome], label=outcome, height=0.6)
                # A count is written in its bar when the bar is wide enough to hold it.
                widest = max(sum(c.values()) for c in counts.values())
                axes.bar_label(bars, labels=[str(v) if v >= widest * 0.04 else "" for v in values],
                               label_type="center", color="white", fontsize=9)
                left = [a + b for a, b in zip(left, values, strict=True)]
        axes.set_xlabel("files")
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))
        axes.grid(axis="y", visible=False)
        axes.legend(frameon=False, fontsize=9, loc="upper left", bbox_to_anchor=(1.0, 1.0))
        return _svg(figure, "outcomes")


def durations(jobs: list[dict], order: list[str]) -> str | None:
    """Per step, how long each try took: a box of the distribution and a dot per try."""
    timed = [j for j in jobs if isinstance(j.get("wall_seconds"), (int, float))]
    if not timed:
        return None
    steps = _steps(timed, order)[::-1]
    with _style():
        figure = Figure(figsize=(WIDTH, 0.7 * len(steps) + 1.2))
        axes = figure.add_subplot()
        for row, step in enumerate(steps):
            mine = [j for j in timed if j["step"] == step]
            axes.boxplot([[j["wall_seconds"] for j in mine]], positions=[row], orientation="horizontal", widths=0.6,
                         showfliers=False, medianprops={"color": "#333333"}, boxprops={"color": "#888888"},
                         whiskerprops={"color": "#888888"}, capprops={"color": "#888888"})
            axes.scatter([j["wall_seconds"] for j in mine], [row + d for d in _jitter(len(mine))], s=_dot(len(mine)), zorder=3,
                         c=[OUTCOME_COLOURS[j["outcome"]] for j in mine], alpha=0.8, linewidths=0)
        axes.set_yticks(range(len(steps)), steps)
        axes.set_xlabel("seconds per try")
        axes.set_xlim(left=0)
        _legend(axes, {j["outcome"] for j in timed}, loc="upper left", bbox_to_anchor=(1.0, 1.0))
        return _svg(figure, "durations")


def memory(jobs: list[dict], order: list[str]) -> str | None:
    """Per step, each try's peak memory against the step's limit (a red line)."""
    measured = [j for j in jobs if isinstance(j.get("peak_memory_mib"), (int, float))]
    if not measured:
        return None
    steps = _steps(measured, order)[::-1]
    with _style():
        figure = Figure(figsize=(WIDTH, 0.7 * len(steps) + 1.2))
        axes = figure.add_subplot()
        top = 0.0
        for row, step in enumerate(steps):
            mine = [j for j in measured if j["step"] == step]
            peaks = [float(j["peak_memory_mib"]) for j in mine]
            limits = [float(j["memory_limit_mib"]) for j in mine if isinstance(j.get("memory_limit_mib"), (int, float))]
            axes.scatter(peaks, [row + d for d in _jitter(len(mine))], s=_dot(len(mine)), zorder=3, alpha=0.85, linewidths=0,
                         c=[OUTCOME_COLOURS[j["outcome"]] for j in mine])
            if limits:
                axes.plot([max(limits)] * 2, [row - 0.4, row + 0.4], color=LIMIT_COLOUR, linewidth=2, zorder=4)
                axes.annotate(f"limit {max(limits):.0f} MiB", (max(limits), row + 0.4), xytext=(-4, 2),
                              textcoords="offset points", ha="right", fontsize=8, color=LIMIT_COLOUR)
            top = max([top, *peaks, *limits])
        axes.set_yticks(range(len(steps)), steps)
        axes.set_ylim(-0.6, len(steps) - 0.2)
        axes.set_xlim(0, top * 1.08 or 1)
        axes.set_xlabel("peak memory of a try (MiB)")
        limit = Line2D([], [], color=LIMIT_COLOUR, linewidth=2, label="the step's limit")
        _legend(axes, {j["outcome"] for j in measured}, (limit,), loc="upper left", bbox_to_anchor=(1.0, 1.0))
        return _svg(figure, "memory")


def _time(value: Any) -> datetime | None:
    try:
        return records.parse_iso(value) if isinstance(value, str) else None
    except ValueError:
        return None


def _no_task(step: str) -> str:
    return f"(no task) {step}"


def timeline(jobs: list[dict], tasks: list[dict], order: list[str], opened_at: Any = None) -> str | None:
    """Each task as a row from its start to its stop, and on it the tries it ran, coloured by outcome."""
    # (row, start, stop, outcome) of each try with both times; a try without a task has a row per step.
    tries = [((j.get("task") or {}).get("id") or _no_task(j["step"]), begun, ended, j["outcome"], j)
             for j in jobs if (begun := _time(j.get("started_at"))) and (ended := _time(j.get("finished_at")))]
    if not tries and not tasks:
        return None
    steps: dict[str, str] = {t["id"]: str(t.get("step") or "") for t in tasks}
    spans: dict[str, list[datetime]] = {}
    for task in tasks:
        spans[task["id"]] = [moment for moment in (_time(task["started_at"]), _time(task.get("stopped_at"))) if moment]
    for row, begun, ended, _, job in tries:
        steps.setdefault(row, job["step"])
        # A task still running has no record: its start is in its jobs' `task`, its end is its last try's.
        spans.setdefault(row, [moment for moment in [_time((job.get("task") or {}).get("started_at"))] if moment])
        spans[row] += [begun, ended]
    moments = [m for span in spans.values() for m in span]
    zero = _time(opened_at) or min(moments)
    last = max([*moments, zero])
    scale, unit = (60.0, "minutes") if (last - zero).total_seconds() > 600 else (1.0, "seconds")

    def at(moment: datetime) -> float:
        return (moment - zero).total_seconds() / scale

    rank = {step: index for index, step in enumerate(order)}
    rows = sorted(spans, key=lambda r: (rank.get(steps[r], len(rank)), min(spans[r]), r))[::-1]
    with _style():
        figure = Figure(figsize=(WIDTH, min(0.22 * len(rows) + 1.4, 14)))
        axes = figure.add_subplot()
        for index, row in enumerate(rows):
            start, stop = min(spans[row]), max(spans[row])
            axes.barh(index, at(stop) - at(start), left=at(start), height=0.8, color=TASK_COLOUR, zorder=2)
        place = {row: index for index, row in enumerate(rows)}
        for row, begun, ended, outcome, _ in tries:
            axes.barh(place[row], at(ended) - at(begun), left=at(begun), height=0.5, zorder=3,
                      color=OUTCOME_COLOURS[outcome])
        if len(rows) <= LABELLED_TASKS:
            axes.set_yticks(range(len(rows)), [f"{steps[r]} · {r[:12]}" for r in rows], fontsize=8)
        else:
            names = [steps[r] for r in rows]
            middles = {n: sum(i for i, x in enumerate(names) if x == n) / names.count(n) for n in set(names)}
            axes.set_yticks(list(middles.values()), [f"{n} ({names.count(n)} tasks)" for n in middles])
        axes.grid(axis="y", visible=False)
        axes.set_xlabel(f"{unit} since the run opened")
        axes.set_xlim(left=min(0.0, at(min(moments))))
        task_patch = Patch(color=TASK_COLOUR, label="task running")
        _legend(axes, {t[3] for t in tries}, (task_patch,), loc="upper left", bbox_to_anchor=(1.0, 1.0))
        return _svg(figure, "timeline")
