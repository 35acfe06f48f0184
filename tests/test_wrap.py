"""`wrap` and `yunpipe algorithms` through their console scripts, with real Docker builds."""
import json
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from helpers import free_port, unavailable

from yunpipe.errors import InputError
from yunpipe.registry import AlgorithmRegistry
from yunpipe.specs.algorithm import load_algorithm
from yunpipe.wrapper import images
from yunpipe.wrapper.describe import describe_algorithm

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
CHANGE123 = REPO / "examples" / "change123" / "change123-s3.json"
UPPERCASE = REPO / "examples" / "uppercase"
BASE_IMAGE = "yunpipe/base:bookworm"


@pytest.fixture
def home(tmp_path, monkeypatch):
    home = tmp_path / "home"
    monkeypatch.setenv("YUNPIPE_HOME", str(home))
    return home


def run(script: str, *args, stdin: str = "", timeout: int = 300) -> subprocess.CompletedProcess:
    """A console script of this venv; YUNPIPE_HOME (and the rest) come from os.environ."""
    return subprocess.run([str(BIN / script), *map(str, args)], input=stdin, capture_output=True, text=True,
                          cwd=REPO, timeout=timeout)


def recorded(home: Path) -> list[str]:
    return sorted(str(p.relative_to(home)) for p in home.rglob("*.json")) if home.exists() else []


# ---------------------------------------------------------------------------- without Docker


def test_dry_run_writes_the_build_context(home, tmp_path):
    out = tmp_path / "context"
    result = run("wrap", "-f", CHANGE123, "--dry-run", "--output-dir", out)
    assert result.returncode == 0, result.stderr
    assert {"Dockerfile", "entrypoint.py", "algorithm.json", "opt"} <= {p.name for p in out.iterdir()}
    assert json.loads((out / "algorithm.json").read_text()) == load_algorithm(CHANGE123).to_document()
    # The worker folder whole, with the contract, under empty stand-ins for its parents' __init__.py.
    lib = out / "opt" / "yunpipe" / "lib" / "yunpipe"
    assert (lib / "__init__.py").read_bytes() == (lib / "runtime" / "__init__.py").read_bytes() == b""
    assert (lib / "runtime" / "contract.py").read_text() == (REPO / "yunpipe" / "runtime" / "contract.py").read_text()
    worker = REPO / "yunpipe" / "runtime" / "worker"
    assert sorted(p.name for p in (lib / "runtime" / "worker").iterdir()) == sorted(p.name for p in worker.glob("*.py"))
    assert (lib / "runtime" / "worker" / "main.py").read_text() == (worker / "main.py").read_text()
    assert sorted(p.name for p in (lib / "runtime").iterdir()) == ["__init__.py", "accounting", "contract.py", "worker"]
    # Accounting ships whole with its price table: the worker writes records and settles runs.
    accounting = REPO / "yunpipe" / "runtime" / "accounting"
    assert sorted(p.name for p in (lib / "runtime" / "accounting").iterdir()) == sorted(
        p.name for p in accounting.iterdir() if p.suffix in (".py", ".json"))
    dockerfile = (out / "Dockerfile").read_text()
    assert "FROM wangyx2005/change123\n" in dockerfile and "apt-get install" in dockerfile
    assert 'org.yunpipe.algorithm.version="1"' in dockerfile
    site = out / "opt" / "yunpipe" / "site-packages"
    for package in ("boto3", "botocore", "s3transfer", "jmespath", "dateutil", "six.py", "urllib3"):
        assert (site / package).exists(), package
    # botocore's data is pruned to what the runscript calls (lambda: a job out of memory wakes its launcher).
    assert sorted(p.name for p in (site / "botocore" / "data").iterdir() if p.is_dir()) == ["lambda", "s3", "sns", "sqs"]
    assert not list(site.rglob("*.pyc"))
    assert recorded(home) == []


def test_show_on_a_dry_run_prints_json_dockerfile_and_runscript_summary(home, tmp_path):
    result = run("wrap", "-s", "-f", CHANGE123, "--dry-run", "--output-dir", tmp_path / "c")
    assert result.returncode == 0, result.stderr
    assert '"name": "change123-s3"' in result.stdout
    assert "--- Dockerfile ---\n# Wrapped by yunpipe" in result.stdout
    assert "runs:   sh /change123.sh $input $output" in result.stdout


