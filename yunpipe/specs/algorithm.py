"""The algorithm spec: the 0.0.3 algorithm JSON, with defaults and the newer optional fields.

`AlgorithmSpec.to_document()` is the normalized description that the wrapped image carries
(`docs/runtime-contract.md`) and that the registry records.
"""
import posixpath
import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonschema

from yunpipe.errors import InputError
from yunpipe.runtime import contract
from yunpipe.specs.fields import object_schema, read_fields, spec_field
from yunpipe.specs.loading import load_document, unresolved_reference, validate, variable_validator
from yunpipe.specs.secrets import ENV_NAME_PATTERN, SECRETS_SCHEMA, Secret, parse_secrets
from yunpipe.specs.workflow import (
    DEFAULT_GPU_INSTANCE_TYPE,
    GPU_SCHEMA,
    INSTANCE_TYPE_SCHEMA,
    TIMEOUT_SCHEMA,
    check_instance,
    instance_for,
)

SUPPORTED_SYSTEMS = ("ubuntu", "debian", "alpine", "rockylinux", "centos", "amazonlinux")
# Patterns hold on the whole string: \A and \Z, as `$` would let a trailing newline through
# (jsonschema's "pattern" searches, as Python's re does).
NAME_PATTERN = r"\A[A-Za-z0-9][A-Za-z0-9_.-]{0,62}\Z"
# Docker's reference grammar (distribution/reference): [DOMAIN[:PORT]/]PATH[:TAG][@DIGEST], the
# path lower-case; Docker takes at most 255 characters.
_PATH_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_DOMAIN = r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*(?::[0-9]+)?"
DOCKER_REFERENCE = (rf"\A(?:{_DOMAIN}/)?{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*(?::[A-Za-z0-9_][A-Za-z0-9_.-]{{0,127}})?"
                    r"(?:@[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,})?\Z")
# Names a user variable cannot take: the runscript substitutes the placeholders, the task sets
# the prefixed ones, and the shell gives the rest a meaning of its own. The task's own
# prefixes are refused in `environment` too.
PLACEHOLDER_NAME = re.compile(r"\A(input|output|input_file|output_file|input_.*)\Z")
TASK_PREFIXES = contract.RESERVED_VARIABLE_PREFIXES
RESERVED_PREFIXES = (*TASK_PREFIXES, "LC_")
SHELL_NAMES = {"PATH", "HOME", "PWD", "OLDPWD", "IFS", "PS1", "PS2", "PS4", "PPID", "OPTIND", "OPTARG",
               "LINENO", "ENV", "SHELL", "TMPDIR", "LANG", "HOSTNAME", "USER"}
# A placeholder the worker replaces (a join's `$input_<step>` too), where a shell would expand a variable.
PLACEHOLDER_AT = re.compile(r"\$\{(input|output)_file\}|\$\{input_[a-z0-9-]+\}|\$output(?![A-Za-z0-9_])"
                            r"|\$input(_[a-z0-9]+)?(?![A-Za-z0-9_])")
# ECS's limits on an EC2 task: at most 192 vCPU (196,608 CPU units); memory at most the largest
# instance's (24 TiB). Fargate's smaller limits are checked when a step is sized (compiler.task_size).
MAX_VCPUS = 192
MAX_MEMORY_MIB = 24 * 1024 * 1024

# The runtime contract's defaults: the worker fills the same ones into an algorithm file.
DEFAULT_INPUT_PATH = contract.ALGORITHM_DEFAULTS["input_file_path"]
DEFAULT_OUTPUT_PATH = contract.ALGORITHM_DEFAULTS["output_file_path"]
DEFAULT_MEMORY_MIB = 512
DEFAULT_TIMEOUT_SECONDS = contract.ALGORITHM_DEFAULTS["timeout_seconds"]
# The output placeholders the worker replaces, matched as it matches them.
OUTPUT_PLACEHOLDER = contract.placeholder_pattern(contract.OUTPUT_PLACEHOLDERS)

