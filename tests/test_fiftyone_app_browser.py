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
from jf_runs import RUN_A, RUN_B, dataset_with_two_runs

pytestmark = pytest.mark.fiftyone
ARTIFACTS = Path(__file__).parent / "artifacts"
CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")
MODAL = '[data-cy="modal-looker-container"]'
ERROR_TEXTS = ("Operator Error", "Error executing", "Traceback", "write-only", "has no attribute")
OPERATOR_LABELS = (
    "SAM 2: import a VOS dataset",
    "SAM 2: import SA-V",
    "SAM 2: segment videos",
    "SAM 2: evaluate J&F",
    "SAM 2: export predictions (the dataset's layout)",
    "SAM 2: import Cell Tracking Challenge sequences",
    "SAM 2: evaluate cell tracking (CTC SEG, DET, TRA)",
)


@pytest.fixture(scope="module")
def app_server(mongod, tmp_path_factory):
    """An App server on localhost showing a dataset with ground truth and two J&F runs; yields (url, log path)."""
    root = tmp_path_factory.mktemp("app")
    dataset_with_two_runs(root / "sav_val", "app-browser")
    port = _free_port()
    code = (
        f"import fiftyone as fo; fo.launch_app(fo.load_dataset('app-browser'), remote=True, port={port}, "
        "address='127.0.0.1').wait(-1)"
    )
    log = root / "server.log"
    with open(log, "wb") as output:
        server = subprocess.Popen([sys.executable, "-c", code], env=worker_environment(), stdout=output, stderr=output)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        try:
            urllib.request.urlopen(url, timeout=2)
            break
        except OSError:
            assert server.poll() is None and time.monotonic() < deadline, "the App server did not start"
            time.sleep(0.5)
    yield f"{url}/datasets/app-browser", log
    server.terminate()
    server.wait(timeout=30)


@pytest.fixture
def app_url(app_server):
    return app_server[0]


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
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
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


def assert_no_errors(driver, server_log: Path) -> None:
    """No operator error on the page, in the browser console, or in the App server's log."""
    body = driver.find_element("tag name", "body").text
    assert not [text for text in ERROR_TEXTS if text in body], body[-3000:]
    console = [entry["message"] for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]
    assert not [m for m in console if any(text in m for text in ("perator", "Error executing", "Panel"))], console
    assert "Traceback" not in server_log.read_text(errors="replace")


def dismiss_popups(driver) -> None:
    """Close FiftyOne's "Explore Enterprise" pop-up, which can cover the panel's controls."""
    for dismiss in driver.find_elements("xpath", "//button[contains(., 'Dismiss')]"):
        driver.execute_script("arguments[0].click()", dismiss)


