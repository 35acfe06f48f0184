"""Every change yunpipe makes to moto, in one module and one style: context managers over
unittest.mock.patch.object / patch.multiple, each undone on exit (the local cloud enters them in
start() and leaves them in stop(); tests/conftest.py's `moto` fixture enters the fixes and the
speed-ups). Three groups:

Fixes: where moto answers differently from real AWS in a way the deploy engine reads, the
embedded AWS is corrected (the local cloud and the tests' moto both use them). Each fix is
guarded by tests/test_moto_hooks.py, which fails once moto answers right by itself.

Speed-ups: where moto answers right but slowly, on the local cloud's hot path, it is sped up
without changing an answer (tests/test_moto_speedups.py compares each with moto's own).
The local cloud serves every request of every worker from one Python process, so moto's CPU per
request is what bounds how many files a pipeline moves per second (bench/e2e.py). Under load
the largest part went to SQS's clock: each message's visibility and delay are checked against a
datetime built for every check, and each message a ReceiveMessage returns builds all of its
queue's attributes three times (to read the retention period), which walks all messages again.
The dispatcher of moto's server is sped up too (BackendDispatcher).

The tests' strict layer (StrictAws.active()) enters default_vpc_routes_to_internet too, so every
test's AWS, bare `mock_aws()` included, has a default VPC as AWS makes it.

Hooks of the local cloud's data plane: Lambda invocations routed to the launcher on the host
(lambda_invocations_routed, for yunpipe.local.lambda_host), RunTask waking the ECS runners
(run_task_observed, for yunpipe.local.ecs_runner; bench/latency.py times RunTask with it too),
StopTask leaving a task whose containers run STOPPING until they have exited (stop_task_deferred,
for the same runner), and a task stopped as a Fargate Spot interruption stops it (stop_like_spot,
a state change rather than a patch, for EcsRunner.interrupt_like_spot).

Not here: the tests' strict layer (tests/strict_aws.py), which makes moto refuse what real AWS
refuses; it is the tests' own model of AWS, not a change the local cloud makes, and uses the
same patch.object style. tests/test_moto_hooks.py and test_least_privilege.py patch moto for
one test each, to watch or steer its internals.
"""
import contextlib
import functools
import inspect
import json
import logging
import re
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any
from unittest import mock

import moto.s3.notifications as s3_notifications
from moto.awslambda.models import LambdaBackend
from moto.core import DEFAULT_ACCOUNT_ID
from moto.ec2 import models as ec2_models
from moto.ecs import models as ecs_models
from moto.events.models import Rule
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
from moto.s3 import models as s3_models
from moto.s3 import responses as s3_responses
from moto.servicequotas.exceptions import NoSuchResource
from moto.servicequotas.models import ServiceQuotasBackend
from moto.servicequotas.responses import ServiceQuotasResponse
from moto.sns import models as sns_models
from moto.sqs import models as sqs_models

from yunpipe.engine.quotas import FAMILY_QUOTAS, FARGATE, FARGATE_SPOT, STANDARD, Quota
from yunpipe.runtime.contract import FARGATE_CAPACITY_PROVIDERS

# ---------------------------------------------------------------------------- fixes
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
    """PutObject with `If-None-Match: *` creates the object or fails, and with `If-Match` replaces
    only the version it names, as S3's conditional writes do: moto checks, then stores, and a
    concurrent put slips in between, so two publishers of one algorithm version (or two workers
    moving a drop-run on) would both succeed. One lock spans both."""
    original = s3_responses.S3Response.put_object
    lock = threading.Lock()

    def put_object(self: Any) -> Any:
        if self.headers.get("If-None-Match") != "*" and not self.headers.get("If-Match"):
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


# A new account's vCPU quotas, Service Quotas' "AWS default quota value": Fargate On-Demand 6 in
# each Region (AWS General Reference, "Amazon ECS endpoints and quotas"; Fargate Spot likewise),
# EC2's Standard instances 5 and every accelerated family 0 (EC2 User Guide, "On-Demand Instance
# quotas"); AWS may raise them with the account's use.
NEW_ACCOUNT_VCPUS = {FARGATE: 6.0, FARGATE_SPOT: 6.0, STANDARD: 5.0, **{q: 0.0 for q in FAMILY_QUOTAS.values()}}
_SERVICE_NAMES = {"fargate": "AWS Fargate", "ec2": "Amazon Elastic Compute Cloud (Amazon EC2)"}


