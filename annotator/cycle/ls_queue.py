"""The annotators' queue in Label Studio: which clauses wait there, and in which order they are served.

Label Studio serves each annotator the unlabeled task with the lowest prediction ``score`` of the
project's current ``model_version`` ("Uncertainty sampling", set by :func:`wire_project`), and
locks the task someone has open. After each retrain :func:`refresh_queue` gives every waiting task
a prediction under the new version, whose score is the task's rank in the query strategy's
ordering (lower is asked sooner) and whose result is the model's pre-fill; adds the best unpushed
clauses so that ``queue_window`` wait; and only then switches the project to the new version.

Three rules keep annotators' work safe:

- **No task is ever deleted**: the one on someone's screen stays theirs (Label Studio's lock).
- **A task is its data, not its id**: every task is matched to its clause by its text (the clause
  id is the hash of the normalized text); Label Studio on SQLite reuses the ids of deleted tasks,
  so an id alone can name another clause. Records are settled against what Label Studio holds at
  the start of every refresh, which also repairs a crash between a push's record and its import.
- **Blind double annotation**: once someone labeled a clause its pre-fill is frozen, so the second
  annotator of an overlap task never sees a pre-fill from a model that learned the first answer.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

from ..errors import NotTrainedError
from ..labelstudio.client import LabelStudioClient, LsTask, ls_model_version, prediction_payload, task_data
from ..text.normalize import clause_id as text_clause_id
from ..text.normalize import match_key
from .project import training_examples
from .snapshot import CycleSnapshot
from ..model.project_features import pool_cache
from ..storage.registry import ModelRegistry
from ..settings import Settings
from ..storage.store import Store
from ..query.strategies import cold_start_batch, select_batch
from .sync import record_annotation, remember_users, sync_project
from ..model.training import label_matrix
from .. import task_format
from ..types import Clause, Example, ModelVersion, PushedTask

log = logging.getLogger(__name__)

UNRANKED_SCORE = 1.0  # waiting tasks outside the strategy's top ``queue_window`` score from 1.0 up
QUEUE_VERSION_KEY = "ls_queue_model_version"  # the version whose predictions Label Studio last got
REFRESHES_KEY = "ls_queue_refreshes"  # refreshes since the waiting tasks' old predictions were deleted
PREDICTIONS_KEPT = 10  # old predictions a waiting task keeps at most (deleted every 10th refresh)


@dataclass(frozen=True)
class QueueReport:
    """What one refresh did to the Label Studio queue."""

    model_version: int | None  # the version whose predictions Label Studio now serves by
    imported: int  # new tasks
    refreshed: int  # waiting tasks given a prediction of the new version
    pending: int  # tasks waiting for an annotator after the refresh
    returned: int  # recorded pushes Label Studio does not hold (back to the pool)
    recovered: int  # annotations Label Studio holds that no webhook had brought (now stored)
    unmatched: int  # tasks whose data names no stored clause, or a clause id that its text does not hash to
    seconds: float

    def to_dict(self) -> dict:
        return dict(asdict(self), pushed=self.imported)  # "pushed": the key earlier reports used


def clause_of_task(task: LsTask, known: set[str]) -> str | None:
    """The stored clause a Label Studio task shows, checked by its data; None if it shows none.

    The clause is the hash of the task's normalized text; a ``clause_id`` in the data that names
    another clause is not trusted (a reused task id, an edited task, a hand-made payload).
    """
    if not task.text:
        return None
    cid = text_clause_id(task.text)
    if task.clause_id is not None and task.clause_id != cid:
        return None
    return cid if cid in known else None


def settle_by_data(
    store: Store, tasks: Sequence[LsTask], project_id: int, known: set[str]
) -> tuple[dict[str, LsTask], int, int]:
    """Bring the store's push records in line with the tasks Label Studio holds, matched by data.

    A recorded clause found in a task gets that task's id (settling a push a crash cut off, or an id
    Label Studio changed); one found nowhere goes back to the pool; a task of a stored clause that
    the store has no record of is adopted. Returns ``(clause id -> task, returned, unmatched)``.
    """
    live: dict[str, LsTask] = {}
    unmatched = 0
    for task in tasks:
        cid = clause_of_task(task, known)
        if cid is None:
            unmatched += 1
            continue
        # A clause in two tasks (a retried import): the one people are labeling is the one we track.
        if cid not in live or (task.n_annotations, -task.id) > (live[cid].n_annotations, -live[cid].id):
            live[cid] = task
    if unmatched:
        log.warning(
            "%d task(s) of Label Studio project %d show no stored clause (or a clause id their text "
            "does not match); they are left alone",
            unmatched,
            project_id,
        )
    records = {p.clause_id: p for p in store.pushed_tasks()}
    with store.transaction():
        moved = {
            cid: task.id
            for cid, task in live.items()
            if cid in records and (records[cid].ls_task_id != task.id or records[cid].project_id != project_id)
        }
        if moved:
            store.set_task_ids(moved)
        adopted = [cid for cid in live if cid not in records]
        if adopted:
            store.record_push(
                project_id,
                [(cid, live[cid].id, i) for i, cid in enumerate(adopted)],
                batch=store.next_batch_number(),
                model_version=None,
            )
        lost = [cid for cid in records if cid not in live]
        if lost:
            store.mark_removed(lost)
    if lost or adopted:
        log.warning(
            "settled the store with Label Studio project %d by the tasks' data: %d recorded clause(s) "
            "not in Label Studio returned to the pool, %d task(s) adopted",
            project_id,
            len(lost),
            len(adopted),
        )
    return live, len(lost), unmatched


def recover_missing_annotations(
    store: Store,
    client: LabelStudioClient,
    live: dict[str, LsTask],
    project_id: int,
    config,
    snapshot: CycleSnapshot | None = None,
) -> int:
    """Store the annotations Label Studio holds for our tasks that no webhook brought.

    Label Studio sends no webhook for a submit by a user without an active organization, and a
    webhook can be lost in an outage: a task with more annotations in Label Studio than in the
    store is read back and its annotations recorded (idempotent by annotation id). Returns how
    many annotations were new or changed. ``snapshot``: the cycle's read of the store, if any.
    """
    answers = (
        (*snapshot.annotations, *snapshot.not_policy) if snapshot is not None else store.annotations(not_policy=None)
    )
    stored: dict[str, int] = {}
    for a in answers:
        if a.source == "label_studio":
            stored[a.clause_id] = stored.get(a.clause_id, 0) + 1
    behind = [task for cid, task in live.items() if task.n_annotations > stored.get(cid, 0)]
    recovered = 0
    for task in behind:
        full = client.task(task.id)
        for annotation in full.get("annotations") or []:
            if annotation.get("was_cancelled"):
                continue
            what = record_annotation(store, annotation, full, config, project_id=project_id)
            recovered += what in ("created", "updated")
    if recovered:
        log.warning(
            "recovered %d annotation(s) from Label Studio project %d that no webhook had brought "
            "(a user without an active organization, or a lost webhook)",
            recovered,
            project_id,
        )
    return recovered


def unlabeled_pool(clauses: Sequence[Clause], labeled: set[str]) -> list[Clause]:
    """Clauses nobody labeled, whose text is not labeled elsewhere either (in store order)."""
    labeled_keys = {match_key(c.text) for c in clauses if c.id in labeled}
    return [c for c in clauses if c.id not in labeled and match_key(c.text) not in labeled_keys]


def rank_pool(
    settings: Settings,
    store: Store,
    model,
    X,
    pool: Sequence[Clause],
    n: int,
    *,
    rng: np.random.Generator,
    examples: Sequence[Example] | None = None,
) -> list[int]:
    """The strategy's best ``n`` rows of ``pool``, best first (the cold start's before any model).
    ``examples``: the labeled examples when already read (a cycle's snapshot)."""
    texts = [c.text for c in pool]
    if model is None:
        return cold_start_batch(texts, settings.labels, n, rng=rng)
    examples = training_examples(store, settings.labels) if examples is None else examples
    return select_batch(
        model, X, n, strategy=settings.strategy, rng=rng, texts=texts, Y_labeled=label_matrix(examples, settings.labels)
    )


@dataclass(frozen=True)
class QueuePlan:
    """Scores for every pool row that will wait in Label Studio, and the rows to import."""

    scores: dict[int, float]  # pool row -> priority (lower is served sooner)
    to_import: list[int]  # pool rows not in Label Studio yet, best first


def plan_queue(
    n_pool: int, waiting: set[int], ranked: Sequence[int], *, window: int, n_fresh: int, rng: np.random.Generator
) -> QueuePlan:
    """Which pool rows to import and the score of each row that waits in Label Studio.

    ``ranked`` are the strategy's best rows, best first; row ``i`` of it scores ``i / len(ranked)``,
    so the annotators get them in that order. The best ``n_fresh`` rows are always in Label Studio
    after the refresh (imported if needed), and more ranked rows are imported while fewer than
    ``window`` tasks wait. Waiting rows the strategy did not rank score from ``UNRANKED_SCORE``
    up, in random order: they are served only if the ranked ones run out before the next retrain.

    Examples
    --------
    >>> plan = plan_queue(6, {4}, [3, 4, 0], window=2, n_fresh=1, rng=np.random.default_rng(0))
    >>> plan.to_import, plan.scores[3], plan.scores[4]
    ([3], 0.0, 0.3333...)
    """
    scores = {row: i / max(len(ranked), 1) for i, row in enumerate(ranked)}
    to_import = [row for row in ranked[:n_fresh] if row not in waiting]
    room = window - len(waiting) - len(to_import)
    for row in ranked[n_fresh:]:
        if room <= 0:
            break
        if row not in waiting:
            to_import.append(row)
            room -= 1
    unranked = [row for row in sorted(waiting) if row not in scores]
    for j, i in enumerate(rng.permutation(len(unranked))):
        scores[unranked[i]] = UNRANKED_SCORE + j / max(len(unranked), 1)
    keep = waiting | set(to_import)
    return QueuePlan({row: s for row, s in scores.items() if row in keep}, to_import)


def wire_project(client: LabelStudioClient, project_id: int, settings: Settings | None = None) -> None:
    """Serve the project by Label Studio's uncertainty sampling (lowest prediction score first), and
    give the webhook of every ML backend connected to it the secret header and basic auth this
    backend expects: a backend added on Label Studio's Model page gets a webhook without them."""
    client.serve_by_uncertainty(project_id)
    if settings is None or not (settings.webhook_secret or settings.basic_auth_user):
        return
    auth = (settings.basic_auth_user, settings.basic_auth_pass) if settings.basic_auth_user else None
    for url in client.ml_backend_urls(project_id):
        client.ensure_webhook(project_id, f"{url.rstrip('/')}/webhook", secret=settings.webhook_secret, basic_auth=auth)


def refresh_queue(
    settings: Settings,
    store: Store,
    registry: ModelRegistry,
    client: LabelStudioClient,
    project_id: int,
    *,
    snapshot: CycleSnapshot | None = None,
) -> QueueReport:
    """Give the waiting tasks the latest version's scores and pre-fills, top the queue up, switch
    the project's model version. Call it holding the project's cycle lock. ``snapshot``: the
    cycle's read of the store (default: read it now)."""
    started = time.perf_counter()
    config = settings.labels_config()
    snapshot = snapshot or CycleSnapshot.read(store, settings.labels)
    known = {c.id for c in snapshot.clauses}
    live, returned, unmatched = settle_by_data(
        store, client.task_index(project_id, config.value_key), project_id, known
    )
    recovered = recover_missing_annotations(store, client, live, project_id, config, snapshot)
    if recovered:  # labels the snapshot did not have: those clauses are no longer to be asked
        snapshot = CycleSnapshot.read(store, settings.labels)
    remember_users(store, client)  # people who joined since: their labels name them, not their ids
    records = {p.clause_id: p for p in store.pushed_tasks()}
    clauses, labeled = snapshot.clauses, snapshot.labeled_ids
    waiting = {cid: task for cid, task in live.items() if not task.is_labeled}
    info: ModelVersion | None
    try:
        info, model = registry.load("latest")
    except NotTrainedError:
        info, model = None, None
    version = info.version if info is not None else None
    pool = unlabeled_pool(clauses, labeled)
    row_of = {c.id: i for i, c in enumerate(pool)}
    waiting_rows = {row_of[cid] for cid in waiting if cid in row_of}
    batch = store.next_batch_number()
    rng = np.random.default_rng([settings.seed, batch])
    X = None
    if info is not None and pool:  # a model was loaded (with its version's row)
        X = pool_cache(
            settings, store, model.featurizer_, fingerprint=info.metrics.get("featurizer_fingerprint"), clauses=clauses
        ).matrix([c.id for c in pool])
    # A new version (or tasks never scored, e.g. adopted ones): every waiting task gets a prediction.
    new_version = store.get_meta(QUEUE_VERSION_KEY) != f"{project_id}:{version}" or any(
        records[cid].score is None for cid in waiting if cid in records and cid in row_of
    )
    room = settings.queue_window - len(waiting)
    ranked: list[int] = []
    if pool and (new_version or room > 0 or not waiting):
        ranked = rank_pool(
            settings, store, model, X, pool, min(settings.queue_window, len(pool)), rng=rng, examples=snapshot.examples
        )
    plan = plan_queue(
        len(pool),
        waiting_rows,
        ranked,
        window=settings.queue_window,
        n_fresh=settings.batch_size if new_version or not waiting else 0,
        rng=rng,
    )
    # Pre-fills for the new tasks and, after a retrain, for the waiting tasks nobody labeled yet.
    prefills = _prefills(store, model, version, X, pool, plan.to_import + (sorted(waiting_rows) if new_version else []))
    name = ls_model_version(version)
    imported = _import_new(
        store,
        client,
        project_id,
        config,
        [(pool[row], plan.scores[row], prefills.get(row, ())) for row in plan.to_import],
        version,
        batch,
    )
    n_refreshed = 0
    if new_version:  # every waiting task needs a prediction of this version, or Label Studio would not serve it
        n_refreshed = _refresh_waiting(
            store,
            client,
            project_id,
            config,
            waiting,
            records,
            version,
            {
                cid: (plan.scores[row_of[cid]], prefills.get(row_of[cid], ()))
                for cid in waiting
                if cid in row_of and row_of[cid] in plan.scores
            },
        )
    if imported or new_version:
        client.set_model_version(project_id, name)
        store.set_meta(QUEUE_VERSION_KEY, f"{project_id}:{version}")
    report = QueueReport(
        model_version=version,
        imported=imported,
        refreshed=n_refreshed,
        pending=len(waiting) + imported,
        returned=returned,
        recovered=recovered,
        unmatched=unmatched,
        seconds=round(time.perf_counter() - started, 2),
    )
    log.info("queue refreshed: %s", report)
    return report


def _prefills(
    store: Store, model, version: int | None, X, pool: Sequence[Clause], rows: Sequence[int]
) -> dict[int, tuple[str, ...]]:
    """The model's labels for these pool rows (stored as the version's predictions); none before a model."""
    if model is None or not rows:
        return {}
    assert version is not None, "a loaded model always comes with its version number"
    predicted = model.predictions(model.predict_proba_features(X[list(rows)]))
    store.save_predictions(version, [(pool[row].id, p.labels, p.confidence) for row, p in zip(rows, predicted)])
    return {row: p.labels for row, p in zip(rows, predicted)}


def _import_new(
    store: Store,
    client: LabelStudioClient,
    project_id: int,
    config,
    new: Sequence[tuple[Clause, float, tuple[str, ...]]],
    version: int | None,
    batch: int,
) -> int:
    """Import ``(clause, score, pre-fill)`` as tasks with their prediction: recorded first, imported
    second, so a crash in between is settled by the tasks' data on the next refresh."""
    if not new:
        return 0
    name = ls_model_version(version)
    store.record_push(
        project_id, [(c.id, None, r) for r, (c, _, _) in enumerate(new)], batch=batch, model_version=version
    )
    task_ids = client.import_tasks(
        project_id,
        [
            task_format.task(
                task_data(c.id, c.text, c.section, config), [prediction_payload(labels, score, name, config)]
            )
            for c, score, labels in new
        ],
    )
    store.set_task_ids({c.id: t for (c, _, _), t in zip(new, task_ids)})
    store.set_priorities([(c.id, score, version, labels) for c, score, labels in new], model_version=version)
    return len(new)


def _refresh_waiting(
    store: Store,
    client: LabelStudioClient,
    project_id: int,
    config,
    waiting: dict[str, LsTask],
    records: dict[str, PushedTask],
    version: int | None,
    fresh: dict[str, tuple[float, tuple[str, ...]]],
) -> int:
    """A prediction of ``version`` for each waiting task: a fresh score and pre-fill for an unlabeled
    clause (``fresh``), the frozen first pre-fill for an overlap task someone already labeled.
    Returns how many predictions were imported."""
    name = ls_model_version(version)
    rows: list[tuple[str, float, int | None, tuple[str, ...] | None]] = []
    predictions = []
    for cid, task in waiting.items():
        record = records.get(cid)
        # Blind: a task someone labeled keeps the pre-fill it showed before, even when the cycle's
        # snapshot (read before training) does not count that label yet.
        if record is not None and task.n_annotations:
            score, labels = (record.score if record.score is not None else 0.0), record.prefill_labels
            rows.append((cid, score, None, None))
        elif cid in fresh:
            score, labels = fresh[cid]
            rows.append((cid, score, version, labels))
        else:  # labeled outside Label Studio meanwhile: not served again while others wait
            continue
        predictions.append(prediction_payload(labels, score, name, config, task_id=task.id))
    # A waiting task keeps at most PREDICTIONS_KEPT predictions, not one per retrain forever: Label
    # Studio's reads slow down with every prediction a task keeps (20,000 tasks: 39 s -> 64 s to
    # list after one more version), and deleting them costs about as much as importing them, so
    # the old ones go every PREDICTIONS_KEPT refreshes, just before the new ones arrive. A task
    # someone holds stays theirs meanwhile, and its pre-fill is already on their screen.
    refreshes = int(store.get_meta(REFRESHES_KEY) or 0) + 1
    if refreshes >= PREDICTIONS_KEPT:
        client.delete_predictions(project_id, [p["task"] for p in predictions])
        refreshes = 0
    store.set_meta(REFRESHES_KEY, str(refreshes))
    client.import_predictions(project_id, predictions)
    store.set_priorities(rows, model_version=version)
    return len(predictions)


def repair_project(settings, store: Store, client: LabelStudioClient, project_id: int) -> dict:
    """``annotator sync``: every annotation read back (:func:`annotator.cycle.sync.sync_project`), then
    the queue settled by the tasks' data and refreshed (:func:`refresh_queue`), under the project's
    cycle lock. Returns the sync report with the queue's under ``"queue"``."""
    from ..storage.locks import project_lock

    report = sync_project(store, client, project_id, settings.labels_config())
    with project_lock(settings.home):
        wire_project(client, project_id, settings)
        report["queue"] = refresh_queue(
            settings, store, ModelRegistry(settings.model_dir, store), client, project_id
        ).to_dict()
    return report
