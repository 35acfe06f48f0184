"""Helpers of the end-to-end tests (their fixtures are in conftest.py): the CLI as a user runs
it, polling, and input folders."""
from __future__ import annotations

import contextlib
import io
import json
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from yunpipe import cli
from yunpipe.runtime.accounting import records


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


def job_records(s3, bucket: str, prefix: str) -> dict[str, dict]:
    """Every job record under `prefix` of the reports bucket by the key it has on its own: an ends/
    or tries/ record's, and each record of a page by the ends/ key it would have. A job done twice
    (in two pages) keeps its latest record, as a rewritten ends/ record would."""
    found: dict[str, dict] = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            key = item["Key"]
            if "/ends/" not in key and "/tries/" not in key and "/pages/" not in key:
                continue
            body = json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
            if "/pages/" not in key:
                found[key] = body
                continue
            for record in records.page_records(body):
                end = records.end_key(record["pipeline"], record["run"], record["step"], record["key"])
                if end not in found or found[end]["finished_at"] < record["finished_at"]:
                    found[end] = record
    return found
