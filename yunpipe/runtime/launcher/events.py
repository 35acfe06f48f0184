"""Reading an invocation's event: the new objects of an S3 notification or an EventBridge S3
event (a scheduled event has none), and the queue messages' bodies for them."""
from __future__ import annotations

import urllib.parse
from collections.abc import Mapping
from typing import Any, NamedTuple

from ..contract import GROW_EVENT_SOURCE, LauncherConfig


class NewObject(NamedTuple):
    """An object an event reports as created, its key decoded."""

    bucket: str
    key: str
    etag: str
    size: int


def read_event(event: Mapping[str, Any]) -> tuple[str, list[NewObject], int]:
    """The trigger's name, the distinct new objects the event reports, and how many of its
    entries were skipped (no creation, a folder marker, or one already reported)."""
    if event.get("source") == GROW_EVENT_SOURCE:
        # A worker sent a job out of memory on to a larger size (runtime/worker/grow.py).
        return "grow", [], 0
    if event.get("source") == "aws.s3":
        trigger, entries = "eventbridge", [_from_eventbridge(event)]
    elif event.get("Records"):
        trigger, entries = "s3", [_from_record(record) for record in event["Records"]]
    else:
        # A scheduled event ("source": "aws.events") or a plain invocation only tops up workers.
        return "schedule", [], 0
    # A multipart upload may be reported more than once for the same object version.
    distinct: dict[tuple[str, str, str], NewObject] = {}
    for entry in entries:
        if entry is not None:
            distinct.setdefault((entry.bucket, entry.key, entry.etag), entry)
    return trigger, list(distinct.values()), len(entries) - len(distinct)


def _from_record(record: Mapping[str, Any]) -> NewObject | None:
    """A record of an S3 notification (event["Records"])."""
    if record.get("eventSource") != "aws:s3" or not record.get("eventName", "").startswith("ObjectCreated:"):
        return None
    s3 = record.get("s3") or {}
    obj = s3.get("object") or {}
    # Keys arrive form-encoded: spaces as '+', other characters %-escaped.
    key = urllib.parse.unquote_plus(obj.get("key", ""))
    return _new_object((s3.get("bucket") or {}).get("name", ""), key, obj.get("eTag", ""), obj.get("size", 0))


def _from_eventbridge(event: Mapping[str, Any]) -> NewObject | None:
    """An S3 event routed by an EventBridge rule: one object, its key as stored (not encoded)."""
    if event.get("detail-type") != "Object Created":
        return None
    detail = event.get("detail") or {}
    obj = detail.get("object") or {}
    # AWS names the field "etag"; moto, like S3 notifications, "eTag".
    etag = obj.get("etag") or obj.get("eTag", "")
    return _new_object((detail.get("bucket") or {}).get("name", ""), obj.get("key", ""), etag, obj.get("size", 0))


def _new_object(bucket: str, key: str, etag: str, size: int) -> NewObject | None:
    # A key ending in '/' is a console "folder" marker, not a file to process.
    if not bucket or not key or key.endswith("/"):
        return None
    return NewObject(bucket, key, etag, size)


def object_body(obj: NewObject, config: LauncherConfig) -> dict[str, Any]:
    return {"bucket": obj.bucket, "key": obj.key, "etag": obj.etag, "size": obj.size,
            "pipeline": config.pipeline, "step": config.step}


def gather_body(marker: NewObject, config: LauncherConfig) -> dict[str, Any]:
    """One job over every object of the marker's folder ("" at the bucket's root)."""
    folder, slash, _ = marker.key.rpartition("/")
    return {"key": marker.key, "bucket": marker.bucket, "etag": "", "gather": {"prefix": folder + slash},
            "pipeline": config.pipeline, "step": config.step}
