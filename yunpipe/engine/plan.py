"""A plan is data: a tuple of API calls, each with a message and the resource it settles."""
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

M = TypeVar("M")


@dataclass(frozen=True)
class Ref:
    """A value an earlier call of the same plan produces (a new queue's URL)."""

    name: str


def substitute(value: Any, marker: type[M], lookup: Callable[[M], Any]) -> Any:
    """`value` with each `marker` in it (in dicts and lists, at any depth) replaced by
    lookup(marker): the planner's queue URLs, the executor's values of earlier calls."""
    if isinstance(value, marker):
        return lookup(value)
    if isinstance(value, dict):
        return {k: substitute(v, marker, lookup) for k, v in value.items()}
    if isinstance(value, list):
        return [substitute(v, marker, lookup) for v in value]
    return value


@dataclass(frozen=True)
class Transient:
    """An AWS error that passes with time: its code and, where the code also covers lasting
    mistakes (InvalidParameterValueException), a part of its message."""

    code: str
    message: str = ""

    def matches(self, code: str, message: str) -> bool:
        return code == self.code and self.message in message


@dataclass(frozen=True)
class Call:
    service: str
    operation: str  # the boto3 method name
    params: Mapping[str, Any]
    message: str
    kind: str  # the resource kind and key the call creates, updates or deletes
    key: str
    action: str  # "create", "update" or "delete"
    # After success: record the resource in the state ("add"), forget it ("remove"), or neither.
    record: str = "add"
    outputs: tuple[tuple[str, str], ...] = ()  # (Ref name, response field) to keep
    # AWS's eventual consistency (a role not yet assumable, a queue name deleted moments
    # ago, tasks still stopping): retried with backoff.
    retry_on: tuple[Transient, ...] = ()
    # Error codes meaning the work is already done (a delete of something already gone).
    done_codes: tuple[str, ...] = ()
    # Errors (code and message part) meaning the same, where the code alone also covers mistakes.
    done_on: tuple[Transient, ...] = ()

    def __str__(self) -> str:
        return self.message


@dataclass(frozen=True)
class Plan:
    calls: tuple[Call, ...] = ()
    # Resources recorded in the state that no longer exist: forgotten without a call.
    gone: tuple[tuple[str, str], ...] = ()
    notes: tuple[str, ...] = field(default=())

    def __add__(self, other: "Plan") -> "Plan":
        return Plan(self.calls + other.calls, self.gone + other.gone, self.notes + other.notes)

    def __bool__(self) -> bool:
        return bool(self.calls)
