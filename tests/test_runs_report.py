"""`yunpipe runs`, `yunpipe report` and `status --json`, against a deployed pipeline in moto whose
reports bucket holds a settled and an open run (tests/accounting_runs.py)."""
import json
import re

import accounting_runs as acct
import boto3
import pytest

from yunpipe import cli
from yunpipe.runtime.accounting import records


@pytest.fixture
def s3(moto, write_workflow):
    acct.deploy(write_workflow)
    return boto3.client("s3")


@pytest.fixture
def both(s3):
    return acct.write_settled(s3)


def run(argv, capsys):
    capsys.readouterr()
    status = cli.main(argv)
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def test_runs_lists_open_and_settled_runs_with_their_progress(s3, both, capsys):
    acct.write_open(s3)
    status, out, _ = run(["runs", "acct"], capsys)
    assert status == 0
    assert out.splitlines() == [
        f"{acct.OPEN}  submit  opened {acct.at(0, acct.OPENED)}  OPEN  5 input(s)",
        "    resize: 2 done, 0 failed, 1 retrying, 2 waiting",
        "    count: 1 done, 0 failed",
        f"{acct.SETTLED}  upload  opened 2026-12-07T13:00:00.000Z  settled 2026-12-07T13:02:30.000Z  20 input(s), "
        "cost USD 0.0123",
        "    resize: 18 done, 2 failed",
        "    count: 18 done, 0 failed",
    ]
    status, out, _ = run(["runs", "acct", "--json"], capsys)
    listed = {r["run"]: r for r in json.loads(out)}
    assert list(listed) == [acct.SETTLED, acct.OPEN]
    assert listed[acct.OPEN] | {"steps": None} == {
        "run": acct.OPEN, "kind": "submit", "opened_at": acct.at(0, acct.OPENED), "state": "open",
        "settled_at": None, "inputs": 5, "done": 3, "failed": 0, "retrying": 1, "waiting": 2, "steps": None,
        "cost": None, "skipped": []}
    assert listed[acct.OPEN]["steps"] == {"resize": {"done": 2, "failed": 0, "retrying": 1, "waiting": 2},
                                          "count": {"done": 1, "failed": 0, "retrying": 0}}
    assert (listed[acct.SETTLED]["state"], listed[acct.SETTLED]["done"], listed[acct.SETTLED]["failed"]) == \
        ("settled", 36, 2)
    assert listed[acct.SETTLED]["cost"] == {"total": 0.0123, "currency": "USD", "estimated": False}


def test_runs_of_a_pipeline_without_runs_says_how_one_opens(s3, capsys):
    status, out, _ = run(["runs", "acct"], capsys)
    assert status == 0 and "No runs of acct yet: `yunpipe upload` or `submit` opens one" in out
    assert run(["runs", "acct", "--json"], capsys)[1].strip() == "[]"


def test_report_of_a_settled_run_is_its_summary(s3, both, capsys):
    acct.write_open(s3)
    status, out, _ = run(["report", "acct", acct.SETTLED, "--json"], capsys)
    assert status == 0
    assert json.loads(out) == {**both, "open": False, "skipped": []}
    status, out, _ = run(["report", "acct", acct.SETTLED], capsys)
    lines = out.splitlines()
    assert lines[0] == (f"Run {acct.SETTLED} of acct (upload, opened 2026-12-07T13:00:00.000Z): settled at "
                        "2026-12-07T13:02:30.000Z, its files done 1 min 49 s after it opened")
    assert lines[1:4] == [
        "inputs: 20",
        "step resize: 18 ok, 1 failed, 1 oom; time p50 7.0 s, p95 9.0 s, max 9.0 s; peak memory p50 420 MiB, "
        "max 2048 MiB of 2048 MiB",
        "step count: 18 ok; time p50 2.0 s, p95 2.0 s, max 2.0 s; peak memory p50 68 MiB, max 77 MiB of 512 MiB"]
    assert "  resize: poison-1.tif: failed, exit 3 after 3 attempt(s): exit status 3" in lines
    assert "      ValueError: not a TIFF file" in lines
    assert "task-seconds: 348.0; cost: USD 0.0123" in lines


