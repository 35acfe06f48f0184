"""The local paths of the jobs running at once: a job waits for its own (PathLocks) and
removes them when it ends (Scratch)."""
from __future__ import annotations

import contextlib
import os
import shutil
import threading

from .message import JobFailure
from .paths import within


def remove_path(path: str) -> None:
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path, ignore_errors=True)
    elif os.path.lexists(path):
        os.remove(path)


def _overlap(paths: tuple[str, ...], others: tuple[str, ...]) -> bool:
    return any(within(p, q) or within(q, p) for p in paths for q in others)


class PathLocks:
    """The local paths of the jobs running at once. The algorithm's folders are fixed, so two
    messages whose keys share a basename (or one message delivered twice) would use the same
    files: a job waits while another holds a path equal to, inside or holding one of its own."""

    def __init__(self) -> None:
        self._held: list[tuple[str, ...]] = []
        self._changed = threading.Condition()

    def acquire(self, paths: tuple[str, ...], stop: threading.Event | None) -> bool:
        """Hold `paths` once no job holds one of them; False when `stop` is set first."""
        with self._changed:
            while not (stop is not None and stop.is_set()):
                if not any(_overlap(paths, held) for held in self._held):
                    self._held.append(paths)
                    return True
                # `stop` cannot notify: look again now and then.
                self._changed.wait(0.1)
            return False

    def release(self, paths: tuple[str, ...], folders: list[str]) -> None:
        """Let `paths` go, and remove each of `folders` that is empty and holds no other
        job's path (a join's step folders are shared by the jobs of that step)."""
        with self._changed:
            self._held.remove(paths)
            for folder in folders:
                if not any(within(p, folder) for held in self._held for p in held):
                    # Not empty (OSError): not only this job's.
                    with contextlib.suppress(OSError):
                        os.rmdir(folder)
            self._changed.notify_all()


class Scratch:
    """The local paths of one job: held in `locks` while it runs, removed when it ends. A
    join's step folders go only when empty: a step id may name a folder the image has (`tmp`
    under input_file_path `/`)."""

    def __init__(self, locks: PathLocks) -> None:
        self.paths: list[str] = []
        self.folders: list[str] = []
        self._locks = locks
        self._held: tuple[str, ...] | None = None

    def hold(self, paths: tuple[str, ...], stop: threading.Event | None) -> bool:
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
            remove_path(path)
        except OSError as exc:
            raise JobFailure("download_error", f"cannot prepare {path}: {exc}") from None
        return path

    def clear(self) -> None:
        try:
            for path in self.paths:
                remove_path(path)
        finally:
            # Folders are claimed only by a job holding its paths.
            if self._held is not None:
                self._locks.release(self._held, self.folders)
