"""Reading spec files (JSON or YAML) and turning schema violations into InputErrors.

Every spec file yunpipe reads (algorithm, workflow, package, CWL, registry record) comes
through `load_document`, which bounds what a file can cost before any field is looked at:
its size, its nesting and, YAML aliases expanded, its number of values. A document must be
one JSON can hold: text keys, each once per object, finite numbers, and no YAML-only types
(dates, !!binary, !!set, !!omap). Each refusal is an InputError naming the file and the field.
"""
import difflib
import json
import math
from collections.abc import Callable, Hashable, Iterable, Iterator
from pathlib import Path
from typing import Any

import jsonschema
import yaml
from jsonschema_specifications import REGISTRY as SPECIFICATIONS
from referencing import Registry
from referencing.exceptions import Unresolvable
from referencing.jsonschema import DRAFT202012

from yunpipe.errors import InputError

# A spec file is a page or two of text; these bounds are far above any real one and far below
# what would take memory or time (a YAML alias bomb expands into billions of values).
MAX_BYTES = 1 << 20
MAX_DEPTH = 64
MAX_VALUES = 100_000
YAML_SUFFIXES = (".yaml", ".yml")


# While a file is parsed: id(mapping) -> the first key it was given twice (JSON and YAML parsers
# both keep the last value silently). The mappings stay alive with the document, so do their ids.
Duplicates = dict[int, Any]


def _json_objects(duplicates: Duplicates) -> Callable[[list[tuple[str, Any]]], dict]:
    def json_object(pairs: list[tuple[str, Any]]) -> dict:
        mapping: dict = {}
        for key, value in pairs:
            if key in mapping:
                duplicates.setdefault(id(mapping), key)
            mapping[key] = value
        return mapping
    return json_object


def _no_constant(name: str) -> float:
    raise ValueError(f"expected a finite number, got {name}")


