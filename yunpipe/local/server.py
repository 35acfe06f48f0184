"""The local cloud's AWS API: moto's server application, on loopback only.

API:
    EmulatorServer(port=DEFAULT_PORT)   port 0 picks a free port
        .start() -> str                 starts moto (its request log quieted to WARNING), pins ECS
                                        task status, returns the endpoint URL
        .stop()
        .endpoint_url, .port            valid after start()
    pin_ecs_tasks(endpoint_url)         the ECS state-manager setting described below

moto 5.x models an ECS task with a state manager (model ``ecs::task``): a task is created
RUNNING and, under moto's default ``{"progression": "manual", "times": 1}``, moves one step
towards STOPPED each time describe_tasks has seen it once. The local runner owns the task
lifecycle instead, so the transition is set to manual with a count no run will reach: a task
stays RUNNING until stop_task (by the runner, or by anyone through the API) marks it STOPPED.

The server is what moto's ThreadedMotoServer runs (werkzeug's threaded server, moto's request
handler and dispatcher), with one change: the dispatcher remembers which backend serves a host
(yunpipe.local.moto_patches.BackendDispatcher).
"""
from __future__ import annotations

import json
import logging
import socket
import threading
import urllib.request
from collections.abc import Callable
from typing import Any

from moto.moto_server.werkzeug_app import MotoRequestHandler
from werkzeug.serving import BaseWSGIServer, make_server

from .moto_patches import BackendDispatcher

LOOPBACK = "127.0.0.1"
DEFAULT_PORT = 4750
# describe_tasks calls needed before moto advances a task: never reached in practice
# (the runner polls about twice a second).
ECS_TASK_TRANSITION = {"progression": "manual", "times": 2**62}


def _check_port_free(port: int) -> None:
    # werkzeug's server exits the whole process when it cannot bind, so a taken port is
    # reported here, before the server tries it.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((LOOPBACK, port))
        except OSError as exc:
            raise OSError(f"cannot listen on {LOOPBACK}:{port}: {exc.strerror}") from exc


def _post_moto_api(endpoint_url: str, path: str, body: dict | None = None) -> None:
    data = json.dumps(body or {}).encode()
    request = urllib.request.Request(f"{endpoint_url}{path}", data=data, method="POST")
    with urllib.request.urlopen(request, timeout=10) as response:
        response.read()


def pin_ecs_tasks(endpoint_url: str) -> None:
    """Keep ECS tasks RUNNING until stop_task (see the module docstring)."""
    _post_moto_api(
        endpoint_url,
        "/moto-api/state-manager/set-transition",
        {"model_name": "ecs::task", "transition": ECS_TASK_TRANSITION},
    )


class EmulatorServer:
    """moto's server, bound to 127.0.0.1, with an empty state and ECS tasks pinned."""

    def __init__(self, port: int = DEFAULT_PORT, middleware: Callable[[Any], Any] | None = None):
        self._requested_port = port
        # Wraps moto's WSGI app (the local cloud's fault injection, yunpipe.local.faults).
        self._middleware = middleware
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None
        self.port: int | None = None

    @property
    def endpoint_url(self) -> str:
        if self.port is None:
            raise RuntimeError("the emulator is not started")
        return f"http://{LOOPBACK}:{self.port}"

    def start(self) -> str:
        if self._requested_port:
            _check_port_free(self._requested_port)
        # moto's werkzeug server logs every request at INFO, which would flood the console of an
        # in-process local cloud (yunpipe demo) as much as the daemon's log.
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
        app = BackendDispatcher()
        self._server = make_server(LOOPBACK, self._requested_port, self._middleware(app) if self._middleware else app,
                                   threaded=True, request_handler=MotoRequestHandler)
        self._thread = threading.Thread(target=self._server.serve_forever, name="yunpipe-emulator", daemon=True)
        self._thread.start()
        self.port = self._server.server_address[1]
        # moto's backends live in this process: a previous local cloud in the same process
        # would otherwise leave its resources behind.
        _post_moto_api(self.endpoint_url, "/moto-api/reset")
        pin_ecs_tasks(self.endpoint_url)
        return self.endpoint_url

    def stop(self) -> None:
        if self._server is not None:
            # The state manager is process-wide: give later moto users their default back.
            _post_moto_api(self.endpoint_url, "/moto-api/state-manager/unset-transition", {"model_name": "ecs::task"})
            self._server.shutdown()
            self._server.server_close()
            if self._thread is not None:
                self._thread.join()
            self._server, self._thread = None, None
        self.port = None