@contextlib.contextmanager
def compute_quotas_answered() -> Iterator[None]:
    """Service Quotas answers for the vCPU quotas tasks run under (Fargate's, EC2's On-Demand
    families), as for a new account: GetServiceQuota the applied value, GetAWSDefaultServiceQuota
    the default, and RequestServiceQuotaIncrease raises the applied value (granted at once).
    moto knows only VPC's quotas and answers NoSuchResourceException for the others, and has no
    GetAWSDefaultServiceQuota or RequestServiceQuotaIncrease."""
    known = {(q.service, q.code): q for q in NEW_ACCOUNT_VCPUS}
    original = ServiceQuotasBackend.get_service_quota

    def answer(backend: Any, quota: Quota, value: float, account: bool) -> dict:
        owner = backend.account_id if account else ""
        return {"ServiceCode": quota.service, "ServiceName": _SERVICE_NAMES[quota.service],
                "QuotaArn": f"arn:aws:servicequotas:{backend.region_name}:{owner}:{quota.service}/{quota.code}",
                "QuotaCode": quota.code, "QuotaName": quota.name, "Value": value, "Unit": "None",
                "Adjustable": True, "GlobalQuota": False}

    def applied(backend: Any) -> dict[Quota, float]:
        return backend.__dict__.setdefault("yunpipe_applied_quotas", {})

    def get_service_quota(self: Any, service_code: str, quota_code: str) -> dict[str, Any]:
        quota = known.get((service_code, quota_code))
        if quota is None:
            return original(self, service_code, quota_code)
        return answer(self, quota, applied(self).get(quota, NEW_ACCOUNT_VCPUS[quota]), account=True)

    def quota_of(response: Any) -> tuple[Any, Quota]:
        params = json.loads(response.body)
        quota = known.get((params.get("ServiceCode"), params.get("QuotaCode")))
        if quota is None:
            raise NoSuchResource()
        return response.backend, quota

    def get_aws_default_service_quota(self: Any) -> str:
        backend, quota = quota_of(self)
        return json.dumps({"Quota": answer(backend, quota, NEW_ACCOUNT_VCPUS[quota], account=False)})

    def request_service_quota_increase(self: Any) -> str:
        backend, quota = quota_of(self)
        desired = float(json.loads(self.body)["DesiredValue"])
        applied(backend)[quota] = desired
        return json.dumps({"RequestedQuota": {
            "Id": f"{quota.code}-{int(desired)}", "ServiceCode": quota.service, "QuotaCode": quota.code,
            "QuotaName": quota.name, "DesiredValue": desired, "Status": "APPROVED", "Unit": "None",
            "GlobalQuota": False}})

    with mock.patch.object(ServiceQuotasBackend, "get_service_quota", get_service_quota), \
            mock.patch.object(ServiceQuotasResponse, "get_aws_default_service_quota", get_aws_default_service_quota,
                              create=True), \
            mock.patch.object(ServiceQuotasResponse, "request_service_quota_increase", request_service_quota_increase,
                              create=True):
        yield


# SNS's delivery to an HTTP(S) subscriber: tries in all (the first and AWS's default 3 retries,
# here a second apart rather than 20 s: the local cloud's subscribers are on this machine), and how
# long one try waits.
SNS_HTTP_TRIES = 4
SNS_HTTP_RETRY_SECONDS = 1.0
SNS_HTTP_TIMEOUT_SECONDS = 15
_log = logging.getLogger("yunpipe.local")


@contextlib.contextmanager
def sns_delivers_after_publish() -> Iterator[None]:
    """An HTTP(S) subscription's message delivered as SNS delivers it: once Publish has answered,
    in a thread of its own, tried again when the endpoint fails, with the x-amz-sns-* headers a
    subscriber dispatches on and the message attributes. moto POSTs within Publish, once: an
    endpoint that is down fails the Publish (an HTML 500) and skips the subscribers after it, and
    a slow one holds the publisher (a worker announcing a failure)."""
    original = sns_models.Subscription.publish

    def publish(self: Any, message: str, message_id: str, subject: str | None = None,
                message_attributes: dict[str, Any] | None = None, group_id: str | None = None,
                deduplication_id: str | None = None, message_structure: str | None = None) -> None:
        if self.protocol not in ("http", "https"):
            return original(self, message, message_id, subject=subject, message_attributes=message_attributes,
                            group_id=group_id, deduplication_id=deduplication_id,
                            message_structure=message_structure)
        matcher = self._filter_policy_matcher
        if matcher is not None and not matcher.matches(message_attributes, message):
            return None
        if message_structure == "json":
            message = self._parse_message_structure(message, self.protocol)
        raw = str(self.attributes.get("RawMessageDelivery")).lower() == "true"
        headers = {"Content-Type": "text/plain; charset=UTF-8", "User-Agent": "Amazon Simple Notification Service Agent",
                   "x-amz-sns-message-type": "Notification", "x-amz-sns-message-id": message_id,
                   "x-amz-sns-topic-arn": self.topic.arn, "x-amz-sns-subscription-arn": self.arn}
        if raw:
            headers["x-amz-sns-rawdelivery"] = "true"

        def deliver() -> None:
            # Signed here, off the publisher's request: a subscription's first signature makes its RSA key.
            body = message if raw else json.dumps(self.get_post_data(message, message_id, subject, message_attributes))
            _deliver(self.endpoint, body.encode(), headers)

        threading.Thread(target=deliver, daemon=True, name="yunpipe-sns-delivery").start()
        return None

    with mock.patch.object(sns_models.Subscription, "publish", publish):
        yield


