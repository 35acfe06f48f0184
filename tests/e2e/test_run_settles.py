"""End to end: a run is accounted for. 20 files go through two steps on the local cloud; one is
poison (the command refuses it) and one needs more memory than its task has (the kernel kills
it). The run settles exactly once, written by the workers themselves: its summary counts every
outcome right, `oom` told apart; the pipeline's topic delivers the first failure and the settled
run to a real HTTP endpoint; the HTML report draws its charts in a real browser (a screenshot
is kept under tests/artifacts/); and `yunpipe cost` is the sum worked here by hand from the
task records and the price table. About 60 s on top of the suite's fixtures.
"""
import http.server
import json
import threading
from datetime import datetime

import pytest
from helpers import job_records
from selenium.webdriver.common.by import By
from ui_browser import screenshot

from yunpipe.runtime.accounting import cost, records

from .helpers import run_ok, wait_until, write_inputs

pytestmark = pytest.mark.e2e

SETTLE_BOUND_SECONDS = 180


class Endpoint(http.server.ThreadingHTTPServer):
    """An HTTP subscriber of the pipeline's topic: every notification it is sent, in order."""

    def __init__(self) -> None:
        self.messages: list[dict] = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(handler) -> None:
                body = json.loads(handler.rfile.read(int(handler.headers["Content-Length"])))
                if body.get("Type") == "Notification":
                    self.messages.append(json.loads(body["Message"]))
                handler.send_response(200)
                handler.end_headers()

            def log_message(handler, *args) -> None:
                pass

        super().__init__(("127.0.0.1", 0), Handler)


@pytest.fixture
def endpoint():
    server = Endpoint()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def read_json(s3, bucket: str, key: str) -> dict:
    return json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())


def read_jobs(s3, bucket: str, pipeline: str, run: str) -> list[dict]:
    return list(job_records(s3, bucket, records.run_prefix(pipeline, run)).values())


def listed(s3, bucket: str, prefix: str) -> list[str]:
    return [o["Key"] for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
            for o in page.get("Contents", [])]


