"""status, logs and pipelines: what a deployed pipeline is doing, and which ones this machine set up."""
import argparse
import json
from dataclasses import asdict

from yunpipe.aws.reader import Reader
from yunpipe.commands.common import aws_options
from yunpipe.engine.state import require_summary
from yunpipe.operations import status
from yunpipe.operations.listing import ListedPipeline, list_pipelines
from yunpipe.operations.logs import LogsOptions, log_lines
from yunpipe.operations.reach import reach


def run_status(args: argparse.Namespace) -> int:
    summary = require_summary(args.pipeline)
    reader = Reader(reach(aws_options(args), args.pipeline, summary))
    collected = status.collect(reader, summary, failures=None if args.all else 5)
    print(json.dumps(status.as_document(summary, collected), indent=2, default=str) if args.json
          else status.render(summary, collected))
    return 0


def run_logs(args: argparse.Namespace) -> int:
    for line in log_lines(LogsOptions(args.pipeline, args.step, args.follow, aws_options(args))):
        print(line)
    return 0


def render_pipelines(pipelines: list[ListedPipeline]) -> str:
    width = max(len(p.name) for p in pipelines)
    lines = []
    for p in pipelines:
        if p.problem:
            lines.append(f"{p.name:<{width}}  {p.problem}")
        else:
            lines.append(f"{p.name:<{width}}  {p.region}  {p.where}  {len(p.steps)} step(s)  "
                         f"{p.input_bucket} -> {p.output_bucket}")
    return "\n".join(lines)


def run_pipelines(args: argparse.Namespace) -> int:
    pipelines = list_pipelines()
    if args.json:
        print(json.dumps([asdict(p) for p in pipelines], indent=2))
    elif pipelines:
        print(render_pipelines(pipelines))
    else:
        print("No pipelines set up from this machine (setup-pipe records them)")
    return 0
