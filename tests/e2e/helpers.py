"""Helpers of the end-to-end tests (their fixtures are in conftest.py): the CLI as a user runs
it, polling, and input folders."""
from __future__ import annotations

import contextlib
import io
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from yunpipe import cli


def run_cli(*argv: str) -> tuple[int, str]:
    """`yunpipe ARGV` as a user types it: (exit status, what it printed on stdout)."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        status = cli.main(list(argv))
    return status, out.getvalue()


def run_ok(*argv: str) -> str:
    status, out = run_cli(*argv)
    assert status == 0, f"`yunpipe {' '.join(argv)}` exited with {status}:\n{out}"
    return out


def wait_until(check: Callable[[], str | None], timeout: float, interval: float = 1.0,
               explain: Callable[[], str] = lambda: "") -> None:
    """Poll `check` (None when satisfied, else what is still missing) until `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        missing = check()
        if missing is None:
            return
        if time.monotonic() > deadline:
            pytest.fail(f"after {timeout:.0f} s: {missing}\n{explain()}")
        time.sleep(interval)


def write_inputs(folder: Path, files: dict[str, str]) -> Path:
    """A folder whose relative paths are the keys `yunpipe upload` will use."""
    for key, text in files.items():
        path = folder / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return folder

