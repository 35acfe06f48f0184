"""doctor: the account, and the workflows given, checked before a deploy (read-only); one line
per check from yunpipe.operations.doctor. Exit 1 when something would stop setup-pipe."""
import argparse

from yunpipe.commands.common import aws_options
from yunpipe.operations.doctor import DoctorOptions, run_checks


def run_doctor(args: argparse.Namespace) -> int:
    checks = run_checks(DoctorOptions(tuple(args.files or ()), aws_options(args)))
    for check in checks:
        print(check.line())
    blocking = sum(1 for c in checks if not c.ok and c.blocking)
    warnings = sum(1 for c in checks if not c.ok and not c.blocking)
    if blocking:
        print(f"{blocking} problem(s) would stop setup-pipe (✗), {warnings} warning(s) (!).")
        return 1
    print(f"Nothing stops setup-pipe; {warnings} warning(s) (!).")
    return 0
