"""A workflow resolved against the algorithm registry: each step's algorithm version fixed,
its variables checked (declared, required, against each variable's schema) and turned into
environment strings. Lives next to the registry, so the specs read files and nothing else."""
import json
from dataclasses import dataclass
from typing import Any, Mapping, Protocol

import jsonschema

from yunpipe.errors import InputError
from yunpipe.registry import AlgorithmRecord
from yunpipe.specs.workflow import StepSpec, WorkflowSpec


class Algorithms(Protocol):
    """Where a step's NAME[@VERSION] is looked up: the local registry (AlgorithmRegistry), or
    it and the shared ones (yunpipe.remote.SharedAlgorithms)."""

    def resolve(self, reference: str, source: str, field: str) -> AlgorithmRecord: ...


@dataclass(frozen=True)
class ResolvedStep:
    """A step with its algorithm version fixed and its variables as environment strings."""

    record: AlgorithmRecord
    environment: Mapping[str, str]
    spec: StepSpec
    # The step's own, else the workflow's; None keeps Fargate's default 20 GiB.
    ephemeral_storage_gib: int | None = None

    @property
    def name(self) -> str:
        """The step's id: resources, `after` and the pipeline's summary name steps by it."""
        return self.spec.step_id

    @property
    def concurrency(self) -> int:
        return self.spec.concurrency

    @property
    def max_receive_count(self) -> int:
        return self.spec.max_receive_count

    @property
    def cpu(self) -> float:
        return self.spec.cpu or self.record.spec.cpu

    @property
    def memory(self) -> int:
        return self.spec.memory or self.record.spec.memory_suggested

    @property
    def timeout_seconds(self) -> int:
        return self.spec.timeout_seconds or self.record.spec.timeout_seconds


@dataclass(frozen=True)
class ResolvedWorkflow:
    spec: WorkflowSpec
    steps: tuple[ResolvedStep, ...]


def _as_environment_value(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value)


def resolve_workflow(spec: WorkflowSpec, registry: Algorithms) -> ResolvedWorkflow:
    steps = []
    for index, step in enumerate(spec.steps):
        where = f"{spec.steps_field}[{index}]"
        record = registry.resolve(step.reference, spec.source, f"{where}.name")
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
        if step.gather and algorithm.input_adapter == "stdin":
            raise InputError(spec.source, f"{where}.gather",
                             f"expected an algorithm that reads a folder: {record.reference} reads its input from stdin")
        steps.append(ResolvedStep(record, environment, step, step.ephemeral_storage_gib or spec.ephemeral_storage_gib))
    return ResolvedWorkflow(spec, tuple(steps))
