"""One failure (its report, the worker's log lines about its file, the input's provenance) and a
step's results with their provenance, as the dashboard shows them; read only.
"""
from __future__ import annotations

import json
import shlex
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import unquote

from yunpipe.aws.reader import Reader
from yunpipe.engine import model
from yunpipe.engine.state import PipelineSummary, find_step
from yunpipe.errors import NotFoundError
from yunpipe.runtime.accounting import records
from yunpipe.runtime.contract import PROVENANCE_FIELDS

# The worker's lines about a failed file: those from a minute before its job started to shortly
# after it failed, at most this many (the newest).
LOG_LINES = 60
LOG_BEFORE = timedelta(minutes=1)
LOG_AFTER = timedelta(seconds=10)
RESULTS_PAGE = 50


def provenance(metadata: dict[str, str]) -> list[tuple[str, str]]:
    """An object's yunpipe provenance (the worker's S3 user metadata), names without "yunpipe-",
    values percent-decoded, in the contract's order."""
    names = (*PROVENANCE_FIELDS, records.RUN_METADATA)
    return [(name.removeprefix("yunpipe-"), unquote(metadata[name])) for name in dict.fromkeys(names) if name in metadata]


def _head(reader: Reader, bucket: str | None, key: str | None) -> dict | None:
    if not bucket or not key:
        return None
    return reader.read("s3", "head_object", ("404", "NoSuchKey", "NoSuchBucket", "NotFound"), Bucket=bucket, Key=key)


def _time(text: Any) -> datetime | None:
    try:
        return records.parse_iso(str(text))
    except ValueError:
        return None


def log_tail(reader: Reader, summary: PipelineSummary, report: dict) -> list[str]:
    """The worker's log lines of the step around the failed job that name its file."""
    started, finished = _time(report.get("started_at")), _time(report.get("finished_at"))
    if started is None or finished is None or not report.get("key"):
        return []
    events = reader.pages("logs", "filter_log_events", "events", ("ResourceNotFoundException",),
                          logGroupName=summary.log_group,
                          logStreamNamePrefix=f"{model.container_name(str(report.get('step')))}/",
                          startTime=int((started - LOG_BEFORE).timestamp() * 1000),
                          endTime=int((finished + LOG_AFTER).timestamp() * 1000))
    key = str(report["key"])
    lines = [e["message"].rstrip() for e in sorted(events, key=lambda e: (e["timestamp"], e["eventId"]))
             if key in e["message"]]
    return lines[-LOG_LINES:]


@dataclass(frozen=True)
class Failure:
    key: str  # the report's key in the reports bucket
    report: dict
    input: dict | None  # the input's head_object answer, None when it is gone
    provenance: list[tuple[str, str]]
    log: list[str]
    dead_letters: int  # in the step's dead-letter queue now


def failure(reader: Reader, summary: PipelineSummary, report_key: str) -> Failure:
    """A failure report of the pipeline (failures/<pipeline>/<step>/<key>/attempt-<n>.json)."""
    if not report_key.startswith(f"failures/{summary.pipeline}/") or not report_key.endswith(".json"):
        raise NotFoundError(f"{report_key!r} is not a failure report of pipeline {summary.pipeline}")
    answer = reader.read("s3", "get_object", ("NoSuchKey", "NoSuchBucket"), Bucket=summary.reports_bucket,
                         Key=report_key)
    if answer is None:
        raise NotFoundError(f"no failure report s3://{summary.reports_bucket}/{report_key}")
    try:
        report = json.loads(answer["Body"].read())
    except (json.JSONDecodeError, UnicodeDecodeError):
        report = {"reason": "unreadable report"}
    step = find_step(summary, str(report.get("step") or report_key.split("/")[2]), "failure")
    head = _head(reader, report.get("bucket"), report.get("key"))
    url = reader.queue_url(step.dead_letter_queue)
    dead = 0
    if url:
        attributes = reader.read("sqs", "get_queue_attributes", QueueUrl=url,
                                 AttributeNames=["ApproximateNumberOfMessages"])["Attributes"]
        dead = int(attributes["ApproximateNumberOfMessages"])
    return Failure(report_key, {**report, "step": step.name}, head, provenance((head or {}).get("Metadata", {})),
                   log_tail(reader, summary, {**report, "step": step.name}), dead)


def replay_command(summary: PipelineSummary, report_key: str) -> str:
    # Quoted: a report's key holds the input's key, which may hold spaces or shell syntax.
    return f"yunpipe replay {shlex.quote(summary.pipeline)} --report {shlex.quote(report_key)}"


@dataclass(frozen=True)
class Result:
    key: str
    size: int
    modified: datetime
    provenance: list[tuple[str, str]]


def results(reader: Reader, summary: PipelineSummary, step: str | None, page: int) -> tuple[str, list[Result], int]:
    """A page of the pipeline's results (or a step's), each with its provenance: the bucket, the
    page's results, how many there are in all."""
    bucket = find_step(summary, step, "results").output_bucket if step else summary.output_bucket
    objects = [o for o in reader.pages("s3", "list_objects_v2", "Contents", ("NoSuchBucket",), Bucket=bucket)
               if not o["Key"].endswith("/")]
    shown = objects[page * RESULTS_PAGE:(page + 1) * RESULTS_PAGE]
    found = []
    for obj in shown:
        head = _head(reader, bucket, obj["Key"]) or {}
        found.append(Result(obj["Key"], obj["Size"], obj["LastModified"], provenance(head.get("Metadata", {}))))
    return bucket, found, len(objects)


def download(reader: Reader, summary: PipelineSummary, step: str | None, key: str) -> tuple[Any, str]:
    """The result's body (a stream) and content type, read through this server: a presigned URL
    would put the user's access key id in the page."""
    bucket = find_step(summary, step, "results").output_bucket if step else summary.output_bucket
    answer = reader.read("s3", "get_object", ("NoSuchKey", "NoSuchBucket"), Bucket=bucket, Key=key)
    if answer is None:
        raise NotFoundError(f"no result s3://{bucket}/{key}")
    return answer["Body"], answer.get("ContentType") or "application/octet-stream"
