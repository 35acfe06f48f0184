"""yunpipe runscript: the worker loop inside a wrapped image.

It drains the step's SQS queue: receive -> download the input object(s) -> run the algorithm's
command -> upload the result(s) -> delete the message, and exits once the queue has stayed
empty for a while. See docs/runtime-contract.md for the environment, message and report
formats it implements.

This file is copied alone into Docker images and run as ``python3 /opt/yunpipe/runscript.py``,
so it imports only the standard library and botocore (s3transfer for large objects), and must
run on Python 3.7+ (the wrapped image runs it on its own python3; wrap gives it a boto3 set that
supports that python3).
"""
from __future__ import annotations

import codecs
import dataclasses
import json
import logging
import os
import posixpath
import re
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from typing import Any, Dict, List, Mapping, Optional, Set, Tuple
from urllib.parse import quote, unquote_plus

import botocore.session
from botocore.config import Config as BotoConfig
from botocore.exceptions import BotoCoreError, ClientError

log = logging.getLogger("yunpipe.runscript")

DEFAULT_ALGORITHM_PATH = "/opt/yunpipe/algorithm.json"
STDERR_TAIL_BYTES = 4096
# SIGTERM first so the command can clean up, SIGKILL if it ignores it.
KILL_GRACE_SECONDS = 5
# A failed job's message becomes visible again after RETRY_DELAY_SECONDS * attempt (capped by
# the visibility window): prompt enough for a retry, yet a transient S3 or network error does
# not burn every try within a second. The final try is released at once so SQS can move it
# to the dead-letter queue on the next receive.
RETRY_DELAY_SECONDS = 10
# s3transfer asks HeadObject for the size before it GETs. Below its multipart threshold (8 MiB)
# a single GetObject does the same, so an input whose message gives its size is fetched with one
# request instead of two; a result that small is stored with one PutObject.
SINGLE_REQUEST_BYTES = 8 * 1024 * 1024
# Larger objects go through s3transfer: ranged GETs and multipart uploads, this many at once per
# object (its default, as `aws s3 cp`).
TRANSFER_CONCURRENCY = 10
# A download or upload of at least this many bytes is logged with its time and rate, so the
# log of a slow large file says whether the transfers or the command took the time; smaller
# files (the many-small-files case) add no lines.
LOG_TRANSFER_BYTES = SINGLE_REQUEST_BYTES
# Exit status of a worker whose configuration is bad (sysexits' EX_CONFIG): distinct from the
# 0 of a drained queue, the 1 of an AWS error and the commands' own codes, so a stopped task
# says why it stopped.
CONFIG_ERROR_EXIT = 78
# The contract's defaults, here once: the deploy engine builds its task environment from
# Config (Config.to_env) and the algorithm spec takes its defaults from ALGORITHM_DEFAULTS.
DEFAULT_MAX_RECEIVE_COUNT = 3
DEFAULT_IDLE_SECONDS = 30
DEFAULT_WAIT_SECONDS = 5
# How long a received message stays hidden; the worker extends it while its job runs, so it
# bounds how soon a crashed worker's file is retried.
DEFAULT_VISIBILITY_SECONDS = 300
# Jobs one worker runs at once. 1 for a task definition that does not say (it behaves as
# before); the deploy engine sets the step's own, by default the task's vCPUs.
DEFAULT_PARALLELISM = 1
# SQS hands out at most this many messages per ReceiveMessage.
RECEIVE_BATCH = 10
ADAPTERS = {"input_adapter": ("path", "stdin"), "output_adapter": ("path", "stdout")}
ALGORITHM_DEFAULTS: Dict[str, Any] = {
    "input_file_path": "/yunpipe/input",
    "output_file_path": "/yunpipe/output",
    "input_adapter": "path",
    "output_adapter": "path",
    "timeout_seconds": 3600,
    "environment": {},
}
# A join input's step id, as the workflow spec allows it.
STEP_ID = re.compile(r"[a-z0-9][a-z0-9-]*")
# The folder of a gather whose run name has no usable basename.
GATHER_FOLDER = "gather"
# The S3 user metadata of every result, in this order (`yunpipe results --provenance`).
PROVENANCE_FIELDS = (
    "yunpipe-pipeline", "yunpipe-step", "yunpipe-algorithm", "yunpipe-image",
    "yunpipe-input", "yunpipe-input-etag", "yunpipe-attempt",
)
# Kept as they are when a metadata value is percent-encoded: they read well in an s3:// URI
# and a comma-separated list.
METADATA_SAFE = "/:@*,"
_SHELLS = {"sh", "bash", "dash", "ash", "ksh", "mksh", "zsh"}


# --------------------------------------------------------------------------- configuration


def _int_env(environ: Mapping[str, str], name: str, default: int, minimum: int) -> int:
    raw = environ.get(name, "")
    if raw.strip() == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"{name} must be an integer, got {raw!r}") from None
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return value


