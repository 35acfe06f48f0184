"""A pipeline's runs as the reports bucket records them (runtime/accounting/records.py's layout):
which are open and which settled, and how far each has come. `yunpipe runs` prints it; `report`
and the dashboard read a run's records through it.

A record that is missing or malformed is never fatal: it is left out and named in `skipped`
(the S3 key and why), so one bad object cannot hide the rest of a run. A page of done jobs'
records counts as the ends/ records it stands for, and one that cannot be read is skipped whole.
"""
import difflib
import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from yunpipe.aws.reader import Reader
from yunpipe.engine.graph import INPUT, Layout, chain_of
from yunpipe.engine.state import PipelineSummary
from yunpipe.errors import NotFoundError
from yunpipe.runtime.accounting import records

FAILED_OUTCOMES = tuple(o for o in records.OUTCOMES if o not in records.DONE_OUTCOMES and o != "interrupted")
# Records are read this many at a time: a run of thousands of files has as many records, and
# each is one small GET.
READERS = 16
# The folders of a run's job records: single records (ends/, tries/) and pages of done jobs' records.
FOLDERS = ("ends/", "tries/", "pages/")
_NUMBERS = ("attempt", "exit_code", "wall_seconds", "cpu_seconds", "peak_memory_mib", "memory_limit_mib",
            "bytes_in", "bytes_out")


@dataclass
class RunRecords:
    """One run's records as read: the ones that could not be read are in `skipped`. `settled`:
    its summary.json is there (`summary` is None when it could not be read)."""
    run: str
    manifest: dict | None
    settled: bool
    summary: dict | None
    jobs: list[dict] = field(default_factory=list)  # ends/ and tries/ records, and the pages' records
    tasks: list[dict] = field(default_factory=list)  # the task records of the tasks that ran its jobs
    skipped: list[dict] = field(default_factory=list)  # [{"key", "why"}]


def list_runs(reader: Reader, summary: PipelineSummary) -> list[str]:
    """Every run of the pipeline, oldest first (a run's name starts with when it opened): one
    listing of the runs' folders, not of their records, which may be millions."""
    base = f"runs/{summary.pipeline}/"
    folders = reader.pages("s3", "list_objects_v2", "CommonPrefixes", ("NoSuchBucket",), Bucket=summary.reports_bucket,
                           Prefix=base, Delimiter="/")
    names = {folder["Prefix"][len(base):].rstrip("/") for folder in folders}
    return sorted(names - {records.open_prefix(summary.pipeline)[len(base):].rstrip("/")})


def require_run(runs: list[str], pipeline: str, run: str | None) -> str:
    """The run named (the latest when None), or exit 2 naming the runs there are."""
    if not runs:
        raise NotFoundError(f"pipeline '{pipeline}' has no runs yet: `yunpipe upload` or `submit` opens one, "
                            "and files other S3 clients drop join a drop-run")
    if run is None:
        return runs[-1]
    if run in runs:
        return run
    close = difflib.get_close_matches(run, runs, n=1, cutoff=0.5)
    hint = f"; did you mean '{close[0]}'?" if close else ""
    shown = runs[-5:]
    more = f" (the newest {len(shown)} of {len(runs)})" if len(runs) > len(shown) else ""
    raise NotFoundError(f"no run '{run}' of pipeline '{pipeline}'{hint} Runs{more}: {', '.join(shown)}; "
                        f"`yunpipe runs {pipeline}` lists them")


def read_json(reader: Reader, bucket: str, key: str, skipped: list[dict], missing_ok: bool = False) -> Any:
    """The object's JSON, or None with the reason added to `skipped` (not when it is missing and
    that is fine: a task still running has no record yet)."""
    answer = reader.read("s3", "get_object", ("NoSuchKey",), Bucket=bucket, Key=key)
    if answer is None:
        if not missing_ok:
            skipped.append({"key": key, "why": "missing"})
        return None
    try:
        return json.loads(answer["Body"].read())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        skipped.append({"key": key, "why": f"not valid JSON ({error})"})
        return None


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def mapping(value: Any) -> dict[str, Any]:
    """The value when it is a JSON object, else an empty one (a summary may have been written wrong)."""
    return value if isinstance(value, dict) else {}


def _time_problem(record: dict, name: str, required: bool = False) -> str | None:
    value = record.get(name)
    if value is None:
        return f"no {name}" if required else None
    try:
        records.parse_iso(value)
    except (AttributeError, TypeError, ValueError):  # AttributeError: not a string
        return f"{name} {value!r} is not an ISO 8601 time"
    return None


