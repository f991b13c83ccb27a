"""One active-learning cycle, orchestration only: retrain when labels changed, then refresh the
annotators' queue in Label Studio (:mod:`annotator.cycle.ls_queue`), then measure the new version.

``run_cycle(settings)`` is what the backend's TrainingQueue runs in its worker process. It opens its
own Store and holds the project's cycle lock, so it is safe in any process and one runs at a time.
A new version is saved and the queue re-scored first; its held-out evaluation follows, and runs
even when Label Studio could not be reached, so every version has its figures.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from ..errors import AnnotatorError, InputError, LabelStudioError
from ..labelstudio.client import LabelStudioClient
from ..storage.locks import project_lock
from ..model.poolcache import PoolCache
from ..model.project_features import project_features
from .project import training_examples
from .snapshot import CycleSnapshot
from ..storage.registry import ModelRegistry
from ..settings import Settings
from ..storage.store import Store
from ..model.classifier import MAX_SELF_TRAINING_CANDIDATES, PolicyClassifier
from ..model.training import train_model
from ..types import Example, ModelVersion

log = logging.getLogger(__name__)

PROJECT_KEY = "ls_project_id"
WIRED_KEY = "ls_wired_project"  # the project whose sampling mode and webhook this home has set up


def needs_training(store: Store, snapshot: CycleSnapshot | None = None) -> bool:
    """Whether the labels changed since the latest version (its saved fingerprint differs)."""
    latest = store.latest_model_version()
    fingerprint = (snapshot or CycleSnapshot.read(store, ())).fingerprint
    return latest is None or latest.metrics.get("data_fingerprint") != fingerprint


@dataclass
class Retrained:
    """A freshly saved model version with the labels and feature rows it was fitted on."""

    version: ModelVersion
    model: PolicyClassifier
    examples: list[Example]
    X: sp.csr_matrix
    cache: PoolCache
    # Near-duplicate group of each example, for the evaluation's split (None: the evaluation computes them;
    # train_model always returns them, but TrainResult.groups is typed optional).
    groups: np.ndarray | None
    # Feature rows of the unlabeled clauses the classifier self-trained on (the evaluation uses them too).
    unlabeled: sp.csr_matrix | None = None


def retrain(
    settings: Settings, store: Store, registry: ModelRegistry, snapshot: CycleSnapshot | None = None
) -> Retrained | None:
    """Train on the store's current labels and save a new version (None if too few labels yet).

    The version is fitted on every label and saved at once, so it can serve and rank the next
    batch without waiting; its held-out metrics follow from :func:`evaluate_version` (the cycle
    runs it after the push). A failure is recorded in ``train_runs`` (shown on /health) and
    re-raised; the previous version keeps serving. Call it holding the project's cycle lock: a run
    still marked running is then one a killed process left behind, and is marked failed.
    ``snapshot``: the cycle's read of the store (default: read it now).
    """
    labels = settings.labels
    if store.fail_unfinished_train_runs(INTERRUPTED):
        log.warning("a previous training run was interrupted; its model was never saved")
    snapshot = snapshot or CycleSnapshot.read(store, labels)
    examples = list(snapshot.examples)
    if len(examples) < settings.min_train_labels:
        log.info("%d labeled clauses, %d needed before the first model", len(examples), settings.min_train_labels)
        return None
    fingerprint = snapshot.fingerprint  # of exactly the labels trained on
    run_id = store.start_train_run(len(examples))
    try:
        features = project_features(settings, store, registry, clauses=snapshot.clauses)
        X = features.cache.matrix([e.id for e in examples])
        unlabeled = self_training_rows(settings, snapshot, features.cache)
        result = train_model(
            examples,
            labels,
            holdout=0,
            seed=settings.seed,
            featurizer=features.featurizer,
            features=X,
            unlabeled=unlabeled,
            self_training=settings.self_training,
        )
        metrics = dict(
            result.metrics,
            data_fingerprint=fingerprint,
            seconds=round(result.seconds, 2),
            featurizer_clauses=features.n_fit,
            featurizer_fingerprint=features.cache.fingerprint,
            evaluation=EVALUATION_PENDING,
        )
        version = registry.save(result.model, n_train=result.n_train, metrics=metrics)
    except Exception as exc:
        store.finish_train_run(run_id, error=f"{type(exc).__name__}: {exc}")
        raise
    store.finish_train_run(run_id, model_version=version.version)
    return Retrained(version, result.model, examples, X, features.cache, result.groups, unlabeled)


def self_training_rows(settings: Settings, snapshot: CycleSnapshot, cache: PoolCache) -> sp.csr_matrix | None:
    """Feature rows of the clauses nobody has answered yet, for the classifier's self-training: at
    most ``MAX_SELF_TRAINING_CANDIDATES`` of them, drawn with the project's seed (None when
    self-training is off)."""
    if not settings.self_training:
        return None
    answered = snapshot.labeled_ids
    ids = [c.id for c in snapshot.clauses if c.id not in answered]
    if len(ids) > MAX_SELF_TRAINING_CANDIDATES:
        keep = np.random.default_rng(settings.seed).choice(len(ids), MAX_SELF_TRAINING_CANDIDATES, replace=False)
        ids = [ids[i] for i in np.sort(keep)]
    return cache.matrix(ids)


INTERRUPTED = "interrupted: the process stopped before the run finished (its model was never saved)"
EVALUATION_PENDING = "pending"  # metrics["evaluation"] of a version whose held-out figures are not in yet
HOLDOUT = 0.15  # share of the labels (near-duplicate groups kept whole) a version is measured on


def evaluate_version(settings: Settings, store: Store, trained: Retrained, *, holdout: float = HOLDOUT) -> dict:
    """Measure a new version on a held-out slice of its own labels and store the figures with it.

    The same training is repeated without the slice (near-duplicates of a held-out clause held out
    with it) and scored on it: an honest, slightly pessimistic estimate of the saved model.
    """
    result = train_model(
        trained.examples,
        settings.labels,
        holdout=holdout,
        refit=False,
        seed=settings.seed,
        featurizer=trained.model.featurizer_,
        features=trained.X,
        groups=trained.groups,
        unlabeled=trained.unlabeled,
        self_training=settings.self_training,
    )
    figures = {k: v for k, v in result.metrics.items() if k != "untrainable_labels"}
    store.update_model_metrics(
        trained.version.version, dict(figures, evaluation="held-out", evaluation_seconds=round(result.seconds, 2))
    )
    return figures


def train_project(
    settings: Settings, store: Store, registry: ModelRegistry, *, holdout: float = HOLDOUT
) -> tuple[Retrained, dict]:
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
        raise InputError(
            f"the project has {n} labeled clause(s), {settings.min_train_labels} are needed to train "
            "(ANNOTATOR_MIN_TRAIN_LABELS); import labels with `annotator import-labels FILE`"
        )
    figures = evaluate_version(settings, store, trained, holdout=holdout) if holdout else {}
    save_human_label_predictions(store, trained)
    return trained, figures


def save_human_label_predictions(store: Store, trained: Retrained, snapshot: CycleSnapshot | None = None) -> int:
    """Store the new version's predictions on clauses people labeled (the dashboard compares them)."""
    snapshot = snapshot or CycleSnapshot.read(store, trained.model.labels)
    ids = {a.clause_id for a in snapshot.annotations if a.source != "seed"} | set(snapshot.adjudications)
    clauses = [c for c in snapshot.clauses if c.id in ids]
    if not clauses:
        return 0
    model = trained.model
    proba = model.predict_proba_features(trained.cache.matrix([c.id for c in clauses]))
    store.save_predictions(
        trained.version.version,
        [(c.id, predicted.labels, predicted.confidence) for c, predicted in zip(clauses, model.predictions(proba))],
    )
    return len(clauses)


