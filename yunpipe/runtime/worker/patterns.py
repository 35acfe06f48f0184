"""The regular expressions a worker's start compiles, compiled once when its image is built.

Importing botocore and urllib3 and making the clients compiles about 120 regular expressions, a
fifth of the CPU of a task's start; at Fargate's 0.25 vCPU hard limit every 10 ms of CPU is
40 ms of a cold start (bench/latency.py). `re` parses a pattern and generates its code in
Python, then hands the result to `_sre.compile`; that result depends only on the pattern, its
flags and the Python build. So the image's build records it (`python3 -m
yunpipe.runtime.worker.patterns FILE` imports the worker and makes its clients, as a task
does), and the entrypoint loads FILE before it imports the worker: `re` then skips its Python
part for every pattern FILE knows, and compiles the others as always. A FILE written by another
Python build, missing or unreadable is ignored: it can make a start slower, never wrong.
"""
from __future__ import annotations

import _sre
import marshal
import re
import sys
from typing import Any, Callable, Dict, Tuple

# `re`'s compiler module: re._compiler from Python 3.11, sre_compile before.
_compiler: Any = getattr(re, "_compiler", None)
if _compiler is None:  # pragma: no cover - Python 3.7-3.10
    import sre_compile as _compiler

# (pattern, flags) -> the rest of _sre.compile's arguments: flags, code, groups, groupindex, indexgroup.
Compiled = Dict[Tuple[Any, int], Tuple[int, list, int, dict, tuple]]
# What must match for a file's codes to be valid here.
BUILD = (sys.version, _sre.MAGIC, _sre.CODESIZE)


def _cacheable(pattern: Any, flags: int) -> bool:
    # re.DEBUG prints while compiling: such a pattern always takes the long way.
    return isinstance(pattern, (str, bytes)) and not int(flags) & re.DEBUG


def record(path: str, start: Callable[[], Any]) -> int:
    """Run `start`, then write what `re` compiled meanwhile to `path`; returns how many patterns."""
    compiled: Compiled = {}
    original, sre = _compiler.compile, _compiler._sre
    asked: list = []  # the (pattern, flags) being compiled; a pattern object is None

    class Recorder:
        """_sre as _compiler sees it while recording: its compile notes its arguments."""

        def __getattr__(self, name: str) -> Any:
            return getattr(sre, name)

        @staticmethod
        def compile(pattern: Any, flags: int, code: list, groups: int, groupindex: dict, indexgroup: tuple) -> Any:
            if asked and asked[-1] is not None:
                # marshal takes plain ints only: flags and opcodes are int subclasses.
                compiled[asked[-1]] = (int(flags), [int(c) for c in code], int(groups), dict(groupindex),
                                       tuple(indexgroup))
            return sre.compile(pattern, flags, code, groups, groupindex, indexgroup)

    def recording(pattern: Any, flags: int = 0) -> Any:
        asked.append((pattern, int(flags)) if _cacheable(pattern, flags) else None)
        try:
            return original(pattern, flags)
        finally:
            asked.pop()

    _compiler.compile, _compiler._sre = recording, Recorder()
    try:
        start()
    finally:
        _compiler.compile, _compiler._sre = original, sre
    with open(path, "wb") as out:
        marshal.dump((BUILD, compiled), out)
    return len(compiled)


def load(path: str) -> int:
    """Make `re` use the codes recorded in `path`; returns how many (0 when it cannot)."""
    try:
        with open(path, "rb") as source:
            build, compiled = marshal.load(source)
    except (OSError, EOFError, ValueError, TypeError):
        return 0
    if build != BUILD or not isinstance(compiled, dict):
        return 0
    original = _compiler.compile

    def compile_known(pattern: Any, flags: int = 0) -> Any:
        known = compiled.get((pattern, int(flags))) if _cacheable(pattern, flags) else None
        if known is None:
            return original(pattern, flags)
        return _sre.compile(pattern, *known)

    _compiler.compile = compile_known
    return len(compiled)


def _start() -> None:
    """What a task's start compiles: the worker's imports and its clients (never contacted)."""
    import os

    from .clients import make_clients
    from .main import main  # noqa: F401 - imported for what its import compiles

    environ = {"AWS_REGION": "us-east-1", "AWS_ENDPOINT_URL": "http://127.0.0.1:9"}
    # Credentials from the environment: without them botocore would look for a metadata service.
    os.environ.update(AWS_ACCESS_KEY_ID="build", AWS_SECRET_ACCESS_KEY="build")
    make_clients(environ, 1, "arn:aws:sns:us-east-1:000000000000:build")


if __name__ == "__main__":
    print(f"{record(sys.argv[1], _start)} regular expressions recorded in {sys.argv[1]}")
