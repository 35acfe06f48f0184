"""`yunpipe ui` on moto: who may ask it anything (the token, the Host, actions only with the token
in their form), what no page holds (credentials), bad requests, and the pages of a run, a result
and a failure drawn from the records the workers write (runtime/accounting/records.py), the run
page in a real headless browser (its screenshot: tests/artifacts/ui-run.png)."""
import html
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import urllib.error
import urllib.request

import boto3
import pytest
from helpers import single_run
from selenium.webdriver.common.by import By
from ui_browser import page, screenshot

from yunpipe import cli
from yunpipe.aws.facade import is_mutating, watch_calls
from yunpipe.engine.state import PipelineState, PipelineSummary, require_summary
from yunpipe.runtime.accounting import records, runs
from yunpipe.ui import files, pictures, pipelines
from yunpipe.ui.app import create_app

PORT = 4760
ROOT = f"http://127.0.0.1:{PORT}"
TOKEN = "a-token-for-the-tests"
RUN = "20261207T131500Z-upload"


@pytest.fixture(autouse=True)
def fresh_pages(monkeypatch):
    """Each test's pipeline is new: nothing read for an earlier test's (of the same name) is reused."""
    monkeypatch.setattr(pipelines, "_slow", {})


@pytest.fixture
def deployed(moto, change123, write_workflow):
    assert cli.setup_pipe_main(["-f", write_workflow(single_run())]) == 0
    return require_summary("demo")


@pytest.fixture
def client(deployed):
    return create_app(TOKEN, PORT).test_client()


def put(bucket: str, key: str, document: dict) -> None:
    boto3.client("s3").put_object(Bucket=bucket, Key=key, Body=json.dumps(document).encode())


def job(step: str, key: str, outcome: str, wall: float, **fields) -> dict:
    return records.job_record(
        pipeline="demo", run=RUN, step=step, key=key, inputs=[{"bucket": "demo-in-bucket", "key": key, "etag": "e"}],
        attempt=fields.pop("attempt", 1), final=fields.pop("final", True), outcome=outcome, started_at="2026-12-07T13:15:02Z",
        finished_at="2026-12-07T13:15:09Z", wall_seconds=wall, cpu_seconds=wall / 2, peak_memory_mib=60.0,
        memory_limit_mib=512, task={"id": "task-1", "started_at": "2026-12-07T13:15:01Z", "cpu": 256,
                                    "memory_mib": 512, "capacity": "FARGATE"}, **fields)


@pytest.fixture
def a_run(deployed):
    """An upload run of 4 files through the one step: 2 done, 1 dead-lettered (oom), 1 whose first
    try failed and that waits for its next; its task has stopped and is recorded."""
    bucket, step = deployed.reports_bucket, deployed.steps[0].name
    inputs = [{"bucket": "demo-in-bucket", "key": f"f{i}.txt"} for i in range(4)]
    runs.write_manifest(boto3.client("s3"), bucket, "demo", {
        "version": 1, "run": RUN, "pipeline": "demo", "kind": "upload", "opened_at": "2026-12-07T13:15:00Z",
        "inputs": inputs, "closes_after": None, "by": "yunpipe upload"})
    for record in (job(step, "f0.txt", "ok", 2.0), job(step, "f1.txt", "ok", 4.0),
                   job(step, "f2.txt", "oom", 7.0, reason="oom", exit_code=137, log_tail="Killed: out of memory",
                       report=f"failures/demo/{step}/f2.txt/attempt-1.json"),
                   job(step, "f3.txt", "failed", 1.0, final=False, reason="nonzero_exit", exit_code=1)):
        put(bucket, records.job_record_key(record), record)
    put(bucket, records.task_key("demo", step, "task-1"), {
        "id": "task-1", "started_at": "2026-12-07T13:15:01Z", "cpu": 256, "memory_mib": 512, "capacity": "FARGATE",
        "pipeline": "demo", "step": step, "stopped_at": "2026-12-07T13:17:01Z", "jobs": 4,
        "job_seconds": {RUN: 14.0}, "exit": "idle"})
    return deployed


