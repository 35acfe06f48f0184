"""The worker's out-of-memory route (runtime/worker/grow.py) against moto: a job out of memory is
sent on to its step's next size with the receives it had (the attributes of a Spot hand-back),
and its tries go on being numbered from there. The kernel's own kill is end to end (tests/e2e/test_grow.py): here the route itself."""
import json

from moto import mock_aws
from test_worker import Step

from yunpipe.runtime.contract import RECEIVES_ATTRIBUTE
from yunpipe.runtime.worker.grow import grows
from yunpipe.runtime.worker.job import JobResult
from yunpipe.runtime.worker.lease import settle
from yunpipe.runtime.worker.message import receipt


def received(step, url=None):
    return step.sqs.receive_message(QueueUrl=url or step.queue_url, MaxNumberOfMessages=10,
                                    MessageSystemAttributeNames=["ApproximateReceiveCount"],
                                    MessageAttributeNames=["All"]).get("Messages", [])


def test_only_a_job_out_of_memory_with_a_larger_size_grows(aws_env, tmp_path):
    with mock_aws():
        step = Step(tmp_path)
        at_the_largest, growing = step.config(), step.config(YUNPIPE_GROW_QUEUE_URL="https://queue/grow1024")
        assert grows(growing, "oom")
        assert not grows(growing, "nonzero_exit") and not grows(growing, "timeout") and not grows(growing, None)
        assert not grows(at_the_largest, "oom")


def test_a_job_out_of_memory_goes_on_at_the_next_size_with_its_tries_and_leaves_its_queue(aws_env, tmp_path):
    with mock_aws():
        step = Step(tmp_path, max_receive_count=3)
        grown = step.sqs.create_queue(QueueName="step-grow1024")["QueueUrl"]
        config = step.config(YUNPIPE_GROW_QUEUE_URL=grown, YUNPIPE_GROW_MEMORY="1024")
        step.send("big.txt")
        [message] = received(step)
        settle(step.sqs, config, message, JobResult(ok=False, key="big.txt", attempt=1, final=False, reason="oom",
                                                    grows=True), retry_delay=0)
        assert step.queue_counts() == (0, 0)
        [sent] = received(step, grown)
        assert sent["Body"] == message["Body"]
        # Its next try is its second: numbered on from the one it had here.
        assert (receipt(sent).attempt, receipt(sent).interruptions) == (2, 0)


def test_a_job_that_cannot_be_sent_on_stays_for_a_retry_at_its_size(aws_env, tmp_path):
    with mock_aws():
        step = Step(tmp_path, max_receive_count=3)
        missing = step.queue_url.replace("/step", "/step-grow-missing")
        config = step.config(YUNPIPE_GROW_QUEUE_URL=missing, YUNPIPE_GROW_MEMORY="1024")
        step.send("big.txt")
        [message] = received(step)
        settle(step.sqs, config, message, JobResult(ok=False, key="big.txt", attempt=1, final=False, reason="oom",
                                                    grows=True), retry_delay=0)
        # Released at once (retry delay 0): SQS hands it out again here.
        assert step.queue_counts() == (1, 0)


def test_tries_at_a_larger_size_are_numbered_on_and_its_last_is_its_queue_s(aws_env, tmp_path):
    """A job sent on after 2 tries fails once more (not out of memory) where its queue gives it
    one try: its report is attempt 3, final, beside the earlier ones rather than over them."""
    with mock_aws():
        step = Step(tmp_path, max_receive_count=1)
        alg = step.algorithm("sh -c 'echo cannot parse >&2; exit 3'")
        step.put("big.txt")
        step.sqs.send_message(QueueUrl=step.queue_url, MessageBody=json.dumps({"bucket": "in-bucket", "key": "big.txt",
                                                                                "etag": "e"}),
                              MessageAttributes={RECEIVES_ATTRIBUTE: {"DataType": "Number", "StringValue": "2"}})
        assert step.run(alg, config=step.config(YUNPIPE_TASK_MEMORY="2048")) == 0
        [(key, report)] = step.reports().items()
        assert key == "failures/demo/upper/big.txt/attempt-3.json"
        assert (report["attempt"], report["final"], report["reason"]) == (3, True, "nonzero_exit")
        assert (report["memory_mib"], report["retry_memory_mib"]) == (2048, None)
        assert step.queue_counts(step.dlq_url) == (1, 0)