def test_report_of_an_open_run_is_the_summary_so_far_marked_open(s3, both, capsys):
    acct.write_open(s3)
    status, out, _ = run(["report", "acct"], capsys)  # the latest run: the open one
    assert status == 0
    # Opened ten minutes before this module was imported, which may be minutes before this test runs.
    assert re.match(re.escape(f"Run {acct.OPEN} of acct (submit, opened {acct.at(0, acct.OPENED)}): OPEN: still running, "
                              "these are the counts so far (") + r"\d+ min", out), out
    assert "step resize: 2 ok, 1 retrying, 2 waiting; time p50 4.0 s" in out
    status, out, _ = run(["report", "acct", "--json"], capsys)
    document = json.loads(out)
    assert (document["run"], document["open"], document["settled_at"], document["inputs"]) == (acct.OPEN, True, None, 5)
    resize = document["steps"]["resize"]
    assert {o: resize[o] for o in records.OUTCOMES} == {"ok": 2, "skipped": 0, "failed": 0, "timeout": 0, "oom": 0,
                                                         "interrupted": 0}
    # The final records' times, as settle counts them (not the try that timed out and will be tried again).
    assert resize["wall_seconds"] == {"p50": 4.0, "p95": 5.0, "max": 5.0}
    assert (document["jobs"], document["finished_at"], document["duration_seconds"]) == (3, acct.at(11, acct.OPENED), 11.0)
    assert resize["peak_memory_mib"] == {"p50": 350.0, "max": 380.0} and resize["memory_limit_mib"] == 2048
    assert document["failures"] == []
    # An open run's own field: the files still on their way.
    assert document["progress"] == {"resize": {"done": 2, "failed": 0, "retrying": 1, "waiting": 2},
                                    "count": {"done": 1, "failed": 0, "retrying": 0}}
    # Both tasks still run: their cost is counted up to now, and said to be an estimate.
    assert document["cost"]["estimated"] is True and document["cost"]["total"] > 0
    assert document["task_seconds"] >= 2 * 590  # two tasks, both about ten minutes old
    assert set(document["cost"]["by_step"]) == {"resize", "count"}
    assert document["skipped"] == []


def test_report_html_is_one_self_contained_file_with_its_charts(s3, both, tmp_path, capsys):
    page = tmp_path / "report.html"
    status, out, _ = run(["report", "acct", acct.SETTLED, "--html", str(page)], capsys)
    assert status == 0 and out.strip() == f"Report of run {acct.SETTLED} (settled) written to {page}"
    html = page.read_text()
    charts = re.findall(r'<svg class="chart" data-chart="(\w+)"', html)
    assert charts == ["outcomes", "durations", "timeline", "memory"]
    # Nothing to fetch: no script, no stylesheet or image from elsewhere (the SVG's xmlns is a name, not a fetch).
    assert "<script" not in html and "<img" not in html and "<link" not in html
    assert not re.search(r'(src|href)="(https?:)?//', html)
    assert "Settled" in html and "ValueError: not a TIFF file" in html and "limit 2048 MiB" in html
    assert not list(tmp_path.glob(".*partial"))


def test_report_html_of_an_open_run_says_it_is_open(s3, both, tmp_path, capsys):
    acct.write_open(s3)
    page = tmp_path / "open.html"
    status, out, _ = run(["report", "acct", "--html", str(page)], capsys)
    assert status == 0 and "(open, so far)" in out
    html = page.read_text()
    assert '<span class="state open">Open</span> still running' in html
    assert len(re.findall(r'<svg class="chart"', html)) == 4


def test_report_of_an_unknown_run_is_exit_2_with_a_did_you_mean(s3, both, capsys):
    status, _, err = run(["report", "acct", "20261207T130000Z-uplaod"], capsys)
    assert status == 2
    assert err.strip() == (f"error: no run '20261207T130000Z-uplaod' of pipeline 'acct'; did you mean '{acct.SETTLED}'? "
                           f"Runs: {acct.SETTLED}; `yunpipe runs acct` lists them")


