"""A pipeline's model as a CloudFormation template (`yunpipe export --format cloudformation`).

Each kind renders its own resources (Kind.cloudformation, from the same dataclasses the deploy
engine applies); this module gives every resource its logical id, merges the parts (a bucket's
notifications are part of the bucket's resource), and puts what CloudFormation cannot do (and
what to do instead) in the template's description, its metadata and the comments atop the file.
"""
import hashlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import yaml

from yunpipe.engine.kinds import BY_NAME
from yunpipe.engine.model import PipelineModel
from yunpipe.engine.template import ResourceKey, Template

# CloudFormation's limits: a description's characters, a template body given inline (larger ones
# are read from S3), a logical id's characters.
MAX_DESCRIPTION = 1024
MAX_INLINE_BODY = 51_200
MAX_LOGICAL_ID = 255


class _Dumper(yaml.SafeDumper):
    """No anchors and aliases for values used twice: CloudFormation rejects YAML aliases."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def _yaml(document: dict) -> str:
    return yaml.dump(document, Dumper=_Dumper, sort_keys=False, width=120)


@dataclass(frozen=True)
class Rendering:
    text: str  # the template, YAML
    files: Mapping[str, bytes]  # to write next to it
    notes: tuple[str, ...]  # what to do before creating the stack


def logical_ids(model: PipelineModel) -> dict[ResourceKey, str]:
    """CamelCase of kind and key (without the `yunpipe-<pipeline>-` every name starts with);
    a short hash of both where that would be too long or taken."""
    ids: dict[ResourceKey, str] = {}
    for resource in model.resources():
        key = resource.key.removeprefix(f"yunpipe-{model.name}-")
        name = _camel(resource.kind) + _camel(key)
        if len(name) > MAX_LOGICAL_ID - 8 or name in ids.values():
            digest = hashlib.sha256(f"{resource.kind}/{resource.key}".encode()).hexdigest()[:8]
            name = name[:MAX_LOGICAL_ID - 8] + digest
        ids[(resource.kind, resource.key)] = name
    return ids


def _camel(text: str) -> str:
    return "".join(part[:1].upper() + part[1:] for part in re.split(r"[^A-Za-z0-9]+", text))


def _merge(into: dict, part: Mapping[str, Any]) -> None:
    for key, value in part.items():
        if isinstance(value, Mapping) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        elif isinstance(value, list) and isinstance(into.get(key), list):
            into[key] = into[key] + value
        else:
            into[key] = value


def _referenced(value: Any) -> set[str]:
    """The logical ids a value refers to (Ref, Fn::GetAtt): CloudFormation creates those first."""
    if isinstance(value, list):
        return set().union(*map(_referenced, value)) if value else set()
    if not isinstance(value, dict):
        return set()
    found = set().union(*map(_referenced, value.values())) if value else set()
    if isinstance(value.get("Ref"), str):
        found.add(value["Ref"])
    if isinstance(value.get("Fn::GetAtt"), list):
        found.add(value["Fn::GetAtt"][0])
    return found


def _before_create(model: PipelineModel, template: Template) -> None:
    if not model.target.subnets:
        template.note("No subnets were known when exporting (AWS not reachable, or no default VPC): give the "
                      "workflow's subnets (and security_groups), or export where AWS is reachable")
    if any(r.kind in ("role", "instance_profile") for r in model.resources()):
        template.note("The stack names its IAM roles: create it with --capabilities CAPABILITY_NAMED_IAM")


def _description(model: PipelineModel, notes: list[str]) -> str:
    head = (f"yunpipe pipeline {model.name}: {len(model.steps)} step(s), {model.input_bucket} -> "
            f"{model.output_bucket}, for account {model.target.account_id} in {model.target.region}.")
    if not notes:
        return head
    text = f"{head} Before creating the stack: " + " ".join(f"({i}) {note}." for i, note in enumerate(notes, 1))
    more = " ... (all in Metadata.Yunpipe.BeforeCreate)"
    return text if len(text) <= MAX_DESCRIPTION else text[:MAX_DESCRIPTION - len(more)] + more


def _document(model: PipelineModel, template: Template, body: dict[str, dict]) -> dict:
    outputs = {f"{purpose.capitalize()}Bucket": {"Description": f"the {purpose} bucket",
                                                 "Value": template.ref("bucket", bucket)}
               for purpose, bucket in (("input", model.input_bucket), ("output", model.output_bucket))}
    return {
        "AWSTemplateFormatVersion": "2010-09-09",
        "Description": _description(model, template.notes),
        "Metadata": {"Yunpipe": {"Pipeline": model.name, "Account": model.target.account_id,
                                 "Region": model.target.region, "BeforeCreate": list(template.notes)}},
        **({"Parameters": template.parameters} if template.parameters else {}),
        "Resources": body,
        "Outputs": outputs,
    }


def render(model: PipelineModel, notes: Iterable[str] = ()) -> Rendering:
    """The template of everything `setup-pipe` would create for `model`, as far as CloudFormation can
    say it; `notes`: the caller's, first among what to do before creating the stack."""
    resources = model.resources()
    template = Template(logical_ids(model), resources, notes=list(notes))
    body: dict[str, dict] = {}
    for resource in resources:
        rendered = BY_NAME[resource.kind].cloudformation(resource, template)
        if rendered is None:
            template.note(f"This template has no rendering of {resource.kind} {resource.key}: setup-pipe creates it")
            continue
        for logical_id, part in rendered.items():
            _merge(body.setdefault(logical_id, {}), part)
    for part in body.values():
        # Only what no Ref or GetAtt already orders.
        depends = sorted(set(part.pop("DependsOn", [])) - _referenced(part.get("Properties", {})))
        if depends:
            part["DependsOn"] = depends
    _before_create(model, template)
    text = _yaml(_document(model, template, body))
    if len(text.encode()) > MAX_INLINE_BODY:
        template.note(f"The template is over {MAX_INLINE_BODY} bytes: upload it to S3 and create the stack "
                      "with --template-url")
        text = _yaml(_document(model, template, body))
    header = "".join(f"# {line}\n" for line in [
        f"yunpipe export of pipeline {model.name}: the resources setup-pipe creates, as CloudFormation.",
        *(["Before creating the stack:"] + [f"  {i}. {note}" for i, note in enumerate(template.notes, 1)]
          if template.notes else [])])
    return Rendering(header + text, dict(template.files), tuple(template.notes))
