"""Packaged algorithms (issue 10) without Docker: `yunpipe init`, yunpipe.yaml, the runtime image's
build context and the content hash that tags it. tests/e2e/test_packaged.py builds and runs one."""
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from yunpipe.registry import AlgorithmRegistry
from yunpipe.specs.package import load_package
from yunpipe.wrapper.package import host_ca_bundle, init_package, load_packaged, runtime_image

BIN = Path(sys.executable).parent


@pytest.fixture
def home(tmp_path, monkeypatch):
    home = tmp_path / "home"
    monkeypatch.setenv("YUNPIPE_HOME", str(home))
    return home


def run(script: str, *args, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / script), *map(str, args)], capture_output=True, text=True, cwd=cwd, timeout=120)


@pytest.mark.parametrize("runtime, entry, program", [("python", "main.py", "python3"), ("shell", "run.sh", "sh")])
def test_init_writes_a_package_whose_example_runs(home, tmp_path, runtime, entry, program):
    result = run("yunpipe", "init", "lines", "--runtime", runtime, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    folder = tmp_path / "lines"
    assert f"created lines/: yunpipe.yaml, {entry}, example/input.txt" in result.stdout
    assert sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()) == sorted(
        ["yunpipe.yaml", entry, "example/input.txt"])
    package = load_package(folder)
    assert (package.runtime, package.entry, package.requirements) == (runtime, entry, ())
    spec = package.algorithm
    assert spec.name == "lines" and spec.system == "debian" and spec.container_name == "yunpipe-runtime/lines"
    assert spec.run_command == f"{program} /opt/algorithm/{entry} $input $output"
    assert [p.to_document() for p in spec.parameters] == [{
        "name": "SUFFIX", "required": False, "description": "appended to every line",
        "schema": {"type": "string", "maxLength": 20, "default": ""}}]
    # The example works as written: the entry run as run_command runs it, on the example input.
    ran = subprocess.run([program, entry, "example/input.txt", str(tmp_path / "out.txt")], cwd=folder,
                         env={"PATH": "/usr/bin:/bin", "SUFFIX": "!"}, capture_output=True, text=True)
    assert ran.returncode == 0, ran.stderr
    assert (tmp_path / "out.txt").read_text() == "HELLO FROM YUNPIPE!\nEDIT THE CODE, THEN WRAP IT!\n"


def test_init_takes_a_path_and_names_the_algorithm_after_its_last_part(home, tmp_path):
    init_package(tmp_path / "deep" / "er" / "my.algo-2", "python")
    assert load_package(tmp_path / "deep" / "er" / "my.algo-2" / "yunpipe.yaml").algorithm.name == "my.algo-2"


def test_init_refuses_a_folder_that_holds_files(home, tmp_path):
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "notes.txt").write_text("mine")
    result = run("yunpipe", "init", "taken", cwd=tmp_path)
    assert result.returncode == 2
    assert "error: taken: expected a new or empty folder for the package, it already holds files" in result.stderr
    assert [p.name for p in (tmp_path / "taken").iterdir()] == ["notes.txt"]
    (tmp_path / "empty").mkdir()
    assert run("yunpipe", "init", "empty", cwd=tmp_path).returncode == 0


@pytest.mark.parametrize("argv, expected", [
    (["init", "x", "--runtime", "ruby"], 'yunpipe init: --runtime: expected one of python, shell, got "ruby"'),
    (["init", "bad name"], "yunpipe init: NAME: expected a name of lowercase letters, digits, '-', '_' or '.'"),
    (["init", "Upper"], 'yunpipe init: NAME: expected a name of lowercase letters, digits, \'-\', \'_\' or \'.\' '
                        '(at most 63 characters), got "Upper"'),
])
def test_init_of_a_bad_runtime_or_name_exits_2_and_writes_nothing(home, tmp_path, argv, expected):
    result = run("yunpipe", *argv, cwd=tmp_path)
    assert result.returncode == 2
    assert expected in result.stderr and "Traceback" not in result.stderr
    assert list(tmp_path.iterdir()) == []


@pytest.fixture
def package(tmp_path) -> Path:
    folder = tmp_path / "pkg"
    init_package(folder, "python")
    return folder


def edit_yaml(folder: Path, old: str, new: str) -> None:
    path = folder / "yunpipe.yaml"
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new))


