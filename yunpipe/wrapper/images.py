"""Building, tagging and pushing images through the Docker SDK, with visible progress."""
import dataclasses
import re
import sys
import tempfile
import urllib.error
import urllib.request
from pathlib import Path
from typing import TextIO

import docker
import docker.errors
from tqdm import tqdm

from yunpipe.errors import YunpipeError
from yunpipe.specs.algorithm import AlgorithmSpec
from yunpipe.wrapper.context import BaseImage, render_dockerfile

# Lines of the failing step shown when a build fails (the whole log was streamed already).
FAILED_STEP_LINES = 40
# The daemon colours a step's stderr; the error message is plain text.
ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*m")
# Prints the running python's major.minor; a python3 that takes longer than PROBE_SECONDS to
# answer is a hung image.
PYTHON_VERSION = "import sys; print('%d.%d' % sys.version_info[:2])"
PROBE_SECONDS = 60


def docker_client() -> docker.DockerClient:
    """A client of a daemon that answers, or a YunpipeError saying how to get one."""
    try:
        client = docker.from_env()
        client.ping()
    except docker.errors.DockerException as exc:
        raise YunpipeError(f"no Docker daemon answers ({exc}); start dockerd (scripts/bootstrap.sh does)") from None
    return client


def python_version(client: docker.DockerClient, image: str) -> tuple[int, int] | None:
    """The version of the python3 on the image's PATH, or None when none runs."""
    # Created, then started: a container whose command cannot start is removed all the same.
    container = client.containers.create(image, ["-c", PYTHON_VERSION], entrypoint=["python3"],
                                         network_disabled=True)
    try:
        container.start()
        status = container.wait(timeout=PROBE_SECONDS).get("StatusCode")
        output = container.logs(stdout=True, stderr=False).decode(errors="replace").strip()
    except docker.errors.APIError:
        return None  # no python3 to start
    finally:
        container.remove(force=True)
    match = re.fullmatch(r"(\d+)\.(\d+)", output)
    return (int(match[1]), int(match[2])) if status == 0 and match else None


def base_image(client: docker.DockerClient, spec: AlgorithmSpec) -> BaseImage:
    """The developer's image (pulled when not local): its config, so the wrapper can restore it,
    and the python3 the runscript will run on, so the wrapper picks a boto3 that supports it."""
    reference = spec.container_name
    try:
        image = client.images.get(reference)
    except docker.errors.ImageNotFound:
        print(f"{reference} is not in the local daemon, pulling it", file=sys.stderr)
        try:
            image = client.images.pull(reference)
        except docker.errors.DockerException as exc:
            raise YunpipeError(f"container_name {reference}: not in the local Docker daemon and cannot be pulled ({exc})") from None
    config = image.attrs.get("Config") or {}
    base = BaseImage(user=config.get("User") or "", workdir=config.get("WorkingDir") or "", image_id=image.id)
    python = python_version(client, image.id)
    if python is None:
        # The wrapped Dockerfile installs the system's python3 when the image has none: build
        # just that much (the full build reuses these layers) and ask the result.
        print(f"{reference}: no python3 answers; building the {spec.system} python3 install to ask again",
              file=sys.stderr)
        with tempfile.TemporaryDirectory(prefix="yunpipe-python-stage-") as tmp:
            Path(tmp, "Dockerfile").write_text(render_dockerfile(spec, 0, base, python_stage=True))
            python = python_version(client, build_image(client, tmp, None))
    # Still None (a python3 that does not run): the host's boto3, and the build's own check of
    # the image's python3 shows what is wrong.
    return dataclasses.replace(base, python=python)


def build_image(client: docker.DockerClient, context_dir: str | Path, tag: str | None, out: TextIO = sys.stderr) -> str:
    """`docker build` a directory with a Dockerfile (tagged tag, if any), streaming its log to out;
    returns the image id."""
    what = tag or str(context_dir)
    step: list[str] = []
    image_id = ""
    try:
        for chunk in client.api.build(path=str(context_dir), tag=tag, rm=True, forcerm=True, decode=True):
            if "error" in chunk or "errorDetail" in chunk:
                message = (chunk.get("errorDetail") or {}).get("message") or chunk.get("error", "")
                tail = ANSI_ESCAPE.sub("", "".join(step[-FAILED_STEP_LINES:])).strip()
                raise YunpipeError(f"docker build of {what} failed: {message.strip()}\n"
                                   f"--- output of the failing step ---\n{tail}")
            text = chunk.get("stream", "")
            if text:
                out.write(text)
                out.flush()
                # The classic builder starts every step with "Step i/n : ..."; keep the current one.
                if text.startswith("Step "):
                    step = []
                step.append(text)
            image_id = (chunk.get("aux") or {}).get("ID", image_id)
    except docker.errors.APIError as exc:
        raise YunpipeError(f"docker build of {what} failed: {exc.explanation or exc}") from None
    if not image_id:
        raise YunpipeError(f"docker build of {what} ended without an image")
    return image_id


def split_tag(reference: str) -> tuple[str, str]:
    """'host:5000/a/b:3' -> ('host:5000/a/b', '3'); a port is not a tag."""
    repository, _, tag = reference.rpartition(":")
    if not repository or "/" in tag:
        return reference, "latest"
    return repository, tag


def tag_image(client: docker.DockerClient, image_id: str, reference: str) -> None:
    repository, tag = split_tag(reference)
    client.api.tag(image_id, repository, tag)


def push_image(client: docker.DockerClient, reference: str, auth_config: dict | None = None) -> str:
    """Push with a progress bar per layer; returns the digest the registry reports ('' if none)."""
    repository, tag = split_tag(reference)
    bars: dict[str, tqdm] = {}
    digest = ""
    try:
        for chunk in client.api.push(repository, tag, stream=True, decode=True, auth_config=auth_config):
            if "error" in chunk or "errorDetail" in chunk:
                message = (chunk.get("errorDetail") or {}).get("message") or chunk.get("error", "")
                raise YunpipeError(f"docker push of {reference} failed: {message}")
            digest = (chunk.get("aux") or {}).get("Digest", digest)
            layer, detail = chunk.get("id"), chunk.get("progressDetail") or {}
            if not layer or chunk.get("status", "").startswith(("The push refers", tag)):
                continue
            bar = bars.get(layer)
            if bar is None:
                bar = bars[layer] = tqdm(desc=layer, unit="B", unit_scale=True, leave=True, file=sys.stderr,
                                                 disable=None)
            if detail.get("total"):
                bar.total = detail["total"]
                bar.n = detail.get("current", 0)
            bar.set_postfix_str(chunk.get("status", ""), refresh=True)
    except docker.errors.APIError as exc:
        raise YunpipeError(f"docker push of {reference} failed: {exc.explanation or exc}") from None
    finally:
        for bar in bars.values():
            bar.close()
    return digest


def registry_answers(address: str) -> bool:
    """Whether a Docker registry (v2 API) listens at host:port over plain HTTP."""
    # No proxy: the registry is local, and a proxy from the environment would answer instead.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(f"http://{address}/v2/", timeout=1) as response:
            return response.status == 200
    except urllib.error.HTTPError as exc:
        return exc.code == 401  # a registry that wants credentials still answers
    except (OSError, ValueError):
        return False
