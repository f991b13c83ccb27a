"""The dashboard in headless Chromium: figures match `annotator agreement --json`, a resolve works.

The app runs on a free loopback port (werkzeug ``make_server`` in a thread) over a store of real
clauses with synthetic annotations from six annotators; Selenium drives Debian's chromium through
chromedriver. Screenshots go to tests/artifacts/dashboard.png and (palette-compressed, for the
README) docs/dashboard.png.
"""

from __future__ import annotations


import base64
import io
import json
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from annotator.settings import Settings
from annotator.storage.store import Store
from backend import create_app
from tests.unit.test_dashboard import build_project, shown

from .conftest import chromium

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
ANNOTATORS = ("chen-jie", "liu.yang", "sun_li", "zhang.min", "李娜", "王伟")
WIDTH, HEIGHT = 1400, 2400
DOCS_LIMIT = 300 * 1024

if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
    pytest.skip(
        f"needs Debian's chromium and chromium-driver ({CHROMIUM}, {CHROMEDRIVER} not found; "
        "run `make system-deps` as root)",
        allow_module_level=True,
    )

from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support import expected_conditions as ec  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402
from werkzeug.serving import make_server  # noqa: E402


@pytest.fixture
def served(tmp_path):
    """(settings, base URL) of a running dashboard over a realistic store."""
    settings = Settings(home=tmp_path / "home")
    with Store(settings.db_path) as store:
        build_project(
            store,
            settings.labels,
            n_clauses=500,
            annotators=ANNOTATORS,
            n_seed=150,
            n_versions=7,
            n_adjudicated=4,
            seed=7,
        )
    server = make_server("127.0.0.1", 0, create_app(settings, start_queue=False), threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="dashboard-e2e", daemon=True)
    thread.start()
    yield settings, f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(timeout=10)
    server.server_close()


@pytest.fixture
def browser(tmp_path):
    driver = chromium(tmp_path / "chromium-profile", WIDTH, HEIGHT, "--hide-scrollbars")
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()


def cli_agreement(settings: Settings) -> dict:
    """What `annotator agreement --json` prints for this project (the report is under "agreement")."""
    done = subprocess.run(
        [sys.executable, "-m", "annotator.cli", "--home", str(settings.home), "agreement", "--json"],
        capture_output=True,
        text=True,
        encoding="utf-8",
        check=True,
        timeout=120,
    )
    return json.loads(done.stdout)["agreement"]


def lookup(report: dict, path: str):
    value = report
    for part in path.split("."):
        value = value[int(part)] if isinstance(value, list) else value[part]
    return value


def cjk_font_installed() -> bool:
    fc_list = shutil.which("fc-list")
    if fc_list is None:
        return False
    fonts = subprocess.run([fc_list, ":lang=zh-cn", "family"], capture_output=True, text=True, timeout=60).stdout
    return "Noto Sans CJK" in fonts or "Noto Sans SC" in fonts


def save_screenshot(driver, name: str = "dashboard.png", height: int | None = None) -> bytes:
    """The page as PNG (``height`` pixels from the top; the whole page, beyond the viewport, by
    default), also written to tests/artifacts/``name``."""
    height = height or driver.execute_script("return document.documentElement.scrollHeight")
    shot = driver.execute_cdp_cmd(
        "Page.captureScreenshot",
        {
            "format": "png",
            "captureBeyondViewport": True,
            "clip": {"x": 0, "y": 0, "width": WIDTH, "height": height, "scale": 1},
        },
    )
    png = base64.b64decode(shot["data"])
    artifacts = REPO / "tests" / "artifacts"
    artifacts.mkdir(parents=True, exist_ok=True)
    (artifacts / name).write_bytes(png)
    return png


def save_docs_copy(png: bytes) -> Path:
    """A palette PNG for the README (flat UI colours survive 256 colours; keeps it under 300 KB)."""
    from PIL import Image

    image = Image.open(io.BytesIO(png)).convert("RGB")
    target = REPO / "docs" / "dashboard.png"
    target.parent.mkdir(parents=True, exist_ok=True)
    for colors in (256, 128, 64):
        buffer = io.BytesIO()
        image.quantize(colors=colors, method=Image.Quantize.MEDIANCUT).save(buffer, "PNG", optimize=True)
        if buffer.tell() <= DOCS_LIMIT:
            break
    target.write_bytes(buffer.getvalue())
    return target