def test_a_request_without_the_token_is_refused(client):
    assert client.get("/", base_url=ROOT).status_code == 403
    assert client.get("/?token=wrong", base_url=ROOT).status_code == 403
    assert client.get("/static/ui.js", base_url=ROOT).status_code == 403


def test_the_token_in_the_url_sets_a_cookie_the_pages_own_requests_carry(client):
    first = client.get(f"/?token={TOKEN}", base_url=ROOT)
    assert first.status_code == 200
    assert re.search(r"HttpOnly", first.headers["Set-Cookie"]) and "SameSite=Strict" in first.headers["Set-Cookie"]
    assert client.get("/pipelines/demo/live", base_url=ROOT).status_code == 200


def test_another_host_is_refused_even_with_the_token(client):
    """A page of another site that points its name at 127.0.0.1 (DNS rebinding) sends its own Host."""
    assert client.get(f"/?token={TOKEN}", base_url=f"http://evil.example:{PORT}").status_code == 403
    assert client.get(f"/?token={TOKEN}", base_url="http://127.0.0.1:1").status_code == 403


def test_an_action_needs_the_token_in_its_form_not_only_the_cookie(client, deployed):
    step = deployed.steps[0].name
    client.get(f"/?token={TOKEN}", base_url=ROOT)
    assert client.post(f"/pipelines/demo/steps/{step}/retry", base_url=ROOT).status_code == 403
    assert client.post(f"/pipelines/demo/steps/{step}/retry?token={TOKEN}", base_url=ROOT).status_code == 403
    confirm = client.get(f"/pipelines/demo/steps/{step}/retry", base_url=ROOT)
    assert f'name="token" value="{TOKEN}"' in confirm.text
    done = client.post(f"/pipelines/demo/steps/{step}/retry", data={"token": TOKEN}, base_url=ROOT)
    assert done.status_code == 200
    assert "moved 0 message(s)" in done.text


def test_no_page_holds_a_credential(client, a_run, monkeypatch):
    client.get(f"/?token={TOKEN}", base_url=ROOT)
    secret = "testing"  # the fixture's AWS_SECRET_ACCESS_KEY and key id
    for path in ("/", "/pipelines/demo", f"/pipelines/demo/runs/{RUN}", "/pipelines/demo/results"):
        answer = client.get(path, base_url=ROOT)
        assert answer.status_code == 200, path
        assert not re.search(rf"\b{secret}\b", answer.text), path
        assert "X-Amz-Credential" not in answer.text and "Signature=" not in answer.text, path


@pytest.mark.parametrize(("path", "code", "says"), [
    ("/pipelines/nope", 404, "no pipeline 'nope' set up from this machine"),
    (f"/pipelines/demo/runs/{RUN}-2", 404, f"no run '{RUN}-2' of pipeline 'demo'"),
    ("/pipelines/demo/failure?report=runs/demo/drop.json", 404, "is not a failure report of pipeline demo"),
    ("/pipelines/demo/failure?report=failures/demo/x/none.txt/attempt-1.json", 404, "no failure report"),
    ("/pipelines/demo/results/download?key=none.txt", 404, "no result s3://demo-out-bucket/none.txt"),
    ("/pipelines/demo/results?step=nope", 400, "--step: expected one of the pipeline's steps (change123-s3)"),
    ("/pipelines/demo/steps/nope/retry", 400, "--step: expected one of the pipeline's steps (change123-s3)"),
])
def test_what_is_not_there_or_not_valid_is_refused_saying_so(client, deployed, path, code, says):
    answer = client.get(path + ("&" if "?" in path else "?") + f"token={TOKEN}", base_url=ROOT)
    assert answer.status_code == code, answer.text
    assert says in html.unescape(answer.text)


