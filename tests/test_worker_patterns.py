"""The worker's regular expressions compiled when its image is built (runtime/worker/patterns.py).

Each check runs in a fresh interpreter, whose `re` has compiled nothing yet, as a task's has not.
About 3 s (the last test imports botocore twice).
"""
import marshal
import subprocess
import sys
from pathlib import Path

import pytest

from yunpipe.wrapper.context import write_worker

PY = sys.executable

# A start that compiles patterns with flags, groups, bytes and a verbose one.
START = r"""
import re
def start():
    re.compile(r"(?P<word>[a-z]+)-(\d+)", re.IGNORECASE)
    re.compile(rb"^\x00+(?P<tail>.*)$", re.DOTALL)
    re.compile(r'''
        (?P<key>\w+)   # a key
        \s*=\s*
        (?P<value>.*)  # its value
    ''', re.VERBOSE)
"""

# With `re`'s own compiler broken, only what the file holds can compile.
USE = START + r"""
import sys
from yunpipe.runtime.worker import patterns
print(patterns.load(sys.argv[1]))
def broken(*args, **kwargs):
    raise AssertionError("compiled in Python")
patterns._compiler._code = broken
first = re.compile(r"(?P<word>[a-z]+)-(\d+)", re.IGNORECASE)
print(first.match("ABC-12").groupdict(), first.match("ABC-12").group(2), first.groupindex["word"])
print(re.compile(rb"^\x00+(?P<tail>.*)$", re.DOTALL).match(b"\x00\x00a\nb").group("tail"))
print(re.compile(r'''
        (?P<key>\w+)   # a key
        \s*=\s*
        (?P<value>.*)  # its value
    ''', re.VERBOSE).match("a = b").groups())
try:
    re.compile(r"not recorded")
except AssertionError as exc:
    print(exc)
"""


def python(code: str, *args: str, cwd: Path) -> str:
    done = subprocess.run([PY, "-c", code, *args], cwd=cwd, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.fixture
def recorded(tmp_path):
    path = tmp_path / "patterns.marshal"
    out = python(START + "from yunpipe.runtime.worker import patterns\n"
                 "import sys\nprint(patterns.record(sys.argv[1], start))", str(path), cwd=tmp_path)
    assert out.strip() == "3"
    return path


def test_recorded_patterns_compile_without_res_python_compiler_and_match_the_same(recorded, tmp_path):
    lines = python(USE, str(recorded), cwd=tmp_path).splitlines()
    assert lines == ["3", "{'word': 'ABC'} 12 1", "b'a\\nb'", "('a', 'b')", "compiled in Python"]


def test_a_file_of_another_python_build_a_broken_one_or_none_is_ignored(recorded, tmp_path):
    (build, compiled) = marshal.loads(recorded.read_bytes())
    other = tmp_path / "other.marshal"
    other.write_bytes(marshal.dumps((("another python", *build[1:]), compiled)))
    broken = tmp_path / "broken.marshal"
    broken.write_bytes(recorded.read_bytes()[:100])
    check = ("import sys\nfrom yunpipe.runtime.worker import patterns\n"
             "print([patterns.load(p) for p in sys.argv[1:]])\n"
             "import re\nprint(re.compile('(a)(b)').match('ab').groups())")
    out = python(check, str(other), str(broken), str(tmp_path / "missing.marshal"), cwd=tmp_path)
    assert out.splitlines() == ["[0, 0, 0]", "('a', 'b')"]


def test_the_images_build_records_what_the_workers_start_compiles_and_the_entrypoint_uses_it(tmp_path):
    """As base.Dockerfile.j2 runs it, on the worker alone (no yunpipe package): the worker's
    imports and clients compile over a hundred patterns; a start that loads them compiles
    none of those again."""
    lib = tmp_path / "lib"
    write_worker(lib)
    site = Path(__import__("botocore").__file__).parent.parent
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": f"{lib}:{site}"}
    path = tmp_path / "patterns.marshal"
    # -S: no site-packages but PYTHONPATH's, as in the image.
    done = subprocess.run([PY, "-S", "-m", "yunpipe.runtime.worker.patterns", str(path)], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    count = int(done.stdout.split()[0])
    assert count > 100 and done.stdout.strip() == f"{count} regular expressions recorded in {path}"
    # The same start again, counting what `re` still compiles in Python.
    again = ("import sys\n"
             "from yunpipe.runtime.worker import patterns\n"
             "print(patterns.load(sys.argv[1]))\n"
             "slow = []\n"
             "code = patterns._compiler._code\n"
             "patterns._compiler._code = lambda *a: slow.append(a) or code(*a)\n"
             "patterns._start()\n"
             "print(len(slow))")
    out = subprocess.run([PY, "-S", "-c", again, str(path)], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == [str(count), "0"]
