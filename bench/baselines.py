"""bench/e2e.py's baselines and the checks they share with its pipeline runs.

Naive: the developer images (unwrapped), for each file each step's `docker run --rm -v` with its
run_command, `parallel` files at once (1: one after another; nproc and 2 x nproc: what
`xargs -P` gives a researcher). The floor: a plain Python process (bench/floor.py) doing per file
per step exactly the AWS calls a job makes, on a local cloud of its own, no container.
"""
import hashlib
import json
import math
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import benchlib

from yunpipe.aws.location import open_aws
from yunpipe.commands import demo
from yunpipe.errors import YunpipeError
from yunpipe.local import cloud
from yunpipe.registry import AlgorithmRegistry
from yunpipe.runtime.worker.command import substitute

FLOOR = "bench-floor"
REGION = "us-east-1"
# Bounds a broken floor run only; a healthy one of 2,000 files takes about a minute.
FLOOR_WAIT_SECONDS = 600


def expected_result(text: bytes, steps: int) -> bytes:
    """What the pipeline must produce, computed without any container."""
    upper = text.upper()  # `tr '[:lower:]' '[:upper:]'` on the ASCII samples
    if steps == 1:
        return upper
    return hashlib.sha256(upper).hexdigest().encode() + b"\n"


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def verify(read, files: list[Path], steps: int, where: str) -> int:
    """Every result's content, so a broken run cannot report a fast number."""
    wrong = [f.name for f in files if read(f.name) != expected_result(f.read_bytes(), steps)]
    if wrong:
        raise YunpipeError(f"{where}: {len(wrong)} of {len(files)} results are wrong, e.g. {wrong[:3]}")
    return len(files)


