"""The workflow spec read by setup-pipe: the 0.0.3 workflow JSON plus optional new fields.

`load_workflow` checks the file on its own; `yunpipe.resolve.resolve_workflow` checks it against the
algorithm registry (known algorithms and versions, declared and required variables, values
against each variable's schema). Both raise InputError before anything touches AWS.
"""
import ipaddress
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping


from yunpipe.errors import InputError
from yunpipe.lambda_src import launcher
from yunpipe.runtime import runscript
from yunpipe.specs.loading import load_document, validate

PROCESS_TYPES = ("single_run", "sequence_run")
PIPELINE_NAME_PATTERN = r"^[a-z0-9][a-z0-9-]{0,23}$"
BUCKET_CHARS = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
# The runtime contract's defaults (the launcher's and the worker's Config), not copies.
DEFAULT_CONCURRENCY = launcher.DEFAULT_CONCURRENCY
DEFAULT_MAX_RECEIVE_COUNT = runscript.DEFAULT_MAX_RECEIVE_COUNT
# Fargate gives every task 20 GiB; more is asked for per task definition, 21 to 200 GiB.
EPHEMERAL_STORAGE_SCHEMA = {"type": "integer", "minimum": 21, "maximum": 200,
                            "description": "GiB of task storage from 21 to 200 (20 without it)"}

WORKFLOW_SCHEMA: dict = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "required": ["input_s3_name", "output_s3_name", "process"],
    "additionalProperties": False,
    "properties": {
        "name": {"type": "string", "pattern": PIPELINE_NAME_PATTERN,
                 "description": "a pipeline name of lower-case letters, digits and '-' (at most 24 characters)"},
        "input_s3_name": {"type": "string"},
        "output_s3_name": {"type": "string"},
        "key_pair": {"type": "string"},
        "account_id": {"type": ["string", "integer"]},
        "region": {"type": "string", "pattern": r"^[a-z]{2}(-[a-z]+)+-\d$", "description": "an AWS region such as us-east-1"},
        "launch_type": {"type": "string", "enum": ["FARGATE", "EC2"]},
        "subnets": {"type": "array", "items": {"type": "string", "pattern": "^subnet-", "description": "a subnet id"}},
        "security_groups": {"type": "array", "items": {"type": "string", "pattern": "^sg-", "description": "a security group id"}},
        "filter": {
            "type": "object",
            "additionalProperties": False,
            "properties": {"prefix": {"type": "string"}, "suffix": {"type": "string"}},
        },
        "log_retention_days": {"type": "integer", "enum": [1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1827, 3653]},
        "idle_seconds": {"type": "integer", "minimum": 1, "maximum": 3600, "description": "seconds from 1 to 3600"},
        "visibility_timeout_seconds": {"type": "integer", "minimum": 5, "maximum": 43200,
                                       "description": "seconds from 5 to 43200"},
        "ephemeral_storage_gib": EPHEMERAL_STORAGE_SCHEMA,
        "process": {
            "type": "object",
            "required": ["type", "algorithms"],
            "additionalProperties": False,
            "properties": {
                "type": {"type": "string", "enum": list(PROCESS_TYPES)},
                "algorithms": {
                    "type": "array",
                    "minItems": 1,
                    "description": "a list of at least one algorithm",
                    "items": {
                        "type": "object",
                        "required": ["name"],
                        "additionalProperties": False,
                        "properties": {
                            "name": {"type": "string", "minLength": 1, "description": "NAME or NAME@VERSION"},
                            "port": {"type": "array"},
                            "variables": {"type": "object"},
                            "concurrency": {"type": "integer", "minimum": 1, "maximum": 100,
                                            "description": "a number of tasks from 1 to 100"},
                            "max_receive_count": {"type": "integer", "minimum": 1, "maximum": 1000,
                                                  "description": "a number of tries from 1 to 1000"},
                            "ephemeral_storage_gib": EPHEMERAL_STORAGE_SCHEMA,
                        },
                    },
                },
            },
        },
    },
}


@dataclass(frozen=True)
class StepSpec:
    reference: str
    variables: Mapping[str, Any] = field(default_factory=dict)
    concurrency: int = DEFAULT_CONCURRENCY
    max_receive_count: int = DEFAULT_MAX_RECEIVE_COUNT
    ephemeral_storage_gib: int | None = None


