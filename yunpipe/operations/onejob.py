"""One job of a wrapped image on this machine, in Docker: the image's own worker runs it from a
file (`--one-job`, yunpipe/runtime/worker/once.py), so `try` and `replay` run exactly what a
task runs, with no AWS. The input goes into the container and the result comes out of it as
tar archives (no bind mount: the image's user owns what it writes, and nothing root-owned is
left on this machine)."""
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
import docker.errors

from yunpipe.errors import InputError, YunpipeError
from yunpipe.runtime.contract import ONE_JOB_FLAG, ONE_JOB_MARKER, ONE_JOB_SHELL_FLAG
from yunpipe.wrapper.context import LIB

# Where the input file is put in the container, for the worker to stage it.
DROP_FOLDER = "/yunpipe-one-job"
# The worker's module for one job, in every image wrapped since `try` and `replay` exist.
ONE_JOB_MODULE = f"/{LIB}/yunpipe/runtime/worker/once.py"
# Lines of the command's stderr shown for a failure.
STDERR_TAIL_LINES = 20


@dataclass(frozen=True)
class OneJob:
    """What to run: the wrapped image, the task's environment and size, the input on this machine."""

    image: str
    environment: dict[str, str]
    file: Path
    memory_mib: int | None = None
    cpu: float | None = None


@dataclass(frozen=True)
class Finished:
    """What the worker said of the job (once.py's outcome), its output and where the result went."""

    outcome: dict
    stdout: str
    stderr: str
    result: Path | None

    @property
    def ok(self) -> bool:
        return self.outcome.get("outcome") == "ok"


def ensure_image(client: docker.DockerClient, image: str, auth_config: dict | None = None) -> None:
    """The image in the local daemon, pulled when it is not there."""
    try:
        client.images.get(image)
        return
    except docker.errors.ImageNotFound:
        pass
    print(f"{image} is not in the local Docker daemon, pulling it", file=sys.stderr)
    try:
        client.images.pull(image, auth_config=auth_config)
    except docker.errors.DockerException as exc:
        raise YunpipeError(f"cannot pull {image} ({exc}); log in to its registry with docker login, "
                           "or wrap the algorithm on this machine") from None


def _input_archive(file: Path) -> bytes:
    """A tar of DROP_FOLDER/<file name>, readable by any user the image runs as."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        folder = tarfile.TarInfo(DROP_FOLDER.lstrip("/"))
        folder.type, folder.mode = tarfile.DIRTYPE, 0o755
        archive.addfile(folder)
        entry = archive.gettarinfo(str(file), arcname=f"{DROP_FOLDER.lstrip('/')}/{file.name}")
        entry.mode, entry.uid, entry.gid, entry.uname, entry.gname = 0o644, 0, 0, "", ""
        with file.open("rb") as data:
            archive.addfile(entry, data)
    return buffer.getvalue()


def _create(client: docker.DockerClient, job: OneJob, shell: bool) -> Any:
    command = [ONE_JOB_FLAG, f"{DROP_FOLDER}/{job.file.name}"] + ([ONE_JOB_SHELL_FLAG] if shell else [])
    limits: dict[str, Any] = {}
    if job.memory_mib:
        # No swap beyond the limit, as on Fargate: a job over its memory is killed, not slowed.
        limits.update(mem_limit=f"{job.memory_mib}m", memswap_limit=f"{job.memory_mib}m")
    if job.cpu:
        limits["nano_cpus"] = int(job.cpu * 1e9)
    container = client.containers.create(job.image, command, environment=job.environment, tty=shell,
                                         stdin_open=shell, labels={"org.yunpipe.one-job": "1"}, **limits)
    try:
        try:
            container.get_archive(ONE_JOB_MODULE)
        except docker.errors.NotFound:
            # Its entrypoint would take the flag for nothing and start draining the step's queue.
            raise YunpipeError(f"{job.image}: its runscript runs no single job (wrapped by a yunpipe before "
                               "`try` and `replay`): wrap the algorithm again") from None
        container.put_archive("/", _input_archive(job.file))
    except BaseException:
        container.remove(force=True)
        raise
    return container


def _outcome(stdout: str) -> dict | None:
    for line in reversed(stdout.splitlines()):
        if line.startswith(ONE_JOB_MARKER + " "):
            try:
                found = json.loads(line[len(ONE_JOB_MARKER) + 1:])
            except ValueError:
                return None
            return found if isinstance(found, dict) else None
    return None


def _copy_out(container: Any, path: str, destination: Path) -> Path:
    """The container's file or folder at `path`, as `destination` (replacing what was there)."""
    stream, _ = container.get_archive(path)
    with tempfile.TemporaryDirectory(prefix="yunpipe-one-job-") as tmp:
        with tarfile.open(fileobj=io.BytesIO(b"".join(stream)), mode="r") as archive:
            archive.extractall(tmp, filter="data")
        extracted = Path(tmp) / os.path.basename(path.rstrip("/"))
        if destination.is_dir() and not destination.is_symlink():
            shutil.rmtree(destination)
        elif destination.exists() or destination.is_symlink():
            destination.unlink()
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(extracted), destination)
    return destination


