"""yunpipe.local.moto_patches: each speed-up gives moto's own answer, and is undone on exit."""
import datetime
import time

import boto3
import pytest
from moto import mock_aws
from moto.core import DEFAULT_ACCOUNT_ID
from moto.sqs import models as sqs_models

from yunpipe.local import moto_patches
from yunpipe.local.moto_patches import sqs_clock_fast

REGION = "us-east-1"


def test_the_fast_clock_tells_the_time_moto_tells():
    for _ in range(3):
        before = sqs_models.unix_time()
        fast = moto_patches.unix_time()
        after = sqs_models.unix_time()
        assert before - 0.001 <= fast <= after + 0.001
    assert abs(moto_patches.unix_time_millis() - sqs_models.unix_time_millis()) < 50
    # A given datetime is moto's business, as before.
    instant = datetime.datetime(2023, 11, 14, 22, 13, 20)  # naive UTC, as moto keeps them
    assert moto_patches.unix_time(instant) == sqs_models.unix_time(instant) == 1_700_000_000
    assert moto_patches.unix_time_millis(instant) == 1_700_000_000_000


@mock_aws
@pytest.mark.parametrize("age_seconds, valid", [(0, True), (59, True), (61, False)])
def test_retention_is_judged_as_moto_judges_it(age_seconds, valid):
    sqs = boto3.client("sqs", region_name=REGION)
    url = sqs.create_queue(QueueName="q", Attributes={"MessageRetentionPeriod": "60"})["QueueUrl"]
    sqs.send_message(QueueUrl=url, MessageBody="x")
    backend = sqs_models.sqs_backends[DEFAULT_ACCOUNT_ID][REGION]
    [message] = backend.get_queue("q")._messages
    message.sent_timestamp -= age_seconds * 1000
    own = backend.is_message_valid_based_on_retention_period("q", message)
    with sqs_clock_fast():
        assert backend.is_message_valid_based_on_retention_period("q", message) is own is valid


@mock_aws
def test_queues_behave_the_same_with_the_speedups_and_they_are_undone_on_exit():
    sqs = boto3.client("sqs", region_name=REGION)
    url = sqs.create_queue(QueueName="q")["QueueUrl"]
    with sqs_clock_fast():
        assert sqs_models.SQSBackend.is_message_valid_based_on_retention_period is \
            moto_patches.is_message_valid_based_on_retention_period
        for n in range(5):
            sqs.send_message(QueueUrl=url, MessageBody=str(n), DelaySeconds=1 if n == 4 else 0)
        received = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=2, VisibilityTimeout=1)["Messages"]
        counts = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
        assert len(received) == 2
        assert (counts["ApproximateNumberOfMessages"], counts["ApproximateNumberOfMessagesNotVisible"],
                counts["ApproximateNumberOfMessagesDelayed"]) == ("2", "2", "1")
        time.sleep(1.1)  # the visibility window and the delay end, by the fast clock
        again = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]
        assert sorted(m["Body"] for m in again) == ["0", "1", "2", "3", "4"]
    assert sqs_models.unix_time is moto_patches._unix_time
    assert sqs_models.SQSBackend.is_message_valid_based_on_retention_period is not \
        moto_patches.is_message_valid_based_on_retention_period
