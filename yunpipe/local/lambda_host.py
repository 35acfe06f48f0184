"""Runs yunpipe's launcher Lambda on the host, asynchronously, for the local cloud.

moto delivers an S3 notification to a Lambda function by calling
``moto.s3.notifications._invoke_awslambda(account_id, event_body, fn_arn, region_name)``
synchronously, inside the PutObject request; its own invoke would start a Docker Lambda
runtime. ``LambdaHost.install()`` replaces that function: when the target function's code is
yunpipe's launcher (its handler and its whole zip are this yunpipe's: ``is_launcher``), the
launcher's ``handle`` runs in a bounded thread pool
on the host, configured from the function's environment variables (moto's Lambda backend)
and with SQS/ECS clients aimed at the emulator. Other functions keep moto's behaviour.

The Lambda API's asynchronous ``Invoke`` (``InvocationType="Event"``, as ``yunpipe submit`` and
``retry`` wake a step's launcher) goes the same way: moto would run it in its Docker Lambda
inside the request, so ``install()`` has ``LambdaBackend.invoke`` queue it as an S3 notification
is queued, and answer 202 at once. Synchronous invocations keep moto's behaviour.

EventBridge rules: moto matches each event (an S3 event of a bucket with EventBridge
notifications on, or PutEvents) against every rule in ``Rule.send_to_targets``, but delivers to
no Lambda target. ``install()`` wraps that method: after moto's own delivery, each Lambda target
of an enabled rule whose event pattern matches gets the event, queued as an S3 notification is.
A rule without an event pattern (a schedule) takes no events, as on AWS; moto would match it to
every event.

The launcher is called through its pure entry point ``handle(event, LauncherConfig.from_env(env),
Clients(sqs, ecs, s3))``: nothing touches ``os.environ``, so concurrent invocations of different
steps cannot see each other's settings.

Reserved concurrency (``put_function_concurrency``, kept by moto as the function's
``reserved_concurrency``) is honoured as on AWS: at most that many invocations of the function
run at once; the others wait in a per-function queue (asynchronous invocations are queued, not
dropped) without holding a pool thread. Reserved concurrency 0 throttles every invocation.

A failed asynchronous invocation (they all are: S3, EventBridge, schedules, Invoke "Event") is
tried again as Lambda does: the function's ``MaximumRetryAttempts`` more times (moto keeps its
``put_function_event_invoke_config``; 2 without one), about 1 then 2 minutes later (divided by
``retry_speedup``), then its event goes to the config's on-failure destination (an SQS queue) in
Lambda's record format ("requestPayload": the event), or is dropped without one. Retries still
pending when the host is uninstalled are dropped, as the local cloud stops. A caller's Future
holds the first try's outcome.

Logs, as AWS Lambda writes them: while the installed host runs a launcher invocation, records of
the ``yunpipe.launcher`` logger (and its children) made in that invocation's thread go to
CloudWatch Logs group ``/aws/lambda/<function name>`` (created if missing), stream
``YYYY/MM/DD/[$LATEST]<request id hex>``, between START / END / REPORT lines, and not to the
host's console. Records made in other threads keep going to the parent loggers' handlers.

With ``launchers_on_host=False`` (the local cloud's ``--lambda docker``) the host is not
installed and runs every invocation through moto's own ``invoke`` (its Docker Lambda); it then
only serves ``invoke_function`` (scheduled rules), still queued under reserved concurrency.

API:
    LambdaHost(endpoint_url, max_workers=4, launchers_on_host=True, retry_speedup=1.0, faults=None)
                                     faults: the local cloud's Faults (yunpipe.local.faults), asked
                                     before each launcher run on the host
        .install()                   hook moto's S3 -> Lambda delivery, EventBridge rules' Lambda
                                     targets and asynchronous Invoke API calls, and route launcher
                                     logs (one host per process)
        .uninstall()                 restore both; waits for running and queued invocations
        .invoke_function(name_or_arn, event, region="us-east-1") -> Future
                                     asynchronous invocation, as for a scheduled rule
        .recent() -> list[Invocation]  the last invocations, newest last
    Invocation: function_arn, trigger ("s3" | "eventbridge": a rule's event pattern matched |
                "invoke": a scheduled rule or the Invoke API), ok,
                result (the handler's JSON result or error text),
                log_stream (the CloudWatch Logs stream of a host-run launcher, else None)
    reserved_concurrency(function) -> int | None   the limit moto keeps for a function
    LAUNCHER_LOGGER                  "yunpipe.launcher"
"""
from __future__ import annotations

