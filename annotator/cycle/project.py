"""Project operations on the store: ingest documents, import labeled files, collect training examples.

Each function does one user-visible job over an explicit Store and returns a JSON-ready report;
the CLI and the backend call these, never the SQL.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from pathlib import Path

from ..text.ingest import ingest_paths, write_ls_tasks
from ..labels import check_labels
from ..review.resolve import resolve_annotations
from ..text.seedset import read_labeled_file
from ..storage.store import Store
from ..types import Annotation, Clause, Example, ImportLabelsReport, IngestedDocument, IngestReport

log = logging.getLogger(__name__)

SEED_ANNOTATOR = "seed"


def ingest_documents(store: Store, paths: Iterable[str | Path], *, tasks_out: str | Path | None = None) -> IngestReport:
    """Segment documents into clauses and add the new ones to the store.

    Re-ingesting a file adds nothing: clause ids are hashes of their normalized text. The Label
    Studio task file (``tasks_out``) lists every clause of the ingested documents.
    """
    result = ingest_paths(paths)
    documents = []
    n_new = 0
    with store.transaction():
        for document in result.documents:
            added = store.add_document(document)
            n_new += added
            documents.append(
                IngestedDocument(document.path, document.title, len(document.segments), added, document.dropped)
            )
    n_tasks = write_ls_tasks(result.documents, tasks_out) if tasks_out and result.documents else 0
    from ..review.dashboard import not_policy_report

    return IngestReport(
        documents=tuple(documents),
        new_clauses=n_new,
        errors=tuple(result.errors),
        tasks_file=str(tasks_out) if n_tasks else None,
        tasks=n_tasks,
        total_clauses=store.count_clauses(),
        # What annotators answered "not a policy measure" so far: the segmenter's blind spots.
        not_policy=not_policy_report(store),
    )


def import_labels(store: Store, path: str | Path, labels: tuple[str, ...]) -> ImportLabelsReport:
    """Read a labeled file, store its clauses and one ``seed`` annotation per clause.

    Importing the same file twice changes nothing; a clause whose seed labels changed is updated
    (the earlier labels stay in the annotation history).
    """
    data = read_labeled_file(path, labels)
    counts = {"created": 0, "updated": 0, "unchanged": 0, "stale": 0}
    with store.transaction():
        store.add_clauses(Clause(e.id, e.text) for e in data.examples)
        for example in data.examples:
            _, what = store.save_annotation(Annotation(example.id, example.labels, SEED_ANNOTATOR, "seed"))
            counts[what] += 1
    r = data.report
    return ImportLabelsReport(
        path=r.path,
        n_lines=r.n_lines,
        n_pairs=r.n_pairs,
        exact_duplicates=r.exact_duplicates,
        problems=tuple(r.problems),
        conflicts=tuple(r.conflicts),
        examples=len(data.examples),
        annotations=counts,
    )


def training_examples(store: Store, labels: Sequence[str]) -> list[Example]:
    """One example per labeled clause: the adjudication, else the annotators' majority, else the seed.

    Labels from annotators in Label Studio outrank the seed file: they are newer and made with
    the project's own guidelines. A clause whose annotators share no label is left out until a
    lead adjudicates it. (A live cycle reads the same from its snapshot: :mod:`annotator.cycle.snapshot`.)
    """
    annotations = store.annotations()
    chosen = chosen_labels(annotations, store.adjudications(), labels)
    return examples_from(chosen, {c.id: c.text for c in store.clauses(chosen)}, labels)


def chosen_labels(
    annotations: Sequence[Annotation], adjudications: dict[str, tuple[str, ...]], labels: Sequence[str]
) -> dict[str, tuple[str, ...]]:
    """The label set training uses for each labeled clause (see :func:`training_examples`)."""
    human = [a for a in annotations if a.source != "seed"]
    seed = [a for a in annotations if a.source == "seed"]
    resolved = resolve_annotations(human, labels=labels, adjudications=adjudications, policy="majority")
    seeded = resolve_annotations([a for a in seed if a.clause_id not in resolved], labels=labels, policy="union")
    return {cid: r.labels for cid, r in {**seeded, **resolved}.items() if r.labels}


def examples_from(chosen: dict[str, tuple[str, ...]], texts: dict[str, str], labels: Sequence[str]) -> list[Example]:
    """Examples of the chosen label sets, for the clauses whose text is known, in ``chosen``'s order."""
    return [Example(cid, texts[cid], check_labels(chosen[cid], tuple(labels))) for cid in chosen if cid in texts]
