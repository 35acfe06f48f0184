"""Rendering a wrapped image's build context: the Dockerfile, the worker, the algorithm JSON
and the isolated boto3 it runs with.

Layout of the context directory:
    Dockerfile
    entrypoint.py, algorithm.json   -> /opt/yunpipe/
    opt/yunpipe/lib/                -> /opt/yunpipe/lib: the worker as the package
                                       yunpipe.runtime.worker, with the contract and empty
                                       yunpipe/ and yunpipe/runtime/ __init__.py stand-ins
    opt/yunpipe/site-packages/      -> /opt/yunpipe/site-packages

The boto3 is the host's own when the image's python3 is one the host's boto3 supports; for an
older python3 (Debian 11, Ubuntu 20.04, Amazon Linux 2, RHEL 9...) it is the newest boto3
release that supports it, downloaded once from PyPI (see BOTO3_FOR_OLD_PYTHON). Either way
botocore keeps the data of the runtime's services only, slimmed (botocore_data).
"""
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from importlib import metadata, resources
from pathlib import Path, PurePosixPath

import jinja2

from yunpipe.errors import InputError, YunpipeError
from yunpipe.specs.algorithm import DOCKER_REFERENCE, SUPPORTED_SYSTEMS, AlgorithmSpec
from yunpipe.wrapper import botocore_data

