"""A pipeline's task logs (CloudWatch Logs), as lines "<container> | <message>"."""
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from yunpipe.aws.location import AwsOptions
from yunpipe.engine import model as m
from yunpipe.engine.state import require_summary
from yunpipe.errors import InputError
from yunpipe.operations.reach import reach

FOLLOW_SECONDS = 2
LATE_MS = 30_000


@dataclass(frozen=True)
class LogsOptions:
    pipeline: str
    step: str | None = None  # only this step
    follow: bool = False  # keep reading new lines
    where: AwsOptions = field(default_factory=AwsOptions)


def log_lines(options: LogsOptions, sleep: Callable[[float], None] = time.sleep) -> Iterator[str]:
    """Every line so far; with follow, then new ones as they come, until the caller stops."""
    summary = require_summary(options.pipeline)
    aws = reach(options.where, options.pipeline, summary)
    steps = [s.name for s in summary.steps]
    if options.step and options.step not in steps:
        raise InputError("logs", "--step", f"expected one of the pipeline's steps ({', '.join(steps)}), got '{options.step}'")
    params = {"logGroupName": summary.log_group}
    prefix = f"{m.container_name(options.step)}/" if options.step else ""
    if prefix:
        params["logStreamNamePrefix"] = prefix
    newest, seen = 0, set()
    while True:
        # Each pass looks back LATE_MS before the newest line seen: a task's line can arrive after
        # another task's later one; those seen already are skipped by id.
        start = max(0, newest - LATE_MS)
        events = [event for event in aws.pages("logs", "filter_log_events", "events", startTime=start, **params)
                  # Checked here too: some emulators ignore logStreamNamePrefix.
                  if event["eventId"] not in seen and event["logStreamName"].startswith(prefix)]
        # One time order across every task's stream: FilterLogEvents pages need not interleave them.
        for event in sorted(events, key=lambda e: (e["timestamp"], e.get("ingestionTime", 0), e["eventId"])):
            seen.add(event["eventId"])
            newest = max(newest, event["timestamp"])
            yield f"{event['logStreamName'].split('/', 1)[0]} | {event['message'].rstrip()}"
        if not options.follow:
            return
        sleep(FOLLOW_SECONDS)