PARAMETERS_SCHEMA = {
    "type": "array",
    "items": {
        "type": "object",
        "required": ["name"],
        "additionalProperties": False,
        "properties": {
            "name": {"type": "string", "pattern": ENV_NAME_PATTERN, "maxLength": 255,
                     "description": "an environment variable name"},
            "required": {"type": "boolean"},
            "description": {"type": "string"},
            "schema": {"type": "object", "description": "a JSON Schema for the value"},
        },
    },
}
PORTS_SCHEMA = {
    "type": "array",
    "items": {
        "type": "object",
        "required": ["port"],
        "properties": {
            "port": {"type": "integer", "minimum": 1, "maximum": 65535, "description": "a port number"},
            "protocol": {"type": "string", "enum": ["tcp", "udp"]},
        },
    },
}
MIB = {"type": "integer", "minimum": 1, "maximum": MAX_MEMORY_MIB, "description": f"a number of MiB from 1 to {MAX_MEMORY_MIB}"}
FOLDER_PATTERN = r"\A/[^\x00\n]*\Z"
FOLDER = {"type": "string", "pattern": FOLDER_PATTERN, "maxLength": 4096, "description": "an absolute folder path"}
# Keys and values the kernel can pass to a process (execve): no '=' in a name, no NUL anywhere.
ENVIRONMENT_SCHEMA = {"type": "object", "propertyNames": {"pattern": r"\A[^=\x00]+\Z", "maxLength": 255,
                                                          "description": "a variable name without '=' or NUL"},
                      "additionalProperties": {"type": "string", "pattern": r"\A[^\x00]*\Z",
                                               "description": "text without NUL"}}

# 0 is success and a shell's codes stop at 255.
PERMANENT_EXIT_CODES_SCHEMA = {"type": "array", "uniqueItems": True,
                               "items": {"type": "integer", "minimum": 1, "maximum": 255,
                                         "description": "an exit code from 1 to 255"},
                               "description": "a list of distinct exit codes from 1 to 255"}


def _vcpus(value: Any) -> float:
    # 0.0.3 files carry a number, or an empty object when the developer skipped it.
    return value if isinstance(value, (int, float)) else 1


@dataclass(frozen=True)
class Parameter:
    """A user variable the algorithm accepts, with the JSON Schema its value must satisfy."""

    name: str
    required: bool = False
    description: str = ""
    schema: Mapping[str, Any] = field(default_factory=dict)

    @property
    def default(self) -> Any:
        return self.schema.get("default")

    def to_document(self) -> dict:
        doc = {"name": self.name, "required": self.required, "schema": dict(self.schema)}
        if self.description:
            doc["description"] = self.description
        return doc


