"""Opening a run for the files `yunpipe upload` and `submit` send (runtime/accounting): its name,
taken with a conditional write of its manifest, and the manifest listing what it sends. The
pipeline's descriptor (written by setup-pipe) says whether it accounts for its work: a pipeline
set up before accounting, or with `accounting: false`, gets no run.

The manifest lists the inputs before they are sent, so a run can never settle before its last
file is known. When sending stops half-way, the manifest is rewritten to list what was sent,
else the run would wait for files that never come.
"""
import json
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from yunpipe.aws.facade import Aws, ClientError, error_code
from yunpipe.engine.state import PipelineSummary
from yunpipe.errors import YunpipeError
from yunpipe.runtime.accounting import records, runs

# Runs of one kind opened in the same second take serials 2, 3, ...; beyond this many something is wrong.
MAX_SERIAL = 1000
MISSING = ("NoSuchKey", "NoSuchBucket", "404", "NotFound")


def accounting_on(aws: Aws, summary: PipelineSummary) -> bool:
    """Whether the deployed pipeline accounts for its work (its descriptor says so)."""
    try:
        answer = aws.client("s3").get_object(Bucket=summary.reports_bucket, Key=records.pipeline_key(summary.pipeline))
    except ClientError as error:
        if error_code(error) in MISSING:
            return False
        raise
    try:
        return bool(json.loads(answer["Body"].read()).get("accounting", True))
    except (ValueError, AttributeError):
        return False


@dataclass(frozen=True)
class OpenRun:
    """A run opened, and its manifest as written (to rewrite when fewer inputs were sent)."""

    run: str
    manifest: dict[str, Any]

    @property
    def metadata(self) -> dict[str, str]:
        """The user metadata that carries the run from an uploaded input to every result."""
        return {records.RUN_METADATA: self.run}


def open_run(aws: Aws, summary: PipelineSummary, kind: str, inputs: list[dict[str, str]], by: str,
             steps: list[str] | None = None, now: datetime | None = None) -> OpenRun | None:
    """Open a run of `inputs` ([{bucket, key}]) unless the pipeline does not account; `steps`:
    the steps they are sent to (submit's), else the entry steps whose filters take them."""
    if not inputs or not accounting_on(aws, summary):
        return None
    at = now or datetime.now(timezone.utc)
    s3 = aws.client("s3")
    for serial in range(1, MAX_SERIAL + 1):
        manifest: dict[str, Any] = {
            "version": records.VERSION, "run": records.run_id(kind, at, serial), "pipeline": summary.pipeline,
            "kind": kind, "opened_at": records.now_iso(), "inputs": inputs, "closes_after": None, "by": by}
        if steps is not None:
            manifest["steps"] = steps
        if runs.write_manifest(s3, summary.reports_bucket, summary.pipeline, manifest):
            return OpenRun(manifest["run"], manifest)
    raise YunpipeError(f"{MAX_SERIAL} runs of {summary.pipeline} were opened in the second {at:%H:%M:%S}")


def keep_sent(aws: Aws, summary: PipelineSummary, opened: OpenRun | None, sent: list[dict[str, str]]) -> None:
    """Sending stopped: the manifest lists only what was sent (nothing: the run is closed, its
    open marker deleted, so it never waits)."""
    if opened is None:
        return
    s3 = aws.client("s3")
    manifest = {**opened.manifest, "inputs": sent, "stopped": f"{len(sent)} of {len(opened.manifest['inputs'])} sent"}
    s3.put_object(Bucket=summary.reports_bucket, Key=records.manifest_key(summary.pipeline, opened.run),
                  Body=json.dumps(manifest, indent=1).encode(), ContentType="application/json")
    if not sent:
        s3.delete_object(Bucket=summary.reports_bucket, Key=records.open_key(summary.pipeline, opened.run))


def follow_lines(pipeline: str, opened: OpenRun | None) -> list[str]:
    """What to print after sending: the run, and how to follow it."""
    if opened is None:
        return []
    return [f"Run {opened.run}: follow it with `yunpipe runs {pipeline}`; when it has settled, "
            f"`yunpipe report {pipeline} {opened.run}`"]