def test_report_without_runs_and_of_an_unknown_pipeline_is_exit_2(s3, capsys):
    status, _, err = run(["report", "acct"], capsys)
    assert status == 2 and "pipeline 'acct' has no runs yet" in err
    for verb in (["report", "accct"], ["runs", "accct"]):
        status, _, err = run(verb, capsys)
        assert status == 2 and "no pipeline 'accct' set up from this machine" in err and "did you mean 'acct'?" in err


def test_report_and_runs_skip_malformed_and_missing_records_and_say_so(s3, both, tmp_path, capsys):
    acct.write_open(s3)
    base = records.run_prefix("acct", acct.OPEN)
    acct.put(s3, base + "ends/resize/d.tif.json", b"{not json")
    acct.put(s3, base + "ends/resize/e.tif.json", {"step": "resize", "key": "e.tif", "outcome": "exploded"})
    acct.put(s3, base + "ends/count/b.tif.json", {"step": "count", "key": "b.tif", "outcome": "ok",
                                                  "wall_seconds": "slow"})
    acct.put(s3, base + "ends/count/c.tif.json", {"step": "count", "key": "c.tif", "outcome": "ok",
                                                  "task": {"id": "t", "started_at": "yesterday", "cpu": 256,
                                                           "memory_mib": 512}})
    acct.put(s3, base + "ends/count/d.tif.json", b"[1, 2]")
    s3.delete_object(Bucket=acct.REPORTS, Key=records.manifest_key("acct", acct.OPEN))
    # A settled run whose summary is not JSON is reported from its records instead.
    acct.put(s3, records.summary_key("acct", acct.SETTLED), b"\xff\xfe")
    # A task record gone bad.
    bad_task = records.task_key("acct", "count", acct.task("count", 1, 0, None)["id"])
    acct.put(s3, bad_task, {"id": 7})
    expected = [
        {"key": base + "ends/count/b.tif.json", "why": "wall_seconds 'slow' is not a number"},
        {"key": base + "ends/count/c.tif.json", "why": "task: started_at 'yesterday' is not an ISO 8601 time"},
        {"key": base + "ends/count/d.tif.json", "why": "not a JSON object"},
        {"key": base + "ends/resize/d.tif.json", "why": "not valid JSON (Expecting property name enclosed in double "
                                                       "quotes: line 1 column 2 (char 1))"},
        {"key": base + "ends/resize/e.tif.json",
         "why": "outcome 'exploded' is not one of ok, skipped, failed, timeout, oom, interrupted"},
        {"key": base + "manifest.json", "why": "missing"},
    ]
    status, out, _ = run(["report", "acct", acct.OPEN, "--json"], capsys)
    assert status == 0
    document = json.loads(out)
    assert document["skipped"] == expected
    assert document["steps"]["resize"]["ok"] == 2 and document["kind"] is None
    status, out, _ = run(["report", "acct", acct.OPEN], capsys)
    assert status == 0 and "skipped 6 record(s) that could not be read:" in out
    assert f"  {base}manifest.json: missing" in out.splitlines()
    status, out, _ = run(["runs", "acct"], capsys)
    assert status == 0 and f"    skipped 6 unreadable record(s): `yunpipe report acct {acct.OPEN}` names them" in out
    assert "    skipped 2 unreadable record(s)" in out  # the settled run's summary, and its bad task record
    status, out, _ = run(["report", "acct", acct.SETTLED], capsys)
    assert status == 0 and "settled, but its summary cannot be read: these counts are from its records" in out
    assert "step resize: 18 ok, 1 failed, 1 oom" in out  # the same counts, from the records
    page = tmp_path / "r.html"
    assert run(["report", "acct", acct.SETTLED, "--html", str(page)], capsys)[0] == 0
    html = page.read_text()
    assert "Records skipped (2)" in html and "not valid JSON" in html and f"{bad_task}</code>: no id" in html


