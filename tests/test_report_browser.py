"""The HTML report in a real browser: Debian's chromium, headless, driven by selenium through
Debian's chromedriver (scripts/bootstrap.sh installs both; the `browser` fixture, tests/ui_browser.py). The page must draw its charts with
nothing fetched; a screenshot of each page is kept under tests/artifacts/ (gitignored) for a
person to look at."""
from pathlib import Path

import accounting_runs as acct
import boto3
import pytest
from selenium.webdriver.common.by import By

from yunpipe import cli

ARTIFACTS = Path(__file__).resolve().parent / "artifacts"


@pytest.fixture
def reports(moto, write_workflow):
    acct.deploy(write_workflow)
    s3 = boto3.client("s3")
    acct.write_settled(s3)
    acct.write_open(s3)


def open_report(browser, tmp_path: Path, run: str, name: str):
    page = tmp_path / f"{name}.html"
    assert cli.main(["report", "acct", run, "--html", str(page)]) == 0
    browser.get(page.as_uri())
    # As tall as the page, so the screenshot holds all of it.
    height = browser.execute_script("return document.documentElement.scrollHeight")
    browser.set_window_size(1200, height + 100)
    ARTIFACTS.mkdir(exist_ok=True)
    assert browser.save_screenshot(str(ARTIFACTS / f"{name}.png"))
    return browser


def drawn_charts(browser) -> dict[str, tuple[float, float, int]]:
    """Each chart's width and height on the page and how many shapes it drew."""
    return {svg.get_attribute("data-chart"): (svg.rect["width"], svg.rect["height"],
                                              len(svg.find_elements(By.CSS_SELECTOR, "path, use, rect")))
            for svg in browser.find_elements(By.CSS_SELECTOR, "svg.chart")}


def test_the_settled_report_draws_its_charts_offline(browser, reports, tmp_path):
    page = open_report(browser, tmp_path, acct.SETTLED, "report-settled")
    charts = drawn_charts(page)
    assert list(charts) == ["outcomes", "durations", "timeline", "memory"]
    for name, (width, height, shapes) in charts.items():
        assert width >= 600 and height >= 100 and shapes >= 20, (name, width, height, shapes)
    # Nothing was fetched to show it, and no image is broken.
    assert page.execute_script("return performance.getEntriesByType('resource').length") == 0
    assert page.execute_script("return [...document.images].filter(i => !i.complete || !i.naturalWidth).length") == 0
    text = page.find_element(By.TAG_NAME, "body").text
    assert "Settled" in text and "poison-1.tif" in text and "ValueError: not a TIFF file" in text
    # The charts' text is text: the memory chart names the limit.
    assert "limit 2048 MiB" in page.find_element(By.CSS_SELECTOR, 'svg[data-chart="memory"]').text


def test_the_open_report_says_it_is_open(browser, reports, tmp_path):
    page = open_report(browser, tmp_path, acct.OPEN, "report-open")
    assert page.find_element(By.CSS_SELECTOR, ".state.open").text == "Open"
    assert "still running: these are the counts so far" in page.find_element(By.CSS_SELECTOR, ".sub").text
    charts = drawn_charts(page)
    assert len(charts) == 4 and all(w >= 600 and h >= 100 for w, h, _ in charts.values()), charts
