"""The pictures of the dashboard: a pipeline's graph drawn by Graphviz (`dot`, when installed:
Debian's graphviz package) from the same DOT as `yunpipe show --dot`, and a run's charts.

The run charts are plain HTML bars for now; `yunpipe report --html`'s matplotlib charts take their
place here when they land (one function, run_charts, is what the run page calls).
"""
from __future__ import annotations

import functools
import shutil
import subprocess
from typing import Any

from yunpipe.engine import graph
from yunpipe.runtime.accounting import records

DOT_SECONDS = 20


@functools.lru_cache(maxsize=64)
def _svg(source: str) -> str | None:
    dot = shutil.which("dot")
    if dot is None:
        return None
    try:
        # Where the DOT file says nothing (`show --dot` stays as it is): the page's own sans-serif,
        # and room under each step for the counts the page writes there.
        done = subprocess.run([dot, "-Tsvg", *(f"-{kind}fontname=DejaVu Sans,sans-serif" for kind in "GNE"),
                               "-Gnodesep=0.5", "-Gpad=0.25"], input=source.encode(), capture_output=True, timeout=DOT_SECONDS,
                              check=True)
    except (subprocess.SubprocessError, OSError):
        return None
    svg = done.stdout.decode("utf-8", "replace")
    # Inline in the page: without the XML declaration and DOCTYPE that come before the element.
    return svg[svg.find("<svg"):] if "<svg" in svg else None


def graph_svg(layout: graph.Layout, name: str) -> str | None:
    """The graph as inline SVG (each step a node whose <title> is its name), None without Graphviz."""
    return _svg(graph.dot(layout, name))


def _bar(label: str, value: float | None, whole: float, text: str, kind: str = "") -> dict[str, Any]:
    share = 0.0 if not value or not whole else min(100.0, 100 * value / whole)
    return {"label": label, "pc": share, "text": text, "kind": kind}


def run_charts(report: dict[str, Any]) -> list[tuple[str, list[dict[str, Any]]]]:
    """The run's charts, as (title, bars): outcomes per step, wall time per step (p50, p95, max)
    and peak memory against the step's limit."""
    steps = report.get("steps") or {}
    outcomes, durations, memory = [], [], []
    most = max([sum(int(c.get(o) or 0) for o in records.OUTCOMES) for c in steps.values()] or [0])
    slowest = max([float((c.get("wall_seconds") or {}).get("max") or 0) for c in steps.values()] or [0])
    for step, counts in steps.items():
        for outcome in records.OUTCOMES:
            if counts.get(outcome):
                outcomes.append(_bar(f"{step} {outcome}", counts[outcome], most, str(counts[outcome]), outcome))
        for at, value in (counts.get("wall_seconds") or {}).items():
            durations.append(_bar(f"{step} {at}", value, slowest, f"{value:.1f} s"))
        peak, limit = counts.get("peak_memory_mib") or {}, counts.get("memory_limit_mib")
        if peak.get("max") is not None:
            whole = float(limit or peak["max"])
            of = f" of {limit:.0f} MiB" if limit else ""
            memory.append(_bar(f"{step} max", peak["max"], whole, f"{peak['max']:.0f} MiB{of}",
                               "oom" if limit and peak["max"] >= 0.9 * limit else ""))
    return [(title, bars) for title, bars in (("Outcomes per step", outcomes), ("Wall time per step", durations),
                                               ("Peak memory against the step's limit", memory)) if bars]
