"""Frozen dataclasses shared across modules: what a document, clause, annotation and model version are."""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Segment:
    """One clause cut out of a document, before it is stored.

    ``text`` is already normalized; ``id`` is :func:`annotator.text.normalize.clause_id` of it.
    """

    id: str
    text: str
    section: str = ""
    position: int = 0


@dataclass(frozen=True)
class Document:
    """A source document and the clauses segmented from it."""

    id: str
    path: str
    title: str
    segments: tuple[Segment, ...] = ()
    dropped: int = 0  # boilerplate lines and fragments left out


@dataclass(frozen=True)
class Clause:
    """A stored clause: the unit annotators label."""

    id: str
    text: str
    document_id: str | None = None
    section: str = ""
    position: int = 0


@dataclass(frozen=True)
class Annotation:
    """One annotator's label set for one clause."""

    clause_id: str
    labels: tuple[str, ...]
    annotator: str
    source: str  # "seed", "label_studio", "cli"
    id: int | None = None
    ls_annotation_id: int | None = None
    ls_task_id: int | None = None
    created_at: str = ""
    updated_at: str = ""
    not_policy: bool = False  # "not a policy measure": stored and counted, never trained on or exported
    prefill_version: int | None = None  # the model version whose pre-fill the task showed (None: none)


@dataclass(frozen=True)
class Example:
    """A clause with its resolved multi-label set, ready to train on."""

    id: str
    text: str
    labels: tuple[str, ...]
    sources: tuple[str, ...] = ()


@dataclass(frozen=True)
class ModelVersion:
    """A saved model version and what is known about it."""

    version: int
    path: str
    created_at: str
    n_train: int
    metrics: dict = field(default_factory=dict)


@dataclass(frozen=True)
class TrainRun:
    """One training run: started, then done (with the version it saved) or failed (with the error)."""

    id: int
    status: str  # "running", "done" or "failed"
    started_at: str
    finished_at: str | None = None
    n_labels: int | None = None
    model_version: int | None = None
    error: str | None = None


@dataclass(frozen=True)
class PushedTask:
    """A clause the loop put into a Label Studio project, and what its task shows.

    ``ls_task_id`` is None between the record and the confirmed import (a crash there is settled by
    the clause's data, never by the id: Label Studio on SQLite reuses the ids of deleted tasks).
    ``prefill_version``/``prefill_labels`` are the pre-fill the task shows; once someone labeled the
    clause they stay frozen, so a second annotator never sees a pre-fill from a model that learned
    the first annotator's answer.
    """

    clause_id: str
    project_id: int
    ls_task_id: int | None
    rank: int
    batch: int
    model_version: int | None
    pushed_at: str
    removed_at: str | None = None
    score: float | None = None
    prefill_version: int | None = None
    prefill_labels: tuple[str, ...] = ()
