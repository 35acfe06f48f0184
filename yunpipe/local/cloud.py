"""The local cloud: AWS APIs (moto) + the launcher (on the host, or in moto's Docker Lambda) +
schedules + ECS on Docker.

API (what ``yunpipe local up/down/status`` is wired to):
    LAMBDA_MODES                 ("host", "docker")
    LocalCloud(port=4750, regions=None, schedule_speedup=1.0, lambda_workers=4,
               poll_interval=0.5, docker_client=None, lambda_mode="host")
        .start() -> str          endpoint URL; also writes <yunpipe home>/local/cloud.json
        .stop()                  stops everything, kills and removes yunpipe.local containers
        .run_forever()           start (if needed), serve until SIGINT/SIGTERM, stop
        .endpoint_url, .port, .regions, .lambda_mode
        .status() -> dict        endpoint, port, regions, Lambda mode, running tasks, recent Lambda runs
        usable as a context manager
    start_detached(port=4750, timeout=60, extra_args=()) -> dict
                                 runs ``python -m yunpipe.commands.daemon`` in its own session,
                                 returns its state (endpoint, port, pid) once it serves
    stop_running(timeout=60) -> bool   SIGTERM to the daemon named in the state file; waits
    running_state() -> dict | None     the state file of a live local cloud (see yunpipe/aws/announcement.py)

One local cloud per process: moto's backends and the S3 notification hook are process-wide.

``regions`` (default: $AWS_REGION, $AWS_DEFAULT_REGION or us-east-1, then any others given)
are the regions whose ECS tasks and scheduled rules are served.

``lambda_mode="docker"``: moto runs every Lambda invocation itself, in a container of its Docker
Lambda (see lambda_images.py), instead of the launcher running on the host. moto reads its
settings from the process environment at each invocation, so start() sets them (and stop()
restores them): MOTO_DOCKER_LAMBDA_IMAGE (the runtime image, built if missing),
MOTO_DOCKER_NETWORK_MODE=host, no MOTO_DOCKER_NETWORK_NAME (it would win over the mode), and
MOTO_PORT, the emulator's port, which the runtime image turns into http://127.0.0.1:<port>.
Differences from host mode, all moto's: an S3 notification runs the function synchronously,
inside the PutObject request, and ignores reserved concurrency; S3-triggered runs are not in
status(). Scheduled rules are invoked through moto's invoke, queued under reserved concurrency.
moto talks to the Docker daemon of the environment (docker.from_env()), not docker_client.
Code volumes moto left behind are removed: the launcher's at start, every function's at stop.
"""
from __future__ import annotations

import contextlib
import hashlib
import os
import signal
import subprocess
import sys
import threading
import time

import docker
import docker.errors
from moto.awslambda.models import lambda_backends

from yunpipe import paths
from yunpipe.aws import announcement
from yunpipe.runtime.launcher_package import launcher_zip

from .ecs_runner import EcsRunner, owner_id, remove_local_containers
from .lambda_host import LambdaHost
from .lambda_images import ensure_lambda_images, remove_code_volumes
from .moto_patches import (
    capacity_providers_scale,
    compute_quotas_answered,
    conditional_writes_atomic,
    default_vpc_routes_to_internet,
    event_bridge_reported,
    multipart_uploads_notify_once,
    sns_delivers_after_publish,
    sqs_clock_fast,
)
from .scheduler import Scheduler
from .server import DEFAULT_PORT, EmulatorServer

LAMBDA_MODES = ("host", "docker")


class DockerUnavailable(RuntimeError):
    """No Docker daemon answers: the local cloud cannot run ECS tasks."""


def default_region() -> str:
    return os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"