def run(client: docker.DockerClient, job: OneJob, destination: Path) -> Finished:
    """Run the job to its end; its result copied to `destination` when it has one."""
    container = _create(client, job, shell=False)
    try:
        container.start()
        status = container.wait().get("StatusCode")
        stdout = container.logs(stdout=True, stderr=False).decode(errors="replace")
        stderr = container.logs(stdout=False, stderr=True).decode(errors="replace")
        outcome = _outcome(stdout)
        if outcome is None:
            tail = "\n".join(stderr.strip().splitlines()[-STDERR_TAIL_LINES:])
            raise YunpipeError(f"{job.image}: the runscript ended with status {status} and no outcome:\n{tail}")
        result = None
        if outcome.get("outcome") == "ok" and outcome.get("output_path"):
            result = _copy_out(container, str(outcome["output_path"]), destination)
        return Finished(outcome, stdout, stderr, result)
    finally:
        container.remove(force=True)


def require_terminal() -> None:
    """InputError unless a shell can be attached: a terminal, and the docker command."""
    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        raise InputError("replay", "--shell", "expected a terminal (stdin and stdout a TTY): run it from an "
                                              "interactive shell, or leave --shell out to run the job")
    if shutil.which("docker") is None:
        raise YunpipeError("--shell attaches with the docker command, which is not on PATH")


def shell(client: docker.DockerClient, job: OneJob) -> int:
    """A shell in the container, the input staged; the exit status of the shell. Needs a terminal."""
    require_terminal()
    container = _create(client, job, shell=True)
    try:
        # The Docker SDK has no interactive attach; the docker command does (the SDK created the container).
        return subprocess.call(["docker", "start", "--attach", "--interactive", container.id])
    finally:
        container.remove(force=True)


def command_stdout(finished: Finished) -> str:
    """The command's stdout (path adapter: it goes to the log), without the outcome's line."""
    return "".join(line for line in finished.stdout.splitlines(keepends=True) if not line.startswith(ONE_JOB_MARKER + " "))


def stderr_tail(finished: Finished) -> str:
    """The command's last stderr lines, as the worker kept them."""
    text = str(finished.outcome.get("stderr_tail") or finished.outcome.get("detail") or "")
    return "\n".join(text.strip().splitlines()[-STDERR_TAIL_LINES:])


def describe(finished: Finished) -> str:
    """One line: the outcome, why, the time and what the command used."""
    o = finished.outcome
    why = []
    if not finished.ok and o.get("reason") != o.get("outcome"):
        why.append(str(o.get("reason")))
    if not finished.ok and o.get("exit_code") is not None:
        why.append(f"exit {o['exit_code']}")
    used = []
    if o.get("cpu_seconds") is not None:
        used.append(f"cpu {o['cpu_seconds']:.2f} s")
    if o.get("peak_memory_mib") is not None:
        limit = f" of {o['memory_limit_mib']} MiB" if o.get("memory_limit_mib") else ""
        used.append(f"peak memory {o['peak_memory_mib']:.1f} MiB{limit}")
    head = f"{o.get('outcome')}" + (f" ({', '.join(why)})" if why else "")
    return f"{head} in {o.get('seconds', 0):.2f} s" + (f" ({', '.join(used)})" if used else "")
