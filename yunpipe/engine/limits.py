"""AWS's size limits on what yunpipe sends, measured as AWS measures them, so that a workflow
which would exceed one is refused while planning (`FILE: FIELD: expected ...`, exit status 2),
before anything is created, instead of failing half-way through a deploy."""
import json
import re
from collections.abc import Mapping
from typing import Any

from yunpipe.engine.kinds.base import QueueUrl
from yunpipe.engine.model import StepModel
from yunpipe.engine.plan import substitute
from yunpipe.engine.target import Target
from yunpipe.errors import InputError
from yunpipe.resolve import ResolvedStep

# Lambda: a function's environment variables, measured as the JSON object of them (Lambda's
# error quotes it: "String measured: {...}"), at most 4 KB (Lambda quotas).
LAMBDA_ENVIRONMENT_BYTES = 4096
# IAM: an inline policy of a role, at most 10,240 characters, white space not counted (IAM quotas).
ROLE_POLICY_CHARACTERS = 10240
# ECS: a task definition as registered, at most 64 KiB (ECS service quotas).
TASK_DEFINITION_BYTES = 65536


def _compact(value: Any, target: Target) -> str:
    # A queue's URL is known once it exists: SQS's form of it stands in, to the byte.
    url = lambda marker: f"https://sqs.{target.region}.amazonaws.com/{target.account_id}/{marker.queue}"  # noqa: E731
    return json.dumps(substitute(value, QueueUrl, url), separators=(",", ":"))


def environment_bytes(variables: Mapping[str, Any], target: Target) -> int:
    return len(_compact(dict(variables), target).encode())


def policy_characters(document: Mapping[str, Any]) -> int:
    return len(re.sub(r"\s", "", json.dumps(document)))


def registration_bytes(registration: Mapping[str, Any], tags: Mapping[str, str], target: Target) -> int:
    # As sent: the registration and its tags (the spec hash tag's value is 32 characters).
    sent = {**registration, "tags": [{"key": k, "value": v} for k, v in tags.items()]
            + [{"key": "yunpipe:spec", "value": "0" * 32}]}
    return len(_compact(sent, target).encode())


def check_step(step: StepModel, resolved: ResolvedStep, source: str, where: str, target: Target) -> None:
    """Refuses a step whose launcher, roles or task definition AWS would refuse for its size;
    each error names what the user can shrink."""
    size = environment_bytes(step.function.environment, target)
    if size > LAMBDA_ENVIRONMENT_BYTES:
        raise InputError(source, where, f"expected a step whose launcher's environment fits Lambda's "
                         f"{LAMBDA_ENVIRONMENT_BYTES} bytes, got {size} bytes: name fewer subnets, security groups "
                         "or joined steps, or use shorter names")
    for role in (step.launcher_role, step.task_role, step.execution_role):
        characters = policy_characters(role.policy)
        if characters > ROLE_POLICY_CHARACTERS:
            raise InputError(source, where, f"expected a step whose role {role.name} has a policy within IAM's "
                             f"{ROLE_POLICY_CHARACTERS} characters, got {characters}: let it read fewer buckets")
    task = step.task_definition
    size = registration_bytes(task.registration, task.tags, target)
    if size > TASK_DEFINITION_BYTES:
        blame = ((source, f"{where}.variables") if resolved.spec.variables
                 else (resolved.record.reference, "user_specified_environment_variables"))
        raise InputError(*blame, f"expected variables that keep the task definition within ECS's "
                         f"{TASK_DEFINITION_BYTES} bytes, got {size} bytes: pass large values in a file instead")
