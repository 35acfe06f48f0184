"""Where a running local cloud announces itself, so other commands can find its endpoint.
The local cloud (yunpipe.local) writes it; the Location (yunpipe.aws.location) reads it.

File: ``<yunpipe home>/local/cloud.json`` with ``{"endpoint": str, "port": int, "pid": int,
"started_at": str}``; `started_at` tells one run of the local cloud from the next, whose moto
starts empty (a pipeline recorded on an earlier run is gone);
the yunpipe home is ``$YUNPIPE_HOME`` or ``~/.yunpipe`` (yunpipe.paths).

API:
    state_path() -> Path
    write_state(endpoint, port, pid=os.getpid()) -> Path
    read_state() -> dict | None       None when no file, or when its process is gone
    clear_state(pid=os.getpid())      removes the file if it names that process
"""
from __future__ import annotations

import json
import os
from datetime import datetime, timezone
from pathlib import Path

from yunpipe import paths


def state_path() -> Path:
    return paths.local_dir() / "cloud.json"


def process_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def write_state(endpoint: str, port: int, pid: int | None = None) -> Path:
    path = state_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    started_at = datetime.now(timezone.utc).isoformat(timespec="microseconds")
    tmp.write_text(json.dumps({"endpoint": endpoint, "port": port, "pid": pid or os.getpid(), "started_at": started_at},
                              indent=2))
    # Atomic replace: a reader never sees half a file.
    tmp.replace(path)
    return path


def read_state() -> dict | None:
    path = state_path()
    try:
        state = json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None
    # A file left by a killed process must not send commands to a dead endpoint.
    if not process_alive(int(state.get("pid", 0))):
        return None
    return state


def clear_state(pid: int | None = None) -> None:
    path = state_path()
    try:
        state = json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return
    if int(state.get("pid", 0)) == (pid or os.getpid()):
        path.unlink(missing_ok=True)