@pytest.mark.parametrize("name, content, expected", [
    ("broken.json", '{"name": "x",', ["broken.json: line 1, column 14: expected valid JSON"]),
    ("broken.yaml", "name: [x\nrun_command: y\n", ["broken.yaml: line", "expected valid YAML"]),
    ("memory.json", '{"name": "x", "container_name": "a/b", "run_command": "c", "memory": {"suggested": "abc"}}',
     ["memory.json: memory.suggested: expected integer, got \"abc\""]),
    ("system.yaml", "name: x\ncontainer_name: a/b\nrun_command: c\nsystem: gentoo\n",
     ["system.yaml: system: expected one of", '"alpine"', '"amazonlinux"', 'got "gentoo"']),
    ("image.json", '{"name": "x", "container_name": "a b", "run_command": "c $input $output"}',
     ["image.json: container_name: expected a Docker image reference"]),
    ("quotes.json", '{"name": "x", "container_name": "a/b", "run_command": "sh -c \'cp $input $output"}',
     ["quotes.json: run_command: expected a command line that splits like a shell's (No closing quotation)"]),
    ("nooutput.yaml", "name: x\ncontainer_name: a/b\nrun_command: python3 /x.py $input\n",
     ["nooutput.yaml: run_command: expected $output or ${output_file} where the command writes its result",
      '(or "output_adapter": "stdout")']),
    ("permanent.json", '{"name": "x", "container_name": "a/b", "run_command": "c $input $output", '
                       '"permanent_exit_codes": [3, 256]}',
     ["permanent.json: permanent_exit_codes[1]: expected an exit code from 1 to 255, got 256"]),
    (None, None, ["missing.json: file not found"]),
])
def test_bad_input_exits_2_naming_file_and_field(home, tmp_path, name, content, expected):
    path = tmp_path / (name or "missing.json")
    if content is not None:
        path.write_text(content)
    result = run("wrap", "-f", path, "--local", "-y")
    assert result.returncode == 2, result.stderr
    for text in expected:
        assert text in result.stderr
    assert "Traceback" not in result.stderr
    assert recorded(home) == []


@pytest.mark.parametrize("fields", [
    {"run_command": "python3 /opt/tool.py ${input_file} ${output_file}"},
    {"run_command": "sh -c 'tr a-z A-Z < $input > $output'"},
    {"run_command": "python3 /opt/count.py", "input_adapter": "stdin", "output_adapter": "stdout"},
    {"run_command": "sh -c 'cp $input /data/out/'", "output_file_path": "/data/out"},
])
def test_a_command_that_writes_its_output_is_wrapped(home, tmp_path, fields):
    path = tmp_path / "good.json"
    path.write_text(json.dumps({"name": "good", "container_name": "lab/tool:1", "system": "debian", **fields}))
    result = run("wrap", "-f", path, "--dry-run", "--output-dir", tmp_path / "context")
    assert result.returncode == 0, result.stderr
    assert json.loads((tmp_path / "context" / "algorithm.json").read_text())["run_command"] == fields["run_command"]


def test_permanent_exit_codes_reach_the_image_s_algorithm_file(home, tmp_path):
    path = tmp_path / "strict.json"
    path.write_text(json.dumps({"name": "strict", "container_name": "lab/tool:1", "system": "debian",
                                "run_command": "tool $input $output", "permanent_exit_codes": [65, 3]}))
    result = run("wrap", "-f", path, "--dry-run", "--output-dir", tmp_path / "context")
    assert result.returncode == 0, result.stderr
    assert json.loads((tmp_path / "context" / "algorithm.json").read_text())["permanent_exit_codes"] == [3, 65]


SHIPPED_ALGORITHMS = sorted(p for p in [*REPO.glob("examples/*/*.json"), *REPO.glob("tests/e2e/algorithms/*/*.json")]
                            if p.name != "workflow.json")


@pytest.mark.parametrize("path", SHIPPED_ALGORITHMS, ids=lambda p: p.name)
def test_every_shipped_algorithm_passes_wraps_checks(home, tmp_path, path):
    result = run("wrap", "-f", path, "--dry-run", "--output-dir", tmp_path / "context")
    assert result.returncode == 0, result.stderr


def test_publishing_needs_a_user(home):
    result = run("wrap", "-f", UPPERCASE / "uppercase.json")
    assert result.returncode == 2
    assert "wrap: -u/--user: expected the registry user" in result.stderr
    assert recorded(home) == []


