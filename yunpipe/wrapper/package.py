"""Packaged algorithms (issue 10): `yunpipe init` writes a package folder; `wrap` builds its
runtime image, which the normal wrap path then wraps.

The runtime image is the folder on the offline Debian base (yunpipe/base:bookworm, which the
bootstrap builds): no Dockerfile from the developer and no image registry. Python requirements
come from PyPI at build time, into a virtualenv of their own. The image is tagged by a hash of
everything it is built from (its Dockerfile, the requirements, the folder's files), so the
same content is the same tag, and `wrap` records a new version only when that tag, or another
field of the algorithm, changed.
"""
import dataclasses
import hashlib
import json
import os
import re
import shutil
import ssl
import stat
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from yunpipe.errors import InputError, YunpipeError
from yunpipe.specs.algorithm import NAME_PATTERN, AlgorithmSpec
from yunpipe.specs.package import CODE_DIR, PACKAGE_FILE, RUNTIMES, PackageSpec, load_package, package_file
from yunpipe.wrapper.context import _environment

if TYPE_CHECKING:  # docker is imported when an image is built, not for every command
    import docker

BASE_IMAGE = "yunpipe/base:bookworm"
VENV = "/opt/algorithm-venv"
# Hex digits of the content hash in a runtime image's tag.
TAG_LENGTH = 16
# Never part of a package: version control, caches and bytecode of the developer's machine.
IGNORED_NAMES = ("__pycache__",)
IGNORED_SUFFIXES = (".pyc", ".pyo")


@dataclass(frozen=True)
class RuntimeImage:
    reference: str  # yunpipe-runtime/NAME:<content hash>
    dockerfile: str
    files: tuple[str, ...]  # the package's files, relative to its folder


def package_files(folder: Path) -> tuple[str, ...]:
    """The files of a package folder that go into its image, sorted; hidden ones (.git, .venv,
    .env) and bytecode are left out."""
    found = []
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d not in IGNORED_NAMES)
        for name in files:
            if not name.startswith(".") and not name.endswith(IGNORED_SUFFIXES):
                found.append((Path(root) / name).relative_to(folder).as_posix())
    return tuple(sorted(found))


def render_runtime_dockerfile(package: PackageSpec) -> str:
    template = _environment().get_template("runtime.Dockerfile.j2")
    return template.render(name=package.algorithm.name, runtime=package.runtime, base_image=BASE_IMAGE,
                           requirements=bool(package.requirements), venv=VENV, code_dir=CODE_DIR)


def requirements_text(package: PackageSpec) -> str:
    return "".join(f"{line}\n" for line in package.requirements)


def runtime_image(package: PackageSpec) -> RuntimeImage:
    """The runtime image a package builds into, tagged by a hash of what it is built from."""
    dockerfile = render_runtime_dockerfile(package)
    files = package_files(package.folder)
    digest = hashlib.sha256()
    for part in (dockerfile, requirements_text(package)):
        digest.update(part.encode() + b"\0")
    for relative in files:
        path = package.folder / relative
        executable = bool(path.stat().st_mode & stat.S_IXUSR)
        digest.update(f"{relative}\0{int(executable)}\0".encode())
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return RuntimeImage(f"{package.algorithm.container_name}:{digest.hexdigest()[:TAG_LENGTH]}", dockerfile, files)


@dataclass(frozen=True)
class Packaged:
    """A package as wrap sees it: the package, and the runtime image its content builds."""

    package: PackageSpec
    image: RuntimeImage

    @property
    def spec(self) -> AlgorithmSpec:
        """The algorithm wrap wraps: the package's, on its runtime image."""
        return dataclasses.replace(self.package.algorithm, container_name=self.image.reference)


def load_packaged(path: str | Path) -> Packaged | None:
    """The package a `wrap -f` argument names (a folder, or its yunpipe.yaml), else None."""
    if package_file(path) is None:
        return None
    package = load_package(path)
    return Packaged(package, runtime_image(package))


def host_ca_bundle() -> Path:
    """The CA bundle this machine trusts (SSL_CERT_FILE, else OpenSSL's), for pip in the build."""
    paths = ssl.get_default_verify_paths()
    for candidate in (paths.cafile, paths.openssl_cafile):
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    raise YunpipeError("no CA bundle on this machine for pip to reach PyPI from the runtime image "
                       "(install Debian's ca-certificates, or name one with SSL_CERT_FILE)")


def write_runtime_context(package: PackageSpec, image: RuntimeImage, directory: Path) -> tuple[str, ...]:
    """Write the runtime image's build context into directory; returns its top-level entries."""
    code = directory / "algorithm"
    shutil.rmtree(code, ignore_errors=True)  # a re-used output directory must not keep removed files
    code.mkdir(parents=True)
    (directory / "Dockerfile").write_text(image.dockerfile)
    for relative in image.files:
        target = code / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(package.folder / relative, target)
    if not package.requirements:
        return "Dockerfile", "algorithm"
    (directory / "requirements.txt").write_text(requirements_text(package))
    shutil.copyfile(host_ca_bundle(), directory / "ca-certificates.crt")
    return "Dockerfile", "algorithm", "requirements.txt", "ca-certificates.crt"


