"""Resolve one label set per clause from its annotations: adjudication, else the agreed set, else unresolved.

Voting is per label. Every annotator is one voter: the seed file counts as one voter (annotator
``"seed"``), and an annotator who labeled several copies of the same clause (duplicates merged by
:mod:`annotator.dataset.cleaning`) votes with the union of those label sets, because the seed file lists one
label per line and PDF extraction gives one clause several spellings, so each copy carries part of
the clause's labels. Policies:

``"unanimous"``  a label every voter chose;
``"majority"``   a label more than half of the voters chose (two voters must therefore agree);
``"union"``      a label any voter chose.

When the policy leaves no label, the clause has no agreed set: it is ``"unresolved"`` and goes to
review instead of training. A lead's adjudication always wins; :func:`adjudicate` is the one place
that checks and stores it (the dashboard's resolve button and ``annotator resolve`` both call it).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..errors import InputError
from ..labels import check_labels
from ..types import Annotation

if TYPE_CHECKING:
    from ..storage.store import Store

POLICIES = ("unanimous", "majority", "union")
MAX_RESOLVER_CHARS = 100
MAX_NOTE_CHARS = 2000
SOURCE_ORDER = ("seed", "label_studio", "cli")
ADJUDICATION = "adjudication"
SEED = "seed"

ADJUDICATED, AGREED, UNRESOLVED = "adjudicated", "agreed", "unresolved"


@dataclass(frozen=True)
class Resolution:
    """The label set chosen for one clause (or one group of duplicate clauses) and where it came from.

    ``labels`` is empty exactly when ``status`` is ``"unresolved"``. ``votes`` holds one
    ``(annotator, labels)`` pair per voter; ``disputed`` lists labels some voter chose that the
    resolution left out.
    """

    clause_ids: tuple[str, ...]
    labels: tuple[str, ...]
    status: str
    sources: tuple[str, ...]
    annotators: tuple[str, ...]
    votes: tuple[tuple[str, tuple[str, ...]], ...] = ()
    disputed: tuple[str, ...] = ()


def check_policy(policy: str) -> str:
    """Return ``policy`` if it is known, else raise InputError listing the valid names."""
    if policy not in POLICIES:
        raise InputError(f"unknown agreement policy {policy!r}; choose one of: {', '.join(POLICIES)}")
    return policy


def agreed_labels(label_sets: Sequence[Collection[str]], policy: str, labels: Sequence[str]) -> tuple[str, ...]:
    """Combine voters' label sets by per-label voting.

    Parameters
    ----------
    label_sets : sequence of collections of str
        One label set per voter.
    policy : {"unanimous", "majority", "union"}
        How many votes a label needs: all, more than half, or one.
    labels : sequence of str
        The label set; gives the order of the result.

    Returns
    -------
    tuple of str
        The agreed labels in label-set order; empty when no label has enough votes or there is no voter.

    Raises
    ------
    InputError
        If ``policy`` is unknown; UnknownLabelError if a vote holds a label outside ``labels``.

    Examples
    --------
    >>> agreed_labels([{"企业"}, {"企业", "园区"}, {"园区"}], "majority", ("企业", "园区", "税收激励"))
    ('企业', '园区')
    >>> agreed_labels([{"企业"}, {"园区"}], "majority", ("企业", "园区"))
    ()
    """
    check_policy(policy)
    labels = tuple(labels)
    n_voters = len(label_sets)
    if n_voters == 0:
        return ()
    counts: dict[str, int] = {}
    for label_set in label_sets:
        for label in check_labels(set(label_set), labels):
            counts[label] = counts.get(label, 0) + 1
    needed = {"unanimous": n_voters, "majority": n_voters // 2 + 1, "union": 1}[policy]
    return tuple(label for label in labels if counts.get(label, 0) >= needed)


def _recency(annotation: Annotation, position: int) -> tuple:
    """Sort key: the most recently saved annotation last; input order breaks ties."""
    stamp = annotation.updated_at or annotation.created_at
    return (stamp, annotation.id if annotation.id is not None else -1, position)


def votes_by_annotator(annotations: Iterable[Annotation]) -> dict[str, frozenset[str]]:
    """One vote per annotator over a clause or a group of duplicate clauses.

    Within one clause an annotator's latest annotation counts (Label Studio keeps edits as updates),
    except for the seed, whose annotations are united (one seed line per label). Across the copies of
    a duplicate group an annotator's votes are united.
    """
    latest: dict[tuple[str, str], tuple[tuple, Annotation]] = {}
    seed: dict[tuple[str, str], set[str]] = {}
    for position, annotation in enumerate(annotations):
        key = (annotation.clause_id, annotation.annotator)
        if annotation.source == SEED or annotation.annotator == SEED:
            seed.setdefault(key, set()).update(annotation.labels)
            continue
        rank = _recency(annotation, position)
        if key not in latest or rank >= latest[key][0]:
            latest[key] = (rank, annotation)
    votes: dict[str, set[str]] = {}
    for (_, annotator), label_set in seed.items():
        votes.setdefault(annotator, set()).update(label_set)
    for (_, annotator), (_, annotation) in latest.items():
        votes.setdefault(annotator, set()).update(annotation.labels)
    return {annotator: frozenset(label_set) for annotator, label_set in sorted(votes.items())}


def order_sources(sources: Iterable[str]) -> tuple[str, ...]:
    """Unique sources in a fixed order: seed, label_studio, cli, then any other name sorted."""
    unique = set(sources)
    known = [s for s in SOURCE_ORDER if s in unique]
    return tuple(known + sorted(unique - set(SOURCE_ORDER)))


def resolve_group(
    annotations: Sequence[Annotation],
    *,
    labels: Sequence[str],
    adjudications: Sequence[Collection[str]] = (),
    policy: str = "majority",
    clause_ids: Sequence[str] | None = None,
) -> Resolution:
    """Resolve one label set for a clause, or for a group of copies of the same clause.

    Parameters
    ----------
    annotations : sequence of Annotation
        Every annotation of the clause or of its copies; labels must be in ``labels``.
    labels : sequence of str
        The label set, which orders the result.
    adjudications : sequence of label collections, optional
        The lead's decisions for the clause (or its copies); united when there are several.
    policy : {"unanimous", "majority", "union"}
        How annotators' votes are combined (see the module docstring).
    clause_ids : sequence of str, optional
        The clauses resolved together; defaults to those named by ``annotations``.

    Returns
    -------
    Resolution
        ``status`` is ``"adjudicated"``, ``"agreed"`` or ``"unresolved"``. ``sources`` is
        ``("adjudication",)`` for an adjudicated clause, else the annotations' sources.

    Raises
    ------
    InputError
        On an unknown policy; UnknownLabelError on a label outside ``labels``.
    """
    check_policy(policy)
    labels = tuple(labels)
    if clause_ids is None:
        clause_ids = list(dict.fromkeys(a.clause_id for a in annotations))
    votes = votes_by_annotator(annotations)
    voted = {label for label_set in votes.values() for label in label_set}
    annotators = tuple(votes)
    sources: tuple[str, ...]
    if adjudications:
        chosen = check_labels({label for decision in adjudications for label in decision}, labels)
        status, sources = (ADJUDICATED if chosen else UNRESOLVED), (ADJUDICATION,)
    else:
        chosen = agreed_labels(list(votes.values()), policy, labels)
        status = AGREED if chosen else UNRESOLVED
        sources = order_sources(a.source for a in annotations)
    return Resolution(
        clause_ids=tuple(clause_ids),
        labels=chosen,
        status=status,
        sources=sources,
        annotators=annotators,
        votes=tuple((name, check_labels(label_set, labels)) for name, label_set in votes.items()),
        disputed=tuple(label for label in labels if label in voted and label not in chosen),
    )


def resolve_annotations(
    annotations: Iterable[Annotation],
    *,
    labels: Sequence[str],
    adjudications: Mapping[str, Collection[str]] | None = None,
    policy: str = "majority",
) -> dict[str, Resolution]:
    """Resolve every annotated or adjudicated clause on its own (no duplicate merging).

    Returns
    -------
    dict
        clause id -> Resolution, in order of first appearance (annotations, then adjudications).

    Examples
    --------
    >>> from annotator.types import Annotation
    >>> anns = [Annotation("c1", ("企业",), "seed", "seed"), Annotation("c1", ("园区",), "ann", "label_studio")]
    >>> resolve_annotations(anns, labels=("企业", "园区"), policy="union")["c1"].labels
    ('企业', '园区')
    """
    adjudications = adjudications or {}
    by_clause: dict[str, list[Annotation]] = {}
    for annotation in annotations:
        by_clause.setdefault(annotation.clause_id, []).append(annotation)
    for clause in adjudications:
        by_clause.setdefault(clause, [])
    return {
        clause: resolve_group(
            group,
            labels=labels,
            adjudications=[adjudications[clause]] if clause in adjudications else (),
            policy=policy,
            clause_ids=(clause,),
        )
        for clause, group in by_clause.items()
    }


def adjudicate(
    store: Store, clause_id: str, labels: Iterable[str], *, resolver: str, note: str = "", label_set: Sequence[str]
) -> tuple[str, ...]:
    """Check and store a lead's final label set for a clause; returns it in label-set order.

    Annotators' answers stay as they are; an empty set is allowed (the clause carries no label).

    Raises
    ------
    InputError
        If the clause id is empty or unknown, a label is not in ``label_set`` (UnknownLabelError),
        the resolver is empty or longer than ``MAX_RESOLVER_CHARS``, or the note is longer than
        ``MAX_NOTE_CHARS``; nothing is stored then.
    """
    clause_id = clause_id.strip()
    if not clause_id:
        raise InputError("clause_id is missing: pick a clause from the disagreement queue")
    if not store.clauses([clause_id]):
        raise InputError(
            f"unknown clause '{clause_id}': it is not in this project's store; pick one from "
            "the disagreement queue (the dashboard, or `annotator agreement`)"
        )
    chosen = check_labels([label.strip() for label in labels], tuple(label_set))
    resolver, note = resolver.strip(), note.strip()
    if not resolver:
        raise InputError("resolver is empty: type your name in the 'resolved by' field so the decision can be traced")
    if len(resolver) > MAX_RESOLVER_CHARS:
        raise InputError(f"resolver has {len(resolver)} characters (limit {MAX_RESOLVER_CHARS}); use a short name")
    if len(note) > MAX_NOTE_CHARS:
        raise InputError(f"note has {len(note)} characters (limit {MAX_NOTE_CHARS}); shorten it")
    store.adjudicate(clause_id, chosen, resolver, note)
    return chosen