@pytest.mark.parametrize("old, new, expected", [
    ("runtime: python\n", "runtime: python\ncontainer_name: lab/x:1\n",
     "yunpipe.yaml: container_name: unknown field (not part of the format)"),
    ("runtime: python\n", "runtime: python\nsystem: alpine\n", "yunpipe.yaml: system: unknown field"),
    ("runtime: python\n", "runtime: ruby\n", 'yunpipe.yaml: runtime: expected one of "python", "shell", got "ruby"'),
    ("runtime: python\n", "", "yunpipe.yaml: runtime: missing required field"),
    ("requirements: []", 'requirements: ["--index-url=http://example.invalid/simple"]',
     "yunpipe.yaml: requirements[0]: expected a PyPI requirement such as 'python-slugify>=8' (no pip options)"),
    ("requirements: []", "requirements: python-slugify", "yunpipe.yaml: requirements: expected array"),
    ("entry: main.py", "entry: ../main.py", "yunpipe.yaml: entry: expected a file of the package folder, as a relative path"),
    ("entry: main.py", "entry: missing.py", "pkg, missing.py is not there"),
    ("run_command: python3 /opt/algorithm/main.py $input $output", "run_command: python3 /opt/algorithm/main.py $input",
     "yunpipe.yaml: run_command: expected $output or ${output_file}"),
    ('schema: {"type": "string", "maxLength": 20, "default": ""}', 'schema: {"type": "strange"}',
     "yunpipe.yaml: user_specified_environment_variables[0].schema: expected a valid JSON Schema"),
    ('schema: {"type": "string", "maxLength": 20, "default": ""}', 'schema: {"type": "integer", "default": "x"}',
     "user_specified_environment_variables[0].schema.default: expected a default that satisfies its own schema"),
    ("timeout_seconds: 300", "timeout_seconds: 0", "yunpipe.yaml: timeout_seconds: expected a number of seconds"),
    ('name: "pkg"', 'name: "no spaces"', "yunpipe.yaml: name: expected a name of letters"),
])
def test_a_bad_package_exits_2_naming_yunpipe_yaml_and_the_field(home, tmp_path, package, old, new, expected):
    edit_yaml(package, old, new)
    result = run("wrap", "-f", package, "--dry-run", "--output-dir", tmp_path / "context", cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert expected in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "context").exists()


def test_shell_packages_install_no_requirements(home, tmp_path):
    folder = tmp_path / "sh"
    init_package(folder, "shell")
    edit_yaml(folder, "entry: run.sh\n", 'entry: run.sh\nrequirements: ["requests"]\n')
    result = run("wrap", "-f", folder, "--dry-run", cwd=tmp_path)
    assert result.returncode == 2
    assert "yunpipe.yaml: requirements: expected none for runtime shell (only python installs requirements)" in result.stderr


def test_a_folder_without_yunpipe_yaml_exits_2(home, tmp_path):
    (tmp_path / "nothing").mkdir()
    result = run("wrap", "-f", tmp_path / "nothing", "--dry-run", cwd=tmp_path)
    assert result.returncode == 2
    assert "nothing/yunpipe.yaml: file not found (a package folder holds a yunpipe.yaml" in result.stderr


def test_run_command_defaults_to_the_entry(tmp_path, package):
    edit_yaml(package, "run_command: python3 /opt/algorithm/main.py $input $output\n", "")
    (package / "tool.py").write_text("")
    edit_yaml(package, "entry: main.py", "entry: tool.py")
    assert load_package(package).algorithm.run_command == "python3 /opt/algorithm/tool.py $input $output"