# boto3 and everything it imports; all pure Python, so the host's copies run in any image
# whose python3 is recent enough (their Requires-Python; host_boto3_python).
BOTO3_DISTRIBUTIONS = ("boto3", "botocore", "s3transfer", "jmespath", "python-dateutil", "six", "urllib3")
# The oldest python3 the worker runs on (dataclasses, postponed annotations: 3.7).
MIN_PYTHON = (3, 7)
# For an image whose python3 the host's boto3 does not support: per Python version, the newest
# release of each distribution whose Requires-Python admits it (boto3 and botocore dropped 3.7
# after 1.33, 3.8 after 1.37, 3.9 after 1.42; botocore wants urllib3 < 1.27 before Python 3.10).
# Pure-Python wheels from PyPI, checked against these SHA-256 digests. A python3 newer than a
# key and older than the host's boto3 supports gets the newest set below it.
BOTO3_FOR_OLD_PYTHON: dict[tuple[int, int], tuple[tuple[str, str], ...]] = {
    (3, 7): (
        ("boto3-1.33.13-py3-none-any.whl", "5f278b95fb2b32f3d09d950759a05664357ba35d81107bab1537c4ddd212cd8c"),
        ("botocore-1.33.13-py3-none-any.whl", "aeadccf4b7c674c7d47e713ef34671b834bc3e89723ef96d994409c9f54666e6"),
        ("s3transfer-0.8.2-py3-none-any.whl", "c9e56cbe88b28d8e197cf841f1f0c130f246595e77ae5b5a05b69fe7cb83de76"),
        ("jmespath-1.0.1-py3-none-any.whl", "02e2e4cc71b5bcab88332eebf907519190dd9e6e82107fa7f83b1003a6252980"),
        ("python_dateutil-2.9.0.post0-py2.py3-none-any.whl",
         "a8b2bc7bffae282281c8140a97d3aa9c14da0b136dfe83f850eea9a5f7470427"),
        ("six-1.17.0-py2.py3-none-any.whl", "4721f391ed90541fddacab5acf947aa0d3dc7d27b2e1e8eda2be8970586c3274"),
        ("urllib3-1.26.20-py2.py3-none-any.whl", "0ed14ccfbf1c30a9072c7ca157e4319b70d65f623e91e7b32fadb2853431016e"),
    ),
    (3, 8): (
        ("boto3-1.37.38-py3-none-any.whl", "b6d42803607148804dff82389757827a24ce9271f0583748853934c86310999f"),
        ("botocore-1.37.38-py3-none-any.whl", "23b4097780e156a4dcaadfc1ed156ce25cb95b6087d010c4bb7f7f5d9bc9d219"),
        ("s3transfer-0.11.5-py3-none-any.whl", "757af0f2ac150d3c75bc4177a32355c3862a98d20447b69a0161812992fe0bd4"),
        ("jmespath-1.0.1-py3-none-any.whl", "02e2e4cc71b5bcab88332eebf907519190dd9e6e82107fa7f83b1003a6252980"),
        ("python_dateutil-2.9.0.post0-py2.py3-none-any.whl",
         "a8b2bc7bffae282281c8140a97d3aa9c14da0b136dfe83f850eea9a5f7470427"),
        ("six-1.17.0-py2.py3-none-any.whl", "4721f391ed90541fddacab5acf947aa0d3dc7d27b2e1e8eda2be8970586c3274"),
        ("urllib3-1.26.20-py2.py3-none-any.whl", "0ed14ccfbf1c30a9072c7ca157e4319b70d65f623e91e7b32fadb2853431016e"),
    ),
    (3, 9): (
        ("boto3-1.42.97-py3-none-any.whl", "966e49f0510af9a64057a902b7df53d4348c447de0d3df4cc855dfd85e058fcd"),
        ("botocore-1.42.97-py3-none-any.whl", "77d2c8ce1bc592d3fbd7c01c35836f4a5b0cac2ca03ccdf6ffc60faa16b5fadc"),
        ("s3transfer-0.16.1-py3-none-any.whl", "61bcd00ccb83b21a0fe7e91a553fff9729d46c83b4e0106e7c314a733891f7c2"),
        ("jmespath-1.1.0-py3-none-any.whl", "a5663118de4908c91729bea0acadca56526eb2698e83de10cd116ae0f4e97c64"),
        ("python_dateutil-2.9.0.post0-py2.py3-none-any.whl",
         "a8b2bc7bffae282281c8140a97d3aa9c14da0b136dfe83f850eea9a5f7470427"),
        ("six-1.17.0-py2.py3-none-any.whl", "4721f391ed90541fddacab5acf947aa0d3dc7d27b2e1e8eda2be8970586c3274"),
        ("urllib3-1.26.20-py2.py3-none-any.whl", "0ed14ccfbf1c30a9072c7ca157e4319b70d65f623e91e7b32fadb2853431016e"),
    ),
}
# The services the worker calls (Lambda: it wakes its launcher for a job out of memory);
# botocore's data for the other ~400 is left out (~25 MB).
RUNTIME_SERVICES = ("s3", "sqs", "sns", "lambda")
SITE_PACKAGES = PurePosixPath("opt/yunpipe/site-packages")
LIB = PurePosixPath("opt/yunpipe/lib")
# What a Dockerfile FROM line accepts (name[:tag][@digest]); anything else could inject lines.
IMAGE_REFERENCE = re.compile(DOCKER_REFERENCE)


# The wrapped image's label naming the developer image it was made from: wrap and the demo
# tell by it whether the same developer image would be wrapped again.
SOURCE_LABEL = "org.yunpipe.source.id"


@dataclass(frozen=True)
class BaseImage:
    """What the Dockerfile restores of the developer's image ('' = root / the image's own)."""

    user: str = ""
    workdir: str = ""
    # The developer image's ID, labelled on the wrapped image so a rebuild can be skipped
    # only when the very same developer image would be wrapped again.
    image_id: str = ""
    # The version of the python3 the worker will run on (the image's, or the one the
    # Dockerfile installs); None when not asked (a dry run), which means the host's boto3.
    python: tuple[int, int] | None = None


@dataclass(frozen=True)
class BuildContext:
    dir: Path
    dockerfile: str
    files: tuple[str, ...]  # relative paths of the top-level entries written


def _environment() -> jinja2.Environment:
    return jinja2.Environment(loader=jinja2.PackageLoader("yunpipe.templates", "dockerfiles"),
                              undefined=jinja2.StrictUndefined, keep_trailing_newline=True,
                              trim_blocks=True, lstrip_blocks=True)


