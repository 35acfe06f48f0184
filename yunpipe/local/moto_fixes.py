"""Where moto answers differently from real AWS in a way the deploy engine reads, the embedded
AWS is corrected here (the local cloud and the tests' moto both use it). Each fix is guarded by
tests/test_moto_hooks.py, which fails once moto answers right by itself.
"""
import contextlib
import functools
import inspect
import re
import threading
from collections.abc import Iterator
from typing import Any
from unittest import mock

from moto.ecs import models as ecs_models
from moto.s3 import models as s3_models
from moto.s3 import responses as s3_responses

from yunpipe.runtime.contract import FARGATE_CAPACITY_PROVIDERS

# moto's own RunTask parameters, read before anything wraps it: a layer over it that does not
# keep its signature (functools.wraps) would otherwise hide the names bound below.
_RUN_TASK = inspect.signature(ecs_models.EC2ContainerServiceBackend.run_task)
_CLOSING = re.compile(rb"</NotificationConfiguration>\s*$")


@contextlib.contextmanager
def event_bridge_reported() -> Iterator[None]:
    """GetBucketNotificationConfiguration names EventBridgeConfiguration when it is on, as S3 does
    (moto stores and honours it but leaves it out of the answer, so every setup-pipe would switch
    it on again and clean-up would never see it)."""
    original = s3_responses.S3Response.get_bucket_notification

    def get_bucket_notification(self: Any) -> Any:
        status, headers, body = original(self)
        configuration = self.backend.get_bucket_notification_configuration(self.bucket_name)
        if configuration is None or configuration.event_bridge is None:
            return status, headers, body
        data = body.encode() if isinstance(body, str) else body
        if _CLOSING.search(data):
            data = _CLOSING.sub(b"<EventBridgeConfiguration/></NotificationConfiguration>", data)
        else:  # an empty answer: moto serializes no element at all
            data = (b'<?xml version="1.0" encoding="UTF-8"?><NotificationConfiguration '
                    b'xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><EventBridgeConfiguration/>'
                    b"</NotificationConfiguration>")
        return status, {**headers, "content-length": str(len(data))}, data

    with mock.patch.object(s3_responses.S3Response, "get_bucket_notification", get_bucket_notification):
        yield


@contextlib.contextmanager
def conditional_writes_atomic() -> Iterator[None]:
    """PutObject with `If-None-Match: *` creates the object or fails, as S3's conditional writes
    do: moto checks that the key is free, then stores, and a concurrent put slips in between, so
    two publishers of one algorithm version would both succeed. One lock spans both."""
    original = s3_responses.S3Response.put_object
    lock = threading.Lock()

    def put_object(self: Any) -> Any:
        if self.headers.get("If-None-Match") != "*":
            return original(self)
        with lock:
            return original(self)

    with mock.patch.object(s3_responses.S3Response, "put_object", put_object):
        yield


@contextlib.contextmanager
def multipart_uploads_notify_once() -> Iterator[None]:
    """A completed multipart upload sends one ObjectCreated event (CompleteMultipartUpload), as
    S3 does: moto stores the object with its PutObject, which sends an ObjectCreated:Put too, so
    every large file reached the launcher twice and was processed twice."""
    backend = s3_models.S3Backend
    original_complete, original_put = backend.complete_multipart_upload, backend.put_object
    completing = threading.local()

    def complete_multipart_upload(self: Any, *args: Any, **kwargs: Any) -> Any:
        completing.active = True
        try:
            return original_complete(self, *args, **kwargs)
        finally:
            completing.active = False

    def put_object(self: Any, *args: Any, **kwargs: Any) -> Any:
        if getattr(completing, "active", False):
            kwargs["disable_notification"] = True
        return original_put(self, *args, **kwargs)

    with mock.patch.multiple(backend, complete_multipart_upload=complete_multipart_upload, put_object=put_object):
        yield


@contextlib.contextmanager
def capacity_providers_scale() -> Iterator[None]:
    """RunTask on an Auto Scaling group capacity provider starts the task, as ECS managed scaling
    does by launching an instance for it: moto places such a task only on container instances
    already registered, of which an emulator has none (it fails with "No instances found")."""
    backend = ecs_models.EC2ContainerServiceBackend
    original = backend.run_task

    @functools.wraps(original)  # keeps the signature for layers over it (the tests' strict AWS)
    def run_task(self: Any, *args: Any, **kwargs: Any) -> Any:
        bound = _RUN_TASK.bind(self, *args, **kwargs)
        strategy = bound.arguments.get("capacity_provider_strategy") or []
        name = strategy[0]["capacityProvider"] if strategy else ""
        cluster = self._get_cluster(bound.arguments["cluster_str"])
        if not name or name in FARGATE_CAPACITY_PROVIDERS or self.container_instances.get(cluster.name):
            return original(self, *args, **kwargs)
        # Placed as moto places Fargate tasks (no container instance), then told apart again.
        bound.arguments["capacity_provider_strategy"] = None
        bound.arguments["launch_type"] = "FARGATE"
        tasks = original(*bound.args, **bound.kwargs)
        for task in tasks:
            task.capacity_provider_name = name
            task.launch_type = "EC2"
        return tasks

    with mock.patch.object(backend, "run_task", run_task):
        yield