@dataclasses.dataclass(frozen=True)
class Config:
    """The task environment of the runtime contract."""

    queue_url: str
    output_bucket: str
    output_prefix: str = ""
    report_bucket: Optional[str] = None
    pipeline: str = ""
    step: str = ""
    max_receive_count: int = DEFAULT_MAX_RECEIVE_COUNT
    idle_seconds: int = DEFAULT_IDLE_SECONDS
    wait_seconds: int = DEFAULT_WAIT_SECONDS
    visibility_seconds: int = DEFAULT_VISIBILITY_SECONDS
    algorithm_path: str = DEFAULT_ALGORITHM_PATH
    # Provenance only: NAME@VERSION in the registry, and the image the task runs.
    algorithm_ref: str = ""
    image: str = ""
    # The step's own limit per job; 0 keeps the algorithm's timeout_seconds.
    timeout_seconds: int = 0
    parallelism: int = DEFAULT_PARALLELISM

    @classmethod
    def from_env(cls, environ: Mapping[str, str], strict: bool = True) -> Config:
        """The configuration, or ValueError naming the bad setting. Not strict: what a
        misconfigured worker still knows, missing names empty and bad numbers at their default."""
        missing = [n for n in ("YUNPIPE_QUEUE_URL", "YUNPIPE_OUTPUT_BUCKET") if not environ.get(n)]
        if missing and strict:
            raise ValueError(f"missing required environment variable(s): {', '.join(missing)}")

        def _int(name: str, default: int, minimum: int) -> int:
            try:
                return _int_env(environ, name, default, minimum)
            except ValueError:
                if strict:
                    raise
                return default

        return cls(
            queue_url=environ.get("YUNPIPE_QUEUE_URL", ""),
            output_bucket=environ.get("YUNPIPE_OUTPUT_BUCKET", ""),
            output_prefix=environ.get("YUNPIPE_OUTPUT_PREFIX", ""),
            report_bucket=environ.get("YUNPIPE_REPORT_BUCKET") or None,
            pipeline=environ.get("YUNPIPE_PIPELINE", ""),
            step=environ.get("YUNPIPE_STEP", ""),
            max_receive_count=_int("YUNPIPE_MAX_RECEIVE_COUNT", DEFAULT_MAX_RECEIVE_COUNT, 1),
            idle_seconds=_int("YUNPIPE_IDLE_SECONDS", DEFAULT_IDLE_SECONDS, 0),
            # SQS rejects long polls over 20 s; clamp rather than crash the task.
            wait_seconds=min(_int("YUNPIPE_WAIT_SECONDS", DEFAULT_WAIT_SECONDS, 0), 20),
            # At least 1 s: the heartbeat ticks every half window.
            visibility_seconds=_int("YUNPIPE_VISIBILITY_SECONDS", DEFAULT_VISIBILITY_SECONDS, 1),
            algorithm_path=environ.get("YUNPIPE_ALGORITHM") or DEFAULT_ALGORITHM_PATH,
            algorithm_ref=environ.get("YUNPIPE_ALGORITHM_REF", ""),
            image=environ.get("YUNPIPE_IMAGE", ""),
            timeout_seconds=_int("YUNPIPE_TIMEOUT_SECONDS", 0, 0),
            parallelism=_int("YUNPIPE_PARALLELISM", DEFAULT_PARALLELISM, 1),
        )

    def to_env(self) -> Dict[str, str]:
        """The task environment from_env reads back as this Config (every setting, so a task
        definition says all it means)."""
        return {
            "YUNPIPE_QUEUE_URL": self.queue_url,
            "YUNPIPE_OUTPUT_BUCKET": self.output_bucket,
            "YUNPIPE_OUTPUT_PREFIX": self.output_prefix,
            "YUNPIPE_REPORT_BUCKET": self.report_bucket or "",
            "YUNPIPE_PIPELINE": self.pipeline,
            "YUNPIPE_STEP": self.step,
            "YUNPIPE_MAX_RECEIVE_COUNT": str(self.max_receive_count),
            "YUNPIPE_IDLE_SECONDS": str(self.idle_seconds),
            "YUNPIPE_WAIT_SECONDS": str(self.wait_seconds),
            "YUNPIPE_VISIBILITY_SECONDS": str(self.visibility_seconds),
            "YUNPIPE_ALGORITHM": self.algorithm_path,
            "YUNPIPE_ALGORITHM_REF": self.algorithm_ref,
            "YUNPIPE_IMAGE": self.image,
            "YUNPIPE_TIMEOUT_SECONDS": str(self.timeout_seconds),
            "YUNPIPE_PARALLELISM": str(self.parallelism),
        }


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
    return algorithm


def check_variables(algorithm: dict, environ: Mapping[str, str]) -> None:
    """ValueError when a required user variable is not set for the command (setup-pipe sets
    them on the task; a hand-edited task definition may not)."""
    env = command_env(algorithm, environ)
    declared = algorithm.get("user_specified_environment_variables") or []
    missing = [v["name"] for v in declared if isinstance(v, dict) and v.get("required") and v.get("name") not in env]
    if missing:
        raise ValueError(f"required variable(s) of the algorithm not set: {', '.join(missing)}")


def command_env(algorithm: dict, environ: Mapping[str, str]) -> Dict[str, str]:
    """The command's environment: the algorithm's fixed variables, overridden by the task's
    own (the workflow's user variables are set on the task, and the user has the last word)."""
    env = {str(k): str(v) for k, v in algorithm.get("environment", {}).items()}
    env.update(environ)
    return env


def make_clients(environ: Mapping[str, str], parallelism: int):
    """SQS and S3 clients, made once in the main thread (a session is not thread-safe, its
    clients are) and shared by the jobs. botocore's own session: boto3's costs a 0.25 vCPU task
    another 0.3 s of its cold start (bench/latency.py), and nothing here needs it. The endpoint is
    passed explicitly because older botocore ignores AWS_ENDPOINT_URL; path-style S3 addressing
    keeps emulators on an IP working. The connection pool has room for every job's transfers."""
    region = environ.get("AWS_REGION") or environ.get("AWS_DEFAULT_REGION")
    connections = TRANSFER_CONCURRENCY * parallelism
    session = botocore.session.get_session()
    clients = []
    for service in ("sqs", "s3"):
        endpoint = environ.get(f"AWS_ENDPOINT_URL_{service.upper()}") or environ.get("AWS_ENDPOINT_URL")
        s3_options = {"addressing_style": "path"} if endpoint and service == "s3" else None
        config = BotoConfig(s3=s3_options, max_pool_connections=connections)
        clients.append(session.create_client(service, region_name=region, endpoint_url=endpoint, config=config))
    return clients[0], clients[1]


# --------------------------------------------------------------------------- paths and keys


def file_name(key: str) -> str:
    """The local file name of an object key: its basename."""
    base = posixpath.basename(key)
    # A "folder" marker key or a dot name cannot be a file name (and must not escape the dir).
    if base in ("", ".", ".."):
        raise ValueError(f"key {key!r} does not name a file")
    return base


def _within(path: str, folder: str) -> bool:
    path, folder = os.path.normpath(path), os.path.normpath(folder)
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def local_output_path(algorithm: dict, name: str, input_paths: List[str]) -> str:
    """`<output_file_path>/<name>`, or `output-<name>` there when that would be an input or a
    folder holding one (input and output folders are often the same)."""
    path = os.path.join(algorithm["output_file_path"], name)
    if any(_within(p, path) for p in input_paths):
        path = os.path.join(algorithm["output_file_path"], "output-" + name)
    return path


