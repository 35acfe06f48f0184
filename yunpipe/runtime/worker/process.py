"""Running a job's command: its own process group, stderr kept and copied, a timeout, a stop,
the orphans a container's PID 1 must reap, and what the command used (its rusage, and whether
the kernel killed it for the task's memory limit)."""
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

from .cgroup import MemoryCgroup

STDERR_TAIL_BYTES = 4096
# SIGTERM first so the command can clean up, SIGKILL if it ignores it.
KILL_GRACE_SECONDS = 5
# The command is polled for its exit (os.wait4, which gives its rusage, has no timeout): first
# often, so a quick command's job ends at once, then at most this often.
POLL_MAX_SECONDS = 0.05




@dataclasses.dataclass
class RunOutcome:
    exit_code: int
    timed_out: bool
    interrupted: bool
    stderr_tail: str
    # The command and the descendants it waited for: user + system CPU, the largest one's peak RSS.
    cpu_seconds: float = 0.0
    peak_memory_mib: float = 0.0
    # Killed by SIGKILL while the cgroup's OOM-kill counter rose: it exceeded the task's memory.
    oom: bool = False


def _reset_peak_memory() -> None:
    """Lower the worker's own peak RSS to its current RSS (Linux 4.0+, clear_refs "5").

    The kernel starts a command's peak RSS (ru_maxrss) at the peak of the memory it was exec'd
    from, and Popen execs from the worker's (vfork): without this, every command would report at
    least the most the worker ever held (a large transfer's buffers). So a command's peak is
    exact when above the worker's resident memory at its start, and that at most otherwise."""
    with contextlib.suppress(OSError), open("/proc/self/clear_refs", "w") as handle:
        handle.write("5")


def _exit_code(status: int) -> int:
    """Popen's returncode of a wait status: the exit status, or minus the signal that killed it
    (os.waitstatus_to_exitcode is Python 3.9+)."""
    return -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)


def _killed(exit_code: int) -> bool:
    """SIGKILL ended the command, or the shell that ran it reported a child's SIGKILL (128 + 9)."""
    return exit_code in (-signal.SIGKILL, 128 + signal.SIGKILL)


def _wait(pid: int, timeout: float | None) -> tuple[int, Any] | None:
    """The command's (wait status, rusage) once it exited, or None after `timeout` seconds."""
    deadline = None if timeout is None else time.monotonic() + timeout
    delay = 0.0005
    while True:
        reaped, status, usage = os.wait4(pid, os.WNOHANG)
        if reaped:
            return status, usage
        if deadline is not None and time.monotonic() >= deadline:
            return None
        time.sleep(delay if deadline is None else max(0.0, min(delay, deadline - time.monotonic())))
        delay = min(delay * 2, POLL_MAX_SECONDS)


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
    cgroup: MemoryCgroup | None = None,
) -> RunOutcome:
    """Run argv in its own process group; kill the group on timeout or when `stop` is set.
    `cgroup`, when given, is read before and after to tell an OOM kill. Raises OSError when the
    program cannot be started."""
    oom_before = cgroup.oom_kills() if cgroup else None
    # The files are the child's once it started: closed here right after.
    with contextlib.ExitStack() as files:
        stdin: Any = files.enter_context(open(stdin_path, "rb")) if stdin_path else subprocess.DEVNULL
        # Path adapter: the command's stdout is left on ours, so it reaches the task's log.
        stdout = files.enter_context(open(stdout_path, "wb")) if stdout_path else None
        # Registered before a reaper can see it exit.
        with _COMMANDS_LOCK:
            _reset_peak_memory()
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
        # Reaped here with os.wait4 rather than by Popen.wait, for the command's rusage.
        ended = _wait(proc.pid, 0.1)
        if ended:
            break
        timed_out = deadline is not None and time.monotonic() >= deadline
        interrupted = stop is not None and stop.is_set()
        if timed_out or interrupted:
            _kill_group(proc.pid, signal.SIGTERM)
            ended = _wait(proc.pid, KILL_GRACE_SECONDS)
            if ended is None:
                _kill_group(proc.pid, signal.SIGKILL)
                ended = _wait(proc.pid, None)
            break
    assert ended is not None  # the last wait above has no timeout
    status, usage = ended
    # Popen's own record: it must not wait for (or, on a later Popen, reap) the pid again.
    proc.returncode = _exit_code(status)
    # Reaped by the wait above: its pid is no running command's any more.
    with _COMMANDS_LOCK:
        _COMMANDS.discard(proc.pid)
    # Background processes the command left behind must not outlive the job (they would hold
    # the stderr pipe and leak into the next job).
    _kill_group(proc.pid, signal.SIGKILL)
    pump.join(timeout=KILL_GRACE_SECONDS)
    if os.getpid() == 1:
        _reap_orphans()
    oom_after = cgroup.oom_kills() if cgroup else None
    oom = (_killed(proc.returncode) and not (timed_out or interrupted)
           and oom_before is not None and oom_after is not None and oom_after > oom_before)
    return RunOutcome(
        exit_code=proc.returncode,
        timed_out=timed_out,
        interrupted=interrupted,
        stderr_tail=bytes(tail).decode("utf-8", errors="replace"),
        cpu_seconds=usage.ru_utime + usage.ru_stime,
        # Linux gives ru_maxrss in KiB.
        peak_memory_mib=usage.ru_maxrss / 1024,
        oom=oom,
    )
