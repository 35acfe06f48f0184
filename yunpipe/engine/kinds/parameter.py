"""SSM SecureString parameters: the user's own AWS credentials, for tasks (-uu)."""
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from yunpipe.engine.kinds.base import Kind, Named, PlanContext, SweepContext, call, delete, tag_list
from yunpipe.engine.plan import Call
from yunpipe.engine.template import Template


@dataclass(frozen=True)
class Parameter(Named):
    name: str
    arn: str
    variable: str
    value: str = field(repr=False)
    tags: Mapping[str, str] = field(default_factory=dict)
    kind = "parameter"


class ParameterKind(Kind[Parameter]):
    name = "parameter"
    arn_pattern = re.compile(r"^arn:[^:]+:ssm:[^:]*:\d+:parameter(?P<key>/.+)$")

    def plan(self, parameter: Parameter, ctx: PlanContext) -> list[Call]:
        found = ctx.reader.read("ssm", "get_parameter", ("ParameterNotFound",), Name=parameter.name,
                                WithDecryption=True)
        if found is None:
            return [call(parameter, "create", "ssm", "put_parameter",
                         f"store your {parameter.variable} as SecureString parameter {parameter.name}",
                         Name=parameter.name, Value=parameter.value, Type="SecureString",
                         Tags=tag_list(parameter.tags))]
        if found["Parameter"]["Value"] != parameter.value:
            return [call(parameter, "update", "ssm", "put_parameter",
                         f"update SecureString parameter {parameter.name}",
                         Name=parameter.name, Value=parameter.value, Type="SecureString", Overwrite=True)]
        return []

    def sweep(self, name: str, ctx: SweepContext) -> list[Call]:
        if ctx.reader.read("ssm", "get_parameter", ("ParameterNotFound",), Name=name) is None:
            return []
        return [delete("parameter", name, "ssm", "delete_parameter", f"delete parameter {name}", Name=name)]

    def cloudformation(self, parameter: Parameter, template: Template) -> dict[str, dict]:
        # AWS::SSM::Parameter cannot create a SecureString, and a value in a template would be readable by
        # anyone who can read the stack: the tasks' secrets name the parameter, which the user creates.
        template.note(f"Create the SecureString parameter {parameter.name} (CloudFormation cannot): aws ssm "
                      f"put-parameter --type SecureString --name {parameter.name} --value <your {parameter.variable}>")
        return {}


KIND = ParameterKind()
