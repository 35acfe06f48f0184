"""A run that has ended: detected, summarised once, announced once.

A run is settled when every job it should have has an outcome (an ends/ record or a page's: ok,
skipped, or a last try's failure, which SQS dead-letters; or an interrupted last try in tries/,
which SQS dead-letters at its next receive) and nothing of it waits or runs. Its jobs are worked out from
the pipeline's descriptor (records.pipeline_key) and the run's own records:

- the manifest's inputs, in each entry step that takes them (the step's key filter), or in the
  steps `submit` sent them to (manifest "steps", no filter: submit queues what it names);
- each ok record's results, in each downstream step whose filter takes them; a join's only for
  keys every one of its upstream steps produced in the run; a gather step without a marker
  none (its job is the one `submit --gather` names);
- every job with a record in the run (a try waiting for its retry is not done yet).

A drop-run (its inputs are whatever other S3 clients drop) has no list: its inputs are complete
once its quiet period has passed (drop.json's last + quiet, the slack `last` may lag included)
and the entry steps' queues and failed-events queues hold nothing: a file uploaded inside the
window but still queued would join it when a worker takes it.

The frequent check is cheap: one ListObjectsV2 of the run's folder decides most checks (an
expected entry job without its record, told by name or, for pages, by the counts their names
carry); pages are read once an entry step's count is complete, other record bodies only for
steps with downstream steps, walking the graph in order and stopping at the first job missing,
and all are kept in memory by ETag, so a warm launcher or a long-lived worker reads each once. Exactly once: summary.json is
written with If-None-Match; the one writer that wins deletes the open marker and announces.
"""
from __future__ import annotations

import contextlib
import json
import logging
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Iterable, Mapping

from botocore.exceptions import BotoCoreError, ClientError

from . import notify
from .records import (
    DONE_OUTCOMES,
    drop_key,
    end_key,
    manifest_key,
    open_key,
    open_prefix,
    page_parts,
    page_prefix,
    page_records,
    parse_iso,
    pipeline_key,
    run_prefix,
    summary_key,
)
from .runs import LAST_STEP, RUN_NAME, _missing, _precondition_failed
from .summary import build_summary

log = logging.getLogger("yunpipe.accounting")

INPUT = "input"  # a source's step when it is the pipeline's input bucket (engine/graph.py)
QUEUE_COUNTS = ("ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible",
                "ApproximateNumberOfMessagesDelayed")
# Record bodies kept in memory (by key and ETag) between checks; beyond it the cache starts over.
CACHE_LIMIT = 20000
# Records read at once (botocore's connection pool holds 10 by default).
READERS = 8
_bodies: dict[tuple[str, str, str], dict[str, Any]] = {}
_queue_urls: dict[str, str] = {}


class Malformed(ValueError):
    """A manifest, record or descriptor that is not what records.py says: the run is skipped."""


@dataclass
class Listing:
    """What ListObjectsV2 of a run's folder says: its records' and pages' keys (with ETags), its
    manifest's ETag, whether its summary exists; and, once read (read_pages), the pages' records
    by the ends/ key each would have on its own."""

    ends: dict[str, str] = field(default_factory=dict)
    tries: dict[str, str] = field(default_factory=dict)
    pages: dict[str, str] = field(default_factory=dict)
    manifest: str | None = None
    summary: bool = False
    paged: dict[str, dict[str, Any]] = field(default_factory=dict)

    def paged_counts(self, prefix: str) -> Counter[str]:
        """How many records each step's pages hold, by their names."""
        counts: Counter[str] = Counter()
        for step, count in (page_parts(prefix, key) for key in self.pages):
            counts[step] += count
        return counts


@dataclass
class Step:
    name: str
    sources: list[dict[str, str]]
    downstream: list[str]
    entry: bool
    triggered: bool
    join: bool
    prefix: str
    suffix: str
    max_receive_count: int

    @property
    def after(self) -> list[str]:
        return [s["step"] for s in self.sources if s["step"] != INPUT]

    def takes(self, key: str) -> bool:
        """Whether the step's launcher queues a new object of this key (its filter; no folder marker)."""
        return not key.endswith("/") and key.startswith(self.prefix) and key.endswith(self.suffix)