@dataclass(frozen=True)
class WorkflowSpec:
    source: str
    name: str
    input_bucket: str
    output_bucket: str
    process_type: str
    steps: tuple[StepSpec, ...]
    region: str | None = None
    account_id: str = ""
    key_pair: str = ""
    launch_type: str = "FARGATE"
    subnets: tuple[str, ...] = ()
    security_groups: tuple[str, ...] = ()
    filter_prefix: str = ""
    filter_suffix: str = ""
    log_retention_days: int = 30
    idle_seconds: int = runscript.DEFAULT_IDLE_SECONDS
    visibility_timeout_seconds: int = runscript.DEFAULT_VISIBILITY_SECONDS
    ephemeral_storage_gib: int | None = None


def bucket_name_problem(name: str) -> str | None:
    """Why `name` is not a valid S3 bucket name, or None (the AWS naming rules)."""
    if not 3 <= len(name) <= 63:
        return "3 to 63 characters"
    if not BUCKET_CHARS.match(name):
        return "lower-case letters, digits, '.' and '-', starting and ending with a letter or digit"
    if ".." in name or ".-" in name or "-." in name:
        return "no '..', '.-' or '-.'"
    try:
        ipaddress.IPv4Address(name)
        return "a name that is not an IP address"
    except ValueError:
        pass
    if name.startswith(("xn--", "sthree-")) or name.endswith(("-s3alias", "--ol-s3")):
        return "no reserved prefix (xn--, sthree-) or suffix (-s3alias, --ol-s3)"
    return None


def derive_pipeline_name(input_bucket: str) -> str:
    """The pipeline's name when the workflow gives none: a slug of the input bucket."""
    slug = re.sub(r"[^a-z0-9-]+", "-", input_bucket.lower()).strip("-")
    return slug[:24].rstrip("-") or "pipeline"


def parse_workflow(document: Any, source: str) -> WorkflowSpec:
    validate(document, WORKFLOW_SCHEMA, source)
    for key in ("input_s3_name", "output_s3_name"):
        problem = bucket_name_problem(document[key])
        if problem:
            raise InputError(source, key, f"expected a valid S3 bucket name ({problem}), got {json.dumps(document[key])}")
    if document["input_s3_name"] == document["output_s3_name"]:
        raise InputError(source, "output_s3_name", "expected a bucket other than input_s3_name (results would trigger the pipeline again)")
    process = document["process"]
    if process["type"] == "single_run" and len(process["algorithms"]) != 1:
        raise InputError(source, "process.algorithms", f"expected exactly one algorithm for single_run, got {len(process['algorithms'])}")
    steps = tuple(
        StepSpec(a["name"], dict(a.get("variables", {})), a.get("concurrency", DEFAULT_CONCURRENCY),
                 a.get("max_receive_count", DEFAULT_MAX_RECEIVE_COUNT), a.get("ephemeral_storage_gib"))
        for a in process["algorithms"]
    )
    return WorkflowSpec(
        source=source,
        name=document.get("name") or derive_pipeline_name(document["input_s3_name"]),
        input_bucket=document["input_s3_name"],
        output_bucket=document["output_s3_name"],
        process_type=process["type"],
        steps=steps,
        region=document.get("region"),
        account_id=str(document.get("account_id", "")),
        key_pair=document.get("key_pair", ""),
        launch_type=document.get("launch_type", "FARGATE"),
        subnets=tuple(document.get("subnets", ())),
        security_groups=tuple(document.get("security_groups", ())),
        filter_prefix=document.get("filter", {}).get("prefix", ""),
        filter_suffix=document.get("filter", {}).get("suffix", ""),
        log_retention_days=document.get("log_retention_days", 30),
        idle_seconds=document.get("idle_seconds", runscript.DEFAULT_IDLE_SECONDS),
        visibility_timeout_seconds=document.get("visibility_timeout_seconds", runscript.DEFAULT_VISIBILITY_SECONDS),
        ephemeral_storage_gib=document.get("ephemeral_storage_gib"),
    )


def load_workflow(path: str | Path) -> WorkflowSpec:
    return parse_workflow(load_document(path), str(path))
