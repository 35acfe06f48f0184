"""runs and report: a pipeline's runs, open and settled, and one run's report as text, JSON or HTML."""
import argparse
import json
from pathlib import Path

from yunpipe.aws.reader import Reader
from yunpipe.commands.common import aws_options
from yunpipe.engine.state import require_summary
from yunpipe.errors import InputError
from yunpipe.operations import report, runs
from yunpipe.operations.reach import reach


def run_runs(args: argparse.Namespace) -> int:
    summary = require_summary(args.pipeline)
    reader = Reader(reach(aws_options(args), args.pipeline, summary))
    listed = runs.all_progress(reader, summary)
    print(json.dumps(listed, indent=2) if args.json else runs.render(summary, listed))
    return 0


def html_path(value: str) -> Path:
    """Where --html writes: a file in a folder that exists (checked before anything is read)."""
    path = Path(value)
    if path.is_dir() or not path.parent.is_dir():
        raise InputError("report", "--html", f"expected a file in an existing folder, got '{value}'")
    return path


def run_report(args: argparse.Namespace) -> int:
    path = html_path(args.html) if args.html else None
    summary = require_summary(args.pipeline)
    reader = Reader(reach(aws_options(args), args.pipeline, summary))
    run = runs.require_run(runs.list_runs(reader, summary), args.pipeline, args.run)
    # Text and JSON of a settled run need its summary alone; the charts need every record.
    built = report.build(reader, summary, run, jobs=bool(args.html))
    if args.json:
        print(json.dumps(built.summary, indent=2))
    elif path:
        # matplotlib takes a second to import: only the HTML report loads it.
        from yunpipe.operations import report_html
        partial = path.with_name(f".{path.name}.partial")
        try:
            partial.write_text(report_html.render(built, summary), encoding="utf-8")
            partial.replace(path)  # a reader never finds half a report
        finally:
            partial.unlink(missing_ok=True)
        state = "open, so far" if built.summary.get("open") else "settled"
        print(f"Report of run {run} ({state}) written to {path}")
    else:
        print(report.render(built.summary))
    return 0
