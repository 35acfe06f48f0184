"""The algorithm description (algorithm.json in the image) and the environment of its command."""
from __future__ import annotations

import json
import shlex
from typing import Mapping

from ..contract import ADAPTERS, ALGORITHM_DEFAULTS


def load_algorithm(path: str) -> dict:
    """Read the algorithm description, filling defaults and rejecting what cannot run."""
    with open(path, encoding="utf-8") as f:
        try:
            algorithm = json.load(f)
        except ValueError as exc:
            raise ValueError(f"{path}: the algorithm description is not valid JSON: {exc}") from None
    if not isinstance(algorithm, dict):
        raise ValueError(f"{path}: the algorithm description must be a JSON object")
    for name, default in ALGORITHM_DEFAULTS.items():
        if algorithm.get(name) is None:
            algorithm[name] = default
    try:
        words = shlex.split(str(algorithm.get("run_command") or ""))
    except ValueError as exc:
        raise ValueError(f"{path}: run_command cannot be split: {exc}") from None
    if not words:
        raise ValueError(f"{path}: run_command is empty")
    for name, allowed in ADAPTERS.items():
        if algorithm[name] not in allowed:
            raise ValueError(f"{path}: {name} must be one of {allowed}, got {algorithm[name]!r}")
    codes = algorithm["permanent_exit_codes"]
    if not isinstance(codes, list) or not all(type(c) is int and 1 <= c <= 255 for c in codes):
        raise ValueError(f"{path}: permanent_exit_codes must be a list of exit codes from 1 to 255, got {codes!r}")
    if type(algorithm["deterministic"]) is not bool:
        raise ValueError(f"{path}: deterministic must be true or false, got {algorithm['deterministic']!r}")
    return algorithm


def check_variables(algorithm: dict, environ: Mapping[str, str]) -> None:
    """ValueError when a required user variable is not set for the command (setup-pipe sets
    them on the task; a hand-edited task definition may not)."""
    env = command_env(algorithm, environ)
    declared = algorithm.get("user_specified_environment_variables") or []
    missing = [v["name"] for v in declared if isinstance(v, dict) and v.get("required") and v.get("name") not in env]
    if missing:
        raise ValueError(f"required variable(s) of the algorithm not set: {', '.join(missing)}")


def command_env(algorithm: dict, environ: Mapping[str, str]) -> dict[str, str]:
    """The command's environment: the algorithm's fixed variables, overridden by the task's
    own (the workflow's user variables are set on the task, and the user has the last word)."""
    env = {str(k): str(v) for k, v in algorithm.get("environment", {}).items()}
    env.update(environ)
    return env
