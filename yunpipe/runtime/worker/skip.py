"""Whether a job is already done: every one of its results is there with the provenance the job
would give it (the same inputs by ETag, algorithm, image and variables), so it is skipped and no
container work is done. A step's or a message's `force` runs it anyway."""
from __future__ import annotations

import logging
from typing import Any, Mapping

from botocore.exceptions import BotoCoreError, ClientError

from ..contract import WorkerConfig
from .message import Job, Source
from .provenance import gathered_digest, provenance, variables_digest

log = logging.getLogger("yunpipe.worker")

# A missing result: 404, or 403 to a caller S3 does not let list the bucket.
_MISSING = ("404", "NoSuchKey", "NotFound", "403", "AccessDenied")


def done_results(s3: Any, config: WorkerConfig, algorithm: dict, job: Job, env: Mapping[str, str],
                 listing: list[Source] | None = None) -> list[str]:
    """The job's result keys when it is done, else [] (it runs). A stdout result is one file: one
    HeadObject. Any other is a file or a folder, which only the command decided: one
    ListObjectsV2 of the result's name finds either, and a job not done (the usual case) asks S3
    nothing more; a done one takes a HeadObject per result, since a listing has no metadata.
    A gather's `listing`: the objects it would gather (staging.gather_listing)."""
    gathered = ""
    try:
        if job.gather_prefix is not None:
            if not listing:
                return []
            gathered = gathered_digest(listing)
        elif not all(s.etag for s in job.inputs or (job.source,)):
            # Without an input's ETag nothing tells that it is the same one.
            return []
        expected = provenance(config, job, job.source.key, variables=variables_digest(algorithm, env),
                              gathered=gathered)
        result_key = config.output_prefix + job.source.key
        if algorithm["output_adapter"] == "stdout":
            metadata = _metadata(s3, config.output_bucket, result_key)
            return [result_key] if metadata is not None and _matches(metadata, expected, 1) else []
        keys = _results(s3, config.output_bucket, result_key)
        if result_key in keys:
            # A file result stands for the job whatever a folder of the same name holds.
            keys = [result_key]
        for key in keys:
            metadata = _metadata(s3, config.output_bucket, key)
            if metadata is None or not _matches(metadata, expected, len(keys)):
                return []
        return keys
    except (BotoCoreError, ClientError) as exc:
        # Not knowing is no reason to fail the job: it runs.
        log.warning("cannot tell whether the job of %s is done, running it: %s", job.source.uri, exc)
        return []


def _results(s3: Any, bucket: str, result_key: str) -> list[str]:
    """The file `result_key` and the objects of the folder `result_key/`, if any: the listing of
    the bare name also holds its siblings (a.txt.bak for a.txt), which are no result."""
    folder = result_key + "/"
    return [obj["Key"] for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=result_key)
            for obj in page.get("Contents", []) if obj["Key"] == result_key or obj["Key"].startswith(folder)]


def _metadata(s3: Any, bucket: str, key: str) -> dict[str, str] | None:
    try:
        return s3.head_object(Bucket=bucket, Key=key).get("Metadata") or {}
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in _MISSING:
            return None
        raise


def _matches(metadata: Mapping[str, str], expected: Mapping[str, str], results: int) -> bool:
    # A folder's results all tell how many the job wrote: a half-uploaded folder is not done.
    return metadata.get("yunpipe-results") == str(results) and all(
        metadata.get(name) == value for name, value in expected.items())