def local_paths(algorithm: dict, key: str) -> Tuple[str, str]:
    """(input path, output path) for an object key, as the contract places them."""
    base = file_name(key)
    input_path = os.path.join(algorithm["input_file_path"], base)
    return input_path, local_output_path(algorithm, base, [input_path])


def join_input_path(algorithm: dict, step: str, key: str) -> str:
    """Where a join's input from `step` goes: `<input_file_path>/<step>/<basename of key>`."""
    return os.path.join(algorithm["input_file_path"], step, file_name(key))


def gather_folder_name(key: str) -> str:
    """The folder a gather downloads into: the run name's basename, or GATHER_FOLDER."""
    base = posixpath.basename(key)
    return GATHER_FOLDER if base in ("", ".", "..") else base


def gather_relative_path(prefix: str, key: str) -> str:
    """The path under the gather folder of an object found under `prefix`; ValueError for a key
    that would land outside it."""
    # The object at the prefix itself keeps its own name.
    rest = key[len(prefix):] or posixpath.basename(key)
    parts = [p for p in rest.split("/") if p not in ("", ".")]
    if not parts or ".." in parts:
        raise ValueError(f"key {key!r} does not name a file inside the gather folder")
    return "/".join(parts)


def result_objects(prefix: str, key: str, output_path: str) -> List[Tuple[str, str]]:
    """(local file, result key) pairs: a file result goes to prefix+key, a directory result to
    prefix+key/relpath for every file in it. Empty when there is nothing to upload."""
    if os.path.isfile(output_path):
        return [(output_path, prefix + key)]
    pairs = []
    if os.path.isdir(output_path):
        for root, dirs, files in os.walk(output_path):
            dirs.sort()
            for name in sorted(files):
                path = os.path.join(root, name)
                rel = os.path.relpath(path, output_path).replace(os.sep, "/")
                pairs.append((path, f"{prefix}{key}/{rel}"))
    return pairs


def report_key(config: Config, key: str, attempt: int) -> str:
    # An unnamed pipeline/step becomes "_" so the key has no empty path segment.
    return f"failures/{config.pipeline or '_'}/{config.step or '_'}/{key}/attempt-{attempt}.json"


# --------------------------------------------------------------------------- command line


def _placeholder_pattern(names: List[str]) -> re.Pattern[str]:
    """Braced placeholders match as written; a bare one only as a whole shell variable name, so
    `$inputs`, and `$input_x` when no input is named x, are left alone (and `$input_ab` is never
    `$input_a` followed by "b")."""
    alternatives = [re.escape(name) + ("" if name.startswith("${") else r"(?![A-Za-z0-9_])") for name in names]
    return re.compile("|".join(alternatives))


def _quote_in_shell_script(script: str, paths: Dict[str, str], pattern: re.Pattern[str]) -> str:
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


def _shell_script_index(argv: List[str]) -> Optional[int]:
    """Index of the script operand when argv is `<shell> [options] -c script ...`."""
    if not argv or posixpath.basename(argv[0]) not in _SHELLS:
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
    command: str, input_path: str, output_path: str, inputs: Optional[Mapping[str, str]] = None
) -> List[str]:
    """The argument list for run_command: split with shlex, then placeholders replaced in each
    word (so a path with spaces stays one argument); inside a `sh -c` script they are quoted.
    `inputs` (a join's step id -> local path) adds `${input_<id>}`, and `$input_<id>` for an
    id without '-' (a shell name ends at '-')."""
    paths = {
        "$input": input_path,
        "${input_file}": input_path,
        "$output": output_path,
        "${output_file}": output_path,
    }
    for step, path in (inputs or {}).items():
        # setdefault: `${input_file}` stays the first input even when a step is named "file".
        paths.setdefault("${input_" + step + "}", path)
        if "-" not in step:
            paths["$input_" + step] = path
    pattern = _placeholder_pattern(list(paths))
    argv = shlex.split(command)
    script_index = _shell_script_index(argv)
    return [
        _quote_in_shell_script(word, paths, pattern)
        if i == script_index
        else pattern.sub(lambda m: paths[m.group()], word)
        for i, word in enumerate(argv)
    ]


# --------------------------------------------------------------------------- running a command


@dataclasses.dataclass
class RunOutcome:
    exit_code: int
    timed_out: bool
    interrupted: bool
    stderr_tail: str


def _kill_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


# The commands running now, by pid. Jobs run at once, so reaping orphans must leave alone the
# children whose exit status a job is waiting for.
_COMMANDS: Set[int] = set()
_COMMANDS_LOCK = threading.Lock()


def _zombie_children() -> List[int]:
    """Our children that have exited and are not reaped yet (Linux /proc)."""
    me, found = str(os.getpid()), []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # gone meanwhile
        if fields[:2] == ["Z", me]:
            found.append(int(entry))
    return found


def _reap_orphans() -> None:
    """As PID 1 of a container the runscript inherits the commands' orphaned processes and
    must reap them, or they pile up as zombies. Only zombies that are no running command are
    reaped, pid by pid, so it never steals the exit status another job's command will report."""
    with _COMMANDS_LOCK:
        for pid in _zombie_children():
            if pid not in _COMMANDS:
                try:
                    os.waitpid(pid, os.WNOHANG)
                except ChildProcessError:
                    pass


def _pump_stderr(stream, tail: bytearray) -> None:
    """Copy the command's stderr to ours (CloudWatch) while keeping its last bytes."""
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    while True:
        chunk = stream.read1(65536)
        if not chunk:
            break
        sys.stderr.write(decoder.decode(chunk))
        sys.stderr.flush()
        tail.extend(chunk)
        del tail[:-STDERR_TAIL_BYTES]
    stream.close()


