"""Frozen dataclasses shared across modules: what a document, clause, annotation and model version are."""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Segment:
    """One clause cut out of a document, before it is stored.

    ``text`` is already normalized; ``id`` is :func:`annotator.normalize.clause_id` of it.
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