DESCRIBE_ANSWERS = [
    "wc", "yunpipe-examples/wordcount:latest", "debian", "counts words",
    "python3 /usr/local/bin/wordcount.py", "", "", "", "stdin", "stdout", "",
    "abc", "256",  # suggested memory: an invalid number first
    "",  # minimal memory: the default (the suggested)
    "0", "0.5",  # CPU: not > 0 first
    "",  # timeout
    "maybe", "y",  # add a variable? an invalid y/n first
    "MIN_LENGTH", "integer", "y", "x", "2", "n", "shortest word counted",
    "n",  # no more variables
    "n",  # no port
]


def test_describe_through_a_piped_stdin(home, tmp_path):
    out = tmp_path / "context"
    saved = tmp_path / "wc.json"
    result = run("wrap", "-ds", "--dry-run", "--output-dir", out,
                 stdin="\n".join([*DESCRIBE_ANSWERS, str(saved)]) + "\n")
    assert result.returncode == 0, result.stderr
    assert "expected a whole number from 1, got 'abc'; try again" in result.stdout
    assert "expected a number greater than 0, got '0'; try again" in result.stdout
    assert "expected y or n, got 'maybe'; try again" in result.stdout
    assert "expected a integer, got 'x'; try again" in result.stdout
    document = json.loads((out / "algorithm.json").read_text())
    assert document["memory"] == {"minimal": 256, "suggested": 256}
    assert document["CPU"] == 0.5
    assert (document["input_adapter"], document["output_adapter"]) == ("stdin", "stdout")
    assert document["user_specified_environment_variables"] == [{
        "name": "MIN_LENGTH", "required": False, "description": "shortest word counted",
        "schema": {"type": "integer", "default": 2}}]
    assert '"name": "wc"' in result.stdout  # -s showed it
    # The answers were kept as a file before anything was checked or built.
    assert load_algorithm(saved).to_document() == document
    assert f"saved the description to {saved}" in result.stdout


def test_describe_starts_from_a_saved_description_and_a_typo_is_answered_again(home, tmp_path):
    described = {**json.loads((UPPERCASE / "uppercase.json").read_text()), "system": "ubunut"}
    start = tmp_path / "uppercase.json"
    start.write_text(json.dumps(described))
    # Enter keeps each earlier answer; the one that was a typo is asked again.
    answers = ["", "", "", "debian"] + [""] * 30
    result = run("wrap", "-d", "--dry-run", "--output-dir", tmp_path / "context", "-f", start,
                 stdin="\n".join(answers) + "\n")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "expected one of" in result.stdout and "got 'ubunut'; try again" in result.stdout
    fixed = json.loads(start.read_text())  # saved over the file it started from
    assert fixed["system"] == "debian"
    assert {key: fixed[key] for key in described if key != "system"} == {
        key: value for key, value in described.items() if key != "system"}
    assert json.loads((tmp_path / "context" / "algorithm.json").read_text())["system"] == "debian"


def test_describe_starts_only_from_one_algorithm_file(home, tmp_path):
    result = run("wrap", "-d", "--dry-run", "-f", UPPERCASE / "uppercase.json", UPPERCASE / "uppercase.json")
    assert result.returncode == 2
    assert "wrap: -d -f: expected one algorithm file (JSON or YAML) to start describing from" in result.stderr


def test_describe_stops_cleanly_when_the_input_ends():
    answers = iter(["wc", "lab/wc"])

    def ask(prompt):
        try:
            return next(answers)
        except StopIteration:
            raise EOFError from None

    with pytest.raises(InputError) as caught:
        describe_algorithm(ask, lambda text: None)
    assert caught.value.source == "stdin" and "system the image is built on" in caught.value.field


def test_algorithms_show_of_an_unknown_name_exits_2(home):
    result = run("yunpipe", "algorithms", "show", "nothing@1")
    assert result.returncode == 2
    assert "algorithms show: NAME[@VERSION]: expected a recorded algorithm, 'nothing' is unknown" in result.stderr
    listing = run("yunpipe", "algorithms", "list")
    assert listing.returncode == 0 and "no algorithms recorded yet" in listing.stdout