def settle_open_runs(s3: Any, sns: Any, report_bucket: str, pipeline: str, now: datetime, *,
                     sqs: Any = None) -> list[str]:
    """Settle every open run of the pipeline that has ended; returns the runs this call settled.
    `sns`: the SNS client, or a function that makes one (called only to announce); `sqs` is
    needed for drop-runs (their entry queues must be empty; without it they stay open).
    A run that cannot be read (a malformed manifest or record, an AWS error) is logged and left
    for the next check; nothing raises but a bad argument."""
    descriptor = _descriptor(s3, report_bucket, pipeline)
    if descriptor is None or not descriptor.get("accounting", True):
        return []
    steps = _steps(descriptor)
    settled = []
    for run in _open_runs(s3, report_bucket, pipeline):
        try:
            if settle_run(s3, sns, sqs, report_bucket, descriptor, steps, run, now):
                settled.append(run)
        except (Malformed, ValueError, KeyError, TypeError, AttributeError) as error:
            log.error("run %s of %s cannot be settled, skipped: %s", run, pipeline, error)
        except (BotoCoreError, ClientError) as error:
            log.warning("run %s of %s not checked now (AWS error): %s", run, pipeline, error)
    return settled


def settle_run(s3: Any, sns: Any, sqs: Any, bucket: str, descriptor: Mapping[str, Any], steps: dict[str, Step],
               run: str, now: datetime) -> bool:
    pipeline = descriptor["pipeline"]
    # A run's name says its kind (_check_manifest holds the manifest to it). A drop-run that files
    # may still join is judged before its listing, which grows by a record per job: read on every
    # check, each time a worker's queue went empty, it made a large batch slower per file.
    drop = _run_kind(run) == "drop"
    if drop and not _drop_closed(s3, sqs, bucket, descriptor, steps, run, now):
        return False
    listing = list_run(s3, bucket, pipeline, run)
    if listing.summary:
        # Settled by a writer that stopped before it closed the run: close it (it announced, or
        # was about to; announcing again would break "once").
        s3.delete_object(Bucket=bucket, Key=open_key(pipeline, run))
        return False
    if listing.manifest is None:
        return False  # opened a moment ago, or never: nothing to judge yet
    manifest = _body(s3, bucket, manifest_key(pipeline, run), listing.manifest)
    _check_manifest(manifest, run)
    jobs = expected_jobs(s3, bucket, pipeline, run, manifest, steps, listing)
    if jobs is None:
        return False
    tries = [_body(s3, bucket, key, etag) for key, etag in sorted(listing.tries.items())]
    summary = build_summary(s3, bucket, descriptor, manifest, jobs, tries, now)
    try:
        s3.put_object(Bucket=bucket, Key=summary_key(pipeline, run), IfNoneMatch="*",
                      Body=json.dumps(summary, indent=1).encode(), ContentType="application/json")
    except ClientError as error:
        if _precondition_failed(error):
            return False  # another settler won: it closes and announces
        raise
    s3.delete_object(Bucket=bucket, Key=open_key(pipeline, run))
    log.info("run %s of %s settled: s3://%s/%s", run, pipeline, bucket, summary_key(pipeline, run))
    topic = str(descriptor.get("topic_arn") or "")
    if topic:
        notify.settled(sns, topic, summary, bucket)
    return True


def list_run(s3: Any, bucket: str, pipeline: str, run: str) -> Listing:
    prefix = run_prefix(pipeline, run)
    listing = Listing()
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for obj in page.get("Contents", []):
            rest, etag = obj["Key"][len(prefix):], obj["ETag"]
            if rest.startswith("ends/"):
                listing.ends[obj["Key"]] = etag
            elif rest.startswith("tries/"):
                listing.tries[obj["Key"]] = etag
            elif rest.startswith("pages/") and _is_page(page_prefix(pipeline, run), obj["Key"]):
                listing.pages[obj["Key"]] = etag
            elif rest == "manifest.json":
                listing.manifest = etag
            elif rest == "summary.json":
                listing.summary = True
    return listing


def _is_page(prefix: str, key: str) -> bool:
    """Whether a key under the run's pages/ is a page's (a folder marker or a stray object is none,
    and is left out as the other readers leave it out)."""
    try:
        page_parts(prefix, key)
        return True
    except ValueError:
        log.warning("%s is no page's key; ignored", key)
        return False


