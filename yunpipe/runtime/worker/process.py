"""Running a job's command: its own process group, stderr kept and copied, a timeout, a stop,
and the orphans a container's PID 1 must reap."""
from __future__ import annotations

import codecs
import contextlib
import dataclasses
import os
import signal
import subprocess
import sys
import threading
import time
from typing import Any, Mapping

STDERR_TAIL_BYTES = 4096
# SIGTERM first so the command can clean up, SIGKILL if it ignores it.
KILL_GRACE_SECONDS = 5


@dataclasses.dataclass
class RunOutcome:
    exit_code: int
    timed_out: bool
    interrupted: bool
    stderr_tail: str


def _kill_group(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


# The commands running now, by pid. Jobs run at once, so reaping orphans must leave alone the
# children whose exit status a job is waiting for.
_COMMANDS: set[int] = set()
_COMMANDS_LOCK = threading.Lock()


def _zombie_children() -> list[int]:
    """Our children that have exited and are not reaped yet (Linux /proc)."""
    me, found = str(os.getpid()), []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # gone meanwhile
        if fields[:2] == ["Z", me]:
            found.append(int(entry))
    return found


def _reap_orphans() -> None:
    """As PID 1 of a container the worker inherits the commands' orphaned processes and
    must reap them, or they pile up as zombies. Only zombies that are no running command are
    reaped, pid by pid, so it never steals the exit status another job's command will report."""
    with _COMMANDS_LOCK:
        for pid in _zombie_children():
            if pid not in _COMMANDS:
                with contextlib.suppress(ChildProcessError):
                    os.waitpid(pid, os.WNOHANG)


def _pump_stderr(stream: Any, tail: bytearray) -> None:
    """Copy the command's stderr to ours (CloudWatch) while keeping its last bytes."""
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    while True:
        chunk = stream.read1(65536)
        if not chunk:
            break
        sys.stderr.write(decoder.decode(chunk))
        sys.stderr.flush()
        tail.extend(chunk)
        del tail[:-STDERR_TAIL_BYTES]
    stream.close()


def run_command(
    argv: list[str],
    *,
    env: Mapping[str, str],
    stdin_path: str | None = None,
    stdout_path: str | None = None,
    timeout: float | None = None,
    stop: threading.Event | None = None,
) -> RunOutcome:
    """Run argv in its own process group; kill the group on timeout or when `stop` is set.
    Raises OSError when the program cannot be started."""
    # The files are the child's once it started: closed here right after.
    with contextlib.ExitStack() as files:
        stdin: Any = files.enter_context(open(stdin_path, "rb")) if stdin_path else subprocess.DEVNULL
        # Path adapter: the command's stdout is left on ours, so it reaches the task's log.
        stdout = files.enter_context(open(stdout_path, "wb")) if stdout_path else None
        # Registered before a reaper can see it exit.
        with _COMMANDS_LOCK:
            proc = subprocess.Popen(
                argv, stdin=stdin, stdout=stdout, stderr=subprocess.PIPE, env=dict(env), start_new_session=True
            )
            _COMMANDS.add(proc.pid)
    tail = bytearray()
    pump = threading.Thread(target=_pump_stderr, args=(proc.stderr, tail), daemon=True)
    pump.start()
    deadline = time.monotonic() + timeout if timeout else None
    timed_out = interrupted = False
    while True:
        try:
            proc.wait(timeout=0.1)
            break
        except subprocess.TimeoutExpired:
            pass
        timed_out = deadline is not None and time.monotonic() >= deadline
        interrupted = stop is not None and stop.is_set()
        if timed_out or interrupted:
            _kill_group(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=KILL_GRACE_SECONDS)
            except subprocess.TimeoutExpired:
                _kill_group(proc.pid, signal.SIGKILL)
                proc.wait()
            break
    # Reaped by the wait above: its pid is no running command's any more.
    with _COMMANDS_LOCK:
        _COMMANDS.discard(proc.pid)
    # Background processes the command left behind must not outlive the job (they would hold
    # the stderr pipe and leak into the next job).
    _kill_group(proc.pid, signal.SIGKILL)
    pump.join(timeout=KILL_GRACE_SECONDS)
    if os.getpid() == 1:
        _reap_orphans()
    return RunOutcome(
        exit_code=proc.returncode,
        timed_out=timed_out,
        interrupted=interrupted,
        stderr_tail=bytes(tail).decode("utf-8", errors="replace"),
    )
