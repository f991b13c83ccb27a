"""README's "Using it on your own documents", command by command as a user types them (the CLI in
subprocesses, ``annotator serve`` as the backend) against the real Label Studio: ingest, import
the labels, train, serve with LABEL_STUDIO_URL / LABEL_STUDIO_API_KEY exported, connect; then
annotating in Label Studio brings a retrained model and a batch it ranked, and ``sync`` finds
nothing missing."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import pytest
import requests

from annotator import LabelStudioClient, Settings, Store, choices_result
from annotator.cli.services import free_port, wait_http

from ..conftest import SOURCES
from .conftest import ANNOTATOR, wait_for

pytestmark = pytest.mark.e2e


def test_the_readme_flow_for_your_own_documents(tmp_path, tiny_corpus, label_studio):
    home = tmp_path / "myproject"
    env = dict(
        os.environ,
        ANNOTATOR_RETRAIN_EVERY="5",
        ANNOTATOR_RETRAIN_DELAY="1",
        ANNOTATOR_BATCH_SIZE="10",
        ANNOTATOR_QUEUE_WINDOW="10",
        ANNOTATOR_LS_PROJECT_TITLE=f"readme {time.time_ns()}",
    )
    env.pop("ANNOTATOR_HOME", None)

    def annotator(*args: str) -> subprocess.CompletedProcess:
        done = subprocess.run(
            [ANNOTATOR, "--home", str(home), *args], env=env, capture_output=True, text=True, timeout=300
        )
        assert done.returncode == 0, f"annotator {' '.join(args)}:\n{done.stderr}"
        return done

    annotator("ingest", str(SOURCES))
    annotator("import-labels", str(tiny_corpus))
    annotator("train")
    env.update(LABEL_STUDIO_URL=label_studio.url, LABEL_STUDIO_API_KEY=label_studio.token)
    port = free_port()
    backend_url = f"http://127.0.0.1:{port}"
    with open(tmp_path / "serve.log", "w") as log:
        serve = subprocess.Popen(
            [ANNOTATOR, "--home", str(home), "serve", "--port", str(port)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        wait_http(f"{backend_url}/health", timeout=60, process=serve, log_file=tmp_path / "serve.log")
        health = requests.get(f"{backend_url}/health", timeout=5).json()
        assert health["model_version"] == "1"
        assert health["label_studio"] == {"url": label_studio.url, "api_key_set": True, "project_id": None}

        report = json.loads(annotator("connect", "--backend-url", backend_url, "--json").stdout)
        # `serve` learned the project from Label Studio's /setup call and may have filled the queue
        # first: either way ten tasks wait, each once.
        assert report["created"] and report["push"]["pending"] == 10
        project_id = report["project_id"]

        settings = Settings(home=home)
        config = settings.labels_config()
        with LabelStudioClient(label_studio.url, label_studio.token) as client:
            first = sorted(client.tasks(project_id), key=lambda t: t["id"])
            for i, task in enumerate(first[:5]):
                client.create_annotation(task["id"], choices_result([settings.labels[i]], config))
            with Store(settings.store_url) as store:
                wait_for(
                    lambda: len(store.annotations(sources=["label_studio"])) == 5, 30, "the 5 annotations in the store"
                )
                wait_for(lambda: store.latest_model_version().version >= 2, 120, "a retrained model")
                wait_for(
                    lambda: client.project(project_id)["model_version"] == "policy-clf-v2",
                    60,
                    "the waiting tasks re-scored by the new model, by `annotator serve` itself",
                )
                assert all(p.model_version == 2 for p in store.pending_pushed_tasks())
            # A batch is recorded before its import (so a crash cannot lose track of it): wait for Label Studio.
            live = wait_for(
                lambda: len(tasks := [t["data"]["clause_id"] for t in client.tasks(project_id)]) > 10 and tasks,
                60,
                "the new batch in Label Studio",
            )
        assert len(live) == len(set(live))  # none twice

        synced = json.loads(annotator("sync", "--json").stdout)
        assert not synced["problems"] and synced["queue"]["returned"] == 0  # nothing to repair
        status = annotator("status", "--json").stdout
        assert json.loads(status)  # a JSON document a script can read
    finally:
        os.killpg(serve.pid, signal.SIGTERM)
        serve.wait(timeout=60)
