"""The images moto's Docker Lambda needs, built offline for ``yunpipe local up --lambda docker``.

What moto 5.2 does per invocation (moto/awslambda/models.py, ``LambdaFunction._invoke_lambda``):
copies the function's zip into a Docker volume through a ``busybox`` container (it pulls
``docker.io/library/busybox:latest`` when no such image is local: offline it must be); then runs
``$MOTO_DOCKER_LAMBDA_IMAGE`` (used as given when it has a tag) with that volume at /var/task,
the command ``[handler, event JSON]``, the function's environment plus AWS_REGION, fake
credentials, MOTO_PORT and ``AWS_ENDPOINT_URL=http://host.docker.internal:$MOTO_PORT``, and
``$MOTO_DOCKER_NETWORK_MODE`` as network mode; the last line of the container's output is the
result, a non-zero exit a function error, the whole output goes to ``/aws/lambda/<name>``.

Built here, from the local base image (Debian bookworm + python3), never pulled:
- the runtime image ``yunpipe/lambda-python:<content hash>`` (templates/lambda/Dockerfile.j2):
  lambda_bootstrap.py as /var/runtime/bootstrap.py, the host's boto3 next to it. The tag is a hash
  of everything that goes in (base image ID, Dockerfile, bootstrap, boto3 versions), so an
  existing tag is reused and any change builds a new image.
- ``busybox:latest`` (templates/lambda/busybox.Dockerfile.j2), only when none exists: Debian's
  statically linked busybox from the host (``apt-get install busybox-static``).

moto names the volume of a function's code by the code's SHA-256 and reuses an existing volume
of that name without looking inside; it removes the volume after each invocation, except when
the copy fails or is interrupted, which leaves it empty: every later invocation of the same code
would then find no handler. Worse, when the copy cannot even start (no ``busybox`` image yet),
moto's in-process count of the volume's users stays at one, and from then on every invocation of
that code in the process reuses the volume by name without filling it, even after the volume is
gone. ``remove_code_volumes`` drops such leftovers, and moto's stale counts with them.

API:
    BASE_IMAGE, RUNTIME_REPOSITORY, BUSYBOX_IMAGE
    ensure_lambda_images(docker_client, base_image=BASE_IMAGE) -> str
                                 builds what is missing; returns the runtime image's tag
    remove_code_volumes(docker_client, digests)   removes those of moto's code volumes no container uses
    LambdaImageError             an image cannot be built (missing base image or busybox-static)
"""
from __future__ import annotations

import hashlib
import shutil
import tempfile
from collections.abc import Iterable
from importlib import metadata
from pathlib import Path

import botocore
import docker
import docker.errors
import jinja2

from yunpipe.wrapper.context import BOTO3_DISTRIBUTIONS, copy_boto3

BASE_IMAGE = "yunpipe/base:bookworm"
RUNTIME_REPOSITORY = "yunpipe/lambda-python"
BUSYBOX_IMAGE = "busybox:latest"
BOOTSTRAP = Path(__file__).with_name("lambda_bootstrap.py")


class LambdaImageError(RuntimeError):
    """An image of moto's Docker Lambda cannot be built."""


def _template(name: str) -> jinja2.Template:
    environment = jinja2.Environment(loader=jinja2.PackageLoader("yunpipe.templates", "lambda"),
                                     undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
    return environment.get_template(name)


def _build(docker_client: docker.DockerClient, context: Path, tag: str) -> None:
    try:
        # pull=False: the FROM image is local; the build needs no network at all.
        docker_client.images.build(path=str(context), tag=tag, rm=True, forcerm=True, pull=False)
    except docker.errors.BuildError as exc:
        output = "".join(str(line.get("stream") or line.get("error") or "") for line in exc.build_log).strip()
        raise LambdaImageError(f"cannot build {tag}: {exc}\n{output[-2000:]}") from None


def _runtime_tag(docker_client: docker.DockerClient, base_image: str, dockerfile: str) -> str:
    try:
        base_id = docker_client.images.get(base_image).id
    except docker.errors.ImageNotFound:
        raise LambdaImageError(f"the base image {base_image} is missing (scripts/base-image.sh builds it)") from None
    digest = hashlib.sha256()
    for part in (base_id, dockerfile, BOOTSTRAP.read_text()):
        digest.update(part.encode() + b"\0")
    for name in BOTO3_DISTRIBUTIONS:
        digest.update(f"{name}=={metadata.version(name)}\0".encode())
    return f"{RUNTIME_REPOSITORY}:{digest.hexdigest()[:12]}"


def _ensure_runtime(docker_client: docker.DockerClient, base_image: str) -> str:
    dockerfile = _template("Dockerfile.j2").render(base_image=base_image)
    tag = _runtime_tag(docker_client, base_image, dockerfile)
    try:
        docker_client.images.get(tag)
        return tag
    except docker.errors.ImageNotFound:
        pass
    with tempfile.TemporaryDirectory(prefix="yunpipe-lambda-") as directory:
        context = Path(directory)
        (context / "Dockerfile").write_text(dockerfile)
        runtime = context / "runtime"
        copy_boto3(runtime)
        # copy_boto3 keeps only the services of wrapped images; a Lambda may call any (the
        # launcher: SQS and ECS), so botocore's whole data folder goes in.
        shutil.copytree(Path(botocore.__file__).with_name("data"), runtime / "botocore" / "data",
                        dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__"))
        shutil.copyfile(BOOTSTRAP, runtime / "bootstrap.py")
        _build(docker_client, context, tag)
    return tag


def _ensure_busybox(docker_client: docker.DockerClient) -> None:
    try:
        docker_client.images.get(BUSYBOX_IMAGE)
        return
    except docker.errors.ImageNotFound:
        pass
    binary = shutil.which("busybox")
    if binary is None:
        raise LambdaImageError(f"{BUSYBOX_IMAGE} is missing and no busybox is installed: "
                               "apt-get install busybox-static")
    with tempfile.TemporaryDirectory(prefix="yunpipe-busybox-") as directory:
        context = Path(directory)
        (context / "Dockerfile").write_text(_template("busybox.Dockerfile.j2").render())
        shutil.copyfile(binary, context / "busybox")
        (context / "busybox").chmod(0o755)
        try:
            _build(docker_client, context, BUSYBOX_IMAGE)
        except LambdaImageError as exc:
            # The usual cause: Debian's dynamically linked "busybox" package instead of busybox-static.
            raise LambdaImageError(f"{exc}\n{binary} must be statically linked: apt-get install busybox-static") from None


def remove_code_volumes(docker_client: docker.DockerClient, digests: Iterable[str]) -> None:
    for digest in set(digests):
        _forget_volume_users(digest)
        try:
            docker_client.volumes.get(digest).remove()
        except docker.errors.NotFound:
            pass
        except docker.errors.APIError as exc:
            # 409: a running invocation uses it.
            if exc.status_code != 409:
                raise


def ensure_lambda_images(docker_client: docker.DockerClient, base_image: str = BASE_IMAGE) -> str:
    """Build the images moto's Docker Lambda needs, when missing; return the runtime image's tag."""
    _ensure_busybox(docker_client)
    return _ensure_runtime(docker_client, base_image)


def _forget_volume_users(digest: str) -> None:
    """Drop moto's count of the code volume's users when no invocation of this process can be
    using it (called as a local cloud starts or stops): a count left by a failed copy makes moto
    skip filling the volume forever."""
    from moto.awslambda.models import _DockerDataVolumeContext

    with _DockerDataVolumeContext._lock:
        _DockerDataVolumeContext._data_vol_map.pop(digest, None)
