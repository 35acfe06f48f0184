"""The floor of bench/e2e.py: per file per step exactly the AWS calls a job makes (receive, get,
put, delete), in one plain Python process, no container, no command; run by e2e.py as

    python bench/floor.py ENDPOINT REGION FILES THREADS QUEUE_URL:TARGET [...]

one QUEUE_URL:TARGET per step (S3 notifies the step's queue of each object put into its source
bucket, as the pipeline's launcher queues it; the step's result goes to TARGET under the same key). THREADS
threads drain each step's queue, receiving up to 10 messages with a 1 s long poll as a worker
does; step n's result is step n's function of the body (uppercase, then sha256, as the pipeline's
algorithms), computed in Python. Prints `ready` once its clients have answered (its start-up is
not counted), then, once FILES results of the last step are put, one JSON line: each key's time
(time.time()) its last result's put returned.
"""
import hashlib
import json
import sys
import threading
import time
from collections.abc import Callable

from yunpipe.local.clients import local_client

# As the worker asks (runtime/worker/loop.py RECEIVE_BATCH; a short wait keeps the exit prompt).
RECEIVE_BATCH = 10
WAIT_SECONDS = 1
STEP_FUNCTIONS: list[Callable[[bytes], bytes]] = [
    bytes.upper,
    lambda body: hashlib.sha256(body).hexdigest().encode() + b"\n",
]


def drain(endpoint: str, region: str, queue_url: str, target: str, function: Callable[[bytes], bytes],
          finished: dict[str, float] | None, done: threading.Event) -> None:
    """Receive, get, put the step's result, delete, until `done`; notes each last-step put in `finished`."""
    sqs, s3 = local_client("sqs", endpoint, region), local_client("s3", endpoint, region)
    while not done.is_set():
        messages = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=RECEIVE_BATCH,
                                       WaitTimeSeconds=WAIT_SECONDS).get("Messages", [])
        for message in messages:
            for record in json.loads(message["Body"]).get("Records", []):  # s3:TestEvent has none
                source = record["s3"]["bucket"]["name"]
                key = record["s3"]["object"]["key"]
                body = s3.get_object(Bucket=source, Key=key)["Body"].read()
                s3.put_object(Bucket=target, Key=key, Body=function(body))
                if finished is not None:
                    finished[key] = time.time()
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])


def main(argv: list[str]) -> int:
    endpoint, region, files, threads = argv[0], argv[1], int(argv[2]), int(argv[3])
    # QUEUE_URL:TARGET, split from the right: the URL has colons of its own, bucket names none.
    steps = [spec.rsplit(":", 1) for spec in argv[4:]]
    finished: dict[str, float] = {}
    done = threading.Event()
    for url, _target in steps:
        local_client("sqs", endpoint, region).get_queue_attributes(QueueUrl=url)  # the clients work
    print("ready", flush=True)
    workers = [threading.Thread(target=drain, daemon=True, args=(
        endpoint, region, url, target, STEP_FUNCTIONS[index], finished if index == len(steps) - 1 else None, done))
        for index, (url, target) in enumerate(steps) for _ in range(threads)]
    for worker in workers:
        worker.start()
    while len(finished) < files:
        time.sleep(0.05)
    done.set()
    for worker in workers:
        worker.join()
    print(json.dumps(finished), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
