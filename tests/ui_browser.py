"""The dashboard's tests' browser: Debian's chromium, headless, through Debian's chromedriver
(scripts/bootstrap.sh installs both), and the dashboard served in the test's process.
Screenshots go to tests/artifacts/ (gitignored), kept after the run to be looked at."""
from __future__ import annotations

import base64
import contextlib
import shutil
from collections.abc import Iterator
from pathlib import Path

from helpers import unavailable

from yunpipe.ui.server import Dashboard, UiOptions, dashboard

ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"


def chromium():
    """A headless chromium, 1400 x 1000 (the screenshots' size)."""
    if not (shutil.which(CHROMIUM) and shutil.which(CHROMEDRIVER)):
        unavailable("no Debian chromium and chromium-driver: run scripts/bootstrap.sh")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,1000"):
        options.add_argument(argument)
    return webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))


@contextlib.contextmanager
def headless() -> Iterator:
    """A browser for the test, closed after it."""
    driver = chromium()
    try:
        yield driver
    finally:
        driver.quit()


@contextlib.contextmanager
def served() -> Iterator[Dashboard]:
    """`yunpipe ui --port 0 --no-browser`, served from a thread of this process."""
    board = dashboard(UiOptions(port=0, browser=False))
    board.start()
    try:
        yield board
    finally:
        board.stop()


def page(board: Dashboard, path: str) -> str:
    """A page of the dashboard, with its token."""
    root = board.url.split("?")[0].rstrip("/")
    return f"{root}{path}?token={board.token}"


def screenshot(driver, name: str) -> Path:
    """The whole page, beyond the window's height too (chromium's own capture), as tests/artifacts/NAME."""
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / name
    size = driver.execute_cdp_cmd("Page.getLayoutMetrics", {})["cssContentSize"]
    shot = driver.execute_cdp_cmd("Page.captureScreenshot", {"captureBeyondViewport": True, "clip": {
        "x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1}})
    path.write_bytes(base64.b64decode(shot["data"]))
    return path
