"""A run's report as one self-contained HTML file: its CSS and its charts (charts.py, inline SVG)
are in the page, so it opens offline, from an e-mail or an archive, with no JavaScript.
"""
from datetime import datetime, timezone

import jinja2

from yunpipe.engine.state import PipelineSummary
from yunpipe.operations import charts
from yunpipe.operations.report import Report, amount, duration, step_lines, took
from yunpipe.operations.runs import is_number, mapping
from yunpipe.runtime.accounting import records

# A page of more failures than this is not read but searched: --json has them all.
FAILURES_SHOWN = 200


def render(report: Report, summary: PipelineSummary, now: datetime | None = None) -> str:
    document, found = report.summary, report.records
    order = [s.name for s in summary.steps]
    environment = jinja2.Environment(loader=jinja2.PackageLoader("yunpipe.templates", "report"), autoescape=True)
    figures = [
        ("How the files ended, per step", charts.outcomes(document),
         "No file has finished a step yet."),
        ("Time per try, per step", charts.durations(found.jobs, order),
         "No try has recorded its time yet."),
        ("Tasks and the tries they ran", charts.timeline(found.jobs, found.tasks, order, document.get("opened_at")),
         "No task has recorded its work yet."),
        ("Peak memory against the step's limit", charts.memory(found.jobs, order),
         "No try has recorded its memory yet."),
    ]
    spent = mapping(document.get("cost"))
    failures = [f for f in document.get("failures") or [] if isinstance(f, dict)]
    seconds = document.get("task_seconds")
    # A settled run is read from its summary; an open one (or an unreadable summary) from its records.
    source = records.run_prefix(summary.pipeline, found.run) if found.summary is None else \
        records.summary_key(summary.pipeline, found.run)
    return environment.get_template("report.html.j2").render(
        document=document, summary=summary, figures=figures, steps=step_lines(document),
        failures=failures[:FAILURES_SHOWN], failed=len(failures), took=duration(took(document, now)),
        seconds=f"{seconds:.1f}" if is_number(seconds) else "?",
        cost=amount(spent), estimated=bool(spent.get("estimated")), assumptions=spent.get("assumptions") or [],
        written=(now or datetime.now(timezone.utc)).isoformat(timespec="seconds"),
        source=f"s3://{summary.reports_bucket}/{source}")