def _deliver(endpoint: str, body: bytes, headers: dict[str, str]) -> None:
    for attempt in range(1, SNS_HTTP_TRIES + 1):
        request = urllib.request.Request(endpoint, data=body, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=SNS_HTTP_TIMEOUT_SECONDS) as response:
                response.read()
            return
        except (OSError, ValueError) as error:  # refused, timed out, an HTTP error status (URLError, HTTPError)
            failure = error
        if attempt < SNS_HTTP_TRIES:
            time.sleep(SNS_HTTP_RETRY_SECONDS)
    _log.warning("SNS gave up delivering to %s after %d tries: %s", endpoint, SNS_HTTP_TRIES, failure)


def _route_default_vpc_to_internet(backend: Any) -> None:
    """An internet gateway on the default VPC's main route table, unless it has a default route."""
    vpc = backend.get_default_vpc()
    if vpc is None:
        return
    main = next(t for t in backend.describe_route_tables(filters={"vpc-id": vpc.id}) if t.main_association_id)
    if not any(route.destination_cidr_block == "0.0.0.0/0" for route in main.routes):
        gateway = backend.create_internet_gateway()
        backend.attach_internet_gateway(gateway.id, vpc.id)
        backend.create_route(main.id, "0.0.0.0/0", gateway_id=gateway.id)


@contextlib.contextmanager
def default_vpc_routes_to_internet() -> Iterator[None]:
    """A region's default VPC has an internet gateway, and its main route table sends 0.0.0.0/0
    there, as AWS makes it (Amazon VPC User Guide, "Default VPCs"): moto's has neither, so every
    default subnet would look private, and setup-pipe would refuse it (engine/network.py).
    Backends made before (moto's reset at mock start remakes the ones it had) are fixed at once."""
    backend = ec2_models.EC2Backend
    original = backend.create_default_vpc

    @functools.wraps(original)
    def create_default_vpc(self: Any) -> Any:
        vpc = original(self)
        _route_default_vpc_to_internet(self)
        return vpc

    with mock.patch.object(backend, "create_default_vpc", create_default_vpc):
        for account in {DEFAULT_ACCOUNT_ID, *ec2_models.ec2_backends.keys()}:
            for region_backend in list(ec2_models.ec2_backends[account].values()):
                _route_default_vpc_to_internet(region_backend)
        yield


# ---------------------------------------------------------------------------- speed-ups

_unix_time, _unix_time_millis = sqs_models.unix_time, sqs_models.unix_time_millis


def unix_time(dt: Any = None) -> float:
    """moto's unix_time: seconds since the epoch, now from the clock instead of from a naive
    UTC datetime subtracted from another (the same instant, ~40x less CPU)."""
    return time.time() if dt is None else _unix_time(dt)


def unix_time_millis(dt: Any = None) -> float:
    return time.time() * 1000.0 if dt is None else _unix_time_millis(dt)


def is_message_valid_based_on_retention_period(self: Any, queue_name: str, message: Any) -> bool:
    """moto's check, with the retention period read from the queue itself: moto asks
    get_queue_attributes, which builds every attribute, message counts included, three times."""
    retention_period = self.get_queue(queue_name).message_retention_period
    return retention_period + message.sent_timestamp / 1000 > unix_time()


@contextlib.contextmanager
def sqs_clock_fast() -> Iterator[None]:
    with mock.patch.multiple(sqs_models, unix_time=unix_time, unix_time_millis=unix_time_millis), \
            mock.patch.object(sqs_models.SQSBackend, "is_message_valid_based_on_retention_period",
                              is_message_valid_based_on_retention_period):
        yield


class BackendDispatcher(DomainDispatcherApplication):
    """moto's dispatcher, remembering the backend of each host it has seen. moto finds it anew
    for every request, holding the lock that every request takes: it lists its ~250 package
    folders and tries ~400 URL patterns, 0.7 ms, the largest item of a py-spy profile of
    bench/e2e.py, during which every other request of the local cloud waits."""

    def __init__(self) -> None:
        super().__init__(create_backend_app)
        self._backends: dict[str, Any] = {}

    def get_backend_for_host(self, host: str | None) -> Any:
        # Called under self.lock (get_application), and the answer depends on the host alone.
        if host is None:
            return None
        if host not in self._backends:
            self._backends[host] = super().get_backend_for_host(host)
        return self._backends[host]


