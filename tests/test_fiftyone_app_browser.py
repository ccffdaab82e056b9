"""The FiftyOne App, served on localhost and driven by Debian's headless Chromium: our fields, operators and panel.

Screenshots are kept in tests/artifacts/.
"""

import fiftyone_helpers  # noqa: F401  (configures FiftyOne before it is imported)
from fiftyone_helpers import _free_port, mongod, worker_environment  # noqa: F401

import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from sam2_plugins.fiftyone_plugin.import_sav import import_sav
from sam2_plugins.fiftyone_plugin.jf_evaluation import evaluate_jf
from sam2_plugins.sample_data import write_sav_val

pytestmark = pytest.mark.fiftyone
ARTIFACTS = Path(__file__).parent / "artifacts"
CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")
OPERATOR_LABELS = (
    "SAM 2: import SA-V",
    "SAM 2: segment videos",
    "SAM 2: evaluate J&F (SA-V)",
    "SAM 2: export predictions (SA-V layout)",
)


@pytest.fixture(scope="module")
def app_url(mongod, tmp_path_factory):
    """An App server on localhost showing a dataset with ground truth and a J&F evaluation."""
    root = tmp_path_factory.mktemp("app") / "sav_val"
    write_sav_val(root, num_videos=2, num_frames=9)
    dataset, _ = import_sav(root, "app-browser")
    evaluate_jf(dataset, "ground_truth", "ground_truth", "eval_jf")
    port = _free_port()
    code = (
        f"import fiftyone as fo; fo.launch_app(fo.load_dataset('app-browser'), remote=True, port={port}, "
        "address='127.0.0.1').wait(-1)"
    )
    server = subprocess.Popen(
        [sys.executable, "-c", code], env=worker_environment(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        try:
            urllib.request.urlopen(url, timeout=2)
            break
        except OSError:
            assert server.poll() is None and time.monotonic() < deadline, "the App server did not start"
            time.sleep(0.5)
    yield f"{url}/datasets/app-browser"
    server.terminate()
    server.wait(timeout=30)


@pytest.fixture
def browser(tmp_path):
    if not (CHROMIUM and CHROMEDRIVER):
        pytest.fail(
            "chromium and chromium-driver are missing: `apt-get install -y chromium chromium-driver` "
            "(make test installs them)"
        )
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tmp_path / 'chromium'}",
        "--window-size=1600,1800",
    ):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    yield driver
    driver.quit()


def wait_for_text(driver, *texts: str, timeout: float = 90) -> str:
    """The page's text once it contains every one of ``texts``."""
    deadline = time.monotonic() + timeout
    while True:
        body = driver.find_element("tag name", "body").text
        if all(text in body for text in texts):
            return body
        assert time.monotonic() < deadline, f"missing {[t for t in texts if t not in body]} in:\n{body[-3000:]}"
        time.sleep(0.5)


def click(driver, css: str) -> None:
    driver.execute_script("arguments[0].click()", driver.find_element("css selector", css))


def test_app_shows_our_fields_operators_and_panel(app_url, browser):
    ARTIFACTS.mkdir(exist_ok=True)
    browser.get(app_url)
    wait_for_text(browser, "frames.ground_truth", "video_id", "sav_masklets", "eval_jf_JF", "2 samples")
    time.sleep(3)  # let the thumbnails draw
    browser.save_screenshot(str(ARTIFACTS / "fiftyone_app_dataset.png"))

    click(browser, '[data-cy="action-browse-operations"]')
    wait_for_text(browser, *OPERATOR_LABELS)
    browser.save_screenshot(str(ARTIFACTS / "fiftyone_app_operators.png"))

    browser.get(app_url)
    wait_for_text(browser, "frames.ground_truth")
    click(browser, '[data-cy="new-panel-btn"]')
    wait_for_text(browser, "SAM 2: J&F")
    panel_entry = browser.find_element("xpath", "//*[normalize-space(text())='SAM 2: J&F']")
    browser.execute_script("arguments[0].click()", panel_entry)
    wait_for_text(browser, "10 worst videos", "Sort videos by J&F, worst first", "sav_900001", "J&F 100.0")
    for dismiss in browser.find_elements("xpath", "//button[contains(., 'Dismiss')]"):
        browser.execute_script("arguments[0].click()", dismiss)
    sort = browser.find_element("xpath", "//button[contains(., 'Sort videos by J&F')]")
    browser.execute_script("arguments[0].click()", sort)
    deadline = time.monotonic() + 60
    while "SortBy" not in browser.page_source:  # one click puts the sort stage in the view bar
        assert time.monotonic() < deadline, "the panel's sort button did not set the view"
        time.sleep(0.5)
    time.sleep(2)
    browser.save_screenshot(str(ARTIFACTS / "fiftyone_app_jf_panel.png"))
