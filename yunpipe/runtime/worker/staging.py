"""Downloading a job's input(s) to where its command expects them: one object, a join's
object per upstream step, or a gather's folder."""
from __future__ import annotations

import dataclasses
import logging
import os
from typing import Any
from urllib.parse import unquote_plus

from botocore.exceptions import BotoCoreError, ClientError

from .locks import Scratch
from .message import Job, JobFailure, Source
from .paths import gather_paths, gather_relative_path, join_paths, local_paths
from .provenance import gathered_digest
from .transfers import Meter, fetch

log = logging.getLogger("yunpipe.worker")

@dataclasses.dataclass(frozen=True)
class Staged:
    """A job's inputs on disk."""

    key: str  # the message's key, URL-decoded when only the decoded object exists
    input_path: str  # `$input`: the (first) input file, or the gathered folder
    output_path: str
    step_inputs: dict[str, str] = dataclasses.field(default_factory=dict)  # a join's step id -> file
    gathered: str = ""  # a gather's inputs as provenance names them (provenance.gathered_digest)


def _not_found(exc: ClientError) -> bool:
    # The task role may not list its input bucket, and S3 answers such a caller's request for a
    # missing key with 403, not 404.
    return exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound", "403", "AccessDenied")


def _download(s3: Any, source: Source, path: str, meter: Meter) -> None:
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        fetch(s3, source.bucket, source.key, path, source.size, meter)
    except (BotoCoreError, ClientError, OSError) as exc:
        raise JobFailure("download_error", f"{source.uri}: {exc}") from None


def _job_paths(algorithm: dict, key: str) -> tuple[str, str]:
    try:
        return local_paths(algorithm, key)
    except ValueError as exc:
        raise JobFailure("bad_message", str(exc)) from None


def _stage_object(s3: Any, algorithm: dict, source: Source, scratch: Scratch, meter: Meter,
                  try_decoded: bool = True) -> Staged:
    input_path, output = (scratch.claim(p) for p in _job_paths(algorithm, source.key))
    try:
        fetch(s3, source.bucket, source.key, input_path, source.size, meter)
    except (BotoCoreError, ClientError, OSError) as exc:
        # The launcher decodes keys; a still-encoded key from another sender is retried decoded.
        decoded = unquote_plus(source.key)
        if try_decoded and decoded != source.key and isinstance(exc, ClientError) and _not_found(exc):
            log.warning("%s not found, trying the URL-decoded key", source.uri)
            return _stage_object(s3, algorithm, dataclasses.replace(source, key=decoded), scratch, meter,
                                 try_decoded=False)
        raise JobFailure("download_error", f"{source.uri}: {exc}") from None
    return Staged(source.key, input_path, output)


def _stage_join(s3: Any, algorithm: dict, job: Job, scratch: Scratch, meter: Meter) -> Staged:
    try:
        paths, output_path = join_paths(algorithm, job)
    except ValueError as exc:
        raise JobFailure("bad_message", str(exc)) from None
    for path in paths.values():
        scratch.folders.append(os.path.dirname(path))
        scratch.claim(path)
    output = scratch.claim(output_path)
    for source in job.inputs:
        _download(s3, source, paths[source.step], meter)
    return Staged(job.source.key, paths[job.inputs[0].step], output, paths)


def gather_listing(s3: Any, source: Source, prefix: str) -> list[Source]:
    """Every object to gather: folder markers and the run's own marker object are not data."""
    found = []
    try:
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=source.bucket, Prefix=prefix):
            for obj in page.get("Contents", []):
                if not obj["Key"].endswith("/") and obj["Key"] != source.key:
                    found.append(Source(source.bucket, obj["Key"], str(obj.get("ETag", "")).strip('"'),
                                        obj.get("Size")))
    except (BotoCoreError, ClientError) as exc:
        raise JobFailure("download_error", f"cannot list s3://{source.bucket}/{prefix}*: {exc}") from None
    return found


def _stage_gather(s3: Any, algorithm: dict, job: Job, scratch: Scratch, meter: Meter,
                  listing: list[Source] | None) -> Staged:
    source, prefix = job.source, job.gather_prefix or ""
    if algorithm["input_adapter"] == "stdin":
        raise JobFailure("unsupported_input", "a gather is a folder of files; this algorithm reads a single "
                         "file on its stdin (input_adapter stdin)")
    folder, output = (scratch.claim(p) for p in gather_paths(algorithm, source.key))
    objects = gather_listing(s3, source, prefix) if listing is None else listing
    if not objects:
        raise JobFailure("empty_gather", f"no objects under s3://{source.bucket}/{prefix}")
    try:
        # Every path is checked before the first download: a bad key fails the job at once.
        targets = [(obj, os.path.join(folder, gather_relative_path(prefix, obj.key))) for obj in objects]
    except ValueError as exc:
        raise JobFailure("download_error", str(exc)) from None
    for obj, path in targets:
        _download(s3, obj, path, meter)
    return Staged(source.key, folder, output, gathered=gathered_digest(objects))


def stage(s3: Any, algorithm: dict, job: Job, scratch: Scratch, meter: Meter,
          listing: list[Source] | None = None) -> Staged:
    """Download a job's input(s) to where the command expects them, counted by `meter`; a
    gather's `listing` when its objects were listed already (gather_listing)."""
    if job.inputs:
        return _stage_join(s3, algorithm, job, scratch, meter)
    if job.gather_prefix is not None:
        return _stage_gather(s3, algorithm, job, scratch, meter, listing)
    return _stage_object(s3, algorithm, job.source, scratch, meter)
