"""The dashboard's reading of the reports bucket (yunpipe/runtime/accounting/records.py's layout):
a pipeline's runs with their progress per step, and the cost of the tasks recorded so far. (A
run's report is `yunpipe report`'s, operations.report.)

The page asks again every few seconds, so each object is read once: a record is cached by its key
and ETag (a record rewritten, a file's end after a retry, has a new ETag and is read again).
"""
from __future__ import annotations

import json
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from yunpipe.aws.reader import Reader
from yunpipe.engine.state import PipelineSummary
from yunpipe.operations import prices, runs
from yunpipe.runtime.accounting import cost, records

FAILED = ("failed", "timeout", "oom")
# A page of the dashboard reads at most this many records at a time.
READERS = 8
# Records kept in memory; past it the cache starts again (a long session on a large pipeline).
CACHE_SIZE = 50_000


class RecordCache:
    """Objects of the reports bucket by (bucket, key, ETag): JSON as read, None when it is not JSON
    or not there."""

    def __init__(self) -> None:
        self._found: dict[tuple[str, str, str], Any] = {}
        self._lock = threading.Lock()

    def get(self, reader: Reader, bucket: str, obj: dict) -> Any:
        name = (bucket, obj["Key"], obj.get("ETag", ""))
        with self._lock:
            if name in self._found:
                return self._found[name]
        answer = reader.read("s3", "get_object", ("NoSuchKey",), Bucket=bucket, Key=obj["Key"])
        if answer is None:
            return None  # not kept: a running task's record is written when it stops
        try:
            document = json.loads(answer["Body"].read())
        except (json.JSONDecodeError, UnicodeDecodeError):
            document = None
        with self._lock:
            if len(self._found) >= CACHE_SIZE:
                self._found.clear()
            self._found[name] = document
        return document

    def all(self, reader: Reader, bucket: str, objects: list[dict]) -> list[Any]:
        with ThreadPoolExecutor(READERS) as pool:
            return list(pool.map(lambda obj: self.get(reader, bucket, obj), objects))


CACHE = RecordCache()


@dataclass
class Run:
    """A run as its records say so far: `steps` counts each step's outcomes of ended jobs
    (a settled run: its summary's), `retrying` the files a try failed for and that wait again."""
    name: str
    manifest: dict = field(default_factory=dict)
    summary: dict | None = None
    open: bool = False
    steps: dict[str, Counter] = field(default_factory=dict)
    retrying: Counter = field(default_factory=Counter)

    @property
    def inputs(self) -> int | None:
        listed = self.manifest.get("inputs")
        if isinstance(listed, list):
            return len(listed)
        return (self.summary or {}).get("inputs")

    @property
    def kind(self) -> str:
        return str(self.manifest.get("kind") or (self.summary or {}).get("kind") or "?")

    def bars(self, order: list[str], gathers: frozenset[str] = frozenset()) -> list[dict]:
        """Each step's progress bar: done, failed and retrying as shares of the run's inputs (for a
        drop-run, whose inputs nobody listed, of the most files any step has seen); a gather
        step's of its own jobs, one per gathering, not of the files."""
        seen = {step: sum(self.steps.get(step, Counter())[o] for o in records.OUTCOMES) + self.retrying[step]
                for step in order}
        most = max([self.inputs or 0, *seen.values(), 1])
        bars = []
        for step in order:
            counts = self.steps.get(step, Counter())
            done = counts["ok"] + counts["skipped"]
            failed = sum(counts[o] for o in FAILED)
            retrying = self.retrying[step]
            whole = max(1 if step in gathers else most, done + failed + retrying)
            bars.append({"step": step, "done": done, "failed": failed, "retrying": retrying, "of": whole,
                         "skipped": counts["skipped"],
                         "done_pc": 100 * done / whole, "failed_pc": 100 * failed / whole,
                         "retrying_pc": 100 * retrying / whole})
        return bars


def _objects(reader: Reader, summary: PipelineSummary, prefix: str) -> list[dict]:
    return reader.pages("s3", "list_objects_v2", "Contents", ("NoSuchBucket",), Bucket=summary.reports_bucket,
                        Prefix=prefix)