def render_dockerfile(spec: AlgorithmSpec, version: int, base: BaseImage = BaseImage(), source: str = "",
                      python_stage: bool = False) -> str:
    """The wrapped image's Dockerfile; with python_stage, only its lines up to python3's install."""
    source = source or spec.name
    if spec.system not in SUPPORTED_SYSTEMS:
        raise InputError(source, "system", f"expected one of {', '.join(SUPPORTED_SYSTEMS)}, got {json.dumps(spec.system)}")
    if not IMAGE_REFERENCE.match(spec.container_name):
        raise InputError(source, "container_name", f"expected a Docker image reference, got {json.dumps(spec.container_name)}")
    # Root needs no switching; a named developer user is switched away from and back to.
    user = "" if base.user in ("", "root", "0", "0:0") else base.user
    template = _environment().get_template(f"{spec.system}.Dockerfile.j2")
    return template.render(name=spec.name, version=version, container_name=spec.container_name,
                           base_user=user, base_workdir=base.workdir, source_id=base.image_id, source_label=SOURCE_LABEL,
                           python_stage=python_stage)


def worker_path() -> Path:
    """The worker package's __init__.py: its docstring says what the worker does."""
    return Path(str(resources.files("yunpipe.runtime.worker").joinpath("__init__.py")))


# The runtime's files a task or the launcher needs: its modules, and accounting's price table.
SHIPPED = (".py", ".json")


def worker_files() -> list[tuple[PurePosixPath, bytes]]:
    """(path under the image's lib folder, bytes) of the worker and what it imports: the
    contract, the worker's and accounting's modules, under empty stand-ins for the parent packages' __init__.py
    (the host package's would import the host's dependencies)."""
    runtime = resources.files("yunpipe.runtime")
    root = PurePosixPath("yunpipe")
    files = [(root / "__init__.py", b""), (root / "runtime" / "__init__.py", b""),
             (root / "runtime" / "contract.py", runtime.joinpath("contract.py").read_bytes())]
    for package in ("worker", "accounting"):
        folder = runtime.joinpath(package)
        files += [(root / "runtime" / package / name, folder.joinpath(name).read_bytes())
                  for name in sorted(entry.name for entry in folder.iterdir() if entry.name.endswith(SHIPPED))]
    return files


def write_worker(lib: Path) -> None:
    """The worker package under `lib` (a folder to put on sys.path), replacing what was there."""
    shutil.rmtree(lib, ignore_errors=True)
    for relative, data in worker_files():
        target = lib / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)


def _keep(relative: PurePosixPath) -> bool:
    """Which installed files of the boto3 distributions go into the image."""
    parts = relative.parts
    if parts[0] == ".." or "__pycache__" in parts or relative.suffix == ".pyc":
        return False  # console scripts outside site-packages, and bytecode of the host's Python
    if parts[:2] == ("botocore", "data") and len(parts) > 3:
        return parts[2] in RUNTIME_SERVICES
    return True


def host_boto3_python() -> tuple[int, int]:
    """The oldest Python every boto3 distribution installed here supports (their Requires-Python)."""
    oldest = MIN_PYTHON
    for name in BOTO3_DISTRIBUTIONS:
        try:
            requires = metadata.distribution(name).metadata.get_all("Requires-Python") or []
        except metadata.PackageNotFoundError:
            continue  # copy_boto3 says it is missing
        for major, minor in re.findall(r">=\s*(\d+)\.(\d+)", " ".join(requires)):
            oldest = max(oldest, (int(major), int(minor)))
    return oldest


