"""A run's report as one self-contained HTML file: its CSS and its charts (charts.py, inline SVG)
are in the page, so it opens offline, from an e-mail or an archive, with no JavaScript.
"""
from datetime import datetime, timezone

import jinja2

from yunpipe.engine.state import PipelineSummary
from yunpipe.operations import charts
from yunpipe.operations.report import Report, amount, duration, step_line, took
from yunpipe.operations.runs import mapping


def render(report: Report, summary: PipelineSummary, now: datetime | None = None) -> str:
    document, found = report.summary, report.records
    order = [s.name for s in summary.steps]
    environment = jinja2.Environment(loader=jinja2.PackageLoader("yunpipe.templates", "report"),
                                     autoescape=True)
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
    steps, spent = mapping(document.get("steps")), mapping(document.get("cost"))
    return environment.get_template("report.html.j2").render(
        document=document, summary=summary, figures=figures,
        steps=[step_line(name, step) for name, step in steps.items()],
        failures=[f for f in document.get("failures") or [] if isinstance(f, dict)],
        took=duration(took(document, now)), cost=amount(spent), estimated=bool(spent.get("estimated")),
        assumptions=spent.get("assumptions") or [],
        written=(now or datetime.now(timezone.utc)).isoformat(timespec="seconds"))
