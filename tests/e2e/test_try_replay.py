"""End to end: `yunpipe try` runs a wrapped test algorithm on a file of this machine in Docker,
as a task would, and `yunpipe replay` runs a pipeline's failed job again here and fails it the
same way. Both run the wrapped image's own worker (its --one-job mode): real images, real
containers, the local cloud for replay."""
import dataclasses
import io
import json
import shlex
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from yunpipe.operations.onejob import ONE_JOB_MODULE
from yunpipe.operations.tryout import RESULT_SUFFIX
from yunpipe.registry import AlgorithmRegistry
from yunpipe.wrapper import images

from .conftest import ALGORITHM_FOLDERS
from .helpers import run_cli, run_ok, wait_until, write_inputs

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def own(algorithms, docker_client, tmp_path_factory) -> dict[str, str]:
    """The suite's tester and wordcount wrapped again under this module's own names, with hasty
    (tester with a 1 s timeout) and stale (tester without the one-job mode, as wrapped before it):
    the Docker daemon may be shared, and a wrap elsewhere of tester@1 would retag
    yunpipe-local/tester:1. name -> NAME@VERSION."""
    folder = tmp_path_factory.mktemp("own")
    changes = {"tester": ("tester", {}), "wordcount": ("wordcount", {}), "hasty": ("tester", {"timeout_seconds": 1})}
    files = []
    for name, (original, fields) in changes.items():
        document = json.loads((ALGORITHM_FOLDERS[original] / f"{original}.json").read_text())
        document.update(name=f"try-{name}", **fields)
        files.append(folder / f"try-{name}.json")
        files[-1].write_text(json.dumps(document))
    run_ok("wrap", "--local", "--yes", "-f", *map(str, files))
    registry = AlgorithmRegistry()
    tester = registry.get("try-tester")
    (folder / "stale").mkdir()
    (folder / "stale" / "Dockerfile").write_text(f"FROM {tester.image}\nRUN rm {ONE_JOB_MODULE}\n")
    images.build_image(docker_client, folder / "stale", "yunpipe-local/try-stale:1", out=io.StringIO())
    registry.record(dataclasses.replace(tester.spec, name="try-stale"), "yunpipe-local/try-stale:1")
    return {name: registry.get(f"try-{name}").reference for name in (*changes, "stale")}


def test_try_puts_the_result_beside_the_file(own, tmp_path):
    source = tmp_path / "notes.txt"
    source.write_text("one\ntwo\n")
    status, out = run_cli("try", own["tester"], str(source))
    assert status == 0, out
    result = tmp_path / f"notes.txt{RESULT_SUFFIX}"
    assert result.read_text() == "one\ntwo\n-- tested\n"  # the STAMP variable's default
    assert out.startswith(f"{own['tester']} on {source}: ok in "), out
    assert f"result: {result}" in out


def test_try_sets_a_variable_and_takes_stdin_and_stdout_adapters(own, tmp_path):
    source = tmp_path / "words.txt"
    source.write_text("a bb bb ccc\n")
    target = tmp_path / "deep" / "counted"
    run_ok("try", own["wordcount"], str(source), "--var", "MIN_LENGTH=2", "--output", str(target))
    assert target.read_text().split("\n")[:2] == ["2 bb", "1 ccc"]
    run_ok("try", own["tester"], str(source), "--var", "STAMP=by hand", "--output", str(target))
    assert target.read_text() == "a bb bb ccc\n-- by hand\n"


def test_try_of_a_failing_input_exits_1_with_the_commands_stderr(own, tmp_path):
    source = tmp_path / "poison.txt"
    source.write_text("x\nFAIL\n")
    status, out = run_cli("try", own["tester"], str(source))
    assert status == 1, out
    assert "failed (nonzero_exit, exit 3)" in out
    assert "tester: refusing poison.txt: it asks to fail" in out
    assert not (tmp_path / f"poison.txt{RESULT_SUFFIX}").exists()



def test_try_stops_a_job_at_the_algorithms_timeout(own, tmp_path):
    """hasty: the tester image with a 1 s timeout, which a SLEEP 60 input outlasts."""
    source = tmp_path / "slow.txt"
    source.write_text("SLEEP 60\n")
    status, out = run_cli("try", own["hasty"], str(source))
    assert status == 1, out
    assert out.startswith(f"{own['hasty']} on ") and ": timeout (exit -15) in " in out, out
    assert "killed after 1 s" in out


def test_try_of_an_image_wrapped_before_the_one_job_mode_says_to_wrap_again(own, tmp_path, capsys):
    source = tmp_path / "in.txt"
    source.write_text("fine\n")
    status, _ = run_cli("try", own["stale"], str(source))
    assert status == 1
    assert "its runscript runs no single job (wrapped by a yunpipe before `try` and `replay`): wrap the algorithm " \
           "again" in capsys.readouterr().err
    assert not (tmp_path / f"in.txt{RESULT_SUFFIX}").exists()