@dataclass(frozen=True)
class AlgorithmSpec:
    """The algorithm, each field declared once (yunpipe.specs.fields): document key, schema, default."""

    name: str = spec_field("name", {"type": "string", "pattern": NAME_PATTERN,
                                    "description": "a name of letters, digits, '-', '_' or '.' (at most 63 characters)"},
                           required=True)
    container_name: str = spec_field("container_name", {"type": "string", "pattern": DOCKER_REFERENCE, "maxLength": 255,
                                                        "description": "a Docker image reference such as lab/tool:1 "
                                                                       "(repository in lower case, at most 255 "
                                                                       "characters)"}, required=True)
    run_command: str = spec_field("run_command", {"type": "string", "pattern": r"\A[^\x00]+\Z", "maxLength": 65536,
                                                  "description": "a non-empty command without NUL"}, required=True)
    system: str = spec_field("system", {"type": "string", "enum": list(SUPPORTED_SYSTEMS)}, "ubuntu")
    input_file_path: str = spec_field("input_file_path", FOLDER, DEFAULT_INPUT_PATH)
    output_file_path: str = spec_field("output_file_path", FOLDER, DEFAULT_OUTPUT_PATH)
    executable_path: str = spec_field("executable_path", {"type": "string"}, "")
    # The developer's suggestion, honoured since 0.1: a step runs on EC2 instances of this type (docs/compute.md).
    instance_type: str = spec_field("instance_type", INSTANCE_TYPE_SCHEMA, "")
    gpu: int = spec_field("gpu", GPU_SCHEMA, 0)
    memory_minimal: int | None = spec_field("memory.minimal", MIB, None)
    # Without it: the minimal memory when larger than DEFAULT_MEMORY_MIB (parse_algorithm).
    memory_suggested: int = spec_field("memory.suggested", MIB, DEFAULT_MEMORY_MIB)
    cpu: float = spec_field("CPU", {"anyOf": [{"type": "number", "exclusiveMinimum": 0, "maximum": MAX_VCPUS,
                                               "description": f"a number of vCPUs greater than 0, at most {MAX_VCPUS}"},
                                              {"type": "object", "maxProperties": 0}],
                                    "description": f"a number of vCPUs greater than 0, at most {MAX_VCPUS}"}, 1,
                            convert=_vcpus)
    # Read by parse_algorithm itself, which also checks each parameter's own schema.
    parameters: tuple[Parameter, ...] = spec_field("user_specified_environment_variables", PARAMETERS_SCHEMA, ())
    ports: tuple[Mapping[str, Any], ...] = spec_field("port", PORTS_SCHEMA, (), convert=tuple)
    version_label: str = spec_field("version", {"type": ["string", "integer"],
                                                "description": "the developer's own release label"}, "", convert=str)
    description: str = spec_field("description", {"type": "string"}, "")
    timeout_seconds: int = spec_field("timeout_seconds", TIMEOUT_SCHEMA, DEFAULT_TIMEOUT_SECONDS)
    environment: Mapping[str, str] = spec_field("environment", ENVIRONMENT_SCHEMA, default_factory=dict, convert=dict)
    input_adapter: str = spec_field("input_adapter", {"type": "string", "enum": list(contract.ADAPTERS["input_adapter"])},
                                    "path")
    output_adapter: str = spec_field("output_adapter",
                                     {"type": "string", "enum": list(contract.ADAPTERS["output_adapter"])}, "path")
    # Variables ECS sets from SSM or Secrets Manager (yunpipe.specs.secrets); read by parse_algorithm.
    secrets: tuple[Secret, ...] = spec_field("secrets", SECRETS_SCHEMA, ())
    # Exit codes that mean the input is bad, so another try cannot help: the worker sends the
    # file to the dead-letter queue at once, with its report.
    permanent_exit_codes: tuple[int, ...] = spec_field("permanent_exit_codes", PERMANENT_EXIT_CODES_SCHEMA, (),
                                                       convert=lambda codes: tuple(sorted(int(c) for c in codes)))
    # False: the same input may give another result (a random seed, the time), so a result already
    # there is never taken for the job's and every job runs (the worker never skips).
    deterministic: bool = spec_field("deterministic", {"type": "boolean"}, True)

    def parameter(self, name: str) -> Parameter | None:
        return next((p for p in self.parameters if p.name == name), None)

    def to_document(self) -> dict:
        """The normalized algorithm JSON (runtime contract); parse_algorithm() reads it back."""
        memory = {"suggested": self.memory_suggested}
        if self.memory_minimal is not None:
            memory = {"minimal": self.memory_minimal, **memory}
        doc = {
            "name": self.name,
            "description": self.description,
            "container_name": self.container_name,
            "system": self.system,
            "input_file_path": self.input_file_path,
            "output_file_path": self.output_file_path,
            "executable_path": self.executable_path,
            "run_command": self.run_command,
            "input_adapter": self.input_adapter,
            "output_adapter": self.output_adapter,
            "timeout_seconds": self.timeout_seconds,
            "environment": dict(self.environment),
            "instance_type": self.instance_type,
            "memory": memory,
            "CPU": self.cpu,
            "user_specified_environment_variables": [p.to_document() for p in self.parameters],
            "port": [dict(p) for p in self.ports],
        }
        if self.version_label:
            doc["version"] = self.version_label
        # Only when asked for: documents of algorithms without GPUs stay as they were.
        if self.gpu:
            doc["gpu"] = self.gpu
        if self.secrets:
            doc["secrets"] = [s.to_document() for s in self.secrets]
        if self.permanent_exit_codes:
            doc["permanent_exit_codes"] = list(self.permanent_exit_codes)
        if not self.deterministic:
            doc["deterministic"] = False
        return doc