import contextlib
import functools
import json
import logging
import threading
import time
import traceback
import uuid
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from moto.awslambda.utils import get_backend
from moto.core import DEFAULT_ACCOUNT_ID
from moto.logs.exceptions import ResourceAlreadyExistsException
from moto.logs.models import logs_backends

from yunpipe.runtime import contract, launcher_package
from yunpipe.runtime.launcher import clients as launcher_clients
from yunpipe.runtime.launcher import handler as launcher
from yunpipe.runtime.launcher.log import LOG as LAUNCHER_LOG

from . import lambda_retries
from .clients import local_client
from .faults import Faults
from .moto_patches import lambda_invocations_routed

log = logging.getLogger(__name__)

RECENT_INVOCATIONS = 100
# The launcher's logger: its records belong in the function's CloudWatch Logs, not on the host.
LAUNCHER_LOGGER = LAUNCHER_LOG.name
_installed: LambdaHost | None = None
_install_lock = threading.Lock()


@dataclass(frozen=True)
class Invocation:
    function_arn: str
    trigger: str
    ok: bool
    result: Any
    log_stream: str | None = None


@functools.cache
def _launcher_zip() -> bytes:
    # Built once: every invocation asks.
    return launcher_package.launcher_zip()


def is_launcher(function: Any) -> bool:
    """True when a moto Lambda function is yunpipe's launcher as this yunpipe packages it: the
    same handler and, byte for byte, the same zip (every module the launcher runs, the contract
    included), so the host runs exactly the code the function holds."""
    return (function.handler == launcher_package.HANDLER
            and getattr(function, "code_bytes", b"") == _launcher_zip())


def reserved_concurrency(function: Any) -> int | None:
    """The function's reserved concurrency as moto keeps it (None: unreserved)."""
    value = function.reserved_concurrency
    # moto stores the request's value as given: an int from JSON, but do not count on it.
    return None if value is None else int(value)


class _InvocationLog:
    """One invocation's log events, in the Lambda Python runtime's format."""

    def __init__(self, function: Any):
        self.request_id = str(uuid.uuid4())
        self.group = f"/aws/lambda/{function.function_name}"
        started = datetime.now(timezone.utc)
        self.stream = f"{started:%Y/%m/%d}/[$LATEST]{uuid.UUID(self.request_id).hex}"
        # Only the invocation's own thread adds to it: no lock.
        self.events: list[dict] = []
        self._started = time.monotonic()
        self._formatter = logging.Formatter(
            f"[%(levelname)s]\t%(asctime)s.%(msecs)03dZ\t{self.request_id}\t%(message)s", "%Y-%m-%dT%H:%M:%S"
        )
        self._formatter.converter = time.gmtime
        self.line(f"START RequestId: {self.request_id} Version: $LATEST")

    def line(self, message: str, created: float | None = None) -> None:
        self.events.append({"timestamp": int((created if created is not None else time.time()) * 1000), "message": message})

    def add(self, record: logging.LogRecord) -> None:
        self.line(self._formatter.format(record), record.created)

    def error(self, exc: BaseException) -> None:
        # What the runtime logs for an exception the handler lets out.
        self.line(f"[ERROR] {type(exc).__name__}: {exc}\n" + "".join(traceback.format_exception(exc)).rstrip())

    def end(self) -> None:
        duration = (time.monotonic() - self._started) * 1000
        self.line(f"END RequestId: {self.request_id}")
        self.line(f"REPORT RequestId: {self.request_id}\tDuration: {duration:.2f} ms")