def read_all(capsys) -> tuple:
    """What runs, report and cost say of both runs, as JSON (an open run's report without its
    figures counted up to now)."""
    listed = json.loads(run(["runs", "acct", "--json"], capsys)[1])
    settled = json.loads(run(["report", "acct", acct.SETTLED, "--json"], capsys)[1])
    opened = json.loads(run(["report", "acct", acct.OPEN, "--json"], capsys)[1])
    spent = json.loads(run(["cost", "acct", "--run", acct.SETTLED, "--json"], capsys)[1])
    return listed, settled, {k: opened[k] for k in ("steps", "progress", "jobs", "finished_at", "skipped")}, spent


def test_done_jobs_recorded_in_pages_count_as_their_single_records(s3, both, capsys):
    acct.write_open(s3)
    # The settled run's summary unreadable: its report and cost come from its records too.
    acct.put(s3, records.summary_key("acct", acct.SETTLED), b"\xff\xfe")
    singles = read_all(capsys)
    pages = acct.into_pages(s3, acct.SETTLED) + acct.into_pages(s3, acct.OPEN)
    # Settled: resize's two tasks' 9 each, count's 18 in a page of 10 and one of 8; open: one a step.
    assert len(pages) == 6
    assert read_all(capsys) == singles
    status, out, _ = run(["report", "acct", acct.SETTLED], capsys)
    assert status == 0 and "step resize: 18 ok, 1 failed, 1 oom" in out


def test_a_job_a_page_repeats_counts_once_as_its_last_record(s3, both, capsys):
    """A worker stopped after writing its page, before deleting its messages: the file is done again
    (found done: skipped) and recorded again; its last record stands for it, as the last write of
    its ends/ record did."""
    acct.put(s3, records.summary_key("acct", acct.SETTLED), b"\xff\xfe")
    acct.into_pages(s3, acct.SETTLED)
    again = acct.task("resize", 3, 140, None)
    repeat = acct.job(acct.SETTLED, "resize", "img-00.tif", again, 141, 0.5, 50, outcome="skipped")
    acct.put(s3, records.page_key("acct", acct.SETTLED, "resize", again["id"], 1, 1),
             {"version": records.VERSION, "records": [repeat]})
    status, out, _ = run(["report", "acct", acct.SETTLED, "--json"], capsys)
    document = json.loads(out)
    assert status == 0
    assert (document["steps"]["resize"]["ok"], document["steps"]["resize"]["skipped"], document["jobs"]) == (17, 1, 38)
    listed = json.loads(run(["runs", "acct", "--json"], capsys)[1])
    assert listed[0]["steps"]["resize"] == {"done": 18, "failed": 2, "retrying": 0, "waiting": 0}


def test_a_malformed_page_is_skipped_and_named_and_its_good_records_still_count(s3, both, capsys):
    acct.write_open(s3)
    acct.into_pages(s3, acct.OPEN)
    owner = acct.task("resize", 7, 0, None, acct.OPENED)
    good = acct.job(acct.OPEN, "resize", "d.tif", owner, 14, 3.0, 300, base=acct.OPENED)
    failed = acct.job(acct.OPEN, "resize", "e.tif", owner, 18, 1.0, 100, outcome="failed", base=acct.OPENED)
    bad = [records.page_key("acct", acct.OPEN, "resize", "bad", serial, 3) for serial in (1, 2, 3)]
    acct.put(s3, bad[0], b"{not json")
    acct.put(s3, bad[1], {"version": records.VERSION, "records": "d.tif"})
    acct.put(s3, bad[2], {"version": records.VERSION,
                          "records": [good, {"step": "resize", "key": "e.tif", "outcome": "exploded"}, failed]})
    status, out, _ = run(["report", "acct", acct.OPEN, "--json"], capsys)
    assert status == 0
    document = json.loads(out)
    assert document["skipped"] == [
        {"key": bad[0], "why": "not valid JSON (Expecting property name enclosed in double quotes: line 1 column 2 "
                               "(char 1))"},
        {"key": bad[1], "why": "a page is a JSON object whose records are a list of job records"},
        {"key": bad[2], "why": "record 2: outcome 'exploded' is not one of ok, skipped, failed, timeout, oom, "
                               "interrupted"},
        {"key": bad[2], "why": "record 3: outcome 'failed' in a page, which holds ok and skipped jobs only"},
    ]
    # d.tif's record, the good one of its page, counts.
    assert document["progress"]["resize"] == {"done": 3, "failed": 0, "retrying": 1, "waiting": 1}
    status, out, _ = run(["runs", "acct"], capsys)
    assert status == 0 and "    resize: 3 done, 0 failed, 1 retrying, 1 waiting" in out
    assert f"    skipped 4 unreadable record(s): `yunpipe report acct {acct.OPEN}` names them" in out


