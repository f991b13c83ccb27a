"""One active-learning cycle on a real store: publish first, measure after, keep the queue honest."""

from __future__ import annotations

import pytest

from annotator import ModelRegistry
from annotator.errors import InputError
from annotator.cycle.loop import EVALUATION_PENDING, PROJECT_KEY, evaluate_version, retrain, train_project
from annotator.cycle.ls_queue import refresh_queue
from annotator.cycle.snapshot import CycleSnapshot
from annotator.cycle.sync import record_annotation
from annotator.text.normalize import clause_id
from annotator.model.poolcache import featurizer_fingerprint
from annotator.cycle.project import import_labels
from annotator.settings import Settings
from annotator.types import Annotation, Clause

from ..conftest import seed_lines


@pytest.fixture
def project(settings, store, tmp_path):
    """200 labeled seed clauses plus about 150 unlabeled real clauses in the pool."""
    labeled = tmp_path / "labeled.tsv"
    labeled.write_text("\n".join(seed_lines(200)) + "\n", encoding="utf-8")
    import_labels(store, labeled, settings.labels)
    pool = [line.split("\t", 1)[1] for line in seed_lines(200, seed=1)]
    known = {c.id for c in store.clauses()}
    store.add_clauses(Clause(clause_id(t), t) for t in dict.fromkeys(pool) if clause_id(t) not in known)
    return ModelRegistry(settings.model_dir, store)


def test_a_version_serves_before_its_held_out_figures_exist(settings, store, project):
    trained = retrain(settings, store, project)
    saved = store.latest_model_version()
    assert saved.version == trained.version.version == 1
    assert saved.n_train == 200 and saved.metrics["evaluation"] == EVALUATION_PENDING
    assert "macro_f1" not in saved.metrics  # not measured yet, and never on the training labels
    # The project featurizer was fitted on every clause, so the whole pool is in the cache.
    assert saved.metrics["featurizer_clauses"] == store.count_clauses()
    assert len(trained.cache) == store.count_clauses()
    assert saved.metrics["featurizer_fingerprint"] == featurizer_fingerprint(trained.model.featurizer_)

    figures = evaluate_version(settings, store, trained)
    measured = store.latest_model_version().metrics
    assert measured["evaluation"] == "held-out"
    assert measured["macro_f1"] == figures["macro_f1"] and 0.2 < figures["macro_f1"] <= 1
    assert 20 <= measured["n"] <= 45  # ~15% of 200 clauses, near-duplicate groups kept whole
    assert measured["data_fingerprint"] == saved.metrics["data_fingerprint"]  # merged, not replaced


def test_later_retrains_reuse_the_project_featurizer_and_its_cache(settings, store, project):
    first = retrain(settings, store, project)
    unlabeled = [c for c in store.clauses() if c.id not in store.labeled_clause_ids()]
    for i, clause in enumerate(unlabeled[:20]):
        store.save_annotation(
            Annotation(
                clause.id, (settings.labels[i % 27],), "ann@example.com", "label_studio", ls_annotation_id=100 + i
            )
        )
    second = retrain(settings, store, project)
    assert second.version.version == 2 and second.version.n_train == 220
    assert second.model.featurizer_ is first.model.featurizer_
    assert second.version.metrics["featurizer_fingerprint"] == first.version.metrics["featurizer_fingerprint"]
    assert [p.name for p in (settings.cache_dir / "pool").iterdir()] == [first.cache.directory.name]


def test_a_retrain_self_trains_on_the_clauses_nobody_answered(settings, store, project):
    """The pool the classifier labels itself is the store's unanswered clauses (a "not a policy
    measure" answer counts as answered); its held-out evaluation trains the same way."""
    unanswered = [c for c in store.clauses() if c.id not in store.labeled_clause_ids()]
    store.save_annotation(Annotation(unanswered[0].id, (), "ann@example.com", "label_studio", not_policy=True))
    trained = retrain(settings, store, project)
    assert trained.unlabeled is not None and trained.unlabeled.shape[0] == len(unanswered) - 1
    assert trained.model.n_self_trained_ == len(unanswered) - 1  # fewer than the 200 labeled: all
    assert store.latest_model_version().n_train == 200  # pseudo-labels are not labels
    evaluate_version(settings, store, trained)

    off = Settings(**{**settings.__dict__, "self_training": 0})
    plain = retrain(off, store, project)
    assert plain.unlabeled is None and plain.model.n_self_trained_ == 0


