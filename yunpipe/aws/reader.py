"""Read-only AWS access where "missing" is None, and the error codes AWS answers for a
resource that does not exist. The planner, the sweeper and the commands that look at a
deployed pipeline (status, transfer, demo) read AWS through it.
"""
import json
from collections.abc import Iterable
from typing import Any

from yunpipe.aws.facade import Aws, ClientError, error_code
from yunpipe.errors import YunpipeError

NO_QUEUE = ("AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist")
NO_BUCKET = ("404", "NoSuchBucket", "NotFound")
NOT_FOUND = ("ResourceNotFoundException",)
NOTIFICATION_KEYS = ("TopicConfigurations", "QueueConfigurations", "LambdaFunctionConfigurations",
                     "EventBridgeConfiguration")


class Reader:
    """Read-only AWS access where "missing" is None. Offline (no AWS at all, dry-run only),
    everything is missing."""

    def __init__(self, aws: Aws, offline: bool = False):
        self.aws = aws
        self.offline = offline

    def read(self, service: str, operation: str, missing: Iterable[str] = (), **params: Any) -> Any:
        if self.offline:
            return None
        try:
            return self.aws.call(service, operation, **params)
        except ClientError as error:
            if error_code(error) in tuple(missing):
                return None
            raise

    def pages(self, service: str, operation: str, key: str, missing: Iterable[str] = (), **params: Any) -> list:
        if self.offline:
            return []
        try:
            return list(self.aws.pages(service, operation, key, **params))
        except ClientError as error:
            if error_code(error) in tuple(missing):
                return []
            raise

    def queue_url(self, name: str) -> str | None:
        found = self.read("sqs", "get_queue_url", NO_QUEUE, QueueName=name)
        return found and found["QueueUrl"]

    def bucket_exists(self, name: str) -> bool:
        try:
            return self.read("s3", "head_bucket", NO_BUCKET, Bucket=name) is not None
        except ClientError as error:
            if error_code(error) in ("403", "AccessDenied"):
                raise YunpipeError(f"bucket {name} exists but is not yours (S3 names are global); "
                                   "choose another name in the workflow") from None
            raise

    def notification_configuration(self, bucket: str) -> dict:
        found = self.read("s3", "get_bucket_notification_configuration", NO_BUCKET, Bucket=bucket) or {}
        # An empty list is no entry, but an empty EventBridgeConfiguration means "switched on".
        return {k: found[k] for k in NOTIFICATION_KEYS if k in found and found[k] != []}

    def policy_statements(self, function: str) -> dict[str, dict]:
        found = self.read("lambda", "get_policy", NOT_FOUND, FunctionName=function)
        if not found:
            return {}
        return {s.get("Sid", ""): s for s in json.loads(found["Policy"]).get("Statement", [])}
