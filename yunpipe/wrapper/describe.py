"""`wrap -d`: describe an algorithm by answering questions, the 0.0.3 command line editor.

Every question shows its default (Enter keeps it) and is asked again until the answer is
valid. Answers come from an input function, so a script or a piped stdin can drive it.
"""
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from yunpipe.errors import InputError
from yunpipe.specs.algorithm import (
    DEFAULT_INPUT_PATH,
    DEFAULT_MEMORY_MIB,
    DEFAULT_OUTPUT_PATH,
    DEFAULT_TIMEOUT_SECONDS,
    ENV_NAME_PATTERN,
    FOLDER_PATTERN,
    NAME_PATTERN,
    SUPPORTED_SYSTEMS,
    AlgorithmSpec,
    parse_algorithm,
)
from yunpipe.specs.loading import load_document
from yunpipe.specs.workflow import INSTANCE_TYPE_PATTERN
from yunpipe.wrapper.context import IMAGE_REFERENCE

SOURCE = "described algorithm"
PARAMETER_TYPES = ("string", "integer", "number", "boolean")


class Prompter:
    def __init__(self, ask: Callable[[str], str] = input, say: Callable[[str], None] = print):
        self.ask, self.say = ask, say

    def _answer(self, question: str, default: Any) -> str:
        shown = "" if default in (None, "") else f" [{default}]"
        try:
            return self.ask(f"{question}{shown}: ").strip()
        except EOFError:
            raise InputError("stdin", question, "an answer, but the input ended") from None

    def ask_value(self, question: str, default: Any, convert: Callable[[str], Any], expected: str) -> Any:
        """Ask until convert(answer) succeeds; an empty answer stands for the default (if any)."""
        while True:
            answer = self._answer(question, default)
            if not answer and default is not None:
                answer = str(default)
            try:
                return convert(answer)
            except ValueError:
                self.say(f"  expected {expected}, got {answer!r}; try again")

    def text(self, question: str, default: str | None = "", pattern: str | None = None, expected: str = "text") -> str:
        def convert(answer: str) -> str:
            if pattern and not re.match(pattern, answer):
                raise ValueError(answer)
            return answer
        return self.ask_value(question, default, convert, expected)

    def integer(self, question: str, default: int | None, minimum: int = 1, maximum: int | None = None) -> int:
        def convert(answer: str) -> int:
            value = int(answer)
            if value < minimum or (maximum is not None and value > maximum):
                raise ValueError(answer)
            return value
        bounds = f"from {minimum}" + (f" to {maximum}" if maximum is not None else "")
        return self.ask_value(question, default, convert, f"a whole number {bounds}")

    def positive_number(self, question: str, default: float) -> float:
        def convert(answer: str) -> float:
            value = float(answer)
            if not value > 0:
                raise ValueError(answer)
            return int(value) if value.is_integer() else value
        return self.ask_value(question, default, convert, "a number greater than 0")

    def yes_no(self, question: str, default: bool = False) -> bool:
        def convert(answer: str) -> bool:
            if answer.lower() in ("y", "yes"):
                return True
            if answer.lower() in ("n", "no"):
                return False
            raise ValueError(answer)
        return self.ask_value(question, "y" if default else "n", convert, "y or n")

    def choice(self, question: str, options: tuple[str, ...], default: str) -> str:
        def convert(answer: str) -> str:
            if answer not in options:
                raise ValueError(answer)
            return answer
        return self.ask_value(f"{question} ({'/'.join(options)})", default, convert, f"one of {', '.join(options)}")


def _parameter_value(kind: str) -> Callable[[str], Any]:
    """A converter for a parameter's default value of JSON Schema type kind."""
    def convert(answer: str) -> Any:
        if kind == "integer":
            return int(answer)
        if kind == "number":
            return float(answer)
        if kind == "boolean":
            if answer.lower() not in ("true", "false"):
                raise ValueError(answer)
            return answer.lower() == "true"
        return answer
    return convert


def _parameter(p: Prompter) -> dict:
    name = p.text("  variable name", None, ENV_NAME_PATTERN, "a name of letters, digits and '_' (not starting with a digit)")
    kind = p.choice("  type", PARAMETER_TYPES, "string")
    schema: dict = {"type": kind}
    if p.yes_no("  has a default value?"):
        schema["default"] = p.ask_value("  default value", None, _parameter_value(kind), f"a {kind}")
    variable = {"name": name, "required": p.yes_no("  required?"), "schema": schema}
    description = p.text("  description", "")
    if description:
        variable["description"] = description
    return variable


