"""A CWL CommandLineTool as an algorithm: `wrap -f tool.cwl`.

The tool (CWL v1.0 to v1.2, read with cwl-utils) becomes the algorithm document that
`parse_algorithm` validates; what has no faithful counterpart in yunpipe is an InputError
naming the CWL field. The rules (README "Files", "CWL tools"):

- `DockerRequirement.dockerPull` (or `dockerImageId`) is the container; `ResourceRequirement`
  gives `CPU` (coresMin, else coresMax) and `memory.suggested` (ramMin, else ramMax, in MiB);
  `ToolTimeLimit` gives `timeout_seconds`, `EnvVarRequirement` the command's `environment`.
  Each is read from `requirements`, else from `hints`.
- Exactly one input is a File (or `stdin`): the file yunpipe feeds. Its binding is `$input`;
  `stdin: $(inputs.NAME.path)` (or type `stdin`) is `"input_adapter": "stdin"`.
- Every other input (string, int, long, float, double, boolean or enum, optional or not) is a
  user variable of the same name (`-` and `.` become `_`) with a JSON Schema (type, enum,
  default); the command is then a `sh -c` script that reads it as "$NAME", as CWL binds it:
  an unset optional input leaves out its binding, a boolean adds its prefix only when "true".
- The command line is `baseCommand`, then `arguments` and input bindings sorted as CWL sorts
  them: by position, arguments (in their order) before inputs (by name) at equal positions.
- The one output is `type: stdout` (or a File whose glob is the `stdout` name): `"output_adapter":
  "stdout"`; or a File or Directory whose glob is a fixed name: the command runs in an empty
  working directory (CWL's output directory) and that file is moved to `$output`.
- Parameter references `$(inputs.NAME.path)` of the File input and `$(inputs.NAME)` of a
  variable are mapped; any other expression, JavaScript included, is an error.
"""
import math
import re
import shlex
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cwl_utils.errors import WorkflowException
from cwl_utils.parser import LoadingOptions, load_document_by_uri
from ruamel.yaml.error import YAMLError
from schema_salad.exceptions import SchemaSaladException
from schema_salad.fetcher import DefaultFetcher

from yunpipe.errors import InputError
from yunpipe.specs.algorithm import ENV_NAME_PATTERN, AlgorithmSpec, parse_algorithm, reserved_variable
from yunpipe.specs.loading import load_document

SCALAR_SCHEMAS = {
    "string": {"type": "string"},
    "int": {"type": "integer"},
    "long": {"type": "integer"},
    "float": {"type": "number"},
    "double": {"type": "number"},
    "boolean": {"type": "boolean"},
}
# Requirements whose absence changes nothing yunpipe can honour: the image carries the software,
# a task has a network, and every job runs.
IGNORED_REQUIREMENTS = {"SoftwareRequirement", "NetworkAccess", "WorkReuse", "LoadListingRequirement"}
MAPPED_REQUIREMENTS = {"DockerRequirement", "ResourceRequirement", "ToolTimeLimit", "EnvVarRequirement"}
# $(inputs.NAME), $(inputs['NAME']) or $(inputs["NAME"]), optionally followed by .path.
REFERENCE = re.compile(r"""\$\(inputs(?:\.([A-Za-z0-9_]+)|\['([^']+)'\]|\["([^"]+)"\])(\.path)?\)""")
MAPPED_REFERENCES = "$(inputs.NAME.path) of the File input and $(inputs.NAME) of a variable"
GLOB_CHARACTERS = re.compile(r"[*?\[]")
# Text the runscript would take for its own placeholders (docs/runtime-contract.md).
# `$input_x` and `${input_x}` too: a join substitutes them.
RUNSCRIPT_PLACEHOLDER = re.compile(r"\$\{(input|output)_file\}|\$\{input_|\$(input|output)(?![A-Za-z0-9])")


def _short(uri: str) -> str:
    """`file:///x/tool.cwl#reads` -> `reads`; an enum symbol `...#mode/fast` -> `fast`."""
    return uri.rsplit("#", 1)[-1].rsplit("/", 1)[-1]


