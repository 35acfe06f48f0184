"""The worker's own failures against moto: an interrupted job hands its file back without using up
a try (a Spot interruption), and a permanent exit code or a handed-back file's last try goes to the
dead-letter queue at once."""
import json
import threading
import time

import pytest
from moto import mock_aws
from moto.core import DEFAULT_ACCOUNT_ID
from moto.sqs.models import sqs_backends
from test_worker import PATIENCE, Step

from yunpipe.runtime import contract
from yunpipe.runtime.worker.algorithm import load_algorithm
from yunpipe.runtime.worker.job import process_message
from yunpipe.runtime.worker.lease import settle

COPY = "sh -c 'cp $input $output'"


def interrupt(step, algorithm, config, started):
    """Run a worker until its job has started, then stop it as SIGTERM does."""
    stop = threading.Event()
    worker = threading.Thread(target=lambda: step.run(algorithm, config, stop=stop))
    worker.start()
    deadline = time.monotonic() + PATIENCE
    while not started.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert started.exists(), "the job never started"
    stop.set()
    worker.join(PATIENCE)
    started.unlink()


def queued(step, queue="step"):
    """The messages a queue holds, each as (body, its yunpipe attributes, SQS's receive count),
    read from moto's own state: a ReceiveMessage would count as a receive."""
    messages = sqs_backends[DEFAULT_ACCOUNT_ID]["us-east-1"].queues[queue].messages
    return [(m.body, {k: v["StringValue"] for k, v in m.message_attributes.items()}, m.approximate_receive_count)
            for m in messages]


def counted(receives, interruptions):
    return {contract.RECEIVES_ATTRIBUTE: {"DataType": "Number", "StringValue": str(receives)},
            contract.INTERRUPTIONS_ATTRIBUTE: {"DataType": "Number", "StringValue": str(interruptions)}}


def body(key):
    return json.dumps({"bucket": "in-bucket", "key": key, "etag": "e", "size": 1, "pipeline": "demo", "step": "upper"})


@pytest.fixture
def strict_step(aws_env, tmp_path):
    """A step whose queue moves a message to the dead-letter queue on its first failed receive."""
    with mock_aws():
        yield Step(tmp_path, max_receive_count=1)


def test_an_interrupted_job_is_handed_back_and_three_interruptions_use_up_no_try(strict_step, tmp_path):
    step = strict_step
    started = tmp_path / "started"
    slow = step.algorithm(f"sh -c 'touch {started}; sleep 30; cp $input $output'")
    config = step.config(YUNPIPE_DEAD_LETTER_URL=step.dlq_url)
    step.put("a.txt")
    step.send("a.txt")
    for interruption in (1, 2, 3):
        interrupt(step, slow, config, started)
        # A new message with the same body, its receives and interruptions; the old one is gone.
        assert queued(step) == [(body("a.txt"), {contract.RECEIVES_ATTRIBUTE: str(interruption),
                                                 contract.INTERRUPTIONS_ATTRIBUTE: str(interruption)}, 0)]
        assert step.queue_counts(step.dlq_url) == (0, 0)
    # With max_receive_count 1, a released message would have been dead-lettered at its second receive.
    assert step.run(step.algorithm(COPY), config) == 0
    assert step.output_keys() == ["a.txt"] and step.output("a.txt") == b"hello world\n"
    assert step.queue_counts() == (0, 0) and step.queue_counts(step.dlq_url) == (0, 0)
    assert step.reports() == {}
    # The try that ran is the file's fourth attempt: the interrupted ones keep their numbers.
    head = step.s3.head_object(Bucket="out-bucket", Key="a.txt")
    assert head["Metadata"]["yunpipe-attempt"] == "4"


def test_a_file_received_as_the_worker_stops_is_handed_back_as_if_never_received(strict_step):
    step = strict_step
    alg = step.algorithm(COPY)
    config = step.config(YUNPIPE_DEAD_LETTER_URL=step.dlq_url)
    step.put("a.txt")
    step.sqs.send_message(QueueUrl=step.queue_url, MessageBody=body("a.txt"), MessageAttributes=counted(2, 1))
    [message] = step.sqs.receive_message(QueueUrl=step.queue_url, MessageAttributeNames=["All"],
                                         MessageSystemAttributeNames=["ApproximateReceiveCount"])["Messages"]
    stopping = threading.Event()
    stopping.set()
    result = process_message(message, config, alg, step.s3, environ={}, stop=stopping)
    assert (result.interrupted, result.untouched, result.attempt) == (True, True, 3)
    settle(step.sqs, config, message, result, retry_delay=0)
    # Nothing of it ran: the counts it came with, no interruption added to the bound.
    assert queued(step) == [(body("a.txt"), {contract.RECEIVES_ATTRIBUTE: "2", contract.INTERRUPTIONS_ATTRIBUTE: "1"}, 0)]
    assert step.output_keys() == [] and step.reports() == {}