def test_a_result_downloads_through_the_dashboard_with_its_provenance_listed(client, deployed):
    s3 = boto3.client("s3")
    s3.put_object(Bucket="demo-out-bucket", Key="sub/r é.txt", Body=b"result bytes",
                  Metadata={"yunpipe-step": "change123-s3", "yunpipe-input": "s3://demo-in-bucket/r%20%C3%A9.txt"})
    listing = client.get(f"/pipelines/demo/results?token={TOKEN}", base_url=ROOT).text
    assert "s3://demo-in-bucket/r é.txt" in listing
    got = client.get("/pipelines/demo/results/download", query_string={"key": "sub/r é.txt"}, base_url=ROOT)
    assert got.data == b"result bytes"
    assert got.headers["Content-Disposition"] == 'attachment; filename="r _.txt"'


def test_the_ui_command_refuses_an_unknown_pipeline_and_a_bad_port(deployed, capsys):
    assert cli.main(["ui", "nope", "--no-browser"]) == 2
    assert "no pipeline 'nope'" in capsys.readouterr().err
    assert cli.main(["ui", "--port", "70000", "--no-browser"]) == 2
    assert "--port: expected a port from 0" in capsys.readouterr().err


def test_the_run_page_reports_an_open_run_from_its_records(a_run, board, browser):
    step = a_run.steps[0].name
    browser.get(page(board, "/pipelines/demo"))
    run_row = browser.find_element(By.CSS_SELECTOR, f'#runs tr[data-run="{RUN}"]')
    assert "2/4, 1 failed, 1 retrying" in run_row.text
    run_row.find_element(By.TAG_NAME, "a").click()
    assert browser.find_element(By.ID, "run-state").text == "open"
    row = browser.find_element(By.CSS_SELECTOR, f'#run-steps tr[data-step="{step}"]').text
    # ok 2, skipped 0, failed 0, timeout 0, oom 1; wall p50 / p95 / max of the ended jobs: 2, 4, 7.
    assert row.startswith(f"{step} 2 0 0 0 1 "), row
    assert "4.0 / 7.0 / 7.0 s" in row and "60 / 60 MiB (512)" in row
    # The task ran 120 s (stopped), all of it for this run's jobs: 0.25 vCPU and 0.5 GB at the table's Fargate rates.
    assert "120.0 task-seconds" in browser.find_element(By.ID, "run-cost").text
    failures = browser.find_element(By.ID, "run-failures").text
    assert "f2.txt oom oom 137 1\nKilled: out of memory" in failures
    assert "f3.txt" not in failures  # it is tried again
    # `yunpipe report --html`'s charts, each drawn (matplotlib's SVG, in the page).
    assert [c.text for c in browser.find_elements(By.CSS_SELECTOR, "#charts figcaption")] == [
        "How the files ended, per step", "Time per try, per step", "Tasks and the tries they ran",
        "Peak memory against the step's limit"]
    drawn = browser.find_elements(By.CSS_SELECTOR, "#charts svg.chart")
    assert len(drawn) == 4 and all(svg.size["width"] > 300 and svg.size["height"] > 100 for svg in drawn)
    screenshot(browser, "ui-run.png")


def test_a_settled_run_shows_its_summary(a_run, client):
    put(a_run.reports_bucket, records.summary_key("demo", RUN), {
        "pipeline": "demo", "run": RUN, "kind": "upload", "opened_at": "2026-12-07T13:15:00Z",
        "settled_at": "2026-12-07T13:20:00Z", "inputs": 4,
        "steps": {a_run.steps[0].name: {"ok": 3, "oom": 1, "wall_seconds": {"p50": 2, "p95": 7, "max": 7},
                                         "peak_memory_mib": {"p50": 60, "max": 61}, "memory_limit_mib": 512}},
        "failures": [], "task_seconds": 120, "cost": None})
    text = client.get(f"/pipelines/demo/runs/{RUN}?token={TOKEN}", base_url=ROOT).text
    assert "settled 2026-12-07T13:20:00Z" in text
    assert "3/4, 1 failed" in client.get("/pipelines/demo/live", base_url=ROOT).text


