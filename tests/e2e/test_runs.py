"""End to end: a run opened by `yunpipe upload`, settled by a wrapped worker in Docker.

The job records here are written by the test, standing in for the worker's own (issue 23's
measurement, a branch of its own): what is real is upload opening the run (manifest, metadata),
setup-pipe's descriptor, and the worker of a later job settling the run from its container
through the local cloud's S3 when its queue comes back empty.
"""
import json

import pytest

from yunpipe.runtime.accounting import records

from .helpers import run_ok, wait_until, write_inputs

pytestmark = pytest.mark.e2e


def test_a_worker_settles_an_uploaded_run_once_every_file_has_its_end(pipeline, tmp_path):
    chain = pipeline([{"name": "uppercase"}, {"name": "checksum"}], idle_seconds=5)
    reports, s3 = chain.summary.reports_bucket, chain.aws("s3")
    first, second = (step.name for step in chain.summary.steps)
    inputs = {f"doc-{index}.txt": f"document {index}\n" for index in range(3)}
    printed = run_ok("upload", "--local", chain.name, str(write_inputs(tmp_path / "in", inputs)))
    [run] = [line.split()[1].rstrip(":") for line in printed.splitlines() if line.startswith("Run ")]
    manifest = json.loads(s3.get_object(Bucket=reports, Key=records.manifest_key(chain.name, run))["Body"].read())
    assert sorted(i["key"] for i in manifest["inputs"]) == sorted(inputs)
    assert s3.head_object(Bucket=chain.input_bucket, Key="doc-0.txt")["Metadata"] == {records.RUN_METADATA: run}
    wait_until(lambda: None if len(chain.results()) == 3 else f"{len(chain.results())} of 3 results", 150,
               explain=chain.diagnosis)
    # Every file's end in both steps, as the workers record them.
    for step in (first, second):
        for key in inputs:
            record = records.job_record(pipeline=chain.name, run=run, step=step, key=key, outcome="ok", attempt=1,
                                        final=True, results=[key], wall_seconds=1.0,
                                        started_at="2026-12-07T12:00:00Z", finished_at="2026-12-07T12:00:01Z")
            s3.put_object(Bucket=reports, Key=records.job_record_key(record), Body=json.dumps(record).encode())
    assert records.summary_key(chain.name, run) not in _keys(s3, reports, records.run_prefix(chain.name, run))
    # The next file's worker finds its queue empty after its job, and settles the run.
    run_ok("upload", "--local", chain.name, str(write_inputs(tmp_path / "more", {"later.txt": "later\n"})))
    wait_until(lambda: None if records.summary_key(chain.name, run) in _keys(s3, reports, records.run_prefix(
        chain.name, run)) else "no summary yet", 150, explain=chain.diagnosis)
    summary = json.loads(s3.get_object(Bucket=reports, Key=records.summary_key(chain.name, run))["Body"].read())
    assert (summary["inputs"], summary["jobs"], summary["failures"]) == (3, 6, [])
    assert {step: counts["ok"] for step, counts in summary["steps"].items()} == {first: 3, second: 3}
    assert records.open_key(chain.name, run) not in _keys(s3, reports, records.open_prefix(chain.name))
    logs = run_ok("logs", chain.name, "--local")
    assert f"settled run(s) {run}" in logs
    assert "could not settle" not in logs and "cannot be settled" not in logs


def _keys(s3, bucket: str, prefix: str) -> set[str]:
    return {o["Key"] for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
            for o in page.get("Contents", [])}
