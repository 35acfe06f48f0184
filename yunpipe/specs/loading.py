"""Reading spec files (JSON or YAML) and turning schema violations into InputErrors."""
import difflib
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from yunpipe.errors import InputError


def load_document(path: str | Path) -> Any:
    """Parse a JSON or YAML file; any problem is an InputError naming the file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(str(path), "", "file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(str(path), "", f"cannot be read ({exc})") from None
    if path.suffix.lower() in (".yaml", ".yml"):
        try:
            return yaml.safe_load(text)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else ""
            raise InputError(str(path), where, f"expected valid YAML ({getattr(exc, 'problem', exc)})") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(str(path), f"line {exc.lineno}, column {exc.colno}", f"expected valid JSON ({exc.msg})") from None


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
