"""The command line of a job: the algorithm's run_command split, its placeholders replaced by
local paths, quoted for a `sh -c` script."""
from __future__ import annotations

import posixpath
import re
import shlex
from typing import Mapping

from ..contract import INPUT_PLACEHOLDERS, OUTPUT_PLACEHOLDERS, SHELLS, placeholder_pattern


def _quote_in_shell_script(script: str, paths: dict[str, str], pattern: re.Pattern[str]) -> str:
    """Substitute placeholders inside a `sh -c` script, quoting each path for the shell state
    it lands in, so keys with spaces or quotes work whether or not the author quoted them."""
    out = []
    state = None  # None (unquoted), "'" or '"'
    i = 0
    while i < len(script):
        c = script[i]
        if c == "\\" and state != "'":
            out.append(script[i : i + 2])
            i += 2
            continue
        match = pattern.match(script, i)
        if match:
            path = paths[match.group()]
            if state is None:
                out.append(shlex.quote(path))
            elif state == "'":
                out.append(path.replace("'", "'\\''"))
            else:
                out.append(re.sub(r'([\\"$`])', r"\\\1", path))
            i = match.end()
            continue
        if state is None and c in "'\"":
            state = c
        elif state == c:
            state = None
        out.append(c)
        i += 1
    return "".join(out)


def _shell_script_index(argv: list[str]) -> int | None:
    """Index of the script operand when argv is `<shell> [options] -c script ...`."""
    if not argv or posixpath.basename(argv[0]) not in SHELLS:
        return None
    has_c = False
    i = 1
    while i < len(argv) and argv[i][:1] in ("-", "+") and argv[i] not in ("-", "--"):
        option = argv[i]
        if not option.startswith("--"):
            has_c = has_c or "c" in option[1:]
            if option[-1] in "oO":  # -o/+o take the option name as the next word
                i += 1
        i += 1
    if has_c and i < len(argv):
        return i
    return None


def substitute(
    command: str, input_path: str, output_path: str, inputs: Mapping[str, str] | None = None
) -> list[str]:
    """The argument list for run_command: split with shlex, then placeholders replaced in each
    word (so a path with spaces stays one argument); inside a `sh -c` script they are quoted.
    `inputs` (a join's step id -> local path) adds `${input_<id>}`, and `$input_<id>` for an
    id without '-' (a shell name ends at '-')."""
    paths = {**dict.fromkeys(INPUT_PLACEHOLDERS, input_path), **dict.fromkeys(OUTPUT_PLACEHOLDERS, output_path)}
    for step, path in (inputs or {}).items():
        # setdefault: `${input_file}` stays the first input even when a step is named "file".
        paths.setdefault("${input_" + step + "}", path)
        if "-" not in step:
            paths["$input_" + step] = path
    pattern = placeholder_pattern(paths)
    argv = shlex.split(command)
    script_index = _shell_script_index(argv)
    return [
        _quote_in_shell_script(word, paths, pattern)
        if i == script_index
        else pattern.sub(lambda m: paths[m.group()], word)
        for i, word in enumerate(argv)
    ]