ALGORITHM_SCHEMA: dict = {"$schema": "https://json-schema.org/draft/2020-12/schema", **object_schema(AlgorithmSpec)}


def _names_output_folder(document: Any, words: list[str]) -> bool:
    """Whether the command names its output folder, so it may write the contract's output path
    (`<output_file_path>/<input name>`) itself. Not when that folder is "/" or the input folder:
    the output path is then unguessable (`output-<name>`) and naming the folder proves nothing."""
    output = posixpath.normpath(document.get("output_file_path", DEFAULT_OUTPUT_PATH))
    if output == "/" or output == posixpath.normpath(document.get("input_file_path", DEFAULT_INPUT_PATH)):
        return False
    folder = re.compile(re.escape(output) + r"(?![A-Za-z0-9_.-])")
    return any(folder.search(word) for word in words)


def shell_syntax(command: str) -> str | None:
    """The first piece of shell syntax in a command no shell runs (a redirection, a pipe, `;`,
    `&`, a comment, a variable or command substitution other than the placeholders), or None.
    The runscript splits the command into words and runs them as they are, so `> $output`
    would be two arguments, not a redirection."""
    quote = ""
    word_start = True
    i = 0
    while i < len(command):
        c = command[i]
        if quote == "'":
            quote = "" if c == "'" else quote
        elif c == "\\":
            i += 1
        elif c == "$" and re.match(r"\$[A-Za-z_{(]", command[i:i + 2]) and not PLACEHOLDER_AT.match(command, i):
            return re.match(r"\$(\{[^}]*\}?|\(|[A-Za-z_][A-Za-z0-9_]*)", command[i:]).group()  # type: ignore[union-attr]
        elif c == "`":
            return c
        elif quote == '"':
            quote = "" if c == '"' else quote
        elif c in "'\"":
            quote = c
        elif c in "|&;<>()" or (c == "#" and word_start):
            return c
        word_start = c in " \t\n"
        i += 1
    return None


def _shell_script(words: list[str]) -> bool:
    """Whether the command is `<shell> ... -c SCRIPT`: a shell then runs the script."""
    return posixpath.basename(words[0]) in contract.SHELLS and any(
        w.startswith("-") and not w.startswith("--") and "c" in w[1:] for w in words[1:])


def check_run_command(document: Any, source: str) -> None:
    """Refuse a run_command the runscript could not run, or whose every run would fail for want
    of an output: it must split like a shell command line, use no shell syntax outside a
    `sh -c` script, and write $output (or ${output_file}), unless the output adapter is stdout
    or it names its own output folder."""
    try:
        words = shlex.split(document["run_command"])
    except ValueError as exc:
        raise InputError(source, "run_command", f"expected a command line that splits like a shell's ({exc})") from None
    if not words:
        raise InputError(source, "run_command", "expected a non-empty command")
    writes = document.get("output_adapter") == "stdout" or any(OUTPUT_PLACEHOLDER.search(word) for word in words)
    if not writes and not _names_output_folder(document, words):
        raise InputError(source, "run_command", "expected $output or ${output_file} where the command writes its "
                                                "result (or \"output_adapter\": \"stdout\"), got a command with no output")
    syntax = None if _shell_script(words) else shell_syntax(document["run_command"])
    if syntax:
        raise InputError(source, "run_command",
                         f"expected a command without shell syntax, got {syntax!r}: yunpipe runs the command's words "
                         "without a shell; for a shell, write sh -c '...' (e.g. sh -c 'wc -l $input > $output')")


