"""The live loop as people use it, against the real Label Studio server and the real backend over HTTP.

Two annotators log in with the accounts `annotator annotators add` made, and work the way Label
Studio's labeling page does: ``GET /api/projects/{id}/next`` for the task on screen, keep it open
while reading (across a retrain), then submit. Through at least five retrains: the queue never runs
dry while clauses are unpushed, every submit is accepted and lands on the clause that was shown,
the store holds each annotation once, and the second annotation of an overlap task was blind.
"""
from __future__ import annotations

import time

import pytest
import requests

from annotator import LabelStudioClient, ModelRegistry, Store, choices_result
from annotator.accounts import add_annotators
from annotator.connect import connect_project
from annotator.labelstudio import ls_model_version, version_from_ls
from annotator.loop import train_project
from annotator.normalize import clause_id
from annotator.project import import_labels, ingest_documents
from annotator.services import BackendServer

from ..conftest import SOURCES
from .conftest import wait_for

pytestmark = pytest.mark.e2e

RETRAIN_EVERY = 4
RETRAINS = 5


class Annotator:
    """A person in Label Studio's web UI: a logged-in browser session and the UI's own API calls."""

    def __init__(self, url: str, email: str, password: str) -> None:
        self.url, self.email = url, email
        self.session = requests.Session()
        login = f"{url}/user/login/"
        self.session.get(login, timeout=30)
        response = self.session.post(login, data={"email": email, "password": password,
                                                  "csrfmiddlewaretoken": self.session.cookies["csrftoken"]},
                                     headers={"Referer": login}, allow_redirects=False, timeout=30)
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
            headers={"X-CSRFToken": self.session.cookies["csrftoken"], "Referer": self.url}, timeout=30)


@pytest.fixture
def live(settings, tiny_corpus, label_studio):
    """The newsletters ingested, 300 seed labels, a first model, a backend running, the project
    connected, and two annotators logged in."""
    settings = settings.replace(ls_url=label_studio.url, ls_api_key=label_studio.token,
                                webhook_secret="e2e-secret", basic_auth_user="ls", basic_auth_pass="e2e-pass",
                                queue_window=30, batch_size=8,
                                retrain_every=RETRAIN_EVERY, overlap_share=0.3)
    with Store(settings.db_path) as store:
        ingest_documents(store, [SOURCES])
        import_labels(store, tiny_corpus, settings.labels)
        train_project(settings, store, ModelRegistry(settings.model_dir, store))  # as `annotator train`
    env = {"LABEL_STUDIO_URL": label_studio.url, "LABEL_STUDIO_API_KEY": label_studio.token,
           "ANNOTATOR_WEBHOOK_SECRET": "e2e-secret", "BASIC_AUTH_USER": "ls", "BASIC_AUTH_PASS": "e2e-pass",
           "ANNOTATOR_RETRAIN_EVERY": str(RETRAIN_EVERY),
           "ANNOTATOR_RETRAIN_DELAY": "600", "ANNOTATOR_RECONCILE_EVERY": "3", "ANNOTATOR_BATCH_SIZE": "8",
           "ANNOTATOR_QUEUE_WINDOW": "30", "ANNOTATOR_OVERLAP_SHARE": "0.3"}
    with BackendServer(settings.home, env=env) as backend:
        backend.start()
        settings = settings.replace(backend_url=backend.url)
        with LabelStudioClient(label_studio.url, label_studio.token) as client:
            with Store(settings.db_path) as store:
                report = connect_project(settings, store, client, title=f"live {time.time_ns()}")
            stamp = time.time_ns()
            accounts = add_annotators(client, [f"ann1-{stamp}@example.com", f"ann2-{stamp}@example.com"])
            people = [Annotator(label_studio.url, a.email, a.password) for a in accounts]
            yield settings, backend, client, report["project_id"], people


def project_version(client, project_id: int) -> int | None:
    return version_from_ls(client.project(project_id)["model_version"])


