"""submit and retry: put work into a deployed pipeline by hand, or drop dead letters (yunpipe.operations.backfill)."""
import argparse
import sys

from yunpipe.commands.common import aws_options
from yunpipe.errors import InputError
from yunpipe.operations.backfill import (
    RetryOptions,
    SubmitOptions,
    dead_letters,
    discard_dead_letters,
    retry,
    submit,
    wake_launcher,
)
from yunpipe.operations.opening import follow_lines


def run_submit(args: argparse.Namespace) -> int:
    submitted = submit(SubmitOptions(args.pipeline, args.prefix, args.step, args.gather, args.name, aws_options(args),
                                     force=args.force))
    step = submitted.step
    if submitted.gathered is not None:
        print(f"Queued a gather message '{submitted.gathered}' for s3://{step.input_bucket}/{args.prefix} "
              f"to step {step.name}")
    else:
        print(f"Queued {submitted.count} object(s) of s3://{step.input_bucket}/{args.prefix} to step {step.name}")
        if not submitted.count:
            return 0
    wake_launcher(submitted.aws, step)
    print(f"Invoked launcher {step.function}: workers start now")
    for line in follow_lines(args.pipeline, submitted.run):
        print(line)
    return 0


def run_retry(args: argparse.Namespace) -> int:
    options = RetryOptions(args.pipeline, args.step, aws_options(args))
    if args.discard:
        return _discard(options, args.yes)
    if args.yes:
        raise InputError("retry", "--yes", "expected only with --discard (retry itself asks nothing)")
    for retried in retry(options):
        step = retried.step
        if retried.newest:
            print(f"warning: step {step.name} runs {retried.runs}, but {retried.newest} is the newest recorded: its "
                  f"retried files run {retried.runs} again. To move the step, run setup-pipe again with its workflow "
                  f"(where it pins {retried.runs}, write {retried.newest}, or {retried.newest.split('@')[0]} for the "
                  "newest at each setup-pipe), then retry")
        if retried.stopped:
            print(f"step {step.name}: stopped {retried.stopped} task(s) started from an older task definition "
                  "(they have exited)")
        print(f"step {step.name}: moved {retried.moved} message(s) from {step.dead_letter_queue} back to {step.queue}")
        if retried.waiting:
            print(f"step {step.name}: {retried.waiting} message(s) wait in {step.queue}; "
                  f"invoked launcher {step.function}: workers start now")
    return 0


def _discard(options: RetryOptions, yes: bool) -> int:
    held = [letters for letters in dead_letters(options) if letters.count]
    if not held:
        print("No dead letter to discard.")
        return 0
    listing = "; ".join(f"step {d.step.name}: {d.count} in {d.step.dead_letter_queue} (reports: {d.reports})"
                        for d in held)
    if not yes:
        if not sys.stdin.isatty():
            raise InputError("retry --discard", "--yes", f"expected --yes to discard without a terminal to ask ({listing})")
        print(f"Dead letters to discard, never to be retried: {listing}. Their failure reports stay.")
        if input("Discard them? [y/N] ").strip().lower() not in ("y", "yes"):
            print("Nothing was discarded.")
            return 1
    for step, count in discard_dead_letters(options):
        if count:
            print(f"step {step.name}: discarded {count} message(s) from {step.dead_letter_queue}; "
                  "their failure reports stay")
    return 0