STABILITY_SAMPLE = 5000  # unlabeled clauses two consecutive versions are compared on


def measure_stability(
    store: Store, registry: ModelRegistry, trained: Retrained, snapshot: CycleSnapshot | None = None
) -> float | None:
    """Agreement (kappa) between the new and the previous version's decisions on unlabeled clauses,
    stored as the version's ``pool_agreement``: the stabilizing-predictions stop signal
    (:mod:`annotator.query.stopping`). None for a first version, or when the previous one cannot be read."""
    from ..query.stopping import decision_agreement

    previous = [v for v in store.model_versions() if v.version < trained.version.version]
    if not previous:
        return None
    try:
        _, old = registry.load(previous[-1].version)
    except AnnotatorError as exc:
        log.info("no prediction stability for version %d: %s", trained.version.version, exc)
        return None
    snapshot = snapshot or CycleSnapshot.read(store, trained.model.labels)
    labeled = snapshot.labeled_ids
    sample = [c for c in snapshot.clauses if c.id not in labeled][:STABILITY_SAMPLE]
    if not sample:
        return None
    X_new = trained.cache.matrix([c.id for c in sample])
    X_old = X_new if old.featurizer_ is trained.model.featurizer_ else old.transform_texts([c.text for c in sample])
    kappa = round(
        decision_agreement(
            old.decide(old.predict_proba_features(X_old)),
            trained.model.decide(trained.model.predict_proba_features(X_new)),
        ),
        4,
    )
    store.update_model_metrics(trained.version.version, {"pool_agreement": kappa})
    return kappa