def _describe(item: Any) -> str:
    """label, then doc (a string, or a list of them since CWL v1.1)."""
    doc = item.doc if isinstance(item.doc, list) else [item.doc]
    return "\n\n".join(str(t).strip() for t in (item.label, *doc) if t)


@dataclass(frozen=True)
class Variable:
    """A non-File input: a user variable of the algorithm."""

    name: str  # the CWL input's name
    variable: str  # the environment variable
    schema: dict
    optional: bool
    has_default: bool

    @property
    def always_set(self) -> bool:
        # setup-pipe sets a variable's default when the workflow gives no value.
        return not self.optional or self.has_default


@dataclass(frozen=True)
class Segment:
    """A piece of a command-line word: literal text, the input file, or a variable's value."""

    text: str = ""
    input_file: bool = False
    variable: Variable | None = None

    def shell(self) -> str:
        if self.input_file:
            return "$input"
        if self.variable is not None:
            return f'"${self.variable.variable}"'
        return shlex.quote(self.text) if self.text else ""


def _word(segments: list[Segment]) -> str:
    return "".join(s.shell() for s in segments) or "''"


class ToolReader:
    """Maps one loaded CommandLineTool, raising InputErrors that name this file and the field."""

    def __init__(self, tool: Any, source: str):
        self.tool = tool
        self.source = source
        self.file_input = ""
        self.variables: dict[str, Variable] = {}
        self.sections: dict[str, str] = {}  # a mapped requirement's class -> "requirements" or "hints"

    def error(self, field: str, expected: str) -> InputError:
        return InputError(self.source, field, expected)

    # ------------------------------------------------------------------ requirements

    def requirements(self) -> dict[str, Any]:
        """class -> requirement, those of `requirements` over those of `hints`."""
        found: dict[str, Any] = {}
        for section in ("hints", "requirements"):
            for item in getattr(self.tool, section, None) or []:
                name = getattr(item, "class_", None) or (item.get("class") if isinstance(item, dict) else None)
                name = _short(str(name))
                field = f"{section}.{name}"
                if name in MAPPED_REQUIREMENTS:
                    found[name] = item
                    self.sections[name] = section
                elif name == "InlineJavascriptRequirement":
                    raise self.error(field, "expected no JavaScript: yunpipe maps only " + MAPPED_REFERENCES)
                elif name == "InitialWorkDirRequirement":
                    raise self.error(field, "expected no staged working directory: yunpipe runs the command on "
                                            "the one input file, with nothing else staged")
                elif name in IGNORED_REQUIREMENTS or section == "hints":
                    continue  # a runner may ignore a hint
                else:
                    raise self.error(field, "expected only DockerRequirement, ResourceRequirement, ToolTimeLimit, "
                                            "EnvVarRequirement, " + ", ".join(sorted(IGNORED_REQUIREMENTS))
                                     + f" (yunpipe cannot map {name})")
        return found

    def container(self, requirements: dict[str, Any]) -> str:
        docker = requirements.get("DockerRequirement")
        if docker is None:
            raise self.error("requirements.DockerRequirement", "expected a DockerRequirement (in requirements or "
                                                               "hints) naming the image with dockerPull")
        for unmapped in ("dockerFile", "dockerLoad", "dockerImport", "dockerOutputDirectory"):
            if getattr(docker, unmapped, None):
                raise self.error(f"{self.sections['DockerRequirement']}.DockerRequirement.{unmapped}",
                                 "expected only dockerPull or dockerImageId: wrap builds from an image reference")
        image = docker.dockerPull or docker.dockerImageId
        if not image:
            raise self.error(f"{self.sections['DockerRequirement']}.DockerRequirement.dockerPull",
                             "expected an image reference")
        return str(image)

    def number(self, requirement: Any, names: tuple[str, ...], field: str) -> float | None:
        """The first of the requirement's fields `names` that is set; field is its class."""
        for name in names:
            value = getattr(requirement, name, None)
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise self.error(f"{self.sections[field]}.{field}.{name}",
                             f"expected a number, got {value!r} (expressions are not mapped)")
            return value
        return None

    def resources(self, requirements: dict[str, Any], document: dict) -> None:
        resource = requirements.get("ResourceRequirement")
        if resource is not None:
            cores = self.number(resource, ("coresMin", "coresMax"), "ResourceRequirement")
            if cores is not None:
                document["CPU"] = cores
            ram = self.number(resource, ("ramMin", "ramMax"), "ResourceRequirement")
            if ram is not None:
                document["memory"] = {"suggested": math.ceil(ram)}
        limit = requirements.get("ToolTimeLimit")
        if limit is not None:
            seconds = self.number(limit, ("timelimit",), "ToolTimeLimit")
            if seconds:  # 0 is CWL's "no limit": the algorithm's default stays
                document["timeout_seconds"] = math.ceil(seconds)
        env = requirements.get("EnvVarRequirement")
        if env is not None:
            environment = {}
            for definition in env.envDef or []:
                field = f"{self.sections['EnvVarRequirement']}.EnvVarRequirement.envDef.{definition.envName}"
                self.literal(definition.envValue, field)
                environment[str(definition.envName)] = str(definition.envValue)
            document["environment"] = environment

    # ------------------------------------------------------------------ inputs

    def literal(self, text: Any, field: str) -> str:
        """A string that must hold no expression."""
        if "$(" in str(text) or "${" in str(text):
            raise self.error(field, f"expected no expression, got {str(text)!r}")
        return str(text)

    def inputs(self) -> None:
        files = []
        for param in self.tool.inputs:
            name = _short(param.id)
            field = f"inputs.{name}"
            if getattr(param, "secondaryFiles", None):
                raise self.error(f"{field}.secondaryFiles", "expected no secondaryFiles: yunpipe feeds one file")
            binding = param.inputBinding
            if binding is not None and binding.valueFrom is not None:
                raise self.error(f"{field}.inputBinding.valueFrom", "expected no valueFrom: the input's own value is "
                                                                    "bound")
            kind, schema, optional = self.input_type(param.type_, f"{field}.type")
            if kind in ("File", "stdin"):
                files.append(name)
                continue
            if param.default is not None:
                schema["default"] = param.default if kind != "enum" else _short(str(param.default))
            variable = re.sub(r"[-.]", "_", name)
            if not re.match(ENV_NAME_PATTERN, variable):
                raise self.error(field, "expected a name that makes an environment variable (letters, digits, '_', "
                                        "'-' or '.', not starting with a digit)")
            if reserved_variable(variable) or variable in {v.variable for v in self.variables.values()}:
                raise self.error(field, f"expected another name: the variable {variable} is taken (by the runscript's "
                                        "placeholders, the task, the shell or another input)")
            self.variables[name] = Variable(name, variable, schema, optional, param.default is not None)
        if len(files) != 1:
            raise self.error("inputs", "expected exactly one File input (the file yunpipe feeds), got "
                                       f"{len(files)}{': ' + ', '.join(files) if files else ''}")
        self.file_input = files[0]

    def input_type(self, type_: Any, field: str) -> tuple[str, dict, bool]:
        """(kind, JSON Schema, optional) of an input's type."""
        optional = False
        if isinstance(type_, list):
            others = [t for t in type_ if t != "null"]
            if len(others) != 1:
                raise self.error(field, "expected one type, optionally with null (a union is not mapped)")
            optional, type_ = len(others) < len(type_), others[0]
        if isinstance(type_, str):
            name = _short(type_)
            if name in ("File", "stdin"):
                return name, {}, optional
            if name in SCALAR_SCHEMAS:
                return name, dict(SCALAR_SCHEMAS[name]), optional
            if name == "Directory":
                raise self.error(field, "expected File or a string, int, float, boolean or enum variable, got "
                                        "Directory (yunpipe feeds a single file)")
            raise self.error(field, "expected File or a string, int, float, boolean or enum variable, got "
                                    f"{name}")
        kind = getattr(type_, "type_", None)
        if kind == "enum":
            return "enum", {"type": "string", "enum": [_short(s) for s in type_.symbols]}, optional
        if kind == "array":
            items = type_.items if isinstance(type_.items, str) else getattr(type_.items, "type_", "?")
            raise self.error(field, f"expected File or a string, int, float, boolean or enum variable, got an array "
                                    f"({_short(str(items))}[]): yunpipe feeds one file per run")
        raise self.error(field, f"expected File or a string, int, float, boolean or enum variable, got {kind}")

    # ------------------------------------------------------------------ the command line

    def segments(self, text: Any, field: str) -> list[Segment]:
        """A CWL string with parameter references, as word segments."""
        text = str(text)
        out: list[Segment] = []
        last = 0
        for match in REFERENCE.finditer(text):
            out.extend(self.literal_segments(text[last:match.start()], field))
            name = match.group(1) or match.group(2) or match.group(3)
            if name == self.file_input:
                if not match.group(4):
                    raise self.error(field, f"expected $(inputs.{name}.path) for the File input, got {match.group()}")
                out.append(Segment(input_file=True))
            elif name in self.variables:
                if match.group(4):
                    raise self.error(field, f"expected $(inputs.{name}) ({name} is not a File), got {match.group()}")
                out.append(Segment(variable=self.variables[name]))
            else:
                raise self.error(field, f"expected a reference to an input, got {match.group()}")
            last = match.end()
        out.extend(self.literal_segments(text[last:], field))
        return out

    def literal_segments(self, text: str, field: str) -> list[Segment]:
        if "$(" in text or "${" in text:
            raise self.error(field, f"expected no expression but {MAPPED_REFERENCES} (JavaScript and other references "
                                    f"are not mapped), got {text!r}")
        if RUNSCRIPT_PLACEHOLDER.search(text):
            raise self.error(field, f"expected no $input/$output text (yunpipe substitutes it), got {text!r}")
        return [Segment(text)] if text else []

    def command_text(self, text: Any, field: str) -> str:
        """Literal text of the command line (baseCommand, a prefix)."""
        self.literal_segments(str(text), field)
        return str(text)

    def binding_words(self, value: list[Segment], binding: Any, field: str) -> str:
        """The words of one binding: its prefix and value, joined when separate is false; an unset
        optional variable leaves the binding out, a boolean is its prefix when "true"."""
        prefix = self.command_text(binding.prefix, f"{field}.prefix") if binding is not None and binding.prefix else ""
        separate = binding is None or binding.separate is not False
        variable = value[0].variable if len(value) == 1 else None
        if variable is not None and variable.schema["type"] == "boolean":
            if not prefix:
                return ""  # CWL binds a boolean as its prefix only
            if re.search(r"[\s*?\[]", prefix):
                raise self.error(f"{field}.prefix", "expected a boolean's prefix without spaces or glob characters, "
                                                    f"got {prefix!r}")
            return f'$([ "${variable.variable}" = true ] && printf %s {shlex.quote(prefix)})'
        if not prefix:
            words = _word(value)
        elif separate:
            words = f"{shlex.quote(prefix)} {_word(value)}"
        else:
            words = _word([Segment(prefix), *value])
        if variable is not None and not variable.always_set:
            return f"${{{variable.variable}+{words}}}"
        return words

    def command(self) -> list[str]:
        """The command line's words, in CWL's order."""
        base = self.tool.baseCommand or []
        base = [base] if isinstance(base, str) else base
        words = [shlex.quote(self.command_text(word, f"baseCommand[{i}]")) for i, word in enumerate(base)]
        bindings: list[tuple[tuple, str]] = []
        for index, argument in enumerate(self.tool.arguments or []):
            field = f"arguments[{index}]"
            if isinstance(argument, str):
                bindings.append(((0, 0, index), self.binding_words(self.segments(argument, field), None, field)))
                continue
            if argument.valueFrom is None:
                raise self.error(f"{field}.valueFrom", "expected a value for the argument")
            value = self.segments(argument.valueFrom, f"{field}.valueFrom")
            bindings.append(((argument.position or 0, 0, index), self.binding_words(value, argument, field)))
        for param in self.tool.inputs:
            name = _short(param.id)
            if param.inputBinding is None:
                continue
            value = [Segment(input_file=True)] if name == self.file_input else [Segment(variable=self.variables[name])]
            position = param.inputBinding.position
            if isinstance(position, str):
                raise self.error(f"inputs.{name}.inputBinding.position", "expected a number, got an expression")
            bindings.append(((position or 0, 1, name), self.binding_words(value, param.inputBinding,
                                                                          f"inputs.{name}.inputBinding")))
        words.extend(w for _, w in sorted(bindings, key=lambda b: b[0]) if w)
        if not words:
            raise self.error("baseCommand", "expected a command (baseCommand or arguments)")
        return words

    def uses_input(self, words: list[str], stdin: bool) -> None:
        if not stdin and not any(re.search(r"\$input(?![A-Za-z0-9_])", w) for w in words):
            raise self.error(f"inputs.{self.file_input}", f"expected an inputBinding, $(inputs.{self.file_input}.path) "
                                                          "in arguments, or stdin: the command never reads the file")

    # ------------------------------------------------------------------ stdin and the output

    def stdin(self) -> bool:
        typed = any(_short(p.id) == self.file_input and p.type_ == "stdin" for p in self.tool.inputs)
        if self.tool.stdin is None:
            return typed
        segments = self.segments(self.tool.stdin, "stdin")
        if len(segments) != 1 or not segments[0].input_file:
            raise self.error("stdin", f"expected $(inputs.{self.file_input}.path), got {self.tool.stdin!r}")
        return True

    def output(self) -> tuple[str, str]:
        """("stdout", "") or ("glob", the fixed name the command writes)."""
        outputs = list(self.tool.outputs)
        if len(outputs) != 1:
            names = ", ".join(_short(o.id) for o in outputs)
            raise self.error("outputs", f"expected exactly one output (yunpipe stores one result per input file), got "
                                        f"{len(outputs)}{': ' + names if names else ''}")
        output = outputs[0]
        field = f"outputs.{_short(output.id)}"
        type_ = output.type_
        if isinstance(type_, list):
            others = [t for t in type_ if t != "null"]
            type_ = others[0] if len(others) == 1 else type_
        if type_ == "stdout":
            return "stdout", ""
        if type_ not in ("File", "Directory"):
            shown = _short(type_) if isinstance(type_, str) else getattr(type_, "type_", type_)
            raise self.error(f"{field}.type", f"expected stdout, File or Directory, got {shown}")
        if getattr(output, "secondaryFiles", None):
            raise self.error(f"{field}.secondaryFiles", "expected no secondaryFiles: yunpipe stores one result")
        binding = output.outputBinding
        if binding is None or not binding.glob:
            raise self.error(f"{field}.outputBinding.glob", "expected the file name the command writes")
        if binding.outputEval is not None:
            raise self.error(f"{field}.outputBinding.outputEval", "expected no outputEval (an expression)")
        globs = binding.glob if isinstance(binding.glob, list) else [binding.glob]
        if len(globs) != 1:
            raise self.error(f"{field}.outputBinding.glob", f"expected one file name, got {len(globs)}")
        glob = str(globs[0])
        if "$(" in glob or "${" in glob:
            raise self.error(f"{field}.outputBinding.glob", f"expected a fixed file name, got an expression {glob!r}")
        if GLOB_CHARACTERS.search(glob):
            raise self.error(f"{field}.outputBinding.glob", f"expected a fixed file name, got a pattern {glob!r}")
        if type_ == "File" and self.tool.stdout is not None and glob == str(self.tool.stdout):
            return "stdout", ""
        return "glob", glob

    # ------------------------------------------------------------------ the algorithm

    def document(self, path: Path) -> dict:
        if self.tool.class_ != "CommandLineTool":
            raise self.error("class", f"expected CommandLineTool, got {self.tool.class_}")
        requirements = self.requirements()
        document: dict = {"name": self.name(path), "container_name": self.container(requirements)}
        description = _describe(self.tool)
        if description:
            document["description"] = description
        self.resources(requirements, document)
        if self.tool.successCodes not in (None, [], [0]):
            raise self.error("successCodes", f"expected none or [0], got {self.tool.successCodes}")
        self.inputs()
        stdin = self.stdin()
        words = self.command()
        self.uses_input(words, stdin)
        kind, glob = self.output()
        script = " ".join(words)
        if kind == "glob":
            # CWL runs the tool in an empty output directory and collects the glob from it.
            redirect = f" > {_word(self.segments(self.tool.stdout, 'stdout'))}" if self.tool.stdout else ""
            script = (f'cd "$(mktemp -d)" || exit 1; {script}{redirect} && mv -- {shlex.quote(glob)} $output; '
                      'set -- $? "$PWD"; cd /; rm -rf "$2"; exit "$1"')
        if kind == "glob" or self.variables:
            document["run_command"] = f"sh -c {shlex.quote(script)}"
        else:
            document["run_command"] = script
        if stdin:
            document["input_adapter"] = "stdin"
        if kind == "stdout":
            document["output_adapter"] = "stdout"
        document["user_specified_environment_variables"] = list(self.parameters())
        return document

    def parameters(self) -> Iterator[dict]:
        for param in self.tool.inputs:
            variable = self.variables.get(_short(param.id))
            if variable is None:
                continue
            # Required: a value must be given (an input neither optional nor with a default).
            required = not variable.optional and not variable.has_default
            entry: dict = {"name": variable.variable, "required": required, "schema": variable.schema}
            description = _describe(param)
            if description:
                entry["description"] = description
            yield entry

    def name(self, path: Path) -> str:
        """The tool's `id` (else the file's stem), as an algorithm name."""
        tool_id = str(self.tool.id or "")
        raw = _short(tool_id) if "#" in tool_id else path.stem
        name = re.sub(r"[^A-Za-z0-9_.-]+", "-", raw).lstrip("_.-")[:63]
        if not name:
            raise self.error("id", f"expected an id (or a file name) with a letter or digit, got {raw!r}")
        return name