def test_done_jobs_in_a_page_count_as_their_single_records_and_a_bad_page_is_left_out(a_run, client):
    bucket, step = a_run.reports_bucket, a_run.steps[0].name
    s3 = boto3.client("s3")
    done = []
    for key in ("f0.txt", "f1.txt"):
        single = records.end_key("demo", RUN, step, key)
        done.append(json.loads(s3.get_object(Bucket=bucket, Key=single)["Body"].read()))
        s3.delete_object(Bucket=bucket, Key=single)
    put(bucket, records.page_key("demo", RUN, step, "task-1", 1, 2), {"version": 1, "records": done})
    # Left out, as a single record that is not JSON is.
    s3.put_object(Bucket=bucket, Key=records.page_key("demo", RUN, step, "task-1", 2, 1), Body=b"{not json")
    client.get(f"/?token={TOKEN}", base_url=ROOT)
    assert "2/4, 1 failed, 1 retrying" in client.get("/pipelines/demo/live", base_url=ROOT).text
    assert client.get(f"/pipelines/demo/runs/{RUN}", base_url=ROOT).status_code == 200


def test_submit_asks_first_then_queues_what_the_steps_input_holds(client, deployed):
    step = deployed.steps[0]
    s3, sqs = boto3.client("s3"), boto3.client("sqs")
    for key in ("a.txt", "b.txt"):
        s3.put_object(Bucket="demo-in-bucket", Key=key, Body=b"x")
    live = client.get(f"/pipelines/demo/live?token={TOKEN}", base_url=ROOT).text
    assert f'href="/pipelines/demo/steps/{step.name}/submit"' in live
    asked = client.get(f"/pipelines/demo/steps/{step.name}/submit", base_url=ROOT).text
    assert html.unescape(asked).count(f"Queue what s3://demo-in-bucket holds to step {step.name}?") == 2
    assert client.post(f"/pipelines/demo/steps/{step.name}/submit", base_url=ROOT).status_code == 403
    done = client.post(f"/pipelines/demo/steps/{step.name}/submit", data={"token": TOKEN}, base_url=ROOT)
    assert "Queued 2 object(s) of s3://demo-in-bucket/ to step change123-s3; workers start now." in done.text
    url = sqs.get_queue_url(QueueName=step.queue)["QueueUrl"]
    waiting = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])["Attributes"]
    assert waiting["ApproximateNumberOfMessages"] == "2"


def test_without_graphviz_the_page_lists_the_steps_and_says_what_to_install(client, deployed, monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))  # no `dot` on it
    pictures._svg.cache_clear()
    text = html.unescape(client.get(f"/pipelines/demo?token={TOKEN}", base_url=ROOT).text)
    pictures._svg.cache_clear()
    assert "<svg" not in text
    assert "Install Graphviz (dot; Debian's graphviz package)" in re.sub(r"</?code>", "", text)
    assert f"<li>{deployed.steps[0].name}" in text


def test_the_ui_command_prints_its_url_serves_it_and_stops_on_ctrl_c(tmp_path):
    """`yunpipe ui --no-browser --port 0` as a user runs it, in a process of its own."""
    process = subprocess.Popen([sys.executable, "-m", "yunpipe.cli", "ui", "--no-browser", "--port", "0"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env={**os.environ, "YUNPIPE_HOME": str(tmp_path)})
    try:
        assert process.stdout.readline().startswith("The dashboard serves on 127.0.0.1 only; Ctrl-C stops it.")
        url = process.stdout.readline().strip()
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+/\?token=[\w-]{40,}", url), url
        with urllib.request.urlopen(url, timeout=30) as answer:
            assert "No pipelines set up from this machine yet" in answer.read().decode()
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(url.split("?")[0], timeout=30)
        assert refused.value.code == 403
    finally:
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=30)
    assert process.returncode == 0, err
    assert out.strip().endswith("The dashboard stopped.")