def describe_document(p: Prompter, earlier: dict | None = None) -> dict:
    """The algorithm JSON from the answers; an earlier description gives the defaults."""
    start: dict = earlier or {}

    def was(key: str, default: Any = None) -> Any:
        value = start.get(key, default)
        return default if isinstance(value, (dict, list)) else value

    doc: dict = {
        "name": p.text("algorithm name (others refer to it by this name)", was("name"), NAME_PATTERN,
                       "letters, digits, '-', '_' or '.' (at most 63 characters)"),
        "container_name": p.text("your algorithm's image (container_name)", was("container_name"),
                                 IMAGE_REFERENCE.pattern, "a Docker image reference"),
        "system": p.choice("system the image is built on", SUPPORTED_SYSTEMS, was("system", "ubuntu")),
        "description": p.text("one-line description", was("description", "")),
        "run_command": p.text("command to run; write $input for the input file and $output for the output",
                              was("run_command"), r"\S", "a non-empty command"),
        "input_file_path": p.text("folder the input file is put in", was("input_file_path", DEFAULT_INPUT_PATH), FOLDER_PATTERN,
                                  "an absolute path"),
        "output_file_path": p.text("folder the output is written to", was("output_file_path", DEFAULT_OUTPUT_PATH),
                                   FOLDER_PATTERN, "an absolute path"),
        "executable_path": p.text("full path of the executable", was("executable_path", "")),
        "input_adapter": p.choice("input given as a file path, or on stdin", ("path", "stdin"),
                                  was("input_adapter", "path")),
        "output_adapter": p.choice("output written to $output, or to stdout", ("path", "stdout"),
                                   was("output_adapter", "path")),
        # Honoured since 0.1: the algorithm's steps run on such instances instead of Fargate.
        "instance_type": p.text("EC2 instance type to run on, e.g. g4dn.xlarge (empty: Fargate)",
                                was("instance_type", ""), INSTANCE_TYPE_PATTERN,
                                "an EC2 instance type such as g4dn.xlarge"),
    }
    memory: dict = start["memory"] if isinstance(start.get("memory"), dict) else {}
    suggested = p.integer("suggested memory (MiB)", memory.get("suggested", DEFAULT_MEMORY_MIB))
    earlier_minimal = memory.get("minimal")
    minimal = p.integer("minimal memory (MiB)", earlier_minimal if isinstance(earlier_minimal, int) and
                        earlier_minimal <= suggested else suggested, maximum=suggested)
    doc["memory"] = {"minimal": minimal, "suggested": suggested}
    doc["CPU"] = p.positive_number("number of vCPUs", was("CPU", 1))
    doc["timeout_seconds"] = p.integer("time limit per file (seconds)", was("timeout_seconds", DEFAULT_TIMEOUT_SECONDS))
    doc["user_specified_environment_variables"] = _kept(p, start, "user_specified_environment_variables", "variable")
    while p.yes_no("add a user-specified environment variable?"):
        doc["user_specified_environment_variables"].append(_parameter(p))
    doc["port"] = _kept(p, start, "port", "port")
    while p.yes_no("expose a port?"):
        doc["port"].append({"port": p.integer("  port", None, maximum=65535),
                            "protocol": p.choice("  protocol", ("tcp", "udp"), "tcp")})
    return doc


def _kept(p: Prompter, start: dict, key: str, what: str) -> list:
    """The earlier description's variables or ports, if the developer keeps them (checked later, with the rest)."""
    earlier = start.get(key)
    if not isinstance(earlier, list) or not earlier:
        return []
    names = ", ".join(str(item.get("name", item.get("port", "?"))) if isinstance(item, dict) else "?" for item in earlier)
    return list(earlier) if p.yes_no(f"keep the {len(earlier)} {what}(s) described before ({names})?", True) else []


def save_answers(p: Prompter, doc: dict, start_file: Path | None) -> Path | None:
    """Offer to keep the answers as a file, before anything checks or builds them: a typo then
    means editing that file (or `wrap -d -f FILE` again), not answering every question anew."""
    default = start_file or Path(f"{doc['name']}.json")
    answer = p.text("save these answers as (Enter: the file shown; '-': do not save)", str(default))
    if answer == "-":
        return None
    path = Path(answer)
    if path.exists() and path != start_file and not p.yes_no(f"{path} exists; replace it?"):
        return None
    path.write_text(json.dumps(doc, indent=2) + "\n")
    p.say(f"saved the description to {path}; `wrap -d -f {path}` starts from it")
    return path


def describe_algorithm(ask: Callable[[str], str] = input, say: Callable[[str], None] = print,
                       start_file: str | None = None) -> AlgorithmSpec:
    """Ask, offer to save, then check the answers (a refusal names the saved file, if any)."""
    prompter = Prompter(ask, say)
    start = load_document(start_file) if start_file else None
    if start is not None and not isinstance(start, dict):
        raise InputError(start_file or SOURCE, "", "expected an algorithm description (an object) to start from")
    say("Describe your algorithm (Enter keeps the [default])." if start is None else
        f"Describe your algorithm, starting from {start_file} (Enter keeps the [value]).")
    doc = describe_document(prompter, start)
    saved = save_answers(prompter, doc, Path(start_file) if start_file else None)
    return parse_algorithm(doc, str(saved) if saved else SOURCE)