def build_runtime_image(client: "docker.DockerClient", package: PackageSpec, image: RuntimeImage) -> None:
    """Build the runtime image unless the daemon has it already (same tag, same content)."""
    import docker.errors

    from yunpipe.wrapper import images

    try:
        client.images.get(image.reference)
        print(f"{package.algorithm.name}: runtime image {image.reference} is up to date", file=sys.stderr)
        return
    except docker.errors.ImageNotFound:
        pass
    try:
        client.images.get(BASE_IMAGE)
    except docker.errors.ImageNotFound:
        raise YunpipeError(f"{BASE_IMAGE}, the base of every runtime image, is not in the local Docker daemon "
                           "(scripts/bootstrap.sh builds it)") from None
    print(f"building the runtime image {image.reference}", file=sys.stderr)
    with tempfile.TemporaryDirectory(prefix=f"yunpipe-runtime-{package.algorithm.name}-") as tmp:
        write_runtime_context(package, image, Path(tmp))
        images.build_image(client, tmp, image.reference)


# ---------------------------------------------------------------------------- yunpipe init

PYTHON_MAIN = '''"""{name}: the code of a packaged yunpipe algorithm; edit it freely.

For each input file, yunpipe runs `python3 {code_dir}/main.py INPUT OUTPUT` (run_command in
yunpipe.yaml). Try it here: python3 main.py example/input.txt output.txt
"""
import os
import sys


def main(source: str, target: str) -> None:
    suffix = os.environ.get("SUFFIX", "")  # a variable declared in yunpipe.yaml
    with open(source, encoding="utf-8") as lines, open(target, "w", encoding="utf-8") as out:
        for line in lines:
            out.write(line.rstrip("\\n").upper() + suffix + "\\n")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
'''

SHELL_RUN = '''#!/bin/sh
# {name}: the code of a packaged yunpipe algorithm; edit it freely.
# For each input file, yunpipe runs `sh {code_dir}/run.sh INPUT OUTPUT` (run_command in
# yunpipe.yaml). Try it here: sh run.sh example/input.txt output.txt
set -eu
awk -v suffix="${{SUFFIX:-}}" '{{ print toupper($0) suffix }}' "$1" > "$2"
'''

PACKAGE_YAML = '''# A packaged yunpipe algorithm. `wrap -f {folder}` builds it on the {runtime} runtime (the offline
# Debian base{python_note}) and records a new version each time this folder changes.
# The other fields are those of an algorithm file (README, "Files"); wrap sets container_name and system.
name: {name_json}
description: Upper-cases each line of a text file and appends SUFFIX.
runtime: {runtime}
entry: {entry}
run_command: {program} {code_dir}/{entry} $input $output
{requirements}user_specified_environment_variables:
  - name: SUFFIX
    description: appended to every line
    schema: {{"type": "string", "maxLength": 20, "default": ""}}
timeout_seconds: 300
'''

PYTHON_REQUIREMENTS = '''# PyPI requirements, installed when wrap builds the image, e.g. ["python-slugify>=8"].
requirements: []
'''

EXAMPLE_INPUT = "hello from yunpipe\nedit the code, then wrap it\n"


def init_package(target: Path, runtime: str) -> tuple[str, ...]:
    """Write a new package folder: yunpipe.yaml, the entry and an example; returns the files."""
    name = target.name
    if runtime not in RUNTIMES:
        raise InputError("yunpipe init", "--runtime", f"expected one of {', '.join(RUNTIMES)}, got {json.dumps(runtime)}")
    # Lowercase: the name is in the images' names, which Docker wants lowercase.
    if not re.match(NAME_PATTERN, name) or name != name.lower():
        raise InputError("yunpipe init", "NAME", "expected a name of lowercase letters, digits, '-', '_' or '.' "
                                                 f"(at most 63 characters), got {json.dumps(name)}")
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise InputError(str(target), "", "expected a new or empty folder for the package, it already holds files")
    entry, program = RUNTIMES[runtime]
    python = runtime == "python"
    files = {
        PACKAGE_FILE: PACKAGE_YAML.format(
            folder=f"{target}/", runtime=runtime, name_json=json.dumps(name), entry=entry, program=program,
            code_dir=CODE_DIR, requirements=PYTHON_REQUIREMENTS if python else "",
            python_note=", python3 and your requirements from PyPI" if python else ""),
        entry: (PYTHON_MAIN if python else SHELL_RUN).format(name=name, code_dir=CODE_DIR),
        "example/input.txt": EXAMPLE_INPUT,
    }
    for relative, text in files.items():
        path = target / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    (target / entry).chmod(0o755)
    return tuple(files)