def test_dry_run_writes_the_runtime_image_context_and_the_wrap_context_on_it(home, tmp_path, package):
    edit_yaml(package, "requirements: []", 'requirements: ["python-slugify>=8", "text-unidecode==1.3"]')
    (package / "__pycache__").mkdir()
    (package / "__pycache__" / "main.cpython-311.pyc").write_bytes(b"\0")
    (package / ".git").mkdir()
    (package / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    out = tmp_path / "context"
    result = run("wrap", "-f", f"{package}/", "--dry-run", "--output-dir", out, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    reference = runtime_image(load_package(package)).reference
    assert f"pkg: runtime image {reference}: build context written to {out / 'runtime'}: " \
           "Dockerfile, algorithm, requirements.txt, ca-certificates.crt" in result.stdout

    runtime = out / "runtime"
    dockerfile = (runtime / "Dockerfile").read_text()
    assert dockerfile.splitlines()[1] == "FROM yunpipe/base:bookworm"
    assert "apt-get install -y --no-install-recommends python3-venv" in dockerfile
    assert "RUN python3 -m venv /opt/algorithm-venv\nENV PATH=/opt/algorithm-venv/bin:$PATH\n" in dockerfile
    assert ("RUN PIP_CERT=/opt/yunpipe-build/ca-certificates.crt pip install --no-cache-dir "
            "--disable-pip-version-check -r /opt/yunpipe-build/requirements.txt") in dockerfile
    # The requirements are installed before the code is copied: a code change reuses their layer.
    assert dockerfile.index("pip install") < dockerfile.index("COPY algorithm /opt/algorithm\nWORKDIR /opt/algorithm\n")
    assert 'org.yunpipe.package.name="pkg"' in dockerfile
    assert (runtime / "requirements.txt").read_text() == "python-slugify>=8\ntext-unidecode==1.3\n"
    assert (runtime / "ca-certificates.crt").read_bytes() == host_ca_bundle().read_bytes()
    assert sorted(p.relative_to(runtime / "algorithm").as_posix() for p in (runtime / "algorithm").rglob("*")
                  if p.is_file()) == ["example/input.txt", "main.py", "yunpipe.yaml"]
    assert (runtime / "algorithm" / "main.py").read_text() == (package / "main.py").read_text()

    # The wrap context is the normal one, on the runtime image.
    assert f"FROM {reference}\n" in (out / "Dockerfile").read_text()
    document = json.loads((out / "algorithm.json").read_text())
    assert document["container_name"] == reference and document["system"] == "debian"
    assert document["user_specified_environment_variables"][0]["schema"] == {"type": "string", "maxLength": 20,
                                                                           "default": ""}
    assert not home.exists()


def test_without_requirements_the_runtime_image_needs_no_network(tmp_path, package):
    image = runtime_image(load_package(package))
    assert "pip install" not in image.dockerfile and "apt-get" not in image.dockerfile and "requirements.txt" not in image.dockerfile
    assert "FROM yunpipe/base:bookworm\n" in image.dockerfile and "COPY algorithm /opt/algorithm\n" in image.dockerfile


def test_the_runtime_tag_changes_with_the_content_and_only_with_it(tmp_path, package):
    def tag() -> str:
        packaged = load_packaged(package)
        assert packaged is not None and packaged.spec.container_name == packaged.image.reference
        return packaged.image.reference

    first = tag()
    assert first.startswith("yunpipe-runtime/pkg:") and len(first.split(":")[1]) == 16
    # Bytecode, caches and hidden files are not part of the package.
    (package / "__pycache__").mkdir()
    (package / "__pycache__" / "main.cpython-311.pyc").write_bytes(b"\0")
    (package / ".venv").mkdir()
    (package / ".venv" / "x").write_text("x")
    assert tag() == first
    # A copy elsewhere is the same content.
    shutil.copytree(package, tmp_path / "copy" / "pkg")
    assert runtime_image(load_package(tmp_path / "copy" / "pkg")).reference == first

    seen = {first}
    for change in (lambda: (package / "main.py").write_text((package / "main.py").read_text() + "# changed\n"),
                   lambda: (package / "example" / "more.txt").write_text("more"),
                   lambda: (package / "main.py").chmod(0o644),
                   lambda: edit_yaml(package, "requirements: []", 'requirements: ["python-slugify"]')):
        change()
        assert tag() not in seen
        seen.add(tag())


def test_algorithms_show_prints_the_parameter_schemas(home, tmp_path, package):
    edit_yaml(package, "user_specified_environment_variables:\n", "user_specified_environment_variables:\n"
              '  - {name: COUNT, required: true, schema: {"type": "integer", "minimum": 1, "maximum": 9}}\n')
    packaged = load_packaged(package)
    assert packaged is not None
    AlgorithmRegistry().record(packaged.spec, "yunpipe-local/pkg:1")
    result = run("yunpipe", "algorithms", "show", "pkg", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    shown = json.loads(result.stdout)
    assert shown["spec"]["user_specified_environment_variables"] == [
        {"name": "COUNT", "required": True, "schema": {"type": "integer", "minimum": 1, "maximum": 9}},
        {"name": "SUFFIX", "required": False, "description": "appended to every line",
         "schema": {"type": "string", "maxLength": 20, "default": ""}}]
    assert shown["spec"]["container_name"] == packaged.image.reference
