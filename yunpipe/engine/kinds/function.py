"""Lambda functions: each step's launcher, with one launch at a time where the account allows."""
import base64
import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from yunpipe.aws.reader import NOT_FOUND, Reader
from yunpipe.engine.kinds.base import Kind, Named, PlanContext, QueueUrl, SweepContext, delete, missing_tags, tag_list
from yunpipe.engine.plan import Call, Transient, substitute
from yunpipe.engine.template import Template
from yunpipe.runtime import launcher_package as package

# One launch of a step at a time: concurrent launches would each see the same queue and
# start tasks for the same messages.
LAUNCHER_RESERVED_CONCURRENCY = 1
# Lambda keeps this many of an account's executions unreserved; an account with fewer
# to spare (new accounts start at 10 in all) cannot reserve any.
MIN_UNRESERVED_EXECUTIONS = 100
# Lambda is eventually consistent: a new role is not assumable for some seconds, and a function
# being created or updated rejects another change for a moment.
LAMBDA_SETTLING = (Transient("InvalidParameterValueException", "cannot be assumed by Lambda"),
                   Transient("ResourceConflictException"))


@dataclass(frozen=True)
class Function(Named):
    name: str
    arn: str
    role_arn: str
    environment: Mapping[str, Any]  # may hold QueueUrl
    code: bytes = field(repr=False)
    tags: Mapping[str, str] = field(default_factory=dict)
    kind = "function"

    @property
    def code_sha256(self) -> str:
        """As Lambda reports it: base64 of the zip's SHA-256."""
        return base64.b64encode(hashlib.sha256(self.code).digest()).decode()

    @property
    def code_sha256_hex(self) -> str:
        return hashlib.sha256(self.code).hexdigest()


class FunctionKind(Kind[Function]):
    name = "function"
    arn_pattern = re.compile(r"^arn:[^:]+:lambda:[^:]*:\d+:function:(?P<key>[^:]+)$")

    def plan(self, function: Function, ctx: PlanContext) -> list[Call]:
        found = ctx.reader.read("lambda", "get_function", NOT_FOUND, FunctionName=function.name)
        environment = substitute(dict(function.environment), QueueUrl, lambda url: ctx.queue_urls[url.queue])
        configuration = {"Role": function.role_arn, "Handler": package.HANDLER, "Runtime": package.RUNTIME,
                         "Timeout": package.TIMEOUT_SECONDS, "MemorySize": package.MEMORY_MIB,
                         "Environment": {"Variables": environment}}
        retry = LAMBDA_SETTLING
        if found is None:
            created = Call("lambda", "create_function",
                           {"FunctionName": function.name, "Code": {"ZipFile": function.code},
                            "Tags": dict(function.tags), **configuration},
                           f"create launcher Lambda {function.name} ({package.RUNTIME})",
                           function.kind, function.key, "create", retry_on=retry)
            return [created, *_concurrency(function, None, ctx)]
        calls = _concurrency(function, found.get("Concurrency", {}).get("ReservedConcurrentExecutions"), ctx)
        current = found["Configuration"]
        if current.get("CodeSha256") != function.code_sha256:
            calls.append(Call("lambda", "update_function_code", {"FunctionName": function.name, "ZipFile": function.code},
                              f"update the code of launcher Lambda {function.name}", function.kind, function.key,
                              "update", retry_on=retry))
        current_environment = (current.get("Environment") or {}).get("Variables", {})
        if (any(current.get(k) != v for k, v in configuration.items() if k != "Environment")
                or current_environment != environment):
            calls.append(Call("lambda", "update_function_configuration",
                              {"FunctionName": function.name, **configuration},
                              f"update the configuration of launcher Lambda {function.name}", function.kind,
                              function.key, "update", retry_on=retry))
        missing = missing_tags(found.get("Tags") or {}, function.tags)
        if missing:
            calls.append(Call("lambda", "tag_resource", {"Resource": function.arn, "Tags": missing},
                              f"tag launcher Lambda {function.name}", function.kind, function.key, "update"))
        return calls

    def sweep(self, name: str, ctx: SweepContext) -> list[Call]:
        if ctx.reader.read("lambda", "get_function", NOT_FOUND, FunctionName=name) is None:
            return []
        return [delete("function", name, "lambda", "delete_function", f"delete launcher Lambda {name}",
                       FunctionName=name)]

    def cloudformation(self, function: Function, template: Template) -> dict[str, dict]:
        """The code is a zip of several modules, beyond what a template holds inline (ZipFile: one file,
        4 KB): it is a file next to the template, which the user uploads to S3 for the stack to read."""
        zip_name = f"yunpipe-launcher-{function.code_sha256_hex[:16]}.zip"
        template.files[zip_name] = function.code
        template.note(f"Upload {zip_name} (written next to this template) to S3 and give its bucket and key "
                      "as the parameters LauncherCodeBucket and LauncherCodeKey")
        code = {"S3Bucket": template.parameter("LauncherCodeBucket", "S3 bucket holding the launcher's zip"),
                "S3Key": template.parameter("LauncherCodeKey", "S3 key of the launcher's zip", zip_name)}
        template.note(f"Each launcher reserves {LAUNCHER_RESERVED_CONCURRENCY} concurrent execution "
                      "(ReservedConcurrentExecutions); an account with fewer than "
                      f"{MIN_UNRESERVED_EXECUTIONS} unreserved executions to spare refuses it: remove the property "
                      "there (setup-pipe does so by itself)")
        environment = substitute(dict(function.environment), QueueUrl, lambda url: template.ref("queue", url.queue))
        log_group = f"/aws/lambda/{function.name}"
        # Its log group first: Lambda would create it on the first invocation, and the stack's then fail.
        depends = [template.id("log_group", log_group)] if template.has("log_group", log_group) else []
        return {template.id(function.kind, function.key): {"Type": "AWS::Lambda::Function", "DependsOn": depends,
                                                           "Properties": {
            "FunctionName": function.name, "Role": template.arn("role", function.role_arn), "Code": code,
            "Handler": package.HANDLER, "Runtime": package.RUNTIME, "Timeout": package.TIMEOUT_SECONDS,
            "MemorySize": package.MEMORY_MIB, "Environment": {"Variables": environment},
            "ReservedConcurrentExecutions": LAUNCHER_RESERVED_CONCURRENCY,
            "Tags": tag_list(function.tags)}}}


