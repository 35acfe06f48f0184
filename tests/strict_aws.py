"""A strict layer over moto: it refuses what real AWS refuses and moto 5.2 accepts.

Test harness only (DESIGN.md, "Real AWS rules that moto does not enforce"). `StrictAws` patches
moto's backends in this process, so it holds for the in-process `mock_aws` of the deploy tests
and for the local cloud's embedded moto server alike. Each rule answers with the error code
and message AWS gives:

- S3: overlapping notification configurations for the same event type ("Configuration is
  ambiguously defined"); a Lambda destination without an S3 invoke permission, or an SQS
  destination whose queue policy does not let S3 send ("Unable to validate the following
  destination configurations").
- Lambda: a function whose role was created less than `role_propagation_seconds` ago ("The
  role defined for the function cannot be assumed by Lambda"); reserved concurrency that would
  leave fewer than 100 unreserved executions of `lambda_concurrency_limit` (moto's own
  MOTO_LAMBDA_CONCURRENCY_QUOTA rule), with GetAccountSettings answered as AWS does.
- SQS: a queue name reused within `queue_reuse_seconds` of its deletion (QueueDeletedRecently).
- ECS: a Fargate task definition with a cpu/memory pair Fargate does not offer, a network mode
  other than awsvpc, or ephemeral storage outside 21-200 GiB; a RunTask whose capacity provider
  strategy names a provider the cluster does not have associated; GPU resource requirements in a
  task definition Fargate may run; a capacity provider whose Auto Scaling group does not exist, or
  the deletion of one still associated with an active cluster; PutClusterCapacityProviders naming a
  provider that does not exist yet ("The specified capacity provider was not found",
  terraform-aws-modules/terraform-aws-ecs#53). And one fact moto leaves out:
  a task's createdAt, which the launcher ranks tasks by.
- A fresh account (`fresh_account`, on by default): no service-linked role for ECS until one is
  created. CreateCapacityProvider then answers "ECS Service Linked Role does not exist"; CreateCluster
  with capacity providers creates the role, as ECS does, and answers "Unable to assume the service
  linked role" until it is `service_linked_role_propagation_seconds` old; so does
  PutClusterCapacityProviders (alchemy-run/alchemy#1558). IAM's
  CreateServiceLinkedRole answers "has been taken in this account" for a role that exists.
  (mashun4ek/ecs_terraform_workshop#5, cloudformation-coverage-roadmap#818.)
- Delays after a change, each on the clock: S3 cannot validate a Lambda destination whose
  permission was added less than `permission_propagation_seconds` ago; a capacity provider's
  name is refused ("already exists") for `capacity_provider_reuse_seconds` after its deletion
  (containers-roadmap#632); CreateAutoScalingGroup refuses a launch template whose instance profile
  was created less than `instance_profile_propagation_seconds` ago ("Invalid IAM Instance Profile
  name": eksctl#8039 saw 34 s, terraform-provider-aws#4769).
- Static limits (the quotas pages of each service): Lambda environment variables over 4 KB,
  measured as their JSON ("exceeded the 4KB limit. String measured: ...",
  github-aws-runners/terraform-aws-github-runner#3594); an inline role policy over 10,240
  characters, white space not counted (IAM quotas; LimitExceeded "Maximum policy size of 10240
  bytes exceeded for role", serverless/serverless#7643); RunTask with a count over 10 (the ECS API
  reference's range; "Task count can not be greater than 10", artilleryio/artillery#595); a task
  definition over 65,536 bytes as sent (ClientException "Actual length: '66420'. Max allowed length
  is '65536' bytes.", awsdocs/amazon-ecs-developer-guide#149).
- Starting tasks and holding messages (issue 20, items 4, 5, 9, 10):
  - ECS RunTask answers `failures`, starting only what fits, with "The requested CPU configuration is
    above your limit" when the account's Fargate on-demand vCPUs in use would pass `fargate_vcpu_limit`
    (None: no limit; dask/dask-cloudprovider#299 shows the whole response), and, with
    `unverified_account`, with "You've reached the limit on the number of tasks you can run
    concurrently" for every Fargate task: a new account is blocked from Fargate until AWS has
    verified it (aws/copilot-cli#3064, whose maintainer says so; the same reason in
    wellcomecollection/platform#3875). A task on an EC2 capacity provider whose instance type
    lacks its memory (what ECS registers: `ecs_registered_memory_percent` of the installed memory,
    "Reserving Amazon ECS Linux container instance memory": an m4.large's 8192 MiB register as 7985)
    or its GPUs fails with "RESOURCE:MEMORY" or "RESOURCE:GPU" (ECS Developer Guide, "API failure
    reasons"; with managed scaling ECS may also accept such a task and stop it with
    "TaskFailedToStart: RESOURCE:MEMORY", which this layer does not model).
  - Auto Scaling: CreateAutoScalingGroup with a subnet in an Availability Zone that does not offer
    the launch template's instance type (moto's DescribeInstanceTypeOfferings) answers EC2's
    "Your requested instance type (X) is not supported in your requested Availability Zone (Y).
    Please retry your request by not specifying an Availability Zone or choosing ...". AWS accepts
    the group and fails its launches there (terraform-provider-aws#26377, RunInstances' Unsupported);
    moto launches a group's instances in its first subnet only, so the layer refuses at creation.
  - SQS: ChangeMessageVisibility that would keep a message invisible beyond 43,200 s from the receive
    that gave its receipt handle, on the clock: "Value N for parameter VisibilityTimeout is invalid.
    Reason: Total VisibilityTimeout for the message is beyond the limit [43200 seconds]"
    (InvalidParameterValue; localstack/localstack#3956 quotes AWS, moto has the same text counted
    from the send; SQS Developer Guide, "Amazon SQS visibility timeout").
- Lambda's asynchronous invocations (S3 notifications, EventBridge rules, Invoke with
  InvocationType Event), which moto and the local cloud run at once: `throttle(function)` makes
  the function's next asynchronous invocations of new objects throttled for longer than their
  maximum event age, as a burst at reserved concurrency 1 is (AWS Lambda Developer Guide,
  "How Lambda handles errors and retries with asynchronous invocation": throttled events are
  retried for up to MaximumEventAgeInSeconds, 6 h by default, then discarded). Lambda then sends
  the event's record to the function's on-failure destination (an SQS queue, delivered with the
  function's execution role: "Capturing records of Lambda asynchronous invocations") or, with none
  or without the permission, drops it. PutFunctionEventInvokeConfig refuses an SQS destination the
  execution role may not send to ("The provided execution role does not have permissions to call
  SendMessage on SQS"; elastic/beats#13963).
- ECS: RunTask with `assignPublicIp` ENABLED on EC2 (launch type EC2, or an Auto Scaling group
  capacity provider): "Assign public IP is not supported for this launch type."
  (aws/amazon-ecs-cli#627, aws/aws-cdk#13348, aws/containers-roadmap#450).
- SNS (issue 23, notifications): Publish with a subject SNS refuses ("Invalid parameter: Subject":
  ASCII printable only, no line break or control character, starting with a letter, digit or
  punctuation, at most 100 characters; moto checks the length only); Subscribe with an endpoint
  its protocol does not take ("Endpoint must match the specified protocol" for http/https, "Email
  address", "Lambda endpoint ARN"; moto checks SQS's and SMS's only). And a fact moto leaves out:
  an e-mail or HTTP(S) subscription awaits its subscriber's confirmation (listed with the ARN
  "PendingConfirmation", delivered nothing) until `confirm(topic_arn, endpoint)`, as the link in
  SNS's e-mail or SubscribeURL does (SNS Developer Guide, "Confirming the subscription").
- ECS RunTask's tags: propagateTags SERVICE (a service's option: the API reference says RunTask
  answers an error for it; the message here is ours, AWS's is not documented), and a task whose own
  tags and those propagated from its task definition pass 50 ("Tags: a maximum of 50 per resource",
  InvalidParameterException). And, a fact moto leaves out, propagateTags TASK_DEFINITION copies the
  task definition's tags onto the task (moto ignores the parameter), so tests read a task's tags
  as AWS would give them.
- Not a refusal, a fact moto leaves out (NETSEC): a region's default VPC has an internet gateway
  on its main route table (Amazon VPC User Guide, "Default VPCs"), which the deploy engine reads
  to give tasks a public IP (yunpipe.local.moto_patches.default_vpc_routes_to_internet, entered by
  active(), so bare `mock_aws()` tests have it too).

Time comes from a `Clock`: real by default; `Clock(manual=True)` only moves when something
sleeps on it, so a test can wait out AWS's 60 s without waiting.
"""
from __future__ import annotations