def test_a_run_of_twenty_files_through_two_steps_settles_once_with_its_report_cost_and_notifications(
        pipeline, aws, tmp_path, endpoint, browser):
    # max_memory 512: greedy.txt is not tried at a larger size (test_grow.py does that).
    chain = pipeline([{"name": "tester", "cpu": 0.25, "memory": 512, "max_receive_count": 1, "max_memory": 512},
                      {"name": "tester", "cpu": 0.25, "memory": 512}],
                     idle_seconds=2, notify=[f"http://127.0.0.1:{endpoint.server_port}/yunpipe"])
    first, second = (step.name for step in chain.summary.steps)
    good = {f"file-{index:02}.txt": f"file {index}\n" for index in range(18)}
    poison = {"poison.txt": "a line to refuse\nFAIL\n", "greedy.txt": "ALLOCATE 800\nmore than the task has\n"}
    printed = run_ok("upload", "--local", chain.name, str(write_inputs(tmp_path / "in", {**good, **poison})))
    [run] = [line.split()[1].rstrip(":") for line in printed.splitlines() if line.startswith("Run ")]
    s3, reports = aws("s3"), chain.summary.reports_bucket

    def settled():
        return None if records.summary_key(chain.name, run) in listed(s3, reports, records.run_prefix(
            chain.name, run)) else "the run has no summary yet"
    wait_until(settled, SETTLE_BOUND_SECONDS, explain=chain.diagnosis)
    summary = read_json(s3, reports, records.summary_key(chain.name, run))

    # Every result, each through both steps; the two bad files stopped at the first.
    chain.wait_for_results({key: f"{text.rstrip()}\n-- tested\n-- tested\n".encode() for key, text in good.items()},
                           timeout=30)
    assert summary["inputs"] == 20 and summary["jobs"] == 38
    assert summary["steps"][first]["ok"] == 18 and summary["steps"][second]["ok"] == 18
    assert summary["steps"][first]["failed"] == 1 and summary["steps"][first]["oom"] == 1
    assert {(f["key"], f["step"], f["outcome"]) for f in summary["failures"]} == {
        ("poison.txt", first, "failed"), ("greedy.txt", first, "oom")}
    refused = next(f for f in summary["failures"] if f["key"] == "poison.txt")
    assert "refusing poison.txt" in refused["log_tail"] and refused["exit_code"] == 3
    for step in (first, second):
        wall = summary["steps"][step]["wall_seconds"]
        assert 0 < wall["p50"] <= wall["p95"] <= wall["max"] < 60, (step, wall)
        assert summary["steps"][step]["memory_limit_mib"] == 512
    # Settled once: no run of this pipeline is open, and the summary was not rewritten.
    assert listed(s3, reports, records.open_prefix(chain.name)) == []

    # The topic told the endpoint: the first failure (one, though two files failed), then the run.
    def announced():
        events = [m.get("event") for m in endpoint.messages]
        return None if "settled" in events else f"the endpoint has {events}"
    wait_until(announced, 30)
    events = [m["event"] for m in endpoint.messages]
    assert sorted(events) == ["first-failure", "settled"], endpoint.messages
    first_failure = next(m for m in endpoint.messages if m["event"] == "first-failure")
    assert first_failure["run"] == run and first_failure["key"] in poison and first_failure["step"] == first
    told = next(m for m in endpoint.messages if m["event"] == "settled")
    assert told["run"] == run and told["counts"][first]["ok"] == 18

    # The cost is the task records' billed seconds at the table's prices, shared by jobs' time:
    # once every task has stopped (settling may come first: its summary's cost is then estimated).
    def stopped():
        running = chain.tasks(0, "RUNNING") + chain.tasks(1, "RUNNING")
        return f"{len(running)} task(s) still running" if running else None
    wait_until(stopped, 60, explain=chain.diagnosis)
    tasks = [read_json(s3, reports, key) for key in listed(s3, reports, f"tasks/{chain.name}/")]
    # Each task has a record of its own (named by its ECS task id, from the task metadata endpoint).
    ran = {j["task"]["id"] for j in read_jobs(s3, reports, chain.name, run)}
    assert ran <= {t["id"] for t in tasks} and len(tasks) >= 2, (ran, [t["id"] for t in tasks])
    jobs = read_jobs(s3, reports, chain.name, run)
    prices = cost.load_prices()
    rates = prices["regions"]["us-east-1"]["fargate"]
    by_hand = 0.0
    for task in tasks:
        started, stopped = (datetime.fromisoformat(task[k].replace("Z", "+00:00")) for k in ("started_at", "stopped_at"))
        billed = max((stopped - started).total_seconds(), 60)
        mine = sum(j["wall_seconds"] for j in jobs if j["task"]["id"] == task["id"])
        share = mine / sum(task["job_seconds"].values()) if mine else 0.0
        by_hand += billed * share / 3600 * (0.25 * rates["vcpu_hour"] + 0.5 * rates["gb_hour"])
    reckoned = json.loads(run_ok("cost", "--local", chain.name, "--run", run, "--json"))
    assert reckoned["total"] == pytest.approx(by_hand, rel=1e-4, abs=1e-6)
    assert summary["cost"]["estimated"] or summary["cost"]["total"] == pytest.approx(by_hand, rel=1e-4, abs=1e-6)

    # The report opens offline in a real browser, its charts drawn.
    page = tmp_path / "report.html"
    run_ok("report", "--local", chain.name, run, "--html", str(page))
    browser.get(page.as_uri())
    charts = {svg.get_attribute("data-chart"): len(svg.find_elements(By.CSS_SELECTOR, "path, use, rect"))
              for svg in browser.find_elements(By.CSS_SELECTOR, "svg.chart")}
    assert set(charts) == {"outcomes", "durations", "timeline", "memory"} and min(charts.values()) >= 10, charts
    assert "greedy.txt" in browser.find_element(By.TAG_NAME, "body").text
    screenshot(browser, "e2e-run-report.png")
