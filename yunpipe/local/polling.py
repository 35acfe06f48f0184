"""A background thread that does one round of work, then waits, until it is stopped.

The ECS runner and the scheduler are both such loops over the emulator's state.
"""
from __future__ import annotations

import logging
import threading

log = logging.getLogger(__name__)


class PollingThread:
    """Subclasses implement poll_once(); start() runs it every poll_interval seconds, and at
    once after wake()."""

    thread_name = "yunpipe-poller"

    def __init__(self, poll_interval: float):
        self.poll_interval = poll_interval
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    def poll_once(self) -> object:
        raise NotImplementedError

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name=self.thread_name, daemon=True)
        self._thread.start()

    def wake(self) -> None:
        """Poll now instead of at the end of the current wait."""
        self._wake.set()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.poll_once()
            except Exception:
                log.exception("%s: a round failed", self.thread_name)
            self._wake.wait(self.poll_interval)
            self._wake.clear()
