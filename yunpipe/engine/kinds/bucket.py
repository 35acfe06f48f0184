"""S3 buckets: the pipeline's input, output, intermediate and reports buckets."""
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from yunpipe.engine.kinds.base import Kind, Named, PlanContext, SweepContext, call, delete, tag_list
from yunpipe.engine.plan import Call
from yunpipe.engine.template import Template
from yunpipe.errors import InputError

# The workflow's field naming each bucket the user may bring.
FIELDS = {"input": "input_s3_name", "output": "output_s3_name"}
PUBLIC_ACCESS_BLOCK = {"BlockPublicAcls": True, "IgnorePublicAcls": True, "BlockPublicPolicy": True,
                       "RestrictPublicBuckets": True}
ENCRYPTION = {"SSEAlgorithm": "AES256"}


@dataclass(frozen=True)
class Bucket(Named):
    name: str
    purpose: str  # input, output, intermediate or reports
    tags: Mapping[str, str]
    kind = "bucket"


class BucketKind(Kind[Bucket]):
    name = "bucket"
    arn_pattern = re.compile(r"^arn:[^:]+:s3:::(?P<key>[^/]+)$")
    kept_unless_purged = True

    def plan(self, bucket: Bucket, ctx: PlanContext) -> list[Call]:
        read = ctx.reader.read
        calls = []
        exists = ctx.reader.bucket_exists(bucket.name)
        if exists and ("bucket", bucket.name) not in ctx.owned:
            return []  # someone else's bucket: used, never altered (beyond notifications)
        if not exists:
            params: dict[str, Any] = {"Bucket": bucket.name}
            if ctx.target.region != "us-east-1":
                params["CreateBucketConfiguration"] = {"LocationConstraint": ctx.target.region}
            calls.append(call(bucket, "create", "s3", "create_bucket",
                              f"create {bucket.purpose} bucket {bucket.name}", **params))
        # A bucket yunpipe created is checked each time, so a setup that stopped half-way
        # completes its settings.
        if not exists or not read("s3", "get_public_access_block", ("NoSuchPublicAccessBlockConfiguration",),
                                  Bucket=bucket.name):
            calls.append(call(bucket, "update", "s3", "put_public_access_block",
                              f"block public access to bucket {bucket.name}", Bucket=bucket.name,
                              PublicAccessBlockConfiguration=PUBLIC_ACCESS_BLOCK))
        if not exists or not read("s3", "get_bucket_encryption", ("ServerSideEncryptionConfigurationNotFoundError",),
                                  Bucket=bucket.name):
            calls.append(call(bucket, "update", "s3", "put_bucket_encryption",
                              f"encrypt bucket {bucket.name} at rest (AES256)", Bucket=bucket.name,
                              ServerSideEncryptionConfiguration={"Rules": [
                                  {"ApplyServerSideEncryptionByDefault": ENCRYPTION}]}))
        tagged = exists and read("s3", "get_bucket_tagging", ("NoSuchTagSet",), Bucket=bucket.name)
        current = {t["Key"]: t.get("Value", "") for t in tagged["TagSet"]} if tagged else {}
        # The workflow's tags may change between setups; tags someone else added stay.
        if any(current.get(k) != v for k, v in bucket.tags.items()):
            calls.append(call(bucket, "update", "s3", "put_bucket_tagging", f"tag bucket {bucket.name}",
                              Bucket=bucket.name, Tagging={"TagSet": tag_list({**current, **bucket.tags})}))
        return calls

    def check(self, bucket: Bucket, ctx: PlanContext) -> list[InputError]:
        """An input or output bucket the user brings lives in the pipeline's region: S3 refuses a
        notification to a Lambda function of another region ("The notification destination service
        region is not valid for the bucket location constraint"), and sends EventBridge events only
        to its own region's bus, where no rule of the pipeline waits: files would never be processed."""
        field = FIELDS.get(bucket.purpose)
        if (field is None or ctx.reader.offline or ("bucket", bucket.name) in ctx.owned
                or not ctx.reader.bucket_exists(bucket.name)):
            return []
        region = bucket_region(ctx.reader.read("s3", "get_bucket_location", Bucket=bucket.name) or {})
        if region == ctx.target.region:
            return []
        return [InputError(ctx.source, field, f"expected a bucket in the pipeline's region {ctx.target.region}: "
                                              f"{bucket.name} is in {region}, whose events never reach a pipeline "
                                              f"in {ctx.target.region}; deploy the pipeline to {region} or pick "
                                              "another bucket")]

    def sweep(self, name: str, ctx: SweepContext) -> list[Call]:
        if not ctx.reader.bucket_exists(name):
            return []
        objects = [{"Key": v["Key"], "VersionId": v["VersionId"]}
                   for key in ("Versions", "DeleteMarkers")
                   for page in _version_pages(ctx, name) for v in page.get(key, [])]
        calls = [delete("bucket", name, "s3", "delete_objects",
                        f"empty bucket {name} ({len(objects[i:i + 1000])} object version(s))", last=False,
                        Bucket=name, Delete={"Objects": objects[i:i + 1000], "Quiet": True})
                 for i in range(0, len(objects), 1000)]
        calls.append(delete("bucket", name, "s3", "delete_bucket", f"delete bucket {name}", Bucket=name))
        return calls

    def cloudformation(self, bucket: Bucket, template: Template) -> dict[str, dict]:
        if bucket.purpose in FIELDS:
            template.note(f"The stack creates the {bucket.purpose} bucket {bucket.name}: if it exists, use setup-pipe "
                          "(CloudFormation cannot add notifications to a bucket it does not own)")
        # Kept with their data when the stack goes, as clean-up keeps buckets unless it purges.
        return {template.id(bucket.kind, bucket.key): {
            "Type": "AWS::S3::Bucket", "DeletionPolicy": "Retain", "UpdateReplacePolicy": "Retain",
            "Properties": {"BucketName": bucket.name, "PublicAccessBlockConfiguration": PUBLIC_ACCESS_BLOCK,
                           "BucketEncryption": {"ServerSideEncryptionConfiguration": [
                               {"ServerSideEncryptionByDefault": ENCRYPTION}]},
                           "Tags": tag_list(bucket.tags)}}}


def bucket_region(location: dict) -> str:
    """The region of GetBucketLocation's answer: none or "" is us-east-1, "EU" the old name of
    eu-west-1 (S3 API Reference, GetBucketLocation)."""
    constraint = location.get("LocationConstraint") or "us-east-1"
    return "eu-west-1" if constraint == "EU" else constraint


def _version_pages(ctx: SweepContext, bucket: str) -> list[dict]:
    if ctx.reader.offline:
        return []
    return list(ctx.reader.aws.client("s3").get_paginator("list_object_versions").paginate(Bucket=bucket))


KIND = BucketKind()