def test_training_a_project_without_enough_labels_says_how_to_fix_it(settings, store):
    store.add_clauses([Clause(clause_id("支持企业加大研发投入。"), "支持企业加大研发投入。")])
    with pytest.raises(InputError, match=r"the project has 0 labeled clause\(s\), 20 are needed"):
        train_project(settings, store, ModelRegistry(settings.model_dir, store))
    assert store.latest_model_version() is None


class FakeLabelStudio:
    """Label Studio at the network boundary, as the loop sees it: tasks with data and predictions,
    the project's model version, and its "Uncertainty sampling" next-task rule. Deleted task ids
    are reused by the next import, as Label Studio on SQLite does."""

    def __init__(self):
        self.by_id: dict[int, dict] = {}
        self.model_version: str | None = None
        self.sampling = "Sequential sampling"
        self.calls: list[str] = []

    def _new_id(self) -> int:
        return min(set(range(1, len(self.by_id) + 2)) - set(self.by_id))  # the lowest free id: reuse

    def import_tasks(self, project_id, tasks):
        self.calls.append("import_tasks")
        ids = []
        for task in tasks:
            task_id = self._new_id()
            self.by_id[task_id] = {
                "id": task_id,
                "data": dict(task["data"]),
                "annotations": [],
                "predictions": [dict(p, task=task_id) for p in task.get("predictions", [])],
            }
            ids.append(task_id)
        return ids

    def delete_predictions(self, project_id, task_ids):
        self.calls.append("delete_predictions")
        for task_id in task_ids:
            self.by_id[task_id]["predictions"] = []

    def import_predictions(self, project_id, predictions):
        self.calls.append("import_predictions")
        for p in predictions:
            self.by_id[p["task"]]["predictions"].append(dict(p))
        return len(predictions)

    def set_model_version(self, project_id, name):
        self.calls.append("set_model_version")
        self.model_version = name

    def serve_by_uncertainty(self, project_id):
        self.sampling = "Uncertainty sampling"

    def task_index(self, project_id, value_key):
        from annotator.labelstudio.client import LsTask

        return [
            LsTask(
                t["id"],
                t["data"].get("clause_id"),
                t["data"].get(value_key),
                len(t["annotations"]),
                len(t["annotations"]) >= t.get("overlap", 1),
            )
            for t in self.by_id.values()
        ]

    def task(self, task_id):
        return self.by_id[task_id]

    def users(self):
        return [{"id": 1, "email": "lead@example.com"}]

    def delete(self, task_id):
        del self.by_id[task_id]

    def current(self, task: dict) -> dict | None:
        return next((p for p in task["predictions"] if p["model_version"] == self.model_version), None)

    def next_task(self) -> dict:
        """What Label Studio's uncertainty sampling serves: the lowest score of the current version."""
        waiting = [t for t in self.by_id.values() if len(t["annotations"]) < t.get("overlap", 1) and self.current(t)]
        return min(waiting, key=lambda t: self.current(t)["score"])

    def annotate(self, task_id: int, labels, config, ann_id: int) -> dict:
        from annotator.labelstudio.client import choices_result

        annotation = {
            "id": ann_id,
            "result": choices_result(labels, config),
            "completed_by": f"ann{ann_id}",
            "created_at": "",
            "updated_at": "",
        }
        self.by_id[task_id]["annotations"].append(annotation)
        return annotation


