"""End to end: `yunpipe ui` in a real headless browser (Debian's chromium, through selenium) on the
local cloud. A graph is set up (a fan-out to two steps, their join, and a gather) and files are
uploaded; its page, loaded once, shows the counts reaching done as they happen, a poison file as a
failure with its report, and the retry button (asked for, then confirmed) sends it back to be
tried again; the upload's run page shows its report. The pipeline and run pages' screenshots are
kept in tests/artifacts/ (ui-pipeline.png, ui-run.png; the README's docs/ui-pipeline.png is one).
"""
import json
import urllib.error
import urllib.request

import pytest
from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait
from ui_browser import page, screenshot

from .helpers import run_ok, write_inputs

pytestmark = pytest.mark.e2e

# From the upload to the last joined result of 4 files through quick steps: ~15 s here.
DONE_BOUND_SECONDS = 120
LIVE = (NoSuchElementException, StaleElementReferenceException)


def count(driver, step: str, name: str) -> str:
    """A step's live count, as the page shows it now (the live part is replaced as it refreshes)."""
    return driver.find_element(By.CSS_SELECTOR, f'#steps tr[data-step="{step}"] td[data-count="{name}"]').text


def steady(driver, look):
    """What `look` reads off the page, read again when the live part was replaced under it."""
    return WebDriverWait(driver, 10, ignored_exceptions=LIVE).until(lambda d: [look(d)])[0]


def report_of(aws, bucket: str, key: str) -> dict:
    return json.loads(aws("s3").get_object(Bucket=bucket, Key=key)["Body"].read())


def test_the_pipeline_page_follows_the_work_live_and_retries_a_poison_file(pipeline, board, browser, aws, tmp_path):
    graph = pipeline([
        {"id": "upper", "name": "tester", "max_receive_count": 1},
        {"id": "sum", "name": "checksum"},
        {"id": "both", "name": "pair", "after": ["upper", "sum"]},
        {"id": "all", "name": "gather", "after": ["both"], "gather": True},
    ], process_type="graph")
    browser.get(page(board, f"/pipelines/{graph.name}"))
    assert browser.find_element(By.CSS_SELECTOR, "#graph svg"), "the graph is drawn (Graphviz)"
    browser.execute_script("window.loadedOnce = true")

    good = {f"good-{index}.txt": f"fine input {index}\n" for index in range(4)}
    run_ok("upload", "--local", graph.name, str(write_inputs(tmp_path / "in", {**good, "poison.txt": "FAIL\n"})))
    wait = WebDriverWait(browser, DONE_BOUND_SECONDS, ignored_exceptions=LIVE)
    # The poison file fails in upper, so only the four others reach the join.
    wait.until(lambda d: count(d, "both", "done") == "4" and count(d, "upper", "dead") == "1",
               message=f"never 4 joined and 1 dead letter: {graph.diagnosis()}")
    assert browser.execute_script("return window.loadedOnce === true"), "the page was reloaded"
    assert steady(browser, lambda d: [count(d, step, "done") for step in ("upper", "sum", "both", "all")]) == [
        "4", "5", "4", "0"]
    assert steady(browser, lambda d: d.find_element(By.CSS_SELECTOR, '#steps tr[data-step="upper"]').get_attribute(
        "data-step-state")) == "dead"
    # Graphviz drew the join and the gather as such; the page coloured the failing step's node and
    # wrote each step's counts under it.
    nodes = {n.find_element(By.TAG_NAME, "title").get_attribute("textContent"): n
             for n in browser.find_elements(By.CSS_SELECTOR, "#graph svg g.node")}
    assert "(join)" in nodes["both"].text and "(gather)" in nodes["all"].text
    assert nodes["upper"].get_attribute("class") == "node state-dead"
    assert "4 done · 1 dead" in nodes["upper"].text and "5 done" in nodes["sum"].text
    screenshot(browser, "ui-pipeline.png")
    # No script error, no refused refresh, nothing the page's Content-Security-Policy blocked.
    assert [e["message"] for e in browser.get_log("browser") if e["level"] == "SEVERE"] == []

    wait.until(lambda d: d.find_element(By.CSS_SELECTOR, "#failures a.failure").text == "poison.txt")
    steady(browser, lambda d: d.find_element(By.CSS_SELECTOR, "#failures a.failure").click())
    assert browser.find_element(By.ID, "reason").text == "nonzero_exit"
    assert "tester: refusing poison.txt: it asks to fail" in browser.find_element(By.ID, "stderr").text
    assert browser.find_element(By.ID, "replay-command").text.startswith(f"yunpipe replay {graph.name} --report ")
    screenshot(browser, "ui-failure.png")
    key = f"failures/{graph.name}/{graph.step(0).name}/poison.txt/attempt-1.json"
    first = report_of(aws, graph.summary.reports_bucket, key)["finished_at"]

    browser.find_element(By.ID, "retry").click()
    assert browser.find_element(By.TAG_NAME, "h1").text == "Retry step upper's dead letters?"
    browser.find_element(By.ID, "confirm").click()
    assert "moved 1 message(s)" in browser.find_element(By.ID, "retried").text
    # Sent back, the file is tried again (and fails again: the report is written anew).
    WebDriverWait(browser, DONE_BOUND_SECONDS).until(
        lambda _: report_of(aws, graph.summary.reports_bucket, key)["finished_at"] != first,
        message="the retried file was not tried again")

    # The upload's run: its page has the report's charts drawn and the poison file among its failures.
    browser.get(page(board, f"/pipelines/{graph.name}"))
    wait.until(lambda d: d.find_element(By.CSS_SELECTOR, "#runs tr[data-run] a"), message="no run listed")
    run = steady(browser, lambda d: d.find_element(By.CSS_SELECTOR, "#runs tr[data-run]").get_attribute("data-run"))
    steady(browser, lambda d: d.find_element(By.CSS_SELECTOR, "#runs tr[data-run] a").click())
    assert browser.find_element(By.TAG_NAME, "h1").text == f"Run {run}"
    upper = browser.find_element(By.CSS_SELECTOR, '#run-steps tr[data-step="upper"]').text.split()
    assert upper[:3] == ["upper", "4", "0"], upper  # ok, skipped
    progress = {bar.find_element(By.CLASS_NAME, "label").text: bar.find_element(By.CLASS_NAME, "figures").text
                for bar in browser.find_elements(By.CSS_SELECTOR, ".progress")}
    # The gather step has one job per gathering (none sent yet), not one per file.
    assert progress == {"upper": "4/5, 1 failed", "sum": "5/5", "both": "4/5", "all": "0/1"}, progress
    assert browser.find_elements(By.CSS_SELECTOR, "#charts figure svg"), "no chart drawn"
    assert "poison.txt" in browser.find_element(By.ID, "run-failures").text
    screenshot(browser, "ui-run.png")

    browser.get(page(board, "/"))
    listed = browser.find_element(By.CSS_SELECTOR, f'#pipelines tr[data-pipeline="{graph.name}"]').text
    assert "the local cloud" in listed and "upper, sum, both, all" in listed, listed
    screenshot(browser, "ui-pipelines.png")


def test_a_request_without_the_token_is_refused(board):
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(board.url.split("?")[0], timeout=10)
    assert refused.value.code == 403
