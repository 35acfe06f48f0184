"""Shared algorithm registries on S3 (`yunpipe algorithms publish|pull|remote`), so colleagues
on other machines and accounts use the same algorithm versions without passing files around.

Layout: s3://BUCKET/PREFIX/<name>/<version>.json, each object the document of a local record
(AlgorithmRecord.to_document), so a pulled record is the publisher's, byte for byte. A version
is written once, by a conditional write (`If-None-Match: *`): of two colleagues publishing the
same version at once, S3 lets exactly one create it and refuses the other. There is no index:
the names and versions are the keys under the prefix (ListObjectsV2).

A published record names its image by digest, so every colleague runs the very image the
publisher wrapped; a version without one (an image only in the publisher's Docker) is refused.
A workflow step names a shared algorithm as s3://BUCKET/PREFIX/NAME[@VERSION], or as
NAME[@VERSION] when the local registry lacks it and a default remote is configured
(`yunpipe algorithms remote s3://...`, or YUNPIPE_REMOTE); it is pulled before anything is planned.
"""
import contextlib
import json
import os
import re
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from yunpipe import paths
from yunpipe.aws.facade import Aws, ClientError, error_code
from yunpipe.errors import InputError, YunpipeError
from yunpipe.registry import AlgorithmRecord, AlgorithmRegistry, parse_algorithm_reference
from yunpipe.specs.loading import load_document, parse_document
from yunpipe.specs.workflow import bucket_name_problem

REMOTE_ENV = "YUNPIPE_REMOTE"
URL_FORM = "s3://BUCKET[/PREFIX]"
VERSION_FILE = re.compile(r"\A(?P<version>[1-9][0-9]*)\.json\Z")
# S3's answers to a conditional write whose key exists (412), or is being written right now (409).
TAKEN = ("PreconditionFailed", "ConditionalRequestConflict")


@dataclass(frozen=True)
class RemoteLocation:
    bucket: str
    prefix: str

    @property
    def url(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}" if self.prefix else f"s3://{self.bucket}"

    def key(self, *parts: str) -> str:
        return "/".join(part for part in (self.prefix, *parts) if part)

    def record_key(self, name: str, version: int) -> str:
        return self.key(name, f"{version}.json")


def parse_remote(url: str, source: str, field: str) -> RemoteLocation:
    """s3://BUCKET[/PREFIX] as a location, or an InputError naming `source` and `field`."""
    if not url.startswith("s3://"):
        raise InputError(source, field, f"expected {URL_FORM}, got '{url}'")
    bucket, _, prefix = url[len("s3://"):].partition("/")
    problem = bucket_name_problem(bucket)
    if problem:
        raise InputError(source, field, f"expected {URL_FORM} with a valid bucket name ({problem}), got '{url}'")
    prefix = prefix.strip("/")
    if "//" in prefix:
        raise InputError(source, field, f"expected {URL_FORM} without empty folders ('//'), got '{url}'")
    return RemoteLocation(bucket, prefix)


def _config() -> dict:
    path = paths.config_file()
    if not path.exists():
        return {}
    document = load_document(path)
    if document is None:
        return {}
    if not isinstance(document, dict):
        raise InputError(str(path), "", f"expected a mapping such as 'remote: {URL_FORM}'")
    return document


def default_remote() -> RemoteLocation | None:
    """$YUNPIPE_REMOTE, else `remote` of <home>/config.yaml, else None."""
    if os.environ.get(REMOTE_ENV):
        return parse_remote(os.environ[REMOTE_ENV], REMOTE_ENV, "")
    url = _config().get("remote")
    if url is None:
        return None
    if not isinstance(url, str):
        raise InputError(str(paths.config_file()), "remote", f"expected {URL_FORM}")
    return parse_remote(url, str(paths.config_file()), "remote")


def set_default_remote(location: RemoteLocation) -> Path:
    """Record `location` as `remote` in <home>/config.yaml (other settings kept); its path."""
    document = {**_config(), "remote": location.url}
    path = paths.config_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