def job_problem(record: Any) -> str | None:
    """Why a job record cannot be used (records.JOB_FIELDS), or None."""
    if not isinstance(record, dict):
        return "not a JSON object"
    for name in ("step", "key"):
        if not isinstance(record.get(name), str) or not record[name]:
            return f"no {name}"
    if record.get("outcome") not in records.OUTCOMES:
        return f"outcome {record.get('outcome')!r} is not one of {', '.join(records.OUTCOMES)}"
    bad = next((n for n in _NUMBERS if record.get(n) is not None and not is_number(record[n])), None)
    if bad:
        return f"{bad} {record[bad]!r} is not a number"
    if record.get("task") is not None:
        why = task_problem(record["task"])
        if why:
            return f"task: {why}"
    return _time_problem(record, "started_at") or _time_problem(record, "finished_at")


def page_job_problem(record: Any) -> str | None:
    """Why a page's job record cannot be used, or None: a page holds done jobs only."""
    why = job_problem(record)
    if why is None and record["outcome"] not in records.DONE_OUTCOMES:
        return f"outcome {record['outcome']!r} in a page, which holds {' and '.join(records.DONE_OUTCOMES)} jobs only"
    return why


def page_jobs(page: Any) -> tuple[list[dict], list[str]]:
    """The usable job records of a page's JSON, and why each other one cannot be used (or, with no
    records, why the page cannot be)."""
    try:
        found = records.page_records(page)
    except ValueError as error:
        return [], [str(error)]
    jobs, problems = [], []
    for number, record in enumerate(found, 1):
        why = page_job_problem(record)
        if why is None:
            jobs.append(record)
        else:
            problems.append(f"record {number}: {why}")
    return jobs, problems


def task_problem(record: Any) -> str | None:
    """Why a task record cannot be used (records.TASK_FIELDS and the task record's own), or None."""
    if not isinstance(record, dict):
        return "not a JSON object"
    if not isinstance(record.get("id"), str) or not record["id"]:
        return "no id"
    bad = next((n for n in ("cpu", "memory_mib") if not is_number(record.get(n))), None)
    if bad:
        return f"{bad} {record.get(bad)!r} is not a number"
    return _time_problem(record, "started_at", required=True) or _time_problem(record, "stopped_at")


def manifest_problem(manifest: Any) -> str | None:
    if not isinstance(manifest, dict):
        return "not a JSON object"
    if manifest.get("kind") not in records.RUN_KINDS:
        return f"kind {manifest.get('kind')!r} is not one of {', '.join(records.RUN_KINDS)}"
    inputs = manifest.get("inputs")
    if inputs is not None and not (isinstance(inputs, list) and all(isinstance(i, dict) for i in inputs)):
        return "inputs is neither a list of objects nor null"
    return _time_problem(manifest, "opened_at", required=True)


def _checked(reader: Reader, bucket: str, key: str, problem: Any, skipped: list[dict],
             missing_ok: bool = False) -> dict | None:
    record = read_json(reader, bucket, key, skipped, missing_ok)
    why = problem(record) if record is not None else None
    if why:
        skipped.append({"key": key, "why": why})
        return None
    return record


def _read_all(reader: Reader, bucket: str, keys: list[str], problem: Any, skipped: list[dict],
              missing_ok: bool = False) -> list[dict]:
    with ThreadPoolExecutor(READERS) as pool:
        found = list(pool.map(lambda key: _checked(reader, bucket, key, problem, skipped, missing_ok), keys))
    return [record for record in found if record is not None]


def _read_page(reader: Reader, bucket: str, key: str, skipped: list[dict]) -> list[dict]:
    page = read_json(reader, bucket, key, skipped)
    if page is None:
        return []
    jobs, problems = page_jobs(page)
    skipped.extend({"key": key, "why": why} for why in problems)
    return jobs


def list_jobs(reader: Reader, summary: PipelineSummary, run: str) -> dict[str, list[str]]:
    """The keys of the run's job records by folder (FOLDERS): one listing of the run."""
    base = records.run_prefix(summary.pipeline, run)
    keys: dict[str, list[str]] = {folder: [] for folder in FOLDERS}
    for obj in reader.pages("s3", "list_objects_v2", "Contents", ("NoSuchBucket",), Bucket=summary.reports_bucket,
                            Prefix=base):
        folder = obj["Key"][len(base):].partition("/")[0] + "/"
        if folder in keys:
            keys[folder].append(obj["Key"])
    return keys


