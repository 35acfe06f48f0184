"""The S3 user metadata of a job's results (`yunpipe results --provenance`), which also tells
whether a job is already done (skip.py)."""
from __future__ import annotations

import dataclasses
import hashlib
from typing import Iterable, Mapping
from urllib.parse import quote

from ..contract import PROVENANCE_FIELDS, WorkerConfig
from .message import Job, Source

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


def _digest(lines: Iterable[str]) -> str:
    # A NUL cannot be in a key, an ETag or an environment variable, so no two sets share a text.
    return "sha256:" + hashlib.sha256("".join(f"{line}\0" for line in lines).encode("utf-8", "surrogatepass")).hexdigest()


def gathered_digest(sources: Iterable[Source]) -> str:
    """A gather's inputs: every gathered object's key and ETag, in key order."""
    return _digest(f"{s.key}\0{s.etag or ''}" for s in sorted(sources, key=lambda s: s.key))


def variables_digest(algorithm: dict, env: Mapping[str, str]) -> str:
    """The variables the command gets that change its result: the algorithm's fixed `environment`
    and the user variables it declares (the workflow's values), by name. Secrets are left out: a
    digest of a short secret could be guessed from the result's metadata."""
    declared = {str(v.get("name")) for v in algorithm.get("user_specified_environment_variables") or []
                if isinstance(v, dict)}
    names = sorted((declared | set(algorithm.get("environment") or {})) & set(env))
    return _digest(f"{name}={env[name]}" for name in names)


def provenance(config: WorkerConfig, job: Job, key: str, *, variables: str, gathered: str = "", results: int = 0,
               attempt: int = 0, run: str | None = None) -> dict[str, str]:
    """The S3 user metadata of a job's results (PROVENANCE_FIELDS); empty values are left out.
    `variables`: variables_digest; `gathered`: a gather's gathered_digest; `results`: how many."""
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
        "yunpipe-gathered": gathered,
        "yunpipe-variables": variables,
        "yunpipe-results": str(results) if results else "",
        "yunpipe-attempt": str(attempt) if attempt else "",
        "yunpipe-run": run or "",
    }
    return {name: metadata_value(values[name]) for name in PROVENANCE_FIELDS if values[name]}
