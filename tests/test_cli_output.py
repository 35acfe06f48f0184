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