def test_a_new_version_rescores_every_waiting_task_and_deletes_none(settings, store, project):
    settings = settings.replace(queue_window=30, batch_size=10)
    config = settings.labels_config()
    client = FakeLabelStudio()
    trained, _ = train_project(settings, store, project)
    first = refresh_queue(settings, store, project, client, 1)
    assert first.imported == 30 and first.model_version == 1 and client.model_version == "policy-clf-v1"
    # The pre-fill is the classifier's decision and the score the strategy's rank (served in order).
    ranked = sorted(client.by_id.values(), key=lambda t: client.current(t)["score"])
    assert [client.current(t)["score"] for t in ranked[:3]] == [0.0, round(1 / 30, 6), round(2 / 30, 6)]
    X = trained.model.featurizer_.transform([t["data"]["text"] for t in ranked])
    expected = trained.model.predictions(trained.model.predict_proba_features(X))
    assert [tuple(client.current(t)["result"][0]["value"]["choices"]) for t in ranked] == [p.labels for p in expected]
    assert client.next_task() is ranked[0]

    # People label three tasks; the second one is an overlap task, waiting for a second person.
    overlap = ranked[1]
    overlap["overlap"] = 2
    first_prefill = client.current(overlap)["result"][0]["value"]["choices"]
    for i, task in enumerate(ranked[:3]):
        annotation = client.annotate(task["id"], [settings.labels[i]], config, ann_id=100 + i)
        record_annotation(store, annotation, dict(task, project=1), config, project_id=1)
    # Each annotation remembers the pre-fill its task showed (version 1's): agreement's blindness test.
    assert [a.prefill_version for a in store.annotations(sources=["label_studio"])] == [1, 1, 1]
    retrain(settings, store, project)  # version 2
    second = refresh_queue(settings, store, project, client, 1)

    assert client.model_version == "policy-clf-v2"
    assert client.calls[-2:] == ["import_predictions", "set_model_version"]
    assert len(client.by_id) == 30 + second.imported  # nothing deleted
    # The new version's best ten are all waiting (imported unless already there); 27 unlabeled
    # tasks and the overlap task got the new version's prediction.
    assert 0 < second.imported <= 10 and second.refreshed == 28 and second.pending == 28 + second.imported
    best = sorted(
        (p for p in store.pushed_tasks() if p.clause_id not in store.labeled_clause_ids()), key=lambda p: p.score
    )[:10]
    assert [round(p.score, 6) for p in best] == [round(i / 30, 6) for i in range(10)]
    for task in client.by_id.values():
        done = len(task["annotations"]) >= task.get("overlap", 1)
        assert (client.current(task) is None) == done  # fully labeled tasks are not served again
    # Blind: the overlap task keeps the pre-fill it showed before anyone labeled it.
    assert client.current(overlap)["result"][0]["value"]["choices"] == first_prefill
    assert client.next_task()["data"]["clause_id"] not in store.labeled_clause_ids()


def test_an_overlap_task_labeled_while_the_model_trains_keeps_its_first_prefill(settings, store, project):
    """Seen live (CI, 2026-12-04): the cycle reads the store, trains for about a second, then
    refreshes the queue. A label that reaches the store in between is not in the cycle's snapshot,
    yet Label Studio already counts it; the overlap task then got the new version's pre-fill, and
    its second annotator saw a pre-fill made after the first answer (the dashboard counted that
    double annotation as not blind)."""
    settings = settings.replace(queue_window=30, batch_size=10)
    config = settings.labels_config()
    client = FakeLabelStudio()
    train_project(settings, store, project)
    refresh_queue(settings, store, project, client, 1)
    overlap = client.next_task()
    overlap["overlap"] = 2
    first_prefill = client.current(overlap)["result"][0]["value"]["choices"]

    snapshot = CycleSnapshot.read(store, settings.labels)  # the cycle starts: read, then train
    retrain(settings, store, project, snapshot)  # version 2
    # Meanwhile the first annotator submits and the webhook is stored.
    annotation = client.annotate(overlap["id"], [settings.labels[0]], config, ann_id=500)
    record_annotation(store, annotation, dict(overlap, project=1), config, project_id=1)
    refresh_queue(settings, store, project, client, 1, snapshot=snapshot)

    assert client.model_version == "policy-clf-v2"
    shown = client.current(overlap)  # what the second annotator sees
    assert shown["result"][0]["value"]["choices"] == first_prefill
    second = client.annotate(overlap["id"], [settings.labels[1]], config, ann_id=501)
    record_annotation(store, second, dict(overlap, project=1), config, project_id=1)
    # Both answers remember version 1's pre-fill: the dashboard's blindness count reads this.
    assert [a.prefill_version for a in store.annotations(sources=["label_studio"])] == [1, 1]


def test_a_reused_task_id_never_attaches_a_label_to_the_wrong_clause(settings, store, project):
    settings = settings.replace(queue_window=10, batch_size=5)
    config = settings.labels_config()
    client = FakeLabelStudio()
    train_project(settings, store, project)
    refresh_queue(settings, store, project, client, 1)
    victim_clause = client.by_id[3]["data"]["clause_id"]
    client.delete(3)  # someone deletes a task in Label Studio's Data Manager ...
    in_ls = {t["data"]["clause_id"] for t in client.by_id.values()}
    other = next(
        c
        for c in store.clauses()
        if c.id not in store.labeled_clause_ids() and c.id not in in_ls and c.id != victim_clause
    )
    (reused,) = client.import_tasks(1, [{"data": {"text": other.text, "clause_id": other.id}}])
    assert reused == 3  # ... and the next import gets its id

    report = refresh_queue(settings, store, project, client, 1)

    assert report.returned == 1  # the deleted task's clause went back to the pool
    records = {p.clause_id: p for p in store.pushed_tasks()}
    assert records[other.id].ls_task_id == 3
    assert victim_clause not in records or records[victim_clause].ls_task_id != 3
    # A label submitted on task 3 attaches to the clause whose text task 3 shows, even when a stale
    # payload names the old clause.
    annotation = client.annotate(3, [settings.labels[0]], config, ann_id=500)
    stale = {"id": 3, "project": 1, "data": {"text": other.text, "clause_id": victim_clause}}
    assert record_annotation(store, annotation, stale, config, project_id=1) == "created"
    (stored,) = [a for a in store.annotations(sources=["label_studio"]) if a.ls_annotation_id == 500]
    assert stored.clause_id == other.id