def cwl_document(path: str | Path) -> dict:
    """The algorithm document of a CWL CommandLineTool file."""
    path = Path(path)
    # The bounds every spec file meets (size, nesting, aliases, keys given twice) before cwl-utils
    # reads it; CWL's metadata may hold dates, so YAML's own types pass.
    load_document(path, yaml_format=True, json_only=False)
    try:
        # A fetcher without an HTTP session: $import, $include and `run` read local files only.
        tool = load_document_by_uri(path.resolve().as_uri(), LoadingOptions(fetcher=DefaultFetcher({}, None)))
    except (SchemaSaladException, YAMLError, WorkflowException) as exc:
        raise InputError(str(path), "", f"expected a valid CWL document ({_first_line(exc)})") from None
    except (RecursionError, ValueError, TypeError, KeyError, AttributeError, IndexError) as exc:
        # cwl-utils' generated parser fails this way on some malformed documents.
        raise InputError(str(path), "", f"expected a valid CWL document (cwl-utils: {_first_line(exc)})") from None
    if isinstance(tool, list):
        raise InputError(str(path), "class", "expected one CommandLineTool, got a list of processes ($graph)")
    return ToolReader(tool, str(path)).document(path)


def _first_line(exc: BaseException) -> str:
    """schema-salad's message on one line: its lines joined, each without the `FILE:LINE:COLUMN:`
    it starts with (the file is named already), at most 600 characters."""
    lines = [re.sub(r"^\S+:\d+:\d+:\s*", "", line.strip()) for line in str(exc).strip().splitlines()]
    return " ".join(line for line in lines if line)[:600] or type(exc).__name__


def load_cwl_algorithm(path: str | Path) -> AlgorithmSpec:
    return parse_algorithm(cwl_document(path), str(path))
