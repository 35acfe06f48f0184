"""Errors yunpipe reports to its user, with the exit status each one means."""


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
        super().__init__(f"{where}: {expected}")


class NotFoundError(YunpipeError):
    """What the user named exists nowhere yunpipe looked (exit status 2)."""

    exit_status = 2


class PipelineGone(NotFoundError):
    """A pipeline recorded on a local cloud that has stopped since: it went with that cloud."""
