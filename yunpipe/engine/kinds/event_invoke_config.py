"""Lambda's asynchronous invocation settings of each launcher: how long and how often an event
is tried, and where it goes when it cannot be delivered.

S3 and EventBridge invoke the launcher asynchronously. At reserved concurrency 1 a burst is
throttled, and Lambda keeps retrying a throttled event until it is older than its maximum age;
one that fails is retried a few times. Without an on-failure destination Lambda then discards
the event and its file is never processed. Here it goes to the step's failed-events queue,
which the launcher's scheduled run drains (yunpipe.runtime.launcher.recovery).
"""
import dataclasses
from collections.abc import Set as AbstractSet
from dataclasses import dataclass

from yunpipe.aws.reader import NOT_FOUND, Reader
from yunpipe.engine.kinds.base import Kind, PlanContext, ResourceKey, SweepContext, call, delete
from yunpipe.engine.plan import Call, Transient
from yunpipe.engine.template import Template

# AWS's longest: an event throttled by a burst has six hours to reach the launcher.
MAXIMUM_EVENT_AGE_SECONDS = 21600
# AWS's default, said: the launcher raises only when SQS did not take its messages, which a
# retry after a minute usually fixes.
MAXIMUM_RETRY_ATTEMPTS = 2
# Lambda checks that the function's role may send to the destination, and a role policy written
# moments ago may not be visible to it yet; a function being updated refuses for a moment.
DESTINATION_SETTLING = (Transient("InvalidParameterValueException", "does not have permissions"),
                        Transient("ResourceConflictException"))


@dataclass(frozen=True)
class EventInvokeConfig:
    function: str
    on_failure: str  # the destination's ARN: the step's failed-events queue
    maximum_event_age_seconds: int = MAXIMUM_EVENT_AGE_SECONDS
    maximum_retry_attempts: int = MAXIMUM_RETRY_ATTEMPTS
    kind = "event_invoke_config"

    @property
    def key(self) -> str:
        return self.function


class EventInvokeConfigKind(Kind[EventInvokeConfig]):
    name = "event_invoke_config"

    def plan(self, config: EventInvokeConfig, ctx: PlanContext) -> list[Call]:
        found = _read(ctx.reader, config.function)
        if found is not None and _matches(found, config):
            return []
        put = call(config, "create" if found is None else "update", "lambda", "put_function_event_invoke_config",
                     f"send the events {config.function} cannot take (throttled for "
                     f"{config.maximum_event_age_seconds // 3600} h, or failing {config.maximum_retry_attempts + 1} "
                     f"times) to {config.on_failure.rsplit(':', 1)[-1]}, for its scheduled run to queue again",
                     FunctionName=config.function, MaximumEventAgeInSeconds=config.maximum_event_age_seconds,
                     MaximumRetryAttempts=config.maximum_retry_attempts,
                     DestinationConfig={"OnFailure": {"Destination": config.on_failure}})
        return [dataclasses.replace(put, retry_on=DESTINATION_SETTLING)]

    def sweep(self, function: str, ctx: SweepContext) -> list[Call]:
        if _read(ctx.reader, function) is None:
            return []
        return [delete("event_invoke_config", function, "lambda", "delete_function_event_invoke_config",
                       f"remove the failed-events destination of {function}", FunctionName=function)]

    def discover(self, reader: Reader, pipeline: str, found: AbstractSet[ResourceKey]) -> set[ResourceKey]:
        """Not taggable: the settings of the pipeline's functions found by tag."""
        return {(self.name, key) for kind, key in found if kind == "function" and _read(reader, key) is not None}


    def cloudformation(self, config: EventInvokeConfig, template: Template) -> dict[str, dict]:
        return {template.id(config.kind, config.key): {"Type": "AWS::Lambda::EventInvokeConfig", "Properties": {
            "FunctionName": template.ref("function", config.function), "Qualifier": "$LATEST",
            "MaximumEventAgeInSeconds": config.maximum_event_age_seconds,
            "MaximumRetryAttempts": config.maximum_retry_attempts,
            "DestinationConfig": {"OnFailure": {"Destination": template.arn("queue", config.on_failure)}}}}}


def _read(reader: Reader, function: str) -> dict | None:
    # Missing function or missing settings: both ResourceNotFoundException.
    return reader.read("lambda", "get_function_event_invoke_config", NOT_FOUND, FunctionName=function)


def _matches(found: dict, config: EventInvokeConfig) -> bool:
    destinations = found.get("DestinationConfig") or {}
    return (found.get("MaximumEventAgeInSeconds") == config.maximum_event_age_seconds
            and found.get("MaximumRetryAttempts") == config.maximum_retry_attempts
            and (destinations.get("OnFailure") or {}).get("Destination") == config.on_failure
            and not (destinations.get("OnSuccess") or {}).get("Destination"))



KIND = EventInvokeConfigKind()