# ---------------------------------------------------------------------------- the local cloud's hooks


@contextlib.contextmanager
def lambda_invocations_routed(
        on_s3_notification: Callable[..., None],
        invoke_hook: Callable[[Callable[..., Any]], Callable[..., Any]],
        rule_hook: Callable[[Callable[..., Any]], Callable[..., Any]]) -> Iterator[None]:
    """moto's three ways into a Lambda function, routed: an S3 notification calls
    `on_s3_notification` (moto's signature) instead of moto's Docker Lambda; Invoke and a rule's
    delivery to its targets go through the layers `invoke_hook(original)` and `rule_hook(original)`
    (plain functions, bound to the backend or rule moto calls them on)."""
    with mock.patch.object(s3_notifications, "_invoke_awslambda", on_s3_notification), \
            mock.patch.object(LambdaBackend, "invoke", invoke_hook(LambdaBackend.invoke)), \
            mock.patch.object(Rule, "send_to_targets", rule_hook(Rule.send_to_targets)):
        yield


@contextlib.contextmanager
def run_task_observed(observer: Callable[[], None]) -> Iterator[None]:
    """`observer()` runs after every RunTask moto accepts. The layer goes over whatever run_task
    is on entry (other layers wrap it too), which exit restores."""
    backend = ecs_models.EC2ContainerServiceBackend
    original = backend.run_task

    @functools.wraps(original)
    def run_task(self: Any, *args: Any, **kwargs: Any) -> Any:
        tasks = original(self, *args, **kwargs)
        observer()
        return tasks

    with mock.patch.object(backend, "run_task", run_task):
        yield


@contextlib.contextmanager
def stop_task_deferred(running: Callable[[str], bool]) -> Iterator[None]:
    """StopTask as ECS does it while the task's containers still run (`running(task_arn)`): the
    desired status becomes STOPPED at once (list_tasks no longer counts it as running), while its
    last status stays STOPPING until they have exited. Whoever ran them then completes the stop
    with another StopTask, which keeps the first reason. moto marks a task STOPPED at once, so a
    caller waiting for STOPPED (retry, before it moves dead letters back) went on while the old
    worker still received messages."""
    backend = ecs_models.EC2ContainerServiceBackend
    original = backend.stop_task

    @functools.wraps(original)
    def stop_task(self: Any, cluster_str: str, task_str: str, reason: str) -> Any:
        cluster = self._get_cluster(cluster_str)
        task_id = task_str.split("/")[-1]
        task = next((t for arn, t in self.tasks.get(cluster.name, {}).items() if arn.endswith(task_id)), None)
        if task is None or task.last_status == "STOPPED":
            return original(self, cluster_str, task_str, reason)
        if running(task.task_arn):
            if task.desired_status != "STOPPED":
                task.desired_status, task.last_status, task.stopped_reason = "STOPPED", "STOPPING", reason
            return task
        if task.desired_status == "STOPPED":
            task.last_status = "STOPPED"
            return task
        return original(self, cluster_str, task_str, reason)

    with mock.patch.object(backend, "stop_task", stop_task):
        yield


# What a Fargate Spot interruption leaves in DescribeTasks: ECS's stop code and reason.
SPOT_STOP_CODE = "SpotInterruption"
SPOT_STOPPED_REASON = "Your Spot Task was interrupted."


def stop_like_spot(task_arn: str) -> bool:
    """Mark a running task as stopped by a Spot interruption: desired status STOPPED (list_tasks
    no longer counts it as running), last status STOPPING, and the stop code and reason ECS
    gives. Whoever runs its containers then stops them, SIGTERM first, and completes the stop
    (stop_task_deferred keeps this reason). False when no running task has that ARN."""
    task_id = task_arn.rsplit("/", 1)[-1]
    for regions in ecs_models.ecs_backends.values():
        for backend in regions.values():
            for tasks in backend.tasks.values():
                task = next((t for arn, t in tasks.items() if arn.endswith(task_id)), None)
                if task is not None and task.desired_status == "RUNNING":
                    # moto's Task has no stop code of its own; DescribeTasks answers with any
                    # attribute the API's shape names.
                    task.stop_code = SPOT_STOP_CODE  # type: ignore[attr-defined]
                    task.stopped_reason = SPOT_STOPPED_REASON
                    task.desired_status, task.last_status = "STOPPED", "STOPPING"
                    return True
    return False
