"""The S3 user metadata of a job's results (`yunpipe results --provenance`)."""
from __future__ import annotations

import dataclasses
from urllib.parse import quote

from ..contract import PROVENANCE_FIELDS, WorkerConfig
from .message import Job

# Kept as they are when a metadata value is percent-encoded: they read well in an s3:// URI
# and a comma-separated list.
METADATA_SAFE = "/:@*,"


def metadata_value(value: str) -> str:
    """`value` as S3 user metadata can carry it: an HTTP header holds printable ASCII and loses
    surrounding spaces. Anything else, or a '%' (so a reader can always percent-decode), is
    percent-encoded."""
    if value.isascii() and value.isprintable() and "%" not in value and value == value.strip():
        return value
    return quote(value, safe=METADATA_SAFE)


def provenance(config: WorkerConfig, job: Job, key: str, attempt: int, run: str | None = None) -> dict[str, str]:
    """The S3 user metadata of a job's results (PROVENANCE_FIELDS); empty values are left out."""
    if job.gather_prefix is not None:
        inputs, etags = f"s3://{job.source.bucket}/{job.gather_prefix}*", [job.source.etag]
    else:
        sources = job.inputs or (dataclasses.replace(job.source, key=key),)
        inputs, etags = ",".join(s.uri for s in sources), [s.etag for s in sources]
    values = {
        "yunpipe-pipeline": config.pipeline,
        "yunpipe-step": config.step,
        "yunpipe-algorithm": config.algorithm_ref,
        "yunpipe-image": config.image,
        "yunpipe-input": inputs,
        # One per input, in order, so a missing one keeps its place.
        "yunpipe-input-etag": ",".join(str(e or "") for e in etags) if any(etags) else "",
        "yunpipe-attempt": str(attempt),
        "yunpipe-run": run or "",
    }
    return {name: metadata_value(values[name]) for name in PROVENANCE_FIELDS if values[name]}
