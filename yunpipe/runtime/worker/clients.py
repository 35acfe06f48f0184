"""The worker's SQS and S3 clients, and SNS's for a pipeline with a topic."""
from __future__ import annotations

import logging
from typing import Any, Mapping

import botocore.session
from botocore.config import Config as BotoConfig
from botocore.exceptions import BotoCoreError

from .transfers import TRANSFER_CONCURRENCY

log = logging.getLogger("yunpipe.worker")

# A few seconds of S3 errors (a burst of 503s, a brief outage) are outlasted: botocore's legacy
# mode waits rand(0, 1) * 2**n s before its n-th retry, about a minute in all at 8 tries, with no
# quota. Its standard mode does not in the botocore installed here (1.44): 50 ms * 2**n for errors
# other than throttling (about 3 s in all at 8 tries) and a per-client quota of some 35 retries, so a 3 s
# outage failed the jobs in flight (a try of each file used up; tests/e2e/test_chaos.py now and
# then) and lost the record of jobs that had done their work (bench/chaos.py).
RETRIES = {"mode": "legacy", "max_attempts": 8}


def endpoint_url(service: str, environ: Mapping[str, str]) -> str | None:
    """The service's endpoint from the environment (None: AWS's own), passed to botocore
    explicitly because older botocore ignores AWS_ENDPOINT_URL."""
    return environ.get(f"AWS_ENDPOINT_URL_{service.upper()}") or environ.get("AWS_ENDPOINT_URL")


def make_clients(environ: Mapping[str, str], parallelism: int, topic_arn: str = "") -> tuple[Any, Any, Any]:
    """SQS, S3 and (with a topic_arn, else None) SNS clients, made once in the main thread (a session is not thread-safe, its
    clients are) and shared by the jobs. botocore's own session: boto3's costs a 0.25 vCPU task
    another 0.3 s of its cold start (bench/latency.py), and nothing here needs it. The endpoint is
    passed explicitly because older botocore ignores AWS_ENDPOINT_URL; path-style S3 addressing
    keeps emulators on an IP working. The connection pool has room for every job's transfers;
    transient errors are retried patiently (RETRIES).
    An SNS client that cannot be made (an image whose botocore lacks SNS's data) is logged and
    None: notifications never stop the work."""
    region = environ.get("AWS_REGION") or environ.get("AWS_DEFAULT_REGION")
    connections = TRANSFER_CONCURRENCY * parallelism
    session = botocore.session.get_session()

    def client(service: str) -> Any:
        endpoint = endpoint_url(service, environ)
        s3_options = {"addressing_style": "path"} if endpoint and service == "s3" else None
        config = BotoConfig(s3=s3_options, max_pool_connections=connections, retries=RETRIES)
        return session.create_client(service, region_name=region, endpoint_url=endpoint, config=config)

    sns = None
    if topic_arn:
        try:
            sns = client("sns")
        except BotoCoreError as exc:
            log.error("no notifications to %s: cannot make an SNS client: %s", topic_arn, exc)
    return client("sqs"), client("s3"), sns
