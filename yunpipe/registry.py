"""The local algorithm registry: every wrap records an immutable, numbered version; a record
pulled from a shared registry (yunpipe.remote) keeps its publisher's version.

Layout: <home>/algorithms/<name>/<N>.json, one record per version, written once with
O_EXCL so version N is never overwritten (the 0.0.3 tool kept its JSON in the same folder).
"""
import json
import os
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from yunpipe import paths
from yunpipe.errors import InputError, YunpipeError
from yunpipe.specs.algorithm import NAME_PATTERN, AlgorithmSpec, parse_algorithm
from yunpipe.specs.loading import load_document

REFERENCE = re.compile(r"\A(?P<name>[^@]+?)(?:@(?P<version>[^@]*))?\Z")


@dataclass(frozen=True)
class AlgorithmRecord:
    name: str
    version: int
    spec: AlgorithmSpec
    image: str
    digest: str
    created_at: str

    @property
    def reference(self) -> str:
        return f"{self.name}@{self.version}"

    @property
    def image_uri(self) -> str:
        """The image to run: pinned by digest when the registry gave one, else the tag."""
        if not self.digest:
            return self.image
        last = self.image.rsplit("/", 1)
        repository = self.image.rsplit(":", 1)[0] if ":" in last[-1] else self.image
        return f"{repository}@{self.digest}"

    def to_document(self) -> dict:
        return {"name": self.name, "version": self.version, "image": self.image, "digest": self.digest,
                "created_at": self.created_at, "spec": self.spec.to_document()}

    @classmethod
    def from_document(cls, doc: object, source: str) -> "AlgorithmRecord":
        """The record of a document written by to_document (a local file or a shared one), or
        an InputError naming `source` and the field."""
        if not isinstance(doc, dict):
            raise InputError(source, "", "expected an algorithm record (a JSON object)")
        for key, kind, what, default in (("name", str, "a name", None), ("version", int, "a version number", None),
                                         ("image", str, "an image reference", None), ("spec", dict, "an algorithm", None),
                                         ("digest", str, "an image digest", ""), ("created_at", str, "a time", "")):
            if not isinstance(doc.get(key, default), kind):
                raise InputError(source, key, f"expected {what}")
        spec = parse_algorithm(doc["spec"], source)
        if doc["name"] != spec.name:
            raise InputError(source, "name", f"expected the name of its spec, '{spec.name}'")
        return cls(doc["name"], doc["version"], spec, doc["image"], doc.get("digest", ""), doc.get("created_at", ""))


def parse_reference(reference: str) -> tuple[str, int | None]:
    """'name' -> (name, None) meaning latest; 'name@3' -> (name, 3)."""
    match = REFERENCE.match(reference)
    # The name is a folder of the registry: an algorithm's name, never a path or a name too long for one.
    if not match or not re.match(NAME_PATTERN, match.group("name")):
        raise ValueError(reference)
    version = match.group("version")
    if version is None:
        return match.group("name"), None
    if not re.fullmatch(r"[0-9]{1,9}", version) or int(version) < 1:
        raise ValueError(reference)
    return match.group("name"), int(version)


def parse_algorithm_reference(reference: str, source: str, field: str) -> tuple[str, int | None]:
    """parse_reference, or an InputError naming `source` and `field`."""
    try:
        return parse_reference(reference)
    except ValueError:
        raise InputError(source, field, f"expected NAME or NAME@VERSION (NAME of letters, digits, '-', '_' or '.', at most "
                                        f"63 characters; VERSION a number from 1), got '{reference}'") from None


class AlgorithmRegistry:
    def __init__(self, root: Path | None = None):
        self.root = Path(root) if root else paths.algorithms_dir()
        # A version's file is written once and never changed: read once (a graph may name one algorithm a thousand times).
        self._records: dict[Path, AlgorithmRecord] = {}

    def _folder(self, name: str) -> Path:
        return self.root / name

    def versions(self, name: str) -> list[int]:
        folder = self._folder(name)
        if not folder.is_dir():
            return []
        return sorted(int(p.stem) for p in folder.glob("*.json") if p.stem.isdigit())

    def next_version(self, name: str) -> int:
        versions = self.versions(name)
        return versions[-1] + 1 if versions else 1

    def record(self, spec: AlgorithmSpec, image: str, digest: str = "", version: int | None = None) -> AlgorithmRecord:
        """Write version `version` (default: the next one); never overwrites an existing one."""
        version = version or self.next_version(spec.name)
        record = AlgorithmRecord(spec.name, version, spec, image, digest,
                                 datetime.now(timezone.utc).isoformat(timespec="seconds"))
        if not self._write(record):
            raise YunpipeError(f"{record.reference} is already recorded; versions are never overwritten")
        return record

    def store(self, record: AlgorithmRecord) -> bool:
        """Keep a record made in another home (pulled) under its own version, unchanged: True
        when written, False when this registry holds that very record already; another record
        of the same version is an error (versions are never overwritten)."""
        if self._write(record):
            return True
        here = self.get(record.name, record.version)
        if here is not None and here.to_document() == record.to_document():
            return False
        raise YunpipeError(f"{record.reference} is already recorded here ({self._folder(record.name)}/{record.version}.json) "
                           "with other content; versions are never overwritten")

    def _write(self, record: AlgorithmRecord) -> bool:
        """Write the record's file once (O_EXCL); False when that version's file exists."""
        folder = self._folder(record.name)
        folder.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(folder / f"{record.version}.json", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            return False
        with os.fdopen(fd, "w") as handle:
            json.dump(record.to_document(), handle, indent=2)
        return True

    def get(self, name: str, version: int | None = None) -> AlgorithmRecord | None:
        versions = self.versions(name)
        if not versions:
            return None
        version = versions[-1] if version is None else version
        path = self._folder(name) / f"{version}.json"
        if path not in self._records:
            if not path.exists():
                return None
            self._records[path] = AlgorithmRecord.from_document(load_document(path, yaml_format=False), str(path))
        return self._records[path]

    def resolve(self, reference: str, source: str, field: str) -> AlgorithmRecord:
        """A workflow's 'NAME' or 'NAME@VERSION', or an InputError naming the field."""
        name, version = parse_algorithm_reference(reference, source, field)
        versions = self.versions(name)
        if not versions:
            known = ", ".join(self.names()) or "none recorded yet; run wrap first"
            raise InputError(source, field, f"expected a recorded algorithm, '{name}' is unknown (known: {known})")
        record = self.get(name, version)
        if record is None:
            raise InputError(source, field, f"expected a recorded version of '{name}' ({', '.join(map(str, versions))}), got {version}")
        return record

    def newer_than(self, reference: str) -> AlgorithmRecord | None:
        """The newest recorded version of the algorithm 'NAME@VERSION' names, when it is newer
        than VERSION; None otherwise (also for a name this registry does not hold)."""
        try:
            name, version = parse_reference(reference)
        except ValueError:
            return None
        newest = self.get(name)
        return newest if newest is not None and version is not None and newest.version > version else None

    def names(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if p.is_dir() and self.versions(p.name))

    def latest(self) -> list[AlgorithmRecord]:
        # names() lists only algorithms with a version, so each has a latest one.
        return [record for name in self.names() if (record := self.get(name)) is not None]
