"""What the project leads review: progress, throughput, label counts, agreement, model versions, the queue.

Pure library code over a :class:`~annotator.storage.store.Store` (no Flask): the dashboard renders these
figures and ``annotator agreement`` prints the same :class:`~annotator.review.agreement.AgreementReport`,
because both build it through :func:`agreement_for_store` from the same inputs.

Definitions
-----------
- Human annotations are the live annotations whose source is not ``"seed"`` (seed rows are imported
  reference labels, not an annotator's work).
- Labels per hour is a rate *while working*: human annotations divided by the number of distinct
  UTC clock hours in which at least one of them was created (per annotator, or for the whole team).
  Idle nights and weekends do not dilute it.
- The hourly series counts human annotations per UTC hour over the last ``HOURS_SHOWN`` hours,
  ending at the current hour, or at the last active hour when the project has been idle longer.
- The model's predicted sets and confidences are the stored predictions of the latest model version
  (as :func:`annotator.dataset.reports.agreement_summary` reads them).
- The review queue is :func:`annotator.review.disagreements.disagreements`, except that a "model disagrees"
  entry on a clause a lead has already adjudicated is left out: the lead's decision stands, and
  resolving an entry must take it out of the queue.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, UTC

from .agreement import SEED_SOURCE, AgreementReport, agreement_report
from .disagreements import MODEL_DISAGREES, Disagreement, disagreements
from ..query.stopping import StopSignal, VersionPoint, stop_signal
from ..storage.store import Store
from ..types import Annotation, Clause, ModelVersion, NotPolicyReport

HOURS_SHOWN = 48


@dataclass(frozen=True)
class ReviewInputs:
    """What agreement and the queue are computed from, read once from the store."""

    annotations: tuple[Annotation, ...]
    adjudicated: dict[str, tuple[str, ...]]
    model: dict[str, tuple[str, ...]]
    model_confidence: dict[str, float]


@dataclass(frozen=True)
class Progress:
    """How far labeling has come."""

    n_clauses: int  # the pool: every stored clause
    n_labeled: int  # clauses with a live annotation (any source) or an adjudication
    n_human_labeled: int  # clauses with a live human annotation
    n_adjudicated: int
    n_pushed: int  # tasks live in Label Studio
    n_pending: int  # pushed tasks nobody has labeled yet
    n_annotations: int  # live human annotations
    n_seed: int  # live seed annotations
    n_last_24h: int  # human annotations created in the 24 hours before the series' end
    labels_per_hour: float | None  # team rate while working, see the module docstring

    @property
    def n_unlabeled(self) -> int:
        return max(self.n_clauses - self.n_labeled, 0)


@dataclass(frozen=True)
class HourCount:
    """Human annotations created in one UTC hour."""

    start: datetime
    count: int


@dataclass(frozen=True)
class AnnotatorActivity:
    """One annotator's output and speed."""

    annotator: str
    n_annotations: int
    active_hours: int
    labels_per_hour: float | None
    first_at: str
    last_at: str


@dataclass(frozen=True)
class LabelCount:
    """How often one label was chosen, by source."""

    label: str
    n_seed: int  # seed annotations with this label
    n_human: int  # human annotations with this label
    n_adjudicated: int  # adjudicated sets with this label

    @property
    def total(self) -> int:
        return self.n_seed + self.n_human


@dataclass(frozen=True)
class CurvePoint:
    """One model version on the learning curve (held-out figures from its metrics)."""

    version: int
    created_at: str
    n_train: int
    macro_f1: float | None
    micro_f1: float | None
    n_test: int | None


@dataclass(frozen=True)
class QueueItem:
    """A disagreement with what a lead needs to resolve it."""

    disagreement: Disagreement
    text: str
    candidates: tuple[str, ...]  # labels offered first: every set involved, in label-set order
    preselected: tuple[str, ...]  # the best starting point: adjudicated, else agreed labels


@dataclass(frozen=True)
class BlindReport:
    """Whether the overlap tasks' later annotations were made without an anchoring pre-fill."""

    n_double: int  # clauses with annotations by two or more people in Label Studio
    n_blind: int  # of which every later annotation saw no pre-fill, or one from a model made before the first


@dataclass(frozen=True)
class DashboardData:
    """Every figure of the leads' dashboard."""

    labels: tuple[str, ...]
    generated_at: datetime
    progress: Progress
    hourly: tuple[HourCount, ...]
    annotators: tuple[AnnotatorActivity, ...]
    label_counts: tuple[LabelCount, ...]
    report: AgreementReport
    curve: tuple[CurvePoint, ...]
    queue: tuple[QueueItem, ...]  # the first ``queue_limit`` entries
    n_queue: int  # entries in the whole queue
    n_queue_humans: int  # of which "annotators disagree"
    stop: StopSignal  # when to stop labeling (learning-curve gain and prediction stability)
    not_policy: NotPolicyReport
    blind: BlindReport


# --------------------------------------------------------------------------- public API


