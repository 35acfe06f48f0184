"""The packaged algorithm: a folder of code with a `yunpipe.yaml` (issue 10).

`yunpipe.yaml` is an algorithm file (yunpipe.specs.algorithm) without `container_name` and
`system`, which `wrap` sets (the runtime image it builds from the folder, on Debian), plus the
package fields of PackageSpec: `runtime`, `entry` and, for Python, `requirements`.
`run_command` may be left out: it then runs `entry` on `$input` and `$output`.
"""
import dataclasses
import posixpath
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from yunpipe.errors import InputError
from yunpipe.specs.algorithm import ALGORITHM_SCHEMA, AlgorithmSpec, parse_algorithm
from yunpipe.specs.fields import object_schema, read_fields, spec_field
from yunpipe.specs.loading import is_folder, load_document, validate

PACKAGE_FILE = "yunpipe.yaml"
# Where the runtime image keeps the folder's files; run_command names them there.
CODE_DIR = "/opt/algorithm"
# runtime -> (default entry, the program that runs it)
RUNTIMES = {"python": ("main.py", "python3"), "shell": ("run.sh", "sh")}
# The algorithm fields wrap fills in itself: the runtime image, and the Debian it is built on.
SET_BY_WRAP = ("container_name", "system")
RUNTIME_SYSTEM = "debian"
RUNTIME_REPOSITORY = "yunpipe-runtime"
# A PyPI requirement line (PEP 508: a project name, extras, a version or marker); never a pip option.
REQUIREMENT_PATTERN = r"\A[A-Za-z0-9][A-Za-z0-9._-]*(\[[A-Za-z0-9._, -]*\])?[ \t]*([<>=!~;@(].*)?\Z"
ENTRY_PATTERN = r"\A(?!/)(?!.*(^|/)\.\.(/|$))[A-Za-z0-9_./-]{1,1024}\Z"


@dataclass(frozen=True)
class PackageSpec:
    """A packaged algorithm: where it is, the algorithm it declares (container_name: the
    repository of its runtime images, which wrap tags) and its package fields, each declared once."""

    folder: Path
    source: str
    algorithm: AlgorithmSpec
    runtime: str = spec_field("runtime", {"type": "string", "enum": list(RUNTIMES)}, required=True)
    # Without it: the runtime's default (RUNTIMES).
    entry: str = spec_field("entry", {"type": "string", "pattern": ENTRY_PATTERN,
                                      "description": "a file of the package folder, as a relative path"}, "")
    requirements: tuple[str, ...] = spec_field(
        "requirements", {"type": "array", "items": {"type": "string", "pattern": REQUIREMENT_PATTERN,
                                                    "description": "a PyPI requirement such as 'python-slugify>=8' "
                                                                   "(no pip options)"}},
        (), convert=tuple)


PACKAGE_SCHEMA: dict = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    **object_schema(PackageSpec, required_extra=["name"],
                    extra={key: schema for key, schema in ALGORITHM_SCHEMA["properties"].items() if key not in SET_BY_WRAP}),
}


def package_file(path: str | Path) -> Path | None:
    """The yunpipe.yaml a `wrap -f` argument names (the folder, or the file itself), else None."""
    path = Path(path)
    if is_folder(path):
        return path / PACKAGE_FILE
    return path if path.name == PACKAGE_FILE else None


def parse_package(document: Any, folder: Path, source: str) -> PackageSpec:
    validate(document, PACKAGE_SCHEMA, source)
    values = read_fields(PackageSpec, document)
    runtime = values["runtime"]
    default_entry, program = RUNTIMES[runtime]
    entry = values.setdefault("entry", default_entry)
    if not (folder / entry).is_file():
        raise InputError(source, "entry", f"expected a file of {folder}, {entry} is not there")
    if values.get("requirements") and runtime != "python":
        raise InputError(source, "requirements", f"expected none for runtime {runtime} (only python installs requirements)")
    package_keys = {f.metadata["path"][0] for f in dataclasses.fields(PackageSpec) if "path" in f.metadata}
    algorithm = {key: value for key, value in document.items() if key not in package_keys}
    algorithm.setdefault("run_command", f"{program} {posixpath.join(CODE_DIR, entry)} $input $output")
    # Docker wants repositories in lower case.
    algorithm["container_name"] = f"{RUNTIME_REPOSITORY}/{document['name'].lower()}"
    algorithm["system"] = RUNTIME_SYSTEM
    return PackageSpec(folder, source, parse_algorithm(algorithm, source), **values)


def load_package(path: str | Path) -> PackageSpec:
    """The package a folder (or its yunpipe.yaml) holds; bad input is an InputError naming the file."""
    file = package_file(path)
    if file is None:
        raise InputError(str(path), "", f"expected a package folder or its {PACKAGE_FILE}")
    if not is_folder(file.parent) or not file.is_file():
        raise InputError(str(file), "", f"file not found (a package folder holds a {PACKAGE_FILE}; `yunpipe init` writes one)")
    return parse_package(load_document(file), file.parent, str(file))