class RemoteRegistry:
    """The records under one s3://BUCKET/PREFIX."""

    def __init__(self, aws: Aws, location: RemoteLocation):
        self.aws = aws
        self.location = location

    @contextlib.contextmanager
    def _bucket(self) -> Iterator[None]:
        """A missing bucket is the user's URL naming nothing: yunpipe never creates it."""
        try:
            yield
        except ClientError as error:
            if error_code(error) != "NoSuchBucket":
                raise
            raise InputError(self.location.url, "BUCKET", f"expected an existing bucket, '{self.location.bucket}' "
                                                          "does not exist (create it once for the team)") from None

    def _list(self, prefix: str, key: str, **params: Any) -> list:
        with self._bucket():
            return list(self.aws.pages("s3", "list_objects_v2", key, Bucket=self.location.bucket, Prefix=prefix,
                                       **params))

    def names(self) -> list[str]:
        base = f"{self.location.prefix}/" if self.location.prefix else ""
        folders = self._list(base, "CommonPrefixes", Delimiter="/")
        return sorted(folder["Prefix"][len(base):].rstrip("/") for folder in folders)

    def versions(self, name: str) -> list[int]:
        folder = self.location.key(name) + "/"
        found = (VERSION_FILE.match(item["Key"][len(folder):]) for item in self._list(folder, "Contents"))
        return sorted(int(match.group("version")) for match in found if match)

    def get(self, name: str, version: int) -> AlgorithmRecord | None:
        key = self.location.record_key(name, version)
        source = f"s3://{self.location.bucket}/{key}"
        try:
            with self._bucket():
                body = self.aws.call("s3", "get_object", Bucket=self.location.bucket, Key=key)["Body"].read()
        except ClientError as error:
            if error_code(error) == "NoSuchKey":
                return None
            raise
        try:
            document = parse_document(body.decode("utf-8"), source, yaml_format=False)
        except UnicodeDecodeError:
            raise InputError(source, "", "expected an algorithm record in JSON (UTF-8 text)") from None
        record = AlgorithmRecord.from_document(document, source)
        if (record.name, record.version) != (name, version):
            raise InputError(source, "name, version", f"expected {name}@{version} as its key says, got {record.reference}")
        return record

    def fetch(self, name: str, version: int | None, source: str, field: str, where: str = "") -> AlgorithmRecord:
        """NAME@VERSION (the latest when None), or an InputError naming `source` and `field`
        that lists what is published."""
        where = where or f"published at {self.location.url}"
        record = None if version is None else self.get(name, version)
        if record is None:
            versions = self.versions(name)
            if version is None and versions:
                record = self.get(name, versions[-1])
        if record is not None:
            return record
        if versions:
            raise InputError(source, field, f"expected a version of '{name}' {where} "
                                            f"({', '.join(map(str, versions))}), got {version}")
        published = ", ".join(self.names()) or "none"
        raise InputError(source, field, f"expected an algorithm {where}, '{name}' is not (published: {published})")

    def publish(self, record: AlgorithmRecord) -> bool:
        """Create NAME@VERSION: True when this call created it, False when the identical record
        was published already. Another record there is an error: published versions never change."""
        if not record.digest:
            raise InputError("algorithms publish", record.reference,
                             f"expected a version whose image was pushed to a registry and is named by its digest; "
                             f"{record.image} exists only in the Docker of the machine that wrapped it, so a "
                             "colleague could not run it: wrap it again with -u USER [-r REGISTRY] or -r ecr "
                             "(or --local while the local registry runs) and publish that version")
        key = self.location.record_key(record.name, record.version)
        body = json.dumps(record.to_document(), indent=2).encode()
        try:
            with self._bucket():
                self.aws.call("s3", "put_object", Bucket=self.location.bucket, Key=key, Body=body,
                              ContentType="application/json", IfNoneMatch="*")
            return True
        except ClientError as error:
            if error_code(error) not in TAKEN:
                raise
        there = self.get(record.name, record.version)
        if there is None:
            # 409: a colleague's write of this version had not completed; theirs or ours wins on a retry.
            raise YunpipeError(f"{record.reference}: another publish to {self.location.url} was writing this "
                               "version at the same moment; run publish again")
        if there.to_document() == record.to_document():
            return False
        raise YunpipeError(f"{record.reference} is already published at {self.location.url} with other content "
                           f"(image {there.image_uri}, recorded {there.created_at or 'at an unknown time'}); "
                           "published versions never change: wrap a new version and publish that one")


class SharedAlgorithms:
    """Resolves a workflow step's algorithm like AlgorithmRegistry.resolve, and also from shared
    registries: s3://BUCKET/PREFIX/NAME[@VERSION], or NAME[@VERSION] missing here but published
    at the default remote. A shared record is pulled into the local registry first, so what
    setup-pipe plans and records is a local version, as for a wrapped one. AWS is opened only
    when a shared registry is asked."""

    def __init__(self, registry: AlgorithmRegistry, connect: Callable[[], Aws]):
        self.registry = registry
        self._connect = connect
        self._aws: Aws | None = None

    def _remote(self, location: RemoteLocation) -> RemoteRegistry:
        if self._aws is None:
            self._aws = self._connect()
        return RemoteRegistry(self._aws, location)

    def resolve(self, reference: str, source: str, field: str) -> AlgorithmRecord:
        if reference.startswith("s3://"):
            url, _, algorithm = reference.rpartition("/")
            if "/" not in reference[len("s3://"):]:
                raise InputError(source, field, f"expected {URL_FORM}/NAME[@VERSION], got '{reference}'")
            named = parse_remote(url, source, field)
            name, version = parse_algorithm_reference(algorithm, source, field)
            return self._pull(self._remote(named).fetch(name, version, source, field), named)
        name, version = parse_algorithm_reference(reference, source, field)
        location = None if self.registry.get(name, version) else default_remote()
        if location is None:
            return self.registry.resolve(reference, source, field)
        where = f"recorded here or published at {location.url}"
        return self._pull(self._remote(location).fetch(name, version, source, field, where), location)

    def _pull(self, record: AlgorithmRecord, location: RemoteLocation) -> AlgorithmRecord:
        if self.registry.store(record):
            print(f"pulled {record.reference} from {location.url}", file=sys.stderr)
        return record


def named_or_default(url: str | None, flag: str, verb: str) -> RemoteLocation:
    """The registry a flag names, else the default remote, else an InputError naming the flag."""
    if url:
        return parse_remote(url, f"algorithms {verb}", flag)
    location = default_remote()
    if location is None:
        raise InputError(f"algorithms {verb}", flag, f"expected {URL_FORM}, or a default remote "
                                                     f"(`yunpipe algorithms remote {URL_FORM}`, or {REMOTE_ENV})")
    return location
