"""A file's run: the one `yunpipe upload` or `submit` opened (the input's `yunpipe-run` metadata,
carried on to every result derived from it), or for a file another S3 client dropped, the
pipeline's open drop-run, which a file uploaded more than the quiet period after the last one
does not join: it opens the next.

The drop-run's state is one small object (records.drop_key) changed only with conditional writes
(If-Match on its ETag, If-None-Match for the first), so workers that meet a new file at the same
moment agree on one run; a worker remembers the state it last read, so most files cost no request.
"""
from __future__ import annotations

import json
import re
import threading
from datetime import datetime, timedelta
from typing import Any, Mapping

from botocore.exceptions import ClientError

from .records import RUN_METADATA, drop_key, manifest_key, now_iso, open_key, parse_iso, run_id

# A run's name as records.run_id makes it; anything else in the metadata is not a run of ours.
RUN_NAME = re.compile(r"\A\d{8}T\d{6}Z-(upload|submit|drop)(-\d{1,6})?\Z")
# `last` moves on only when a file is this share of the quiet period later than it, so a steady
# stream of drops costs a write per tenth of the period, not per file.
LAST_STEP = 0.1
CONFLICT_RETRIES = 8


class RunError(RuntimeError):
    """The run's state could not be agreed on (too many writers at once) or read."""


def run_from_metadata(metadata: Mapping[str, str] | None) -> str | None:
    """The run a file's S3 user metadata names (boto3 gives the keys lower-case), or None."""
    value = (metadata or {}).get(RUN_METADATA, "")
    return value if RUN_NAME.match(value) else None


def _precondition_failed(error: ClientError) -> bool:
    response = getattr(error, "response", None) or {}
    code = str(response.get("Error", {}).get("Code", ""))
    return code in ("PreconditionFailed", "412", "ConditionalRequestConflict", "409")


def _missing(error: ClientError) -> bool:
    # S3 answers a caller that may not list the bucket (a task role) 403 for a missing key. Taken
    # for missing, the state is then written only if none exists (If-None-Match), so a real
    # refusal ends in RunError, never in a second run.
    response = getattr(error, "response", None) or {}
    return str(response.get("Error", {}).get("Code", "")) in ("NoSuchKey", "404", "NotFound", "403", "AccessDenied")


_cache: dict[tuple[str, str], dict[str, Any]] = {}
_cache_lock = threading.Lock()


def drop_run(s3: Any, bucket: str, pipeline: str, uploaded_at: datetime, quiet_seconds: int) -> str:
    """The drop-run a file uploaded at `uploaded_at` (its LastModified) belongs to, opening one
    (its manifest and open marker) when the pipeline has none open for it."""
    quiet = timedelta(seconds=quiet_seconds)
    with _cache_lock:
        known = _cache.get((bucket, pipeline))
    if known and uploaded_at <= parse_iso(known["last"]) + quiet * LAST_STEP:
        return str(known["run"])
    for _ in range(CONFLICT_RETRIES):
        state, etag = _read_state(s3, bucket, pipeline)
        if state is not None and uploaded_at <= parse_iso(state["last"]) + quiet:
            if uploaded_at - parse_iso(state["last"]) > quiet * LAST_STEP:
                state = {**state, "last": uploaded_at.isoformat()}
                if not _write_state(s3, bucket, pipeline, state, etag):
                    continue
            _remember(bucket, pipeline, state)
            return str(state["run"])
        # No run open for this file: open the next, named for when its first file arrived.
        run = run_id("drop", uploaded_at)
        fresh = {"run": run, "first": uploaded_at.isoformat(), "last": uploaded_at.isoformat(),
                 "quiet_seconds": quiet_seconds}
        if not _write_state(s3, bucket, pipeline, fresh, etag):
            continue
        _open(s3, bucket, pipeline, run, quiet_seconds)
        _remember(bucket, pipeline, fresh)
        return run
    raise RunError(f"cannot agree on the drop-run of {pipeline}: s3://{bucket}/{drop_key(pipeline)} "
                   f"changed {CONFLICT_RETRIES} times under this worker")


def _remember(bucket: str, pipeline: str, state: dict[str, Any]) -> None:
    with _cache_lock:
        _cache[(bucket, pipeline)] = state


def _read_state(s3: Any, bucket: str, pipeline: str) -> tuple[dict[str, Any] | None, str | None]:
    try:
        answer = s3.get_object(Bucket=bucket, Key=drop_key(pipeline))
    except ClientError as error:
        if _missing(error):
            return None, None
        raise
    return json.loads(answer["Body"].read()), answer["ETag"]


def _write_state(s3: Any, bucket: str, pipeline: str, state: dict[str, Any], etag: str | None) -> bool:
    """Replace the state only if nobody else did since it was read; False when somebody did."""
    condition = {"IfMatch": etag} if etag else {"IfNoneMatch": "*"}
    try:
        s3.put_object(Bucket=bucket, Key=drop_key(pipeline), Body=json.dumps(state).encode(),
                      ContentType="application/json", **condition)
    except ClientError as error:
        if _precondition_failed(error):
            return False
        raise
    return True


def _open(s3: Any, bucket: str, pipeline: str, run: str, quiet_seconds: int) -> None:
    manifest = {"version": 1, "run": run, "pipeline": pipeline, "kind": "drop", "opened_at": now_iso(),
                "inputs": None, "closes_after": quiet_seconds, "by": "s3"}
    write_manifest(s3, bucket, pipeline, manifest)


def write_manifest(s3: Any, bucket: str, pipeline: str, manifest: Mapping[str, Any]) -> bool:
    """Open a run: its manifest (only if no run of that name exists) and its open marker.
    False when the name is taken (the caller tries the next serial)."""
    try:
        s3.put_object(Bucket=bucket, Key=manifest_key(pipeline, manifest["run"]), IfNoneMatch="*",
                      Body=json.dumps(manifest, indent=1).encode(), ContentType="application/json")
    except ClientError as error:
        if _precondition_failed(error):
            return False
        raise
    s3.put_object(Bucket=bucket, Key=open_key(pipeline, manifest["run"]), Body=b"")
    return True