def test_a_push_cut_off_by_a_crash_is_settled_by_data_not_repeated(settings, store, project):
    settings = settings.replace(queue_window=12, batch_size=6)
    client = FakeLabelStudio()
    train_project(settings, store, project)
    clauses = [c for c in store.clauses() if c.id not in store.labeled_clause_ids()][:6]
    # The crash: six rows recorded before the import; Label Studio got the first three of them.
    store.record_push(1, [(c.id, None, r) for r, c in enumerate(clauses)], batch=1, model_version=1)
    client.import_tasks(1, [{"data": {"text": c.text, "clause_id": c.id}} for c in clauses[:3]])

    report = refresh_queue(settings, store, project, client, 1)

    live = {p.clause_id: p.ls_task_id for p in store.pushed_tasks()}
    assert [live[c.id] for c in clauses[:3]] == [1, 2, 3]  # found in Label Studio: confirmed
    assert all(task_id is not None for task_id in live.values())
    imported = [t["data"]["clause_id"] for t in client.by_id.values()]
    assert len(imported) == len(set(imported))  # no clause is in Label Studio twice
    assert report.returned == 3 and report.pending == 12
    for clause in clauses[3:]:  # back to the pool: out of the queue, or imported again as a real task
        assert clause.id not in live or client.by_id[live[clause.id]]["data"]["clause_id"] == clause.id


def test_annotations_no_webhook_brought_are_recovered_by_the_refresh(settings, store, project):
    settings = settings.replace(queue_window=10, batch_size=5)
    config = settings.labels_config()
    client = FakeLabelStudio()
    train_project(settings, store, project)
    refresh_queue(settings, store, project, client, 1)
    client.annotate(2, [settings.labels[4]], config, ann_id=77)  # submitted; its webhook never came

    report = refresh_queue(settings, store, project, client, 1)

    assert report.recovered == 1
    (stored,) = [a for a in store.annotations(sources=["label_studio"]) if a.ls_annotation_id == 77]
    assert stored.labels == (settings.labels[4],) and stored.clause_id == client.by_id[2]["data"]["clause_id"]


def _hold_lock(home, held, release):
    from annotator.storage.locks import project_lock

    with project_lock(home):
        held.set()
        release.wait(30)


def test_one_cycle_at_a_time_across_processes_and_a_killed_holder_frees_the_lock(settings):
    import multiprocessing
    import time

    from annotator.storage.locks import project_lock

    ctx = multiprocessing.get_context("spawn")
    held, release = ctx.Event(), ctx.Event()
    holder = ctx.Process(target=_hold_lock, args=(settings.home, held, release))
    holder.start()
    assert held.wait(60)
    started = time.monotonic()
    with pytest.raises(Exception, match="another process has held .*cycle.lock for over 0 s"):
        with project_lock(settings.home, timeout=0.2):
            pass
    assert time.monotonic() - started >= 0.2
    holder.kill()  # kill -9 in the middle of a cycle: the kernel drops the lock with the process
    holder.join(30)
    with project_lock(settings.home, timeout=5) as waited:
        assert waited < 5


def test_a_run_left_running_by_a_killed_process_is_reported_and_training_goes_on(settings, store, project):
    run_id = store.start_train_run(200)  # a worker was killed in the middle of this one
    trained = retrain(settings, store, project)
    runs = {r.id: r for r in store.train_runs()}
    assert runs[run_id].status == "failed" and runs[run_id].error.startswith("interrupted")
    assert trained.version.version == 1 and runs[max(runs)].status == "done"


def test_label_studio_unreachable_fails_the_push_but_the_new_version_is_measured(settings, store, project):
    from annotator.errors import LabelStudioError
    from annotator.cycle.loop import run_cycle
    from annotator.cli.services import free_port

    store.set_meta(PROJECT_KEY, "1")
    down = settings.replace(ls_url=f"http://127.0.0.1:{free_port()}", ls_api_key="token-of-a-server-that-is-down")
    with pytest.raises(LabelStudioError, match="cannot reach Label Studio at http://127.0.0.1:"):
        run_cycle(down, force=True)
    latest = store.latest_model_version()
    assert latest.version == 1 and latest.metrics["evaluation"] == "held-out" and "macro_f1" in latest.metrics
    assert not store.pushed_tasks()  # Label Studio was never reached: nothing recorded as pushed


