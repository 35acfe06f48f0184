"""The ECS task metadata endpoint (v4) of the local cloud's tasks: what a Fargate task reads at
$ECS_CONTAINER_METADATA_URI_V4/task. The worker names its task records by the TaskARN there; with
host networking every container shares the host's name, so without it all tasks would be one.

One small HTTP server on 127.0.0.1 for the runner; each task's containers get the URI of their
own task (/<task id>), and a task that is gone answers 404, as the agent's endpoint would.
"""
from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Mapping
from typing import Any


class TaskMetadata:
    """Serves /<task id>/task for the tasks registered with it."""

    def __init__(self) -> None:
        self._tasks: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()
        tasks, lock = self._tasks, self._lock

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                task_id, _, what = self.path.strip("/").partition("/")
                with lock:
                    document = tasks.get(task_id)
                if document is None or what != "task":
                    self.send_error(404)
                    return
                body = json.dumps(document).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="yunpipe-task-metadata", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def register(self, task: Mapping[str, Any]) -> str:
        """The task's metadata URI (the value of ECS_CONTAINER_METADATA_URI_V4)."""
        task_id = str(task["taskArn"]).rsplit("/", 1)[-1]
        document = {"Cluster": task.get("clusterArn"), "TaskARN": task["taskArn"],
                    "Family": str(task.get("taskDefinitionArn", "")).rsplit("/", 1)[-1].split(":")[0],
                    "LaunchType": task.get("launchType"), "Limits": {"CPU": task.get("cpu"), "Memory": task.get("memory")}}
        with self._lock:
            self._tasks[task_id] = document
        return f"http://127.0.0.1:{self._server.server_address[1]}/{task_id}"

    def forget(self, task_arn: str) -> None:
        with self._lock:
            self._tasks.pop(task_arn.rsplit("/", 1)[-1], None)