def test_status_json(s3, capsys):
    sqs = boto3.client("sqs")
    url = sqs.get_queue_url(QueueName="yunpipe-acct-resize-queue")["QueueUrl"]
    sqs.send_message(QueueUrl=url, MessageBody="{}")
    status, out, _ = run(["status", "acct", "--json"], capsys)
    assert status == 0
    document = json.loads(out)
    assert (document["pipeline"], document["input_bucket"], document["queued"], document["running"]) == \
        ("acct", "acct-in-bucket", 1, 0)
    assert [(s["name"], s["waiting"], s["done"], s["not_started"]) for s in document["steps"]] == [
        ("resize", 1, 0, None), ("count", 0, 0, None)]


def test_a_drop_run_counts_the_files_its_first_step_took(s3, capsys):
    """A drop-run has no list of inputs (manifest inputs null): nothing is known to wait."""
    run_name = records.run_id("drop", acct.OPENED)
    acct.put(s3, records.manifest_key("acct", run_name), {
        "version": 1, "run": run_name, "pipeline": "acct", "kind": "drop", "opened_at": acct.at(0, acct.OPENED),
        "inputs": None, "closes_after": 300, "by": "s3"})
    owner = acct.task("resize", 3, 0, None, acct.OPENED)
    acct.write_jobs(s3, [acct.job(run_name, "resize", key, owner, 1, 2.0, 100, base=acct.OPENED)
                         for key in ("x.tif", "y.tif")], [])
    status, out, _ = run(["runs", "acct"], capsys)
    assert status == 0 and out.splitlines()[:3] == [
        f"{run_name}  drop  opened {acct.at(0, acct.OPENED)}  OPEN  ? input(s)",
        "    resize: 2 done, 0 failed", "    count: 0 done, 0 failed"]
    document = json.loads(run(["report", "acct", run_name, "--json"], capsys)[1])
    assert (document["kind"], document["inputs"], document["steps"]["resize"]["ok"]) == ("drop", 2, 2)


def test_the_html_report_shows_the_first_200_failures_and_says_how_many_more(s3, both, tmp_path, capsys):
    many = {**both, "failures": [{**both["failures"][1], "key": f"bad-{n:03d}.tif"} for n in range(230)]}
    acct.put(s3, records.summary_key("acct", acct.SETTLED), many)
    page = tmp_path / "many.html"
    assert run(["report", "acct", acct.SETTLED, "--html", str(page)], capsys)[0] == 0
    html = page.read_text()
    assert "Failures (230)" in html and "bad-199.tif" in html and "bad-200.tif" not in html
    assert f"And 30 more: <code>yunpipe report acct {acct.SETTLED} --json</code> lists every one." in html


@pytest.mark.parametrize("where", ["no/such/folder/r.html", "."])
def test_report_html_to_a_missing_folder_or_a_folder_is_exit_2_before_reading_anything(moto, where, capsys):
    """Checked before the pipeline is looked up: no pipeline at all here."""
    status, _, err = run(["report", "acct", "--html", where], capsys)
    assert status == 2
    assert err.strip() == f"error: report: --html: expected a file in an existing folder, got '{where}'"
