"""The launcher's deployment package and Lambda settings. Runs on the host (setup-pipe, the local
cloud), never in Lambda, and is not in the zip.

The zip holds what the launcher imports, at its package path: empty stand-ins for
``yunpipe/__init__.py`` and ``yunpipe/runtime/__init__.py`` (the host package's are not the
launcher's), the contract, the launcher's and accounting's modules. HANDLER is their dotted path, as AWS
Lambda's Python runtime (and moto's Docker Lambda) import it.
"""
from __future__ import annotations

import importlib.resources
import io
import zipfile

RUNTIME = "python3.12"
HANDLER = "yunpipe.runtime.launcher.handler.handler"
TIMEOUT_SECONDS = 60
MEMORY_MIB = 128


def launcher_files() -> list[tuple[str, bytes]]:
    """(path in the zip, bytes) of every file the launcher needs, in a fixed order."""
    runtime = importlib.resources.files("yunpipe.runtime")
    files = [
        ("yunpipe/__init__.py", b""),
        ("yunpipe/runtime/__init__.py", b""),
        ("yunpipe/runtime/contract.py", runtime.joinpath("contract.py").read_bytes()),
    ]
    # The launcher's modules, and accounting's (it settles runs on its schedule) with its price table.
    for package in ("launcher", "accounting"):
        folder = runtime.joinpath(package)
        names = sorted(entry.name for entry in folder.iterdir() if entry.name.endswith((".py", ".json")))
        files += [(f"yunpipe/runtime/{package}/{name}", folder.joinpath(name).read_bytes()) for name in names]
    return files


def launcher_zip() -> bytes:
    """The launcher Lambda package; fixed timestamps and modes so the same source gives the
    same bytes (and the same CodeSha256), which is how an unchanged launcher is recognised."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path, data in launcher_files():
            info = zipfile.ZipInfo(path, date_time=(1980, 1, 1, 0, 0, 0))
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, data)
    return buffer.getvalue()