import contextlib
import datetime
import functools
import inspect
import json
import os
import re
import threading
import time
import urllib.parse
import uuid
from collections.abc import Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import Any
from unittest import mock
from urllib.parse import unquote_plus

import moto.s3.notifications as s3_notifications
from botocore.awsrequest import AWSResponse
from botocore.handlers import BUILTIN_HANDLERS
from moto.autoscaling.exceptions import ValidationError
from moto.autoscaling.models import AutoScalingBackend, autoscaling_backends
from moto.awslambda.exceptions import InvalidParameterValueException, LambdaClientError
from moto.awslambda.models import LambdaBackend, lambda_backends
from moto.core import DEFAULT_ACCOUNT_ID
from moto.core.botocore_stubber import MockRawResponse
from moto.ec2.models import ec2_backends
from moto.ecs.exceptions import EcsClientException, InvalidParameterException
from moto.ecs.models import EC2ContainerServiceBackend, Task
from moto.ecs.responses import ActionResult, EC2ContainerServiceResponse
from moto.iam.exceptions import InvalidInput, LimitExceededException
from moto.iam.models import IAMBackend, iam_backends
from moto.s3.exceptions import S3ClientError
from moto.s3.models import S3Backend
from moto.sns.exceptions import SNSInvalidParameter
from moto.sns.models import SNSBackend, Subscription, sns_backends
from moto.sqs.exceptions import InvalidParameterValue, SQSException
from moto.sqs.models import SQSBackend, sqs_backends

from yunpipe.local.lambda_host import LambdaHost
from yunpipe.local.moto_patches import default_vpc_routes_to_internet
from yunpipe.runtime.contract import FARGATE_CAPACITY_PROVIDERS

AMBIGUOUS = ("Configuration is ambiguously defined. Cannot have overlapping suffixes in two rules if the prefixes "
             "are overlapping for the same event type.")
UNVALIDATED = "Unable to validate the following destination configurations"
ROLE_NOT_ASSUMABLE = "The role defined for the function cannot be assumed by Lambda."
QUEUE_DELETED_RECENTLY = ("You must wait 60 seconds after deleting a queue before you can create another with the "
                          "same name.")
MIN_UNRESERVED = 100
ECS_ROLE_MISSING = "ECS Service Linked Role does not exist. Please create a Service linked role for ECS and try again."
ECS_ROLE_NOT_ASSUMABLE = "Unable to assume the service linked role. Please verify that the ECS service linked role exists."
CPU_ABOVE_LIMIT = "The requested CPU configuration is above your limit"
TASKS_LIMIT = ("You've reached the limit on the number of tasks you can run concurrently. For more information, see "
               "the Troubleshooting section of the Amazon ECS Developer Guide.")
MAX_VISIBILITY = 43200
DESTINATION_NOT_PERMITTED = "The provided execution role does not have permissions to call SendMessage on SQS"
# Lambda's default (and longest) maximum event age.
MAX_EVENT_AGE_SECONDS = 21600
PROVIDER_EXISTS = ("The specified capacity provider already exists. To change the configuration of an existing capacity "
                   "provider, update the capacity provider.")

# (cpu units, memory MiB allowed), from AWS's "task-cpu-memory-error" table.
FARGATE_PAIRS = {
    256: {512, 1024, 2048},
    512: set(range(1024, 4097, 1024)),
    1024: set(range(2048, 8193, 1024)),
    2048: set(range(4096, 16385, 1024)),
    4096: set(range(8192, 30721, 1024)),
    8192: set(range(16384, 61441, 4096)),
    16384: set(range(32768, 122881, 8192)),
}
# moto's parsed notification XML: configuration kind -> the field holding its destination ARN.
DESTINATIONS = {"CloudFunctionConfiguration": "CloudFunction", "QueueConfiguration": "Queue",
                "TopicConfiguration": "Topic"}


@dataclass
class Clock:
    """Seconds, from the real clock or (manual) from the sleeps made on it."""

    manual: bool = False
    offset: float = 0.0

    def time(self) -> float:
        return self.offset if self.manual else time.monotonic()

    def sleep(self, seconds: float) -> None:
        if self.manual:
            self.offset += seconds
        else:
            time.sleep(seconds)


@dataclass(frozen=True)
class Refusal:
    rule: str
    detail: str


def _as_list(value: Any) -> list:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def _events_overlap(first: str, second: str) -> bool:
    # "s3:ObjectCreated:*" covers every "s3:ObjectCreated:..." event.
    def covers(wide: str, narrow: str) -> bool:
        return wide == narrow or (wide.endswith(":*") and narrow.startswith(wide[:-1]))
    return covers(first, second) or covers(second, first)


def _filters(entry: dict) -> tuple[str, str]:
    rules = _as_list(((entry.get("Filter") or {}).get("S3Key") or {}).get("FilterRule"))
    values = {r["Name"].lower(): r["Value"] for r in rules}
    return values.get("prefix", ""), values.get("suffix", "")


def notification_entries(configuration: dict) -> list[dict]:
    """moto's parsed configuration as flat entries: id, kind, arn, events, prefix, suffix."""
    entries = []
    for kind, arn_field in DESTINATIONS.items():
        for entry in _as_list(configuration.get(kind)):
            prefix, suffix = _filters(entry)
            entries.append({"id": entry.get("Id", ""), "kind": kind, "arn": entry[arn_field],
                            "events": _as_list(entry.get("Event")), "prefix": prefix, "suffix": suffix})
    return entries


def overlapping(entries: list[dict]) -> tuple[dict, dict] | None:
    """The first two entries S3 would find ambiguous: a shared event type, and prefixes and
    suffixes of which one starts (ends) the other."""
    for index, first in enumerate(entries):
        for second in entries[index + 1:]:
            if (any(_events_overlap(a, b) for a in first["events"] for b in second["events"])
                    and (first["prefix"].startswith(second["prefix"]) or second["prefix"].startswith(first["prefix"]))
                    and (first["suffix"].endswith(second["suffix"]) or second["suffix"].endswith(first["suffix"]))):
                return first, second
    return None


def _statements(policy: str | None) -> list[dict]:
    if not policy:
        return []
    return _as_list(json.loads(policy).get("Statement"))