def reserved_variable(name: str) -> bool:
    return bool(PLACEHOLDER_NAME.match(name)) or name.startswith(RESERVED_PREFIXES) or name in SHELL_NAMES


def check_variable_schema(schema: Any, source: str, where: str) -> Any:
    """A variable's JSON Schema: valid, its $refs resolved inside it, its default satisfying it."""
    try:
        jsonschema.Draft202012Validator.check_schema(schema)
    except jsonschema.SchemaError as exc:
        raise InputError(source, f"{where}.schema", f"expected a valid JSON Schema ({exc.message})") from None
    reference = unresolved_reference(schema)
    if reference is not None:
        raise InputError(source, f"{where}.schema", f"expected $refs to this schema's own parts (yunpipe fetches "
                                                    f"nothing), got {reference!r}")
    if isinstance(schema, dict) and "default" in schema:
        errors = list(variable_validator(schema).iter_errors(schema["default"]))
        if errors:
            raise InputError(source, f"{where}.schema.default",
                             f"expected a default that satisfies its own schema ({errors[0].message})")
    return schema


def parse_algorithm(document: Any, source: str) -> AlgorithmSpec:
    """Validate a 0.0.3 (or newer) algorithm document and fill in the defaults."""
    validate(document, ALGORITHM_SCHEMA, source)
    check_run_command(document, source)
    parameters = []
    seen = set()
    for index, var in enumerate(document.get("user_specified_environment_variables", [])):
        where = f"user_specified_environment_variables[{index}]"
        if var["name"] in seen:
            raise InputError(source, f"{where}.name", f"expected a unique name, '{var['name']}' is declared twice")
        if reserved_variable(var["name"]):
            raise InputError(source, f"{where}.name", f"expected another name: {var['name']} is taken (by the "
                                                      "runscript's placeholders, the task or the shell)")
        seen.add(var["name"])
        parameters.append(Parameter(var["name"], bool(var.get("required", False)), var.get("description", ""),
                                    check_variable_schema(var.get("schema", {"type": "string"}), source, where)))
    for key in document.get("environment", {}):
        if key.startswith(TASK_PREFIXES):
            raise InputError(source, f"environment.{key}", f"expected another name: the task sets the "
                                                           f"{', '.join(p + '*' for p in TASK_PREFIXES)} variables")
    values = read_fields(AlgorithmSpec, document, exclude=["parameters", "secrets"])
    values["secrets"] = parse_secrets(document.get("secrets", []), source, "secrets")
    declared = {p.name for p in parameters} | set(values.get("environment", {}))
    for index, secret in enumerate(values["secrets"]):
        if secret.name in declared:
            raise InputError(source, f"secrets[{index}].name",
                             f"expected a name that is no variable of the algorithm, {secret.name!r} is one")
    check_instance(source, "", values.get("instance_type", ""), values.get("gpu", 0))
    if instance_for(values.get("gpu", 0), values.get("instance_type", "")) is None:
        raise InputError(source, "instance_type", f"expected an instance type with {values['gpu']} GPUs "
                                                  f"(the default {DEFAULT_GPU_INSTANCE_TYPE} has one)")
    memory = document.get("memory", {})
    suggested = values.setdefault("memory_suggested", max(memory.get("minimal", 0), DEFAULT_MEMORY_MIB))
    if "minimal" in memory and memory["minimal"] > suggested:
        raise InputError(source, "memory.minimal", f"expected at most memory.suggested ({suggested}), got {memory['minimal']}")
    return AlgorithmSpec(**{**values, "parameters": tuple(parameters)})


def load_algorithm(path: str | Path) -> AlgorithmSpec:
    return parse_algorithm(load_document(path), str(path))
