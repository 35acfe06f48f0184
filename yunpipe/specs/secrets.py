"""`secrets` of an algorithm or a workflow step: environment variables whose values ECS reads,
when a task starts, from an SSM parameter or a Secrets Manager secret. yunpipe only ever holds
the reference (`valueFrom`), never a value: the task definition names it, the execution role may
read exactly those, and the local cloud resolves them as ECS does.
"""
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from yunpipe.errors import InputError
from yunpipe.runtime import contract

# An environment variable's name (also the algorithm's user variables').
# On the whole string: `$` would let a trailing newline through.
ENV_NAME_PATTERN = r"\A[A-Za-z_][A-Za-z0-9_]*\Z"
# An SSM parameter by name (a-zA-Z0-9_.- and '/', at most 2048 characters) or by ARN.
SSM_NAME = re.compile(r"^/?[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*$")
SSM_ARN = re.compile(r"^arn:aws[a-z-]*:ssm:[a-z]{2}(-[a-z]+)+-\d:\d{12}:parameter/[A-Za-z0-9_./-]+$")
# A Secrets Manager secret's full ARN, optionally with ECS's :json-key:version-stage:version-id.
SECRET_ARN = re.compile(r"^(?P<arn>arn:aws[a-z-]*:secretsmanager:[a-z]{2}(-[a-z]+)+-\d:\d{12}:secret:"
                        r"[A-Za-z0-9/_+=.@-]+)(?P<key>:[^:]*:[^:]*:[^:]*)?$")
SECRETS_SCHEMA = {
    "type": "array",
    "items": {
        "type": "object",
        "required": ["name", "valueFrom"],
        "additionalProperties": False,
        "properties": {
            "name": {"type": "string", "pattern": ENV_NAME_PATTERN, "description": "an environment variable name"},
            "valueFrom": {"type": "string", "minLength": 1, "maxLength": 2048,
                          "description": "an SSM parameter name or ARN, or a Secrets Manager secret ARN"},
        },
    },
}


@dataclass(frozen=True)
class Secret:
    """One variable and where ECS reads its value (an SSM parameter or a Secrets Manager secret)."""

    name: str
    value_from: str

    @property
    def secrets_manager(self) -> bool:
        return bool(SECRET_ARN.match(self.value_from))

    def resource_arn(self, partition: str, region: str, account_id: str) -> str:
        """The ARN the execution role must be allowed to read (a parameter named without an ARN
        is the target's own; ECS's JSON-key suffix of a secret is no part of it)."""
        secret = SECRET_ARN.match(self.value_from)
        if secret:
            return secret["arn"]
        if self.value_from.startswith("arn:"):
            return self.value_from
        return f"arn:{partition}:ssm:{region}:{account_id}:parameter/{self.value_from.lstrip('/')}"

    def to_document(self) -> dict:
        return {"name": self.name, "valueFrom": self.value_from}


def parse_secrets(items: Sequence[Any], source: str, where: str) -> tuple[Secret, ...]:
    """The secrets of a document already checked against SECRETS_SCHEMA (`where`: the path of
    its `secrets` list): each a valid reference, each name once, none of yunpipe's, AWS's or
    ECS's own variables."""
    secrets: list[Secret] = []
    for index, item in enumerate(items):
        field = f"{where}[{index}]"
        name, value_from = item["name"], item["valueFrom"]
        if name.startswith(contract.RESERVED_VARIABLE_PREFIXES):
            raise InputError(source, f"{field}.name",
                             f"expected a name without the prefixes {', '.join(contract.RESERVED_VARIABLE_PREFIXES)} "
                             f"(yunpipe's, AWS's and ECS's own variables), got {name!r}")
        if any(s.name == name for s in secrets):
            raise InputError(source, f"{field}.name", f"expected a unique name, {name!r} is given twice")
        if value_from.startswith("arn:"):
            if not (SSM_ARN.match(value_from) or SECRET_ARN.match(value_from)):
                raise InputError(source, f"{field}.valueFrom",
                                 "expected an SSM parameter ARN (arn:aws:ssm:REGION:ACCOUNT:parameter/NAME) or a "
                                 "Secrets Manager secret ARN (arn:aws:secretsmanager:REGION:ACCOUNT:secret:NAME-XXXXXX), "
                                 f"got {value_from!r}")
        elif not SSM_NAME.match(value_from):
            raise InputError(source, f"{field}.valueFrom",
                             f"expected an SSM parameter name (letters, digits, '_', '.', '-', '/') or an ARN, "
                             f"got {value_from!r}")
        secrets.append(Secret(name, value_from))
    return tuple(secrets)


def merge_secrets(algorithm: Sequence[Secret], step: Sequence[Secret]) -> tuple[Secret, ...]:
    """The algorithm's secrets with the step's: a step's secret replaces the algorithm's of the same name."""
    own = {s.name for s in step}
    return (*(s for s in algorithm if s.name not in own), *step)