def review_inputs(store: Store) -> ReviewInputs:
    """Read annotations, adjudications and the latest predictions from ``store``."""
    latest = store.latest_model_version()
    predictions = store.predictions(latest.version) if latest else {}
    return ReviewInputs(
        annotations=tuple(store.annotations()),
        adjudicated=store.adjudications(),
        model={cid: labels for cid, (labels, _) in predictions.items()},
        model_confidence={cid: score for cid, (_, score) in predictions.items()},
    )


def agreement_for_store(store: Store, labels: tuple[str, ...], inputs: ReviewInputs | None = None) -> AgreementReport:
    """The project's agreement report, compared with the adjudicated and the predicted sets.

    Parameters
    ----------
    store : the project store.
    labels : the label set (``Settings.labels``).
    inputs : already read inputs (default: read them from ``store``).

    Returns
    -------
    AgreementReport
        What ``annotator agreement --json`` prints and the dashboard shows.
    """
    inputs = inputs or review_inputs(store)
    return agreement_report(inputs.annotations, labels, adjudicated=inputs.adjudicated, model=inputs.model)


def review_queue(store: Store, labels: tuple[str, ...], inputs: ReviewInputs | None = None) -> list[Disagreement]:
    """Disagreements a lead should resolve, most important first (see the module docstring)."""
    inputs = inputs or review_inputs(store)
    queue = disagreements(
        inputs.annotations,
        labels,
        adjudicated=inputs.adjudicated,
        model=inputs.model,
        model_confidence=inputs.model_confidence,
    )
    return [d for d in queue if not (d.reason == MODEL_DISAGREES and d.clause_id in inputs.adjudicated)]


def dashboard_data(
    store: Store, labels: tuple[str, ...], *, now: datetime | None = None, queue_limit: int | None = 20
) -> DashboardData:
    """Compute every dashboard figure with one read of each table.

    Parameters
    ----------
    store : the project store.
    labels : the label set, in display order.
    now : the current time (default: the clock); fixes the hourly series in tests.
    queue_limit : queue entries returned with their clause text (None: all of them).

    Returns
    -------
    DashboardData

    Examples
    --------
    >>> from annotator.storage.store import Store
    >>> with Store(":memory:") as store:
    ...     data = dashboard_data(store, ("财政支持", "税收激励"))
    >>> data.progress.n_clauses, data.report.n_items, data.n_queue
    (0, 0, 0)
    """
    now = now or datetime.now(UTC)
    inputs = review_inputs(store)
    report = agreement_for_store(store, labels, inputs)
    queue = review_queue(store, labels, inputs)
    human = [a for a in inputs.annotations if a.source != SEED_SOURCE]
    hourly = _hourly(human, now)
    shown = queue if queue_limit is None else queue[:queue_limit]
    return DashboardData(
        labels=labels,
        generated_at=now,
        progress=_progress(store, inputs, human, hourly),
        hourly=hourly,
        annotators=_activity(human),
        label_counts=_label_counts(inputs, labels),
        report=report,
        curve=tuple(_curve_point(v) for v in store.model_versions()),
        queue=_queue_items(shown, store.clauses(d.clause_id for d in shown), labels),
        n_queue=len(queue),
        n_queue_humans=sum(d.reason != MODEL_DISAGREES for d in queue),
        stop=stop_signal_for_store(store),
        not_policy=not_policy_report(store),
        blind=blind_report(store),
    )


def stop_signal_for_store(store: Store) -> StopSignal:
    """The stop signal over the project's model versions (held-out macro-F1, prediction stability)."""
    return stop_signal(
        [
            VersionPoint(
                v.version, v.n_train, _finite(v.metrics.get("macro_f1")), _finite(v.metrics.get("pool_agreement"))
            )
            for v in store.model_versions()
        ]
    )


OPENING_CHARS = 3  # "近日，", "日前，", "记者从": how many first characters group the not-policy lines


def not_policy_report(store: Store, *, n_examples: int = 5) -> NotPolicyReport:
    """What annotators marked "not a policy measure", grouped by how the lines open."""
    answers = store.annotations(not_policy=True)
    ids = list(dict.fromkeys(a.clause_id for a in reversed(answers)))
    texts = [c.text for c in store.clauses(ids)]
    openings = Counter(text[:OPENING_CHARS] for text in texts)
    return NotPolicyReport(len(ids), tuple(openings.most_common(10)), tuple(texts[:n_examples]))


def blind_report(store: Store) -> BlindReport:
    """Count the double-annotated clauses whose later annotations were blind (see BlindReport)."""
    created = {v.version: v.created_at for v in store.model_versions()}
    by_clause: dict[str, list[Annotation]] = defaultdict(list)
    for a in store.annotations(sources=["label_studio"], not_policy=None):
        by_clause[a.clause_id].append(a)
    n_double = n_blind = 0
    for clause_annotations in by_clause.values():
        if len({a.annotator for a in clause_annotations}) < 2:
            continue
        n_double += 1
        first, *later = sorted(clause_annotations, key=lambda a: a.created_at)
        n_blind += all(
            a.prefill_version is None or created.get(a.prefill_version, "~") < first.created_at for a in later
        )
    return BlindReport(n_double, n_blind)


