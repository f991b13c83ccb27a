"""What one cycle reads of the store, read once and shared by training, ranking and pushing.

A cycle used to read every clause, annotation and adjudication several times (the fingerprint,
the training examples, the ranking's label matrix, the pool, the dashboard's predictions), and a
label arriving between two reads could be trained on under a fingerprint that did not count it.
:class:`CycleSnapshot` reads them once, under the project's cycle lock; a webhook that lands
meanwhile is picked up by the next cycle.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

from ..storage.store import Store
from ..types import Annotation, Clause, Example
from .project import chosen_labels, examples_from


@dataclass(frozen=True)
class CycleSnapshot:
    """The store's clauses, live annotations and adjudications at one moment, and what follows."""

    labels: tuple[str, ...]
    clauses: tuple[Clause, ...]
    annotations: tuple[Annotation, ...]  # live label sets ("not a policy measure" answers left out)
    not_policy: tuple[Annotation, ...]  # live "not a policy measure" answers
    adjudications: dict[str, tuple[str, ...]]

    @cached_property
    def examples(self) -> tuple[Example, ...]:
        """The training examples (see :func:`annotator.cycle.project.training_examples`)."""
        chosen = chosen_labels(self.annotations, self.adjudications, self.labels)
        return tuple(examples_from(chosen, {c.id: c.text for c in self.clauses}, self.labels))

    @classmethod
    def read(cls, store: Store, labels: Sequence[str]) -> CycleSnapshot:
        """Read the snapshot (one query per table)."""
        return cls(
            tuple(labels),
            tuple(store.clauses()),
            tuple(store.annotations()),
            tuple(store.annotations(not_policy=True)),
            store.adjudications(),
        )

    @property
    def labeled_ids(self) -> set[str]:
        """Clauses with a live answer (label set or "not a policy measure") or an adjudication:
        none is asked again (what :meth:`Store.labeled_clause_ids` answers)."""
        return {a.clause_id for a in (*self.annotations, *self.not_policy)} | set(self.adjudications)

    @property
    def fingerprint(self) -> str:
        """Changes whenever a label that training reads changes (saved with each version)."""
        h = hashlib.sha1()
        for a in self.annotations:
            h.update(f"{a.clause_id}|{a.annotator}|{a.source}|{','.join(a.labels)}\n".encode())
        for clause_id, labels in sorted(self.adjudications.items()):
            h.update(f"adj|{clause_id}|{','.join(labels)}\n".encode())
        return h.hexdigest()[:16]
