"""boto3 clients aimed at the local cloud's endpoint.

API:
    FAKE_CREDENTIALS                  the access key pair every local client and container uses
    local_client(service, endpoint_url, region) -> botocore client
"""
from __future__ import annotations

import boto3
from botocore.config import Config

# moto accepts any key pair; fixed values keep the user's real credentials out of the
# local cloud and let it run on a machine that has none.
FAKE_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "yunpipe-local", "AWS_SECRET_ACCESS_KEY": "yunpipe-local"}


def local_client(service: str, endpoint_url: str, region: str):
    session = boto3.session.Session(
        aws_access_key_id=FAKE_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=FAKE_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        region_name=region,
    )
    # The emulator is local: fail fast instead of retrying for minutes. The local cloud shares
    # one client among all its task threads and log pumps: a pool of botocore's default 10
    # connections would drop and reopen connections under 20 busy tasks.
    config = Config(
        retries={"max_attempts": 2, "mode": "standard"}, connect_timeout=5, read_timeout=30, max_pool_connections=64
    )
    return session.client(service, endpoint_url=endpoint_url, config=config)
