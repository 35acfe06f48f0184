"""Which boto3 a wrapped image gets (issue 10): the host's own when the image's python3 is one
it supports, else the newest release that supports that python3, downloaded from PyPI by hash
and cached; and the python stage wrap builds to ask an image without python3."""
import subprocess
import sys
import zipfile
from email.parser import Parser
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import Version

from yunpipe.errors import InputError
from yunpipe.specs.algorithm import load_algorithm
from yunpipe.wrapper import context
from yunpipe.wrapper.context import (
    BOTO3_DISTRIBUTIONS,
    BOTO3_FOR_OLD_PYTHON,
    MIN_PYTHON,
    BaseImage,
    boto3_wheels,
    fetch_wheels,
    host_boto3_python,
    render_dockerfile,
    write_build_context,
)

UPPERCASE = Path(__file__).resolve().parents[1] / "examples" / "uppercase" / "uppercase.json"


def boto3_version(wheels) -> str:
    return next(name.split("-")[1] for name, _ in wheels if name.startswith("boto3-"))


def wheel_metadata(path: Path):
    with zipfile.ZipFile(path) as archive:
        name = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        return Parser().parsestr(archive.read(name).decode())


def test_the_host_boto3_is_kept_for_a_python3_it_supports():
    oldest = host_boto3_python()
    # The newest Requires-Python lower bound of the distributions installed here.
    assert oldest >= MIN_PYTHON
    assert any(f">={oldest[0]}.{oldest[1]}" in (metadata.distribution(name).metadata["Requires-Python"] or "")
               .replace(" ", "") for name in BOTO3_DISTRIBUTIONS)
    assert boto3_wheels(oldest) is None
    assert boto3_wheels((oldest[0], oldest[1] + 3)) is None
    assert boto3_wheels(None) is None  # not asked (a dry run): the host's


@pytest.mark.parametrize("python, boto3", [((3, 7), "1.33.13"), ((3, 8), "1.37.38"), ((3, 9), "1.42.97")])
def test_an_older_python3_gets_the_newest_boto3_that_supports_it(monkeypatch, python, boto3):
    monkeypatch.setattr(context, "host_boto3_python", lambda: (3, 10))
    wheels = boto3_wheels(python)
    assert wheels is not None and boto3_version(wheels) == boto3


def test_a_python3_between_the_table_and_the_host_boto3_gets_the_newest_set_below_it(monkeypatch):
    monkeypatch.setattr(context, "host_boto3_python", lambda: (3, 12))
    assert boto3_wheels((3, 11)) == BOTO3_FOR_OLD_PYTHON[(3, 9)]


def test_a_python3_older_than_the_runscript_supports_is_refused():
    with pytest.raises(InputError) as error:
        boto3_wheels((3, 6), "tool")
    message = str(error.value)
    assert message.startswith("tool: container_name: expected an image whose python3 is 3.7 or newer")
    assert "got python3 3.6" in message


@pytest.mark.parametrize("python", sorted(BOTO3_FOR_OLD_PYTHON))
def test_each_boto3_set_installs_together_on_its_python(python):
    """Every distribution once; each one's Requires-Python admits the python and its
    requirements (markers evaluated for that python) are met by the set's own versions."""
    paths = fetch_wheels(BOTO3_FOR_OLD_PYTHON[python], python)
    documents = {canonicalize_name(m["Name"]): m for m in map(wheel_metadata, paths)}
    assert sorted(documents) == sorted(canonicalize_name(name) for name in BOTO3_DISTRIBUTIONS)
    version = f"{python[0]}.{python[1]}"
    environment = {"python_version": version, "python_full_version": f"{version}.0", "extra": ""}
    for name, document in documents.items():
        assert SpecifierSet(document["Requires-Python"] or "").contains(f"{version}.0"), (name, version)
        for line in document.get_all("Requires-Dist") or []:
            requirement = Requirement(line)
            if requirement.marker and not requirement.marker.evaluate(environment):
                continue
            wanted = documents[canonicalize_name(requirement.name)]
            assert requirement.specifier.contains(Version(wanted["Version"]), prereleases=True), (name, line)


def test_a_wrap_for_an_older_python3_carries_that_release_pruned_and_importable(tmp_path):
    spec = load_algorithm(UPPERCASE)
    write_build_context(spec, 1, tmp_path, BaseImage(python=(3, 8)))
    site = tmp_path / "opt" / "yunpipe" / "site-packages"
    assert (site / "boto3-1.37.38.dist-info").is_dir() and (site / "botocore-1.37.38.dist-info").is_dir()
    assert sorted(p.name for p in (site / "botocore" / "data").iterdir() if p.is_dir()) == ["lambda", "s3", "sns", "sqs"]
    # Nothing pip would put outside site-packages (jmespath's jp.py), no bytecode.
    assert not list(site.glob("*.data")) and not list(site.rglob("__pycache__"))
    # The folder is a working boto3 on its own (this python is one it supports too).
    check = ("import sys; sys.path.insert(0, sys.argv[1]); import boto3; "
             "boto3.client('sqs', region_name='us-east-1'); print(boto3.__version__, boto3.__file__)")
    result = subprocess.run([sys.executable, "-I", "-c", check, str(site)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    version, location = result.stdout.split()
    assert version == "1.37.38" and Path(location).is_relative_to(site)


def test_a_wrap_for_a_supported_python3_copies_the_host_boto3(tmp_path):
    write_build_context(load_algorithm(UPPERCASE), 1, tmp_path, BaseImage(python=host_boto3_python()))
    site = tmp_path / "opt" / "yunpipe" / "site-packages"
    assert (site / f"boto3-{metadata.version('boto3')}.dist-info").is_dir()


def test_a_damaged_cached_wheel_is_downloaded_again(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    six = tuple(wheel for wheel in BOTO3_FOR_OLD_PYTHON[(3, 9)] if wheel[0].startswith("six-"))
    [path] = fetch_wheels(six, (3, 9))
    assert path.parent == tmp_path / "yunpipe" / "wheels"
    path.write_bytes(b"not the wheel")
    [again] = fetch_wheels(six, (3, 9))
    assert again == path and zipfile.is_zipfile(path)
    assert context._sha256(path) == six[0][1]


def instructions(dockerfile: str) -> list[str]:
    return [line for line in dockerfile.splitlines() if line and not line.startswith("#")]


@pytest.mark.parametrize("user", ["", "analyst"])
def test_the_python_stage_is_how_the_wrapped_dockerfile_starts(user):
    """Its layers are the full build's first ones, so the build reuses them from the cache."""
    spec = load_algorithm(UPPERCASE)
    base = BaseImage(user=user, workdir="/work", image_id="sha256:abc")
    stage = instructions(render_dockerfile(spec, 0, base, python_stage=True))
    full = instructions(render_dockerfile(spec, 4, base))
    assert stage == full[:len(stage)]
    assert stage[-1].startswith("RUN command -v python3 >/dev/null || (apt-get update")
    assert len(stage) == (3 if user else 2)