def run_command(
    argv: List[str],
    *,
    env: Mapping[str, str],
    stdin_path: Optional[str] = None,
    stdout_path: Optional[str] = None,
    timeout: Optional[float] = None,
    stop: Optional[threading.Event] = None,
) -> RunOutcome:
    """Run argv in its own process group; kill the group on timeout or when `stop` is set.
    Raises OSError when the program cannot be started."""
    stdin = open(stdin_path, "rb") if stdin_path else subprocess.DEVNULL
    # Path adapter: the command's stdout is left on ours, so it reaches the task's log.
    stdout = open(stdout_path, "wb") if stdout_path else None
    try:
        # Registered before a reaper can see it exit.
        with _COMMANDS_LOCK:
            proc = subprocess.Popen(
                argv, stdin=stdin, stdout=stdout, stderr=subprocess.PIPE, env=dict(env), start_new_session=True
            )
            _COMMANDS.add(proc.pid)
    finally:
        for f in (stdin, stdout):
            close = getattr(f, "close", None)
            if close is not None:
                close()
    tail = bytearray()
    pump = threading.Thread(target=_pump_stderr, args=(proc.stderr, tail), daemon=True)
    pump.start()
    deadline = time.monotonic() + timeout if timeout else None
    timed_out = interrupted = False
    while True:
        try:
            proc.wait(timeout=0.1)
            break
        except subprocess.TimeoutExpired:
            pass
        timed_out = deadline is not None and time.monotonic() >= deadline
        interrupted = stop is not None and stop.is_set()
        if timed_out or interrupted:
            _kill_group(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=KILL_GRACE_SECONDS)
            except subprocess.TimeoutExpired:
                _kill_group(proc.pid, signal.SIGKILL)
                proc.wait()
            break
    # Reaped by the wait above: its pid is no running command's any more.
    with _COMMANDS_LOCK:
        _COMMANDS.discard(proc.pid)
    # Background processes the command left behind must not outlive the job (they would hold
    # the stderr pipe and leak into the next job).
    _kill_group(proc.pid, signal.SIGKILL)
    pump.join(timeout=KILL_GRACE_SECONDS)
    if os.getpid() == 1:
        _reap_orphans()
    return RunOutcome(
        exit_code=proc.returncode,
        timed_out=timed_out,
        interrupted=interrupted,
        stderr_tail=bytes(tail).decode("utf-8", errors="replace"),
    )


# --------------------------------------------------------------------------- one message


@dataclasses.dataclass
class JobResult:
    ok: bool
    key: Optional[str]
    attempt: int
    final: bool
    result_keys: List[str] = dataclasses.field(default_factory=list)
    # Set when the job was abandoned because the worker is stopping: no report, no retry delay.
    interrupted: bool = False
    reason: Optional[str] = None
    report: Optional[dict] = None


class JobFailure(Exception):
    def __init__(self, reason: str, detail: str, exit_code: Optional[int] = None):
        super().__init__(detail)
        self.reason = reason
        self.detail = detail
        self.exit_code = exit_code


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


@dataclasses.dataclass(frozen=True)
class Source:
    """An object a job reads: the message's own, or one input of a join (`step` set)."""

    bucket: str
    key: str
    etag: Optional[str] = None
    size: Optional[int] = None
    step: str = ""

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.key}"


@dataclasses.dataclass(frozen=True)
class Job:
    """A message: one object; a join of one object per upstream step (`inputs`, in the
    workflow's order); or a gather of every object under `gather_prefix`."""

    source: Source
    inputs: Tuple[Source, ...] = ()
    gather_prefix: Optional[str] = None


def _source(data: Any, what: str, step: str = "") -> Source:
    if not isinstance(data, dict) or not data.get("bucket") or not data.get("key"):
        raise JobFailure("bad_message", f"{what} lacks bucket or key")
    size = data.get("size")
    size = size if isinstance(size, int) and not isinstance(size, bool) and size >= 0 else None
    return Source(str(data["bucket"]), str(data["key"]), data.get("etag"), size, step)


def _join_inputs(inputs: Any) -> Tuple[Source, ...]:
    if not isinstance(inputs, list) or not inputs:
        raise JobFailure("bad_message", "message inputs must be a non-empty list")
    sources = []
    for index, item in enumerate(inputs):
        step = item.get("step") if isinstance(item, dict) else None
        if not isinstance(step, str) or not STEP_ID.fullmatch(step):
            raise JobFailure("bad_message", f"inputs[{index}].step must match ^{STEP_ID.pattern}$, got {step!r}")
        sources.append(_source(item, f"inputs[{index}]", step))
    steps = [s.step for s in sources]
    if len(set(steps)) != len(steps):
        raise JobFailure("bad_message", f"message inputs name a step twice: {', '.join(steps)}")
    return tuple(sources)


def _gather_prefix(gather: Any) -> str:
    prefix = gather.get("prefix") if isinstance(gather, dict) else None
    if not isinstance(prefix, str):
        raise JobFailure("bad_message", 'message gather must be {"prefix": "<prefix>"}')
    return prefix


def parse_body(body: str) -> Job:
    """The job of a message body; the size is dropped when not a whole number."""
    try:
        data = json.loads(body)
    except ValueError as exc:
        raise JobFailure("bad_message", f"message body is not JSON: {exc}") from None
    source = _source(data, "message body")
    inputs, gather = data.get("inputs"), data.get("gather")
    if inputs is not None and gather is not None:
        raise JobFailure("bad_message", "message has both inputs and gather")
    if inputs is not None:
        return Job(source, inputs=_join_inputs(inputs))
    if gather is not None:
        return Job(source, gather_prefix=_gather_prefix(gather))
    return Job(source)


def _not_found(exc: ClientError) -> bool:
    # The task role may not list its input bucket, and S3 answers such a caller's request for a
    # missing key with 403, not 404.
    return exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound", "403", "AccessDenied")


def _remove(path: str) -> None:
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path, ignore_errors=True)
    elif os.path.lexists(path):
        os.remove(path)


def _overlap(paths: Tuple[str, ...], others: Tuple[str, ...]) -> bool:
    return any(_within(p, q) or _within(q, p) for p in paths for q in others)


