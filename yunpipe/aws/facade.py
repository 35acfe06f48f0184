"""The one door to AWS: clients from one session, a generic call, and a call counter.

Every client made here reports each API call through botocore's `before-call` event, so a
command can count its mutating calls and tests can watch (or fail) calls without mocks.
"""
import contextlib
from collections.abc import Callable, Iterator
from typing import Any

from boto3.exceptions import Boto3Error
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, EndpointConnectionError, HTTPClientError, NoCredentialsError
from botocore.exceptions import ConnectionError as AwsConnectionError

from yunpipe.errors import YunpipeError

# Operations that only read. Anything else counts as a mutating call.
READ_PREFIXES = ("Describe", "List", "Get", "Head")
# Errors meaning "no AWS to talk to at all" (dry-runs plan as if nothing existed).
UNREACHABLE = (EndpointConnectionError, NoCredentialsError)
BOTO_CONFIG = Config(retries={"mode": "standard", "max_attempts": 5})

# Callbacks (service, operation) run before every call of every facade client; a callback
# that raises stops the call.
_observers: list[Callable[[str, str], None]] = []

__all__ = ["UNREACHABLE", "Aws", "BotoCoreError", "ClientError", "error_code", "explain", "is_mutating", "watch_calls"]
NO_CREDENTIALS = ("no AWS credentials found: pass --profile or set AWS_PROFILE, or set AWS_ACCESS_KEY_ID and "
                  "AWS_SECRET_ACCESS_KEY (or use --local for the local cloud)")


def is_mutating(operation: str) -> bool:
    return not operation.startswith(READ_PREFIXES)


def error_code(error: ClientError) -> str:
    return error.response.get("Error", {}).get("Code", "")


def explain(error: BaseException) -> YunpipeError | None:
    """An AWS failure no command handled, as one line (no credentials, no endpoint, a refusal);
    None when `error` does not come from AWS."""
    if isinstance(error, NoCredentialsError):
        return YunpipeError(NO_CREDENTIALS)
    if isinstance(error, (AwsConnectionError, HTTPClientError)):
        message = f"cannot reach AWS: {error}"
    elif isinstance(error, (ClientError, BotoCoreError, Boto3Error)):
        message = str(error)
    else:
        return None
    # Some botocore messages span lines (parameter validation); the user gets one.
    return YunpipeError(" ".join(message.split()))


@contextlib.contextmanager
def watch_calls(hook: Callable[[str, str], None] | None = None) -> Iterator[list[tuple[str, str]]]:
    """Record (service, Operation) of every facade call in the block; `hook` runs first."""
    seen: list[tuple[str, str]] = []

    def observer(service: str, operation: str) -> None:
        if hook:
            hook(service, operation)
        seen.append((service, operation))

    _observers.append(observer)
    try:
        yield seen
    finally:
        _observers.remove(observer)


# DeleteBucket asks of a bucket that gets objects while it is emptied.
DELETE_BUCKET_TRIES = 3


class Aws:
    """Clients built from one boto3-like session (boto3.Session or LocalStack's Session)."""

    def __init__(self, session: Any, endpoint_url: str | None = None):
        self.session = session
        self.endpoint_url = endpoint_url
        self.region = session.region_name
        self.mutating_calls = 0
        self._clients: dict[str, Any] = {}

    def client(self, service: str, region: str | None = None) -> Any:
        """The service's client in the session's region, or in `region` (an image's registry)."""
        key = f"{service}@{region}" if region and region != self.region else service
        if key not in self._clients:
            kwargs: dict[str, Any] = {"config": BOTO_CONFIG}
            if self.endpoint_url:
                kwargs["endpoint_url"] = self.endpoint_url
            if key != service:
                kwargs["region_name"] = region
            client = self.session.client(service, **kwargs)
            client.meta.events.register("before-call.*.*", self._before_call)
            self._clients[key] = client
        return self._clients[key]

    def _before_call(self, model: Any, **_kwargs: Any) -> None:
        service, operation = model.service_model.service_name, model.name
        if is_mutating(operation):
            self.mutating_calls += 1
        for observer in list(_observers):
            observer(service, operation)

    def call(self, service: str, operation: str, **params: Any) -> dict:
        """`operation` is the boto3 method name (create_queue); ResponseMetadata is dropped."""
        if (service, operation) == ("s3", "delete_bucket"):
            return self._delete_bucket(**params)
        response = getattr(self.client(service), operation)(**params)
        response.pop("ResponseMetadata", None)
        return response

    def _delete_bucket(self, **params: Any) -> dict:
        """DeleteBucket, for a bucket the plan emptied: objects written since the plan listed it
        (a stopping worker's task record, say) are deleted too, then it is asked again."""
        s3 = self.client("s3")
        for _ in range(DELETE_BUCKET_TRIES - 1):
            try:
                s3.delete_bucket(**params)
                return {}
            except ClientError as error:
                if error_code(error) != "BucketNotEmpty":
                    raise
            for page in s3.get_paginator("list_object_versions").paginate(Bucket=params["Bucket"]):
                late = [{"Key": v["Key"], "VersionId": v["VersionId"]}
                        for key in ("Versions", "DeleteMarkers") for v in page.get(key, [])]
                if late:
                    s3.delete_objects(Bucket=params["Bucket"], Delete={"Objects": late, "Quiet": True})
        s3.delete_bucket(**params)
        return {}

    def pages(self, service: str, operation: str, key: str, **params: Any) -> Iterator[Any]:
        """Every item under `key` of every page of a paginated read."""
        for page in self.client(service).get_paginator(operation).paginate(**params):
            yield from page.get(key, [])

    def account_id(self) -> str:
        return self.call("sts", "get_caller_identity")["Account"]

    def credentials(self) -> dict[str, str]:
        """The caller's own keys (for -uu), as environment variable names -> values."""
        credentials = self.session.get_credentials()
        if credentials is None:
            return {}
        frozen = credentials.get_frozen_credentials()
        keys = {"AWS_ACCESS_KEY_ID": frozen.access_key, "AWS_SECRET_ACCESS_KEY": frozen.secret_key}
        if frozen.token:
            keys["AWS_SESSION_TOKEN"] = frozen.token
        return keys
