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
    start, seen = 0, set()
    while True:
        for event in aws.pages("logs", "filter_log_events", "events", startTime=start, **params):
            # Checked here too: some emulators ignore logStreamNamePrefix.
            if event["eventId"] in seen or not event["logStreamName"].startswith(prefix):
                continue
            seen.add(event["eventId"])
            start = max(start, event["timestamp"])
            yield f"{event['logStreamName'].split('/', 1)[0]} | {event['message'].rstrip()}"
        if not options.follow:
            return
        sleep(FOLLOW_SECONDS)
