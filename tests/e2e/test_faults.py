"""Faults against the real backend process: kill -9 in the middle of a retrain, restart, and
nothing is lost: every annotation is there, the last good version serves, the half-done run is
reported, and the next retrain works."""
from __future__ import annotations


import pytest
import requests

from annotator import ModelRegistry, Store, choices_result
from annotator.loop import train_project
from annotator.project import import_labels
from annotator.services import BackendServer

from .conftest import wait_for

pytestmark = pytest.mark.e2e


def webhook(url: str, k: int, text: str, labels: list[str], config) -> requests.Response:
    annotation = {"id": 700 + k, "task": 900 + k, "completed_by": {"email": "ann@example.com"},
                  "created_at": "2026-12-01T10:00:00Z", "updated_at": "2026-12-01T10:00:00Z",
                  "result": choices_result(labels, config)}
    return requests.post(f"{url}/webhook", json={"action": "ANNOTATION_CREATED", "annotation": annotation,
                                                 "task": {"id": 900 + k, "data": {"text": text}},
                                                 "project": {"id": 1}}, timeout=30)


def test_kill_9_during_a_retrain_loses_nothing(settings, tiny_corpus):
    with Store(settings.db_path) as store:
        import_labels(store, tiny_corpus, settings.labels)
        train_project(settings, store, ModelRegistry(settings.model_dir, store), holdout=0)
    config = settings.labels_config()
    texts = ["支持集成电路企业开展关键核心技术攻关，对符合条件的项目给予最高500万元资助。",
             "鼓励高等院校和科研院所建设概念验证中心，推动科技成果转移转化。",
             "对新认定的国家级科技企业孵化器给予一次性奖励。"]
    env = {"ANNOTATOR_RETRAIN_EVERY": "1000", "ANNOTATOR_RETRAIN_DELAY": "3600"}
    backend = BackendServer(settings.home, env=env)
    try:
        backend.start()
        for k, text in enumerate(texts):
            assert webhook(backend.url, k, text, [settings.labels[k]], config).status_code == 201
        assert requests.post(f"{backend.url}/webhook", json={"action": "START_TRAINING"},
                             timeout=30).status_code == 201
        with Store(settings.db_path) as store:
            killed = wait_for(lambda: [r["id"] for r in store.train_runs() if r["status"] == "running"], 60,
                              "the retrain to start")
        backend.kill()  # SIGKILL to the server and its training worker, mid-fit
    finally:
        backend.stop()

    with Store(settings.db_path) as store:
        human = store.annotations(sources=["label_studio"])
        assert sorted(a.ls_annotation_id for a in human) == [700, 701, 702]
        assert [v.version for v in store.model_versions()] == [1]  # the interrupted fit saved nothing
        assert {r["id"]: r["status"] for r in store.train_runs()}[killed[0]] == "running"  # left behind

    backend = BackendServer(settings.home, env=env)
    try:
        backend.start()
        assert requests.post(f"{backend.url}/setup", json={"project": "1"}, timeout=30).json() == {
            "model_version": "1"}  # the last good version serves
        predicted = requests.post(f"{backend.url}/predict", json={"tasks": [{"id": 1, "data": {"text": texts[0]}}]},
                                  timeout=60).json()
        assert predicted["model_version"] == "1" and len(predicted["results"]) == 1
        requests.post(f"{backend.url}/webhook", json={"action": "START_TRAINING"}, timeout=30)
        with Store(settings.db_path) as store:
            wait_for(lambda: store.latest_model_version().version == 2, 180, "the next retrain")
            run = {r["id"]: r for r in store.train_runs()}[killed[0]]
            assert run["status"] == "failed" and run["error"].startswith("interrupted")
            assert store.latest_model_version().n_train == len(store.labeled_clause_ids())
        assert not list(settings.model_dir.glob(".model-*.tmp"))  # a half-written file is cleaned up
    finally:
        backend.stop()
