"""Serving the dashboard: on 127.0.0.1 only, behind a random token in the URL it opens (as
Jupyter does), until Ctrl-C."""
from __future__ import annotations

import secrets
import threading
import webbrowser
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from werkzeug.serving import BaseWSGIServer, make_server

from yunpipe.engine.state import require_summary
from yunpipe.errors import InputError
from yunpipe.ui.app import create_app

HOST = "127.0.0.1"
DEFAULT_PORT = 4760


@dataclass(frozen=True)
class UiOptions:
    port: int = DEFAULT_PORT  # 0: any free port
    browser: bool = True  # open the page in the user's browser
    pipeline: str | None = None  # open on this pipeline's page


@dataclass
class Dashboard:
    server: BaseWSGIServer
    url: str  # the page it opens, with its token
    token: str

    def serve(self) -> None:
        self.server.serve_forever()

    def start(self) -> threading.Thread:
        """Serve in a thread (tests, and a caller that does more meanwhile)."""
        thread = threading.Thread(target=self.server.serve_forever, name="yunpipe-ui", daemon=True)
        thread.start()
        return thread

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def dashboard(options: UiOptions) -> Dashboard:
    """The server, listening but not yet serving; the pipeline named must be recorded here."""
    if options.pipeline is not None:
        require_summary(options.pipeline)
    if not 0 <= options.port <= 65535:
        raise InputError("ui", "--port", f"expected a port from 0 (any free one) to 65535, got {options.port}")
    token = secrets.token_urlsafe(32)
    # The port is known once bound (0: the system picks one), and the app answers only to its Hosts.
    holder: dict[str, Callable] = {}

    def application(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        return holder["app"](environ, start_response)
    try:
        server = make_server(HOST, options.port, application, threaded=True)
    except OSError as error:
        raise InputError("ui", "--port", f"expected a free port: {options.port} is taken ({error.strerror}); "
                                         "pass another, or --port 0 for any free one") from None
    port = server.server_port
    holder["app"] = create_app(token, port).wsgi_app
    page = f"/pipelines/{quote(options.pipeline, safe='')}" if options.pipeline else "/"
    return Dashboard(server, f"http://{HOST}:{port}{page}?token={token}", token)


def open_browser(url: str) -> bool:
    """Open the page in the user's browser; False when there is none (a server without a screen)."""
    try:
        return webbrowser.open(url)
    except webbrowser.Error:
        return False
