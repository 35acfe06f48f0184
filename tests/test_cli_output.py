"""Output that behaves when it is not a terminal: a reader that leaves early, a log file."""
import os
import subprocess
import sys

from yunpipe.commands.common import progress_bar


def test_a_reader_that_closes_the_pipe_ends_the_command_without_a_traceback(tmp_path):
    # `yunpipe algorithms list | head -0`: the reader is gone before the command writes.
    command = subprocess.Popen([sys.executable, "-m", "yunpipe.cli", "algorithms", "list"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               env={**os.environ, "YUNPIPE_HOME": str(tmp_path)})
    command.stdout.close()
    status = command.wait(timeout=60)
    errors = command.stderr.read().decode()
    command.stderr.close()
    assert "Traceback" not in errors and "BrokenPipe" not in errors, errors
    assert status == 141  # a shell's status for a closed pipe (128 + SIGPIPE)


def test_a_progress_bar_writes_no_terminal_codes_when_stderr_is_not_a_terminal(capsys):
    with progress_bar(1000, "upload to bucket") as update:
        update(500)
        update(500)
    captured = capsys.readouterr()
    assert captured.err == "" and captured.out == ""


def test_a_cwl_key_of_escaped_surrogates_is_refused_on_one_printable_line(tmp_path, capsys, monkeypatch):
    # Found by tests/test_fuzz_specs.py: CWL's reader keeps "\ud800\udc00" as two lone surrogates,
    # which a strict UTF-8 stream (pytest's capture here; a log file opened so) cannot write.
    from yunpipe import cli

    monkeypatch.setenv("YUNPIPE_HOME", str(tmp_path / "home"))
    tool = tmp_path / "tool.cwl"
    tool.write_text('{"cwlVersion": "v1.2", "class": "CommandLineTool", "baseCommand": ["wc", "-l"], '
                    '"inputs": {}, "outputs": {}, "\\ud800\\udc00": null}')
    assert cli.main(["wrap", "--dry-run", "-f", str(tool)]) == 2
    errors = capsys.readouterr().err
    assert errors.count("\n") == 1 and "invalid field `\\ud800\\udc00`" in errors, errors