class PathLocks:
    """The local paths of the jobs running at once. The algorithm's folders are fixed, so two
    messages whose keys share a basename (or one message delivered twice) would use the same
    files: a job waits while another holds a path equal to, inside or holding one of its own."""

    def __init__(self) -> None:
        self._held: List[Tuple[str, ...]] = []
        self._changed = threading.Condition()

    def acquire(self, paths: Tuple[str, ...], stop: Optional[threading.Event]) -> bool:
        """Hold `paths` once no job holds one of them; False when `stop` is set first."""
        with self._changed:
            while not (stop is not None and stop.is_set()):
                if not any(_overlap(paths, held) for held in self._held):
                    self._held.append(paths)
                    return True
                # `stop` cannot notify: look again now and then.
                self._changed.wait(0.1)
            return False

    def release(self, paths: Tuple[str, ...], folders: List[str]) -> None:
        """Let `paths` go, and remove each of `folders` that is empty and holds no other
        job's path (a join's step folders are shared by the jobs of that step)."""
        with self._changed:
            self._held.remove(paths)
            for folder in folders:
                if not any(_within(p, folder) for held in self._held for p in held):
                    try:
                        os.rmdir(folder)
                    except OSError:
                        pass  # not empty: not only this job's
            self._changed.notify_all()


def _join_paths(algorithm: dict, job: Job) -> Tuple[Dict[str, str], str]:
    """A join's (step id -> input path, output path); ValueError for a key naming no file."""
    inputs = {s.step: join_input_path(algorithm, s.step, s.key) for s in job.inputs}
    return inputs, local_output_path(algorithm, file_name(job.source.key), list(inputs.values()))


def _gather_paths(algorithm: dict, key: str) -> Tuple[str, str]:
    """A gather's (folder, output path)."""
    name = gather_folder_name(key)
    folder = os.path.join(algorithm["input_file_path"], name)
    return folder, local_output_path(algorithm, name, [folder])


def job_paths(algorithm: dict, job: Job) -> Tuple[str, ...]:
    """Every local path a job may write: its input(s) or gather folder and its output, for a
    plain message those of its URL-decoded key too. A key naming no file adds nothing (the
    job fails on it before it touches the disk)."""
    try:
        if job.inputs:
            inputs, output = _join_paths(algorithm, job)
            return tuple(inputs.values()) + (output,)
        if job.gather_prefix is not None:
            return _gather_paths(algorithm, job.source.key)
    except ValueError:
        return ()
    paths: List[str] = []
    for key in dict.fromkeys((job.source.key, unquote_plus(job.source.key))):
        try:
            paths.extend(local_paths(algorithm, key))
        except ValueError:
            pass
    return tuple(paths)


class Scratch:
    """The local paths of one job: held in `locks` while it runs, removed when it ends. A
    join's step folders go only when empty: a step id may name a folder the image has (`tmp`
    under input_file_path `/`)."""

    def __init__(self, locks: PathLocks) -> None:
        self.paths: List[str] = []
        self.folders: List[str] = []
        self._locks = locks
        self._held: Optional[Tuple[str, ...]] = None

    def hold(self, paths: Tuple[str, ...], stop: Optional[threading.Event]) -> bool:
        """Wait until no other job uses `paths`, then keep them until clear(); False when the
        worker stops first."""
        if not self._locks.acquire(paths, stop):
            return False
        self._held = paths
        return True

    def claim(self, path: str) -> str:
        """Take `path` for this job: make its folder, clear what a crashed job left there (a
        stale output would pass for a result, stale gathered files for input)."""
        self.paths.append(path)
        try:
            os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
            _remove(path)
        except OSError as exc:
            raise JobFailure("download_error", f"cannot prepare {path}: {exc}") from None
        return path

    def clear(self) -> None:
        try:
            for path in self.paths:
                _remove(path)
        finally:
            # Folders are claimed only by a job holding its paths.
            if self._held is not None:
                self._locks.release(self._held, self.folders)


@dataclasses.dataclass(frozen=True)
class Staged:
    """A job's inputs on disk."""

    key: str  # the message's key, URL-decoded when only the decoded object exists
    input_path: str  # `$input`: the (first) input file, or the gathered folder
    output_path: str
    step_inputs: Dict[str, str] = dataclasses.field(default_factory=dict)  # a join's step id -> file


def _fetch(s3, bucket: str, key: str, path: str, size: Optional[int]) -> None:
    """Download one object; `size`, when known, picks a single GetObject for a small one."""
    if size is not None and size < SINGLE_REQUEST_BYTES:
        body = s3.get_object(Bucket=bucket, Key=key)["Body"]
        with open(path, "wb") as out:
            shutil.copyfileobj(body, out)
    else:
        started = time.monotonic()
        with _transfers(s3) as manager:
            manager.download(bucket, key, path).result()
        _log_transfer("downloaded", f"s3://{bucket}/{key}", os.path.getsize(path), time.monotonic() - started)


def _upload(s3, path: str, bucket: str, key: str, metadata: Dict[str, str]) -> None:
    """Upload one result (s3transfer: multipart from 8 MiB) with its provenance metadata."""
    size = os.path.getsize(path)
    started = time.monotonic()
    if size < SINGLE_REQUEST_BYTES:
        with open(path, "rb") as body:
            s3.put_object(Bucket=bucket, Key=key, Body=body, Metadata=metadata)
    else:
        with _transfers(s3) as manager:
            manager.upload(path, bucket, key, extra_args={"Metadata": metadata}).result()
    _log_transfer("uploaded", f"s3://{bucket}/{key}", size, time.monotonic() - started)


def _transfers(s3):
    """An s3transfer manager for one large object, imported only then: most jobs never need it."""
    from s3transfer.manager import TransferConfig, TransferManager

    return TransferManager(s3, TransferConfig(max_request_concurrency=TRANSFER_CONCURRENCY))


def _log_transfer(verb: str, uri: str, size: int, seconds: float) -> None:
    if size >= LOG_TRANSFER_BYTES:
        rate = size / 2**20 / max(seconds, 1e-6)
        log.info("%s %s bytes=%d in %.2fs (%.1f MiB/s)", verb, uri, size, seconds, rate)


def _download(s3, source: Source, path: str) -> None:
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        _fetch(s3, source.bucket, source.key, path, source.size)
    except (BotoCoreError, ClientError, OSError) as exc:
        raise JobFailure("download_error", f"{source.uri}: {exc}") from None


