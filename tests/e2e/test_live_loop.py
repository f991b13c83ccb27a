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

from annotator import Store
from annotator.labelstudio.client import ls_model_version
from annotator.text.normalize import clause_id

from .conftest import RETRAIN_EVERY, Annotator, live, project_version, wait_for  # noqa: F401 (fixture)

pytestmark = pytest.mark.e2e

RETRAINS = 5


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
        predictions = [
            p
            for p in task.get("predictions") or []
            if p["model_version"] == client.project(project_id)["model_version"]
        ]
        prefill = (
            predictions[0]["result"][0]["value"]["choices"]
            if predictions and predictions[0]["result"]
            else [settings.labels[submits % len(settings.labels)]]
        )
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
        wait_for(
            lambda: project_version(client, project_id) > version_before,
            120,
            "a retrain and the queue re-scored under the new version",
        )
        assert ann1.next_task(project_id)["id"] == held["id"]  # still theirs after the retrain
        label(ann1, held)
        held_across_retrain += 1

    # Every submit reached the store, once, on the clause whose text was shown.
    with Store(settings.db_path) as store:
        stored = wait_for(
            lambda: len(found := store.annotations(sources=["label_studio"], not_policy=None)) >= len(shown) and found,
            60,
            "every annotation in the store",
        )
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
    wait_for(
        lambda: (
            requests.get(f"{backend.url}/health", timeout=5).json()["ls_model_version"]
            == ls_model_version(project_version(client, project_id))
        ),
        60,
        "Label Studio on the latest version",
    )


def test_a_submit_without_a_webhook_still_reaches_the_store(live):
    """A member whose active organization is unset sends no webhook: the reconciliation finds the work."""
    settings, backend, client, project_id, (ann1, _) = live
    config = settings.labels_config()
    user = client.find_user(ann1.email)
    client._api("PATCH", f"api/users/{user['id']}", "clear the active organization", json={"active_organization": None})
    task = ann1.next_task(project_id)
    response = ann1.submit(task, [settings.labels[0]], config)
    assert response.status_code == 201
    with Store(settings.db_path) as store:
        wait_for(
            lambda: [
                a for a in store.annotations(sources=["label_studio"]) if a.ls_annotation_id == response.json()["id"]
            ],
            60,
            "the annotation recovered by the reconciliation",
        )


def test_start_training_works_with_basic_auth_alone_and_annotation_events_need_the_secret(live):
    """Label Studio's own "Start Training" carries basic auth only; annotation events need the secret."""
    settings, backend, client, project_id, _ = live
    auth = ("ls", "e2e-pass")
    versions = len(requests.get(f"{backend.url}/health", timeout=5).json()["model_version"] or "")
    response = requests.post(
        f"{backend.url}/webhook", json={"action": "START_TRAINING", "project": {"id": project_id}}, auth=auth, timeout=5
    )
    assert response.status_code == 201 and response.json() == {
        "action": "START_TRAINING",
        "queued": True,
        "status": "ok",
    }
    wait_for(
        lambda: requests.get(f"{backend.url}/health", timeout=5).json()["model_version"] == "2",
        120,
        "the version Start Training asked for",
    )
    assert versions
    refused = requests.post(f"{backend.url}/webhook", json={"action": "START_TRAINING"}, timeout=5)
    assert refused.status_code == 401  # no basic auth
    response = requests.post(
        f"{backend.url}/webhook",
        json={"action": "ANNOTATION_CREATED", "project": {"id": project_id}},
        auth=auth,
        timeout=5,
    )
    assert response.status_code == 401
    assert response.json()["error"] == "webhook secret header missing or wrong"
    other = requests.post(
        f"{backend.url}/webhook", json={"action": "START_TRAINING", "project": {"id": 10**6}}, auth=auth, timeout=5
    )
    assert other.status_code == 400
    assert f"this backend serves Label Studio project {project_id}, not project 1000000" in other.json()["error"]