class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader, keeping duplicate keys in view (see Duplicates)."""

    duplicates: Duplicates

    def construct_yaml_map(self, node: yaml.MappingNode) -> Iterator[dict]:  # type: ignore[override]
        mapping: dict = {}
        yield mapping
        explicit = len([k for k, _ in node.value if k.tag != "tag:yaml.org,2002:merge"])
        self.flatten_mapping(node)
        # Merged (<<) pairs come first and may be overridden; only the file's own keys count twice.
        first_explicit = len(node.value) - explicit
        own: set = set()
        for index, (key_node, value_node) in enumerate(node.value):
            key = self.construct_object(key_node)
            if not isinstance(key, Hashable):
                raise yaml.constructor.ConstructorError(None, None, "found a key that is a list or mapping",
                                                        key_node.start_mark)
            if index >= first_explicit:
                if key in own:
                    self.duplicates.setdefault(id(mapping), key)
                own.add(key)
            mapping[key] = self.construct_object(value_node)


_Loader.add_constructor("tag:yaml.org,2002:map", _Loader.construct_yaml_map)


def _read(path: Path) -> str:
    try:
        with path.open("rb") as handle:
            raw = handle.read(MAX_BYTES + 1)
    except FileNotFoundError:
        raise InputError(str(path), "", "file not found") from None
    except IsADirectoryError:
        raise InputError(str(path), "", "expected a file, got a folder") from None
    except OSError as exc:
        raise InputError(str(path), "", f"cannot be read ({exc.strerror or exc})") from None
    if len(raw) > MAX_BYTES:
        raise InputError(str(path), "", f"expected a file of at most {MAX_BYTES // 1024} KiB (a spec file is small)")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(str(path), "", f"expected UTF-8 text (byte {exc.start} is not)") from None


def _parse_yaml(text: str, source: str, duplicates: Duplicates) -> Any:
    loader = _Loader(text)
    loader.duplicates = duplicates
    try:
        return loader.get_single_data()
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise InputError(source, where, f"expected valid YAML ({getattr(exc, 'problem', None) or exc})") from None
    except RecursionError:
        raise InputError(source, "", f"expected at most {MAX_DEPTH} levels of nesting") from None
    except ValueError:  # an integer of more digits than Python converts
        raise InputError(source, "", "expected valid YAML (a number of more than 4300 digits)") from None
    finally:
        loader.dispose()


def _parse_json(text: str, source: str, duplicates: Duplicates) -> Any:
    try:
        return json.loads(text, object_pairs_hook=_json_objects(duplicates), parse_constant=_no_constant)
    except json.JSONDecodeError as exc:
        raise InputError(source, f"line {exc.lineno}, column {exc.colno}", f"expected valid JSON ({exc.msg})") from None
    except RecursionError:
        raise InputError(source, "", f"expected at most {MAX_DEPTH} levels of nesting") from None
    except ValueError as exc:  # NaN or Infinity, or an integer of more digits than Python converts
        detail = str(exc) if str(exc).startswith("expected") else "expected numbers of at most 4300 digits"
        raise InputError(source, "", f"expected valid JSON ({detail})") from None


def is_folder(path: str | Path) -> bool:
    """Path.is_dir, False for a path the system cannot even look up (a name over 255 bytes):
    reading it then says why, naming the file."""
    try:
        return Path(path).is_dir()
    except OSError:
        return False


def load_document(path: str | Path, *, yaml_format: bool | None = None, json_only: bool = True) -> Any:
    """Parse a JSON or YAML file (by its suffix, or `yaml_format`), within the bounds above;
    any problem is an InputError naming the file. `json_only=False` lets YAML-only scalars
    (dates) through, for formats that have a use for them (CWL's metadata)."""
    path = Path(path)
    if yaml_format is None:
        yaml_format = path.suffix.lower() in YAML_SUFFIXES
    return parse_document(_read(path), str(path), yaml_format=yaml_format, json_only=json_only)


def parse_document(text: str, source: str, *, yaml_format: bool, json_only: bool = True) -> Any:
    """load_document for text read elsewhere (a shared registry's record)."""
    if len(text) > MAX_BYTES:
        raise InputError(source, "", f"expected a file of at most {MAX_BYTES // 1024} KiB (a spec file is small)")
    duplicates: Duplicates = {}
    if yaml_format:
        document = _parse_yaml(text, source, duplicates)
    elif not text.strip():
        raise InputError(source, "", "expected a JSON document, the file is empty")
    else:
        document = _parse_json(text, source, duplicates)
    check_document(document, source, json_only=json_only, duplicates=duplicates)
    return document


def _kind(value: Any) -> str:
    """What a non-JSON value read from YAML is, in the user's words."""
    name = type(value).__name__
    return {"date": "a date", "datetime": "a date and time", "bytes": "binary data (!!binary)", "set": "a set (!!set)",
            "tuple": "ordered pairs (!!omap or !!pairs)", "int": "a number", "float": "a number",
            "bool": "true or false", "NoneType": "null"}.get(name, name)


def check_document(document: Any, source: str, *, json_only: bool = True, duplicates: Duplicates | None = None) -> None:
    """Refuse, naming the field, what JSON cannot hold or what would cost without bound: looked at
    iteratively (no recursion), each YAML alias counted where it is used."""
    stack: list[tuple[Any, tuple]] = [(document, ())]
    count = 0
    while stack:
        value, path = stack.pop()
        count += 1
        if count > MAX_VALUES:
            raise InputError(source, "", f"expected at most {MAX_VALUES} values (YAML aliases counted where used)")
        if len(path) > MAX_DEPTH:
            raise InputError(source, field_path(path[:2]), f"expected at most {MAX_DEPTH} levels of nesting")
        if isinstance(value, dict):
            if duplicates and id(value) in duplicates:
                raise InputError(source, field_path((*path, str(duplicates[id(value)]))),
                                 "expected each key once in its object, got it twice (only the last would count)")
            for key in reversed(list(value)):
                if json_only and not isinstance(key, str):
                    raise InputError(source, field_path(path), f"expected text keys, got {_kind(key)} {key!r} "
                                                               "(quote it to make it text)")
                stack.append((value[key], (*path, str(key))))
        elif isinstance(value, list):
            stack.extend((item, (*path, index)) for index, item in reversed(list(enumerate(value))))
        elif isinstance(value, float) and not math.isfinite(value):
            raise InputError(source, field_path(path), f"expected a finite number, got {value}")
        elif json_only and not (value is None or isinstance(value, (str, int, float))):
            raise InputError(source, field_path(path), f"expected text, a number, true/false, null, a list or a "
                                                       f"mapping, got {_kind(value)} (quote it to make it text)")


def field_path(parts: Iterable[str | int]) -> str:
    """['process', 'algorithms', 0, 'name'] -> 'process.algorithms[0].name'."""
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def _describe(error: jsonschema.ValidationError) -> tuple[list, str]:
    """The field path and an 'expected ...' phrase for one jsonschema error."""
    parts = list(error.absolute_path)
    value = error.instance
    if error.validator == "required":
        missing = error.message.split("'")[1]
        return [*parts, missing], "missing required field"
    if error.validator == "additionalProperties":
        known = error.schema.get("properties", {})
        extra = sorted(set(value) - set(known))
        close = difflib.get_close_matches(extra[0], list(known), n=1) if extra else []
        hint = f"; did you mean {close[0]!r}?" if close else ""
        return [*parts, extra[0]] if extra else parts, f"unknown field (not part of the format){hint}"
    if error.validator == "type":
        expected = error.validator_value
        expected = " or ".join(expected) if isinstance(expected, list) else expected
        return parts, f"expected {expected}, got {json.dumps(value)}"
    if error.validator == "enum":
        options = ", ".join(json.dumps(v) for v in error.validator_value)
        return parts, f"expected one of {options}, got {json.dumps(value)}"
    hint = error.schema.get("description")
    if hint:
        return parts, f"expected {hint}, got {json.dumps(value)}"
    return parts, f"expected a value that satisfies '{error.validator}' ({error.message})"


def validate(document: Any, schema: dict, source: str, prefix: tuple = ()) -> None:
    """Raise an InputError for the first (by position) violation of schema."""
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(document), key=lambda e: [str(p) for p in e.absolute_path])
    if errors:
        # The most specific error explains best: descend into oneOf/anyOf contexts.
        error = jsonschema.exceptions.best_match(errors)
        parts, expected = _describe(error)
        raise InputError(source, field_path(list(prefix) + parts), expected)


# A variable's JSON Schema resolves its $refs inside itself only: the registry knows the JSON
# Schema metaschemas and nothing else, and retrieves nothing (no network, no files).
VARIABLE_SCHEMA_URI = "urn:yunpipe:variable-schema"


def variable_validator(schema: dict) -> jsonschema.Draft202012Validator:
    """A validator for a user variable's value whose references never leave the schema."""
    registry: Registry = SPECIFICATIONS.with_resource(VARIABLE_SCHEMA_URI, DRAFT202012.create_resource(schema))
    return jsonschema.Draft202012Validator({"$ref": VARIABLE_SCHEMA_URI}, registry=registry)


def unresolved_reference(schema: dict) -> str | None:
    """The first `$ref` of schema that does not resolve inside it, or None."""
    registry: Registry = SPECIFICATIONS.with_resource(VARIABLE_SCHEMA_URI, DRAFT202012.create_resource(schema))
    resolver = registry.resolver(base_uri=VARIABLE_SCHEMA_URI)
    stack: list[Any] = [schema]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str):
                try:
                    resolver.lookup(ref)
                except Unresolvable:
                    return ref
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return None