def _job_paths(algorithm: dict, key: str) -> Tuple[str, str]:
    try:
        return local_paths(algorithm, key)
    except ValueError as exc:
        raise JobFailure("bad_message", str(exc)) from None


def _stage_object(s3, algorithm: dict, source: Source, scratch: Scratch, try_decoded: bool = True) -> Staged:
    input_path, output = (scratch.claim(p) for p in _job_paths(algorithm, source.key))
    try:
        _fetch(s3, source.bucket, source.key, input_path, source.size)
    except (BotoCoreError, ClientError, OSError) as exc:
        # The launcher decodes keys; a still-encoded key from another sender is retried decoded.
        decoded = unquote_plus(source.key)
        if try_decoded and decoded != source.key and isinstance(exc, ClientError) and _not_found(exc):
            log.warning("%s not found, trying the URL-decoded key", source.uri)
            return _stage_object(s3, algorithm, dataclasses.replace(source, key=decoded), scratch, try_decoded=False)
        raise JobFailure("download_error", f"{source.uri}: {exc}") from None
    return Staged(source.key, input_path, output)


def _stage_join(s3, algorithm: dict, job: Job, scratch: Scratch) -> Staged:
    try:
        paths, output_path = _join_paths(algorithm, job)
    except ValueError as exc:
        raise JobFailure("bad_message", str(exc)) from None
    for path in paths.values():
        scratch.folders.append(os.path.dirname(path))
        scratch.claim(path)
    output = scratch.claim(output_path)
    for source in job.inputs:
        _download(s3, source, paths[source.step])
    return Staged(job.source.key, paths[job.inputs[0].step], output, paths)


def _gather_listing(s3, source: Source, prefix: str) -> List[Source]:
    """Every object to gather: folder markers and the run's own marker object are not data."""
    found = []
    try:
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=source.bucket, Prefix=prefix):
            for obj in page.get("Contents", []):
                if not obj["Key"].endswith("/") and obj["Key"] != source.key:
                    found.append(Source(source.bucket, obj["Key"], size=obj.get("Size")))
    except (BotoCoreError, ClientError) as exc:
        raise JobFailure("download_error", f"cannot list s3://{source.bucket}/{prefix}*: {exc}") from None
    return found


def _stage_gather(s3, algorithm: dict, job: Job, scratch: Scratch) -> Staged:
    source, prefix = job.source, job.gather_prefix or ""
    if algorithm["input_adapter"] == "stdin":
        raise JobFailure("unsupported_input", "a gather is a folder of files; this algorithm reads a single "
                         "file on its stdin (input_adapter stdin)")
    folder, output = (scratch.claim(p) for p in _gather_paths(algorithm, source.key))
    objects = _gather_listing(s3, source, prefix)
    if not objects:
        raise JobFailure("empty_gather", f"no objects under s3://{source.bucket}/{prefix}")
    try:
        # Every path is checked before the first download: a bad key fails the job at once.
        targets = [(obj, os.path.join(folder, gather_relative_path(prefix, obj.key))) for obj in objects]
    except ValueError as exc:
        raise JobFailure("download_error", str(exc)) from None
    for obj, path in targets:
        _download(s3, obj, path)
    return Staged(source.key, folder, output)


def stage(s3, algorithm: dict, job: Job, scratch: Scratch) -> Staged:
    """Download a job's input(s) to where the command expects them."""
    if job.inputs:
        return _stage_join(s3, algorithm, job, scratch)
    if job.gather_prefix is not None:
        return _stage_gather(s3, algorithm, job, scratch)
    return _stage_object(s3, algorithm, job.source, scratch)


def metadata_value(value: str) -> str:
    """`value` as S3 user metadata can carry it: an HTTP header holds printable ASCII and loses
    surrounding spaces. Anything else, or a '%' (so a reader can always percent-decode), is
    percent-encoded."""
    if value.isascii() and value.isprintable() and "%" not in value and value == value.strip():
        return value
    return quote(value, safe=METADATA_SAFE)


def provenance(config: Config, job: Job, key: str, attempt: int) -> Dict[str, str]:
    """The S3 user metadata of a job's results (PROVENANCE_FIELDS); empty values are left out."""
    if job.gather_prefix is not None:
        inputs, etags = f"s3://{job.source.bucket}/{job.gather_prefix}*", [job.source.etag]
    else:
        sources = job.inputs or (dataclasses.replace(job.source, key=key),)
        inputs, etags = ",".join(s.uri for s in sources), [s.etag for s in sources]
    values = {
        "yunpipe-pipeline": config.pipeline,
        "yunpipe-step": config.step,
        "yunpipe-algorithm": config.algorithm_ref,
        "yunpipe-image": config.image,
        "yunpipe-input": inputs,
        # One per input, in order, so a missing one keeps its place.
        "yunpipe-input-etag": ",".join(str(e or "") for e in etags) if any(etags) else "",
        "yunpipe-attempt": str(attempt),
    }
    return {name: metadata_value(values[name]) for name in PROVENANCE_FIELDS if values[name]}