def test_ecr_destination_creates_the_repository_and_logs_in(moto):
    from yunpipe.wrapper.wrap import WrapOptions, destination

    spec = load_algorithm(UPPERCASE / "uppercase.json")
    args = WrapOptions(local=False, registry="ecr", user="lab")
    first = destination(args, spec, 3)
    again = destination(args, spec, 4)  # the repository exists now: found, not re-created
    assert first.reference == "123456789012.dkr.ecr.us-east-1.amazonaws.com/lab/uppercase:3"
    assert again.reference.endswith("/lab/uppercase:4")
    assert first.push and first.auth_config["username"] == "AWS" and first.auth_config["password"]


def test_ecr_on_the_local_cloud_is_refused_before_anything_is_made(home, monkeypatch):
    """The local cloud's ECR (moto's) gives URIs on amazonaws.com and tokens no registry takes:
    `-r ecr` with YUNPIPE_LOCAL=1 is bad input, not a push that fails half-way."""
    monkeypatch.setenv("YUNPIPE_LOCAL", "1")
    result = run("wrap", "-f", UPPERCASE / "uppercase.json", "-r", "ecr", "-y")
    assert result.returncode == 2, result.stderr
    assert "wrap: -r: expected --local for the local cloud (YUNPIPE_LOCAL=1)" in result.stderr
    assert recorded(home) == []


# ---------------------------------------------------------------------------- with Docker


@pytest.fixture(scope="module")
def uppercase_image(docker_client):
    """The algorithm developer's container, built from examples/uppercase."""
    tag = load_algorithm(UPPERCASE / "uppercase.json").container_name
    images.build_image(docker_client, UPPERCASE, tag)
    return tag


@pytest.fixture
def algorithm(tmp_path, docker_client, uppercase_image):
    """examples/uppercase/uppercase.json under a name of its own, so concurrent runs (the demo,
    other test sessions) never share its yunpipe-local tags; its images are removed after."""
    document = json.loads((UPPERCASE / "uppercase.json").read_text())
    document["name"] = f"uppercase-{uuid.uuid4().hex[:8]}"
    path = tmp_path / "uppercase.json"
    path.write_text(json.dumps(document))
    yield path, document["name"]
    for image in docker_client.images.list(filters={"label": f"org.yunpipe.algorithm.name={document['name']}"}):
        for tag in image.tags:
            docker_client.images.remove(tag, force=True)


def run_container(client, image: str, **options) -> tuple[int, str]:
    container = client.containers.run(image, detach=True, network_mode="host", **options)
    try:
        status = container.wait(timeout=60)["StatusCode"]
        return status, container.logs().decode()
    finally:
        container.remove(force=True)


