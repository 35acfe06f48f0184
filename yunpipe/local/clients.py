"""boto3 clients aimed at the local cloud's endpoint, made by its Location (yunpipe.aws.location),
which holds the fake credentials and the one session they share.

API:
    CONFIG                            the botocore config of every local client
    local_client(service, endpoint_url, region) -> botocore client
"""
from __future__ import annotations

from typing import Any

from botocore.config import Config

from yunpipe.aws.location import Location

# The emulator is local: fail fast instead of retrying for minutes. The local cloud shares
# one client among all its task threads and log pumps: a pool of botocore's default 10
# connections would drop and reopen connections under 20 busy tasks.
CONFIG = Config(retries={"max_attempts": 2, "mode": "standard"}, connect_timeout=5, read_timeout=30,
                max_pool_connections=64)


def local_client(service: str, endpoint_url: str, region: str) -> Any:
    return Location.local_cloud(endpoint_url, region).client(service, CONFIG)
