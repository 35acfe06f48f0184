"""One object to or from S3: a single request when small, s3transfer when large; a job's Meter
counts the bytes and keeps what a download learnt of its object (its run's metadata)."""
from __future__ import annotations

import dataclasses
import logging
import os
import shutil
import time
from datetime import datetime
from typing import Any

log = logging.getLogger("yunpipe.worker")

# s3transfer asks HeadObject for the size before it GETs. Below its multipart threshold (8 MiB)
# a single GetObject does the same, so an input whose message gives its size is fetched with one
# request instead of two; a result that small is stored with one PutObject.
SINGLE_REQUEST_BYTES = 8 * 1024 * 1024
# Larger objects go through s3transfer: ranged GETs and multipart uploads, this many at once per
# object (its default, as `aws s3 cp`).
TRANSFER_CONCURRENCY = 10
# A download or upload of at least this many bytes is logged with its time and rate, so the
# log of a slow large file says whether the transfers or the command took the time; smaller
# files (the many-small-files case) add no lines.
LOG_TRANSFER_BYTES = SINGLE_REQUEST_BYTES


@dataclasses.dataclass
class Meter:
    """One job's transfers: bytes down and up, and the user metadata and LastModified of each
    object fetched with a GetObject (s3transfer's downloads do not tell them)."""

    bytes_in: int = 0
    bytes_out: int = 0
    objects: dict[tuple[str, str], tuple[dict[str, str], datetime | None]] = dataclasses.field(default_factory=dict)


def fetch(s3: Any, bucket: str, key: str, path: str, size: int | None, meter: Meter | None = None) -> None:
    """Download one object; `size`, when known, picks a single GetObject for a small one."""
    if size is not None and size < SINGLE_REQUEST_BYTES:
        answer = s3.get_object(Bucket=bucket, Key=key)
        with open(path, "wb") as out:
            shutil.copyfileobj(answer["Body"], out)
        if meter is not None:
            meter.objects[(bucket, key)] = (answer.get("Metadata") or {}, answer.get("LastModified"))
    else:
        started = time.monotonic()
        with _transfers(s3) as manager:
            manager.download(bucket, key, path).result()
        _log_transfer("downloaded", f"s3://{bucket}/{key}", os.path.getsize(path), time.monotonic() - started)
    if meter is not None:
        meter.bytes_in += os.path.getsize(path)


def upload(s3: Any, path: str, bucket: str, key: str, metadata: dict[str, str], meter: Meter | None = None) -> None:
    """Upload one result (s3transfer: multipart from 8 MiB) with its provenance metadata."""
    size = os.path.getsize(path)
    started = time.monotonic()
    if size < SINGLE_REQUEST_BYTES:
        with open(path, "rb") as body:
            s3.put_object(Bucket=bucket, Key=key, Body=body, Metadata=metadata)
    else:
        with _transfers(s3) as manager:
            manager.upload(path, bucket, key, extra_args={"Metadata": metadata}).result()
    if meter is not None:
        meter.bytes_out += size
    _log_transfer("uploaded", f"s3://{bucket}/{key}", size, time.monotonic() - started)


def _transfers(s3: Any) -> Any:
    """An s3transfer manager for one large object, imported only then: most jobs never need it."""
    from s3transfer.manager import TransferConfig, TransferManager

    return TransferManager(s3, TransferConfig(max_request_concurrency=TRANSFER_CONCURRENCY))


def _log_transfer(verb: str, uri: str, size: int, seconds: float) -> None:
    if size >= LOG_TRANSFER_BYTES:
        rate = size / 2**20 / max(seconds, 1e-6)
        log.info("%s %s bytes=%d in %.2fs (%.1f MiB/s)", verb, uri, size, seconds, rate)