class _LauncherLogRouter(logging.Handler):
    """Handler on the launcher's logger (propagation off while installed): a record made in a
    thread bound to an invocation goes to that invocation's log; any other goes on to the
    parent loggers' handlers, as if it had propagated."""

    def __init__(self) -> None:
        super().__init__()
        self._logs: dict[int, _InvocationLog] = {}

    def bind(self, invocation_log: _InvocationLog) -> None:
        self._logs[threading.get_ident()] = invocation_log

    def unbind(self) -> None:
        self._logs.pop(threading.get_ident(), None)

    def handle(self, record: logging.LogRecord) -> bool:
        # No handler lock: binding is per thread, and parents' handlers lock for themselves.
        invocation_log = self._logs.get(threading.get_ident())
        if invocation_log is not None:
            invocation_log.add(record)
        else:
            logger = logging.getLogger(LAUNCHER_LOGGER)
            if logger.parent is not None:
                logger.parent.handle(record)
        return True

    def emit(self, record: logging.LogRecord) -> None:
        self.handle(record)


@dataclass
class _Job:
    run: Callable[[Any, dict, str], Any]
    function: Any
    event: dict
    trigger: str
    done: Future = field(default_factory=Future)
    attempt: int = 1


@dataclass
class _Slots:
    """One function's invocations: how many run, and those waiting for a free slot."""

    running: int = 0
    waiting: deque = field(default_factory=deque)


