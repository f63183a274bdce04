"""Debian's headless Chromium driven by Selenium through Debian's chromedriver.

Nothing is downloaded: both binaries come from the `chromium` and `chromium-driver` packages
(`scripts/install-system-deps`). A missing binary fails the test; it never skips.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.wait import WebDriverWait

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
ARTIFACTS = Path(
    os.environ.get("REMEDIATOR_TEST_ARTIFACTS", Path(__file__).parents[2] / "test-artifacts")
)


@contextmanager
def chromium() -> Iterator[webdriver.Chrome]:
    for binary in (CHROMIUM, CHROMEDRIVER):
        assert binary.exists(), f"{binary} is missing: run scripts/install-system-deps as root"
    with tempfile.TemporaryDirectory(prefix="remediator-chromium-") as profile:
        options = webdriver.ChromeOptions()
        options.binary_location = str(CHROMIUM)
        # The flags that keep Chromium off the network and quiet in a root container.
        for flag in (
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--window-size=1280,1000",
            f"--user-data-dir={profile}",
        ):
            options.add_argument(flag)
        driver = webdriver.Chrome(options=options, service=Service(str(CHROMEDRIVER)))
        try:
            yield driver
        finally:
            driver.quit()  # stops chromedriver (the process Selenium started, by its handle)


def screenshot(driver: webdriver.Chrome, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    height = driver.execute_script("return document.body.scrollHeight")
    driver.set_window_size(1280, max(800, min(int(height) + 40, 4000)))
    assert driver.save_screenshot(str(path)), f"no screenshot written to {path}"
    return path


def click_and_load(driver: webdriver.Chrome, element: WebElement, timeout: float = 15) -> None:
    """Click a link or submit button and wait until the next page replaced this one: reading
    right after the click could still find the old page (or not find the new one's parts)."""
    page = driver.find_element(By.TAG_NAME, "html")
    element.click()
    WebDriverWait(driver, timeout).until(expected_conditions.staleness_of(page))
