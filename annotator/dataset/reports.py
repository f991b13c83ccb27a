"""Project-level reports over the store: the agreement summary and the dataset export.

Each gathers what the store holds (annotations, adjudications, latest predictions) and hands it to
the pure modules (:mod:`annotator.review.agreement`, :mod:`annotator.dataset.export`). Nothing here writes to the
store.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from ..review.agreement import agreement_report
from .export import ExportReport, export_dataset
from ..redaction import settings_secrets
from ..review.dashboard import agreement_for_store, review_inputs, review_queue
from ..settings import Settings
from ..storage.store import Store


def agreement_summary(store: Store, labels: Sequence[str], *, queue_size: int = 10) -> dict:
    """``{"agreement": AgreementReport.to_dict(), "queue": [...], "queue_total": n}``.

    The same inputs and queue rule as the dashboard (:mod:`annotator.review.dashboard`), so both show the
    same figures.
    """
    inputs = review_inputs(store)
    report = agreement_for_store(store, tuple(labels), inputs)
    queue = review_queue(store, tuple(labels), inputs)
    return {
        "agreement": report.to_dict(),
        "queue": [d.to_dict() for d in queue[:queue_size]],
        "queue_total": len(queue),
    }


def export_project(
    store: Store,
    settings: Settings,
    out: str | Path,
    *,
    fmt: str = "jsonl",
    root: str | Path = "exports",
    policy: str = "majority",
    splits: Sequence[float] = (0.8, 0.1, 0.1),
    noise_check: bool = True,
    overwrite: bool = False,
) -> ExportReport:
    """Export the project's labels as a cleaned dataset; returns the export report
    (``report.to_dict()`` is what ``annotator export --json`` prints)."""
    from .. import __version__

    annotations = store.annotations()
    labeled = {a.clause_id for a in annotations} | set(store.adjudications())
    texts = {c.id: c.text for c in store.clauses(sorted(labeled))}
    labels = settings.labels
    agreement = agreement_report(annotations, labels, adjudicated=store.adjudications()).to_dict()
    latest = store.latest_model_version()
    return export_dataset(
        annotations,
        texts,
        labels,
        out,
        fmt=fmt,
        root=root,
        adjudications=store.adjudications(),
        policy=policy,
        splits=splits,
        seed=settings.seed,
        noise_check=noise_check,
        agreement=agreement,
        model_version=latest.version if latest else None,
        tool_version=__version__,
        overwrite=overwrite,
        secrets=settings_secrets(settings),
    )