def expected_jobs(s3: Any, bucket: str, pipeline: str, run: str, manifest: Mapping[str, Any],
                  steps: dict[str, Step], listing: Listing) -> list[dict[str, Any]] | None:
    """The run's job records (its ends/ and pages', and its interrupted last tries), once every
    job it should have has one; None while one is missing."""
    prefix = run_prefix(pipeline, run)
    wanted: dict[str, set[str]] = {name: set() for name in steps}
    for entry, key in _entry_jobs(manifest, steps):
        wanted[entry].add(key)
    if not _may_have_ended(pipeline, run, wanted, listing):
        return None
    read_pages(s3, bucket, listing)
    ended = _ended(pipeline, run, steps, listing)
    if ended is None:
        return None

    def has_end(step: str, key: str) -> bool:
        return end_key(pipeline, run, step, key) in ended

    # Then step by step (the entry steps first), each after those it reads: what the ok records produced is wanted next.
    produced: dict[str, set[str]] = {name: set() for name in steps}
    for name in _order(steps):
        step = steps[name]
        if step.after and step.triggered:
            made = [produced[u] for u in step.after if u in produced]
            keys = set.intersection(*made) if step.join and made else set().union(*made)
            wanted[name] |= {k for k in keys if step.takes(k)}
        if not all(has_end(name, key) for key in wanted[name]):
            return None
        if step.downstream:
            mine = sorted(k for k in ended if k.startswith(f"{prefix}ends/{name}/"))
            _prefetch(s3, bucket, listing, [ended[end] for end in mine])
            for end in mine:
                record = _record(s3, bucket, listing, ended[end])
                if record.get("outcome") == "ok":
                    produced[name] |= {str(k) for k in record.get("results") or []}
    jobs = []
    _prefetch(s3, bucket, listing, [*ended.values(), *listing.tries])
    for end, source in sorted(ended.items()):
        record = _record(s3, bucket, listing, source)
        jobs.append(record if source == end else {**record, "final": True})
    return jobs


def _may_have_ended(pipeline: str, run: str, wanted: dict[str, set[str]], listing: Listing) -> bool:
    """Cheap first, before any record is read: whether each entry step's expected jobs can all
    have records, by name (ends/, tries/) or by the counts of the pages' names."""
    prefix = run_prefix(pipeline, run)
    named = {*listing.ends, *(_try_parts(pipeline, run, prefix, key)[1] for key in listing.tries)}
    paged = listing.paged_counts(page_prefix(pipeline, run))
    return all(sum(end_key(pipeline, run, entry, key) not in named for key in keys) <= paged[entry]
               for entry, keys in wanted.items())


def read_pages(s3: Any, bucket: str, listing: Listing) -> None:
    """Read the run's pages (each once per process, by ETag) into listing.paged; a job done twice
    (a duplicate, a forced re-run) keeps its latest record, as a rewritten ends/ record would."""
    _prefetch(s3, bucket, listing, list(listing.pages))
    for key, etag in sorted(listing.pages.items()):
        try:
            found = page_records(_body(s3, bucket, key, etag))
        except ValueError as error:
            raise Malformed(f"s3://{bucket}/{key}: {error}") from None
        for record in found:
            if not all(isinstance(record.get(f), str) for f in ("pipeline", "run", "step", "key", "finished_at")) \
                    or record.get("outcome") not in DONE_OUTCOMES:
                raise Malformed(f"s3://{bucket}/{key} holds a record without its pipeline, run, step, key or end, "
                                f"or not done ({', '.join(DONE_OUTCOMES)})")
            end = end_key(record["pipeline"], record["run"], record["step"], record["key"])
            if end not in listing.paged or listing.paged[end]["finished_at"] < record["finished_at"]:
                listing.paged[end] = record


def _ended(pipeline: str, run: str, steps: dict[str, Step], listing: Listing) -> dict[str, str] | None:
    """Each ended job's end key -> the key of the record that ends it: its ends/ record or its
    page's, or an interrupted last try (SQS dead-letters it at its next receive). None while a
    try waits for its retry: every job with a record in the run must end."""
    done = {*listing.ends, *listing.paged}
    ended = {end: end for end in done}
    for key in listing.tries:
        step, end, attempt = _try_parts(pipeline, run, run_prefix(pipeline, run), key)
        if end in done:
            continue
        if step not in steps or attempt < steps[step].max_receive_count:
            return None
        ended[end] = key
    return ended


