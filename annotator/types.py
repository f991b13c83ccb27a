"""Frozen dataclasses shared across modules: what a document, clause, annotation and model version are,
and the reports of ingesting documents and importing labeled files."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


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


# Reports ---------------------------------------------------------------------------------------------
# What `annotator ingest` and `annotator import-labels` print with --json is a contract other tools
# read: ``to_dict()`` gives exactly that document (keys, their order and values; pinned by
# tests/unit/test_report_records.py), and ``from_dict`` reads one back.


@dataclass(frozen=True)
class NotPolicyReport:
    """The lines annotators answered "not a policy measure": what ingestion should have dropped."""

    n: int  # clauses with such an answer
    openings: tuple[tuple[str, int], ...]  # their most common first characters (e.g. "近日，"), with counts
    examples: tuple[str, ...]  # a few of the lines, newest first

    def to_dict(self) -> dict[str, Any]:
        """``{"n", "openings": [[opening, count], ...], "examples"}``."""
        return {"n": self.n, "openings": [list(o) for o in self.openings], "examples": list(self.examples)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> NotPolicyReport:
        """The record of a :meth:`to_dict` document."""
        return cls(
            int(data["n"]),
            tuple((str(o), int(n)) for o, n in data["openings"]),
            tuple(str(e) for e in data["examples"]),
        )


@dataclass(frozen=True)
class IngestedDocument:
    """One document an ingest read: its clauses, how many were new to the project, lines dropped."""

    path: str
    title: str
    clauses: int
    new: int
    dropped: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "title": self.title,
            "clauses": self.clauses,
            "new": self.new,
            "dropped": self.dropped,
        }


@dataclass(frozen=True)
class IngestReport:
    """What ingesting documents did (``annotator ingest``).

    ``errors`` has one message per file that could not be used; ``tasks_file`` is None when no task
    file was written; ``not_policy`` is what annotators answered "not a policy measure" so far (the
    segmenter's blind spots).
    """

    documents: tuple[IngestedDocument, ...]
    new_clauses: int
    errors: tuple[str, ...]
    tasks_file: str | None
    tasks: int
    total_clauses: int
    not_policy: NotPolicyReport = NotPolicyReport(0, (), ())

    def to_dict(self) -> dict[str, Any]:
        """The ``--json`` document: ``{"documents", "new_clauses", "errors", "tasks_file", "tasks",
        "total_clauses", "not_policy"}``."""
        return {
            "documents": [d.to_dict() for d in self.documents],
            "new_clauses": self.new_clauses,
            "errors": list(self.errors),
            "tasks_file": self.tasks_file,
            "tasks": self.tasks,
            "total_clauses": self.total_clauses,
            "not_policy": self.not_policy.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> IngestReport:
        """The record of a :meth:`to_dict` document."""
        return cls(
            documents=tuple(
                IngestedDocument(str(d["path"]), str(d["title"]), int(d["clauses"]), int(d["new"]), int(d["dropped"]))
                for d in data["documents"]
            ),
            new_clauses=int(data["new_clauses"]),
            errors=tuple(str(e) for e in data["errors"]),
            tasks_file=None if data["tasks_file"] is None else str(data["tasks_file"]),
            tasks=int(data["tasks"]),
            total_clauses=int(data["total_clauses"]),
            not_policy=NotPolicyReport.from_dict(data["not_policy"]),
        )


@dataclass(frozen=True)
class ImportLabelsReport:
    """What importing a labeled file did (``annotator import-labels``): how the file read, line by
    line, and what happened to the seed annotations.

    ``problems`` are "line 12: reason" messages; ``conflicts`` the near-duplicates whose labels differ
    (``{"lines", "texts", "labels"}``); ``examples`` the clauses read; ``annotations`` counts the seed
    annotations ``created``, ``updated``, ``unchanged`` and ``stale``.
    """

    path: str
    n_lines: int
    n_pairs: int  # (label, text) pairs accepted
    exact_duplicates: int  # lines repeating an earlier (label, text) pair
    problems: tuple[str, ...]
    conflicts: tuple[Mapping[str, Any], ...]
    examples: int
    annotations: Mapping[str, int]

    @property
    def n_problems(self) -> int:
        return len(self.problems)

    @property
    def n_conflicts(self) -> int:
        return len(self.conflicts)

    def to_dict(self) -> dict[str, Any]:
        """The ``--json`` document: ``{"path", "n_lines", "n_pairs", "exact_duplicates", "n_problems",
        "problems", "n_conflicts", "conflicts", "examples", "annotations"}``."""
        return {
            "path": self.path,
            "n_lines": self.n_lines,
            "n_pairs": self.n_pairs,
            "exact_duplicates": self.exact_duplicates,
            "n_problems": self.n_problems,
            "problems": list(self.problems),
            "n_conflicts": self.n_conflicts,
            "conflicts": [dict(c) for c in self.conflicts],
            "examples": self.examples,
            "annotations": dict(self.annotations),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ImportLabelsReport:
        """The record of a :meth:`to_dict` document (``n_problems`` and ``n_conflicts`` are recounted)."""
        return cls(
            path=str(data["path"]),
            n_lines=int(data["n_lines"]),
            n_pairs=int(data["n_pairs"]),
            exact_duplicates=int(data["exact_duplicates"]),
            problems=tuple(str(p) for p in data["problems"]),
            conflicts=tuple(data["conflicts"]),
            examples=int(data["examples"]),
            annotations={str(k): int(v) for k, v in data["annotations"].items()},
        )
