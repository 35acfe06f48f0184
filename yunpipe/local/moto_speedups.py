"""Where moto answers right but slowly, on the local cloud's hot path, it is sped up here without
changing an answer (tests/test_moto_speedups.py compares each with moto's own).

The local cloud serves every request of every worker from one Python process, so moto's CPU per
request is what bounds how many files a pipeline moves per second (bench/e2e.py). Under load
the largest part went to SQS's clock: each message's visibility and delay are checked against a
datetime built for every check, and each message a ReceiveMessage returns builds all of its
queue's attributes three times (to read the retention period), which walks all messages again.
"""
import contextlib
import time
from collections.abc import Iterator
from typing import Any
from unittest import mock

from moto.sqs import models as sqs_models

_unix_time, _unix_time_millis = sqs_models.unix_time, sqs_models.unix_time_millis


def unix_time(dt: Any = None) -> float:
    """moto's unix_time: seconds since the epoch, now from the clock instead of from a naive
    UTC datetime subtracted from another (the same instant, ~40x less CPU)."""
    return time.time() if dt is None else _unix_time(dt)


def unix_time_millis(dt: Any = None) -> float:
    return time.time() * 1000.0 if dt is None else _unix_time_millis(dt)


def is_message_valid_based_on_retention_period(self: Any, queue_name: str, message: Any) -> bool:
    """moto's check, with the retention period read from the queue itself: moto asks
    get_queue_attributes, which builds every attribute, message counts included, three times."""
    retention_period = self.get_queue(queue_name).message_retention_period
    return retention_period + message.sent_timestamp / 1000 > unix_time()


@contextlib.contextmanager
def sqs_clock_fast() -> Iterator[None]:
    with mock.patch.multiple(sqs_models, unix_time=unix_time, unix_time_millis=unix_time_millis), \
            mock.patch.object(sqs_models.SQSBackend, "is_message_valid_based_on_retention_period",
                              is_message_valid_based_on_retention_period):
        yield
