"""Spec fields declared once: a dataclass field carries where its value sits in the document,
its JSON Schema and (as the dataclass default) its default. The schema that validates a
document and the parser that reads it are both derived from those fields, so the three
cannot drift apart.
"""
from collections.abc import Callable, Iterable, Mapping
from dataclasses import MISSING, field, fields
from typing import Any


def spec_field(path: str, schema: Mapping[str, Any], default: Any = MISSING, *, default_factory: Any = MISSING,
               required: bool = False, convert: Callable[[Any], Any] | None = None) -> Any:
    """A dataclass field read from `path` ("filter.prefix" for a nested key) and checked by `schema`;
    `convert` turns the document's value into the field's type (a list into a tuple, say)."""
    metadata = {"path": tuple(path.split(".")), "schema": dict(schema), "required": required, "convert": convert}
    return field(default=default, default_factory=default_factory, metadata=metadata)


def _spec_fields(cls: type, exclude: Iterable[str] = ()) -> list:
    return [f for f in fields(cls) if "path" in f.metadata and f.name not in set(exclude)]


def _object() -> dict:
    return {"type": "object", "additionalProperties": False, "properties": {}, "required": []}


def object_schema(cls: type, extra: Mapping[str, Mapping[str, Any]] | None = None, exclude: Iterable[str] = (),
                  required_extra: Iterable[str] = ()) -> dict:
    """The JSON Schema of the documents `cls` is read from: every field's schema at its path,
    objects closed to unknown keys, an object required when one of its keys is. `extra` adds
    properties that are not plain fields (by path), `exclude` leaves fields out."""
    root = _object()

    def place(path: tuple[str, ...], schema: Mapping[str, Any], required: bool) -> None:
        node = root
        for part in path[:-1]:
            if required and part not in node["required"]:
                node["required"].append(part)
            node = node["properties"].setdefault(part, _object())
        node["properties"][path[-1]] = dict(schema)
        if required:
            node["required"].append(path[-1])

    for f in _spec_fields(cls, exclude):
        place(f.metadata["path"], f.metadata["schema"], f.metadata["required"])
    required_extra = set(required_extra)
    for path, schema in (extra or {}).items():
        place(tuple(path.split(".")), schema, path in required_extra)
    _drop_empty_required(root)
    return root


def _drop_empty_required(node: dict) -> None:
    if node.get("required") == []:
        del node["required"]
    for child in node.get("properties", {}).values():
        if child.get("type") == "object" and "properties" in child:
            _drop_empty_required(child)


def read_fields(cls: type, document: Mapping[str, Any], exclude: Iterable[str] = ()) -> dict[str, Any]:
    """Constructor arguments for `cls` from a validated document: each field's value at its path,
    converted; a field absent from the document is left to its dataclass default."""
    values = {}
    for f in _spec_fields(cls, exclude):
        value: Any = document
        for part in f.metadata["path"]:
            if not isinstance(value, Mapping) or part not in value:
                value = MISSING
                break
            value = value[part]
        if value is MISSING:
            continue
        # JSON Schema's integers include 3.0: the field holds 3 (AWS and the worker want integers).
        if f.metadata["schema"].get("type") == "integer" and isinstance(value, float):
            value = int(value)
        convert = f.metadata["convert"]
        values[f.name] = convert(value) if convert else value
    return values
