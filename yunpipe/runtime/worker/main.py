"""The worker's entry point: read the configuration, handle signals, make the clients, run the loop."""
from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from ..accounting.records import now_iso
from ..contract import CONFIG_ERROR_EXIT, ONE_JOB_FLAG, WorkerConfig
from .algorithm import check_variables, load_algorithm
from .clients import make_clients
from .ledger import Ledger
from .loop import run_worker

log = logging.getLogger("yunpipe.worker")

def main() -> int:
    if sys.argv[1:2] == [ONE_JOB_FLAG]:
        # `yunpipe try` / `yunpipe replay`: one job from a file, no queue, no AWS.
        from .once import run_one
        return run_one(sys.argv[2:], os.environ)
    # The task's start, for its record: what it is billed from is a little earlier (the image's pull).
    started_at = now_iso()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", stream=sys.stdout)
    # botocore's INFO lines (credential discovery) would drown the one line per job.
    logging.getLogger("botocore").setLevel(logging.WARNING)
    problem = None
    try:
        config = WorkerConfig.from_env(os.environ)
        algorithm = load_algorithm(config.algorithm_path)
        check_variables(algorithm, os.environ)
    except (OSError, ValueError) as exc:
        # Dying here would leave the messages queued, and the launcher's schedule would start
        # worker after worker for them. Knowing its queue, the worker fails each message with a
        # report instead, so SQS moves them to the dead-letter queue and the queue empties.
        problem, config, algorithm = str(exc), WorkerConfig.from_env(os.environ, strict=False), {}
        if not config.queue_url:
            print(f"yunpipe runscript: configuration error: {problem} (no queue to report on; "
                  f"exit status {CONFIG_ERROR_EXIT})", file=sys.stderr, flush=True)
            return CONFIG_ERROR_EXIT
        log.error("configuration error: %s; every message received is reported and left for the "
                  "dead-letter queue", problem)
    stop = threading.Event()

    def on_signal(signum: int, frame: Any) -> None:
        # ECS sends SIGTERM (a Spot interruption, a StopTask), then SIGKILL after its stop
        # timeout: abandon the running jobs (their files are handed back for other workers,
        # using up no try) and exit.
        log.warning("signal %d received, stopping", signum)
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        sqs, s3, sns = make_clients(os.environ, config.parallelism, config.topic_arn)
        log.info(
            "worker started: pipeline=%s step=%s queue=%s algorithm=%s",
            config.pipeline, config.step, config.queue_url, algorithm.get("name", ""),
        )
        ledger = Ledger(config, s3, environ=os.environ, sns=sns, started_at=started_at)
        code = run_worker(config, algorithm, sqs, s3, environ=os.environ, stop=stop, config_error=problem,
                          ledger=ledger)
        return CONFIG_ERROR_EXIT if problem else code
    except (BotoCoreError, ClientError) as exc:
        log.error("AWS error: %s", exc)
        return 1
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


if __name__ == "__main__":
    sys.exit(main())
