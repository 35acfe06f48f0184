"""The worker's SQS and S3 clients."""
from __future__ import annotations

from typing import Any, Mapping

import botocore.session
from botocore.config import Config as BotoConfig

from .transfers import TRANSFER_CONCURRENCY


def make_clients(environ: Mapping[str, str], parallelism: int) -> tuple[Any, Any]:
    """SQS and S3 clients, made once in the main thread (a session is not thread-safe, its
    clients are) and shared by the jobs. botocore's own session: boto3's costs a 0.25 vCPU task
    another 0.3 s of its cold start (bench/latency.py), and nothing here needs it. The endpoint is
    passed explicitly because older botocore ignores AWS_ENDPOINT_URL; path-style S3 addressing
    keeps emulators on an IP working. The connection pool has room for every job's transfers."""
    region = environ.get("AWS_REGION") or environ.get("AWS_DEFAULT_REGION")
    connections = TRANSFER_CONCURRENCY * parallelism
    session = botocore.session.get_session()
    clients = []
    for service in ("sqs", "s3"):
        endpoint = environ.get(f"AWS_ENDPOINT_URL_{service.upper()}") or environ.get("AWS_ENDPOINT_URL")
        s3_options = {"addressing_style": "path"} if endpoint and service == "s3" else None
        config = BotoConfig(s3=s3_options, max_pool_connections=connections)
        clients.append(session.create_client(service, region_name=region, endpoint_url=endpoint, config=config))
    return clients[0], clients[1]
