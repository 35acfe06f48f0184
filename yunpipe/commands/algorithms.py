"""algorithms list|show (the local registry) and publish|pull|remote (shared ones on S3, yunpipe.remote)."""
import argparse
import json
import os

from yunpipe import paths
from yunpipe.aws.location import resolve
from yunpipe.commands.common import aws_options
from yunpipe.errors import InputError
from yunpipe.registry import AlgorithmRegistry, parse_algorithm_reference
from yunpipe.remote import (
    REMOTE_ENV,
    URL_FORM,
    RemoteRegistry,
    default_remote,
    named_or_default,
    parse_remote,
    set_default_remote,
)


def run_algorithms_list(args: argparse.Namespace) -> int:
    records = AlgorithmRegistry().latest()
    if not records:
        print("no algorithms recorded yet (run wrap first)")
        return 0
    rows = [("NAME", "LATEST", "IMAGE", "CREATED")]
    rows += [(r.name, str(r.version), r.image_uri, r.created_at) for r in records]
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=False)) + "  " + row[3])
    return 0


def run_algorithms_show(args: argparse.Namespace) -> int:
    record = AlgorithmRegistry().resolve(args.reference, "algorithms show", "NAME[@VERSION]")
    print(json.dumps({**record.to_document(), "image_uri": record.image_uri}, indent=2))
    return 0


def run_publish(args: argparse.Namespace) -> int:
    location = named_or_default(args.to, "--to", "publish")
    registry = AlgorithmRegistry()
    # Every reference is checked before anything is published.
    records = [registry.resolve(reference, "algorithms publish", "NAME[@VERSION]") for reference in args.references]
    remote = RemoteRegistry(resolve(aws_options(args)).open(), location)
    for record in records:
        key = f"s3://{location.bucket}/{location.record_key(record.name, record.version)}"
        if remote.publish(record):
            print(f"published {record.reference} to {key} (image {record.image_uri})")
        else:
            print(f"{record.reference} is already published at {key}, identical")
    return 0


def run_pull(args: argparse.Namespace) -> int:
    if bool(args.references) == bool(args.all):
        raise InputError("algorithms pull", "NAME[@VERSION]", "expected algorithm references, or --all")
    location = named_or_default(args.source, "--from", "pull")
    remote = RemoteRegistry(resolve(aws_options(args)).open(), location)
    registry = AlgorithmRegistry()
    wanted: list[tuple[str, int | None]]
    if args.all:
        wanted = [(name, version) for name in remote.names() for version in remote.versions(name)]
    else:
        wanted = [parse_algorithm_reference(reference, "algorithms pull", "NAME[@VERSION]")
                  for reference in args.references]
    for name, version in wanted:
        record = remote.fetch(name, version, "algorithms pull", f"{name}@{version}" if version else name)
        if registry.store(record):
            print(f"pulled {record.reference} from {location.url} (image {record.image_uri})")
        else:
            print(f"{record.reference} is here already, identical")
    if not wanted:
        print(f"nothing is published at {location.url} yet")
    return 0


def run_remote(args: argparse.Namespace) -> int:
    if args.url:
        chosen = parse_remote(args.url, "algorithms remote", "URL")
        print(f"default remote: {chosen.url} (in {set_default_remote(chosen)})")
        return 0
    location = default_remote()
    if location is None:
        print(f"no default remote: set one with `yunpipe algorithms remote {URL_FORM}` or {REMOTE_ENV}")
    else:
        origin = REMOTE_ENV if os.environ.get(REMOTE_ENV) else str(paths.config_file())
        print(f"default remote: {location.url} (from {origin})")
    return 0
