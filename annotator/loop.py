"""One active-learning cycle, orchestration only: retrain when labels changed, then keep the Label
Studio queue stocked with the most informative clauses.

``run_cycle(settings)`` is what the backend's TrainingQueue runs in its worker process. It opens its
own Store and holds the project's cycle lock, so it is safe in any process and one runs at a time.
A new version is saved and the re-ranked batch pushed first; its held-out evaluation follows.
Pushes are recorded before the import and completed after it, so a push a crash cut off is
settled by the next cycle (matched to the imported tasks, or returned to the pool) instead of
pushing a clause twice.
"""
from __future__ import annotations

import hashlib
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from .errors import InputError, LabelStudioError, NotTrainedError
from .labels import LabelConfig
from .labelstudio import LabelStudioClient, choices_result
from .locks import project_lock
from .normalize import match_key
from .poolcache import PoolCache
from .project import training_examples
from .registry import ModelRegistry
from .settings import Settings
from .store import Store
from .strategies import cold_start_batch, select_batch
from .training import label_matrix, train_model
from .types import Clause, Example, ModelVersion

log = logging.getLogger(__name__)

PROJECT_KEY = "ls_project_id"


def data_fingerprint(store: Store) -> str:
    """Changes whenever a label that training would read changes."""
    h = hashlib.sha1()
    for a in store.annotations():
        h.update(f"{a.clause_id}|{a.annotator}|{a.source}|{','.join(a.labels)}\n".encode())
    for clause_id, labels in sorted(store.adjudications().items()):
        h.update(f"adj|{clause_id}|{','.join(labels)}\n".encode())
    return h.hexdigest()[:16]


def needs_training(store: Store) -> bool:
    latest = store.latest_model_version()
    return latest is None or latest.metrics.get("data_fingerprint") != data_fingerprint(store)


@dataclass
class Retrained:
    """A freshly saved model version with the labels and feature rows it was fitted on."""

    version: ModelVersion
    model: object
    examples: list[Example]
    X: sp.csr_matrix
    cache: PoolCache
    groups: np.ndarray  # near-duplicate group of each example, for the evaluation's split


def retrain(settings: Settings, store: Store, registry: ModelRegistry) -> Retrained | None:
    """Train on the store's current labels and save a new version (None if too few labels yet).

    The version is fitted on every label and saved at once, so it can serve and rank the next
    batch without waiting; its held-out metrics follow from :func:`evaluate_version` (the cycle
    runs it after the push). A failure is recorded in ``train_runs`` (shown on /health) and
    re-raised; the previous version keeps serving. Call it holding the project's cycle lock: a run
    still marked running is then one a killed process left behind, and is marked failed.
    """
    labels = settings.labels
    if store.fail_unfinished_train_runs(INTERRUPTED):
        log.warning("a previous training run was interrupted; its model was never saved")
    examples = training_examples(store, labels)
    if len(examples) < settings.min_train_labels:
        log.info("%d labeled clauses, %d needed before the first model", len(examples), settings.min_train_labels)
        return None
    fingerprint = data_fingerprint(store)
    run_id = store.start_train_run(len(examples))
    try:
        features = project_features(settings, store, registry)
        X = features.cache.matrix([e.id for e in examples])
        result = train_model(examples, labels, holdout=0, seed=settings.seed, featurizer=features.featurizer,
                             features=X)
        metrics = dict(result.metrics, data_fingerprint=fingerprint, seconds=round(result.seconds, 2),
                       featurizer_clauses=features.n_fit, featurizer_fingerprint=features.cache.fingerprint,
                       evaluation=EVALUATION_PENDING)
        version = registry.save(result.model, n_train=result.n_train, metrics=metrics)
    except Exception as exc:
        store.finish_train_run(run_id, error=f"{type(exc).__name__}: {exc}")
        raise
    store.finish_train_run(run_id, model_version=version.version)
    return Retrained(version, result.model, examples, X, features.cache, result.groups)


INTERRUPTED = "interrupted: the process stopped before the run finished (its model was never saved)"
EVALUATION_PENDING = "pending"  # metrics["evaluation"] of a version whose held-out figures are not in yet
HOLDOUT = 0.15  # share of the labels (near-duplicate groups kept whole) a version is measured on


def evaluate_version(settings: Settings, store: Store, trained: Retrained, *, holdout: float = HOLDOUT) -> dict:
    """Measure a new version on a held-out slice of its own labels and store the figures with it.

    The same training is repeated without the slice (near-duplicates of a held-out clause held out
    with it) and scored on it: an honest, slightly pessimistic estimate of the saved model.
    """
    result = train_model(trained.examples, settings.labels, holdout=holdout, refit=False, seed=settings.seed,
                         featurizer=trained.model.featurizer_, features=trained.X, groups=trained.groups)
    figures = {k: v for k, v in result.metrics.items() if k != "untrainable_labels"}
    store.update_model_metrics(trained.version.version, dict(figures, evaluation="held-out",
                                                              evaluation_seconds=round(result.seconds, 2)))
    return figures