class LambdaHost:
    def __init__(self, endpoint_url: str, max_workers: int = 4, launchers_on_host: bool = True,
                 retry_speedup: float = 1.0, faults: Faults | None = None):
        self.endpoint_url = endpoint_url
        self._retry_speedup = retry_speedup
        self._faults = faults
        # Retries waiting for their time (cancelled by uninstall).
        self._timers: set[threading.Timer] = set()
        self._launchers_on_host = launchers_on_host
        self._pool = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="yunpipe-lambda")
        # moto's Lambda routed to this host while installed (yunpipe.local.moto_patches).
        self._routed = contextlib.ExitStack()
        self._recent: deque[Invocation] = deque(maxlen=RECENT_INVOCATIONS)
        self._clients: dict[tuple[str, str], Any] = {}
        self._lock = threading.Lock()
        # Function ARN -> its slots, while it has invocations running or waiting.
        self._slots: dict[str, _Slots] = {}
        self._idle = threading.Condition(self._lock)
        self._closed = False
        self._router = _LauncherLogRouter()
        self._launcher_propagates = True

    def install(self) -> None:
        global _installed
        with _install_lock:
            if _installed is not None:
                raise RuntimeError("another local cloud already hooks moto's S3 notifications in this process")
            self._routed.enter_context(lambda_invocations_routed(
                self._on_s3_notification, self._invoke_api_hook, self._rule_delivery_hook))
            launcher_logger = logging.getLogger(LAUNCHER_LOGGER)
            self._launcher_propagates = launcher_logger.propagate
            launcher_logger.addHandler(self._router)
            launcher_logger.propagate = False
            _installed = self

    def uninstall(self) -> None:
        global _installed
        with _install_lock:
            if _installed is self:
                self._routed.close()
                _installed = None
        # Queued invocations still run (their events were accepted); the pool stays open for them.
        with self._idle:
            self._closed = True
            timers, self._timers = self._timers, set()
        for timer in timers:
            timer.cancel()
        with self._idle:
            self._idle.wait_for(lambda: not self._slots)
        self._pool.shutdown(wait=True)
        with _install_lock:
            launcher_logger = logging.getLogger(LAUNCHER_LOGGER)
            if self._router in launcher_logger.handlers:
                launcher_logger.removeHandler(self._router)
                launcher_logger.propagate = self._launcher_propagates

    def recent(self) -> list[Invocation]:
        with self._lock:
            return list(self._recent)

    def invoke_function(self, name_or_arn: str, event: dict, region: str = "us-east-1") -> Future:
        account_id = DEFAULT_ACCOUNT_ID
        if name_or_arn.startswith("arn:"):
            region, account_id = name_or_arn.split(":")[3:5]
        function = get_backend(account_id, region).get_function(name_or_arn)
        return self._submit(function, event, "invoke")

    def _invoke_api_hook(self, original: Callable[..., Any]) -> Callable[..., Any]:
        # A plain function, so that it binds to the backend moto calls it on.
        def invoke(backend: Any, function_name: str, qualifier: str | None, body: Any, headers: Any,
                   response_headers: Any) -> Any:
            if headers.get("X-Amz-Invocation-Type") != "Event":
                return original(backend, function_name, qualifier, body, headers, response_headers)
            function = backend.get_function(function_name, qualifier)
            self._submit(function, json.loads(body) if body else {}, "invoke")
            # Not None: moto's response then answers 202 Accepted with an empty payload.
            return b""

        return invoke

    def _on_s3_notification(self, account_id: str, event_body: Any, fn_arn: str, region_name: str) -> None:
        # Same contract as moto's function: called inside the S3 request, must not raise.
        try:
            function = get_backend(account_id, region_name).get_function(fn_arn)
            self._submit(function, event_body, "s3")
        except Exception:
            log.exception("cannot deliver an S3 notification to %s", fn_arn)

    def _rule_delivery_hook(self, original: Callable[..., Any]) -> Callable[..., Any]:
        # A plain function, so that it binds to the rule moto calls it on.
        def send_to_targets(rule: Any, original_event: Any, transform_input: bool = True) -> None:
            try:
                original(rule, original_event, transform_input)
            except Exception:
                # moto raises for some rules (a schedule rule given an S3 event), and its caller then
                # skips every later rule: this rule's failure must not hide the event from the others.
                log.debug("rule %s: moto could not deliver an event to its own targets", rule.name, exc_info=True)
            self._on_rule_event(rule, original_event)

        return send_to_targets

    def _on_rule_event(self, rule: Any, event: dict) -> None:
        # Called inside the request that raised the event (PutObject, PutEvents): must not raise.
        if rule.state != "ENABLED" or not rule.event_pattern.get_pattern():
            return
        try:
            if not rule.event_pattern.matches_event(event):
                return
        except Exception:
            log.debug("rule %s: moto cannot match its pattern", rule.name, exc_info=True)
            return
        for target in rule.targets:
            arn = target["Arn"]
            parts = arn.split(":")
            if len(parts) < 7 or parts[2] != "lambda" or parts[5] != "function":
                continue
            try:
                function = get_backend(parts[4], parts[3]).get_function(arn)
                self._submit(function, event, "eventbridge")
            except Exception:
                log.exception("rule %s: cannot deliver an event to %s", rule.name, arn)

    def _submit(self, function: Any, event: dict, trigger: str, attempt: int = 1) -> Future:
        # Other code than yunpipe's launcher, and everything when launchers do not run on the host,
        # gets moto's own invocation (a Docker Lambda runtime).
        on_host = self._launchers_on_host and is_launcher(function)
        job = _Job(self._run_launcher if on_host else self._run_moto, function, event, trigger, attempt=attempt)
        limit = reserved_concurrency(function)
        if limit == 0:
            # As on AWS: a function reserved at 0 is throttled, never run.
            message = f"TooManyRequestsException: {function.function_name} has reserved concurrency 0"
            self._record(function, trigger, False, message)
            job.done.set_exception(RuntimeError(message))
            return job.done
        with self._lock:
            if self._closed:
                raise RuntimeError("the local Lambda host is stopped")
            slots = self._slots.setdefault(function.function_arn, _Slots())
            if limit is not None and slots.running >= limit:
                slots.waiting.append(job)
                return job.done
            slots.running += 1
        self._pool.submit(self._execute, job)
        return job.done

    def _execute(self, job: _Job) -> None:
        try:
            if job.done.set_running_or_notify_cancel():
                try:
                    job.done.set_result(job.run(job.function, job.event, job.trigger))
                except Exception as exc:  # noqa: BLE001 - the caller's Future carries it
                    job.done.set_exception(exc)
                    self._retry_or_give_up(job, exc)
        finally:
            # The slot goes straight to the function's next waiting invocation, if any.
            with self._lock:
                slots = self._slots[job.function.function_arn]
                following = slots.waiting.popleft() if slots.waiting else None
                if following is None:
                    slots.running -= 1
                    if not slots.running:
                        del self._slots[job.function.function_arn]
                        self._idle.notify_all()
            if following is not None:
                self._pool.submit(self._execute, following)

    def _retry_or_give_up(self, job: _Job, exc: Exception) -> None:
        """What Lambda does with a failed asynchronous invocation (see the module docstring)."""
        config = lambda_retries.event_invoke_config(job.function)
        delay = lambda_retries.retry_delay(config, job.attempt, self._retry_speedup)
        if delay is None:
            lambda_retries.give_up(job.function, job.event, job.attempt, exc, config, self._client)
            return
        timer = threading.Timer(delay, lambda: self._retry(job, timer))
        timer.daemon = True
        with self._lock:
            if self._closed:
                return
            self._timers.add(timer)
        timer.start()

    def _retry(self, job: _Job, timer: threading.Timer) -> None:
        with self._lock:
            self._timers.discard(timer)
        account_id, region = job.function.function_arn.split(":")[4], job.function.region
        try:
            # Its current version: a pipeline set up again meanwhile has changed it, or deleted it.
            function = get_backend(account_id, region).get_function(job.function.function_arn)
            self._submit(function, job.event, job.trigger, attempt=job.attempt + 1)
        except Exception as exc:  # noqa: BLE001 - a timer thread has no one to raise to
            log.warning("cannot retry Lambda function %s: %s", job.function.function_name, exc)

    def _client(self, service: str, region: str) -> Any:
        with self._lock:
            if (service, region) not in self._clients:
                self._clients[(service, region)] = local_client(service, self.endpoint_url, region)
            return self._clients[(service, region)]

    def _record(self, function: Any, trigger: str, ok: bool, result: Any, log_stream: str | None = None) -> None:
        with self._lock:
            self._recent.append(Invocation(function.function_arn, trigger, ok, result, log_stream))

    def _run_launcher(self, function: Any, event: dict, trigger: str) -> Any:
        invocation_log = _InvocationLog(function)
        self._router.bind(invocation_log)
        try:
            if self._faults is not None:
                self._faults.launcher_invocation(function.function_name)
            config = contract.LauncherConfig.from_env(dict(function.environment_vars))
            region = function.region
            clients = launcher_clients.Clients(sqs=self._client("sqs", region), ecs=self._client("ecs", region),
                                       make_s3=lambda: self._client("s3", region),
                                       make_sns=lambda: self._client("sns", region))
            result = launcher.handle(event, config, clients)
        except Exception as exc:
            invocation_log.error(exc)
            log.warning(
                "launcher %s failed: %s: %s (log: %s %s)",
                function.function_name, type(exc).__name__, exc, invocation_log.group, invocation_log.stream,
            )
            self._record(function, trigger, False, f"{type(exc).__name__}: {exc}", invocation_log.stream)
            raise
        finally:
            self._router.unbind()
            invocation_log.end()
            self._write_log(function, invocation_log)
        self._record(function, trigger, True, result, invocation_log.stream)
        return result

    def _write_log(self, function: Any, invocation_log: _InvocationLog) -> None:
        # The host shares moto's process, so the log goes straight into its CloudWatch Logs
        # backend: through the API it cost two requests per invocation, each serialized by
        # botocore and served by moto on the same CPU as everything else.
        account_id = function.function_arn.split(":")[4]
        logs = logs_backends[account_id][function.region]
        try:
            if invocation_log.group not in logs.groups:
                # Lambda creates its function's group when setup-pipe has not.
                # another invocation of the function may have created it just now
                with contextlib.suppress(ResourceAlreadyExistsException):
                    logs.create_log_group(invocation_log.group, tags={})
            logs.create_log_stream(invocation_log.group, invocation_log.stream)
            logs.put_log_events(invocation_log.group, invocation_log.stream, invocation_log.events)
        except Exception as exc:  # noqa: BLE001 - losing a log must not fail the invocation
            log.warning("cannot write the log of %s to %s: %s", invocation_log.request_id, invocation_log.group, exc)

    def _run_moto(self, function: Any, event: dict, trigger: str) -> Any:
        response_headers: dict[str, str] = {}
        try:
            payload = function.invoke(json.dumps(event), {}, response_headers)
        except Exception as exc:
            log.exception("Lambda function %s failed", function.function_name)
            self._record(function, trigger, False, f"{type(exc).__name__}: {exc}")
            raise
        # moto returns the runtime's last output line, and flags a function error in the
        # response headers instead of raising.
        text = payload.decode(errors="replace") if isinstance(payload, bytes) else payload
        try:
            result = json.loads(text)
        except ValueError:
            result = text
        if "x-amz-function-error" in response_headers:
            log.warning("Lambda function %s failed: %s", function.function_name, text)
            self._record(function, trigger, False, result)
            raise RuntimeError(f"{function.function_name} failed: {text}")
        self._record(function, trigger, True, result)
        return result

