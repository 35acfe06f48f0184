"""The launcher's deployment package and Lambda settings, next to the launcher they package.
Runs on the host (setup-pipe, the local cloud), never in Lambda."""
import importlib.resources
import io
import zipfile

RUNTIME = "python3.12"
HANDLER = "launcher.handler"
TIMEOUT_SECONDS = 60
MEMORY_MIB = 128


def launcher_zip() -> bytes:
    """The launcher Lambda package; fixed timestamps and modes so the same source gives the
    same bytes (and the same CodeSha256), which is how an unchanged launcher is recognised."""
    source = importlib.resources.files("yunpipe.lambda_src").joinpath("launcher.py").read_bytes()
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        info = zipfile.ZipInfo("launcher.py", date_time=(1980, 1, 1, 0, 0, 0))
        info.external_attr = 0o644 << 16
        info.compress_type = zipfile.ZIP_DEFLATED
        archive.writestr(info, source)
    return buffer.getvalue()