def test_a_task_recorded_after_the_page_first_looked_counts_from_then(a_run, client):
    """A running task has no record yet (its jobs' `task` field stands for it): not remembered as missing."""
    key = records.task_key("demo", a_run.steps[0].name, "task-1")
    s3 = boto3.client("s3")
    stopped = s3.get_object(Bucket=a_run.reports_bucket, Key=key)["Body"].read()
    s3.delete_object(Bucket=a_run.reports_bucket, Key=key)
    running = client.get(f"/pipelines/demo/runs/{RUN}?token={TOKEN}", base_url=ROOT).text
    assert "still running tasks counted up to now" in running
    s3.put_object(Bucket=a_run.reports_bucket, Key=key, Body=stopped)
    after = client.get(f"/pipelines/demo/runs/{RUN}", base_url=ROOT).text
    assert "120.0 task-seconds" in after and "still running" not in after


def test_a_pipeline_that_cannot_be_reached_says_why_on_its_line_and_the_others_still_show(client, deployed):
    PipelineState("gone", PipelineSummary(
        "gone", "us-east-1", "123456789012", "gone-in", "gone-out", "gone-reports", "/yunpipe/gone", "gone", (),
        location={"cloud": "local", "endpoint_url": "http://127.0.0.1:1", "account_id": "123456789012",
                  "region": "us-east-1", "profile": None})).save()
    text = html.unescape(client.get(f"/?token={TOKEN}", base_url=ROOT).text)
    assert "pipeline 'gone' lives on the local cloud, which is not running: run `yunpipe local up`" in text
    assert 'data-pipeline="demo"' in text and "state-idle" in text


def test_the_pages_only_read(client, a_run):
    """Every page and refresh makes read calls only (FilterLogEvents reads too, whatever its name)."""
    boto3.client("s3").put_object(Bucket="demo-out-bucket", Key="r.txt", Body=b"r")
    report = f"failures/demo/{a_run.steps[0].name}/f2.txt/attempt-1.json"
    put(a_run.reports_bucket, report, {"step": a_run.steps[0].name, "key": "f2.txt", "bucket": "demo-in-bucket",
                                       "attempt": 1, "final": True, "reason": "oom",
                                       "started_at": "2026-12-07T13:15:02Z", "finished_at": "2026-12-07T13:15:09Z"})
    client.get(f"/?token={TOKEN}", base_url=ROOT)
    with watch_calls() as calls:
        for path in ("/", "/pipelines/demo", "/pipelines/demo/live", f"/pipelines/demo/runs/{RUN}",
                     f"/pipelines/demo/failure?report={report}", "/pipelines/demo/results",
                     "/pipelines/demo/results/download?key=r.txt", f"/pipelines/demo/steps/{a_run.steps[0].name}/retry"):
            assert client.get(path, base_url=ROOT).status_code == 200, path
    assert {call for call in calls if is_mutating(call[1])} <= {("logs", "FilterLogEvents")}
    assert ("s3", "GetObject") in calls and ("sqs", "GetQueueAttributes") in calls


def test_the_replay_command_offered_is_one_yunpipe_replay_takes_whatever_the_key():
    """The failure page's command, pasted into a shell, reaches `yunpipe replay` with the report's
    key whole (an input's key may hold spaces and shell syntax)."""
    key = "failures/p/step/my file;$(x)'s.txt/attempt-1.json"
    summary = PipelineSummary("p", "us-east-1", "123456789012", "in", "out", "reports", "logs", "cluster", ())
    words = shlex.split(files.replay_command(summary, key))
    args = cli.build_parser().parse_args(words[1:])
    assert (words[0], args.verb, args.pipeline, args.report, args.step, args.key) == ("yunpipe", "replay", "p", key, None, None)


def test_a_gather_step_s_progress_counts_its_gatherings_not_the_files():
    from collections import Counter

    from yunpipe.ui.runs import Run

    run = Run("r", manifest={"inputs": ["a", "b", "c", "d"]},
              steps={"each": Counter(ok=3, failed=1), "all": Counter(ok=1)})
    bars = {bar["step"]: (bar["done"], bar["failed"], bar["of"]) for bar in run.bars(["each", "all"], frozenset({"all"}))}
    assert bars == {"each": (3, 1, 4), "all": (1, 0, 1)}
    # Without the gather known, the step would be read as 1 of 4 files.
    assert run.bars(["each", "all"])[1]["of"] == 4