# --------------------------------------------------------------------------- the parts


def _progress(
    store: Store, inputs: ReviewInputs, human: Sequence[Annotation], hourly: tuple[HourCount, ...]
) -> Progress:
    """Pool, labeled, pushed and rate counts."""
    return Progress(
        n_clauses=store.count_clauses(),
        n_labeled=len(store.labeled_clause_ids()),
        n_human_labeled=len({a.clause_id for a in human}),
        n_adjudicated=len(inputs.adjudicated),
        n_pushed=len(store.pushed_tasks()),
        n_pending=len(store.pending_pushed_tasks()),
        n_annotations=len(human),
        n_seed=len(inputs.annotations) - len(human),
        n_last_24h=sum(h.count for h in hourly[-24:]),
        labels_per_hour=_rate(len(human), len({_hour_key(a) for a in human} - {""})),
    )


def _hour_key(annotation: Annotation) -> str:
    """``YYYY-MM-DDTHH`` of the creation time (the store keeps UTC ISO-8601), or ''."""
    return annotation.created_at[:13] if len(annotation.created_at) >= 13 else ""


def _hourly(human: Sequence[Annotation], now: datetime) -> tuple[HourCount, ...]:
    """Human annotations per UTC hour over the HOURS_SHOWN hours ending now (or at the last activity)."""
    counts = Counter(_hour_key(a) for a in human)
    counts.pop("", None)
    end = now.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    if counts:
        last = datetime.fromisoformat(max(counts) + ":00:00+00:00")
        if last <= end - timedelta(hours=HOURS_SHOWN):
            end = last
    hours = [end - timedelta(hours=HOURS_SHOWN - 1 - i) for i in range(HOURS_SHOWN)]
    return tuple(HourCount(h, counts.get(h.strftime("%Y-%m-%dT%H"), 0)) for h in hours)


def _activity(human: Sequence[Annotation]) -> tuple[AnnotatorActivity, ...]:
    """Per annotator: count, active hours and rate; sorted by annotator id (as the agreement report)."""
    by_name: dict[str, list[Annotation]] = defaultdict(list)
    for a in human:
        by_name[a.annotator].append(a)
    out = []
    for name in sorted(by_name):
        anns = by_name[name]
        hours = {_hour_key(a) for a in anns} - {""}
        stamps = sorted(a.created_at for a in anns if a.created_at)
        out.append(
            AnnotatorActivity(
                name,
                len(anns),
                len(hours),
                _rate(len(anns), len(hours)),
                stamps[0] if stamps else "",
                stamps[-1] if stamps else "",
            )
        )
    return tuple(out)


def _rate(n: int, hours: int) -> float | None:
    return n / hours if hours else None


def _label_counts(inputs: ReviewInputs, labels: tuple[str, ...]) -> tuple[LabelCount, ...]:
    """How many seed and human annotations, and adjudicated sets, chose each label."""
    seed: Counter[str] = Counter()
    human: Counter[str] = Counter()
    for a in inputs.annotations:
        (seed if a.source == SEED_SOURCE else human).update(set(a.labels))
    adjudicated = Counter(label for chosen in inputs.adjudicated.values() for label in set(chosen))
    return tuple(LabelCount(label, seed[label], human[label], adjudicated[label]) for label in labels)


def _curve_point(version: ModelVersion) -> CurvePoint:
    metrics = version.metrics or {}
    n_test = metrics.get("n")
    return CurvePoint(
        version.version,
        version.created_at,
        version.n_train,
        _finite(metrics.get("macro_f1")),
        _finite(metrics.get("micro_f1")),
        n_test if isinstance(n_test, int) else None,
    )


def _finite(value) -> float | None:
    """A finite float, or None for a missing or non-numeric metric."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def _queue_items(
    queue: Sequence[Disagreement], clauses: Sequence[Clause], labels: tuple[str, ...]
) -> tuple[QueueItem, ...]:
    """Attach clause text, the labels to offer first and the labels to pre-check."""
    texts = {c.id: c.text for c in clauses}
    items = []
    for d in queue:
        involved = set(d.union) | set(d.model or ()) | set(d.adjudicated or ())
        for _, chosen in d.annotations:
            involved.update(chosen)
        if d.adjudicated is not None:
            preselected = d.adjudicated
        elif d.reason == MODEL_DISAGREES:  # unanimous humans against the model: start from the humans
            preselected = d.annotations[0][1] if d.annotations else ()
        else:
            preselected = d.intersection
        items.append(
            QueueItem(
                disagreement=d,
                text=texts.get(d.clause_id, ""),
                candidates=tuple(label for label in labels if label in involved),
                preselected=tuple(preselected),
            )
        )
    return tuple(items)
