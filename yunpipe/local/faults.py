"""Faults on purpose, for chaos tests and benchmarks: the local cloud fails the way a cloud does.

Inert unless asked: every LocalCloud has a ``Faults``, and its hooks do nothing until
``LocalCloud.inject_faults(plan)`` (a context manager) arms it; leaving the context disarms it.

What a ``FaultPlan`` injects, each kind drawn from a seeded random generator of its own (so the
n-th container's fate does not depend on how many launcher runs came before it):

- ``kill_fraction`` of the worker containers started while armed (the local cloud's ECS task
  containers, of ``cluster`` only when given) are killed (SIGKILL: no handler runs, as when a host
  dies) at a random moment within ``kill_within_seconds`` of being first seen, if still running;
  the ECS runner then stops the task with exit code 137, as ECS does;
- ``launcher_failure_rate`` of the launcher's invocations (on the host) fail before they do
  anything, so before they send a message (``InjectedFault``), as a launcher whose SQS calls fail;
  Lambda's retries and on-failure destination then take over (yunpipe.local.lambda_host);
- once, ``s3_outage_after_seconds`` after arming, the emulator answers every S3 request with 503
  ServiceUnavailable for ``s3_outage_seconds`` (clients retry, then fail, as in an S3 outage).

API:
    FaultPlan(seed=0, kill_fraction=0, kill_within_seconds=10, launcher_failure_rate=0,
              s3_outage_after_seconds=None, s3_outage_seconds=0, cluster=None)
    Faults()
        .injected(plan, docker_client) -> context manager yielding the FaultCounts, kept up to date
        .stop_s3(seconds) -> (start, end)     an S3 outage now (while injected), besides the plan's
        .launcher_invocation(function_name)   raises InjectedFault when armed and drawn
        .middleware(app) -> app               the emulator's WSGI app, answering 503 to S3 in an outage
    FaultCounts: containers_seen, containers_doomed, containers_killed, launcher_invocations,
                 launcher_failures, s3_refused, s3_outage_window (monotonic start, end) or None
    InjectedFault
"""
from __future__ import annotations

import contextlib
import dataclasses
import random
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import docker
import docker.errors

from .ecs_runner import LABEL, LABEL_CLUSTER, owner_id

# How often the killer looks for new containers and for those due to be killed.
KILLER_POLL_SECONDS = 0.2
S3_UNAVAILABLE = (b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>ServiceUnavailable</Code>'
                  b"<Message>injected fault: S3 does not answer</Message></Error>")


class InjectedFault(RuntimeError):
    """A failure the local cloud made on purpose (a FaultPlan)."""


@dataclasses.dataclass(frozen=True)
class FaultPlan:
    seed: int = 0
    kill_fraction: float = 0.0
    kill_within_seconds: float = 10.0
    launcher_failure_rate: float = 0.0
    s3_outage_after_seconds: float | None = None
    s3_outage_seconds: float = 0.0
    cluster: str | None = None  # a cluster's ARN: only its containers are killed

    def __post_init__(self) -> None:
        for name in ("kill_fraction", "launcher_failure_rate"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"FaultPlan.{name} must be from 0 to 1, got {getattr(self, name)}")
        if self.kill_within_seconds <= 0 or self.s3_outage_seconds < 0:
            raise ValueError("FaultPlan: kill_within_seconds must be positive and s3_outage_seconds not negative")


@dataclasses.dataclass
class FaultCounts:
    containers_seen: int = 0
    containers_doomed: int = 0
    containers_killed: int = 0
    launcher_invocations: int = 0
    launcher_failures: int = 0
    s3_refused: int = 0
    s3_outage_window: tuple[float, float] | None = None


def _is_s3(environ: dict) -> bool:
    # The emulator serves every service on one address; a request's signature names its service.
    scope = environ.get("HTTP_AUTHORIZATION", "") + environ.get("QUERY_STRING", "")
    return "/s3/aws4_request" in scope or "%2Fs3%2Faws4_request" in scope