@pytest.mark.timeout(600)
def test_local_wrap_builds_an_isolated_runnable_image_and_records_versions(home, docker_client, algorithm):
    path, name = algorithm
    result = run("wrap", "--local", "-f", path, "-y")
    assert result.returncode == 0, result.stderr
    assert f"recorded {name}@1: yunpipe-local/{name}:1" in result.stdout
    assert "Step 1/" in result.stderr  # the build log streamed

    image = docker_client.images.get(f"yunpipe-local/{name}:1")
    labels = image.labels
    assert labels["org.yunpipe.algorithm.name"] == name and labels["org.yunpipe.algorithm.version"] == "1"
    # The worker starts (python3 + boto3 from /opt/yunpipe/site-packages) and stops at its own
    # configuration check, with its own exit status: no queue to report on, so one line.
    status, logs = run_container(docker_client, image.id)
    assert status == 78, logs
    assert logs.strip() == ("yunpipe runscript: configuration error: missing required environment variable(s): "
                            "YUNPIPE_QUEUE_URL, YUNPIPE_OUTPUT_BUCKET (no queue to report on; exit status 78)")
    # Fast starts: the worker and boto3 load from bytecode compiled into the image, so no
    # task compiles them again.
    status, logs = run_container(docker_client, image.id, entrypoint=[
        "python3", "-c", "import os, sys; sys.path[:0] = ['/opt/yunpipe/lib', '/opt/yunpipe/site-packages']; "
        "sys.dont_write_bytecode = True; import yunpipe.runtime.worker.main as w, yunpipe.runtime.contract as c, "
        "boto3, botocore.client, s3transfer.manager as m; "
        "print([os.path.exists(x.__cached__) for x in (w, c, boto3, botocore.client, m)])"])
    assert (status, logs.strip()) == (0, "[True, True, True, True, True]"), logs
    # So are the regular expressions its start compiles, by and for the image's python3.
    status, logs = run_container(docker_client, image.id, entrypoint=[
        "python3", "-c", "import sys; sys.path[:0] = ['/opt/yunpipe/lib']; "
        "from yunpipe.runtime.worker import patterns; print(patterns.load('/opt/yunpipe/patterns.marshal'))"])
    assert status == 0 and int(logs) > 100, logs
    # The algorithm's own Python sees no boto3, and no PYTHONPATH leaks into its environment.
    status, logs = run_container(docker_client, image.id, entrypoint=["python3", "-c", "import boto3"])
    assert status == 1 and "No module named 'boto3'" in logs
    status, logs = run_container(docker_client, image.id, entrypoint=["sh", "-c", 'echo "[$PYTHONPATH]"'])
    assert (status, logs.strip()) == (0, "[]")
    # The developer's tool is still where it was.
    status, logs = run_container(docker_client, image.id, entrypoint=["sh", "-c", "echo abc > /tmp/a && "
                                                                     "sh /usr/local/bin/uppercase.sh /tmp/a /tmp/b && cat /tmp/b"])
    assert (status, logs.strip()) == (0, "ABC")

    registry = AlgorithmRegistry()
    first = registry.get(name, 1)
    assert first.image == f"yunpipe-local/{name}:1" and first.spec == load_algorithm(path)
    before = (home / "algorithms" / name / "1.json").read_text()

    # The same file and the same developer image again: nothing is built or recorded.
    same = run("wrap", "--local", "-f", path, "--yes")
    assert same.returncode == 0, same.stderr
    assert f"{name}: unchanged, still {name}@1: yunpipe-local/{name}:1" in same.stdout
    assert registry.versions(name) == [1] and "Step 1/" not in same.stderr

    # A changed description is a new version, and version 1 stays as it was.
    document = json.loads(path.read_text())
    path.write_text(json.dumps({**document, "description": "upper-cases every line, now documented"}))
    again = run("wrap", "--local", "-f", path, "--yes")
    assert again.returncode == 0, again.stderr
    assert registry.versions(name) == [1, 2]
    assert (home / "algorithms" / name / "1.json").read_text() == before
    assert docker_client.images.get(f"yunpipe-local/{name}:2").labels["org.yunpipe.algorithm.version"] == "2"

    listing = run("yunpipe", "algorithms", "list")
    assert listing.returncode == 0
    assert listing.stdout.split("\n")[0].split() == ["NAME", "LATEST", "IMAGE", "CREATED"]
    assert listing.stdout.split("\n")[1].split()[:3] == [name, "2", f"yunpipe-local/{name}:2"]
    shown = run("yunpipe", "algorithms", "show", f"{name}@2")
    assert shown.returncode == 0 and json.loads(shown.stdout)["version"] == 2
    assert json.loads(shown.stdout)["spec"] == load_algorithm(path).to_document()


@pytest.mark.timeout(600)
def test_a_rebuilt_developer_image_under_the_same_tag_is_wrapped_again(home, docker_client, algorithm, uppercase_image,
                                                                       tmp_path):
    path, name = algorithm
    tag = f"yunpipe-test/{name}:latest"
    document = json.loads(path.read_text())
    path.write_text(json.dumps({**document, "container_name": tag}))
    docker_client.images.get(uppercase_image).tag(tag)
    try:
        assert run("wrap", "--local", "-f", path, "--yes").returncode == 0
        (tmp_path / "Dockerfile").write_text(f"FROM {uppercase_image}\nLABEL rebuilt=1\n")
        images.build_image(docker_client, tmp_path, tag)  # the developer's rebuild: a new image, the same tag
        result = run("wrap", "--local", "-f", path, "--yes")
        assert result.returncode == 0, result.stderr
        assert f"recorded {name}@2" in result.stdout
        assert AlgorithmRegistry().versions(name) == [1, 2]
    finally:
        docker_client.images.remove(tag, force=True)


def test_declining_at_show_builds_nothing(home, docker_client, algorithm):
    path, name = algorithm
    result = run("wrap", "--local", "-s", "-f", path, stdin="n\n")
    assert result.returncode == 1
    assert "--- Dockerfile ---" in result.stdout and "build and publish" in result.stdout
    assert f"{name}: not wrapped" in result.stderr
    assert recorded(home) == []
    assert not docker_client.images.list(name=f"yunpipe-local/{name}")


