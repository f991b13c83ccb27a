"""The live loop against the real Label Studio server and the real backend over HTTP:
connect -> first batch in rank order -> annotations reach the store -> retrain -> re-ranked next
batch without labeled clauses -> /predict results accepted and shown by Label Studio."""
from __future__ import annotations

import time

import pytest
import requests

from annotator import LabelStudioClient, ModelRegistry, Store, choices_result
from annotator.connect import connect_project
from annotator.project import import_labels, ingest_documents
from annotator.loop import train_project
from annotator.services import BackendServer

from ..conftest import SOURCES
from .conftest import wait_for

pytestmark = pytest.mark.e2e


@pytest.fixture
def project(settings, tiny_corpus, label_studio):
    """A project with the newsletters ingested, 300 seed labels, a first model, a backend running."""
    settings = settings.replace(ls_url=label_studio.url, ls_api_key=label_studio.token,
                                webhook_secret="e2e-secret")
    with Store(settings.db_path) as store:
        ingest_documents(store, [SOURCES])
        import_labels(store, tiny_corpus, settings.labels)
        train_project(settings, store, ModelRegistry(settings.model_dir, store))  # as `annotator train`
    env = {"LABEL_STUDIO_URL": label_studio.url, "LABEL_STUDIO_API_KEY": label_studio.token,
           "ANNOTATOR_WEBHOOK_SECRET": "e2e-secret", "ANNOTATOR_RETRAIN_EVERY": "5",
           "ANNOTATOR_RETRAIN_DELAY": "1", "ANNOTATOR_BATCH_SIZE": "10", "ANNOTATOR_LOW_WATER": "5"}
    with BackendServer(settings.home, env=env) as backend:
        backend.start()
        settings = settings.replace(backend_url=backend.url)
        with LabelStudioClient(label_studio.url, label_studio.token) as client:
            with Store(settings.db_path) as store:
                report = connect_project(settings, store, client, title=f"e2e {time.time_ns()}")
            yield settings, backend, client, report


def annotate(client, task_id: int, labels: list[str], config) -> dict:
    return client.create_annotation(task_id, choices_result(labels, config))


def test_connect_pushes_first_batch_in_rank_order_with_predictions(project):
    settings, backend, client, report = project
    tasks = list(client.tasks(report["project_id"]))
    assert len(tasks) == settings.batch_size == report["push"]["pushed"]
    with Store(settings.db_path) as store:
        pushed = store.pending_pushed_tasks()
    # Imported in rank order: Label Studio's sequential queue serves rank 0 first.
    assert [p["ls_task_id"] for p in sorted(pushed, key=lambda p: p["rank"])] == sorted(t["id"] for t in tasks)
    for task in tasks:
        (prediction,) = task["predictions"]
        assert prediction["model_version"] == "1"
        assert 0.0 <= prediction["score"] <= 1.0
        assert prediction["result"][0]["value"]["choices"]
    # Running connect twice changes nothing.
    with Store(settings.db_path) as store:
        again = connect_project(settings, store, client, title=client.project(report["project_id"])["title"])
    assert again["project_id"] == report["project_id"] and not again["created"]
    assert again["push"]["pushed"] == 0
    assert len(list(client.tasks(report["project_id"]))) == len(tasks)


def test_annotations_reach_store_retrain_and_next_batch(project):
    settings, backend, client, report = project
    config = settings.labels_config()
    project_id = report["project_id"]
    tasks = sorted(client.tasks(project_id), key=lambda t: t["id"])
    labeled_clause_ids = []
    for i, task in enumerate(tasks[:6]):
        annotation = annotate(client, task["id"], [settings.labels[i % 3]], config)
        with Store(settings.db_path) as store:
            stored = wait_for(lambda: [a for a in store.annotations(sources=["label_studio"])
                                       if a.ls_annotation_id == annotation["id"]], 30, "the annotation in the store")
        assert stored[0].labels == (settings.labels[i % 3],)
        assert stored[0].annotator == "admin@example.com"  # the real Label Studio identity
        labeled_clause_ids.append(task["data"]["clause_id"])
    # An update replaces the labels and keeps history; the annotation is stored once.
    with Store(settings.db_path) as store:
        versions = wait_for(lambda: [v for v in store.model_versions() if v.version >= 2], 120, "a retrained model")
        assert versions[-1].n_train >= 300
        pending = wait_for(lambda: [p for p in store.pending_pushed_tasks() if p["model_version"] >= 2], 60,
                           "a batch ranked by the new model")
    live_tasks = list(client.tasks(project_id))
    live_clauses = [t["data"]["clause_id"] for t in live_tasks if not t["annotations"]]
    assert not set(live_clauses) & set(labeled_clause_ids)
    assert len(live_clauses) == len(set(live_clauses))  # no clause pushed twice
    # Labeled tasks are never deleted.
    assert sum(1 for t in live_tasks if t["annotations"]) == 6
    health = requests.get(f"{backend.url}/health", timeout=5).json()
    assert health["status"] == "UP" and int(health["model_version"]) >= 2
    assert pending


def test_predict_output_is_accepted_and_shown_by_label_studio(project):
    settings, backend, client, report = project
    project_id = report["project_id"]
    (task_id,) = client.import_tasks(project_id, [{"data": {"text": "对符合条件的科技型中小企业给予贷款贴息和融资担保支持。",
                                                             "section": ""}}])
    client.retrieve_predictions(project_id, [task_id])
    task = wait_for(lambda: (t := client.task(task_id))["predictions"] and t, 30, "a prediction from /predict")
    (prediction,) = task["predictions"]
    assert prediction["model_version"] == "1"
    assert set(prediction["result"][0]["value"]["choices"]) <= set(settings.labels)
    assert prediction["score"] is not None


def test_webhook_without_secret_is_refused(project):
    settings, backend, client, report = project
    response = requests.post(f"{backend.url}/webhook", json={"action": "START_TRAINING"}, timeout=5)
    assert response.status_code == 401
    assert "secret" in response.json()["error"]
