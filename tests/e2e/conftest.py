"""A real Label Studio server for the end-to-end tests: one per test session, on a free loopback
port, with a temporary data dir (first start runs the migrations: about a minute)."""

from __future__ import annotations

import os
import shutil
import sys
import time
from pathlib import Path

import pytest
import requests

from annotator import LabelStudioClient, ModelRegistry, Store, choices_result
from annotator.labelstudio.accounts import add_annotators
from annotator.cycle.connect import connect_project
from annotator.labelstudio.client import version_from_ls
from annotator.cycle.loop import train_project
from annotator.cycle.project import import_labels, ingest_documents
from annotator.cli.services import BackendServer, LabelStudioServer
from annotator.cycle.sync import remember_users

from ..conftest import SOURCES

ANNOTATOR = str(Path(sys.executable).parent / "annotator")  # the console script, as a user runs it


@pytest.fixture(scope="session")
def label_studio(tmp_path_factory):
    """A fresh Label Studio; ``ANNOTATOR_E2E_LS_PORT=N`` reuses one already running on port N with
    the demo's admin and token (a developer's loop: no minute of migrations per run)."""
    port = os.environ.get("ANNOTATOR_E2E_LS_PORT")
    if port:
        yield LabelStudioServer(tmp_path_factory.mktemp("label-studio"), port=int(port))
        return
    server = LabelStudioServer(tmp_path_factory.mktemp("label-studio"))
    server.start(timeout=300)
    yield server
    server.stop()


def wait_for(predicate, timeout: float, what: str):
    """Poll ``predicate`` until it returns something truthy (returned); fail naming ``what``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


RETRAIN_EVERY = 4  # labels per retrain in the live-loop tests


class Annotator:
    """A person in Label Studio's web UI: a logged-in browser session and the UI's own API calls."""

    def __init__(self, url: str, email: str, password: str) -> None:
        self.url, self.email, self.password = url, email, password
        self.session = requests.Session()
        login = f"{url}/user/login/"
        self.session.get(login, timeout=30)
        response = self.session.post(
            login,
            data={"email": email, "password": password, "csrfmiddlewaretoken": self.session.cookies["csrftoken"]},
            headers={"Referer": login},
            allow_redirects=False,
            timeout=30,
        )
        assert response.status_code == 302, f"{email} could not log in: HTTP {response.status_code}"

    def next_task(self, project_id: int) -> dict | None:
        response = self.session.get(f"{self.url}/api/projects/{project_id}/next", timeout=30)
        if response.status_code == 404:  # "No More Tasks Left in Queue"
            return None
        response.raise_for_status()
        return response.json()

    def submit(self, task: dict, labels: list[str], config) -> requests.Response:
        return self.session.post(
            f"{self.url}/api/tasks/{task['id']}/annotations?project={task['project']}",
            json={"result": choices_result(labels, config), "task": task["id"], "lead_time": 3.0},
            headers={"X-CSRFToken": self.session.cookies["csrftoken"], "Referer": self.url},
            timeout=30,
        )


@pytest.fixture
def live(settings, tiny_corpus, label_studio):
    """The newsletters ingested, 300 seed labels, a first model, a backend running, the project
    connected, and two annotators logged in."""
    settings = settings.replace(
        ls_url=label_studio.url,
        ls_api_key=label_studio.token,
        webhook_secret="e2e-secret",
        basic_auth_user="ls",
        basic_auth_pass="e2e-pass",
        queue_window=30,
        batch_size=8,
        retrain_every=RETRAIN_EVERY,
        overlap_share=0.3,
    )
    with Store(settings.db_path) as store:
        ingest_documents(store, [SOURCES])
        import_labels(store, tiny_corpus, settings.labels)
        train_project(settings, store, ModelRegistry(settings.model_dir, store))  # as `annotator train`
    env = {
        "LABEL_STUDIO_URL": label_studio.url,
        "LABEL_STUDIO_API_KEY": label_studio.token,
        "ANNOTATOR_WEBHOOK_SECRET": "e2e-secret",
        "BASIC_AUTH_USER": "ls",
        "BASIC_AUTH_PASS": "e2e-pass",
        "ANNOTATOR_RETRAIN_EVERY": str(RETRAIN_EVERY),
        "ANNOTATOR_RETRAIN_DELAY": "600",
        "ANNOTATOR_RECONCILE_EVERY": "3",
        "ANNOTATOR_BATCH_SIZE": "8",
        "ANNOTATOR_QUEUE_WINDOW": "30",
        "ANNOTATOR_OVERLAP_SHARE": "0.3",
    }
    with BackendServer(settings.home, env=env) as backend:
        backend.start()
        settings = settings.replace(backend_url=backend.url)
        with LabelStudioClient(label_studio.url, label_studio.token) as client:
            with Store(settings.db_path) as store:
                report = connect_project(settings, store, client, title=f"live {time.time_ns()}")
            stamp = time.time_ns()
            accounts = add_annotators(client, [f"ann1-{stamp}@example.com", f"ann2-{stamp}@example.com"])
            with Store(settings.db_path) as store:
                remember_users(store, client)  # as `annotator annotators add` does
            people = [Annotator(label_studio.url, a.email, a.password) for a in accounts]
            yield settings, backend, client, report["project_id"], people


def project_version(client, project_id: int) -> int | None:
    return version_from_ls(client.project(project_id)["model_version"])


CHROMIUM_FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--force-device-scale-factor=1",
)


def chromium(profile: Path, width: int, height: int, *extra: str):
    """Debian's chromium under Selenium, headless, with a fresh profile (the caller quits it)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    options.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
    for arg in (*CHROMIUM_FLAGS, *extra, f"--window-size={width},{height}", f"--user-data-dir={profile}"):
        options.add_argument(arg)
    driver = webdriver.Chrome(
        options=options, service=Service(executable_path=shutil.which("chromedriver") or "/usr/bin/chromedriver")
    )
    driver.set_page_load_timeout(60)
    return driver
