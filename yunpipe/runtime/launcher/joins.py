"""A join step: queue a key once every upstream step's result for it exists, claimed once."""
from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from ..contract import LauncherConfig
from .clients import Clients
from .events import NewObject, object_body
from .log import LOG
from .sending import send_messages

# HeadObject answers 403 instead of 404 for a missing key when the caller may not list the bucket.
NOT_YET = frozenset({"404", "403", "NoSuchKey", "NotFound"})
# A conditional PutObject that lost: the key exists (412), or a write or delete of it was in flight (409).
CLAIMED = frozenset({"PreconditionFailed", "ConditionalRequestConflict"})


def queue_joins(
    objects: Iterable[NewObject], config: LauncherConfig, clients: Clients, sleep: Callable[[float], None]
) -> dict[str, int]:
    """Queue the join of each object's key once every upstream step's result for it exists.

    Two launches may see the last input arrive at once (one per upstream bucket), so a join is
    claimed with a conditional write before it is queued, and queued right after: a failure
    never leaves a claim without its message (the claim is released and the event retried).
    """
    counts = {"enqueued": 0, "skipped": 0, "waiting": 0}
    buckets = {join.bucket for join in config.join}
    for obj in objects:
        if obj.bucket not in buckets:
            counts["skipped"] += 1
            continue
        inputs = join_inputs(clients.s3, config, obj)
        if inputs is None:
            counts["waiting"] += 1
            continue
        body = {**object_body(obj, config), "inputs": inputs}
        claim = claim_key(config, obj.key, inputs)
        if not claim_join(clients.s3, config.claim_bucket, claim, body):
            counts["skipped"] += 1
            continue
        try:
            counts["enqueued"] += send_messages(clients.sqs, config.queue_url, [body], sleep)
        except Exception:
            _release_claim(clients.s3, config, claim)
            raise
    return counts


def join_inputs(s3: Any, config: LauncherConfig, obj: NewObject) -> list[dict[str, str]] | None:
    """Each upstream step's result for the object's key, in LauncherConfig order; None while one is missing."""
    inputs = []
    for join in config.join:
        etag = obj.etag if join.bucket == obj.bucket else _etag(s3, join.bucket, obj.key)
        if etag is None:
            return None
        inputs.append({"step": join.step, "bucket": join.bucket, "key": obj.key, "etag": etag})
    return inputs


def _etag(s3: Any, bucket: str, key: str) -> str | None:
    try:
        return s3.head_object(Bucket=bucket, Key=key)["ETag"].strip('"')
    except ClientError as error:
        if _error_code(error) in NOT_YET:
            return None
        raise


def claim_key(config: LauncherConfig, key: str, inputs: Iterable[Mapping[str, str]]) -> str:
    # The inputs' content is part of the name: a re-upload with new content joins again.
    digest = hashlib.sha256("\n".join(sorted(entry["etag"] for entry in inputs)).encode()).hexdigest()
    return f"joins/{config.pipeline}/{config.step}/{key}/{digest}"


def claim_join(s3: Any, bucket: str, claim: str, body: Mapping[str, Any]) -> bool:
    """Create the claim object unless it exists; False when another launch has claimed the join."""
    try:
        s3.put_object(Bucket=bucket, Key=claim, Body=json.dumps(body).encode(), IfNoneMatch="*")
    except ClientError as error:
        if _error_code(error) in CLAIMED:
            return False
        raise
    return True


def _release_claim(s3: Any, config: LauncherConfig, claim: str) -> None:
    try:
        s3.delete_object(Bucket=config.claim_bucket, Key=claim)
    except (ClientError, BotoCoreError):
        LOG.exception("yunpipe launcher %s/%s: a join is claimed but not queued; delete s3://%s/%s to let it run",
                      config.pipeline, config.step, config.claim_bucket, claim)


def _error_code(error: ClientError) -> str:
    return error.response.get("Error", {}).get("Code", "")
