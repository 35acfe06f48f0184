"""The pictures of the dashboard: a pipeline's graph drawn by Graphviz (`dot`, when installed:
Debian's graphviz package) from the same DOT as `yunpipe show --dot`, and a run's charts.

The run charts are `yunpipe report --html`'s (operations.charts: matplotlib, inline SVG), so the page
and the report file show the same pictures.
"""
from __future__ import annotations

import functools
import shutil
import subprocess

from yunpipe.engine import graph
from yunpipe.operations import charts
from yunpipe.operations.report import Report

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


def run_charts(report: Report, order: list[str]) -> list[tuple[str, str | None, str]]:
    """The run's charts as `yunpipe report --html` draws them (matplotlib, inline SVG): (title,
    <svg> or None, what to say when there is nothing to draw yet)."""
    document, found = report.summary, report.records
    return [
        ("How the files ended, per step", charts.outcomes(document), "No file has finished a step yet."),
        ("Time per try, per step", charts.durations(found.jobs, order), "No try has recorded its time yet."),
        ("Tasks and the tries they ran", charts.timeline(found.jobs, found.tasks, order, document.get("opened_at")),
         "No task has recorded its work yet."),
        ("Peak memory against the step's limit", charts.memory(found.jobs, order), "No try has recorded its memory yet."),
    ]
