"""Entry point of the local cloud's Lambda runtime image (/var/runtime/bootstrap.py).

moto's Docker Lambda runs ``bootstrap.py HANDLER EVENT_JSON`` with the function's code at
/var/task and reads the invocation's result from the last line of the container's output
(stderr, then stdout); a non-zero exit status marks a function error. So: logs go to stderr in
the AWS Python runtime's format, the handler's return value (or an AWS-style error document) is
the last line on stdout.

Runs in the image's python3 with only the standard library and the boto3 copied next to this
file; it must not import yunpipe.
"""
import importlib
import json
import logging
import os
import sys
import time
import traceback
import uuid

TASK_ROOT = "/var/task"
# Where Lambda layers put Python packages (moto mounts the layers at /opt).
LAYER_PYTHON = "/opt/python"
LOOPBACK = "http://127.0.0.1"


class Context:
    """The handler's context object, with the attributes of the AWS Python runtime's."""

    def __init__(self, request_id: str):
        self.aws_request_id = request_id
        self.function_name = os.environ.get("AWS_LAMBDA_FUNCTION_NAME", "")
        self.function_version = os.environ.get("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        self.memory_limit_in_mb = os.environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "")
        self.log_group_name = f"/aws/lambda/{self.function_name}"
        self._deadline = time.monotonic() + float(os.environ.get("AWS_LAMBDA_FUNCTION_TIMEOUT") or 3)

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


def _aim_at_loopback() -> None:
    # moto sets AWS_ENDPOINT_URL to http://host.docker.internal:$MOTO_PORT, the Docker bridge's
    # gateway; the local cloud's emulator listens on 127.0.0.1 only, and this container shares
    # the host's network. Done before the handler's module can create any client.
    os.environ["MOTO_HOST"] = LOOPBACK
    os.environ["MOTO_HTTP_ENDPOINT"] = os.environ["AWS_ENDPOINT_URL"] = f"{LOOPBACK}:{os.environ['MOTO_PORT']}"


def main(argv: list[str]) -> int:
    handler_name, event = argv[1], json.loads(argv[2])
    _aim_at_loopback()
    request_id = str(uuid.uuid4())
    # As the AWS runtime: the root logger at WARNING, one handler in its line format.
    handler = logging.StreamHandler(sys.stderr)
    formatter = logging.Formatter(f"[%(levelname)s]\t%(asctime)s.%(msecs)03dZ\t{request_id}\t%(message)s",
                                  "%Y-%m-%dT%H:%M:%S")
    formatter.converter = time.gmtime
    handler.setFormatter(formatter)
    logging.basicConfig(level=logging.WARNING, handlers=[handler])
    # This file's own folder (/var/runtime, with boto3) is already first on sys.path.
    sys.path[:0] = [TASK_ROOT, LAYER_PYTHON]
    started = time.monotonic()
    print(f"START RequestId: {request_id} Version: {os.environ.get('AWS_LAMBDA_FUNCTION_VERSION', '$LATEST')}",
          file=sys.stderr, flush=True)
    status = 0
    try:
        module_name, _, function_name = handler_name.rpartition(".")
        function = getattr(importlib.import_module(module_name.replace("/", ".")), function_name)
        result = json.dumps(function(event, Context(request_id)))
    except Exception as exc:  # noqa: BLE001 - reported as the invocation's error, as Lambda does
        status = 1
        stack = traceback.format_exception(exc)
        print(f"[ERROR] {type(exc).__name__}: {exc}\n{''.join(stack).rstrip()}", file=sys.stderr)
        result = json.dumps({"errorMessage": str(exc), "errorType": type(exc).__name__, "requestId": request_id,
                             "stackTrace": stack})
    print(f"END RequestId: {request_id}", file=sys.stderr)
    print(f"REPORT RequestId: {request_id}\tDuration: {(time.monotonic() - started) * 1000:.2f} ms",
          file=sys.stderr, flush=True)
    # json.dumps escapes newlines: the result is one line, the output's last.
    print(result, flush=True)
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv))