def train_project(settings: Settings, store: Store, registry: ModelRegistry, *,
                  holdout: float = HOLDOUT) -> tuple[Retrained, dict]:
    """Train a version on the project's labels, as a live cycle does, and measure it at once.

    ``annotator train`` and the demo use this, so the first model already carries the project
    featurizer (fitted on every clause) and the pool's features are cached: the first live
    retrain then only fits the classifier. Returns the trained version and its held-out figures
    (empty with ``holdout=0``).

    Raises
    ------
    InputError
        If the project has fewer labeled clauses than ``settings.min_train_labels``.
    """
    with project_lock(settings.home):
        trained = retrain(settings, store, registry)
    if trained is None:
        n = len(training_examples(store, settings.labels))
        raise InputError(f"the project has {n} labeled clause(s), {settings.min_train_labels} are needed to train "
                         "(ANNOTATOR_MIN_TRAIN_LABELS); import labels with `annotator import-labels FILE`")
    figures = evaluate_version(settings, store, trained, holdout=holdout) if holdout else {}
    save_human_label_predictions(store, trained)
    return trained, figures


def save_human_label_predictions(store: Store, trained: Retrained) -> int:
    """Store the new version's predictions on clauses people labeled (the dashboard compares them)."""
    ids = sorted({a.clause_id for a in store.annotations() if a.source != "seed"} | set(store.adjudications()))
    clauses = store.clauses(ids)
    if not clauses:
        return 0
    model = trained.model
    proba = model.predict_proba_features(trained.cache.matrix([c.id for c in clauses]))
    chosen = model.decide(proba).astype(bool)
    store.save_predictions(trained.version.version, [
        (c.id, tuple(model.labels_[row]), float(p[row].min()))
        for c, p, row in zip(clauses, proba, chosen)])
    return len(clauses)


FEATURIZER_REFIT_GROWTH = 1.25  # refit the featurizer once the project has 25% more clauses


@dataclass
class ProjectFeatures:
    """The featurizer the next model uses, how many clauses it was fitted on, and its pool cache."""

    featurizer: object
    n_fit: int
    cache: PoolCache


def project_features(settings: Settings, store: Store, registry: ModelRegistry) -> ProjectFeatures:
    """The project's featurizer and its feature cache, completed with every clause of the store.

    The latest model's featurizer is reused while the project has not grown much, so the pool's
    cached features stay valid across retrains (and its fingerprint, saved with the version, is
    not recomputed); otherwise a new one is fitted (unsupervised) on every clause text in the store.
    """
    from .features import PolicyTextFeaturizer

    n_clauses = store.count_clauses()
    try:
        info, model = registry.load("latest")
        n_fit = int(info.metrics.get("featurizer_clauses") or 0)
        if n_fit and n_clauses <= FEATURIZER_REFIT_GROWTH * n_fit:
            cache = pool_cache(settings, store, model.featurizer_,
                               fingerprint=info.metrics.get("featurizer_fingerprint"))
            return ProjectFeatures(model.featurizer_, n_fit, cache)
    except NotTrainedError:
        pass
    log.info("fitting the project featurizer on %d clauses", n_clauses)
    featurizer = PolicyTextFeaturizer().fit([c.text for c in store.clauses()])
    return ProjectFeatures(featurizer, n_clauses, pool_cache(settings, store, featurizer))


def pool_cache(settings: Settings, store: Store, featurizer, *, fingerprint: str | None = None) -> PoolCache:
    """The feature cache of ``featurizer``, completed with every clause of the store.

    ``fingerprint``: the featurizer's, when already known (saved with its model version). With
    ``settings.dask_scheduler`` set, many new clauses are featurized on Dask (same features).
    """
    cache = PoolCache(settings.cache_dir, featurizer, fingerprint=fingerprint)
    clauses = store.clauses()
    ids, texts = [c.id for c in clauses], [c.text for c in clauses]
    if settings.dask_scheduler:  # a big batch of new clauses is featurized over the Dask cluster
        from .dask_features import add_on_dask

        add_on_dask(cache, ids, texts, scheduler=settings.dask_scheduler)
    else:
        cache.add(ids, texts)
    return cache