def test_two_annotators_holding_tasks_across_five_retrains(live):
    settings, backend, client, project_id, (ann1, ann2) = live
    config = settings.labels_config()
    assert client.project(project_id)["sampling"] == "Uncertainty sampling"
    first_version = project_version(client, project_id)
    assert first_version == 1  # the queue was filled with the trained model's scores
    shown: dict[int, tuple[str, str]] = {}  # Label Studio annotation id -> (annotator, text shown)
    held_across_retrain = 0
    submits = 0

    def label(person: Annotator, task: dict) -> None:
        nonlocal submits
        text = task["data"]["text"]
        assert task["data"]["clause_id"] == clause_id(text)
        predictions = [p for p in task.get("predictions") or []
                       if p["model_version"] == client.project(project_id)["model_version"]]
        prefill = (predictions[0]["result"][0]["value"]["choices"] if predictions and predictions[0]["result"]
                   else [settings.labels[submits % len(settings.labels)]])
        response = person.submit(task, prefill, config)
        assert response.status_code == 201, response.text  # never "Annotation is not saved"
        shown[response.json()["id"]] = (person.email, text)
        submits += 1

    deadline = time.monotonic() + 600
    while project_version(client, project_id) < first_version + RETRAINS:
        assert time.monotonic() < deadline, "five retrains did not happen within 10 minutes"
        # ann1 opens a task and keeps it on screen while ann2 labels enough to start a retrain.
        held = ann1.next_task(project_id)
        assert held is not None, "the queue ran dry while clauses were unpushed"
        version_before = project_version(client, project_id)
        for _ in range(RETRAIN_EVERY):
            task = ann2.next_task(project_id)
            assert task is not None, "the queue ran dry while clauses were unpushed"
            # Label Studio's lock: ann1's task is theirs, unless it is an overlap task (two people
            # label it, each blind to the other).
            assert task["id"] != held["id"] or held["overlap"] > 1
            label(ann2, task)
        wait_for(lambda: project_version(client, project_id) > version_before, 120,
                 "a retrain and the queue re-scored under the new version")
        assert ann1.next_task(project_id)["id"] == held["id"]  # still theirs after the retrain
        label(ann1, held)
        held_across_retrain += 1

    # Every submit reached the store, once, on the clause whose text was shown.
    with Store(settings.db_path) as store:
        stored = wait_for(lambda: len(found := store.annotations(sources=["label_studio"], not_policy=None))
                          >= len(shown) and found, 60, "every annotation in the store")
        by_ls_id = {a.ls_annotation_id: a for a in stored}
        assert len(by_ls_id) == len(stored) == len(shown)
        for ls_id, (email, text) in shown.items():
            annotation = by_ls_id[ls_id]
            assert annotation.annotator == email
            assert store.get_clause(annotation.clause_id).text == text
        # Blind double annotation: the second annotator of a clause saw a pre-fill from a model
        # made before the first annotation existed.
        versions = {v.version: v for v in store.model_versions()}
        by_clause: dict[str, list] = {}
        for a in stored:
            by_clause.setdefault(a.clause_id, []).append(a)
        for annotations in by_clause.values():
            first, *later = sorted(annotations, key=lambda a: a.created_at)
            for a in later:
                assert a.prefill_version is None or versions[a.prefill_version].created_at < first.created_at
        unpushed = store.count_clauses() - len(store.pushed_tasks(live_only=False))
    assert held_across_retrain >= RETRAINS and unpushed > 0
    # Nothing was deleted: every task Label Studio holds is one the store knows, by its data.
    tasks = client.task_index(project_id, config.value_key)
    assert len({t.clause_id for t in tasks}) == len(tasks)
    health = requests.get(f"{backend.url}/health", timeout=5).json()  # /health needs no credentials
    assert health["status"] == "UP" and health["reason"] is None
    # The version /health serves is the one Label Studio serves by, once its refresh is done.
    wait_for(lambda: requests.get(f"{backend.url}/health", timeout=5).json()["ls_model_version"]
             == ls_model_version(project_version(client, project_id)), 60, "Label Studio on the latest version")


def test_a_submit_without_a_webhook_still_reaches_the_store(live):
    """A member whose active organization is unset sends no webhook: the reconciliation finds the work."""
    settings, backend, client, project_id, (ann1, _) = live
    config = settings.labels_config()
    user = client.find_user(ann1.email)
    client._api("PATCH", f"api/users/{user['id']}", "clear the active organization",
                json={"active_organization": None})
    task = ann1.next_task(project_id)
    response = ann1.submit(task, [settings.labels[0]], config)
    assert response.status_code == 201
    with Store(settings.db_path) as store:
        wait_for(lambda: [a for a in store.annotations(sources=["label_studio"])
                          if a.ls_annotation_id == response.json()["id"]], 60,
                 "the annotation recovered by the reconciliation")


def test_start_training_works_with_basic_auth_alone_and_annotation_events_need_the_secret(live):
    """Label Studio's own "Start Training" carries basic auth only; annotation events need the secret."""
    settings, backend, client, project_id, _ = live
    auth = ("ls", "e2e-pass")
    versions = len(requests.get(f"{backend.url}/health", timeout=5).json()["model_version"] or "")
    response = requests.post(f"{backend.url}/webhook", json={"action": "START_TRAINING", "project": {"id": project_id}},
                             auth=auth, timeout=5)
    assert response.status_code == 201 and response.json() == {"action": "START_TRAINING", "queued": True,
                                                               "status": "ok"}
    wait_for(lambda: requests.get(f"{backend.url}/health", timeout=5).json()["model_version"] == "2", 120,
             "the version Start Training asked for")
    assert versions
    refused = requests.post(f"{backend.url}/webhook", json={"action": "START_TRAINING"}, timeout=5)
    assert refused.status_code == 401  # no basic auth
    response = requests.post(f"{backend.url}/webhook", json={"action": "ANNOTATION_CREATED",
                                                            "project": {"id": project_id}}, auth=auth, timeout=5)
    assert response.status_code == 401
    assert response.json()["error"] == "webhook secret header missing or wrong"
    other = requests.post(f"{backend.url}/webhook", json={"action": "START_TRAINING", "project": {"id": 10**6}},
                          auth=auth, timeout=5)
    assert other.status_code == 400
    assert f"this backend serves Label Studio project {project_id}, not project 1000000" in other.json()["error"]