class LocalCloud:
    def __init__(
        self,
        port: int = DEFAULT_PORT,
        regions: list[str] | None = None,
        schedule_speedup: float = 1.0,
        lambda_workers: int = 4,
        poll_interval: float = 0.5,
        docker_client: docker.DockerClient | None = None,
        lambda_mode: str = "host",
    ):
        if lambda_mode not in LAMBDA_MODES:
            raise ValueError(f"lambda_mode must be one of {', '.join(LAMBDA_MODES)}, got {lambda_mode!r}")
        self.lambda_mode = lambda_mode
        self.regions = list(dict.fromkeys(regions or [default_region()]))
        self._server = EmulatorServer(port)
        self._schedule_speedup = schedule_speedup
        self._lambda_workers = lambda_workers
        self._poll_interval = poll_interval
        self._docker = docker_client
        self._lambda_host: LambdaHost | None = None
        self._runner: EcsRunner | None = None
        self._scheduler: Scheduler | None = None
        self._fixes = contextlib.ExitStack()
        self._stop_requested = threading.Event()
        # Environment variables start() changed for moto, with their previous values (None: unset).
        self._saved_environment: dict[str, str | None] = {}

    @property
    def endpoint_url(self) -> str:
        return self._server.endpoint_url

    @property
    def port(self) -> int | None:
        return self._server.port

    def __enter__(self) -> LocalCloud:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def start(self) -> str:
        if self._docker is None:
            try:
                self._docker = docker.from_env()
                self._docker.ping()
            except docker.errors.DockerException as exc:
                raise DockerUnavailable(f"no Docker daemon reachable: {exc}") from exc
        # Containers of a local cloud that died without stop() belong to tasks that no longer exist.
        remove_local_containers(self._docker)
        on_host = self.lambda_mode == "host"
        if not on_host:
            remove_code_volumes(self._docker, [hashlib.sha256(launcher_zip()).hexdigest()])
            self._set_environment("MOTO_DOCKER_LAMBDA_IMAGE", ensure_lambda_images(self._docker))
            self._set_environment("MOTO_DOCKER_NETWORK_MODE", "host")
            self._set_environment("MOTO_DOCKER_NETWORK_NAME", None)
        # Undone by stop(): moto corrected where its answers differ from AWS's, and sped up.
        self._fixes.enter_context(event_bridge_reported())
        self._fixes.enter_context(conditional_writes_atomic())
        self._fixes.enter_context(multipart_uploads_notify_once())
        self._fixes.enter_context(capacity_providers_scale())
        self._fixes.enter_context(compute_quotas_answered())
        self._fixes.enter_context(default_vpc_routes_to_internet())
        self._fixes.enter_context(sqs_clock_fast())
        self._fixes.enter_context(sns_delivers_after_publish())
        try:
            endpoint = self._server.start()
        except BaseException:
            self._fixes.close()
            self._restore_environment()
            raise
        try:
            if not on_host:
                # Known only now when port 0 picked a free one; moto reads it per invocation.
                self._set_environment("MOTO_PORT", str(self._server.port))
            self._lambda_host = LambdaHost(endpoint, max_workers=self._lambda_workers, launchers_on_host=on_host)
            if on_host:
                self._lambda_host.install()
            self._runner = EcsRunner(endpoint, self.regions, self._docker, poll_interval=self._poll_interval)
            self._runner.start()
            self._scheduler = Scheduler(endpoint, self.regions, self._lambda_host, speedup=self._schedule_speedup)
            self._scheduler.start()
            announcement.write_state(endpoint, self._server.port or 0)
        except BaseException:
            self.stop()
            raise
        return endpoint

    def stop(self) -> None:
        # Order: no new work (schedules, S3 hook), then the tasks, then the API they talk to.
        if self._scheduler is not None:
            self._scheduler.stop()
            self._scheduler = None
        if self._lambda_host is not None:
            self._lambda_host.uninstall()
        if self._runner is not None:
            self._runner.stop()
            self._runner = None
        self._lambda_host = None
        if self._docker is not None:
            remove_local_containers(self._docker, owner_id())
        self._server.stop()
        self._fixes.close()
        if self.lambda_mode == "docker" and self._docker is not None:
            remove_code_volumes(self._docker, _function_code_digests())
        self._restore_environment()
        announcement.clear_state()

    def _set_environment(self, name: str, value: str | None) -> None:
        self._saved_environment.setdefault(name, os.environ.get(name))
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value

    def _restore_environment(self) -> None:
        for name, value in self._saved_environment.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        self._saved_environment.clear()

    def status(self) -> dict:
        return {
            "endpoint": self.endpoint_url,
            "port": self.port,
            "regions": self.regions,
            "lambda_mode": self.lambda_mode,
            "running_tasks": self._runner.active_tasks() if self._runner else [],
            "recent_lambda_invocations": [
                {
                    "function": i.function_arn,
                    "trigger": i.trigger,
                    "ok": i.ok,
                    "result": i.result,
                    "log_stream": i.log_stream,
                }
                for i in (self._lambda_host.recent() if self._lambda_host else [])
            ],
        }

    def interrupt_like_spot(self, task_arn: str) -> None:
        """Stop a running task as a Fargate Spot interruption does (EcsRunner.interrupt_like_spot)."""
        if self._runner is None:
            raise ValueError("the local cloud is not running")
        self._runner.interrupt_like_spot(task_arn)

    def request_stop(self) -> None:
        self._stop_requested.set()

    def run_forever(self) -> None:
        if self._lambda_host is None:
            self.start()
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGINT, signal.SIGTERM):
                signal.signal(signum, lambda *_: self.request_stop())
        try:
            # A timed wait keeps the main thread responsive to signals.
            while not self._stop_requested.wait(1.0):
                pass
        finally:
            self.stop()


def _function_code_digests() -> list[str]:
    """SHA-256 of the code of every zip function in moto's Lambda backends (its volume names)."""
    return [
        function.code_digest
        for regions in lambda_backends.values()
        for backend in regions.values()
        for function in backend.list_functions()
        if getattr(function, "code_digest", "")
    ]


def running_state() -> dict | None:
    return announcement.read_state()


def start_detached(port: int = DEFAULT_PORT, timeout: float = 60, extra_args: tuple[str, ...] = ()) -> dict:
    """Start ``python -m yunpipe.commands.daemon`` in the background; return its state when it serves."""
    current = announcement.read_state()
    if current is not None:
        raise RuntimeError(f"a local cloud already runs at {current['endpoint']} (pid {current['pid']})")
    log_path = paths.local_dir() / "daemon.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log_file:
        process = subprocess.Popen(
            [sys.executable, "-m", "yunpipe.commands.daemon", "--port", str(port), *extra_args],
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            # Its own session: closing the terminal that started it does not stop it.
            start_new_session=True,
        )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        current = announcement.read_state()
        if current is not None and current["pid"] == process.pid:
            return current
        if process.poll() is not None:
            raise RuntimeError(f"the local cloud exited with code {process.returncode}; see {log_path}")
        time.sleep(0.2)
    process.terminate()
    raise TimeoutError(f"the local cloud did not start within {timeout} s; see {log_path}")


def stop_running(timeout: float = 60) -> bool:
    """Stop the daemon named in the state file. False when none runs."""
    current = announcement.read_state()
    if current is None:
        return False
    os.kill(current["pid"], signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if announcement.read_state() is None:
            return True
        time.sleep(0.2)
    raise TimeoutError(f"the local cloud (pid {current['pid']}) did not stop within {timeout} s")
