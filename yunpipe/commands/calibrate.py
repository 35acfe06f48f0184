"""calibrate: size a step from a sample on the local cloud (yunpipe.operations.calibrate)."""
import argparse

from yunpipe.commands.common import aws_options


def run_calibrate(args: argparse.Namespace) -> int:
    from yunpipe.operations.calibrate import CalibrateOptions, calibrate
    from yunpipe.operations.calibrate_advice import render

    options = CalibrateOptions(args.algorithm, args.sample, args.files, aws_options(args).region, args.write)
    done = calibrate(options, lambda line: print(f"==> {line}", flush=True))
    print(render(done.reference, list(done.trials), done.advice, done.projection))
    if done.written:
        print(f"Wrote cpu, memory, parallelism and files_per_task to {done.written}")
    return 0