def close_modal(driver) -> None:
    """Close the sample modal, if open, by clicking the backdrop beside it, as a user does."""
    from selenium.webdriver import ActionChains

    if driver.find_elements("css selector", MODAL):
        body = driver.find_element("tag name", "body")
        ActionChains(driver).move_to_element_with_offset(body, 10 - body.size["width"] // 2, 0).click().perform()
        deadline = time.monotonic() + 30
        while driver.find_elements("css selector", MODAL):
            assert time.monotonic() < deadline, "the sample modal did not close"
            time.sleep(0.5)


def open_panel(driver, url: str, label: str) -> None:
    """Open a new panel (the App server keeps the session's open sample between browsers: it is closed first)."""
    driver.get(url)
    wait_for_text(driver, "frames.ground_truth")
    time.sleep(2)
    close_modal(driver)
    dismiss_popups(driver)
    click(driver, '[data-cy="new-panel-btn"]')
    wait_for_text(driver, label)
    entry = driver.find_element("xpath", f"//*[normalize-space(text())='{label}']")
    driver.execute_script("arguments[0].click()", entry)


def wait_for(driver, css: str, timeout: float = 60, visible_only: bool = True) -> list:
    """The elements matching ``css`` (with a size on screen), once there is one."""
    deadline = time.monotonic() + timeout
    while True:
        found = [e for e in driver.find_elements("css selector", css) if not visible_only or e.size["height"] > 0]
        if found:
            return found
        assert time.monotonic() < deadline, f"nothing matches {css}"
        time.sleep(0.5)


def mouse_click(driver, element) -> None:
    """A real pointer move and click (Plotly and MUI menus react to mouse events, not to element.click())."""
    from selenium.webdriver import ActionChains

    driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", element)
    ActionChains(driver).move_to_element(element).pause(0.3).click().perform()


def choose(driver, current: str, option: str) -> None:
    """Pick ``option`` in the dropdown that now shows ``current``, as a user does: open the menu, click the entry."""
    combo_xpath = "//*[@role='combobox' and normalize-space(.)='{}']"
    mouse_click(driver, driver.find_element("xpath", combo_xpath.format(current)))
    entry = wait_for(driver, f"li[role='option'][data-value='{option}']")[0]
    time.sleep(0.5)  # the menu's opening transition
    mouse_click(driver, entry)
    deadline = time.monotonic() + 30
    while not driver.find_elements("xpath", combo_xpath.format(option)):
        assert time.monotonic() < deadline, f"the dropdown did not change from {current} to {option}"
        time.sleep(0.3)


def entry_count(driver) -> str:
    return driver.find_element("css selector", '[data-cy="entry-counts"]').text


def test_app_shows_our_fields_operators_and_panel(app_server, browser):
    app_url, server_log = app_server
    ARTIFACTS.mkdir(exist_ok=True)
    browser.get(app_url)
    wait_for_text(browser, "frames.ground_truth", "video_id", "sav_masklets", f"{RUN_B}_JF", "3 samples")
    time.sleep(3)  # let the thumbnails draw
    browser.save_screenshot(str(ARTIFACTS / "fiftyone_app_dataset.png"))

    click(browser, '[data-cy="action-browse-operations"]')
    wait_for_text(browser, *OPERATOR_LABELS)
    browser.save_screenshot(str(ARTIFACTS / "fiftyone_app_operators.png"))

    open_panel(browser, app_url, "SAM 2: J&F")
    # the newest run is shown first, with its worst video on top
    # three videos: the title counts them; every score has one decimal
    wait_for_text(browser, "3 videos, worst first", "Sort videos by J&F, worst first", "sav_900003", "J&F 97.2", RUN_B)
    assert "10 worst videos" not in browser.find_element("tag name", "body").text
    dismiss_popups(browser)
    sort = browser.find_element("xpath", "//button[contains(., 'Sort videos by J&F')]")
    browser.execute_script("arguments[0].click()", sort)
    deadline = time.monotonic() + 60
    while "SortBy" not in browser.page_source:  # one click puts the sort stage in the view bar
        assert time.monotonic() < deadline, "the panel's sort button did not set the view"
        time.sleep(0.5)
    time.sleep(2)
    browser.save_screenshot(str(ARTIFACTS / "fiftyone_app_jf_panel.png"))
    assert_no_errors(browser, server_log)


def test_jf_panel_compares_two_runs_by_clicking(app_server, browser):
    app_url, server_log = app_server
    ARTIFACTS.mkdir(exist_ok=True)
    open_panel(browser, app_url, "SAM 2: J&F")
    wait_for_text(browser, "3 videos, worst first", "Compare with (B)")
    dismiss_popups(browser)
    choose(browser, "(none)", RUN_A)
    body = wait_for_text(browser, "3 videos, changed most first", "B - A", "12 objects, changed most first")
    assert "1 object not scored" in body and "sav_900001/007" in body and "100.0" in body
    time.sleep(2)
    browser.save_screenshot(str(ARTIFACTS / "fiftyone_app_jf_compare.png"))

    # a point of the A-vs-B scatter selects its video in the grid
    point = wait_for(browser, ".scatterlayer path.point")
    assert len(point) == 3
    worst = next(p for p in point if p.location["x"] == min(q.location["x"] for q in point))  # A 91.7, B 100
    mouse_click(browser, worst)
    wait_for_text(browser, "Selected sav_900003 in the grid: A 91.7, B 100.0")
    assert browser.find_element("css selector", '[data-cy="selection-count-container"]').text == "1"
    assert_no_errors(browser, server_log)

    # a bar of the J&F histogram (the leftmost: run A's worst video) filters the grid to its videos
    histogram = wait_for(browser, ".js-plotly-plot")[0]
    bars = [bar for bar in histogram.find_elements("css selector", ".barlayer path") if bar.size["height"] > 0]
    leftmost = min(bars, key=lambda bar: bar.location["x"])
    mouse_click(browser, leftmost)
    deadline = time.monotonic() + 60
    while "1 sample" not in entry_count(browser):
        assert time.monotonic() < deadline, f"the bar did not filter the grid: {entry_count(browser)}"
        time.sleep(0.5)
    browser.save_screenshot(str(ARTIFACTS / "fiftyone_app_jf_bar_filter.png"))
    assert_no_errors(browser, server_log)

    # "Open" on a video that the filtered grid hides shows that video and opens it in the sample modal
    hidden = browser.find_element("xpath", "//tr[contains(., 'sav_900001')]//button[contains(., 'Open')]")
    mouse_click(browser, hidden)
    wait_for(browser, MODAL)
    wait_for_text(browser, "sav_900001\nvideo_id")  # the modal's sidebar: the field's value above its name
    assert entry_count(browser).startswith("1 sample")
    assert_no_errors(browser, server_log)
    close_modal(browser)

    # "Open" on the video that changed most opens it in the sample modal
    show_all = browser.find_element("xpath", "//button[contains(., 'Show all videos')]")
    browser.execute_script("arguments[0].click()", show_all)
    wait_for_text(browser, "3 samples")
    open_button = browser.find_element("xpath", "//tr[contains(., 'sav_900003')]//button[contains(., 'Open')]")
    mouse_click(browser, open_button)
    wait_for(browser, MODAL)
    time.sleep(2)
    browser.save_screenshot(str(ARTIFACTS / "fiftyone_app_jf_open.png"))
    wait_for_text(browser, "sav_900003\nvideo_id")
    assert_no_errors(browser, server_log)
    close_modal(browser)


def test_fiftyone_model_evaluation_panel_opens_a_jf_run(app_server, browser):
    app_url, server_log = app_server
    ARTIFACTS.mkdir(exist_ok=True)
    open_panel(browser, app_url, "Model Evaluation")
    wait_for_text(browser, RUN_A, RUN_B)
    time.sleep(3)
    mouse_click(browser, browser.find_element("xpath", f"//p[normalize-space(text())='{RUN_B}']"))
    body = wait_for_text(browser, "Summary", "Class Performance", "J&F\n97.222", "J\n97.222", "F\n97.222")
    assert "supports only classification" not in body
    time.sleep(2)
    browser.save_screenshot(str(ARTIFACTS / "fiftyone_app_model_evaluation.png"))
    # its per-class chart: the objects, with their pixel precision
    mouse_click(browser, browser.find_element("xpath", "//*[normalize-space(text())='Class Performance']"))
    wait_for_text(browser, "Precision Per Class", "sav_900003/000")
    browser.save_screenshot(str(ARTIFACTS / "fiftyone_app_model_evaluation_classes.png"))
    assert_no_errors(browser, server_log)


def test_segment_form_flags_a_bad_checkpoint_before_running(app_server, browser):
    """The form of "SAM 2: segment videos" offers only multiples of 32 as image sizes and says what is wrong with
    a checkpoint path that does not exist, before anything runs."""
    app_url, server_log = app_server
    browser.get(app_url)
    wait_for_text(browser, "frames.ground_truth")
    close_modal(browser)
    dismiss_popups(browser)
    click(browser, '[data-cy="panel-tab-samples"]')  # the session may have another panel in front of the grid
    wait_for(browser, '[data-cy="action-browse-operations"]')
    click(browser, '[data-cy="action-browse-operations"]')
    wait_for_text(browser, "SAM 2: segment videos")
    entry = browser.find_element("xpath", "//*[normalize-space(text())='SAM 2: segment videos']")
    browser.execute_script("arguments[0].click()", entry)
    wait_for_text(browser, "Checkpoint", "Image size")
    checkpoint = browser.find_element("xpath", "//*[normalize-space(text())='Checkpoint']/following::input[1]")
    checkpoint.click()
    checkpoint.send_keys("\ue009a")  # select all (Ctrl+A) before typing over the default
    checkpoint.send_keys("/nonexistent/sam2.pt")
    body = wait_for_text(browser, "/nonexistent/sam2.pt: no such checkpoint")
    browser.save_screenshot(str(ARTIFACTS / "fiftyone_app_form_bad_checkpoint.png"))
    submit = browser.find_element("xpath", "//button[normalize-space(.)='Schedule' or normalize-space(.)='Execute']")
    assert not submit.is_enabled()  # the form cannot be submitted while it says what is wrong
    size = browser.find_element("xpath", "//*[normalize-space(text())='Image size']/following::*[@role='combobox'][1]")
    mouse_click(browser, size)
    sizes = [int(o.text) for o in wait_for(browser, "li[role='option']")]
    assert sizes and all(s % 32 == 0 for s in sizes) and 1024 in sizes and 100 not in sizes
    assert "Operator Error" not in body
    assert_no_errors(browser, server_log)


def test_jf_panel_shows_a_fine_tuning_run(app_server, browser, tmp_path):
    """A real finetune_sam2 run (seeded tiny weights, 128 px, two steps) registered on the App's dataset: the panel
    shows its tuned checkpoint, held-out J&F before and after, its config and its loss curve."""
    import fiftyone as fo
    from random_checkpoint import write_random_checkpoint

    from sam2_plugins.fiftyone_plugin.finetune_sam2 import finetune_sam2
    from sam2_plugins.fiftyone_plugin.jf_charts import score_text

    app_url, server_log = app_server
    ARTIFACTS.mkdir(exist_ok=True)
    dataset = fo.load_dataset("app-browser")
    out = tmp_path / "tuned.pt"
    source = write_random_checkpoint(tmp_path, image_size=128)
    model = {"config": "sam2.1_hiera_t", "image_size": 128, "device": "cpu"}
    training = {"steps": 2, "frames_per_clip": 3, "objects_per_clip": 2, "held_out_fraction": 0.34}
    result = finetune_sam2(dataset, checkpoint=str(source), out=str(out), run_key="tuned", **model, **training)
    try:
        open_panel(browser, app_url, "SAM 2: J&F")
        before, after = score_text(result["jf_before"]), score_text(result["jf_after"])
        gain = f"{result['jf_after'] - result['jf_before'] + 0.0:+.1f}"
        wait_for_text(
            browser,
            "Fine-tuning runs",
            f"Tuned checkpoint {out}",
            f"Held-out J&F {before} before → {after} after (gain {gain})",
            "Steps 2 · image size 128 px · learning rate 5e-06",
            f"Held out 1 video: {result['held_out_videos'][0]}",
            "Trained on 2 videos",
        )
        # the loss curve: a line with a marker per step (no other scatter is drawn without a comparison)
        points = wait_for(browser, ".scatterlayer path.point", visible_only=False)
        assert len(points) == 2
        browser.execute_script("arguments[0].scrollIntoView({block: 'center'})", points[0])
        time.sleep(2)
        browser.save_screenshot(str(ARTIFACTS / "fiftyone_app_finetune_run.png"))
        assert_no_errors(browser, server_log)
    finally:
        dataset.delete_run("tuned")