@pytest.mark.parametrize(("argv", "message"), [
    (["nosuch", "{file}"], "try: ALGORITHM: expected a recorded algorithm, 'nosuch' is unknown"),
    (["tester@99", "{file}"], "try: ALGORITHM: expected a recorded version of 'tester'"),
    (["tester", "{missing}"], "try: FILE: expected a file to run tester@"),
    (["tester", "{folder}"], "is a folder"),
    (["tester", "{file}", "--var", "NOPE=1"], "try: --var NOPE: expected a variable declared by tester@"),
    (["tester", "{file}", "--var", "STAMP"], "try: --var: expected NAME=VALUE, got 'STAMP'"),
    (["wordcount", "{file}", "--var", "MIN_LENGTH=0"], "try: --var MIN_LENGTH: expected a value matching its schema"),
    (["wordcount", "{file}", "--var", "MIN_LENGTH=many"], "'many' is not of type 'integer'"),
    (["tester", "{file}", "--output", "{file}"], "try: --output: expected a path other than the input"),
])
def test_try_refuses_bad_input_with_exit_2(own, tmp_path, capsys, argv, message):
    source = tmp_path / "in.txt"
    source.write_text("fine\n")
    names = {"file": str(source), "missing": str(tmp_path / "gone.txt"), "folder": str(tmp_path)}
    status, _ = run_cli("try", *[word.format(**names) for word in argv])
    assert status == 2
    assert message in capsys.readouterr().err
    assert [p.name for p in tmp_path.iterdir()] == ["in.txt"]


def test_replay_reproduces_a_failure_with_the_steps_variables(pipeline, own, aws, tmp_path, capsys):
    # The step refuses what REFUSE names: a variable of the step, not the algorithm's default.
    tester = pipeline([{"name": own["tester"], "max_receive_count": 1, "variables": {"REFUSE": "POISON"}}])
    run_ok("upload", "--local", tester.name,
           str(write_inputs(tmp_path / "in", {"good.txt": "fine\n", "sub/bad.txt": "x\nPOISON\n"})))
    tester.wait_for_results({"good.txt": b"fine\n-- tested\n"}, timeout=120)
    s3 = aws("s3")

    def reports():
        listed = s3.list_objects_v2(Bucket=tester.summary.reports_bucket, Prefix="failures/").get("Contents", [])
        return [o["Key"] for o in listed]
    wait_until(lambda: None if reports() else "no failure report yet", 60)
    [report_key] = reports()
    report = json.loads(s3.get_object(Bucket=tester.summary.reports_bucket, Key=report_key)["Body"].read())
    assert report["key"] == "sub/bad.txt"
    capsys.readouterr()

    # The command the dashboard offers (no --local: the pipeline's record says where it lives).
    status, out = run_cli("replay", tester.name, "--report", report_key)
    err = capsys.readouterr().err
    assert status == 1, out + err
    assert f"{tester.name}: replayed failed (nonzero_exit, exit 3)" in out
    assert report["stderr_tail"] == "tester: refusing bad.txt: it asks to fail\n"
    assert report["stderr_tail"] in err

    # A step's input by its key: the good file, the pipeline's very result bytes.
    status, out = run_cli("replay", tester.name, "--step", tester.step(0).name, "--key", "good.txt",
                          "--output", str(tmp_path / "replayed"))
    assert status == 0, out
    assert f"result: {tmp_path / 'replayed'}" in out
    assert (tmp_path / "replayed").read_bytes() == tester.results()["good.txt"]
    # Nothing of the replays stays on this machine (the input, a result not asked for).
    assert not list(Path(tempfile.gettempdir()).glob("yunpipe-replay-*"))
    # And `try` of the same file with the step's variable, before any pipeline: the same bytes.
    local = write_inputs(tmp_path / "local", {"good.txt": "fine\n"}) / "good.txt"
    status, out = run_cli("try", own["tester"], str(local), "--var", "REFUSE=POISON")
    assert status == 0, out + capsys.readouterr().err
    assert local.with_name("good.txt.out").read_bytes() == tester.results()["good.txt"]

    for argv, message in ((["--report", "failures/nothing.json"], "no failure report"),
                          (["--step", tester.step(0).name], "expected either --report KEY"),
                          (["--report", report_key, "--key", "x"], "expected either --report KEY"),
                          (["--step", "nosuch", "--key", "x"], "replay: --step: expected one of the pipeline's steps"),
                          (["--step", tester.step(0).name, "--key", "gone.txt"], "is no longer there"),
                          (["--report", report_key, "--shell"], "replay: --shell: expected a terminal")):
        status, _ = run_cli("replay", tester.name, *argv)
        assert status == 2, argv
        assert message in capsys.readouterr().err

    # --shell on a terminal (script(1) gives it one): the step's variables, the input staged.
    if shutil.which("script") is None:
        pytest.skip("script (util-linux) is not installed: --shell needs a terminal")
    yunpipe = Path(sys.executable).with_name("yunpipe")
    command = shlex.join([str(yunpipe), "replay", tester.name, "--step", tester.step(0).name, "--key", "sub/bad.txt",
                          "--shell"])
    typed = 'echo "REFUSE is $REFUSE"; cat /work/in/bad.txt; exit 5\n'
    shell = subprocess.run(["script", "-e", "-q", "-c", command, "/dev/null"], input=typed, capture_output=True,
                           text=True, timeout=120)
    assert shell.returncode == 5, shell.stdout + shell.stderr
    assert "REFUSE is POISON" in shell.stdout and "\nx\nPOISON\n" in shell.stdout, shell.stdout


def test_replay_refuses_a_gather_step(pipeline, capsys):
    """A gather's job is a folder of objects, which replay does not stage: refused, naming the step."""
    graph = pipeline([{"id": "t", "name": "tester"}, {"id": "all", "name": "gather", "after": ["t"], "gather": True}],
                     process_type="graph")
    status, _ = run_cli("replay", graph.name, "--step", "all", "--key", "whatever")
    assert status == 2
    assert "replay: --step: expected a step that runs one input object per job: step all is a gather" in \
        capsys.readouterr().err