@pytest.mark.parametrize("run_command, expected", [
    ("sh /usr/local/bin/uppercase.sh $input '$output", "expected a command line that splits like a shell's"),
    ("sh /usr/local/bin/uppercase.sh $input", "expected $output or ${output_file}"),
])
def test_a_bad_run_command_builds_and_records_nothing(home, docker_client, algorithm, run_command, expected):
    path, name = algorithm
    document = json.loads(path.read_text())
    path.write_text(json.dumps({**document, "run_command": run_command}))
    result = run("wrap", "--local", "-f", path, "-y")
    assert result.returncode == 2, result.stderr
    assert f"{path}: run_command: {expected}" in result.stderr
    assert "building" not in result.stderr and "Traceback" not in result.stderr
    assert recorded(home) == []
    assert not docker_client.images.list(filters={"label": f"org.yunpipe.algorithm.name={name}"})


def test_a_missing_developer_image_fails_and_records_nothing(home, docker_client, tmp_path):
    path = tmp_path / "missing.json"
    # A registry on a closed loopback port: the pull fails at once, with no outside traffic.
    path.write_text(json.dumps({"name": "ghost", "container_name": "127.0.0.1:9/nobody/ghost:1",
                                "system": "debian", "run_command": "cp $input $output"}))
    result = run("wrap", "--local", "-f", path, "-y")
    assert result.returncode == 1
    assert "container_name 127.0.0.1:9/nobody/ghost:1: not in the local Docker daemon and cannot be pulled" in result.stderr
    assert recorded(home) == []


@pytest.mark.timeout(300)
def test_a_failing_build_step_shows_its_output_and_records_nothing(home, docker_client, tmp_path):
    developer = tmp_path / "developer"
    developer.mkdir()
    # An image whose python3 cannot run: the wrapper's boto3 check is the step that fails.
    (developer / "Dockerfile").write_text(
        f"FROM {BASE_IMAGE}\n"
        "RUN printf '#!/bin/sh\\necho python3 is broken here >&2\\nexit 3\\n' > /usr/local/bin/python3"
        " && chmod +x /usr/local/bin/python3\n")
    tag = f"yunpipe-test/broken-python:{uuid.uuid4().hex[:8]}"
    images.build_image(docker_client, developer, tag)
    path = tmp_path / "broken.json"
    path.write_text(json.dumps({"name": "broken", "container_name": tag, "system": "debian",
                                "run_command": "cp $input $output"}))
    try:
        result = run("wrap", "--local", "-f", path, "-y")
    finally:
        docker_client.images.remove(tag, force=True)
    assert result.returncode == 1
    assert "error: docker build of yunpipe-local/broken:1 failed" in result.stderr
    assert "returned a non-zero code: 3" in result.stderr
    failing_step = result.stderr.split("--- output of the failing step ---\n")[1]
    assert failing_step.startswith("Step 6/") and "python3 is broken here" in failing_step
    assert recorded(home) == []


@pytest.fixture
def local_registry(tmp_path, monkeypatch):
    """Debian's docker-registry on a loopback port of its own, named by YUNPIPE_LOCAL_REGISTRY."""
    program = shutil.which("docker-registry")
    if not program:
        unavailable("the Debian package docker-registry is not installed")
    address = f"127.0.0.1:{free_port()}"
    config = tmp_path / "registry.yml"
    config.write_text(f"version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {tmp_path / 'registry'}\n"
                      f"http:\n  addr: {address}\n")
    process = subprocess.Popen([program, "serve", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 20
        while not images.registry_answers(address):
            assert process.poll() is None and time.monotonic() < deadline, "docker-registry did not start"
            time.sleep(0.2)
        monkeypatch.setenv("YUNPIPE_LOCAL_REGISTRY", address)
        yield address
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.mark.timeout(600)
def test_local_wrap_pushes_to_a_local_registry_when_one_answers(home, docker_client, algorithm, local_registry):
    path, name = algorithm
    result = run("wrap", "--local", "-f", path, "-y")
    assert result.returncode == 0, result.stderr
    record = AlgorithmRegistry().get(name, 1)
    assert record.image == f"{local_registry}/yunpipe-local/{name}:1"
    assert record.digest.startswith("sha256:")
    # The recorded digest is what the registry serves.
    pulled = docker_client.images.get_registry_data(record.image_uri)
    assert pulled.id == record.digest
    docker_client.images.remove(record.image, force=True)