def prune_versions(settings: Settings, store: Store, registry: ModelRegistry) -> list[int]:
    """Delete the model files of old versions: the newest ``settings.keep_versions`` stay, and so does
    every version whose pre-fill a waiting task still shows (rows and figures always stay)."""
    shown = {p.prefill_version for p in store.pushed_tasks() if p.prefill_version is not None}
    pruned = registry.prune(keep_last=settings.keep_versions, keep=shown)
    if pruned:
        log.info(
            "removed the model files of version(s) %s (kept the last %d and those still shown)",
            ", ".join(map(str, pruned)),
            settings.keep_versions,
        )
    return pruned


def missing_api_key_problem(settings: Settings, store: Store) -> str | None:
    """Why a connected project would get no new batches (no API key where the backend runs), and
    what to set; None when it is not connected to Label Studio or the key is set."""
    return _missing_api_key(settings, store.get_meta(PROJECT_KEY))


def _missing_api_key(settings: Settings, project_id: str | None) -> str | None:
    if project_id is None or settings.ls_api_key:
        return None
    return (
        f"the project is connected to Label Studio project {project_id}, but LABEL_STUDIO_API_KEY is not set "
        "where the backend runs, so no re-ranked batch reaches the annotators after the first one: set "
        "LABEL_STUDIO_URL and LABEL_STUDIO_API_KEY in the environment of `annotator serve` (or ls_url / "
        "ls_api_key in the project's config.toml) and restart it"
    )


def ls_client(settings: Settings) -> LabelStudioClient:
    return LabelStudioClient(settings.ls_url, settings.ls_api_key)


def run_cycle(settings: Settings, *, force: bool = False, train: bool = True) -> dict:
    """Retrain if the labels changed (or ``force``), refresh the Label Studio queue, then measure.

    ``train=False`` is a reconciliation: no retrain, only the queue settled with Label Studio (and
    annotations no webhook brought stored; ``push.recovered`` counts them).

    One cycle runs at a time per project, whichever process starts it (:func:`project_lock`), so
    several backend workers never train two versions at once or refresh the queue twice. What
    annotators wait for comes first: the new version is saved and the queue re-scored before the
    version's held-out evaluation (a second fit) and the dashboard's predictions run. A failed
    refresh (Label Studio down, a refused call) is raised after the evaluation, so the version still
    gets its figures and the failure is reported on /health.
    """
    from .ls_queue import refresh_queue, wire_project

    started = time.perf_counter()
    with project_lock(settings.home), Store(settings.store_url) as store:
        registry = ModelRegistry(settings.model_dir, store)
        out: dict = {"model_version": None, "push": None}
        snapshot = CycleSnapshot.read(store, settings.labels)  # the cycle's one read of the labels
        trained = (
            retrain(settings, store, registry, snapshot)
            if train and (force or needs_training(store, snapshot))
            else None
        )
        out["model_version"] = trained.version.version if trained else None
        out["train_seconds"] = round(time.perf_counter() - started, 2)
        project_id = store.get_meta(PROJECT_KEY)
        failure: Exception | None = None
        if problem := _missing_api_key(settings, project_id):
            # Not silently: the annotators would run out of tasks after the first batch.
            failure = LabelStudioError(problem)
        elif project_id is not None:
            try:
                with ls_client(settings) as client:
                    if store.get_meta(WIRED_KEY) != project_id:
                        wire_project(client, int(project_id), settings)
                        store.set_meta(WIRED_KEY, project_id)
                    out["push"] = refresh_queue(
                        settings, store, registry, client, int(project_id), snapshot=snapshot
                    ).to_dict()
            except Exception as exc:  # the version is saved: measure it anyway, then report
                failure = exc
        out["ready_seconds"] = round(time.perf_counter() - started, 2)
        if trained is not None:
            figures = evaluate_version(settings, store, trained)
            out["held_out"] = {k: figures[k] for k in ("n", "macro_f1", "micro_f1") if k in figures}
            save_human_label_predictions(store, trained, snapshot)
            out["pool_agreement"] = measure_stability(store, registry, trained, snapshot)
            out["pruned"] = prune_versions(settings, store, registry)
    out["seconds"] = round(time.perf_counter() - started, 2)
    if failure is not None:
        raise failure
    log.info("cycle done: %s", out)
    return out