class Faults:
    def __init__(self) -> None:
        self._plan: FaultPlan | None = None
        self._counts = FaultCounts()
        self._random: dict[str, random.Random] = {}
        self._lock = threading.Lock()
        self._outage_until = 0.0

    @contextlib.contextmanager
    def injected(self, plan: FaultPlan, docker_client: docker.DockerClient) -> Iterator[FaultCounts]:
        with self._lock:
            if self._plan is not None:
                raise RuntimeError("faults are injected already")
            self._plan, self._counts = plan, FaultCounts()
            self._random = {kind: random.Random(f"{plan.seed}-{kind}") for kind in ("kill", "launcher")}
        stop = threading.Event()
        threads = []
        if plan.kill_fraction:
            threads.append(threading.Thread(target=self._kill_containers, args=(plan, docker_client, stop),
                                            name="yunpipe-faults-killer", daemon=True))
        if plan.s3_outage_after_seconds is not None and plan.s3_outage_seconds:
            threads.append(threading.Thread(target=self._s3_outage, args=(plan, stop),
                                            name="yunpipe-faults-s3", daemon=True))
        for thread in threads:
            thread.start()
        try:
            yield self._counts
        finally:
            stop.set()
            for thread in threads:
                thread.join()
            with self._lock:
                self._plan, self._outage_until = None, 0.0

    def _draw(self, kind: str, probability: float) -> bool:
        with self._lock:
            return self._random[kind].random() < probability

    def launcher_invocation(self, function_name: str) -> None:
        plan = self._plan
        if plan is None:
            return
        with self._lock:
            self._counts.launcher_invocations += 1
        if plan.launcher_failure_rate and self._draw("launcher", plan.launcher_failure_rate):
            with self._lock:
                self._counts.launcher_failures += 1
            raise InjectedFault(f"injected fault: launcher {function_name} failed before sending")

    def middleware(self, app: Callable[..., Iterable[bytes]]) -> Callable[..., Iterable[bytes]]:
        def serve(environ: dict, start_response: Callable[..., Any]) -> Iterable[bytes]:
            if self._outage_until and time.monotonic() < self._outage_until and _is_s3(environ):
                with self._lock:
                    self._counts.s3_refused += 1
                start_response("503 Service Unavailable", [("Content-Type", "application/xml"),
                                                           ("Content-Length", str(len(S3_UNAVAILABLE)))])
                return [S3_UNAVAILABLE]
            return app(environ, start_response)

        return serve

    def stop_s3(self, seconds: float) -> tuple[float, float]:
        """An S3 outage from now on, while faults are injected; returns its (start, end), monotonic."""
        with self._lock:
            if self._plan is None:
                raise RuntimeError("faults are not injected")
            started = time.monotonic()
            self._outage_until = started + seconds
            self._counts.s3_outage_window = (started, self._outage_until)
        return started, self._outage_until

    def _s3_outage(self, plan: FaultPlan, stop: threading.Event) -> None:
        if not stop.wait(plan.s3_outage_after_seconds or 0):
            self.stop_s3(plan.s3_outage_seconds)

    def _kill_containers(self, plan: FaultPlan, client: docker.DockerClient, stop: threading.Event) -> None:
        seen: set[str] = set()
        due: dict[str, float] = {}  # container id -> when to kill it
        labels = [f"{LABEL}={owner_id()}"] + ([f"{LABEL_CLUSTER}={plan.cluster}"] if plan.cluster else [])
        while not stop.wait(KILLER_POLL_SECONDS):
            try:
                running = client.containers.list(filters={"label": labels, "status": "running"}, ignore_removed=True)
            except docker.errors.APIError:
                continue
            now = time.monotonic()
            for container in running:
                if container.id in seen:
                    continue
                seen.add(container.id)
                self._counts.containers_seen += 1
                if self._draw("kill", plan.kill_fraction):
                    self._counts.containers_doomed += 1
                    with self._lock:
                        due[container.id] = now + self._random["kill"].uniform(0, plan.kill_within_seconds)
            by_id = {c.id: c for c in running}
            for container_id, when in list(due.items()):
                if when > now:
                    continue
                del due[container_id]
                if container_id in by_id:
                    # APIError: it exited between the listing and the kill
                    with contextlib.suppress(docker.errors.APIError):
                        by_id[container_id].kill()
                        self._counts.containers_killed += 1
