"""The pipeline as accounting needs it (runtime/accounting/records.pipeline_key): one JSON object
in the reports bucket that the settler, upload and submit read (its steps' graph, filters,
sizes and tries, the quiet period, the topic), since neither the worker nor the launcher knows
the whole pipeline. Written when it differs; an S3 object has no CloudFormation resource, so an
exported template writes the file next to itself for the user to copy."""
import json
from collections.abc import Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from typing import Any

from yunpipe.aws.reader import Reader
from yunpipe.engine.kinds.base import Kind, PlanContext, ResourceKey, SweepContext, call, delete
from yunpipe.engine.plan import Call
from yunpipe.engine.template import Template
from yunpipe.runtime.accounting.records import VERSION, pipeline_key

# What S3 answers a read of a key that is not there (403 to a caller that may not list the bucket).
MISSING = ("NoSuchKey", "NoSuchBucket", "404", "NotFound", "403", "AccessDenied")
FILE_NAME = "accounting.json"


@dataclass(frozen=True)
class AccountingDescriptor:
    bucket: str
    pipeline: str
    body: str  # the JSON, as stored
    kind = "accounting_descriptor"

    @property
    def key(self) -> str:
        return f"{self.bucket}/{pipeline_key(self.pipeline)}"

    @property
    def object_key(self) -> str:
        return pipeline_key(self.pipeline)


def descriptor_body(pipeline: str, region: str, accounting: bool, quiet_seconds: int, topic_arn: str,
                    steps: Sequence[Mapping[str, Any]]) -> str:
    """The descriptor's JSON: `steps` in the workflow's order, each with name, sources
    ([{step, bucket}], step "input" for the pipeline's input bucket), prefix, suffix, join,
    gather, marker, triggered, output_bucket, output_prefix, cpu (units), memory_mib,
    max_receive_count, queue and failed_events_queue (names); each gains `entry` (it reads the
    input bucket) and `downstream` (the steps reading its results)."""
    readers: dict[str, list[str]] = {}
    for step in steps:
        for source in step["sources"]:
            readers.setdefault(source["step"], []).append(step["name"])
    document = {
        "version": VERSION, "pipeline": pipeline, "region": region, "accounting": accounting,
        "run_quiet_seconds": quiet_seconds, "topic_arn": topic_arn,
        "steps": [{**step, "entry": any(s["step"] == "input" for s in step["sources"]),
                   "downstream": readers.get(step["name"], [])} for step in steps],
    }
    return json.dumps(document, indent=1, sort_keys=True)


class AccountingDescriptorKind(Kind[AccountingDescriptor]):
    name = "accounting_descriptor"

    def plan(self, descriptor: AccountingDescriptor, ctx: PlanContext) -> list[Call]:
        found = ctx.reader.read("s3", "get_object", MISSING, Bucket=descriptor.bucket, Key=descriptor.object_key)
        if found is not None and found["Body"].read().decode("utf-8", "replace") == descriptor.body:
            return []
        return [call(descriptor, "update" if found else "create", "s3", "put_object",
                     f"describe the pipeline for its run accounting in s3://{descriptor.bucket}/{descriptor.object_key}",
                     Bucket=descriptor.bucket, Key=descriptor.object_key, Body=descriptor.body.encode(),
                     ContentType="application/json")]

    def sweep(self, key: str, ctx: SweepContext) -> list[Call]:
        bucket, object_key = key.split("/", 1)
        # A purged bucket takes its objects with it.
        if ("bucket", bucket) in ctx.deleting and ctx.purge:
            return []
        if ctx.reader.read("s3", "head_object", MISSING, Bucket=bucket, Key=object_key) is None:
            return []
        return [delete(self.name, key, "s3", "delete_object", f"delete s3://{key}", Bucket=bucket, Key=object_key)]

    def discover(self, reader: Reader, pipeline: str, found: AbstractSet[ResourceKey]) -> set[ResourceKey]:
        """The tagging API lists no S3 object: look in each of the pipeline's buckets found."""
        return {(self.name, f"{bucket}/{pipeline_key(pipeline)}") for kind, bucket in sorted(found) if kind == "bucket"
                and reader.read("s3", "head_object", MISSING, Bucket=bucket, Key=pipeline_key(pipeline)) is not None}

    def cloudformation(self, descriptor: AccountingDescriptor, template: Template) -> dict[str, dict]:
        # CloudFormation has no S3 object resource (a custom resource would need a Lambda of its own).
        template.files[FILE_NAME] = descriptor.body.encode()
        template.note(f"Once the stack exists, copy {FILE_NAME} (written next to this template) to "
                      f"s3://{descriptor.bucket}/{descriptor.object_key} (aws s3 cp {FILE_NAME} "
                      f"s3://{descriptor.bucket}/{descriptor.object_key}): without it, runs are not settled "
                      "and upload and submit open none")
        return {}


KIND = AccountingDescriptorKind()
