"""try and replay: one job of a wrapped image on this machine, in Docker."""
import argparse
import sys

from yunpipe.commands.common import aws_options
from yunpipe.operations import onejob


def _print(finished: onejob.Finished, tail: bool = True) -> int:
    """The outcome, the result or the stderr tail; 0 for an ok job, 1 for a failed one."""
    print(onejob.describe(finished))
    if finished.ok:
        print(f"result: {finished.result}" if finished.result else "result: not kept (--output PATH keeps it)")
        return 0
    tail_text = onejob.stderr_tail(finished) if tail else ""
    if tail_text:
        print(f"--- stderr (last lines) ---\n{tail_text}")
    return 1


def run_try(args: argparse.Namespace) -> int:
    from yunpipe.operations.tryout import TryOptions, try_algorithm

    record, finished = try_algorithm(TryOptions(args.algorithm, args.file, tuple(args.var or ()), args.output))
    print(f"{record.reference} on {args.file}: ", end="")
    return _print(finished)


def run_replay(args: argparse.Namespace) -> int:
    from yunpipe.operations.replay import ReplayOptions, replay

    options = ReplayOptions(args.pipeline, args.report, args.step, args.key, args.shell, args.output,
                            aws_options(args))
    outcome = replay(options)
    if isinstance(outcome, int):  # the shell's exit status
        return outcome
    # The command's own output, whole, as the task's log would have shown it.
    sys.stdout.write(onejob.command_stdout(outcome))
    sys.stderr.write(outcome.stderr)
    sys.stderr.flush()
    print(f"{options.pipeline}: replayed ", end="")
    return _print(outcome, tail=False)
