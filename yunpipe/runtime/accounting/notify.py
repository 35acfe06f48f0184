"""Announcing on the pipeline's SNS topic: a run settled, and a run's first dead-lettered file
(once per run: a conditional write of records.first_failure_key decides which worker tells).

Each message is JSON (what a program subscribed reads) with a one-line subject (what a person
reads in an e-mail's subject), at most SUBJECT_CHARS of printable ASCII as SNS requires.
"""
from __future__ import annotations

import json
import logging
from typing import Any, Mapping

from botocore.exceptions import BotoCoreError, ClientError

from .records import first_failure_key

log = logging.getLogger("yunpipe.accounting")
SUBJECT_CHARS = 100


def subject_line(text: str) -> str:
    """SNS takes a subject of ASCII printable characters, no line breaks, under 100 characters."""
    cleaned = "".join(c if c.isascii() and c.isprintable() else "?" for c in text)
    return cleaned[:SUBJECT_CHARS]


def publish(sns: Any, topic_arn: str, subject: str, message: Mapping[str, Any]) -> bool:
    """Publish one message; a failure is logged, never raised (a notification never stops the work)."""
    if not topic_arn:
        return False
    try:
        sns.publish(TopicArn=topic_arn, Subject=subject_line(subject), Message=json.dumps(message, indent=1))
    except (BotoCoreError, ClientError) as error:
        log.error("cannot publish to %s: %s", topic_arn, error)
        return False
    return True


def first_failure(s3: Any, sns: Any, bucket: str, topic_arn: str, record: Mapping[str, Any]) -> bool:
    """Announce a dead-lettered file if it is its run's first (True when this call announced it)."""
    if not topic_arn or not record.get("run"):
        return False
    marker = {"step": record["step"], "key": record["key"], "outcome": record["outcome"],
              "reason": record.get("reason"), "at": record.get("finished_at")}
    try:
        s3.put_object(Bucket=bucket, Key=first_failure_key(record["pipeline"], record["run"]), IfNoneMatch="*",
                      Body=json.dumps(marker).encode(), ContentType="application/json")
    except ClientError as error:
        code = str((getattr(error, "response", None) or {}).get("Error", {}).get("Code", ""))
        if code not in ("PreconditionFailed", "412", "ConditionalRequestConflict", "409"):
            log.error("cannot record the first failure of run %s: %s", record["run"], error)
        return False
    message = {"event": "first-failure", "pipeline": record["pipeline"], "run": record["run"], **marker,
               "report": record.get("report"), "log_tail": record.get("log_tail")}
    subject = f"yunpipe {record['pipeline']}: {record['key']} failed in {record['step']} ({record['outcome']})"
    return publish(sns, topic_arn, subject, message)


def settled(sns: Any, topic: str, summary: Mapping[str, Any], bucket: str) -> None:
    """Publish a run's settled message (settle.py); `sns` is the client, or a function that makes
    one. The run is settled whether or not it goes out."""
    try:
        client = sns() if callable(sns) else sns
    except (BotoCoreError, ValueError) as error:  # no SNS in this botocore, say
        log.error("run %s settled but not announced: no SNS client (%s)", summary["run"], error)
        return
    if client is None:
        log.error("run %s settled but not announced: no SNS client", summary["run"])
        return
    publish(client, topic, subject(summary), announcement(summary, bucket))


def subject(summary: Mapping[str, Any]) -> str:
    failed = len(summary.get("failures") or [])
    return f"yunpipe {summary['pipeline']}: run {summary['run']} settled, {failed} failure(s)"


def announcement(summary: Mapping[str, Any], bucket: str) -> dict[str, Any]:
    """The settled message: counts, duration, cost and where the report is."""
    counts = {step: {k: v for k, v in values.items() if isinstance(v, int)} for step, values in summary["steps"].items()}
    cost = summary.get("cost") or {}
    return {"event": "settled", "pipeline": summary["pipeline"], "run": summary["run"], "kind": summary["kind"],
            "inputs": summary["inputs"], "counts": counts, "failures": len(summary.get("failures") or []),
            "opened_at": summary["opened_at"], "settled_at": summary["settled_at"],
            "duration_seconds": summary.get("duration_seconds"),
            "cost": {k: cost.get(k) for k in ("total", "currency", "estimated")},
            "summary": f"s3://{bucket}/{summary['report']}",
            "report": f"yunpipe report {summary['pipeline']} {summary['run']}"}
