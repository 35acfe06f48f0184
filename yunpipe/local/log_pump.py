"""A local task's container output into its CloudWatch Logs stream, as ECS's awslogs driver
copies it: each line with Docker's timestamp, sent in batches (yunpipe.local.ecs_runner starts
one pump per container whose task definition names a log group)."""
from __future__ import annotations

import logging
import queue
import re
import threading
import time
from datetime import datetime
from typing import Any

import docker.errors
from botocore.exceptions import ClientError

log = logging.getLogger(__name__)

# put_log_events limits: 10,000 events per call; a batch is also sent after this many seconds.
LOG_BATCH_EVENTS = 1000
LOG_FLUSH_SECONDS = 1.0


def _parse_docker_timestamp(stamp: str) -> int:
    # Docker writes RFC 3339 with nanoseconds; Python parses up to microseconds.
    match = re.match(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d)", stamp)
    if not match:
        return int(time.time() * 1000)
    base, fraction, zone = match.groups()
    fraction = (fraction or ".0")[:7]
    zone = "+00:00" if zone == "Z" else zone
    return int(datetime.fromisoformat(f"{base}{fraction}{zone}").timestamp() * 1000)


class LogPump(threading.Thread):
    """Copies one container's output into one CloudWatch Logs stream, in batches."""

    def __init__(self, container: Any, logs_client: Any, group: str, stream: str) -> None:
        super().__init__(name=f"yunpipe-logs-{container.name}", daemon=True)
        self._container = container
        self._logs = logs_client
        self._group = group
        self._stream = stream
        self._lines: queue.Queue = queue.Queue()
        self._reader = threading.Thread(target=self._read, name=f"{self.name}-read", daemon=True)

    def _read(self) -> None:
        # The stream ends when the container stops; None tells the writer so.
        try:
            pending = b""
            for chunk in self._container.logs(stream=True, follow=True, timestamps=True):
                pending += chunk
                *lines, pending = pending.split(b"\n")
                for line in lines:
                    self._lines.put(line)
            if pending:
                self._lines.put(pending)
        except docker.errors.NotFound:
            pass
        finally:
            self._lines.put(None)

    def run(self) -> None:
        self._reader.start()
        batch: list[dict] = []
        last_flush = time.monotonic()
        done = False
        while not done:
            try:
                line = self._lines.get(timeout=LOG_FLUSH_SECONDS)
            except queue.Empty:
                line = b""
            if line is None:
                done = True
            elif line:
                stamp, _, message = line.decode("utf-8", "replace").partition(" ")
                batch.append({"timestamp": _parse_docker_timestamp(stamp), "message": message})
            due = time.monotonic() - last_flush >= LOG_FLUSH_SECONDS
            if batch and (done or due or len(batch) >= LOG_BATCH_EVENTS):
                self._flush(batch)
                batch = []
                last_flush = time.monotonic()

    def _flush(self, batch: list[dict]) -> None:
        try:
            self._logs.put_log_events(logGroupName=self._group, logStreamName=self._stream, logEvents=batch)
        except ClientError as exc:
            log.warning("cannot copy logs to %s/%s: %s", self._group, self._stream, exc)