def test_a_connected_project_without_an_api_key_is_reported_not_left_without_batches(settings, store, project):
    from annotator.errors import LabelStudioError
    from annotator.cycle.loop import run_cycle

    store.set_meta(PROJECT_KEY, "7")
    assert not settings.ls_api_key
    with pytest.raises(
        LabelStudioError, match="connected to Label Studio project 7, but LABEL_STUDIO_API_KEY is not set"
    ) as error:
        run_cycle(settings, force=True)
    assert "LABEL_STUDIO_URL and LABEL_STUDIO_API_KEY in the environment of `annotator serve`" in str(error.value)
    latest = store.latest_model_version()  # the version is still saved and measured
    assert latest.version == 1 and latest.metrics["evaluation"] == "held-out"
    assert not store.pushed_tasks()  # nothing was half-pushed


def test_an_unconnected_project_trains_without_label_studio(settings, store, project):
    from annotator.cycle.loop import run_cycle

    out = run_cycle(settings, force=True)
    assert out["model_version"] == 1 and out["push"] is None


def test_old_model_files_are_pruned_but_a_shown_prefill_keeps_its_version(settings, store, project):
    from annotator.cycle.loop import measure_stability, prune_versions

    settings = settings.replace(keep_versions=1, queue_window=10, batch_size=5)
    client = FakeLabelStudio()
    train_project(settings, store, project)
    refresh_queue(settings, store, project, client, 1)  # the waiting tasks show version 1's pre-fills
    unlabeled = [c for c in store.clauses() if c.id not in store.labeled_clause_ids()]
    for version in (2, 3):
        store.save_annotation(
            Annotation(
                unlabeled[version].id,
                (settings.labels[version],),
                "ann@example.com",
                "label_studio",
                ls_annotation_id=800 + version,
            )
        )
        trained = retrain(settings, store, project)
        assert trained.version.version == version
        kappa = measure_stability(store, project, trained)
        assert 0.5 < kappa <= 1 and store.latest_model_version().metrics["pool_agreement"] == kappa
    assert prune_versions(settings, store, project) == [2]  # 1 is still shown, 3 is the latest
    assert [v.version for v in store.model_versions()] == [1, 2, 3]  # rows and figures stay
    assert sorted(p.name for p in settings.model_dir.glob("*.pkl")) == ["model-00001.pkl", "model-00003.pkl"]


def test_a_waiting_task_never_keeps_more_than_ten_predictions(settings, store, project, monkeypatch):
    from annotator.cycle import ls_queue as ls_queue

    settings = settings.replace(queue_window=10, batch_size=5)
    client = FakeLabelStudio()
    train_project(settings, store, project)
    for _version in range(1, 13):  # twelve retrains (a new version each)
        store.set_meta(ls_queue.QUEUE_VERSION_KEY, "")  # as if a new version came
        refresh_queue(settings, store, project, client, 1)
    assert client.calls.count("delete_predictions") == 1  # every 10th refresh, not every one
    assert max(len(t["predictions"]) for t in client.by_id.values()) <= ls_queue.PREDICTIONS_KEPT
    assert all(client.current(t) for t in client.by_id.values())  # every waiting task can be served


def test_a_label_arriving_during_a_cycle_is_trained_by_the_next_one(settings, store, project):
    """The cycle reads the labels once: the version's fingerprint is that of exactly the labels it was
    fitted on, so a label that lands meanwhile makes the next cycle retrain."""
    from annotator.cycle.loop import needs_training
    from annotator.cycle.project import training_examples
    from annotator.cycle.snapshot import CycleSnapshot

    snapshot = CycleSnapshot.read(store, settings.labels)
    assert list(snapshot.examples) == training_examples(store, settings.labels)
    assert snapshot.labeled_ids == store.labeled_clause_ids()
    unlabeled = next(c for c in store.clauses() if c.id not in snapshot.labeled_ids)
    store.save_annotation(
        Annotation(unlabeled.id, (settings.labels[0],), "ann@example.com", "label_studio", ls_annotation_id=990)
    )  # a webhook, while the cycle trains
    trained = retrain(settings, store, project, snapshot)
    assert trained.version.n_train == 200 and trained.version.metrics["data_fingerprint"] == snapshot.fingerprint
    assert needs_training(store)  # the new label is not in that version: the next cycle trains it