def ended_count(reader: Reader, summary: PipelineSummary, run: str) -> int:
    """How many of the run's jobs have ended, from a listing alone: its ends/ records and its pages'
    (each page's count is in its key; an object there that is not a page's counts none)."""
    keys, prefix = list_jobs(reader, summary, run), records.page_prefix(summary.pipeline, run)
    return len(keys["ends/"]) + sum(_page_count(prefix, key) for key in keys["pages/"])


def _page_count(prefix: str, key: str) -> int:
    try:
        return records.page_parts(prefix, key)[1]
    except ValueError:
        return 0


def read_run(reader: Reader, summary: PipelineSummary, run: str) -> RunRecords:
    """A run's manifest and, when it has settled, its summary (read_jobs reads the rest)."""
    bucket, skipped = summary.reports_bucket, list[dict]()
    manifest = _checked(reader, bucket, records.manifest_key(summary.pipeline, run), manifest_problem, skipped)
    key = records.summary_key(summary.pipeline, run)
    # Settled when its summary is there, whether or not it can be read.
    settled = reader.read("s3", "head_object", ("404", "NoSuchKey", "NotFound"), Bucket=bucket, Key=key) is not None
    document = read_json(reader, bucket, key, skipped) if settled else None
    if document is not None and not isinstance(document, dict):
        skipped.append({"key": key, "why": "not a JSON object"})
        document = None
    return RunRecords(run, manifest, settled, document, skipped=skipped)


def read_jobs(reader: Reader, summary: PipelineSummary, found: RunRecords) -> RunRecords:
    """The run's job records (single ones and the pages'), and the records of the tasks that ran
    them (a task still running has none yet: its jobs' `task` field stands for it)."""
    bucket, keys = summary.reports_bucket, list_jobs(reader, summary, found.run)
    singles = _read_all(reader, bucket, keys["ends/"] + keys["tries/"], job_problem, found.skipped)
    with ThreadPoolExecutor(READERS) as pool:
        pages = list(pool.map(lambda key: _read_page(reader, bucket, key, found.skipped), keys["pages/"]))
    found.jobs = one_end_each(singles + [job for page in pages for job in page])
    ran = {(job.get("task") or {}).get("id"): job["step"] for job in found.jobs}
    task_keys = sorted(records.task_key(summary.pipeline, step, task_id) for task_id, step in ran.items()
                       if isinstance(task_id, str) and task_id)
    found.tasks = _read_all(reader, bucket, task_keys, task_problem, found.skipped, missing_ok=True)
    found.skipped.sort(key=lambda s: s["key"])
    return found


def ended(job: dict) -> bool:
    """Whether the job's file is done with its step (records.job_record_key's ends/)."""
    return job["outcome"] in records.DONE_OUTCOMES or (bool(job.get("final")) and job["outcome"] != "interrupted")


def one_end_each(jobs: list[dict]) -> list[dict]:
    """The jobs with one ended record per step and file, the last to finish, as its ends/ record was
    the last written: pages can repeat a job (a worker stopped after writing its page, before
    deleting its messages, leaves those files to be done again, and recorded again as skipped)."""
    last = {(job["step"], job.get("key")): job for job in sorted(filter(ended, jobs), key=_finish)}
    return [job for job in jobs if not ended(job) or last[(job["step"], job.get("key"))] is job]


def _finish(job: dict) -> float:
    # Timestamps, not datetimes: a record's time may lack an offset, and the dashboard's are unchecked.
    try:
        return records.parse_iso(job["finished_at"]).timestamp()
    except (AttributeError, KeyError, TypeError, ValueError):
        return float("-inf")  # it does not say: the earliest


def entry_steps(summary: PipelineSummary) -> dict[str, tuple[str, str]]:
    """The steps each uploaded file goes to first, with the key filter (prefix, suffix) each applies;
    a gather step runs once for many files, so it has no per-file progress."""
    layout = Layout.from_document(summary.layout) if summary.layout else chain_of(summary)
    return {p.step: (p.prefix, p.suffix) for p in layout.steps
            if any(s.step == INPUT for s in p.sources) and not p.gather}


