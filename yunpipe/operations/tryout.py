"""`yunpipe try`: a wrapped algorithm on one file of this machine, as a task would run it
(operations/onejob.py), before anything is deployed."""
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from yunpipe.errors import InputError
from yunpipe.operations import onejob
from yunpipe.registry import AlgorithmRecord, AlgorithmRegistry
from yunpipe.resolve import algorithm_environment
from yunpipe.specs.loading import variable_validator

# The result's name beside the input: `<file name>` + this (a folder when the result is one).
RESULT_SUFFIX = ".out"


@dataclass(frozen=True)
class TryOptions:
    algorithm: str  # NAME[@VERSION]
    file: str
    variables: tuple[str, ...] = ()  # NAME=VALUE
    output: str | None = None


def _value(record: AlgorithmRecord, name: str, raw: str) -> Any:
    """The value as the schema takes it: the text itself, else the text read as JSON (a number,
    a boolean, a list), as a workflow would have written it."""
    parameter = record.spec.parameter(name)
    if parameter is None:
        return raw
    if not list(variable_validator(dict(parameter.schema)).iter_errors(raw)):
        return raw
    try:
        return json.loads(raw)
    except ValueError:
        return raw


def variables(record: AlgorithmRecord, assignments: tuple[str, ...]) -> dict[str, str]:
    """The command's environment from --var NAME=VALUE, checked against the algorithm's schemas,
    with the defaults of the variables not given."""
    given: dict[str, Any] = {}
    for assignment in assignments:
        name, equals, raw = assignment.partition("=")
        if not equals or not name:
            raise InputError("try", "--var", f"expected NAME=VALUE, got '{assignment}'")
        given[name] = _value(record, name, raw)
    return algorithm_environment(record, given, "try", lambda name: f"--var {name}")


def prepare(options: TryOptions) -> tuple[AlgorithmRecord, onejob.OneJob, Path]:
    """The job and where its result goes; InputError (exit 2) for bad input, before Docker is asked."""
    record = AlgorithmRegistry().resolve(options.algorithm, "try", "ALGORITHM")
    file = Path(options.file)
    if not file.is_file():
        what = "is a folder" if file.is_dir() else "does not exist"
        raise InputError("try", "FILE", f"expected a file to run {record.reference} on, {options.file} {what}")
    environment = variables(record, options.variables)
    destination = Path(options.output) if options.output else file.with_name(file.name + RESULT_SUFFIX)
    if destination.resolve() == file.resolve():
        raise InputError("try", "--output", f"expected a path other than the input, got {options.output}")
    job = onejob.OneJob(record.image_uri, environment, file.resolve(), record.spec.memory_suggested, record.spec.cpu)
    return record, job, destination


def try_algorithm(options: TryOptions) -> tuple[AlgorithmRecord, onejob.Finished]:
    from yunpipe.wrapper.images import docker_client

    record, job, destination = prepare(options)
    client = docker_client()
    onejob.ensure_image(client, job.image)
    return record, onejob.run(client, job, destination)
