"""Run a plan: each call through the facade, in order, recording the state after each one."""
import time
from collections.abc import Callable
from typing import Any

from yunpipe.aws.facade import Aws, BotoCoreError, ClientError, error_code
from yunpipe.engine.plan import Call, Plan, Ref, substitute
from yunpipe.engine.state import PipelineState
from yunpipe.errors import YunpipeError

# AWS's eventual consistency settles within this much waiting: a new role is assumable by
# Lambda after some seconds (Chalice waits ~30 s), a deleted queue's name is free after 60 s.
RETRY_BUDGET_SECONDS = 90.0
RETRY_MAX_DELAY = 10.0
# How the executor waits between retries; a test whose AWS runs on a manual clock replaces it.
backoff_sleep = time.sleep


def _invoke(aws: Aws, call: Call, params: dict) -> dict:
    waited, delay = 0.0, 1.0
    while True:
        try:
            return aws.call(call.service, call.operation, **params)
        except ClientError as error:
            code = error_code(error)
            message = error.response.get("Error", {}).get("Message", "")
            if code in call.done_codes or any(t.matches(code, message) for t in call.done_on):
                return {}
            if not any(t.matches(code, message) for t in call.retry_on) or waited >= RETRY_BUDGET_SECONDS:
                raise
            backoff_sleep(delay)
            waited += delay
            delay = min(delay * 2, RETRY_MAX_DELAY)


def apply(plan: Plan, aws: Aws, state: PipelineState, echo: Callable[[str], None] = print) -> None:
    """Every call in order; a failure stops the run with the state recording what was done,
    so running the same command again picks up where this one stopped."""
    for kind, key in plan.gone:
        state.remove(kind, key)
    values: dict[str, Any] = {}
    for number, call in enumerate(plan.calls, 1):
        echo(f"  [{number}/{len(plan.calls)}] {call.message}")
        try:
            response = _invoke(aws, call, substitute(dict(call.params), Ref, lambda ref: values[ref.name]))
        except (ClientError, BotoCoreError) as error:
            raise YunpipeError(f"{call.message} failed: {error}\n"
                               f"Nothing after this step was changed; run the same command again to resume, "
                               f"or clean-up {state.pipeline} to remove what was created.") from None
        for name, field in call.outputs:
            values[name] = response[field]
        if call.record == "add":
            state.add(call.kind, call.key)
        elif call.record == "remove":
            state.remove(call.kind, call.key)
