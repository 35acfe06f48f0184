"""The launcher's AWS clients, reused across warm invocations."""
from __future__ import annotations

import functools
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import boto3
from botocore.config import Config as BotoConfig

# botocore's standard mode retries throttling and transient errors with jittered backoff.
BOTO_CONFIG = BotoConfig(retries={"mode": "standard", "max_attempts": 5})


@dataclass
class Clients:
    """The launcher's AWS clients. S3 is needed by join steps and scheduled runs that settle runs,
    SNS only to announce a settled run, so they are made on first use."""

    sqs: Any
    ecs: Any
    make_s3: Callable[[], Any]
    make_sns: Callable[[], Any] = lambda: None

    @functools.cached_property
    def s3(self) -> Any:
        return self.make_s3()

    @functools.cached_property
    def sns(self) -> Any:
        return self.make_sns()


@functools.lru_cache(maxsize=4)
def clients_for(region: str | None, endpoint_url: str | None) -> Clients:
    """Clients are reused across warm invocations; the cache key follows the environment."""
    kwargs = {"region_name": region, "endpoint_url": endpoint_url, "config": BOTO_CONFIG}
    return Clients(sqs=boto3.client("sqs", **kwargs), ecs=boto3.client("ecs", **kwargs),
                   make_s3=functools.partial(boto3.client, "s3", **kwargs),
                   make_sns=functools.partial(boto3.client, "sns", **kwargs))


def clients_from_env(environ: Mapping[str, str] | None = None) -> Clients:
    env = os.environ if environ is None else environ
    # Lambda sets AWS_REGION; shells and the local cloud usually set AWS_DEFAULT_REGION.
    region = env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or None
    return clients_for(region, env.get("AWS_ENDPOINT_URL") or None)
