"""Another S3 client, in a process of its own, as a user's upload is. Run by e2e.py and
baselines.py (the pipeline's runs and the floor's) as

    python bench/dropper.py ENDPOINT REGION put BUCKET    < JSON list of file paths
    python bench/dropper.py ENDPOINT REGION watch BUCKET  < JSON list of file paths

put: the files into BUCKET one after another; watch: BUCKET listed until each file has a result
of the same name. Each prints `ready` once its client has answered (its start-up is not
counted), waits for a line on stdin, then, when done, one JSON line: put {"started": time.time()
of the first put, "dropped": each key's time its put returned}; watch {"seen": each key's time
its result was first listed}.

Why processes of their own: in the local cloud's process (the emulator, the launchers, the task
runner) the upload's thread had to win the interpreter's lock back after every request, so the
same 200 puts took 3.5 s in one run and 15 s in the next; and beside a watch parsing listings of
a thousand results, 2,000 puts took 160 s. A user's `yunpipe upload` or `aws s3 cp` shares a
process with neither.
"""
import json
import sys
import time
from pathlib import Path

from yunpipe.local.clients import local_client

# The results bucket is listed this often.
POLL_SECONDS = 0.25


def upload(s3, bucket: str, files: list[Path]) -> dict:
    """Put the files one by one, noting when each put returned (its drop time)."""
    started, dropped = time.time(), {}
    for path in files:
        s3.put_object(Bucket=bucket, Key=path.name, Body=path.read_bytes())
        dropped[path.name] = time.time()
    return {"started": started, "dropped": dropped}


def watch(s3, bucket: str, files: list[Path]) -> dict:
    """List the results bucket until every file has a result, noting when each was first listed.
    The files' names sort in the order they are put (benchlib.write_samples), so each listing
    starts after the first key not yet seen: it lists the files in flight, not all results so far
    (2,000 of them took most of the emulator's time)."""
    ordered, first_unseen = sorted(path.name for path in files), 0
    seen: dict[str, float] = {}
    while len(seen) < len(ordered):
        after = {"StartAfter": ordered[first_unseen - 1]} if first_unseen else {}
        listed = [o["Key"] for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, **after)
                  for o in page.get("Contents", [])]
        now = time.time()
        for key in listed:
            seen.setdefault(key, now)
        while first_unseen < len(ordered) and ordered[first_unseen] in seen:
            first_unseen += 1
        if len(seen) < len(ordered):
            time.sleep(POLL_SECONDS)
    return {"seen": seen}


def main(argv: list[str]) -> int:
    endpoint, region, mode, bucket = argv
    work = {"put": upload, "watch": watch}[mode]
    files = [Path(path) for path in json.loads(sys.stdin.readline())]
    s3 = local_client("s3", endpoint, region)
    s3.head_bucket(Bucket=bucket)  # the client works
    print("ready", flush=True)
    sys.stdin.readline()
    print(json.dumps(work(s3, bucket, files)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