def test_a_file_interrupted_too_often_is_released_and_the_interruption_counts(strict_step, tmp_path):
    step = strict_step
    started = tmp_path / "started"
    slow = step.algorithm(f"sh -c 'touch {started}; sleep 30; cp $input $output'")
    config = step.config(YUNPIPE_DEAD_LETTER_URL=step.dlq_url)
    step.put("a.txt")
    limit = contract.MAX_INTERRUPTIONS
    step.sqs.send_message(QueueUrl=step.queue_url, MessageBody=body("a.txt"), MessageAttributes=counted(limit, limit))
    interrupt(step, slow, config, started)
    # Released, not handed back: the same message, its receive counted, so SQS moves it on the next receive.
    assert step.queue_counts() == (1, 0)
    step.run(step.algorithm(COPY), config)
    assert step.output_keys() == []
    assert step.queue_counts(step.dlq_url) == (1, 0)


def test_a_handed_back_file_s_last_try_goes_to_the_dead_letter_queue_at_once(aws_env, tmp_path):
    with mock_aws():
        step = Step(tmp_path, max_receive_count=3)
        config = step.config(YUNPIPE_DEAD_LETTER_URL=step.dlq_url)
        step.put("bad.txt")
        # Three receives before, one of them interrupted: two tries used, this is the last.
        step.sqs.send_message(QueueUrl=step.queue_url, MessageBody=body("bad.txt"), MessageAttributes=counted(3, 1))
        step.run(step.algorithm("false"), config)
        (name, report), = step.reports().items()
        assert name == "failures/demo/upper/bad.txt/attempt-4.json"
        assert (report["attempt"], report["interruptions"], report["final"]) == (4, 1, True)
        assert step.queue_counts() == (0, 0)
        # The body as the launcher sent it, no counts: `yunpipe retry` queues it as a first try.
        assert [(b, a) for b, a, _ in queued(step, "step-dlq")] == [(body("bad.txt"), {})]


def test_a_permanent_exit_code_goes_to_the_dead_letter_queue_at_once_and_others_are_retried(aws_env, tmp_path):
    with mock_aws():
        step = Step(tmp_path, max_receive_count=3)
        config = step.config(YUNPIPE_DEAD_LETTER_URL=step.dlq_url)
        alg = step.algorithm("sh -c 'echo bad input >&2; exit $(cat $input)'", permanent_exit_codes=[3, 65])
        step.put("permanent.txt", b"65")
        step.put("transient.txt", b"4")
        step.send("permanent.txt")
        step.send("transient.txt")
        step.run(alg, config, retry_delay=60)
        reports = step.reports()
        assert sorted(reports) == ["failures/demo/upper/permanent.txt/attempt-1.json",
                                   "failures/demo/upper/transient.txt/attempt-1.json"]
        permanent = reports["failures/demo/upper/permanent.txt/attempt-1.json"]
        assert (permanent["reason"], permanent["exit_code"], permanent["final"]) == ("permanent_exit", 65, True)
        assert permanent["stderr_tail"] == "bad input\n"
        transient = reports["failures/demo/upper/transient.txt/attempt-1.json"]
        assert (transient["reason"], transient["exit_code"], transient["final"]) == ("nonzero_exit", 4, False)
        assert [json.loads(b)["key"] for b, _, _ in queued(step, "step-dlq")] == ["permanent.txt"]
        # The other waits out its retry delay on the step's queue.
        assert step.queue_counts() == (0, 1)


def test_without_a_dead_letter_queue_a_permanent_failure_is_left_to_sqs(aws_env, tmp_path, caplog):
    with mock_aws():
        step = Step(tmp_path, max_receive_count=3)
        alg = step.algorithm("sh -c 'exit 3'", permanent_exit_codes=[3])
        step.put("a.txt")
        step.send("a.txt")
        step.run(alg, step.config(), retry_delay=60)
        # Released at once each time, not after the retry delay, until SQS's count moves it.
        reports = step.reports()
        assert len(reports) == 3 and all(report["final"] for report in reports.values())
        assert step.queue_counts() == (0, 0) and step.queue_counts(step.dlq_url) == (1, 0)
        assert "no dead-letter queue set (YUNPIPE_DEAD_LETTER_URL)" in caplog.text


@pytest.mark.parametrize("codes", [[0], [256], "3", [True], [3.5]])
def test_the_worker_refuses_an_algorithm_file_with_bad_permanent_exit_codes(tmp_path, codes):
    path = tmp_path / "algorithm.json"
    path.write_text(json.dumps({"run_command": "cp $input $output", "permanent_exit_codes": codes}))
    with pytest.raises(ValueError, match="permanent_exit_codes must be a list of exit codes from 1 to 255"):
        load_algorithm(str(path))


def test_the_worker_config_reads_back_its_dead_letter_queue():
    config = contract.WorkerConfig(queue_url="q", output_bucket="o", dead_letter_url="https://sqs/dlq")
    assert config.to_env()[contract.DEAD_LETTER_URL_VARIABLE] == "https://sqs/dlq"
    assert contract.WorkerConfig.from_env(config.to_env()) == config
