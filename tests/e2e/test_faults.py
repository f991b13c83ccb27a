"""Faults against the real backend process: kill -9 in the middle of a retrain, restart, and
nothing is lost: every annotation is there, the last good version serves, the half-done run is
reported, and the next retrain works. kill -9 in the middle of a batch push to the real Label
Studio, restart: the interrupted push is settled, and no clause is in Label Studio twice."""

from __future__ import annotations

import time

import pytest
import requests

from annotator import LabelStudioClient, ModelRegistry, Store, choices_result
from annotator.cycle.connect import connect_project
from annotator.cycle.loop import train_project
from annotator.cycle.project import import_labels, ingest_documents
from annotator.cli.services import BackendServer

from ..conftest import SOURCES
from .conftest import wait_for

pytestmark = pytest.mark.e2e


def webhook(url: str, k: int, text: str, labels: list[str], config) -> requests.Response:
    annotation = {
        "id": 700 + k,
        "task": 900 + k,
        "completed_by": {"email": "ann@example.com"},
        "created_at": "2026-12-01T10:00:00Z",
        "updated_at": "2026-12-01T10:00:00Z",
        "result": choices_result(labels, config),
    }
    return requests.post(
        f"{url}/webhook",
        json={
            "action": "ANNOTATION_CREATED",
            "annotation": annotation,
            "task": {"id": 900 + k, "data": {"text": text}},
            "project": {"id": 1},
        },
        timeout=30,
    )


def test_kill_9_during_a_retrain_loses_nothing(settings, tiny_corpus):
    with Store(settings.db_path) as store:
        import_labels(store, tiny_corpus, settings.labels)
        train_project(settings, store, ModelRegistry(settings.model_dir, store), holdout=0)
    config = settings.labels_config()
    texts = [
        "支持集成电路企业开展关键核心技术攻关，对符合条件的项目给予最高500万元资助。",
        "鼓励高等院校和科研院所建设概念验证中心，推动科技成果转移转化。",
        "对新认定的国家级科技企业孵化器给予一次性奖励。",
    ]
    env = {"ANNOTATOR_RETRAIN_EVERY": "1000", "ANNOTATOR_RETRAIN_DELAY": "3600"}
    backend = BackendServer(settings.home, env=env)
    try:
        backend.start()
        for k, text in enumerate(texts):
            assert webhook(backend.url, k, text, [settings.labels[k]], config).status_code == 201
        assert requests.post(f"{backend.url}/webhook", json={"action": "START_TRAINING"}, timeout=30).status_code == 201
        with Store(settings.db_path) as store:
            killed = wait_for(
                lambda: [r.id for r in store.train_runs() if r.status == "running"], 60, "the retrain to start"
            )
        backend.kill()  # SIGKILL to the server and its training worker, mid-fit
    finally:
        backend.stop()

    with Store(settings.db_path) as store:
        human = store.annotations(sources=["label_studio"])
        assert sorted(a.ls_annotation_id for a in human) == [700, 701, 702]
        assert [v.version for v in store.model_versions()] == [1]  # the interrupted fit saved nothing
        assert {r.id: r.status for r in store.train_runs()}[killed[0]] == "running"  # left behind

    backend = BackendServer(settings.home, env=env)
    try:
        backend.start()
        assert requests.post(f"{backend.url}/setup", json={"project": "1"}, timeout=30).json() == {
            "model_version": "policy-clf-v1"
        }  # the last good version serves
        predicted = requests.post(
            f"{backend.url}/predict", json={"tasks": [{"id": 1, "data": {"text": texts[0]}}]}, timeout=60
        ).json()
        assert predicted["model_version"] == "policy-clf-v1" and len(predicted["results"]) == 1
        requests.post(f"{backend.url}/webhook", json={"action": "START_TRAINING"}, timeout=30)
        with Store(settings.db_path) as store:
            wait_for(lambda: store.latest_model_version().version == 2, 180, "the next retrain")
            run = {r.id: r for r in store.train_runs()}[killed[0]]
            assert run.status == "failed" and run.error.startswith("interrupted")
            assert store.latest_model_version().n_train == len(store.labeled_clause_ids())
        assert not list(settings.model_dir.glob(".model-*.tmp"))  # a half-written file is cleaned up
    finally:
        backend.stop()


def _start_training(backend: BackendServer) -> None:
    assert requests.post(f"{backend.url}/webhook", json={"action": "START_TRAINING"}, timeout=30).status_code == 201


def test_kill_9_during_a_batch_push_pushes_no_clause_twice(settings, tiny_corpus, label_studio):
    settings = settings.replace(ls_url=label_studio.url, ls_api_key=label_studio.token, queue_window=10, batch_size=10)
    with Store(settings.db_path) as store:
        ingest_documents(store, [SOURCES])
        import_labels(store, tiny_corpus, settings.labels)
        train_project(settings, store, ModelRegistry(settings.model_dir, store))
    env = {
        "LABEL_STUDIO_URL": label_studio.url,
        "LABEL_STUDIO_API_KEY": label_studio.token,
        "ANNOTATOR_RETRAIN_EVERY": "1000",
        "ANNOTATOR_RETRAIN_DELAY": "3600",
        "ANNOTATOR_BATCH_SIZE": "10",
        "ANNOTATOR_QUEUE_WINDOW": "10",
    }
    # A big next batch (300 clauses with their predictions): an import long enough to cut off.
    big_batch = dict(env, ANNOTATOR_BATCH_SIZE="300", ANNOTATOR_QUEUE_WINDOW="310")
    with LabelStudioClient(label_studio.url, label_studio.token) as client:
        with BackendServer(settings.home, env=env) as backend:
            backend.start()
            with Store(settings.db_path) as store:
                report = connect_project(
                    settings.replace(backend_url=backend.url), store, client, title=f"faults {time.time_ns()}"
                )
        project_id = report["project_id"]
        assert len(list(client.tasks(project_id))) == 10

        backend = BackendServer(settings.home, env=big_batch)
        try:
            backend.start()
            _start_training(backend)
            with Store(settings.db_path) as store:
                # The batch is recorded before its import (ls_task_id still NULL): kill right then.
                wait_for(
                    lambda: [p for p in store.pushed_tasks() if p.ls_task_id is None],
                    180,
                    "a push recorded before its import",
                )
            backend.kill()
        finally:
            backend.stop()
        with Store(settings.db_path) as store:
            cut_off = [p.clause_id for p in store.pushed_tasks() if p.ls_task_id is None]
        assert cut_off  # the crash left a push unconfirmed

        with BackendServer(settings.home, env=env) as backend:  # restarted: the next cycle settles it
            backend.start()
            _start_training(backend)
            with Store(settings.db_path) as store:
                wait_for(
                    lambda: not [p for p in store.pushed_tasks() if p.ls_task_id is None],
                    180,
                    "the interrupted push settled",
                )
                wait_for(
                    lambda: not requests.get(f"{backend.url}/health", timeout=5).json()["training"]["running"],
                    180,
                    "the cycle to finish",
                )
                live = {p.ls_task_id: p.clause_id for p in store.pushed_tasks()}
        tasks = {t["id"]: t["data"]["clause_id"] for t in client.tasks(project_id)}
    clauses = list(tasks.values())
    assert len(clauses) == len(set(clauses))  # no clause in Label Studio twice
    assert tasks == live  # the store knows every task Label Studio holds, and no other
    returned = set(cut_off) - set(clauses)  # cut off before Label Studio got them: back in the pool
    assert not returned & set(live.values())