def _record(s3: Any, bucket: str, listing: Listing, key: str) -> dict[str, Any]:
    paged = listing.paged.get(key)
    if paged is not None and key not in listing.ends:
        return paged
    record = _body(s3, bucket, key, listing.ends.get(key) or listing.tries[key])
    if paged is not None and str(record.get("finished_at")) < paged["finished_at"]:
        return paged  # done again after a failure that ended it (`yunpipe retry`)
    if not isinstance(record.get("outcome"), str) or not isinstance(record.get("step"), str):
        raise Malformed(f"s3://{bucket}/{key} is not a job record (no outcome or step)")
    return record


def _try_parts(pipeline: str, run: str, prefix: str, key: str) -> tuple[str, str, int]:
    """(step, the end key of the same job, attempt) of a tries/ record's key."""
    rest = key[len(prefix) + len("tries/"):]
    step, _, rest = rest.partition("/")
    name, _, last = rest.rpartition("/")
    if not step or not name or not last.endswith(".json") or not last[:-5].isdigit():
        raise Malformed(f"{key} is not a try record's key")
    if name.startswith("_sha256/"):
        # Hashed for its length: its end key is too (a few keys near the limit are not; they wait).
        return step, f"{prefix}ends/{step}/{name}.json", int(last[:-5])
    return step, end_key(pipeline, run, step, name), int(last[:-5])


def _entry_jobs(manifest: Mapping[str, Any], steps: dict[str, Step]) -> Iterable[tuple[str, str]]:
    """(step, key) of the jobs the manifest's inputs start: in the steps submit sent them to, or
    in each entry step reading their bucket whose filter takes them."""
    inputs = manifest.get("inputs")
    if inputs is None:
        return
    named = manifest.get("steps")
    for entry in inputs:
        key, source = str(entry["key"]), str(entry["bucket"])
        if named:
            yield from ((str(step), key) for step in named if step in steps)
            continue
        for step in steps.values():
            if step.entry and step.triggered and step.takes(key) and \
                    any(s["step"] == INPUT and s["bucket"] == source for s in step.sources):
                yield step.name, key


def _drop_closed(s3: Any, sqs: Any, bucket: str, descriptor: Mapping[str, Any], steps: dict[str, Step], run: str,
                 now: datetime) -> bool:
    """Whether no more file can join the drop-run: another one opened since (a file joins only
    the newest), or its quiet period has passed and the entry steps hold nothing queued."""
    pipeline = descriptor["pipeline"]
    try:
        state = json.loads(s3.get_object(Bucket=bucket, Key=drop_key(pipeline))["Body"].read())
    except ClientError as error:
        if _missing(error):
            return False
        raise
    if state.get("run") != run:
        return True
    quiet = timedelta(seconds=float(state.get("quiet_seconds") or descriptor.get("run_quiet_seconds") or 0))
    if now < parse_iso(state["last"]) + quiet * (1 + LAST_STEP):
        return False
    if sqs is None:
        log.warning("drop-run %s of %s: no SQS client to look at its entry queues; it stays open", run, pipeline)
        return False
    queues = [q for step in descriptor["steps"] if step.get("entry")
              for q in (step.get("queue"), step.get("failed_events_queue")) if q]
    return all(_queue_empty(sqs, name) for name in queues)


def _queue_empty(sqs: Any, name: str) -> bool:
    if name not in _queue_urls:
        _queue_urls[name] = sqs.get_queue_url(QueueName=name)["QueueUrl"]
    counts = sqs.get_queue_attributes(QueueUrl=_queue_urls[name], AttributeNames=list(QUEUE_COUNTS))["Attributes"]
    return all(int(counts.get(name, 0)) == 0 for name in QUEUE_COUNTS)


def _descriptor(s3: Any, bucket: str, pipeline: str) -> dict[str, Any] | None:
    try:
        answer = s3.get_object(Bucket=bucket, Key=pipeline_key(pipeline))
    except ClientError as error:
        if _missing(error):
            log.info("no accounting descriptor s3://%s/%s: nothing to settle", bucket, pipeline_key(pipeline))
            return None
        log.warning("cannot read s3://%s/%s: %s", bucket, pipeline_key(pipeline), error)
        return None
    try:
        descriptor = json.loads(answer["Body"].read())
        _steps(descriptor)
    except (ValueError, KeyError, TypeError, AttributeError) as error:
        log.error("s3://%s/%s is malformed, nothing settled: %s", bucket, pipeline_key(pipeline), error)
        return None
    return descriptor


