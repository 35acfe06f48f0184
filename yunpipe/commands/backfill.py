"""submit and retry: put work into a deployed pipeline by hand (yunpipe.operations.backfill)."""
import argparse

from yunpipe.commands.common import aws_options
from yunpipe.operations.backfill import RetryOptions, SubmitOptions, retry, submit, wake_launcher


def run_submit(args: argparse.Namespace) -> int:
    submitted = submit(SubmitOptions(args.pipeline, args.prefix, args.step, args.gather, args.name, aws_options(args)))
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
    return 0


def run_retry(args: argparse.Namespace) -> int:
    for retried in retry(RetryOptions(args.pipeline, args.step, aws_options(args))):
        step = retried.step
        if retried.stopped:
            print(f"step {step.name}: stopped {retried.stopped} task(s) started from an older task definition")
        print(f"step {step.name}: moved {retried.moved} message(s) from {step.dead_letter_queue} back to {step.queue}")
    return 0
