"""Another S3 client, in a process of its own, as a user's upload is: puts bench/e2e.py's files
into a bucket one after another and, with a results bucket, lists it until every file's result
is there. Run by e2e.py and baselines.py (the pipeline's runs and the floor's) as

    python bench/dropper.py ENDPOINT REGION BUCKET [RESULTS_BUCKET]  < JSON list of file paths

It prints `ready` once its client has answered (its start-up is not counted), waits for a line
on stdin, then, when done, one JSON line: {"started": time.time() of the first put, "dropped":
each key's time its put returned, "seen": each key's time its result was first listed ({} without
RESULTS_BUCKET)}.

Why a process of its own: in the local cloud's process (the emulator, the launchers, the task
runner) the upload's thread had to win the interpreter's lock back after every request, so the
same 200 puts took 3.5 s in one run and 15 s in the next; a user's `yunpipe upload` or `aws s3 cp`
never shares that process either.
"""
import json
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from botocore.exceptions import BotoCoreError, ClientError

from yunpipe.local.clients import local_client

# The results bucket is listed this often while the files go in.
POLL_SECONDS = 0.25


def upload(s3, bucket: str, files: list[Path], dropped: dict[str, float]) -> None:
    """Put the files one by one, noting when each put returned (its drop time)."""
    for path in files:
        s3.put_object(Bucket=bucket, Key=path.name, Body=path.read_bytes())
        dropped[path.name] = time.time()


def watch(s3, bucket: str, keys: set[str], seen: dict[str, float], gave_up: Callable[[], bool]) -> None:
    """List the results bucket until every key has a result (or the upload failed), noting when
    each was first listed. The files' names sort in the order they are put
    (benchlib.write_samples), so each listing starts after the first key not yet seen: it lists
    the files in flight, not all results so far (2,000 of them took most of the emulator's time)."""
    ordered, first_unseen = sorted(keys), 0
    while len(seen) < len(keys) and not gave_up():
        after = {"StartAfter": ordered[first_unseen - 1]} if first_unseen else {}
        listed = [o["Key"] for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, **after)
                  for o in page.get("Contents", [])]
        now = time.time()
        for key in listed:
            seen.setdefault(key, now)
        while first_unseen < len(ordered) and ordered[first_unseen] in seen:
            first_unseen += 1
        if len(seen) < len(keys):
            time.sleep(POLL_SECONDS)


def main(argv: list[str]) -> int:
    endpoint, region, bucket = argv[0], argv[1], argv[2]
    results = argv[3] if len(argv) > 3 else None
    files = [Path(path) for path in json.loads(sys.stdin.readline())]
    s3_upload, s3_watch = local_client("s3", endpoint, region), local_client("s3", endpoint, region)
    s3_upload.head_bucket(Bucket=bucket)  # the client works
    print("ready", flush=True)
    sys.stdin.readline()
    dropped: dict[str, float] = {}
    seen: dict[str, float] = {}
    failed: list[Exception] = []

    def put_all() -> None:
        try:
            upload(s3_upload, bucket, files, dropped)
        except (BotoCoreError, ClientError, OSError) as exc:  # re-raised below, after the watch
            failed.append(exc)

    started = time.time()
    uploading = threading.Thread(target=put_all, daemon=True)
    uploading.start()
    if results:
        watch(s3_watch, results, {path.name for path in files}, seen, lambda: bool(failed))
    uploading.join()
    if failed:
        raise failed[0]
    print(json.dumps({"started": started, "dropped": dropped, "seen": seen}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
