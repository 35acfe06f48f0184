"""Rendering a wrapped image's build context: the Dockerfile, the runscript, the algorithm JSON
and the isolated boto3 it runs with.

Layout of the context directory:
    Dockerfile
    runscript.py, entrypoint.py, algorithm.json   -> /opt/yunpipe/
    opt/yunpipe/site-packages/                    -> /opt/yunpipe/site-packages
"""
import json
import re
import shutil
from dataclasses import dataclass
from importlib import metadata, resources
from pathlib import Path, PurePosixPath

import jinja2

from yunpipe.errors import InputError
from yunpipe.specs.algorithm import SUPPORTED_SYSTEMS, AlgorithmSpec

# boto3 and everything it imports; all pure Python, so the host's copies run in any image
# whose python3 is recent enough (the Dockerfile checks that at build time).
BOTO3_DISTRIBUTIONS = ("boto3", "botocore", "s3transfer", "jmespath", "python-dateutil", "six", "urllib3")
# The services the runscript calls; botocore's data for the other ~400 is left out (~25 MB).
RUNTIME_SERVICES = ("s3", "sqs")
SITE_PACKAGES = PurePosixPath("opt/yunpipe/site-packages")
# What a Dockerfile FROM line accepts (name[:tag][@digest]); anything else could inject lines.
IMAGE_REFERENCE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/:@+-]*$")


@dataclass(frozen=True)
class BaseImage:
    """What the Dockerfile restores of the developer's image ('' = root / the image's own)."""

    user: str = ""
    workdir: str = ""
    # The developer image's ID, labelled on the wrapped image so a rebuild can be skipped
    # only when the very same developer image would be wrapped again.
    image_id: str = ""


@dataclass(frozen=True)
class BuildContext:
    dir: Path
    dockerfile: str
    files: tuple[str, ...]  # relative paths of the top-level entries written


def _environment() -> jinja2.Environment:
    return jinja2.Environment(loader=jinja2.PackageLoader("yunpipe.templates", "dockerfiles"),
                              undefined=jinja2.StrictUndefined, keep_trailing_newline=True,
                              trim_blocks=True, lstrip_blocks=True)


def render_dockerfile(spec: AlgorithmSpec, version: int, base: BaseImage = BaseImage(), source: str = "") -> str:
    source = source or spec.name
    if spec.system not in SUPPORTED_SYSTEMS:
        raise InputError(source, "system", f"expected one of {', '.join(SUPPORTED_SYSTEMS)}, got {json.dumps(spec.system)}")
    if not IMAGE_REFERENCE.match(spec.container_name):
        raise InputError(source, "container_name", f"expected a Docker image reference, got {json.dumps(spec.container_name)}")
    # Root needs no switching; a named developer user is switched away from and back to.
    user = "" if base.user in ("", "root", "0", "0:0") else base.user
    template = _environment().get_template(f"{spec.system}.Dockerfile.j2")
    return template.render(name=spec.name, version=version, container_name=spec.container_name,
                           base_user=user, base_workdir=base.workdir, source_id=base.image_id)


def runscript_path() -> Path:
    return Path(str(resources.files("yunpipe.runtime").joinpath("runscript.py")))


def _keep(relative: PurePosixPath) -> bool:
    """Which installed files of the boto3 distributions go into the image."""
    parts = relative.parts
    if parts[0] == ".." or "__pycache__" in parts or relative.suffix == ".pyc":
        return False  # console scripts outside site-packages, and bytecode of the host's Python
    if parts[:2] == ("botocore", "data") and len(parts) > 3:
        return parts[2] in RUNTIME_SERVICES
    return True


def copy_boto3(destination: Path) -> None:
    """Copy the host's boto3 distributions (their installed files) into destination."""
    for name in BOTO3_DISTRIBUTIONS:
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            raise InputError("wrap", "boto3", f"expected {name} installed next to yunpipe (reinstall yunpipe)") from None
        for file in dist.files or ():
            relative = PurePosixPath(file.as_posix())
            if not _keep(relative):
                continue
            target = destination / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(str(dist.locate_file(file)), target)


def write_build_context(spec: AlgorithmSpec, version: int, directory: str | Path,
                        base: BaseImage = BaseImage()) -> BuildContext:
    """Write everything `docker build` needs for the wrapped image into directory."""
    directory = Path(directory)
    dockerfile = render_dockerfile(spec, version, base)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "Dockerfile").write_text(dockerfile)
    shutil.copyfile(runscript_path(), directory / "runscript.py")
    shutil.copyfile(Path(__file__).with_name("entrypoint.py"), directory / "entrypoint.py")
    (directory / "algorithm.json").write_text(json.dumps(spec.to_document(), indent=2) + "\n")
    site_packages = directory / SITE_PACKAGES
    # A re-used output directory must not keep packages of an older boto3.
    shutil.rmtree(site_packages, ignore_errors=True)
    copy_boto3(site_packages)
    return BuildContext(directory, dockerfile, ("Dockerfile", "runscript.py", "entrypoint.py", "algorithm.json", "opt"))
