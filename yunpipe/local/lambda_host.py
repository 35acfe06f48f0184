"""Runs yunpipe's launcher Lambda on the host, asynchronously, for the local cloud.

moto delivers an S3 notification to a Lambda function by calling
``moto.s3.notifications._invoke_awslambda(account_id, event_body, fn_arn, region_name)``
synchronously, inside the PutObject request; its own invoke would start a Docker Lambda
runtime. ``LambdaHost.install()`` replaces that function: when the target function's code is
yunpipe's launcher (the zip's handler module has the same bytes as
``yunpipe/lambda_src/launcher.py``), the launcher's ``handle`` runs in a bounded thread pool
on the host, configured from the function's environment variables (moto's Lambda backend)
and with SQS/ECS clients aimed at the emulator. Other functions keep moto's behaviour.

The launcher is called through its pure entry point ``handle(event, Config.from_env(env),
Clients(sqs, ecs))``: nothing touches ``os.environ``, so concurrent invocations of different
steps cannot see each other's settings.

API:
    LambdaHost(endpoint_url, max_workers=4)
        .install()                   hook moto's S3 -> Lambda delivery (one host per process)
        .uninstall()                 restore moto's function; waits for running invocations
        .invoke_function(name_or_arn, event, region="us-east-1") -> Future
                                     asynchronous invocation, as for a scheduled rule
        .recent() -> list[Invocation]  the last invocations, newest last
    Invocation: function_arn, trigger ("s3" | "invoke"), ok, result (summary dict or error text)
"""
from __future__ import annotations

import io
import json
import logging
import threading
import zipfile
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from importlib import resources
from typing import Any

import moto.s3.notifications as s3_notifications
from moto.awslambda.utils import get_backend
from moto.core import DEFAULT_ACCOUNT_ID

from yunpipe.lambda_src import launcher

from .clients import local_client

log = logging.getLogger(__name__)

RECENT_INVOCATIONS = 100
_installed: "LambdaHost | None" = None
_install_lock = threading.Lock()


@dataclass(frozen=True)
class Invocation:
    function_arn: str
    trigger: str
    ok: bool
    result: Any


def _launcher_source() -> bytes:
    return (resources.files("yunpipe.lambda_src") / "launcher.py").read_bytes()


def is_launcher(function: Any) -> bool:
    """True when a moto Lambda function's handler module is yunpipe's launcher, byte for byte."""
    handler = function.handler or ""
    module, _, _ = handler.rpartition(".")
    if not module or not getattr(function, "code_bytes", b""):
        return False
    try:
        with zipfile.ZipFile(io.BytesIO(function.code_bytes)) as archive:
            source = archive.read(module.replace(".", "/") + ".py")
    except (zipfile.BadZipFile, KeyError):
        return False
    return source == _launcher_source()


class LambdaHost:
    def __init__(self, endpoint_url: str, max_workers: int = 4):
        self.endpoint_url = endpoint_url
        self._pool = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="yunpipe-lambda")
        self._original = None
        self._recent: deque[Invocation] = deque(maxlen=RECENT_INVOCATIONS)
        self._clients: dict[str, launcher.Clients] = {}
        self._lock = threading.Lock()

    def install(self) -> None:
        global _installed
        with _install_lock:
            if _installed is not None:
                raise RuntimeError("another local cloud already hooks moto's S3 notifications in this process")
            self._original = s3_notifications._invoke_awslambda
            s3_notifications._invoke_awslambda = self._on_s3_notification
            _installed = self

    def uninstall(self) -> None:
        global _installed
        with _install_lock:
            if _installed is self:
                s3_notifications._invoke_awslambda = self._original
                _installed = None
        self._pool.shutdown(wait=True)

    def recent(self) -> list[Invocation]:
        with self._lock:
            return list(self._recent)

    def invoke_function(self, name_or_arn: str, event: dict, region: str = "us-east-1") -> Future:
        account_id = DEFAULT_ACCOUNT_ID
        if name_or_arn.startswith("arn:"):
            region, account_id = name_or_arn.split(":")[3:5]
        function = get_backend(account_id, region).get_function(name_or_arn)
        return self._submit(function, event, "invoke")

    def _on_s3_notification(self, account_id: str, event_body: Any, fn_arn: str, region_name: str) -> None:
        # Same contract as moto's function: called inside the S3 request, must not raise.
        try:
            function = get_backend(account_id, region_name).get_function(fn_arn)
            self._submit(function, event_body, "s3")
        except Exception:  # noqa: BLE001 - S3 delivery to Lambda is asynchronous on AWS too
            log.exception("cannot deliver an S3 notification to %s", fn_arn)

    def _submit(self, function: Any, event: dict, trigger: str) -> Future:
        if is_launcher(function):
            return self._pool.submit(self._run_launcher, function, event, trigger)
        # Not yunpipe's code: moto's own invocation (a Docker Lambda runtime, when configured).
        return self._pool.submit(self._run_moto, function, event, trigger)

    def _clients_for(self, region: str) -> launcher.Clients:
        with self._lock:
            if region not in self._clients:
                self._clients[region] = launcher.Clients(
                    sqs=local_client("sqs", self.endpoint_url, region),
                    ecs=local_client("ecs", self.endpoint_url, region),
                )
            return self._clients[region]

    def _record(self, function: Any, trigger: str, ok: bool, result: Any) -> None:
        with self._lock:
            self._recent.append(Invocation(function.function_arn, trigger, ok, result))

    def _run_launcher(self, function: Any, event: dict, trigger: str) -> Any:
        try:
            config = launcher.Config.from_env(dict(function.environment_vars))
            result = launcher.handle(event, config, self._clients_for(function.region))
        except Exception as exc:
            log.exception("launcher %s failed", function.function_name)
            self._record(function, trigger, False, f"{type(exc).__name__}: {exc}")
            raise
        self._record(function, trigger, True, result)
        return result

    def _run_moto(self, function: Any, event: dict, trigger: str) -> Any:
        try:
            result = function.invoke(json.dumps(event), {}, {})
        except Exception as exc:
            log.exception("Lambda function %s failed", function.function_name)
            self._record(function, trigger, False, f"{type(exc).__name__}: {exc}")
            raise
        self._record(function, trigger, True, result)
        return result