def test_dashboard_in_chromium(served, browser):
    settings, base = served
    assert cjk_font_installed(), "no CJK font: install fonts-noto-cjk or Chinese text renders as boxes"
    browser.get(f"{base}/dashboard?queue=4")
    WebDriverWait(browser, 20).until(ec.presence_of_element_located((By.ID, "queue")))

    # Every figure on the page equals the CLI's report, rounded as displayed.
    report = cli_agreement(settings)
    assert report["n_annotators"] == len(ANNOTATORS) and report["n_items"] > 300
    figures = browser.find_elements(By.CSS_SELECTOR, "[data-figure]")
    paths = set()
    for element in figures:
        path, kind = element.get_attribute("data-figure"), element.get_attribute("data-kind")
        value = lookup(report, path)
        assert element.get_attribute("textContent").strip() == shown(value, kind), path
        assert element.get_attribute("data-value") == ("" if value is None else str(value)), path
        paths.add(path)
    assert {f"per_label.{i}.krippendorff_alpha" for i in range(len(settings.labels))} <= paths
    assert {f"pairs.{k}.cohen_kappa" for k in range(len(report["pairs"]))} <= paths
    assert "set_level.krippendorff_alpha_masi" in paths
    for panel in (
        "progress",
        "throughput",
        "annotators",
        "labels",
        "agreement",
        "annotator-matrix",
        "learning-curve",
        "queue",
    ):
        assert browser.find_element(By.ID, panel).is_displayed(), panel
    label_cell = browser.find_element(By.CSS_SELECTOR, f'#labels tr[data-label="{settings.labels[0]}"] td')
    assert label_cell.text == settings.labels[0] and label_cell.size["width"] > 30

    # Resolve the first disagreement with the form as a lead would.
    item = browser.find_element(By.CSS_SELECTOR, "#queue article.qitem")
    clause_id = item.get_attribute("data-clause")
    boxes = item.find_elements(By.CSS_SELECTOR, "fieldset input[name=labels]")
    if not boxes[-1].is_selected():  # pick one more label than the pre-checked ones
        boxes[-1].click()
    chosen = tuple(
        label
        for label in settings.labels
        if label in {box.get_attribute("value") for box in boxes if box.is_selected()}
    )
    resolver = item.find_element(By.NAME, "resolver")
    resolver.clear()
    resolver.send_keys("组长 王")
    item.find_element(By.CSS_SELECTOR, "button.resolve-button").click()
    WebDriverWait(browser, 20).until(ec.presence_of_element_located((By.CSS_SELECTOR, ".flash")))
    assert f"Resolved {clause_id}" in browser.find_element(By.CSS_SELECTOR, ".flash").text
    with Store(settings.db_path) as store:
        assert store.adjudications()[clause_id] == chosen
    queue = [a.get_attribute("data-clause") for a in browser.find_elements(By.CSS_SELECTOR, "#queue article")]
    assert clause_id not in queue and len(queue) == 4

    browser.execute_script("window.scrollTo(0, 0)")
    png = save_screenshot(browser)
    assert len(png) > 50_000
    if os.environ.get("ANNOTATOR_UPDATE_DOCS_SCREENSHOT"):  # refresh the README's picture on demand
        docs = save_docs_copy(png)
        assert docs.stat().st_size <= DOCS_LIMIT


def test_what_needs_attention_is_shown_first_in_chromium(served, browser):
    """A connected project whose backend lacks the Label Studio API key: the lead sees why no new
    batch arrives before any figure."""
    from annotator.cycle.loop import PROJECT_KEY

    settings, base = served
    with Store(settings.db_path) as store:
        store.set_meta(PROJECT_KEY, "12")
    browser.get(f"{base}/dashboard")
    alerts = WebDriverWait(browser, 20).until(ec.visibility_of_element_located((By.ID, "alerts")))
    assert alerts.get_attribute("role") == "alert"
    (item,) = alerts.find_elements(By.TAG_NAME, "li")
    assert item.text.startswith("Batches cannot be pushed: the project is connected to Label Studio project 12")
    progress = browser.find_element(By.ID, "progress")
    assert alerts.location["y"] < progress.location["y"]
    assert alerts.size["width"] >= progress.size["width"] - 2  # full width, as the progress panel
    assert 0 < alerts.location["y"] < 400  # on the first screen
    save_screenshot(browser, "dashboard_alerts.png", height=700)
