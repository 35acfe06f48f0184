"""boto3 clients aimed at the local cloud's endpoint.

API:
    FAKE_CREDENTIALS                  the access key pair every local client and container uses
    local_client(service, endpoint_url, region) -> botocore client
"""
from __future__ import annotations

import threading

import boto3
from botocore.config import Config

# moto accepts any key pair; fixed values keep the user's real credentials out of the
# local cloud and let it run on a machine that has none.
FAKE_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "yunpipe-local", "AWS_SECRET_ACCESS_KEY": "yunpipe-local"}
# The emulator is local: fail fast instead of retrying for minutes. The local cloud shares
# one client among all its task threads and log pumps: a pool of botocore's default 10
# connections would drop and reopen connections under 20 busy tasks.
CONFIG = Config(retries={"max_attempts": 2, "mode": "standard"}, connect_timeout=5, read_timeout=30,
                max_pool_connections=64)

# One session for every local client of the process: its loader keeps the service models and
# endpoints it parsed, so a client after the first of its service costs a few ms of this
# process's CPU instead of ~50 ms of JSON parsing, which each new local cloud (its Lambda host,
# ECS runner, scheduler) paid again, on the same CPU as the emulator. A session is not
# thread-safe, its clients are: clients are made under a lock.
_session: boto3.session.Session | None = None
_session_lock = threading.Lock()


def local_client(service: str, endpoint_url: str, region: str):
    global _session
    with _session_lock:
        if _session is None:
            _session = boto3.session.Session()
        return _session.client(service, region_name=region, endpoint_url=endpoint_url, config=CONFIG,
                               aws_access_key_id=FAKE_CREDENTIALS["AWS_ACCESS_KEY_ID"],
                               aws_secret_access_key=FAKE_CREDENTIALS["AWS_SECRET_ACCESS_KEY"])