def run_names(reader: Reader, summary: PipelineSummary) -> tuple[list[str], set[str]]:
    """Every run of the pipeline, the newest first (a run's name starts with when it opened), and
    the open ones."""
    base = f"runs/{summary.pipeline}/"
    folders = reader.pages("s3", "list_objects_v2", "CommonPrefixes", ("NoSuchBucket",), Bucket=summary.reports_bucket,
                           Prefix=base, Delimiter="/")
    names = sorted((f["Prefix"][len(base):].rstrip("/") for f in folders), reverse=True)
    opened = {o["Key"].rsplit("/", 1)[1] for o in _objects(reader, summary, records.open_prefix(summary.pipeline))}
    return [n for n in names if n != "open"], opened


def read_run(reader: Reader, summary: PipelineSummary, name: str, opened: bool) -> Run:
    """The run's manifest, and its summary once settled; an open run's job records, counted per
    step (the run page's report is operations.report's)."""
    run = Run(name, open=opened)
    objects = _objects(reader, summary, records.run_prefix(summary.pipeline, name))
    by_key = {o["Key"]: o for o in objects}
    bucket = summary.reports_bucket
    for key, attribute in ((records.manifest_key(summary.pipeline, name), "manifest"),
                           (records.summary_key(summary.pipeline, name), "summary")):
        document = CACHE.get(reader, bucket, by_key[key]) if key in by_key else None
        if isinstance(document, dict):
            setattr(run, attribute, document)
    if run.summary is not None:
        for step, counts in (run.summary.get("steps") or {}).items():
            run.steps[step] = Counter({o: int(counts.get(o) or 0) for o in records.OUTCOMES if isinstance(counts, dict)})
        return run
    jobs = runs.one_end_each(_jobs(reader, summary, name, objects))
    ended = {(j["step"], j.get("key")) for j in jobs if runs.ended(j)}
    for job in filter(runs.ended, jobs):
        run.steps.setdefault(job["step"], Counter())[job["outcome"]] += 1
    # A file whose try failed and that waits for the next one, counted once however many tries it had.
    for step, _ in {(j["step"], j.get("key")) for j in jobs if not runs.ended(j)} - ended:
        run.retrying[step] += 1
    return run


def _jobs(reader: Reader, summary: PipelineSummary, name: str, objects: list[dict]) -> list[dict]:
    """The run's job records among its objects, single ones and the pages' (checked by
    operations.runs); a record or a page that cannot be read is left out."""
    base = records.run_prefix(summary.pipeline, name)
    wanted = [o for o in objects if o["Key"].startswith(tuple(base + folder for folder in runs.FOLDERS))]
    jobs = []
    for obj, document in zip(wanted, CACHE.all(reader, summary.reports_bucket, wanted), strict=True):
        if obj["Key"].startswith(records.page_prefix(summary.pipeline, name)):
            jobs += runs.page_jobs(document)[0]
        elif isinstance(document, dict) and document.get("step") and document.get("outcome") in records.OUTCOMES:
            jobs.append(document)
    return jobs


def recent_runs(reader: Reader, summary: PipelineSummary, count: int = 10) -> tuple[list[Run], int]:
    """The newest `count` runs, and how many there are in all."""
    names, opened = run_names(reader, summary)
    return [read_run(reader, summary, name, name in opened) for name in names[:count]], len(names)


def tasks_cost(reader: Reader, summary: PipelineSummary) -> dict[str, Any]:
    """What the pipeline's recorded tasks cost (a task is recorded as it stops): total, by step,
    task-seconds, with the price table's date."""
    table, _ = prices.load()
    objects = _objects(reader, summary, f"tasks/{summary.pipeline}/")
    by_step: dict[str, float] = {}
    seconds = 0.0
    for task in CACHE.all(reader, summary.reports_bucket, objects):
        if not isinstance(task, dict) or not task.get("started_at"):
            continue
        # A task on an instance type the table lacks counts its seconds, not a price (`yunpipe cost` says so).
        spent, billed = cost.task_cost(task, table, summary.region)
        seconds += billed
        step = str(task.get("step", ""))
        by_step[step] = by_step.get(step, 0.0) + (spent or 0.0)
    regional = table["regions"].get(summary.region, {})
    return {"total": sum(by_step.values()), "by_step": by_step, "tasks": len(objects), "task_seconds": seconds,
            "currency": table.get("currency", "USD"),
            "prices": f"{summary.region}, {regional.get('date') or table.get('date')}"}