def process_message(
    message: dict,
    config: Config,
    algorithm: dict,
    s3,
    *,
    environ: Mapping[str, str],
    stop: Optional[threading.Event] = None,
    config_error: Optional[str] = None,
    locks: Optional[PathLocks] = None,
) -> JobResult:
    """Run one job. Does not touch the queue: run_worker deletes or releases the message.
    With a config_error the job fails at once, reporting it. `locks` holds the local paths of
    the jobs running at once: the job starts once none of its own is among them, unless
    `stop` is set first (then it is abandoned untouched)."""
    attempt = int(message.get("Attributes", {}).get("ApproximateReceiveCount", "1"))
    final = attempt >= config.max_receive_count
    started_at, t0 = _now(), time.monotonic()
    job: Optional[Job] = None
    key: Optional[str] = None
    scratch = Scratch(locks or PathLocks())
    stderr_tail, exit_code = "", None
    try:
        job = parse_body(message.get("Body", ""))
        key = job.source.key
        if config_error:
            raise JobFailure("config_error", f"the worker's configuration is bad: {config_error}")
        if not scratch.hold(job_paths(algorithm, job), stop):
            return _abandoned(key, attempt, final)
        staged = stage(s3, algorithm, job, scratch)
        key = staged.key
        argv = substitute(algorithm["run_command"], staged.input_path, staged.output_path, staged.step_inputs)
        timeout = config.timeout_seconds or algorithm["timeout_seconds"]
        try:
            outcome = run_command(
                argv,
                env=command_env(algorithm, environ),
                stdin_path=staged.input_path if algorithm["input_adapter"] == "stdin" else None,
                stdout_path=staged.output_path if algorithm["output_adapter"] == "stdout" else None,
                timeout=timeout,
                stop=stop,
            )
        except OSError as exc:
            raise JobFailure("start_error", f"cannot start {argv[0]!r}: {exc}") from None
        stderr_tail, exit_code = outcome.stderr_tail, outcome.exit_code
        if outcome.interrupted:
            return _abandoned(key, attempt, final)
        if outcome.timed_out:
            raise JobFailure("timeout", f"killed after {timeout} s", exit_code)
        if exit_code != 0:
            raise JobFailure("nonzero_exit", f"command exited with {exit_code}", exit_code)
        objects = result_objects(config.output_prefix, key, staged.output_path)
        if not objects:
            what = "is an empty directory" if os.path.isdir(staged.output_path) else "was not created"
            raise JobFailure("missing_output", f"output {staged.output_path} {what}", exit_code)
        metadata = provenance(config, job, key, attempt)
        for local, result_key in objects:
            try:
                _upload(s3, local, config.output_bucket, result_key, metadata)
            except (BotoCoreError, ClientError, OSError) as exc:
                raise JobFailure("upload_error", f"s3://{config.output_bucket}/{result_key}: {exc}", exit_code) from None
        keys = [k for _, k in objects]
        log.info("ok key=%s results=%s duration=%.2fs", key, ",".join(keys), time.monotonic() - t0)
        return JobResult(ok=True, key=key, attempt=attempt, final=final, result_keys=keys)
    except JobFailure as failure:
        report_name = key if key is not None else f"_invalid-message/{message.get('MessageId', 'unknown')}"
        report = {
            "pipeline": config.pipeline,
            "step": config.step,
            "bucket": job.source.bucket if job else None,
            "key": key,
            "etag": job.source.etag if job else None,
            "attempt": attempt,
            "final": final,
            "reason": failure.reason,
            "exit_code": failure.exit_code,
            # A job that failed before or outside the command reports why in place of stderr.
            "stderr_tail": stderr_tail or failure.detail,
            "started_at": started_at,
            "finished_at": _now(),
        }
        log.error(
            "failed key=%s reason=%s attempt=%d/%d final=%s duration=%.2fs: %s",
            key, failure.reason, attempt, config.max_receive_count, final, time.monotonic() - t0, failure.detail,
        )
        write_report(s3, config, report_key(config, report_name, attempt), report)
        return JobResult(ok=False, key=key, attempt=attempt, final=final, reason=failure.reason, report=report)
    finally:
        scratch.clear()


def _abandoned(key: Optional[str], attempt: int, final: bool) -> JobResult:
    log.warning("abandoned key=%s attempt=%d: worker is stopping", key, attempt)
    return JobResult(ok=False, key=key, attempt=attempt, final=final, interrupted=True, reason="interrupted")


def write_report(s3, config: Config, key: str, report: dict) -> None:
    body = json.dumps(report, indent=2)
    if not config.report_bucket:
        log.error("failure report (no YUNPIPE_REPORT_BUCKET): %s", json.dumps(report))
        return
    try:
        s3.put_object(Bucket=config.report_bucket, Key=key, Body=body.encode(), ContentType="application/json")
        log.info("failure report at s3://%s/%s", config.report_bucket, key)
    except (BotoCoreError, ClientError) as exc:
        log.error("cannot write failure report s3://%s/%s (%s): %s", config.report_bucket, key, exc, json.dumps(report))


# --------------------------------------------------------------------------- the queue loop


class VisibilityHeartbeat:
    """Keeps every message this worker holds invisible to other workers, extending each by
    `visibility` seconds every `visibility / 2` seconds: every job in flight, also one waiting
    for another job's local paths."""

    def __init__(self, sqs, queue_url: str, visibility: int):
        self._sqs, self._queue_url, self._visibility = sqs, queue_url, visibility
        self._held: Dict[str, str] = {}  # receipt handle -> message id
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="visibility-heartbeat", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopped.set()
        self._thread.join()

    def hold(self, messages: List[dict]) -> None:
        with self._lock:
            self._held.update((m["ReceiptHandle"], m.get("MessageId", "")) for m in messages)

    def drop(self, message: dict) -> None:
        """Stop extending; once this returns no extension is in flight for the message, so the
        caller's delete or visibility change is the last word."""
        with self._lock:
            self._held.pop(message["ReceiptHandle"], None)

    def _run(self) -> None:
        while not self._stopped.wait(self._visibility / 2):
            with self._lock:
                for handle, message_id in list(self._held.items()):
                    try:
                        self._sqs.change_message_visibility(
                            QueueUrl=self._queue_url, ReceiptHandle=handle, VisibilityTimeout=self._visibility
                        )
                    except (BotoCoreError, ClientError) as exc:
                        log.warning("cannot extend visibility of message %s: %s", message_id, exc)


def _settle(sqs, config: Config, message: dict, result: JobResult, retry_delay: int) -> None:
    """Delete the message of a successful job; otherwise leave it for SQS to retry."""
    try:
        if result.ok:
            sqs.delete_message(QueueUrl=config.queue_url, ReceiptHandle=message["ReceiptHandle"])
            return
        if result.interrupted or result.final:
            delay = 0
        else:
            delay = min(retry_delay * result.attempt, config.visibility_seconds)
        sqs.change_message_visibility(
            QueueUrl=config.queue_url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=delay
        )
    except (BotoCoreError, ClientError) as exc:
        # Typically an expired receipt handle: SQS already made the message visible again.
        log.warning("cannot settle message %s: %s", message.get("MessageId"), exc)


