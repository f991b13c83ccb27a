"""A backend added the way Label Studio users add one: on the project's Model page, not `annotator connect`.

The lead creates the project in Label Studio, imports the tasks file `annotator ingest` wrote, and
adds the backend's URL on Settings → Model (``POST /api/ml``, which calls the backend's /health and
/setup and creates a webhook without custom headers). The backend learns the project from /setup,
switches it to uncertainty sampling, gives the webhook its secret, scores the waiting tasks; an
annotator labels, and the queue is re-ranked by a retrained model.
"""

from __future__ import annotations

import json
import time

import pytest
import requests

from annotator import LabelStudioClient, ModelRegistry, Store
from annotator.labelstudio.accounts import add_annotators
from annotator.labelstudio.client import WEBHOOK_SECRET_HEADER
from annotator.cycle.loop import train_project
from annotator.cycle.project import import_labels, ingest_documents
from annotator.cli.services import BackendServer

from ..conftest import SOURCES
from .conftest import Annotator, project_version, wait_for

pytestmark = pytest.mark.e2e


def test_a_backend_added_on_the_model_page_runs_the_whole_loop(settings, tiny_corpus, label_studio, tmp_path):
    tasks_file = tmp_path / "tasks.json"
    with Store(settings.db_path) as store:
        ingest_documents(store, [SOURCES], tasks_out=tasks_file)
        import_labels(store, tiny_corpus, settings.labels)
        train_project(settings, store, ModelRegistry(settings.model_dir, store))
    env = {
        "LABEL_STUDIO_URL": label_studio.url,
        "LABEL_STUDIO_API_KEY": label_studio.token,
        "ANNOTATOR_WEBHOOK_SECRET": "model-page-secret",
        "ANNOTATOR_RETRAIN_EVERY": "3",
        "ANNOTATOR_RETRAIN_DELAY": "600",
        "ANNOTATOR_RECONCILE_EVERY": "5",
    }
    with (
        BackendServer(settings.home, env=env) as backend,
        LabelStudioClient(label_studio.url, label_studio.token) as client,
    ):
        backend.start()
        project_id, _ = client.ensure_project(f"model page {time.time_ns()}", settings.labels_config().xml)
        client.import_tasks(project_id, json.loads(tasks_file.read_text(encoding="utf-8")))
        # Settings -> Model -> Connect Model: what Label Studio's page posts.
        client._api(
            "POST",
            "api/ml",
            "connect a model",
            json={"project": project_id, "url": backend.url, "title": "policy classifier"},
        )
        wait_for(lambda: project_version(client, project_id) == 1, 120, "the tasks scored by version 1")
        project = client.project(project_id)
        assert project["sampling"] == "Uncertainty sampling"
        health = requests.get(f"{backend.url}/health", timeout=5).json()
        assert health["label_studio"]["project_id"] == project_id and health["status"] == "UP"
        hooks = client._api("GET", f"api/webhooks?project={project_id}", "list webhooks")
        assert [h["headers"].get(WEBHOOK_SECRET_HEADER) for h in hooks if h["url"].startswith(backend.url)] == [
            "model-page-secret"
        ]
        (account,) = add_annotators(client, [f"page-{time.time_ns()}@example.com"])
        person = Annotator(label_studio.url, account.email, account.password)
        config = settings.labels_config()
        for i in range(3):
            assert person.submit(person.next_task(project_id), [settings.labels[i]], config).status_code == 201
        wait_for(lambda: project_version(client, project_id) == 2, 120, "the queue re-ranked by version 2")
        with Store(settings.db_path) as store:
            assert len(store.annotations(sources=["label_studio"])) == 3