def unlabeled_pool(store: Store) -> list[Clause]:
    """Clauses nobody labeled, not waiting in Label Studio, and whose text isn't labeled elsewhere."""
    labeled_ids = store.labeled_clause_ids()
    live = {p["clause_id"] for p in store.pushed_tasks()}
    clauses = store.clauses()
    labeled_keys = {match_key(c.text) for c in clauses if c.id in labeled_ids}
    return [c for c in clauses if c.id not in labeled_ids and c.id not in live
            and match_key(c.text) not in labeled_keys]


def rank_batch(settings: Settings, store: Store, registry: ModelRegistry, n: int,
               *, rng: np.random.Generator) -> tuple[list[Clause], ModelVersion | None, np.ndarray | None]:
    """The next ``n`` clauses to label, best first, with the model's probabilities (cold start: None)."""
    pool = unlabeled_pool(store)
    if not pool:
        return [], None, None
    n = min(n, len(pool))
    texts = [c.text for c in pool]
    try:
        info, model = registry.load("latest")
    except NotTrainedError:
        order = cold_start_batch(texts, settings.labels, n, rng=rng)
        return [pool[i] for i in order], None, None
    X = pool_cache(settings, store, model.featurizer_,
                   fingerprint=info.metrics.get("featurizer_fingerprint")).matrix([c.id for c in pool])
    examples = training_examples(store, settings.labels)
    order = select_batch(model, X, n, strategy=settings.strategy, rng=rng, texts=texts,
                         Y_labeled=label_matrix(examples, settings.labels))
    proba = model.predict_proba_features(X[order])
    return [pool[i] for i in order], info, proba


def task_payload(clause: Clause, config: LabelConfig, version: ModelVersion | None,
                 proba_row: np.ndarray | None, model) -> dict:
    """A Label Studio task for a clause, with the model's pre-annotation when there is a model."""
    task: dict = {"data": {config.value_key: clause.text, "section": clause.section or "",
                           "clause_id": clause.id}}
    if version is not None and proba_row is not None:
        chosen = model.decide(proba_row[None, :])[0].astype(bool)
        labels = [label for label, keep in zip(model.labels_, chosen) if keep]
        task["predictions"] = [{"model_version": str(version.version),
                                "score": round(float(proba_row[chosen].min()), 4),
                                "result": choices_result(labels, config)}]
    return task


STALE_CHECK_CONNECTIONS = 8  # concurrent task reads when checking stale tasks before removing them


def reconcile_unconfirmed_pushes(store: Store, client: LabelStudioClient, project_id: int) -> dict:
    """Settle pushes a crash interrupted: rows recorded before the import, with no task id yet.

    Each such clause is looked up among the project's tasks (by the ``clause_id`` every pushed
    task carries): found, the row gets its task id; not found, the import never happened and the
    clause goes back to the pool. Either way no clause is pushed twice and none is stranded.
    """
    unconfirmed = [p for p in store.pushed_tasks() if p["ls_task_id"] is None and p["project_id"] == project_id]
    if not unconfirmed:
        return {"confirmed": 0, "returned": 0}
    imported: dict[str, int] = {}
    for task in client.tasks(project_id):
        cid = (task.get("data") or {}).get("clause_id")
        if isinstance(cid, str):
            imported.setdefault(cid, task["id"])
    found = [p for p in unconfirmed if p["clause_id"] in imported]
    for batch in {p["batch"] for p in found}:
        rows = [(p["clause_id"], imported[p["clause_id"]], p["rank"]) for p in found if p["batch"] == batch]
        store.record_push(project_id, rows, batch=batch,
                          model_version=next(p["model_version"] for p in found if p["batch"] == batch))
    lost = [p["clause_id"] for p in unconfirmed if p["clause_id"] not in imported]
    store.mark_removed(lost)
    log.warning("settled %d interrupted push(es): %d found in Label Studio, %d returned to the pool",
                len(unconfirmed), len(found), len(lost))
    return {"confirmed": len(found), "returned": len(lost)}