def _release(sqs, config: Config, message: dict) -> None:
    try:
        sqs.change_message_visibility(
            QueueUrl=config.queue_url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0
        )
    except (BotoCoreError, ClientError) as exc:
        log.warning("cannot release message %s: %s", message.get("MessageId"), exc)


class _Slots:
    """run_worker's jobs in flight: how many, how they ended, and since when none is."""

    def __init__(self, size: int) -> None:
        self.size, self.busy, self.ok, self.failed = size, 0, 0, 0
        self.idle_since = time.monotonic()
        self._changed = threading.Condition()

    def wait_free(self, stop: threading.Event) -> int:
        """The number of free slots, once there is one (or `stop` is set)."""
        with self._changed:
            while self.busy >= self.size and not stop.is_set():
                # `stop` cannot notify: look again now and then.
                self._changed.wait(0.1)
            return self.size - self.busy

    def take(self, count: int) -> None:
        with self._changed:
            self.busy += count

    def end(self, result: Optional[JobResult]) -> None:
        """A job ended: with its result, or None when it crashed."""
        with self._changed:
            self.busy -= 1
            if result is None or not result.interrupted:
                if result is not None and result.ok:
                    self.ok += 1
                else:
                    self.failed += 1
            self.idle_since = time.monotonic()
            self._changed.notify_all()

    def idle_for(self) -> Optional[float]:
        """Seconds since the last job ended (or the worker started), None while one runs."""
        with self._changed:
            return None if self.busy else time.monotonic() - self.idle_since


def run_worker(
    config: Config,
    algorithm: dict,
    sqs,
    s3,
    *,
    environ: Optional[Mapping[str, str]] = None,
    stop: Optional[threading.Event] = None,
    retry_delay: int = RETRY_DELAY_SECONDS,
    config_error: Optional[str] = None,
) -> int:
    """Drain the queue until nothing is in flight and it stayed empty for config.idle_seconds,
    or until `stop` is set (jobs running then are abandoned and their messages released).

    Up to config.parallelism jobs run at once, each on a thread of a pool: a receive asks for
    at most as many messages as there are free threads (10 at most), so one job's download or
    upload overlaps another's command. Every message in flight stays in the heartbeat until its
    job is settled. Jobs whose local paths meet take turns (PathLocks).

    Returns the exit code (0). AWS errors outside a job propagate, once the jobs in flight have
    ended. With a config_error every message fails with a report, so SQS moves it to the
    dead-letter queue after its last try."""
    environ = os.environ if environ is None else environ
    stop = stop or threading.Event()
    heartbeat = VisibilityHeartbeat(sqs, config.queue_url, config.visibility_seconds)
    locks = PathLocks()
    slots = _Slots(config.parallelism)

    def work(message: dict) -> None:
        result = None
        try:
            result = process_message(
                message, config, algorithm, s3, environ=environ, stop=stop, config_error=config_error, locks=locks
            )
        except Exception:
            # A bug, not the job's failure: the message goes back to SQS, the worker goes on.
            log.exception("job of message %s crashed", message.get("MessageId"))
        finally:
            heartbeat.drop(message)
            if result is None:
                _release(sqs, config, message)
            else:
                _settle(sqs, config, message, result, retry_delay)
            slots.end(result)

    heartbeat.start()
    try:
        with ThreadPoolExecutor(max_workers=config.parallelism, thread_name_prefix="job") as pool:
            while True:
                free = slots.wait_free(stop)
                if stop.is_set():
                    break
                response = sqs.receive_message(
                    QueueUrl=config.queue_url,
                    MaxNumberOfMessages=min(RECEIVE_BATCH, free),
                    WaitTimeSeconds=config.wait_seconds,
                    VisibilityTimeout=config.visibility_seconds,
                    AttributeNames=["ApproximateReceiveCount"],
                )
                messages = response.get("Messages", [])
                if not messages:
                    idle = slots.idle_for()
                    if idle is not None and idle >= config.idle_seconds:
                        log.info("queue empty for %ss, exiting: %d ok, %d failed",
                                 config.idle_seconds, slots.ok, slots.failed)
                        return 0
                    continue
                heartbeat.hold(messages)
                slots.take(len(messages))
                for message in messages:
                    # Received as stop was set: process_message abandons it, and it is released.
                    pool.submit(work, message)
        log.info("stopped on request: %d ok, %d failed", slots.ok, slots.failed)
        return 0
    finally:
        heartbeat.stop()


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", stream=sys.stdout)
    # botocore's INFO lines (credential discovery) would drown the one line per job.
    logging.getLogger("botocore").setLevel(logging.WARNING)
    problem = None
    try:
        config = Config.from_env(os.environ)
        algorithm = load_algorithm(config.algorithm_path)
        check_variables(algorithm, os.environ)
    except (OSError, ValueError) as exc:
        # Dying here would leave the messages queued, and the launcher's schedule would start
        # worker after worker for them. Knowing its queue, the worker fails each message with a
        # report instead, so SQS moves them to the dead-letter queue and the queue empties.
        problem, config, algorithm = str(exc), Config.from_env(os.environ, strict=False), {}
        if not config.queue_url:
            print(f"yunpipe runscript: configuration error: {problem} (no queue to report on; "
                  f"exit status {CONFIG_ERROR_EXIT})", file=sys.stderr, flush=True)
            return CONFIG_ERROR_EXIT
        log.error("configuration error: %s; every message received is reported and left for the "
                  "dead-letter queue", problem)
    stop = threading.Event()

    def on_signal(signum, frame):
        # ECS sends SIGTERM, then SIGKILL after its stop timeout: abandon the running jobs
        # (their messages are released for other workers) and exit.
        log.warning("signal %d received, stopping", signum)
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        sqs, s3 = make_clients(os.environ, config.parallelism)
        log.info(
            "worker started: pipeline=%s step=%s queue=%s algorithm=%s",
            config.pipeline, config.step, config.queue_url, algorithm.get("name", ""),
        )
        code = run_worker(config, algorithm, sqs, s3, environ=os.environ, stop=stop, config_error=problem)
        return CONFIG_ERROR_EXIT if problem else code
    except (BotoCoreError, ClientError) as exc:
        log.error("AWS error: %s", exc)
        return 1
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


if __name__ == "__main__":
    sys.exit(main())