def step_progress(summary: PipelineSummary, found: RunRecords) -> dict[str, dict[str, int]]:
    """Per step: jobs done (ok, skipped), failed (dead-lettered), retrying (a try failed, no end
    yet); for a step that takes the uploads, the manifest's inputs it has not tried yet (waiting)."""
    steps: dict[str, dict[str, int]] = {}
    for name in [s.name for s in summary.steps] + [j["step"] for j in found.jobs]:
        steps.setdefault(name, {"done": 0, "failed": 0, "retrying": 0})
    finished: dict[str, set[str]] = {name: set() for name in steps}
    for job in filter(ended, found.jobs):
        if job["key"] not in finished[job["step"]]:
            finished[job["step"]].add(job["key"])
            steps[job["step"]]["done" if job["outcome"] in records.DONE_OUTCOMES else "failed"] += 1
    trying = {(j["step"], j["key"]) for j in found.jobs if j["key"] not in finished[j["step"]]}
    for step, _ in trying:
        steps[step]["retrying"] += 1
    inputs = (found.manifest or {}).get("inputs")
    for step, (prefix, suffix) in entry_steps(summary).items():
        if inputs is not None and step in steps:
            wanted = {str(i.get("key")) for i in inputs
                      if str(i.get("key", "")).startswith(prefix) and str(i.get("key", "")).endswith(suffix)}
            steps[step]["waiting"] = len(wanted - {j["key"] for j in found.jobs if j["step"] == step})
    return steps


def settled_progress(settled: dict) -> dict[str, dict[str, int]]:
    """The same counts from a settled run's summary (its steps' outcome counts)."""
    steps = {}
    for step, counts in mapping(settled.get("steps")).items():
        number = {o: int(counts[o]) if is_number(mapping(counts).get(o)) else 0 for o in records.OUTCOMES}
        steps[step] = {"done": sum(number[o] for o in records.DONE_OUTCOMES),
                       "failed": sum(number[o] for o in FAILED_OUTCOMES), "retrying": 0}
    return steps


def progress(reader: Reader, summary: PipelineSummary, run: str) -> dict[str, Any]:
    """One run's line of `yunpipe runs`: a settled run from its summary alone, an open one (or
    one whose summary cannot be read) from its job records against its manifest."""
    found = read_run(reader, summary, run)
    if found.summary is not None:
        steps = settled_progress(found.summary)
    else:
        steps = step_progress(summary, read_jobs(reader, summary, found))
    manifest, settled = found.manifest or {}, found.summary or {}
    inputs = manifest.get("inputs")
    waiting = [c["waiting"] for c in steps.values() if "waiting" in c]
    cost = settled.get("cost") if isinstance(settled.get("cost"), dict) else None
    return {
        "run": run, "kind": manifest.get("kind") or settled.get("kind"),
        "opened_at": manifest.get("opened_at") or settled.get("opened_at"),
        "state": "settled" if found.settled else "open", "settled_at": settled.get("settled_at"),
        "inputs": len(inputs) if isinstance(inputs, list) else settled.get("inputs"),
        "done": sum(c["done"] for c in steps.values()), "failed": sum(c["failed"] for c in steps.values()),
        "retrying": sum(c["retrying"] for c in steps.values()),
        "waiting": 0 if found.settled else (sum(waiting) if waiting and inputs is not None else None),
        "steps": steps,
        "cost": {k: cost.get(k) for k in ("total", "currency", "estimated")} if cost else None,
        "skipped": found.skipped,
    }


def all_progress(reader: Reader, summary: PipelineSummary) -> list[dict[str, Any]]:
    """Every run's progress, oldest first; the runs are read side by side (three small reads each)."""
    with ThreadPoolExecutor(READERS) as pool:
        return list(pool.map(lambda run: progress(reader, summary, run), list_runs(reader, summary)))


def render(summary: PipelineSummary, runs: list[dict[str, Any]]) -> str:
    if not runs:
        return (f"No runs of {summary.pipeline} yet: `yunpipe upload` or `submit` opens one, and files other "
                "S3 clients drop join a drop-run")
    lines = []
    for run in reversed(runs):  # the newest first, as a person looks for it
        inputs = "? input(s)" if run["inputs"] is None else f"{run['inputs']} input(s)"
        state = f"settled {run['settled_at'] or '?'}" if run["state"] == "settled" else "OPEN"
        cost = run["cost"]
        money = f", cost {cost.get('currency') or 'USD'} {cost['total']:.4f}" \
            if cost and is_number(cost.get("total")) else ""
        lines.append(f"{run['run']}  {run['kind'] or '?'}  opened {run['opened_at'] or '?'}  {state}  "
                     f"{inputs}{money}")
        for step, counts in run["steps"].items():
            waiting = f", {counts['waiting']} waiting" if "waiting" in counts else ""
            retrying = f", {counts['retrying']} retrying" if counts["retrying"] else ""
            lines.append(f"    {step}: {counts['done']} done, {counts['failed']} failed{retrying}{waiting}")
        if run["skipped"]:
            lines.append(f"    skipped {len(run['skipped'])} unreadable record(s): `yunpipe report "
                         f"{summary.pipeline} {run['run']}` names them")
    return "\n".join(lines)
