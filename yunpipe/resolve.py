"""A workflow resolved against the algorithm registry: each step's algorithm version fixed,
its variables checked (declared, required, against each variable's schema) and turned into
environment strings. Lives next to the registry, so the specs read files and nothing else."""
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from referencing.exceptions import Unresolvable

from yunpipe.errors import InputError
from yunpipe.registry import AlgorithmRecord
from yunpipe.specs.loading import variable_validator
from yunpipe.specs.secrets import Secret, merge_secrets
from yunpipe.specs.workflow import DEFAULT_GPU_INSTANCE_TYPE, StepSpec, WorkflowSpec, check_instance, instance_for


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
    # EC2 instance type and GPUs per task (the step's, else its algorithm's); "": Fargate.
    instance_type: str = ""
    gpu: int = 0
    # The algorithm's secrets, a step's own replacing those of the same name.
    secrets: tuple[Secret, ...] = ()

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


def resolve_environment(spec: WorkflowSpec, where: str, step: StepSpec, record: AlgorithmRecord) -> dict[str, str]:
    """The step's task environment: the algorithm's own, its declared variables as the step sets
    them (each checked against its schema), then the defaults of those the step leaves out."""
    return algorithm_environment(record, step.variables, spec.source, lambda name: f"{where}.variables.{name}")


def algorithm_environment(record: AlgorithmRecord, variables: Mapping[str, Any], source: str,
                          field_of: Callable[[str], str]) -> dict[str, str]:
    """The algorithm's own environment, `variables` (each checked against its schema) and the
    defaults of those left out; an InputError names `source` and field_of(the variable)."""
    algorithm = record.spec
    environment = dict(algorithm.environment)
    for var_name, value in variables.items():
        parameter = algorithm.parameter(var_name)
        field = field_of(var_name)
        if parameter is None:
            declared = ", ".join(p.name for p in algorithm.parameters) or "none"
            raise InputError(source, field, f"expected a variable declared by {record.reference} (declared: {declared})")
        try:
            errors = list(variable_validator(dict(parameter.schema)).iter_errors(value))
        except Unresolvable as exc:  # a record wrapped before wrap checked references
            raise InputError(record.reference, f"user_specified_environment_variables.{var_name}.schema",
                             f"expected $refs to this schema's own parts, got {exc}") from None
        if errors:
            raise InputError(source, field, f"expected a value matching its schema: {errors[0].message}")
        environment[var_name] = _as_environment_value(value)
        if "\0" in environment[var_name]:  # no process can be given it (execve)
            raise InputError(source, field, "expected a value without NUL")
    for parameter in algorithm.parameters:
        if parameter.name in variables:
            continue
        if parameter.default is not None:
            environment[parameter.name] = _as_environment_value(parameter.default)
        elif parameter.required:
            raise InputError(source, field_of(parameter.name), f"missing required variable of {record.reference}")
    return environment


def resolve_workflow(spec: WorkflowSpec, registry: Algorithms) -> ResolvedWorkflow:
    steps = []
    for index, step in enumerate(spec.steps):
        where = f"{spec.steps_field}[{index}]"
        record = registry.resolve(step.reference, spec.source, f"{where}.name")
        algorithm = record.spec
        environment = resolve_environment(spec, where, step, record)
        if step.gather and algorithm.input_adapter == "stdin":
            raise InputError(spec.source, f"{where}.gather",
                             f"expected an algorithm that reads a folder: {record.reference} reads its input from stdin")
        if step.force and not algorithm.deterministic:
            raise InputError(spec.source, f"{where}.force",
                             f"expected no force on a step whose algorithm is not deterministic: {record.reference} "
                             "declares deterministic false, so its jobs always run")
        variables = {p.name for p in algorithm.parameters} | set(environment)
        for secret_index, secret in enumerate(step.secrets):
            if secret.name in variables:
                raise InputError(spec.source, f"{where}.secrets[{secret_index}].name",
                                 f"expected a name that is no variable of {record.reference}, {secret.name!r} is one")
        instance_type, gpu = resolve_instance(spec, where, step, record)
        steps.append(ResolvedStep(record, environment, step, step.ephemeral_storage_gib or spec.ephemeral_storage_gib,
                                  instance_type, gpu, merge_secrets(algorithm.secrets, step.secrets)))
    return ResolvedWorkflow(spec, tuple(steps))


def resolve_instance(spec: WorkflowSpec, where: str, step: StepSpec, record: AlgorithmRecord) -> tuple[str, int]:
    """The step's instance type and GPUs: each its own when set, else its algorithm's; checked
    together, as they may come from the workflow and the algorithm each."""
    algorithm = record.spec
    instance_type = algorithm.instance_type if step.instance_type is None else step.instance_type
    gpu = algorithm.gpu if step.gpu is None else step.gpu
    # Blame the workflow when the step set either field, else the algorithm.
    source, prefix = (spec.source, where) if (step.instance_type, step.gpu) != (None, None) else (record.reference, "")
    check_instance(source, prefix, instance_type, gpu)
    chosen = instance_for(gpu, instance_type)
    if chosen is None:
        raise InputError(source, f"{prefix}.instance_type" if prefix else "instance_type",
                         f"expected an instance type with {gpu} GPUs (the default {DEFAULT_GPU_INSTANCE_TYPE} has one)")
    if chosen and step.capacity != "FARGATE":
        raise InputError(spec.source, f"{where}.capacity",
                         f"expected no capacity on a step that runs on EC2 ({chosen}, from {source}): "
                         f"{step.capacity} is Fargate capacity")
    if chosen and step.ephemeral_storage_gib:
        raise InputError(spec.source, f"{where}.ephemeral_storage_gib",
                         f"expected no ephemeral_storage_gib on a step that runs on EC2 ({chosen}, from {source}): "
                         "its tasks use the instance's disk (Fargate alone has task storage)")
    return chosen, gpu
