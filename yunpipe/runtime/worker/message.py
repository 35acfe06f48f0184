"""The queue message (docs/runtime-contract.md, "Queue message"): a Job of Sources, or JobFailure."""
from __future__ import annotations

import dataclasses
import json
import re
from typing import Any

from ..accounting.runs import RUN_NAME
from ..contract import INTERRUPTIONS_ATTRIBUTE, RECEIVES_ATTRIBUTE

# A join input's step id, as the workflow spec allows it.
STEP_ID = re.compile(r"[a-z0-9][a-z0-9-]*")


class JobFailure(Exception):
    def __init__(self, reason: str, detail: str, exit_code: int | None = None):
        super().__init__(detail)
        self.reason = reason
        self.detail = detail
        self.exit_code = exit_code


@dataclasses.dataclass(frozen=True)
class Source:
    """An object a job reads: the message's own, or one input of a join (`step` set)."""

    bucket: str
    key: str
    etag: str | None = None
    size: int | None = None
    step: str = ""

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.key}"


@dataclasses.dataclass(frozen=True)
class Job:
    """A message: one object; a join of one object per upstream step (`inputs`, in the
    workflow's order); or a gather of every object under `gather_prefix`."""

    source: Source
    inputs: tuple[Source, ...] = ()
    gather_prefix: str | None = None
    # The run the sender opened for it (`yunpipe submit`); None: the input's own tells.
    run: str | None = None
    # Run even when the results are there with matching provenance (`yunpipe submit --force`).
    force: bool = False


@dataclasses.dataclass(frozen=True)
class Receipt:
    """Which receive of its file a message is: `received` is SQS's count for this message, and
    a message handed back by an interrupted task (lease.hand_back) carries the receives and
    interruptions of the messages before it."""

    received: int
    earlier: int = 0
    interruptions: int = 0

    @property
    def attempt(self) -> int:
        """This receive's number among all of the file's: names its report and its record."""
        return self.earlier + self.received

    @property
    def tries(self) -> int:
        """The receives that count toward max_receive_count: all but the interrupted ones."""
        return self.attempt - self.interruptions


def _count(attributes: Any, name: str) -> int:
    value = attributes.get(name, {}).get("StringValue", "") if isinstance(attributes, dict) else ""
    return int(value) if isinstance(value, str) and value.isdigit() else 0


def receipt(message: dict) -> Receipt:
    """The message's Receipt; counts that are missing or not whole numbers are 0."""
    received = int(message.get("Attributes", {}).get("ApproximateReceiveCount", "1"))
    attributes = message.get("MessageAttributes")
    earlier = _count(attributes, RECEIVES_ATTRIBUTE)
    # Never more interruptions than receives: a hand-made attribute cannot make tries negative.
    return Receipt(received, earlier, min(_count(attributes, INTERRUPTIONS_ATTRIBUTE), earlier))


def _source(data: Any, what: str, step: str = "") -> Source:
    if not isinstance(data, dict) or not data.get("bucket") or not data.get("key"):
        raise JobFailure("bad_message", f"{what} lacks bucket or key")
    size = data.get("size")
    size = size if isinstance(size, int) and not isinstance(size, bool) and size >= 0 else None
    return Source(str(data["bucket"]), str(data["key"]), data.get("etag"), size, step)


def _join_inputs(inputs: Any) -> tuple[Source, ...]:
    if not isinstance(inputs, list) or not inputs:
        raise JobFailure("bad_message", "message inputs must be a non-empty list")
    sources = []
    for index, item in enumerate(inputs):
        step = item.get("step") if isinstance(item, dict) else None
        if not isinstance(step, str) or not STEP_ID.fullmatch(step):
            raise JobFailure("bad_message", f"inputs[{index}].step must match ^{STEP_ID.pattern}$, got {step!r}")
        sources.append(_source(item, f"inputs[{index}]", step))
    steps = [s.step for s in sources]
    if len(set(steps)) != len(steps):
        raise JobFailure("bad_message", f"message inputs name a step twice: {', '.join(steps)}")
    return tuple(sources)


def _gather_prefix(gather: Any) -> str:
    prefix = gather.get("prefix") if isinstance(gather, dict) else None
    if not isinstance(prefix, str):
        raise JobFailure("bad_message", 'message gather must be {"prefix": "<prefix>"}')
    return prefix


def parse_body(body: str) -> Job:
    """The job of a message body; the size is dropped when not a whole number."""
    try:
        data = json.loads(body)
    except ValueError as exc:
        raise JobFailure("bad_message", f"message body is not JSON: {exc}") from None
    source = _source(data, "message body")
    inputs, gather = data.get("inputs"), data.get("gather")
    # A run that is not one of ours is ignored rather than failing the job: accounting never
    # stands in the way of a result.
    run = data.get("run")
    run = run if isinstance(run, str) and RUN_NAME.match(run) else None
    force = data.get("force") is True
    if inputs is not None and gather is not None:
        raise JobFailure("bad_message", "message has both inputs and gather")
    if inputs is not None:
        return Job(source, inputs=_join_inputs(inputs), run=run, force=force)
    if gather is not None:
        return Job(source, gather_prefix=_gather_prefix(gather), run=run, force=force)
    return Job(source, run=run, force=force)
