"""Labeling in Label Studio's own labeling page, in headless Chromium, across retrains.

An annotator made by `annotator annotators add` logs in through Label Studio's login form with
the one-time password, opens the project's labeling stream, ticks the pre-filled choice (or the
first label), and submits, task after task; a second annotator labels through the API meanwhile,
so the model retrains (at least twice) while the page is open. Every submit from the page reaches
the store on the clause whose text the page showed. Screenshots: tests/artifacts/labeling-*.png.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest

from annotator import Store

from .conftest import RETRAIN_EVERY, chromium, live, project_version, wait_for  # noqa: F401 (fixture)

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "tests" / "artifacts"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"

if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
    pytest.skip(
        f"needs Debian's chromium and chromium-driver ({CHROMIUM}, {CHROMEDRIVER} not found; "
        "run `make system-deps` as root)",
        allow_module_level=True,
    )

from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support import expected_conditions as ec  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402


@pytest.fixture
def browser(tmp_path):
    driver = chromium(tmp_path / "chromium-profile", 1400, 1000)
    yield driver
    driver.quit()


def log_in(driver, url: str, email: str, password: str) -> None:
    driver.get(f"{url}/user/login/")
    WebDriverWait(driver, 60).until(ec.presence_of_element_located((By.NAME, "email"))).send_keys(email)
    driver.find_element(By.NAME, "password").send_keys(password)
    driver.find_element(By.CSS_SELECTOR, "form button[type=submit], form input[type=submit]").click()
    WebDriverWait(driver, 60).until(lambda d: "/user/login" not in d.current_url)


def shown_text(driver, candidates: set[str]) -> str:
    """The clause the labeling page shows (one of the project's task texts)."""

    def find(d):
        body = d.find_element(By.TAG_NAME, "body").text
        return next((t for t in candidates if t in body), None)

    return WebDriverWait(driver, 60).until(find)


def test_an_annotator_labels_in_label_studios_page_across_two_retrains(live, browser):
    settings, backend, client, project_id, (ann1, ann2) = live
    config = settings.labels_config()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with Store(settings.db_path) as store:
        texts = {c.text for c in store.clauses()}
    log_in(browser, client.url, ann1.email, ann1.password)
    browser.get(f"{client.url}/projects/{project_id}/data?labeling=1")
    first_version = project_version(client, project_id)
    submitted: list[str] = []
    while project_version(client, project_id) < first_version + 2 or len(submitted) < 3:
        assert len(submitted) < 12, "two retrains did not happen while the page was labeling"
        text = shown_text(browser, texts)
        label = settings.labels[len(submitted) % len(settings.labels)]
        choice = WebDriverWait(browser, 30).until(
            ec.element_to_be_clickable(
                (
                    By.XPATH,
                    f"//label[.//*[normalize-space(text())='{label}']] | "
                    f"//*[contains(@class,'choice')]//*[normalize-space(text())='{label}']",
                )
            )
        )
        choice.click()
        browser.save_screenshot(str(ARTIFACTS / f"labeling-{len(submitted)}.png"))
        WebDriverWait(browser, 30).until(
            ec.element_to_be_clickable((By.XPATH, "//button[normalize-space()='Submit' or @aria-label='submit']"))
        ).click()
        submitted.append(text)
        # Meanwhile the other annotator labels enough to start a retrain.
        version = project_version(client, project_id)
        for _ in range(RETRAIN_EVERY):
            task = ann2.next_task(project_id)
            assert task is not None
            assert ann2.submit(task, [settings.labels[3]], config).status_code == 201
        wait_for(lambda: project_version(client, project_id) > version, 120, "a retrain")
        WebDriverWait(browser, 60).until(
            lambda d: text not in d.find_element(By.TAG_NAME, "body").text or time.sleep(0.2)
        )
    browser.save_screenshot(str(ARTIFACTS / "labeling-last.png"))
    with Store(settings.db_path) as store:
        mine = wait_for(
            lambda: (
                len(found := [a for a in store.annotations(sources=["label_studio"]) if a.annotator == ann1.email])
                >= len(submitted)
                and found
            ),
            60,
            "the page's annotations in the store",
        )
        assert sorted(store.get_clause(a.clause_id).text for a in mine) == sorted(submitted)
    assert project_version(client, project_id) >= first_version + 2