class Drop:
    """bench/dropper.py in a process of its own (`mode` put: the files into `bucket`; watch:
    `bucket` listed until each file has a result there), as another S3 client. Constructed, it
    has answered once; start() sets it going; once finished(), result() has its times."""

    def __init__(self, endpoint_url: str, region: str, mode: str, bucket: str, files: list[Path]):
        self.mode = mode
        self.process = subprocess.Popen(
            [sys.executable, str(benchlib.BENCH / "dropper.py"), endpoint_url, region, mode, bucket],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(json.dumps([str(path) for path in files]) + "\n")
        self.process.stdin.flush()
        self._output = ""
        if self.process.stdout.readline().strip() != "ready":
            self.close()
            raise YunpipeError(f"broken run: bench/dropper.py {mode} did not start")

    def start(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write("go\n")
        self.process.stdin.flush()

    def finished(self, timeout: float) -> bool:
        """Waits up to `timeout` seconds for it to exit, reading its output meanwhile (2,000
        files' times fill a pipe's buffer: a child left to write them would never exit)."""
        try:
            self._output, _ = self.process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            return False  # communicate keeps what it read for the next call
        self.check()
        return True

    def check(self) -> None:
        """Raises if it has exited with an error."""
        if self.process.poll():
            raise YunpipeError(f"broken run: bench/dropper.py {self.mode} exited {self.process.returncode}")

    def result(self) -> dict:
        """Once finished: put {"started", "dropped"}, watch {"seen"} (see bench/dropper.py)."""
        return json.loads(self._output)

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def run_naive(client, registry: AlgorithmRegistry, references: list[str], work: Path, files: list[Path], steps: int,
              parallel: int) -> dict:
    """What a researcher scripts by hand: for each file, for each step, `docker run --rm -v` the
    developer's image with its run_command; `parallel` files at once, each file's steps in order."""
    specs = [registry.resolve(ref, "bench", "algorithm").spec for ref in references]
    root = work / f"naive-p{parallel}"
    shutil.copytree(files[0].parent, root / "step0")
    for index in range(1, steps + 1):
        (root / f"step{index}").mkdir()
    mount = {str(root): {"bind": "/bench", "mode": "rw"}}

    def through_all_steps(path: Path) -> None:
        for index, spec in enumerate(specs, start=1):
            argv = substitute(spec.run_command, f"/bench/step{index - 1}/{path.name}", f"/bench/step{index}/{path.name}")
            client.containers.run(spec.container_name, argv, volumes=mount, remove=True)

    demo.say(f"naive baseline: {len(files) * steps} docker runs, {parallel} file(s) at once")
    started = time.monotonic()
    with ThreadPoolExecutor(parallel) as pool:
        list(pool.map(through_all_steps, files))  # re-raises a failed run
    seconds = time.monotonic() - started
    shutil.rmtree(root / "step0")
    verified = verify(lambda key: (root / f"step{steps}" / key).read_bytes(), files, steps, f"naive P={parallel}")
    shutil.rmtree(root)
    return {"parallel": parallel, "docker_runs": len(files) * steps, "seconds": round(seconds, 2),
            "files_per_second": round(len(files) / seconds, 2), "verified_results": verified}


def run_floor(files: list[Path], steps: int, threads: int) -> dict:
    """The files through `steps` steps of bench/floor.py on a local cloud of its own: buckets
    bench-floor-0 (input) .. -<steps> (results), each but the last notifying its step's queue
    (S3 to SQS, as moto's S3 does it), and the files put as the pipeline's are, by a Drop (another
    process). files/s and latency as the pipeline's, with the time each result's
    put returned instead of its first listing."""
    with cloud.LocalCloud(port=0, schedule_speedup=60) as local:
        aws = open_aws(demo.LOCAL, REGION)
        s3, sqs = aws.client("s3"), aws.client("sqs")
        buckets = [f"{FLOOR}-{index}" for index in range(steps + 1)]
        for bucket in buckets:
            s3.create_bucket(Bucket=bucket)
        specs = []
        for index in range(steps):
            url = sqs.create_queue(QueueName=f"{FLOOR}-{index + 1}")["QueueUrl"]
            arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
            s3.put_bucket_notification_configuration(Bucket=buckets[index], NotificationConfiguration={
                "QueueConfigurations": [{"QueueArn": arn, "Events": ["s3:ObjectCreated:*"]}]})
            specs.append(f"{url}:{buckets[index + 1]}")
        process = subprocess.Popen([sys.executable, str(benchlib.BENCH / "floor.py"), local.endpoint_url, REGION,
                                    str(len(files)), str(threads), *specs], stdout=subprocess.PIPE, text=True)
        try:
            if process.stdout is None or process.stdout.readline().strip() != "ready":
                raise YunpipeError("broken floor run: bench/floor.py did not start")
            drop = Drop(local.endpoint_url, REGION, "put", buckets[0], files)
            demo.say(f"floor: {len(files)} files through {steps} step(s), {threads} thread(s) per step, no container")
            try:
                drop.start()
                if not drop.finished(FLOOR_WAIT_SECONDS):
                    raise YunpipeError(f"broken floor run: the files were not put in {FLOOR_WAIT_SECONDS} s")
                put = drop.result()
            finally:
                drop.close()
            output, _ = process.communicate(timeout=FLOOR_WAIT_SECONDS)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
        if process.returncode:
            raise YunpipeError(f"broken floor run: bench/floor.py exited {process.returncode}")
        finished = json.loads(output)
        verified = verify(lambda key: s3.get_object(Bucket=buckets[-1], Key=key)["Body"].read(), files, steps, "floor")
    seconds = max(finished.values()) - put["started"]
    latencies = [finished[key] - put["dropped"][key] for key in put["dropped"]]
    return {"threads_per_step": threads, "seconds": round(seconds, 2),
            "files_per_second": round(len(files) / seconds, 2),
            "upload_seconds": round(max(put["dropped"].values()) - put["started"], 2),
            "latency_p50_seconds": round(percentile(latencies, 50), 2),
            "latency_p95_seconds": round(percentile(latencies, 95), 2), "verified_results": verified}