def boto3_wheels(python: tuple[int, int] | None, source: str = "wrap") -> tuple[tuple[str, str], ...] | None:
    """The wheels (file name, SHA-256) to put in an image whose python3 is `python`, or None when
    the host's boto3 supports it (or the version is unknown)."""
    if python is None or python >= host_boto3_python():
        return None
    if python < MIN_PYTHON:
        raise InputError(source, "container_name",
                         f"expected an image whose python3 is {'.'.join(map(str, MIN_PYTHON))} or newer, "
                         f"got python3 {'.'.join(map(str, python))}: install a newer python3 in the image "
                         f"(for example python39 on RHEL/Rocky 8) and make it the python3 on its PATH")
    return BOTO3_FOR_OLD_PYTHON[max(key for key in BOTO3_FOR_OLD_PYTHON if key <= python)]


def wheel_cache() -> Path:
    """Where downloaded wheels are kept for the next wrap: $XDG_CACHE_HOME/yunpipe/wheels."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "yunpipe" / "wheels"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def fetch_wheels(wheels: tuple[tuple[str, str], ...], python: tuple[int, int]) -> list[Path]:
    """The wheels from the cache; the missing ones are downloaded from PyPI with pip, by hash."""
    cache = wheel_cache()
    missing = [(name, sha) for name, sha in wheels if not ((cache / name).is_file() and _sha256(cache / name) == sha)]
    if missing:
        cache.mkdir(parents=True, exist_ok=True)
        version = ".".join(map(str, python))
        print(f"downloading boto3 for python3 {version} from PyPI into {cache}", file=sys.stderr)
        with tempfile.TemporaryDirectory(prefix="yunpipe-wheels-") as tmp:
            requirements = Path(tmp) / "requirements.txt"
            # name-version-tags.whl -> name==version, pinned by hash (pip then refuses anything else).
            requirements.write_text("".join(f"{name.split('-')[0]}=={name.split('-')[1]} --hash=sha256:{sha}\n"
                                            for name, sha in missing))
            result = subprocess.run(
                [sys.executable, "-m", "pip", "download", "--disable-pip-version-check", "--quiet", "--no-deps",
                 "--only-binary=:all:", "--python-version", version, "--dest", tmp, "--require-hashes",
                 "-r", str(requirements)], capture_output=True, text=True)
            if result.returncode != 0:
                raise YunpipeError(f"cannot download boto3 for python3 {version} from PyPI (pip download failed):\n"
                                   f"{result.stderr.strip()}")
            for name, _ in missing:
                shutil.move(str(Path(tmp) / name), cache / name)
    return [cache / name for name, _ in wheels]


def unpack_wheels(wheels: list[Path], destination: Path) -> None:
    """Unzip wheels into destination as pip would install them, with botocore's data pruned."""
    for wheel in wheels:
        with zipfile.ZipFile(wheel) as archive:
            for member in archive.infolist():
                relative = PurePosixPath(member.filename)
                # NAME.data/ holds what pip installs outside site-packages (jmespath's jp.py script).
                if (member.is_dir() or relative.is_absolute() or ".." in relative.parts
                        or relative.parts[0].endswith(".data") or not _keep(relative)):
                    continue
                target = destination / relative
                target.parent.mkdir(parents=True, exist_ok=True)
                with archive.open(member) as source, target.open("wb") as out:
                    shutil.copyfileobj(source, out)


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
    write_worker(directory / LIB)
    shutil.copyfile(Path(__file__).with_name("entrypoint.py"), directory / "entrypoint.py")
    (directory / "algorithm.json").write_text(json.dumps(spec.to_document(), indent=2) + "\n")
    site_packages = directory / SITE_PACKAGES
    # A re-used output directory must not keep packages of an older boto3.
    shutil.rmtree(site_packages, ignore_errors=True)
    python = base.python
    wheels = boto3_wheels(python, spec.name)
    if python is not None and wheels is not None:
        unpack_wheels(fetch_wheels(wheels, python), site_packages)
    else:
        copy_boto3(site_packages)
    botocore_data.slim(site_packages / "botocore" / "data", RUNTIME_SERVICES)
    return BuildContext(directory, dockerfile, ("Dockerfile", "entrypoint.py", "algorithm.json", "opt"))
