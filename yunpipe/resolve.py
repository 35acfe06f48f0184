"""A workflow resolved against the algorithm registry: each step's algorithm version fixed,
its variables checked (declared, required, against each variable's schema) and turned into
environment strings. Lives next to the registry, so the specs read files and nothing else."""
import json
from dataclasses import dataclass
from typing import Any, Mapping

import jsonschema

from yunpipe.errors import InputError
from yunpipe.registry import AlgorithmRecord, AlgorithmRegistry
from yunpipe.specs.workflow import WorkflowSpec


@dataclass(frozen=True)
class ResolvedStep:
    """A step with its algorithm version fixed and its variables as environment strings."""

    record: AlgorithmRecord
    environment: Mapping[str, str]
    concurrency: int
    max_receive_count: int
    # The step's own, else the workflow's; None keeps Fargate's default 20 GiB.
    ephemeral_storage_gib: int | None = None

    @property
    def name(self) -> str:
        return self.record.name


@dataclass(frozen=True)
class ResolvedWorkflow:
    spec: WorkflowSpec
    steps: tuple[ResolvedStep, ...]


def _as_environment_value(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value)


def resolve_workflow(spec: WorkflowSpec, registry: AlgorithmRegistry) -> ResolvedWorkflow:
    steps = []
    seen = set()
    for index, step in enumerate(spec.steps):
        where = f"process.algorithms[{index}]"
        record = registry.resolve(step.reference, spec.source, f"{where}.name")
        if record.name in seen:
            # Resource names derive from the algorithm name, so a step may appear once.
            raise InputError(spec.source, f"{where}.name", f"expected each algorithm once per pipeline, '{record.name}' repeats")
        seen.add(record.name)
        algorithm = record.spec
        environment = dict(algorithm.environment)
        for var_name, value in step.variables.items():
            parameter = algorithm.parameter(var_name)
            field = f"{where}.variables.{var_name}"
            if parameter is None:
                declared = ", ".join(p.name for p in algorithm.parameters) or "none"
                raise InputError(spec.source, field, f"expected a variable declared by {record.reference} (declared: {declared})")
            errors = list(jsonschema.Draft202012Validator(dict(parameter.schema)).iter_errors(value))
            if errors:
                raise InputError(spec.source, field, f"expected a value matching its schema: {errors[0].message}")
            environment[var_name] = _as_environment_value(value)
        for parameter in algorithm.parameters:
            if parameter.name in step.variables:
                continue
            if parameter.default is not None:
                environment[parameter.name] = _as_environment_value(parameter.default)
            elif parameter.required:
                raise InputError(spec.source, f"{where}.variables.{parameter.name}",
                                 f"missing required variable of {record.reference}")
        steps.append(ResolvedStep(record, environment, step.concurrency, step.max_receive_count,
                                  step.ephemeral_storage_gib or spec.ephemeral_storage_gib))
    return ResolvedWorkflow(spec, tuple(steps))
