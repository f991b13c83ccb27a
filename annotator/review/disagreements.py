"""The disagreement queue: the clauses a project lead should adjudicate, most important first.

:func:`disagreements` lists clauses that need a lead's look, most important first:

- "annotators disagree": two or more annotators chose different sets and no adjudicated set exists
  (adjudicating a clause takes it out of this queue);
- "model disagrees": the reference set (the adjudicated one, else the set two or more annotators
  chose unanimously) differs from the model's prediction made with confidence >= ``min_confidence``
  (0.9). Without a confidence for a clause the model is not taken as confident.

``score = (sum of the rarity weights of the disputed labels) * (1 - mean pairwise Jaccard)``, where
disputed labels are the union minus the intersection of the compared sets (the annotators' sets, or
the reference and the model's set) and a label's rarity weight is ``-log2((c + 1) / (N + 2))``: ``c``
of the ``N`` human judgements chose it, so a label half the judgements use weighs 1 and rarer labels
weigh more. Ties go to human disagreements before model ones, then to the clause id.
``Disagreement.to_dict()`` keys: ``clause_id, reason, score, annotations`` ({annotator: [labels]}),
``union, intersection, disputed`` (over the compared sets), ``adjudicated, model, model_confidence``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from itertools import combinations

import numpy as np

from .agreement import LabelSets, _check_sets, _in_order, _jaccard, _latest_sets, _plain
from ..errors import InputError
from ..types import Annotation

MIN_MODEL_CONFIDENCE = 0.9
ANNOTATORS_DISAGREE = "annotators disagree"
MODEL_DISAGREES = "model disagrees"


@dataclass(frozen=True)
class Disagreement:
    """One clause in the disagreement queue."""

    clause_id: str
    reason: str  # ANNOTATORS_DISAGREE or MODEL_DISAGREES
    score: float
    annotations: tuple[tuple[str, tuple[str, ...]], ...]  # (annotator, labels), sorted by annotator
    union: tuple[str, ...]
    intersection: tuple[str, ...]
    disputed: tuple[str, ...]  # union minus intersection
    adjudicated: tuple[str, ...] | None = None
    model: tuple[str, ...] | None = None
    model_confidence: float | None = None

    def to_dict(self) -> dict:
        """A JSON-serializable dict; ``annotations`` maps annotator -> labels."""
        out = _plain(asdict(self))
        out["annotations"] = {name: list(chosen) for name, chosen in self.annotations}
        return out


def disagreements(
    annotations: Sequence[Annotation],
    labels: tuple[str, ...],
    *,
    adjudicated: LabelSets | None = None,
    model: LabelSets | None = None,
    model_confidence: Mapping[str, float] | None = None,
    min_confidence: float = MIN_MODEL_CONFIDENCE,
) -> list[Disagreement]:
    """List the clauses a lead should adjudicate, most important first.

    Parameters
    ----------
    annotations : sequence of Annotation
        As for :func:`agreement_report` (seed annotations ignored, last annotation wins).
    labels : tuple of str
        The label set.
    adjudicated : mapping of clause id -> labels, optional
        Adjudicated clauses leave the "annotators disagree" queue.
    model, model_confidence : mappings of clause id -> labels / confidence in [0, 1], optional
        A prediction counts only when its confidence is known and >= ``min_confidence``.
    min_confidence : float
        Confidence from which the model's disagreement with the humans is queued.

    Returns
    -------
    list of Disagreement
        Sorted by score (descending), then human before model disagreements, then clause id.

    Raises
    ------
    InputError
        If ``labels`` is empty or ``min_confidence`` is not in [0, 1].
    UnknownLabelError
        If an annotation or a mapping names a label outside ``labels``.

    Examples
    --------
    >>> from annotator.types import Annotation
    >>> anns = [Annotation("c1", ("a",), "ann1", "cli"), Annotation("c1", ("b",), "ann2", "cli")]
    >>> [(d.clause_id, d.reason, d.disputed) for d in disagreements(anns, ("a", "b"))]
    [('c1', 'annotators disagree', ('a', 'b'))]
    """
    if not 0.0 <= min_confidence <= 1.0:
        raise InputError(f"min_confidence must be between 0 and 1, got {min_confidence!r}")
    latest, _ = _latest_sets(annotations, labels)
    adjudicated = _check_sets(adjudicated, labels, "adjudicated")
    model = _check_sets(model, labels, "model")
    confidence = model_confidence or {}
    weights = _rarity_weights(latest, labels)
    queue = []
    for cid in sorted(set(latest) | set(adjudicated)):
        sets = latest.get(cid, {})
        humans = tuple(sorted(sets.items()))
        distinct = set(sets.values())
        if cid not in adjudicated and len(distinct) > 1:
            queue.append(
                _disagreement(
                    cid,
                    ANNOTATORS_DISAGREE,
                    list(sets.values()),
                    humans=humans,
                    weights=weights,
                    labels=labels,
                    adjudicated=None,
                    model=model.get(cid),
                    confidence=confidence.get(cid),
                )
            )
            continue
        if cid in adjudicated:
            reference = adjudicated[cid]
        elif len(sets) >= 2:
            reference = next(iter(distinct))  # unanimous: every annotator chose this set
        else:
            continue
        predicted, conf = model.get(cid), confidence.get(cid)
        confident = conf is not None and conf >= min_confidence  # NaN is never confident
        if predicted is not None and confident and predicted != reference:
            queue.append(
                _disagreement(
                    cid,
                    MODEL_DISAGREES,
                    [reference, predicted],
                    humans=humans,
                    weights=weights,
                    labels=labels,
                    adjudicated=adjudicated.get(cid),
                    model=predicted,
                    confidence=conf,
                )
            )
    queue.sort(key=lambda d: (-d.score, d.reason != ANNOTATORS_DISAGREE, d.clause_id))
    return queue


def _rarity_weights(latest, labels: tuple[str, ...]) -> dict[str, float]:
    """-log2 of the smoothed share of human judgements that chose each label."""
    judgements = [chosen for sets in latest.values() for chosen in sets.values()]
    counts = dict.fromkeys(labels, 0)
    for chosen in judgements:
        for label in chosen:
            counts[label] += 1
    return {label: -math.log2((c + 1) / (len(judgements) + 2)) for label, c in counts.items()}


def _disagreement(
    cid: str, reason: str, compared: list, *, humans, weights, labels, adjudicated, model, confidence
) -> Disagreement:
    """Build one queue entry, scoring the sets in ``compared``."""
    as_sets = [set(s) for s in compared]
    union, inter = set.union(*as_sets), set.intersection(*as_sets)
    disputed = union - inter
    mean_jaccard = float(np.mean([_jaccard(a, b) for a, b in combinations(as_sets, 2)]))
    score = sum(weights[label] for label in disputed) * (1.0 - mean_jaccard)
    return Disagreement(
        clause_id=cid,
        reason=reason,
        score=score,
        annotations=humans,
        union=_in_order(union, labels),
        intersection=_in_order(inter, labels),
        disputed=_in_order(disputed, labels),
        adjudicated=adjudicated,
        model=model,
        model_confidence=None if confidence is None else float(confidence),
    )
