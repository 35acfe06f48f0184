"""The local cloud: AWS APIs (moto) + the launcher on the host + schedules + ECS on Docker.

API (what ``yunpipe local up/down/status`` is wired to):
    LocalCloud(port=4750, regions=None, schedule_speedup=1.0, lambda_workers=4,
               poll_interval=0.5, docker_client=None)
        .start() -> str          endpoint URL; also writes <yunpipe home>/local/cloud.json
        .stop()                  stops everything, kills and removes yunpipe.local containers
        .run_forever()           start (if needed), serve until SIGINT/SIGTERM, stop
        .endpoint_url, .port, .regions
        .status() -> dict        endpoint, port, regions, running tasks, recent Lambda runs
        usable as a context manager
    start_detached(port=4750, timeout=60, extra_args=()) -> dict
                                 runs ``python -m yunpipe.local.daemon`` in its own session,
                                 returns its state (endpoint, port, pid) once it serves
    stop_running(timeout=60) -> bool   SIGTERM to the daemon named in the state file; waits
    running_state() -> dict | None     the state file of a live local cloud (see state.py)

One local cloud per process: moto's backends and the S3 notification hook are process-wide.
``regions`` (default: $AWS_REGION, $AWS_DEFAULT_REGION or us-east-1, then any others given)
are the regions whose ECS tasks and scheduled rules are served.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

import docker
import docker.errors

from yunpipe import paths

from . import state
from .ecs_runner import EcsRunner, remove_local_containers
from .lambda_host import LambdaHost
from .scheduler import Scheduler
from .server import DEFAULT_PORT, EmulatorServer


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
    ):
        self.regions = list(dict.fromkeys(regions or [default_region()]))
        self._server = EmulatorServer(port)
        self._schedule_speedup = schedule_speedup
        self._lambda_workers = lambda_workers
        self._poll_interval = poll_interval
        self._docker = docker_client
        self._lambda_host: LambdaHost | None = None
        self._runner: EcsRunner | None = None
        self._scheduler: Scheduler | None = None
        self._stop_requested = threading.Event()

    @property
    def endpoint_url(self) -> str:
        return self._server.endpoint_url

    @property
    def port(self) -> int | None:
        return self._server.port

    def __enter__(self) -> "LocalCloud":
        self.start()
        return self

    def __exit__(self, *exc_info) -> None:
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
        endpoint = self._server.start()
        try:
            self._lambda_host = LambdaHost(endpoint, max_workers=self._lambda_workers)
            self._lambda_host.install()
            self._runner = EcsRunner(endpoint, self.regions, self._docker, poll_interval=self._poll_interval)
            self._runner.start()
            self._scheduler = Scheduler(endpoint, self.regions, self._lambda_host, speedup=self._schedule_speedup)
            self._scheduler.start()
            state.write_state(endpoint, self._server.port)
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
            remove_local_containers(self._docker)
        self._server.stop()
        state.clear_state()

    def status(self) -> dict:
        return {
            "endpoint": self.endpoint_url,
            "port": self.port,
            "regions": self.regions,
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


def running_state() -> dict | None:
    return state.read_state()


def start_detached(port: int = DEFAULT_PORT, timeout: float = 60, extra_args: tuple[str, ...] = ()) -> dict:
    """Start ``python -m yunpipe.local.daemon`` in the background; return its state when it serves."""
    current = state.read_state()
    if current is not None:
        raise RuntimeError(f"a local cloud already runs at {current['endpoint']} (pid {current['pid']})")
    log_path = paths.local_dir() / "daemon.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log_file:
        process = subprocess.Popen(
            [sys.executable, "-m", "yunpipe.local.daemon", "--port", str(port), *extra_args],
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            # Its own session: closing the terminal that started it does not stop it.
            start_new_session=True,
        )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        current = state.read_state()
        if current is not None and current["pid"] == process.pid:
            return current
        if process.poll() is not None:
            raise RuntimeError(f"the local cloud exited with code {process.returncode}; see {log_path}")
        time.sleep(0.2)
    process.terminate()
    raise TimeoutError(f"the local cloud did not start within {timeout} s; see {log_path}")


def stop_running(timeout: float = 60) -> bool:
    """Stop the daemon named in the state file. False when none runs."""
    current = state.read_state()
    if current is None:
        return False
    os.kill(current["pid"], signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if state.read_state() is None:
            return True
        time.sleep(0.2)
    raise TimeoutError(f"the local cloud (pid {current['pid']}) did not stop within {timeout} s")