def _steps(descriptor: Mapping[str, Any]) -> dict[str, Step]:
    steps = {}
    for raw in descriptor["steps"]:
        steps[str(raw["name"])] = Step(
            name=str(raw["name"]), sources=[{"step": str(s["step"]), "bucket": str(s["bucket"])} for s in raw["sources"]],
            downstream=[str(d) for d in raw.get("downstream") or []], entry=bool(raw.get("entry")),
            triggered=bool(raw.get("triggered", True)), join=bool(raw.get("join")),
            prefix=str(raw.get("prefix") or ""), suffix=str(raw.get("suffix") or ""),
            max_receive_count=int(raw["max_receive_count"]))
    return steps


def _order(steps: dict[str, Step]) -> list[str]:
    """The steps, each after those it reads (the workflow's graph has no cycle)."""
    done: list[str] = []
    while len(done) < len(steps):
        ready = [n for n, s in steps.items() if n not in done and all(u in done or u not in steps for u in s.after)]
        if not ready:
            raise Malformed("the descriptor's steps form a cycle")
        done += ready
    return done


def _open_runs(s3: Any, bucket: str, pipeline: str) -> list[str]:
    prefix = open_prefix(pipeline)
    runs = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for obj in page.get("Contents", []):
            name = obj["Key"][len(prefix):]
            if RUN_NAME.match(name):
                runs.append(name)
            else:
                log.warning("s3://%s/%s is no run's open marker; ignored", bucket, obj["Key"])
    return runs


def _run_kind(run: str) -> str:
    """upload, submit or drop (_open_runs passes only names RUN_NAME matches)."""
    match = RUN_NAME.match(run)
    if match is None:
        raise Malformed(f"{run} is no run's name")
    return match.group(1)


def _check_manifest(manifest: Any, run: str) -> None:
    if not isinstance(manifest, dict) or manifest.get("run") != run or manifest.get("kind") != _run_kind(run):
        raise Malformed(f"manifest of {run} lacks its run or the kind its name says")
    inputs = manifest.get("inputs")
    if inputs is not None and not (isinstance(inputs, list) and all(
            isinstance(i, dict) and isinstance(i.get("key"), str) and isinstance(i.get("bucket"), str) for i in inputs)):
        raise Malformed(f"manifest of {run}: inputs must be a list of {{bucket, key}}")
    if manifest.get("steps") is not None and not isinstance(manifest["steps"], list):
        raise Malformed(f"manifest of {run}: steps must be a list")


def _prefetch(s3: Any, bucket: str, listing: Listing, keys: list[str]) -> None:
    """Read the records not in memory yet, READERS at a time: a run of thousands of files is read
    within the launcher's minute. A record that cannot be read is read again, and fails, in turn."""
    # A paged record's key has no object of its own: its page was read.
    missing = [(key, listing.ends.get(key) or listing.tries.get(key) or listing.pages[key])
               for key in keys if key in listing.ends or key in listing.tries or key in listing.pages]
    missing = [(key, etag) for key, etag in missing if (bucket, key, etag) not in _bodies]
    if len(missing) < 2:
        return

    def read(item: tuple[str, str]) -> None:
        with contextlib.suppress(Malformed, BotoCoreError, ClientError):
            _body(s3, bucket, *item)

    with ThreadPoolExecutor(max_workers=READERS) as pool:
        list(pool.map(read, missing))


def _body(s3: Any, bucket: str, key: str, etag: str) -> dict[str, Any]:
    """A record's JSON, read once per ETag (a record rewritten, by a duplicate, is read again)."""
    cached = _bodies.get((bucket, key, etag))
    if cached is not None:
        return cached
    try:
        body = json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
    except ValueError as error:
        raise Malformed(f"s3://{bucket}/{key} is not JSON: {error}") from None
    if not isinstance(body, dict):
        raise Malformed(f"s3://{bucket}/{key} is not a JSON object")
    if len(_bodies) >= CACHE_LIMIT:
        _bodies.clear()
    _bodies[(bucket, key, etag)] = body
    return body
