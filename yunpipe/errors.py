"""Errors yunpipe reports to its user, with the exit status each one means."""
import re

# What would break a message's one line, or its printing: control characters, line separators,
# and lone surrogates (from a JSON escape like "\ud800", or a file name that is not UTF-8), which
# no UTF-8 stream can write.
_UNPRINTABLE = re.compile(r"[\x00-\x1f\x7f\u2028\u2029\x85\ud800-\udfff]")


def one_line(text: str) -> str:
    """The text with what _UNPRINTABLE matches written as escapes (\\n, \\ud800)."""
    return _UNPRINTABLE.sub(lambda m: repr(m.group())[1:-1], text)


class YunpipeError(Exception):
    """A failure yunpipe explains in one message, without a traceback (exit status 1)."""

    exit_status = 1


class InputError(YunpipeError):
    """Bad input from the user: a file, a field or a flag (exit status 2).

    Raised before anything is created, so nothing is left half-done.
    """

    exit_status = 2

    def __init__(self, source: str, field: str, expected: str):
        self.source = source
        self.field = field
        self.expected = expected
        where = f"{source}: {field}" if field else source
        # One line, whatever a file put in a key or a value the message repeats.
        super().__init__(one_line(f"{where}: {expected}"))


class NotFoundError(YunpipeError):
    """What the user named exists nowhere yunpipe looked (exit status 2)."""

    exit_status = 2


class PipelineGone(NotFoundError):
    """A pipeline recorded on a local cloud that has stopped since: it went with that cloud."""
