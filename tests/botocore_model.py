"""Every call the tests make, checked against botocore's own service model for what botocore's
client-side validation skips: a string's max length, pattern and enum, a list's or map's max
size, a number's max (botocore checks types, required members and minimums only). Test
harness only: a name one character too long then fails a test instead of a real deploy.

`active()` registers one `before-parameter-build` handler in botocore's BUILTIN_HANDLERS,
which every botocore session created from then on installs: the in-process moto's clients,
the local cloud's and the product's alike. tests/conftest.py turns it on for the whole run.
"""
from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator
from typing import Any
from unittest import mock

import regex
from botocore.handlers import BUILTIN_HANDLERS
from botocore.model import OperationModel, Shape


class ModelViolation(AssertionError):
    """A call botocore would send and AWS would refuse. An AssertionError, so that no `except
    ClientError` or `except BotoCoreError` in the code under test can take it for AWS's answer."""


@functools.cache
def _regex(pattern: str) -> regex.Pattern | None:
    """The model's pattern (Java syntax: `regex` has its \\p{L} classes that `re` lacks); None
    for one it cannot read, left unchecked. Matched as AWS matches it: the whole value."""
    try:
        return regex.compile(pattern)
    except regex.error:
        return None


def _size(size: int, shape: Shape, path: str, unit: str) -> Iterator[str]:
    low, high = shape.metadata.get("min"), shape.metadata.get("max")
    if low is not None and size < low:
        yield f"{path}: {size} {unit}, expected at least {low}"
    if high is not None and size > high:
        yield f"{path}: {size} {unit}, expected at most {high}"


def violations(value: Any, shape: Shape, path: str) -> Iterator[str]:
    """Each constraint of `shape` that `value` (params as given to the client) breaks."""
    kind = shape.type_name
    if kind == "structure" and isinstance(value, dict):
        for name, member in shape.members.items():  # type: ignore[attr-defined]
            if value.get(name) is not None:
                yield from violations(value[name], member, f"{path}.{name}" if path else name)
    elif kind == "list" and isinstance(value, (list, tuple)):
        yield from _size(len(value), shape, path, "items")
        for index, item in enumerate(value):
            yield from violations(item, shape.member, f"{path}[{index}]")  # type: ignore[attr-defined]
    elif kind == "map" and isinstance(value, dict):
        yield from _size(len(value), shape, path, "entries")
        for key, item in value.items():
            yield from violations(key, shape.key, f"{path} key {key!r}")  # type: ignore[attr-defined]
            yield from violations(item, shape.value, f"{path}.{key}")  # type: ignore[attr-defined]
    else:
        yield from _scalar(value, shape, path)


def _scalar(value: Any, shape: Shape, path: str) -> Iterator[str]:
    kind = shape.type_name
    if kind == "string" and isinstance(value, str):
        yield from _size(len(value), shape, path, "characters")
        if shape.enum and value not in shape.enum:
            yield f"{path}: {value!r}, expected one of {', '.join(shape.enum)}"
        pattern = shape.metadata.get("pattern")
        compiled = _regex(pattern) if pattern else None
        if compiled is not None and not compiled.fullmatch(value):
            yield f"{path}: {value[:80]!r}, expected a match of the pattern {pattern}"
    elif kind == "blob" and isinstance(value, (bytes, bytearray, str)):
        yield from _size(len(value), shape, path, "bytes")
    elif kind in ("integer", "long", "float", "double") and isinstance(value, (int, float)):
        high = shape.metadata.get("max")
        if high is not None and value > high:
            yield f"{path}: {value}, expected at most {high}"


def check_call(params: dict, model: OperationModel, **_kwargs: Any) -> None:
    """botocore's before-parameter-build handler: raises ModelViolation naming the operation,
    each member path and the constraint it breaks."""
    if model.input_shape is None:
        return
    found = list(violations(params, model.input_shape, ""))
    if found:
        raise ModelViolation(f"{model.service_model.service_name} {model.name} breaks botocore's model: "
                             + "; ".join(found))


HANDLER = ("before-parameter-build", check_call)


@contextlib.contextmanager
def active() -> Iterator[None]:
    """Sessions (and their clients) created while active check every call."""
    BUILTIN_HANDLERS.append(HANDLER)
    try:
        # boto3's default session may predate the handler: the next boto3.client() makes another.
        with mock.patch("boto3.DEFAULT_SESSION", None):
            yield
    finally:
        BUILTIN_HANDLERS.remove(HANDLER)