def refresh_queue(settings: Settings, store: Store, registry: ModelRegistry, client: LabelStudioClient,
                  project_id: int) -> dict:
    """Re-rank stale pending tasks and push a new batch when the queue runs low.

    Pending tasks scored by an older model version are removed from Label Studio (only if nobody
    has annotated them there) and their clauses go back to the pool, so the next batch is ranked by
    the newest model. Nothing an annotator labeled is ever deleted.
    """
    config = settings.labels_config()
    reconcile_unconfirmed_pushes(store, client, project_id)
    pending = store.pending_pushed_tasks()
    try:
        latest_version = registry.latest().version
    except NotTrainedError:
        latest_version = None
    stale = [p for p in pending if latest_version is not None and p["model_version"] != latest_version
             and p["ls_task_id"] is not None]
    # Which stale tasks nobody has touched in Label Studio: a few concurrent reads, not one
    # round trip after the other (the annotators are waiting for the re-ranked batch).
    with ThreadPoolExecutor(max_workers=STALE_CHECK_CONNECTIONS) as pool:
        tasks = list(pool.map(client.task, [p["ls_task_id"] for p in stale]))
    untouched = [p for p, task in zip(stale, tasks)
                 if not (task.get("annotations") or task.get("drafts") or task.get("total_annotations"))]
    if untouched:
        client.delete_tasks(project_id, [p["ls_task_id"] for p in untouched])
    removed = [p["clause_id"] for p in untouched]
    store.mark_removed(removed)
    left = len(pending) - len(removed)
    pushed: list[str] = []
    if left < settings.low_water:
        rng = np.random.default_rng([settings.seed, store.next_batch_number()])
        clauses, info, proba = rank_batch(settings, store, registry, settings.batch_size, rng=rng)
        if clauses:
            model = registry.load(info.version)[1] if info is not None else None
            tasks = [task_payload(c, config, info, None if proba is None else proba[i], model)
                     for i, c in enumerate(clauses)]
            batch = store.next_batch_number()
            version = info.version if info else None
            # Record first, import second: a crash in between leaves rows without task ids, which
            # the next refresh settles (reconcile_unconfirmed_pushes) instead of pushing again.
            store.record_push(project_id, [(c.id, None, r) for r, c in enumerate(clauses)],
                              batch=batch, model_version=version)
            task_ids = client.import_tasks(project_id, tasks)
            if info is not None:
                store.save_predictions(info.version, [
                    (c.id, tuple(t["predictions"][0]["result"][0]["value"]["choices"]), t["predictions"][0]["score"])
                    for c, t in zip(clauses, tasks)])
            store.record_push(project_id, [(c.id, t, r) for r, (c, t) in enumerate(zip(clauses, task_ids))],
                              batch=batch, model_version=version)
            pushed = [c.id for c in clauses]
    return {"removed_stale": len(removed), "pushed": len(pushed), "pending": left + len(pushed),
            "model_version": latest_version}


def missing_api_key_problem(settings: Settings, store: Store) -> str | None:
    """Why a connected project would get no new batches (no API key where the backend runs), and
    what to set; None when it is not connected to Label Studio or the key is set."""
    return _missing_api_key(settings, store.get_meta(PROJECT_KEY))


def _missing_api_key(settings: Settings, project_id: str | None) -> str | None:
    if project_id is None or settings.ls_api_key:
        return None
    return (f"the project is connected to Label Studio project {project_id}, but LABEL_STUDIO_API_KEY is not set "
            "where the backend runs, so no re-ranked batch reaches the annotators after the first one: set "
            "LABEL_STUDIO_URL and LABEL_STUDIO_API_KEY in the environment of `annotator serve` (or ls_url / "
            "ls_api_key in the project's config.toml) and restart it")


def ls_client(settings: Settings) -> LabelStudioClient:
    return LabelStudioClient(settings.ls_url, settings.ls_api_key)


def run_cycle(settings: Settings, *, force: bool = False) -> dict:
    """Retrain if the labels changed (or ``force``), refresh the Label Studio queue, then measure.

    One cycle runs at a time per project, whichever process starts it (:func:`project_lock`), so
    several backend workers never train two versions at once or push a batch twice. What
    annotators wait for comes first: the new version is saved and the re-ranked batch pushed
    before the version's held-out evaluation (a second fit) and the dashboard's predictions run.
    """
    started = time.perf_counter()
    with project_lock(settings.home), Store(settings.store_url) as store:
        registry = ModelRegistry(settings.model_dir, store)
        out: dict = {"model_version": None, "push": None}
        trained = retrain(settings, store, registry) if force or needs_training(store) else None
        out["model_version"] = trained.version.version if trained else None
        out["train_seconds"] = round(time.perf_counter() - started, 2)
        project_id = store.get_meta(PROJECT_KEY)
        unreachable = None
        if problem := _missing_api_key(settings, project_id):
            # Not silently: the annotators would run out of tasks after the first batch.
            unreachable = LabelStudioError(problem)
        elif project_id is not None:
            try:
                with ls_client(settings) as client:
                    out["push"] = refresh_queue(settings, store, registry, client, int(project_id))
            except LabelStudioError as exc:  # the version is saved: measure it anyway, then report
                unreachable = exc
        out["ready_seconds"] = round(time.perf_counter() - started, 2)
        if trained is not None:
            figures = evaluate_version(settings, store, trained)
            out["held_out"] = {k: figures[k] for k in ("n", "macro_f1", "micro_f1") if k in figures}
            save_human_label_predictions(store, trained)
    out["seconds"] = round(time.perf_counter() - started, 2)
    if unreachable is not None:
        raise unreachable
    log.info("cycle done: %s", out)
    return out
