"""The task's memory cgroup, as far as the container sees it: its limit, its peak and how many
processes the kernel killed in it for exceeding that limit (what tells an OOM kill apart from
any other SIGKILL).

Docker on cgroup v1 (this project's test machine, and Fargate platform 1.4) and cgroup v2
(current Docker and ECS-optimized AMIs) lay the files out differently:

    v2  memory.events ("oom_kill N"), memory.max ("max" or bytes), memory.peak (kernel 5.19+)
    v1  memory.oom_control ("oom_kill N", kernel 4.13+), memory.limit_in_bytes,
        memory.max_usage_in_bytes

The container's own cgroup is found from /proc/self/cgroup and /proc/self/mountinfo (a
container may see the whole hierarchy, or only its own part of it mounted at /sys/fs/cgroup).
Each reading is None where the file is missing or unreadable: a measurement is never worth a
failed job.
"""
from __future__ import annotations

import os
from typing import Callable

# cgroup v1 reports "no limit" as a page-rounded LONG_MAX; anything this large is no limit.
NO_LIMIT_BYTES = 1 << 60
MIB = 1 << 20


def _mounts(mountinfo: str) -> list[tuple[str, str, str, str]]:
    """(root, mount point, filesystem type, super options) of each cgroup mount."""
    found = []
    for line in mountinfo.splitlines():
        fields = line.split()
        if " - " not in line or len(fields) < 5:
            continue
        tail = line.split(" - ", 1)[1].split()
        if tail and tail[0] in ("cgroup", "cgroup2"):
            found.append((fields[3], fields[4], tail[0], tail[2] if len(tail) > 2 else ""))
    return found


def find_memory_cgroup(proc_cgroup: str, mountinfo: str, exists: Callable[[str], bool] = os.path.isdir
                       ) -> tuple[str, int] | None:
    """(folder, version) of the memory cgroup the process is in, or None."""
    paths = {}
    for line in proc_cgroup.splitlines():
        number, controllers, path = [*line.split(":", 2), "", ""][:3]
        if number == "0" and controllers == "":
            paths[2] = path
        elif "memory" in controllers.split(","):
            paths[1] = path
    for root, point, kind, options in _mounts(mountinfo):
        version = 2 if kind == "cgroup2" else 1
        if version not in paths or (version == 1 and "memory" not in options.split(",")):
            continue
        if version == 2 and 1 in paths:
            continue  # hybrid: the memory controller is v1's
        path = paths[version]
        # The mount shows the hierarchy from `root` on: our cgroup is below it, or is it.
        if root == "/":
            relative = path
        elif path == root or path.startswith(root + "/"):
            relative = path[len(root):]
        else:
            relative = ""  # outside what is mounted: the mount point is the nearest we can read
        folder = os.path.join(point, relative.lstrip("/"))
        return (folder if exists(folder) else point), version
    return None


def _read(path: str) -> str | None:
    try:
        with open(path) as handle:
            return handle.read()
    except OSError:
        return None


def _field(text: str | None, name: str) -> int | None:
    for line in (text or "").splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0] == name and parts[1].isdigit():
            return int(parts[1])
    return None


def _number(text: str | None) -> int | None:
    value = (text or "").strip()
    return int(value) if value.isdigit() else None


class MemoryCgroup:
    """Readings of one memory cgroup folder."""

    def __init__(self, folder: str, version: int) -> None:
        self.folder, self.version = folder, version

    def _file(self, v2: str, v1: str) -> str:
        return os.path.join(self.folder, v2 if self.version == 2 else v1)

    def oom_kills(self) -> int | None:
        """How many processes the kernel killed for this cgroup's limit so far."""
        return _field(_read(self._file("memory.events", "memory.oom_control")), "oom_kill")

    def limit_mib(self) -> float | None:
        limit = _number(_read(self._file("memory.max", "memory.limit_in_bytes")))
        return None if limit is None or limit >= NO_LIMIT_BYTES else limit / MIB

    def peak_mib(self) -> float | None:
        """The cgroup's peak since it was made (the whole task: the worker, every job, page cache)."""
        peak = _number(_read(self._file("memory.peak", "memory.max_usage_in_bytes")))
        return None if peak is None else peak / MIB


def memory_cgroup() -> MemoryCgroup | None:
    """The memory cgroup this process is in, or None where there is none to read (not Linux)."""
    proc_cgroup, mountinfo = _read("/proc/self/cgroup"), _read("/proc/self/mountinfo")
    if proc_cgroup is None or mountinfo is None:
        return None
    found = find_memory_cgroup(proc_cgroup, mountinfo)
    return MemoryCgroup(*found) if found else None