def unreserved_executions(reader: Reader) -> int | None:
    """The account's unreserved Lambda executions; None when unknown (emulators without
    GetAccountSettings have no limit to respect)."""
    settings = reader.read("lambda", "get_account_settings", ("404",))
    return (settings or {}).get("AccountLimit", {}).get("UnreservedConcurrentExecutions")


def can_reserve(unreserved: int | None, needed: int) -> bool:
    """Whether `needed` more reserved executions fit: every reservation comes out of the
    unreserved pool, which AWS keeps at MIN_UNRESERVED_EXECUTIONS or more."""
    return unreserved is None or unreserved - needed >= MIN_UNRESERVED_EXECUTIONS


def _concurrency(function: Function, reserved: int | None, ctx: PlanContext) -> list[Call]:
    if reserved == LAUNCHER_RESERVED_CONCURRENCY:
        return []
    if not ctx.unreserved_read:
        ctx.unreserved = unreserved_executions(ctx.reader)
        ctx.unreserved_read = True
    needed = LAUNCHER_RESERVED_CONCURRENCY - (reserved or 0)
    if not can_reserve(ctx.unreserved, needed):
        ctx.note(f"this account has {ctx.unreserved} unreserved Lambda executions left, too few to reserve "
                 f"one per launcher (AWS keeps {MIN_UNRESERVED_EXECUTIONS}): such launchers run unreserved, so "
                 "uploads that arrive together may start a few more tasks than files, never fewer")
        return []
    if ctx.unreserved is not None:
        ctx.unreserved -= needed
    return [Call("lambda", "put_function_concurrency",
                 {"FunctionName": function.name, "ReservedConcurrentExecutions": LAUNCHER_RESERVED_CONCURRENCY},
                 f"run one launch of {function.name} at a time (so uploads arriving together never start "
                 "more tasks than files)", function.kind, function.key, "update",
                 retry_on=(Transient("ResourceConflictException"),))]


KIND = FunctionKind()
