"""What a kind's CloudFormation rendering is given (Kind.cloudformation): the logical id of every
resource of the model, intrinsic functions that refer to them, the template's parameters, the
files that go next to the template, and notes on what the template cannot say.
engine/cloudformation.py assembles the template from the kinds' renderings.
"""
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

ResourceKey = tuple[str, str]  # (kind, key)


@dataclass
class Template:
    ids: dict[ResourceKey, str]  # each resource of the model -> its logical id
    resources: tuple[Any, ...]  # the model's resources, in creation order
    parameters: dict[str, dict] = field(default_factory=dict)
    files: dict[str, bytes] = field(default_factory=dict)  # written next to the template
    notes: list[str] = field(default_factory=list)

    def id(self, kind: str, key: str) -> str:
        return self.ids[(kind, key)]

    def has(self, kind: str, key: str) -> bool:
        return (kind, key) in self.ids

    def ref(self, kind: str, key: str) -> dict:
        return {"Ref": self.id(kind, key)}

    def attribute(self, kind: str, key: str, name: str) -> dict:
        return {"Fn::GetAtt": [self.id(kind, key), name]}

    def arn(self, kind: str, arn: str) -> Any:
        """The ARN of the template's resource of `kind` that has it (GetAtt, so CloudFormation
        creates that one first), or the ARN as it is when the stack does not create it."""
        for resource in self.of_kind(kind, lambda r: getattr(r, "arn", None) == arn):
            return self.attribute(kind, resource.key, "Arn")
        return arn

    def of_kind(self, kind: str, where: Callable[[Any], bool] = lambda _resource: True) -> Iterable[Any]:
        return (r for r in self.resources if r.kind == kind and where(r))

    def parameter(self, name: str, description: str, default: str = "") -> dict:
        """A String parameter of the template, and the Ref to it."""
        self.parameters[name] = {"Type": "String", "Description": description,
                                 **({"Default": default} if default else {"MinLength": 1})}
        return {"Ref": name}

    def note(self, text: str) -> None:
        if text not in self.notes:
            self.notes.append(text)