def _allows_s3(statement: dict, action: str, bucket_arn: str) -> bool:
    principal = statement.get("Principal")
    services = _as_list(principal.get("Service")) if isinstance(principal, dict) else [principal]
    actions = _as_list(statement.get("Action"))
    source = None
    for operator in ("ArnLike", "ArnEquals", "StringEquals", "StringLike"):
        conditions = (statement.get("Condition") or {}).get(operator) or {}
        source = source or next((v for k, v in conditions.items() if k.lower() == "aws:sourcearn"), None)
    return (statement.get("Effect") == "Allow" and "s3.amazonaws.com" in services
            and (action in actions or "*" in actions or f"{action.split(':')[0]}:*" in actions)
            and source in (None, bucket_arn))


@dataclass
class StrictAws:
    """Patches moto while entered; `refusals` lists every call it refused."""

    clock: Clock = field(default_factory=Clock)
    role_propagation_seconds: float = 8.0
    queue_reuse_seconds: float = 60.0
    lambda_concurrency_limit: int = 1000
    fresh_account: bool = True
    service_linked_role_propagation_seconds: float = 5.0
    permission_propagation_seconds: float = 5.0
    capacity_provider_reuse_seconds: float = 30.0
    instance_profile_propagation_seconds: float = 30.0
    # Starting tasks (issue 20, items 4, 5, 10): see _placement_patches.
    fargate_vcpu_limit: float | None = None
    unverified_account: bool = False
    ecs_registered_memory_percent: float = 97.5
    refusals: list[Refusal] = field(default_factory=list)
    _roles_created: dict[str, float] = field(default_factory=dict)
    _queues_deleted: dict[tuple[str, str, str], float] = field(default_factory=dict)
    _permissions_added: dict[tuple[str, str, str], float] = field(default_factory=dict)
    _providers_deleted: dict[tuple[str, str, str], float] = field(default_factory=dict)
    _profiles_created: dict[tuple[str, str], float] = field(default_factory=dict)
    _receipts: dict[str, float] = field(default_factory=dict)
    _run_task_failures: threading.local = field(default_factory=threading.local)
    _throttled: dict[str, int] = field(default_factory=dict)
    _throttle_lock: threading.Lock = field(default_factory=threading.Lock)

    def refuse(self, rule: str, detail: str) -> None:
        self.refusals.append(Refusal(rule, detail))

    def rules_fired(self) -> set[str]:
        return {r.rule for r in self.refusals}

    def _storage_patches(self) -> list[Any]:
        """The checks on S3 notifications, IAM roles, Lambda functions and SQS queues."""
        layer = self
        originals = {
            "notify": S3Backend.put_bucket_notification_configuration,
            "create_role": IAMBackend.create_role,
            "create_function": LambdaBackend.create_function,
            "update_configuration": LambdaBackend.update_function_configuration,
            "create_queue": SQSBackend.create_queue,
            "delete_queue": SQSBackend.delete_queue,
        }

        def put_bucket_notification_configuration(backend, bucket_name, configuration):
            layer.check_notifications(bucket_name, configuration)
            return originals["notify"](backend, bucket_name, configuration)

        def create_role(backend, *args, **kwargs):
            role = originals["create_role"](backend, *args, **kwargs)
            layer._roles_created[role.arn] = layer.clock.time()
            return role

        def create_function(backend, spec):
            layer.check_role(spec.get("Role", ""))
            return originals["create_function"](backend, spec)

        def update_function_configuration(backend, function_name, qualifier, body):
            if "Role" in body:
                layer.check_role(body["Role"])
            return originals["update_configuration"](backend, function_name, qualifier, body)

        def create_queue(backend, name, *args, **kwargs):
            deleted = layer._queues_deleted.get((backend.account_id, backend.region_name, name))
            if deleted is not None and layer.clock.time() - deleted < layer.queue_reuse_seconds:
                layer.refuse("sqs-queue-deleted-recently", name)
                raise SQSException("AWS.SimpleQueueService.QueueDeletedRecently", QUEUE_DELETED_RECENTLY)
            return originals["create_queue"](backend, name, *args, **kwargs)

        def delete_queue(backend, name):
            originals["delete_queue"](backend, name)
            layer._queues_deleted[(backend.account_id, backend.region_name, name)] = layer.clock.time()

        return [
            mock.patch.object(S3Backend, "put_bucket_notification_configuration", put_bucket_notification_configuration),
            mock.patch.object(IAMBackend, "create_role", create_role),
            mock.patch.object(LambdaBackend, "create_function", create_function),
            mock.patch.object(LambdaBackend, "update_function_configuration", update_function_configuration),
            mock.patch.object(SQSBackend, "create_queue", create_queue),
            mock.patch.object(SQSBackend, "delete_queue", delete_queue),
        ]

    def _settling_patches(self) -> list[Any]:
        """What records when a permission, a service-linked role or an instance profile was made."""
        layer = self
        originals = {
            "add_permission": LambdaBackend.add_permission,
            "linked_role": IAMBackend.create_service_linked_role,
            "create_profile": IAMBackend.create_instance_profile,
        }

        def add_permission(backend, function_name, qualifier, raw):
            added = originals["add_permission"](backend, function_name, qualifier, raw)
            name = function_name.split(":function:")[-1].split(":")[0]
            layer._permissions_added[(backend.account_id, backend.region_name, name)] = layer.clock.time()
            return added

        def create_service_linked_role(backend, service_name, description, suffix):
            taken = layer.service_role(backend.account_id, service_name)
            if taken is not None and not suffix:
                layer.refuse("iam-service-linked-role-taken", service_name)
                raise InvalidInput(f"Service role name {taken.name} has been taken in this account, please try a "
                                   "different suffix.")
            return originals["linked_role"](backend, service_name, description, suffix)

        def create_instance_profile(backend, name, *args, **kwargs):
            profile = originals["create_profile"](backend, name, *args, **kwargs)
            layer._profiles_created[(backend.account_id, name)] = layer.clock.time()
            return profile

        return [
            mock.patch.object(LambdaBackend, "add_permission", add_permission),
            mock.patch.object(IAMBackend, "create_service_linked_role", create_service_linked_role),
            mock.patch.object(IAMBackend, "create_instance_profile", create_instance_profile),
        ]

    def _ecs_patches(self) -> list[Any]:
        """The checks on task definitions, RunTask and capacity providers; tasks get a createdAt."""
        layer = self
        originals = {
            "register": EC2ContainerServiceBackend.register_task_definition,
            "run_task": EC2ContainerServiceBackend.run_task,
            "create_provider": EC2ContainerServiceBackend.create_capacity_provider,
            "delete_provider": EC2ContainerServiceBackend.delete_capacity_provider,
            "create_cluster": EC2ContainerServiceBackend.create_cluster,
            "create_group": AutoScalingBackend.create_auto_scaling_group,
            "task": Task.__init__,
        }
        cluster_signature = inspect.signature(originals["create_cluster"])
        group_signature = inspect.signature(originals["create_group"])
        register_signature = inspect.signature(originals["register"])
        run_task_signature = inspect.signature(originals["run_task"])

        def register_task_definition(backend, *args, **kwargs):
            bound = register_signature.bind(backend, *args, **kwargs).arguments
            layer.check_task_definition(bound)
            return originals["register"](backend, *args, **kwargs)

        @functools.wraps(originals["run_task"])  # keeps the signature for layers over it (moto_patches)
        def run_task(backend, *args, **kwargs):
            bound = run_task_signature.bind(backend, *args, **kwargs).arguments
            cluster = backend._get_cluster(bound["cluster_str"])
            layer.check_capacity_providers(cluster.name, cluster.capacity_providers or [],
                                           bound.get("capacity_provider_strategy") or [])
            return originals["run_task"](backend, *args, **kwargs)

        def create_capacity_provider(backend, name, asg_details, tags):
            layer.check_ecs_role_exists(backend.account_id, name)
            layer.check_provider_name_free(backend, name)
            layer.check_auto_scaling_group(backend, name, asg_details.get("autoScalingGroupArn", ""))
            return originals["create_provider"](backend, name, asg_details, tags)

        def delete_capacity_provider(backend, name_or_arn):
            provider = backend._get_provider(name_or_arn)
            if provider is not None:
                layer.check_provider_detached(backend, provider.name)
            deleted = originals["delete_provider"](backend, name_or_arn)
            layer._providers_deleted[(backend.account_id, backend.region_name, deleted.name)] = layer.clock.time()
            return deleted

        def create_cluster(backend, *args, **kwargs):
            bound = cluster_signature.bind(backend, *args, **kwargs).arguments
            if bound.get("capacity_providers"):
                layer.check_ecs_role_assumable(backend.account_id, bound["cluster_name"])
            return originals["create_cluster"](backend, *args, **kwargs)

        def create_auto_scaling_group(backend, *args, **kwargs):
            bound = group_signature.bind(backend, *args, **kwargs).arguments
            layer.check_instance_profile_settled(backend, bound["name"], bound.get("launch_template") or {})
            return originals["create_group"](backend, *args, **kwargs)

        def task(task_self, *args, **kwargs):
            originals["task"](task_self, *args, **kwargs)
            # moto's serializer sends the attribute as the task's createdAt.
            task_self.created_at = datetime.datetime.now(datetime.timezone.utc)

        return [
            mock.patch.object(Task, "__init__", task),
            mock.patch.object(EC2ContainerServiceBackend, "register_task_definition", register_task_definition),
            mock.patch.object(EC2ContainerServiceBackend, "run_task", run_task),
            mock.patch.object(EC2ContainerServiceBackend, "create_capacity_provider", create_capacity_provider),
            mock.patch.object(EC2ContainerServiceBackend, "delete_capacity_provider", delete_capacity_provider),
            mock.patch.object(EC2ContainerServiceBackend, "create_cluster", create_cluster),
            mock.patch.object(AutoScalingBackend, "create_auto_scaling_group", create_auto_scaling_group),
        ]

    def _async_patches(self) -> list[Any]:
        """Lambda's asynchronous invocations: throttled ones end in the on-failure destination or
        nowhere. Both ways in are wrapped: moto's S3 -> Lambda delivery (in-process moto) and the
        local cloud's Lambda host, which replaces that delivery (and serves EventBridge, Invoke
        and schedules) once it starts."""
        layer = self
        originals = {
            "put_config": LambdaBackend.put_function_event_invoke_config,
            "deliver": s3_notifications._invoke_awslambda,
            "submit": LambdaHost._submit,
        }

        def put_function_event_invoke_config(backend, function_name, config):
            layer.check_destination(backend.get_function(function_name), config)
            return originals["put_config"](backend, function_name, config)

        def invoke_awslambda(account_id, event_body, fn_arn, region_name):
            try:
                function = lambda_backends[account_id][region_name].get_function(fn_arn)
            except LambdaClientError:
                function = None
            if function is None or not layer.throttled(function, event_body):
                originals["deliver"](account_id, event_body, fn_arn, region_name)

        def submit(host, function, event, trigger, **retry):
            if not layer.throttled(function, event):
                return originals["submit"](host, function, event, trigger, **retry)
            done: Future = Future()
            done.set_exception(RuntimeError(f"TooManyRequestsException: {function.function_name} is throttled"))
            return done

        return [
            mock.patch.object(LambdaBackend, "put_function_event_invoke_config", put_function_event_invoke_config),
            mock.patch.object(s3_notifications, "_invoke_awslambda", invoke_awslambda),
            mock.patch.object(LambdaHost, "_submit", submit),
        ]

    # ------------------------------------------------------------------ network (NETSEC)

    PUBLIC_IP_ON_EC2 = "Assign public IP is not supported for this launch type."

    def _network_patches(self) -> list:
        """RunTask's public IP on EC2 (checked on the request, where no other rule wraps); and,
        not a refusal, the default VPC as AWS makes it (an internet gateway on its main route
        table), which the deploy engine reads to give tasks a public IP (engine/network.py)."""
        layer = self

        def run_task(original):
            def run(response):
                network = (response._get_param("networkConfiguration") or {}).get("awsvpcConfiguration") or {}
                layer.check_public_ip(response._get_param("launchType"),
                                      response._get_param("capacityProviderStrategy") or [], network)
                return original(response)
            return run

        return [default_vpc_routes_to_internet(), _wrapping(EC2ContainerServiceResponse, "run_task", run_task)]

    def check_public_ip(self, launch_type: str | None, strategy: list, network: dict) -> None:
        """A public IP is Fargate's alone: RunTask on EC2 (the launch type, or an Auto Scaling
        group capacity provider) with assignPublicIp ENABLED is refused."""
        on_ec2 = launch_type == "EC2" or any(s.get("capacityProvider") not in FARGATE_CAPACITY_PROVIDERS
                                             for s in strategy)
        if on_ec2 and network.get("assignPublicIp") == "ENABLED":
            self.refuse("ecs-public-ip-on-ec2", f"{launch_type or strategy}")
            raise InvalidParameterException(self.PUBLIC_IP_ON_EC2)

    def _tag_patches(self) -> list[Any]:
        """RunTask's propagateTags and its tag limit; the task definition's tags copied onto its tasks."""
        layer = self

        def run_task(original):
            def run(response):
                propagate = response._get_param("propagateTags") or "NONE"
                own = response._get_param("tags") or []
                inherited: list[dict] = []
                if propagate == "TASK_DEFINITION":
                    definition = response.ecs_backend.describe_task_definition(response._get_param("taskDefinition"))
                    inherited = [t for t in definition.tags or [] if t["key"] not in {o["key"] for o in own}]
                layer.check_run_task_tags(propagate, own + inherited)
                result = original(response)
                for task in result.result["tasks"] if inherited else []:
                    task.tags = [*(task.tags or []), *inherited]
                return result
            return run

        return [_wrapping(EC2ContainerServiceResponse, "run_task", run_task)]

    def check_run_task_tags(self, propagate: str, tags: list[dict]) -> None:
        if propagate == "SERVICE":
            self.refuse("ecs-run-task-propagate-service", propagate)
            raise InvalidParameterException("propagateTags SERVICE is only for tasks a service starts; RunTask "
                                            "takes TASK_DEFINITION or NONE")
        if len(tags) > ECS_TAGS_PER_RESOURCE:
            self.refuse("ecs-run-task-too-many-tags", str(len(tags)))
            raise InvalidParameterException(f"Tags: a maximum of {ECS_TAGS_PER_RESOURCE} per resource, "
                                            f"got {len(tags)}")

    @contextlib.contextmanager
    def active(self) -> Iterator[StrictAws]:
        patches = [
            *self._storage_patches(),
            *self._settling_patches(),
            *self._ecs_patches(),
            *self._placement_patches(),
            *self._async_patches(),
            *self._guard_patches(),
            *self._network_patches(),
            *self._sns_patches(),
            *self._tag_patches(),
            # moto's own rule for reserved concurrency (awslambda/models.py put_function_concurrency).
            mock.patch.dict(os.environ, {"MOTO_LAMBDA_CONCURRENCY_QUOTA": str(self.lambda_concurrency_limit)}),
        ]
        handler = ("before-send.lambda.GetAccountSettings", self.account_settings)
        with contextlib.ExitStack() as stack:
            for patch in patches:
                stack.enter_context(patch)
            # Clients made from here on answer GetAccountSettings (moto has no such route).
            BUILTIN_HANDLERS.insert(0, handler)
            stack.callback(BUILTIN_HANDLERS.remove, handler)
            yield self

    # The rules, each callable on its own.

    def check_notifications(self, bucket: str, configuration: dict) -> None:
        entries = notification_entries(configuration)
        pair = overlapping(entries)
        if pair:
            self.refuse("s3-overlapping-notifications", f"{bucket}: {pair[0]['id']} and {pair[1]['id']}")
            raise S3ClientError("InvalidArgument", AMBIGUOUS)
        for entry in entries:
            if not self._destination_allows(entry, f"arn:aws:s3:::{bucket}"):
                self.refuse("s3-unvalidated-destination", f"{bucket}: {entry['id']} -> {entry['arn']}")
                raise S3ClientError("InvalidArgument", UNVALIDATED)
            if not self._permission_visible(entry):
                self.refuse("s3-permission-not-visible-yet", f"{bucket}: {entry['id']} -> {entry['arn']}")
                raise S3ClientError("InvalidArgument", UNVALIDATED)

    def _destination_allows(self, entry: dict, bucket_arn: str) -> bool:
        _, _, _service, region, account, *rest = entry["arn"].split(":")
        if entry["kind"] == "CloudFunctionConfiguration":
            backend = lambda_backends[account][region]
            try:
                # The wire format wraps the policy document: {"Policy": "<json>", "RevisionId": ...}.
                policy = json.loads(backend.get_policy(rest[-1], None))["Policy"]
            except LambdaClientError:  # no such function, or no policy at all: S3 cannot validate it
                return False
            return any(_allows_s3(s, "lambda:InvokeFunction", bucket_arn) for s in _statements(policy))
        if entry["kind"] == "QueueConfiguration":
            queue = sqs_backends[account][region].queues.get(rest[-1])
            return queue is not None and any(_allows_s3(s, "sqs:SendMessage", bucket_arn)
                                             for s in _statements(queue.attributes.get("Policy")))
        return True  # SNS topics are not used by yunpipe; left as moto has them

    def _permission_visible(self, entry: dict) -> bool:
        """S3 sees a Lambda permission only some seconds after AddPermission."""
        if entry["kind"] != "CloudFunctionConfiguration":
            return True
        _, _, _service, region, account, *rest = entry["arn"].split(":")
        added = self._permissions_added.get((account, region, rest[-1]))
        return added is None or self.clock.time() - added >= self.permission_propagation_seconds

    def check_role(self, role_arn: str) -> None:
        created = self._roles_created.get(role_arn)
        if created is not None and self.clock.time() - created < self.role_propagation_seconds:
            self.refuse("lambda-role-not-assumable-yet", role_arn)
            raise InvalidParameterValueException(ROLE_NOT_ASSUMABLE)

    def service_role(self, account: str, service: str) -> Any:
        """The account's service-linked role for `service` in moto's IAM, or None."""
        path = f"/aws-service-role/{service}/"
        return next((r for r in iam_backends[account]["aws"].roles.values() if r.path == path), None)

    def check_ecs_role_exists(self, account: str, provider: str) -> None:
        if self.fresh_account and self.service_role(account, "ecs.amazonaws.com") is None:
            self.refuse("ecs-service-linked-role-missing", provider)
            raise EcsClientException(ECS_ROLE_MISSING)

    def check_ecs_role_assumable(self, account: str, cluster: str) -> None:
        """CreateCluster creates ECS's role when missing, and cannot assume a new one yet."""
        if not self.fresh_account:
            return
        role = self.service_role(account, "ecs.amazonaws.com")
        if role is None:
            role = iam_backends[account]["aws"].create_service_linked_role("ecs.amazonaws.com", "", "")
        created = self._roles_created.get(role.arn)
        if created is not None and self.clock.time() - created < self.service_linked_role_propagation_seconds:
            self.refuse("ecs-service-linked-role-not-assumable-yet", cluster)
            raise InvalidParameterException(ECS_ROLE_NOT_ASSUMABLE)

    def check_provider_name_free(self, backend, provider: str) -> None:
        deleted = self._providers_deleted.get((backend.account_id, backend.region_name, provider))
        if deleted is not None and self.clock.time() - deleted < self.capacity_provider_reuse_seconds:
            self.refuse("ecs-capacity-provider-name-in-use", provider)
            raise EcsClientException(PROVIDER_EXISTS)

    def check_instance_profile_settled(self, backend, group: str, template: dict) -> None:
        ec2 = ec2_backends[backend.account_id][backend.region_name]
        found = ec2.launch_templates.get(template.get("LaunchTemplateId")
                                         or ec2.launch_template_name_to_ids.get(template.get("LaunchTemplateName")))
        if found is None:  # no such template: moto answers as it does
            return
        name = (found.latest_version().data.get("IamInstanceProfile") or {}).get("Name")
        created = self._profiles_created.get((backend.account_id, name or ""))
        if created is not None and self.clock.time() - created < self.instance_profile_propagation_seconds:
            self.refuse("autoscaling-instance-profile-not-valid-yet", f"{group}: {name}")
            raise ValidationError(f"You must use a valid fully-formed launch template. Value ({name}) for parameter "
                                  "iamInstanceProfile.name is invalid. Invalid IAM Instance Profile name")

    def check_capacity_providers(self, cluster: str, associated: list[str], strategy: list[dict]) -> None:
        unknown = [item["capacityProvider"] for item in strategy if item["capacityProvider"] not in associated]
        if unknown:
            self.refuse("ecs-capacity-provider-not-associated", f"{cluster}: {', '.join(unknown)}")
            raise InvalidParameterException(
                "The specified capacity provider strategy cannot contain a capacity provider that is not associated "
                "with the cluster. Associate the capacity provider with the cluster or specify a valid capacity "
                "provider and try again.")

    def check_auto_scaling_group(self, backend, provider: str, group: str) -> None:
        """ECS takes the group's ARN or name, and refuses a group that does not exist."""
        groups = autoscaling_backends[backend.account_id][backend.region_name].autoscaling_groups
        if not any(group in (name, g.arn) for name, g in groups.items()):
            self.refuse("ecs-capacity-provider-no-group", f"{provider}: {group}")
            raise InvalidParameterException(f"The specified Auto Scaling group ARN {group} is not valid. Specify a "
                                            "valid Auto Scaling group ARN and try again.")

    def check_provider_detached(self, backend, provider: str) -> None:
        clusters = [c.name for c in backend.clusters.values()
                    if c.status == "ACTIVE" and provider in (c.capacity_providers or [])]
        if clusters:
            self.refuse("ecs-capacity-provider-in-use", f"{provider}: {', '.join(clusters)}")
            raise EcsClientException(f"The specified capacity provider is in use by cluster {clusters[0]}. Disassociate "
                                     "the capacity provider from the cluster and try again.")

    def check_task_definition(self, registration: dict) -> None:
        storage = registration.get("ephemeral_storage")
        if storage is not None and not 21 <= int(storage.get("sizeInGiB", 0)) <= 200:
            self.refuse("ecs-ephemeral-storage", str(storage))
            raise EcsClientException("The ephemeral storage size must be between 21 and 200 GiB.")
        if "FARGATE" not in (registration.get("requires_compatibilities") or []):
            return
        gpus = [r for c in registration.get("container_definitions") or [] for r in c.get("resourceRequirements") or []
                if r.get("type") == "GPU"]
        if gpus:
            self.refuse("ecs-fargate-gpu", str(gpus))
            raise EcsClientException("Tasks using the Fargate launch type do not support GPU resource requirements.")
        if registration.get("network_mode") != "awsvpc":
            self.refuse("ecs-fargate-network-mode", str(registration.get("network_mode")))
            raise EcsClientException("Fargate only supports network mode 'awsvpc'.")
        cpu, memory = registration.get("cpu"), registration.get("memory")
        if not (str(cpu).isdigit() and str(memory).isdigit() and int(memory) in FARGATE_PAIRS.get(int(cpu), ())):
            self.refuse("ecs-fargate-size", f"{cpu} CPU, {memory} memory")
            raise EcsClientException(f"No Fargate configuration exists for given values: {cpu} CPU, {memory} memory. "
                                     "See the Amazon ECS documentation for the valid values.")

    def throttle(self, function: str, events: int = 1) -> None:
        """The next `events` asynchronous invocations of `function` (its name) that report new
        objects stay throttled beyond their maximum event age. Scheduled events pass."""
        with self._throttle_lock:
            self._throttled[function] = self._throttled.get(function, 0) + events

    def throttled(self, function: Any, event: dict) -> bool:
        """Whether this invocation is throttled; if so, its fate is settled as Lambda's: once its
        maximum age is out (on a manual clock, the clock moves on by it; on the real one, at once)
        its record goes to the on-failure destination, or it is dropped."""
        if not (event.get("Records") or event.get("source") == "aws.s3"):
            return False
        with self._throttle_lock:
            left = self._throttled.get(function.function_name, 0)
            if not left:
                return False
            self._throttled[function.function_name] = left - 1
        config = function.event_invoke_config[-1].config if function.event_invoke_config else {}
        if self.clock.manual:
            self.clock.sleep(int(config.get("MaximumEventAgeInSeconds", MAX_EVENT_AGE_SECONDS)))
        destination = ((config.get("DestinationConfig") or {}).get("OnFailure") or {}).get("Destination", "")
        # S3 notifications carry keys form-encoded; EventBridge events as stored.
        keys = ([unquote_plus((r.get("s3") or {}).get("object", {}).get("key", "")) for r in event.get("Records") or []]
                or [((event.get("detail") or {}).get("object") or {}).get("key", "")])
        what = f"{function.function_name}: {', '.join(keys)}"
        if not destination or not self._role_may_send(function, destination):
            self.refuse("lambda-throttled-event-dropped", what)
            return True
        record = {"version": "1.0",
                  "timestamp": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="milliseconds"),
                  "requestContext": {"requestId": str(uuid.uuid4()), "functionArn": f"{function.function_arn}:$LATEST",
                                     "condition": "EventAgeExceeded", "approximateInvokeCount": 0},
                  "requestPayload": event}
        _, _, _, region, account, queue = destination.split(":", 5)
        sqs_backends[account][region].send_message(queue, json.dumps(record))
        self.refuse("lambda-throttled-event-to-destination", f"{what} -> {destination}")
        return True

    def check_destination(self, function: Any, config: dict) -> None:
        destination = ((config.get("DestinationConfig") or {}).get("OnFailure") or {}).get("Destination", "")
        if destination.split(":")[2:3] == ["sqs"] and not self._role_may_send(function, destination):
            self.refuse("lambda-destination-not-permitted", f"{function.function_name} -> {destination}")
            raise InvalidParameterValueException(DESTINATION_NOT_PERMITTED)

    def _role_may_send(self, function: Any, queue_arn: str) -> bool:
        """Whether the function's execution role has an inline policy allowing SendMessage to the queue."""
        account = function.function_arn.split(":")[4]
        role = next((r for r in iam_backends[account]["aws"].roles.values() if r.arn == function.role), None)
        if role is None:
            return False
        for document in role.policies.values():
            parsed = json.loads(document) if isinstance(document, str) else document
            for statement in _as_list(parsed.get("Statement")):
                if (statement.get("Effect") == "Allow"
                        and any(fnmatchcase("sqs:sendmessage", a.lower()) for a in _as_list(statement.get("Action")))
                        and any(fnmatchcase(queue_arn, r) for r in _as_list(statement.get("Resource")))):
                    return True
        return False

    def account_settings(self, request, **_kwargs) -> AWSResponse:
        region = request.context.get("client_region") or "us-east-1"
        backend = lambda_backends[DEFAULT_ACCOUNT_ID][region]
        reserved = sum(int(f.reserved_concurrency or 0) for f in backend.list_functions())
        body = {"AccountLimit": {"ConcurrentExecutions": self.lambda_concurrency_limit,
                                 "UnreservedConcurrentExecutions": self.lambda_concurrency_limit - reserved},
                "AccountUsage": {"FunctionCount": len(backend.list_functions())}}
        return AWSResponse(request.url, 200, {"Content-Type": "application/json"}, MockRawResponse(json.dumps(body)))

    # ------------------------------------------------------------------ starting tasks, holding messages
    # Issue 20, items 4, 5, 9, 10 (the module docstring says each rule's source).

    def _placement_patches(self) -> list[Any]:
        """RunTask's failures (Fargate vCPU limit, an unverified account, an instance type too
        small), Auto Scaling groups in zones without their instance type, SQS's 12 h. Each wraps
        what is in place when it is entered, so other layers over the same calls stay."""
        layer = self
        group_signature = inspect.signature(AutoScalingBackend.create_auto_scaling_group)
        run_task_signature = inspect.signature(EC2ContainerServiceBackend.run_task)

        def run_task(original):
            """Starts only the tasks that can start; keeps ECS's failures of the others for the response."""
            @functools.wraps(original)  # keeps the signature for layers over it
            def run(backend, *args, **kwargs):
                bound = run_task_signature.bind(backend, *args, **kwargs)
                arguments = bound.arguments
                failures = layer.task_failures(backend, arguments["task_definition_str"], arguments.get("launch_type"),
                                               arguments.get("capacity_provider_strategy") or [], arguments["count"])
                layer._run_task_failures.failures = failures
                if len(failures) >= arguments["count"]:
                    return []
                arguments["count"] -= len(failures)
                return original(*bound.args, **bound.kwargs)
            return run

        def run_task_response(original):
            """moto's RunTask response always says "failures": []; this adds the layer's."""
            def respond(response):
                layer._run_task_failures.failures = []
                result = original(response)
                failures = layer._run_task_failures.failures
                if not failures:
                    return result
                return ActionResult({**result.result, "failures": [*result.result["failures"], *failures]})
            return respond

        def create_auto_scaling_group(original):
            def create(backend, *args, **kwargs):
                bound = group_signature.bind(backend, *args, **kwargs).arguments
                layer.check_group_zones(backend, bound["name"], bound.get("launch_template") or {},
                                        bound.get("vpc_zone_identifier") or "")
                return original(backend, *args, **kwargs)
            return create

        return [
            _wrapping(EC2ContainerServiceBackend, "run_task", run_task),
            _wrapping(EC2ContainerServiceResponse, "run_task", run_task_response),
            _wrapping(AutoScalingBackend, "create_auto_scaling_group", create_auto_scaling_group),
            *self._visibility_patches(),
        ]

    def _visibility_patches(self) -> list[Any]:
        """SQS's 12 h: when each receipt handle was given, and the extensions asked of it."""
        layer = self

        def receive_message(original):
            def receive(backend, *args, **kwargs):
                messages = original(backend, *args, **kwargs)
                for message in messages:
                    layer._receipts[message.receipt_handle] = layer.clock.time()
                return messages
            return receive

        def change_message_visibility(original):
            def change(backend, queue_name, receipt_handle, visibility_timeout):
                layer.check_visibility(receipt_handle, int(visibility_timeout))
                return original(backend, queue_name, receipt_handle, visibility_timeout)
            return change

        return [
            _wrapping(SQSBackend, "receive_message", receive_message),
            _wrapping(SQSBackend, "change_message_visibility", change_message_visibility),
        ]

    def task_failures(self, backend, task_definition: str, launch_type: str | None, strategy: list[dict],
                      count: int) -> list[dict]:
        """ECS's failures for the tasks of a RunTask that cannot start (none: every one starts)."""
        try:
            definition = backend.describe_task_definition(task_definition)
        except Exception:  # noqa: BLE001 - an unknown definition: moto answers as it does
            return []
        provider = strategy[0]["capacityProvider"] if strategy else ""
        if provider in ("FARGATE", "FARGATE_SPOT") or (not provider and (launch_type or "EC2") == "FARGATE"):
            return self._fargate_failures(backend, definition, provider, count)
        if provider:
            return self._instance_failures(backend, definition, provider, count)
        return []

    def _fargate_failures(self, backend, definition, provider: str, count: int) -> list[dict]:
        if self.unverified_account:
            self.refuse("ecs-fargate-unverified-account", definition.family)
            return [{"reason": TASKS_LIMIT}] * count
        if self.fargate_vcpu_limit is None or provider == "FARGATE_SPOT":
            return []
        vcpus = int(definition.cpu or 0) / 1024
        room = self.fargate_vcpu_limit - self.fargate_vcpus_in_use(backend)
        fit = max(0, min(count, int(room // vcpus) if vcpus else count))
        if fit < count:
            self.refuse("ecs-fargate-vcpu-limit", f"{definition.family}: {count - fit} of {count}")
        return [{"reason": CPU_ABOVE_LIMIT}] * (count - fit)

    def fargate_vcpus_in_use(self, backend) -> float:
        """The vCPUs of the account's Fargate on-demand tasks that are not stopped, in the region."""
        total = 0.0
        for tasks in backend.tasks.values():
            for task in tasks.values():
                on_demand = task.capacity_provider_name == "FARGATE" or (
                    task.launch_type == "FARGATE" and task.capacity_provider_name in (None, "", "FARGATE"))
                if on_demand and task.desired_status != "STOPPED":
                    total += int(backend.describe_task_definition(task.task_definition_arn).cpu or 0) / 1024
        return total

    def _instance_failures(self, backend, definition, provider_name: str, count: int) -> list[dict]:
        """RESOURCE:MEMORY or RESOURCE:GPU when one instance of the provider's type is too small."""
        provider = backend._get_provider(provider_name)
        groups = autoscaling_backends[backend.account_id][backend.region_name].autoscaling_groups
        arn = (provider.auto_scaling_group_provider or {}).get("autoScalingGroupArn", "") if provider else ""
        group = next((g for name, g in groups.items() if arn in (name, g.arn)), None)
        template = group.ec2_launch_template if group is not None else None
        kind = template.latest_version().data.get("InstanceType") if template is not None else None
        if not kind:
            return []
        [info] = ec2_backends[backend.account_id][backend.region_name].describe_instance_types([kind])
        registered = int(info["MemoryInfo"]["SizeInMiB"] * self.ecs_registered_memory_percent / 100)
        gpus = sum(g.get("Count", 0) for g in (info.get("GpuInfo") or {}).get("Gpus", []))
        containers = definition.container_definitions
        memory = int(definition.memory or sum(int(c.get("memory") or c.get("memoryReservation") or 0)
                                              for c in containers))
        wanted_gpus = sum(int(r["value"]) for c in containers for r in c.get("resourceRequirements") or []
                          if r.get("type") == "GPU")
        reason = "RESOURCE:MEMORY" if memory > registered else "RESOURCE:GPU" if wanted_gpus > gpus else ""
        if not reason:
            return []
        self.refuse("ecs-instance-too-small", f"{definition.family} on {kind}: {reason}")
        return [{"arn": provider.capacity_provider_arn, "reason": reason}] * count

    def check_group_zones(self, backend, group: str, template: dict, subnets: str) -> None:
        ec2 = ec2_backends[backend.account_id][backend.region_name]
        found = ec2.launch_templates.get(template.get("LaunchTemplateId")
                                         or ec2.launch_template_name_to_ids.get(template.get("LaunchTemplateName")))
        kind = found.latest_version().data.get("InstanceType") if found is not None else None
        if not kind or not subnets:
            return
        offered = sorted(o["Location"] for o in ec2.describe_instance_type_offerings(
            "availability-zone", {"instance-type": [kind]}))
        for subnet in subnets.split(","):
            zone = ec2.get_subnet(subnet.strip()).availability_zone
            if zone not in offered:
                self.refuse("autoscaling-instance-type-not-in-zone", f"{group}: {kind} in {zone}")
                raise ValidationError(
                    f"You must use a valid fully-formed launch template. Your requested instance type ({kind}) is "
                    f"not supported in your requested Availability Zone ({zone}). Please retry your request by not "
                    f"specifying an Availability Zone or choosing {', '.join(offered)}.")

    def check_visibility(self, receipt_handle: str, visibility: int) -> None:
        received = self._receipts.get(receipt_handle)
        if received is not None and self.clock.time() - received + visibility > MAX_VISIBILITY:
            self.refuse("sqs-visibility-beyond-12h", f"{visibility} s at {self.clock.time() - received:.0f} s")
            raise InvalidParameterValue(
                f"Value {visibility} for parameter VisibilityTimeout is invalid. Reason: Total VisibilityTimeout for "
                f"the message is beyond the limit [{MAX_VISIBILITY} seconds]")

    # The cluster's capacity providers, and AWS's static limits (issue 20: GUARDS).

    def _guard_patches(self) -> list[Any]:
        """Size and count limits, and what PutClusterCapacityProviders checks. Each wraps the
        method in place when entered, so it stacks over the checks above on the same methods."""
        return [
            _wrapping(LambdaBackend, "create_function", self._guard_create_function),
            _wrapping(LambdaBackend, "update_function_configuration", self._guard_update_function_configuration),
            _wrapping(IAMBackend, "put_role_policy", self._guard_put_role_policy),
            _wrapping(EC2ContainerServiceBackend, "run_task", self._guard_run_task),
            _wrapping(EC2ContainerServiceResponse, "register_task_definition", self._guard_register_task_definition),
            _wrapping(EC2ContainerServiceBackend, "put_cluster_capacity_providers", self._guard_put_providers),
        ]

    def _guard_create_function(self, original: Any) -> Any:
        def create_function(backend, spec):
            self.check_lambda_environment((spec.get("Environment") or {}).get("Variables") or {})
            return original(backend, spec)
        return create_function

    def _guard_update_function_configuration(self, original: Any) -> Any:
        def update_function_configuration(backend, function_name, qualifier, body):
            if "Environment" in body:
                self.check_lambda_environment((body["Environment"] or {}).get("Variables") or {})
            return original(backend, function_name, qualifier, body)
        return update_function_configuration

    def _guard_put_role_policy(self, original: Any) -> Any:
        def put_role_policy(backend, role_name, policy_name, policy_json):
            self.check_role_policy_size(role_name, policy_json)
            return original(backend, role_name, policy_name, policy_json)
        return put_role_policy

    def _guard_run_task(self, original: Any) -> Any:
        signature = inspect.signature(original)  # moto's own: the layers below keep it

        @functools.wraps(original)  # keeps the signature for layers over it
        def run_task(backend, *args, **kwargs):
            self.check_run_task_count(signature.bind(backend, *args, **kwargs).arguments["count"])
            return original(backend, *args, **kwargs)
        return run_task

    def _guard_register_task_definition(self, original: Any) -> Any:
        def register_task_definition(response):
            self.check_task_definition_size(response.body)  # measured as sent, like ECS
            return original(response)
        return register_task_definition

    def _guard_put_providers(self, original: Any) -> Any:
        def put_cluster_capacity_providers(backend, cluster_name, capacity_providers, default_strategy):
            if capacity_providers:
                self.check_providers_exist(backend, cluster_name, capacity_providers)
                self.check_ecs_role_assumable(backend.account_id, cluster_name)
            return original(backend, cluster_name, capacity_providers, default_strategy)
        return put_cluster_capacity_providers

    def check_lambda_environment(self, variables: dict) -> None:
        measured = json.dumps(variables, separators=(",", ":"))
        if len(measured.encode()) > LAMBDA_ENVIRONMENT_BYTES:
            self.refuse("lambda-environment-too-large", f"{len(measured.encode())} bytes")
            raise InvalidParameterValueException(
                "Lambda was unable to configure your environment variables because the environment variables you "
                f"have provided exceeded the 4KB limit. String measured: {measured}")

    def check_role_policy_size(self, role: str, document: str) -> None:
        characters = len(re.sub(r"\s", "", urllib.parse.unquote(document)))
        if characters > ROLE_POLICY_CHARACTERS:
            self.refuse("iam-role-policy-too-large", f"{role}: {characters} characters")
            raise LimitExceededException(f"Maximum policy size of {ROLE_POLICY_CHARACTERS} bytes exceeded for role {role}")

    def check_run_task_count(self, count: int) -> None:
        if int(count) > RUN_TASK_MAX_COUNT:
            self.refuse("ecs-run-task-count", str(count))
            raise InvalidParameterException(f"Task count can not be greater than {RUN_TASK_MAX_COUNT}")

    def check_task_definition_size(self, body: Any) -> None:
        text = body.decode() if isinstance(body, bytes) else str(body or "{}")
        length = len(json.dumps(json.loads(text), separators=(",", ":")).encode())
        if length > TASK_DEFINITION_BYTES:
            self.refuse("ecs-task-definition-too-large", f"{length} bytes")
            raise EcsClientException(f"Actual length: '{length}'. Max allowed length is '{TASK_DEFINITION_BYTES}' bytes.")

    def check_providers_exist(self, backend, cluster: str, providers: list[str]) -> None:
        """Only existing capacity providers can be associated: the cluster's before theirs."""
        unknown = [p for p in providers if p not in ("FARGATE", "FARGATE_SPOT") and backend._get_provider(p) is None]
        if unknown:
            self.refuse("ecs-capacity-provider-not-found", f"{cluster}: {', '.join(unknown)}")
            raise InvalidParameterException("The specified capacity provider was not found. Specify a valid capacity "
                                            "provider and try again.")


    # SNS: what Subscribe and Publish refuse, and subscriptions awaiting confirmation.

    def _sns_patches(self) -> list[Any]:
        return [
            _wrapping(SNSBackend, "subscribe", self._sns_subscribe),
            _wrapping(SNSBackend, "publish", self._sns_publish),
            _wrapping(Subscription, "publish", self._sns_deliver),
        ]

    def _sns_subscribe(self, original: Any) -> Any:
        def subscribe(backend, topic_arn, endpoint, protocol):
            self.check_sns_endpoint(protocol, endpoint)
            known = backend._find_subscription(topic_arn, endpoint, protocol)
            subscription = original(backend, topic_arn, endpoint, protocol)
            if known is None and protocol in SNS_CONFIRMED_BY_SUBSCRIBER:
                # Read by moto's serializer for ListSubscriptions(ByTopic) before the ARN itself.
                subscription.subscription_arn = SNS_PENDING
                subscription.attributes["PendingConfirmation"] = "true"
            return subscription
        return subscribe

    def _sns_publish(self, original: Any) -> Any:
        signature = inspect.signature(original)

        def publish(backend, *args, **kwargs):
            subject = signature.bind(backend, *args, **kwargs).arguments.get("subject")
            if subject is not None:
                self.check_sns_subject(subject)
            return original(backend, *args, **kwargs)
        return publish

    def _sns_deliver(self, original: Any) -> Any:
        def deliver(subscription, *args, **kwargs):
            if getattr(subscription, "subscription_arn", None) == SNS_PENDING:
                return None  # SNS delivers nothing to a subscription until it is confirmed
            return original(subscription, *args, **kwargs)
        return deliver

    def confirm(self, topic_arn: str, endpoint: str) -> None:
        """The subscriber follows the confirmation link (a person, or an endpoint's code)."""
        arn = topic_arn.split(":")
        backend = sns_backends[arn[4]][arn[3]]
        for subscription in backend.subscriptions.values():
            if subscription.topic.arn == topic_arn and subscription.endpoint == endpoint:
                subscription.__dict__.pop("subscription_arn", None)
                subscription.attributes["PendingConfirmation"] = "false"

    def check_sns_subject(self, subject: str) -> None:
        if not SNS_SUBJECT.match(subject):
            self.refuse("sns-subject", repr(subject))
            raise SNSInvalidParameter("Invalid parameter: Subject")

    def check_sns_endpoint(self, protocol: str, endpoint: str) -> None:
        rule = SNS_ENDPOINTS.get(protocol)
        if rule and not re.match(rule[0], endpoint):
            self.refuse("sns-endpoint", f"{protocol} {endpoint}")
            raise SNSInvalidParameter(f"Invalid parameter: {rule[1]}")


# The limits of the static guards above, each from AWS's quotas pages.
LAMBDA_ENVIRONMENT_BYTES = 4096
ROLE_POLICY_CHARACTERS = 10240
RUN_TASK_MAX_COUNT = 10
ECS_TAGS_PER_RESOURCE = 50
TASK_DEFINITION_BYTES = 65536
# SNS's Publish: "Subjects must be ASCII text that begins with a letter, number, or punctuation mark;
# must not include line breaks or control characters" (API reference), at most 100 of them (moto's
# getmoto/moto#1503: 100 is taken, whatever "less than 100" says).
SNS_SUBJECT = re.compile(r"\A[!-~][ -~]{0,99}\Z")
# Subscribe: the endpoint each protocol takes, and the reason SNS gives for another.
SNS_ENDPOINTS = {
    "http": (r"(?i)http://", "Endpoint must match the specified protocol"),
    "https": (r"(?i)https://", "Endpoint must match the specified protocol"),
    "email": (r"[^@\s]+@[^@\s]+\.[^@\s]+\Z", "Email address"),
    "email-json": (r"[^@\s]+@[^@\s]+\.[^@\s]+\Z", "Email address"),
    "lambda": (r"arn:[^:]+:lambda:[^:]+:\d{12}:function:", "Lambda endpoint ARN"),
}
SNS_CONFIRMED_BY_SUBSCRIBER = ("email", "email-json", "http", "https")
SNS_PENDING = "PendingConfirmation"


@contextlib.contextmanager
def _wrapping(owner: type, name: str, wrap: Any) -> Iterator[None]:
    """Replaces owner.name with wrap(what owner.name is when entered), for as long as entered."""
    with mock.patch.object(owner, name, wrap(getattr(owner, name))):
        yield
