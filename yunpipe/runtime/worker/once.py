"""One job from a file on this machine, with no AWS at all: what `yunpipe try` and `yunpipe
replay` run in the wrapped image (`entrypoint.py --one-job FILE [--shell]`).

The file is staged where a task's job would download its object (the runscript's own paths),
and the command runs as in a task (run_staged: adapters, variables from the environment,
timeout, OOM verdict). The result stays at the job's output path, for the host to copy out of
the container; stdout ends with a ONE_JOB_MARKER line holding the outcome as JSON. The exit
status is 0 for an ok job, 1 for a failed one, CONFIG_ERROR_EXIT for a bad configuration.
With --shell the input is staged and a shell started in the command's environment instead.
"""
from __future__ import annotations

import dataclasses
import json
import os
import shutil
import sys
import time
from typing import Mapping

from ..contract import CONFIG_ERROR_EXIT, ONE_JOB_MARKER, ONE_JOB_SHELL_FLAG, WorkerConfig
from .algorithm import check_variables, command_env, load_algorithm
from .job import Measured, run_staged
from .ledger import FAILURE_OUTCOMES, Ledger
from .message import JobFailure
from .paths import local_paths, result_objects
from .staging import Staged


def _stage(algorithm: dict, source: str) -> Staged:
    input_path, output_path = local_paths(algorithm, os.path.basename(source))
    os.makedirs(os.path.dirname(input_path), exist_ok=True)
    os.makedirs(os.path.dirname(output_path), exist_ok=True)
    shutil.copyfile(source, input_path)
    return Staged(os.path.basename(source), input_path, output_path)


def _shell(algorithm: dict, staged: Staged, environ: Mapping[str, str]) -> int:
    print(f"input staged at {staged.input_path}; the job's command writes {staged.output_path}\n"
          f"its command: {algorithm['run_command']}  ($input, $output as above)", file=sys.stderr, flush=True)
    shell = next((s for s in ("/bin/bash", "/bin/sh") if os.path.exists(s)), "sh")
    os.execvpe(shell, [shell], command_env(algorithm, environ))
    return 0  # not reached: exec replaces this process


def _outcome(algorithm: dict, staged: Staged, config: WorkerConfig, environ: Mapping[str, str]) -> dict:
    ledger = Ledger(config, None, environ=environ)
    measured = Measured()
    failure = None
    try:
        run_staged(config, algorithm, staged, environ, None, ledger, measured)
        if not result_objects("", staged.key, staged.output_path):
            what = "is an empty directory" if os.path.isdir(staged.output_path) else "was not created"
            raise JobFailure("missing_output", f"output {staged.output_path} {what}",
                             measured.command.exit_code if measured.command else None)
    except JobFailure as exc:
        failure = exc
    command = measured.command
    return {
        "outcome": "ok" if failure is None else FAILURE_OUTCOMES.get(failure.reason, "failed"),
        "reason": failure.reason if failure else None,
        "detail": failure.detail if failure else None,
        "exit_code": command.exit_code if command else None,
        "seconds": round(time.monotonic() - measured.t0, 3),
        "cpu_seconds": round(command.cpu_seconds, 3) if command else None,
        "peak_memory_mib": round(command.peak_memory_mib, 1) if command else None,
        "memory_limit_mib": ledger.memory_limit_mib,
        "stderr_tail": command.stderr_tail if command else "",
        "output_path": staged.output_path,
    }


def run_one(args: list[str], environ: Mapping[str, str]) -> int:
    """`--one-job FILE [--shell]` (args after the flag)."""
    if not args or args[1:] not in ([], [ONE_JOB_SHELL_FLAG]):
        print(f"yunpipe runscript: expected FILE [{ONE_JOB_SHELL_FLAG}] after the one-job flag, got {args}",
              file=sys.stderr)
        return CONFIG_ERROR_EXIT
    try:
        config = WorkerConfig.from_env(environ, strict=False)
        algorithm = load_algorithm(config.algorithm_path)
        check_variables(algorithm, environ)
        staged = _stage(algorithm, args[0])
    except (OSError, ValueError) as exc:
        print(f"yunpipe runscript: configuration error: {exc}", file=sys.stderr, flush=True)
        return CONFIG_ERROR_EXIT
    if args[1:]:
        return _shell(algorithm, staged, environ)
    # Nothing is recorded: no reports bucket, no accounting.
    outcome = _outcome(algorithm, staged, dataclasses.replace(config, accounting=False, report_bucket=None), environ)
    sys.stderr.flush()
    print(f"{ONE_JOB_MARKER} {json.dumps(outcome, sort_keys=True)}", flush=True)
    return 0 if outcome["outcome"] == "ok" else 1
