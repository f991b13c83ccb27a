"""Inter-annotator agreement for multi-label clauses (the queue of disagreements to adjudicate is
:mod:`annotator.review.disagreements`).

Pure functions over :class:`annotator.types.Annotation` sequences: no database, no Flask.

What counts
-----------
- Annotations whose ``source`` is ``"seed"`` are imported reference labels, not an annotator's
  judgement, so they are left out of everything here (the report counts them in ``n_seed_ignored``).
- When one annotator labelled a clause twice, the annotation that comes last in the input wins.
- Agreement figures use only the clauses that two or more distinct annotators labelled ("items").
  A label set is read as one binary rating per label (chosen or not), in the order of ``labels``.
- Every proportion is a fraction in [0, 1]. A figure that is undefined (e.g. kappa when nobody chose
  a label, so there is no variation to agree on) is ``None``, never NaN, and ``warning`` says why.

Methods
-------
- Cohen's kappa per label is computed for every annotator pair on the items both rated; the label's
  ``cohen_kappa`` is the unweighted mean over the pairs where it is defined (Light's kappa).
- Fleiss' kappa needs the same number of raters on every item. Rather than an ad-hoc extension, it is
  computed over the largest group of items sharing one rater count (ties: the larger count);
  ``fleiss_n_raters`` and ``fleiss_n_items`` say which. Krippendorff's alpha is the figure that uses
  every item whatever its number of raters.
- Krippendorff's alpha per label is nominal alpha over binary ratings with missing ratings, from the
  coincidence counts (Krippendorff 2011, "Computing Krippendorff's alpha-reliability"): with ``n``
  pairable ratings of which ``n1`` chose the label and ``n0`` did not, and per item ``m_u`` raters of
  which ``p_u`` chose it, ``alpha = 1 - (n - 1) * sum_u p_u (m_u - p_u) / (m_u - 1) / (n0 * n1)``.
  It is computed here in numpy; the GPL-licensed ``krippendorff`` package is only a test reference.
- Set-level alpha uses the MASI distance (Passonneau 2006, as ``nltk.metrics.masi_distance``) over
  whole label sets, with distance 0 between two empty sets (nltk divides by zero there). Cohen's
  kappa, Fleiss' kappa and both alphas are vectorized numpy; the tests check them to 1e-9 against
  scikit-learn, statsmodels, nltk and ``krippendorff``, which are too slow per call (or, for
  statsmodels and nltk, to import) for the dashboard.
- Jaccard similarity of two empty sets is 1 (they agree).

Bounded output
--------------
The lists that grow with the number of annotators name at most ``MAX_ANNOTATORS_SHOWN`` (20)
annotators: the most active ones (most shared clauses, then most annotations, then by id).
``annotators``, ``per_annotator``, ``pairs`` and every label's ``cohen_kappa_pairs`` cover only
those (so the pair lists hold at most 190 entries); ``n_annotators_not_shown`` counts the rest.
Every aggregate figure (per-label kappas and alpha, set level) still uses all annotators.

``AgreementReport.to_dict()`` keys (stable; printed by ``annotator agreement --json``)
------------------------------------------------------------------------------------
``n_items``, ``n_annotators`` (all of them), ``annotators`` (the shown ones' sorted ids),
``n_annotators_not_shown``, ``max_annotators_shown`` (20), ``n_seed_ignored``, ``min_items`` (20),
``warning`` (str | None),
``per_label``: list in label-set order of ``{label, n_items, positives, agreement, cohen_kappa,
cohen_kappa_pairs: [{annotators: [a, b], n_items, kappa}], fleiss_kappa, fleiss_n_raters,
fleiss_n_items, krippendorff_alpha, warning}``; ``positives`` counts ratings that chose the label
and ``agreement`` is the share of items on which all raters gave the same 0/1 rating,
``set_level``: ``{n_items, krippendorff_alpha_masi, exact_match, mean_jaccard, warning}``;
``exact_match`` is the share of items where all raters chose identical sets and ``mean_jaccard``
the mean over items of the mean pairwise Jaccard similarity,
``pairs``: one entry per pair (a < b) of shown annotators, ``{annotators: [a, b], n_items, exact_match,
mean_jaccard, cohen_kappa, warning}``, ``cohen_kappa`` pooled over all labels of the shared items,
``per_annotator``: one entry per shown annotator, ``{annotator, n_annotations, n_items,
adjudicated: {n_items, exact_match, mean_jaccard}, model: {n_items, exact_match, mean_jaccard}}``;
``n_annotations`` counts all the annotator's clauses, ``n_items`` the shared ones; the comparisons
use every clause of the annotator that has an adjudicated (or predicted) set, shared or not.

"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from itertools import combinations

import numpy as np
from scipy import sparse

from ..errors import InputError, UnknownLabelError
from ..labels import unknown_label_message
from ..types import Annotation

SEED_SOURCE = "seed"
MIN_ITEMS = 20
# Annotators listed one by one (and pairwise) in a report; the rest are only counted.
MAX_ANNOTATORS_SHOWN = 20
# Cells of the set-by-set MASI distance matrix computed at once (bounds memory to tens of MB).
_MASI_BLOCK_CELLS = 1 << 22

LabelSets = Mapping[str, Iterable[str]]


# --------------------------------------------------------------------------- results


@dataclass(frozen=True)
class PairKappa:
    """Cohen's kappa of one annotator pair on one label."""

    annotators: tuple[str, str]
    n_items: int
    kappa: float | None


@dataclass(frozen=True)
class LabelAgreement:
    """Agreement on one label, read as a binary rating."""

    label: str
    n_items: int
    positives: int
    agreement: float | None
    cohen_kappa: float | None
    cohen_kappa_pairs: tuple[PairKappa, ...]
    fleiss_kappa: float | None
    fleiss_n_raters: int
    fleiss_n_items: int
    krippendorff_alpha: float | None
    warning: str | None


@dataclass(frozen=True)
class SetAgreement:
    """Agreement on whole label sets."""

    n_items: int
    krippendorff_alpha_masi: float | None
    exact_match: float | None
    mean_jaccard: float | None
    warning: str | None


@dataclass(frozen=True)
class PairAgreement:
    """Agreement of two annotators on the clauses both labelled."""

    annotators: tuple[str, str]
    n_items: int
    exact_match: float | None
    mean_jaccard: float | None
    cohen_kappa: float | None
    warning: str | None


@dataclass(frozen=True)
class ReferenceAgreement:
    """How one annotator's sets compare with reference sets (adjudicated or predicted)."""

    n_items: int
    exact_match: float | None
    mean_jaccard: float | None


@dataclass(frozen=True)
class AnnotatorAgreement:
    """One annotator's agreement with the adjudicated sets and with the model."""

    annotator: str
    n_annotations: int
    n_items: int
    adjudicated: ReferenceAgreement
    model: ReferenceAgreement


@dataclass(frozen=True)
class AgreementReport:
    """Everything :func:`agreement_report` measures; ``to_dict()`` keys are in the module docstring."""

    n_items: int
    n_annotators: int
    annotators: tuple[str, ...]
    n_annotators_not_shown: int
    n_seed_ignored: int
    per_label: tuple[LabelAgreement, ...]
    set_level: SetAgreement
    pairs: tuple[PairAgreement, ...]
    per_annotator: tuple[AnnotatorAgreement, ...]
    warning: str | None
    min_items: int = MIN_ITEMS
    max_annotators_shown: int = MAX_ANNOTATORS_SHOWN

    def to_dict(self) -> dict:
        """A JSON-serializable dict (no NaN; undefined figures are None)."""
        return _plain(asdict(self))


# --------------------------------------------------------------------------- public API


def agreement_report(
    annotations: Sequence[Annotation],
    labels: tuple[str, ...],
    *,
    adjudicated: LabelSets | None = None,
    model: LabelSets | None = None,
) -> AgreementReport:
    """Measure inter-annotator agreement per label, per label set and per annotator pair.

    Parameters
    ----------
    annotations : sequence of Annotation
        All annotations; ``source == "seed"`` ones are ignored, and an annotator's last annotation
        of a clause replaces earlier ones.
    labels : tuple of str
        The label set; gives the order of ``per_label``.
    adjudicated : mapping of clause id -> labels, optional
        The lead's final label set per clause.
    model : mapping of clause id -> labels, optional
        The model's predicted label set per clause.

    Returns
    -------
    AgreementReport

    Raises
    ------
    InputError
        If ``labels`` is empty.
    UnknownLabelError
        If an annotation or a mapping names a label outside ``labels``.

    Examples
    --------
    >>> from annotator.types import Annotation
    >>> anns = [Annotation("c1", ("a",), "ann1", "cli"), Annotation("c1", ("a",), "ann2", "cli")]
    >>> report = agreement_report(anns, ("a", "b"))
    >>> report.n_items, report.set_level.exact_match
    (1, 1.0)
    """
    latest, n_seed = _latest_sets(annotations, labels)
    adjudicated = _check_sets(adjudicated, labels, "adjudicated")
    model = _check_sets(model, labels, "model")
    annotators = tuple(sorted({name for sets in latest.values() for name in sets}))
    items = tuple(sorted(cid for cid, sets in latest.items() if len(sets) >= 2))
    Y, rated = _rating_tensor(latest, items, annotators, labels)
    shown = _most_active(latest, annotators, rated)
    pairs = _pair_stats(Y, rated, annotators, shown)
    per_label = _label_stats(Y, rated, labels, pairs)
    set_level = _set_stats(Y, rated, pairs)
    per_annotator = _annotator_stats(latest, annotators, rated, adjudicated, model, shown)
    return AgreementReport(
        n_items=len(items),
        n_annotators=len(annotators),
        annotators=tuple(annotators[a] for a in shown),
        n_annotators_not_shown=len(annotators) - len(shown),
        n_seed_ignored=n_seed,
        per_label=per_label,
        set_level=set_level,
        pairs=tuple(p.result for p in pairs if p.shown),
        per_annotator=per_annotator,
        warning=_few_items(len(items)),
    )


def masi_distance(first: Iterable[str], second: Iterable[str]) -> float:
    """MASI distance of two label sets, as nltk's ``masi_distance`` but 0 for two empty sets.

    Examples
    --------
    >>> masi_distance({"a", "b"}, {"a", "b", "c", "d"})
    0.6666666666666667
    >>> masi_distance(set(), set())
    0.0
    """
    a, b = set(first), set(second)
    inter, sa, sb = len(a & b), len(a), len(b)
    return float(_masi_from_counts(np.array(inter), np.array(sa), np.array(sb)))


# --------------------------------------------------------------------------- input


def _latest_sets(
    annotations: Sequence[Annotation], labels: tuple[str, ...]
) -> tuple[dict[str, dict[str, tuple[str, ...]]], int]:
    """Clause -> annotator -> label set (label-set order), last annotation winning; and the seed count."""
    if not labels:
        raise InputError("the label set is empty; pass the project's labels (Settings.labels)")
    known = set(labels)
    order = {label: i for i, label in enumerate(labels)}
    latest: dict[str, dict[str, tuple[str, ...]]] = {}
    n_seed = 0
    for ann in annotations:
        if ann.source == SEED_SOURCE:
            n_seed += 1
            continue
        if not known.issuperset(ann.labels):
            unknown = next(label for label in ann.labels if label not in known)
            raise UnknownLabelError(
                f"clause {ann.clause_id}, annotator {ann.annotator}: " + unknown_label_message(unknown, labels)
            )
        latest.setdefault(ann.clause_id, {})[ann.annotator] = tuple(sorted(set(ann.labels), key=order.__getitem__))
    return latest, n_seed


def _check_sets(sets: LabelSets | None, labels: tuple[str, ...], what: str) -> dict[str, tuple[str, ...]]:
    """Validate a clause -> labels mapping and put each set in label-set order."""
    known = set(labels)
    order = {label: i for i, label in enumerate(labels)}
    checked = {}
    for cid, chosen in (sets or {}).items():
        chosen = set(chosen)
        unknown = next((label for label in chosen if label not in known), None)
        if unknown is not None:
            raise UnknownLabelError(f"{what} set of clause {cid}: " + unknown_label_message(unknown, labels))
        checked[cid] = tuple(sorted(chosen, key=order.__getitem__))
    return checked


def _rating_tensor(latest, items, annotators, labels) -> tuple[np.ndarray, np.ndarray]:
    """Y[item, annotator, label] (0/1, False where unrated) and rated[item, annotator]."""
    a_index = {name: i for i, name in enumerate(annotators)}
    l_index = {label: i for i, label in enumerate(labels)}
    Y = np.zeros((len(items), len(annotators), len(labels)), dtype=bool)
    rated = np.zeros((len(items), len(annotators)), dtype=bool)
    cells = [
        (i, a_index[name], l_index[label])
        for i, cid in enumerate(items)
        for name, chosen in latest[cid].items()
        for label in chosen
    ]
    raters = [(i, a_index[name]) for i, cid in enumerate(items) for name in latest[cid]]
    if cells:
        Y[tuple(np.array(cells).T)] = True
    if raters:
        rated[tuple(np.array(raters).T)] = True
    return Y, rated


def _most_active(latest, annotators: tuple[str, ...], rated: np.ndarray) -> list[int]:
    """Indices (in id order) of the ``MAX_ANNOTATORS_SHOWN`` annotators with the most shared clauses,
    then the most annotations, then the smallest id."""
    if len(annotators) <= MAX_ANNOTATORS_SHOWN:
        return list(range(len(annotators)))
    n_annotations = dict.fromkeys(annotators, 0)
    for sets in latest.values():
        for name in sets:
            n_annotations[name] += 1
    n_shared = rated.sum(0)
    ranked = sorted(
        range(len(annotators)), key=lambda a: (-int(n_shared[a]), -n_annotations[annotators[a]], annotators[a])
    )
    return sorted(ranked[:MAX_ANNOTATORS_SHOWN])


# --------------------------------------------------------------------------- kappa and similarity


def _cohen_kappa(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cohen's kappa per column of two (n, L) 0/1 arrays; NaN where both raters are one constant."""
    n = a.shape[0]
    a1 = a.sum(0, dtype=np.int64)
    b1 = b.sum(0, dtype=np.int64)
    agree = n - (a ^ b).sum(0, dtype=np.int64)
    chance = a1 * b1 + (n - a1) * (n - b1)  # n^2 * expected agreement; integers keep it exact
    numerator = n * agree - chance
    denominator = n * n - chance
    out = np.full(a1.shape, np.nan)
    np.divide(numerator, denominator, out=out, where=denominator > 0)
    return out


def _jaccard_from_counts(inter, size_a, size_b):
    """Jaccard similarity from intersection and set sizes; 1 for two empty sets."""
    union = size_a + size_b - inter
    out = np.ones(np.broadcast(inter, union).shape)
    np.divide(inter, union, out=out, where=union > 0)
    return out


def _masi_from_counts(inter, size_a, size_b):
    """MASI distance (Passonneau 2006, nltk's monotonicity weights); 0 for two empty sets."""
    monotonicity = np.select(
        [(inter == size_a) & (inter == size_b), inter == np.minimum(size_a, size_b), inter > 0],
        [1.0, 2 / 3, 1 / 3],
        0.0,
    )
    return 1.0 - _jaccard_from_counts(inter, size_a, size_b) * monotonicity


@dataclass(frozen=True)
class _Pair:
    """What one annotator pair contributes: the shared items, per-item figures and the result."""

    shared: np.ndarray  # bool mask over items
    label_kappa: np.ndarray  # (L,), NaN where undefined
    jaccard: np.ndarray  # per shared item
    masi: np.ndarray  # per shared item
    result: PairAgreement
    shown: bool  # both annotators are listed in the report


def _pair_stats(Y: np.ndarray, rated: np.ndarray, annotators: tuple[str, ...], shown: list[int]) -> list[_Pair]:
    """Per-pair figures (a < b) for the pairs of shown annotators and every pair that shares an item;
    one vectorized pass per pair. A pair that shares nothing adds nothing to any aggregate, so with
    hundreds of annotators only the few thousand pairs that overlap are computed."""
    r = sparse.csc_matrix(rated, dtype=np.int64)
    overlapping = sparse.triu(r.T @ r, k=1).tocoo()
    candidates = set(zip(overlapping.row.tolist(), overlapping.col.tolist()))
    listed = set(combinations(shown, 2))
    pairs = []
    for i, j in sorted(candidates | listed):
        shared = rated[:, i] & rated[:, j]
        a, b = Y[shared, i], Y[shared, j]
        n = int(shared.sum())
        inter, sa, sb = (a & b).sum(1), a.sum(1), b.sum(1)
        jaccard = _jaccard_from_counts(inter, sa, sb)
        pooled = _cohen_kappa(a.reshape(-1, 1), b.reshape(-1, 1))[0] if n else math.nan
        result = PairAgreement(
            annotators=(annotators[i], annotators[j]),
            n_items=n,
            exact_match=_mean(np.all(a == b, axis=1)),
            mean_jaccard=_mean(jaccard),
            cohen_kappa=_num(pooled),
            warning=_join(
                _few_items(n),
                None
                if n == 0 or not math.isnan(pooled)
                else "kappa is undefined: both annotators chose no label anywhere (or every label everywhere)",
            ),
        )
        pairs.append(
            _Pair(shared, _cohen_kappa(a, b), jaccard, _masi_from_counts(inter, sa, sb), result, (i, j) in listed)
        )
    return pairs


def _label_stats(Y, rated, labels, pairs) -> tuple[LabelAgreement, ...]:
    """Per-label Cohen (mean over pairs), Fleiss and Krippendorff figures."""
    n_items = Y.shape[0]
    n_raters = rated.sum(1)
    positives = Y.sum(1)  # (items, L): raters who chose the label
    total_pos = positives.sum(0)
    n_ratings = int(n_raters.sum())
    agreement = (positives == 0) | (positives == n_raters[:, None])
    fleiss, fleiss_k, fleiss_n = _fleiss_kappa(positives, n_raters)
    pair_kappa = np.array([p.label_kappa for p in pairs]).reshape(len(pairs), len(labels))
    alphas = _binary_alpha(positives, n_raters)
    n_pairs_used = sum(p.result.n_items > 0 for p in pairs)
    out = []
    for col, label in enumerate(labels):
        kappas = pair_kappa[:, col]
        defined = kappas[~np.isnan(kappas)]
        pos = int(total_pos[col])
        varies = 0 < pos < n_ratings
        alpha = _num(alphas[col]) if varies else None
        notes = [_few_items(n_items)]
        if n_items and pos == 0:
            notes.append(
                "nobody chose this label on a shared clause: kappa and alpha are undefined (no variation to agree on)"
            )
        elif n_items and not varies:
            notes.append("every rating chose this label: kappa and alpha are undefined (no variation)")
        elif n_items and len(defined) < n_pairs_used:
            notes.append(
                f"Cohen's kappa is undefined for {n_pairs_used - len(defined)} of {n_pairs_used} "
                "annotator pairs (both rated this label one constant way); the mean leaves them out"
            )
        if varies and math.isnan(fleiss[col]):
            notes.append(f"Fleiss' kappa is undefined: no variation on the {fleiss_n} clauses with {fleiss_k} raters")
        out.append(
            LabelAgreement(
                label=label,
                n_items=n_items,
                positives=pos,
                agreement=_mean(agreement[:, col]),
                cohen_kappa=_num(defined.mean()) if len(defined) else None,
                cohen_kappa_pairs=tuple(
                    PairKappa(p.result.annotators, p.result.n_items, _num(k)) for p, k in zip(pairs, kappas) if p.shown
                ),
                fleiss_kappa=_num(fleiss[col]),
                fleiss_n_raters=fleiss_k,
                fleiss_n_items=fleiss_n,
                krippendorff_alpha=alpha,
                warning=_join(*notes),
            )
        )
    return tuple(out)


def _binary_alpha(positives: np.ndarray, n_raters: np.ndarray) -> np.ndarray:
    """Nominal Krippendorff's alpha per label of binary ratings (NaN where a label never varies).

    ``positives[u, l]`` raters of item u chose label l, out of ``n_raters[u]`` (two or more). From the
    coincidence matrix: observed disagreement o_01 + o_10 = 2 sum_u p_u (m_u - p_u) / (m_u - 1),
    expected 2 n0 n1 / (n - 1), alpha = 1 - observed / expected.
    """
    m = n_raters.astype(np.float64)[:, None]
    p = positives.astype(np.float64)
    n = m.sum()
    n1 = p.sum(0)
    n0 = n - n1
    observed = (p * (m - p) / np.maximum(m - 1, 1)).sum(0)
    out = np.full(positives.shape[1], np.nan)
    np.divide((n - 1) * observed, n0 * n1, out=out, where=(n0 > 0) & (n1 > 0))
    return np.where(np.isnan(out), np.nan, 1.0 - out)


def _fleiss_kappa(positives: np.ndarray, n_raters: np.ndarray) -> tuple[np.ndarray, int, int]:
    """Fleiss' kappa per label (NaN if undefined), the rater count k it used and its number of items."""
    n_labels = positives.shape[1]
    if len(n_raters) == 0:
        return np.full(n_labels, np.nan), 0, 0
    # Fleiss' formula assumes k raters per item: keep the largest group of items sharing one k
    # (ties: the larger k) instead of an ad-hoc extension to varying counts.
    rater_counts, group_sizes = np.unique(n_raters, return_counts=True)
    k = int(max(zip(group_sizes, rater_counts))[1])
    n1 = positives[n_raters == k].astype(float)
    n_items = n1.shape[0]
    n0 = k - n1
    observed = ((n1 * (n1 - 1) + n0 * (n0 - 1)) / (k * (k - 1))).mean(0)
    p1 = n1.sum(0) / (n_items * k)
    expected = p1**2 + (1 - p1) ** 2
    varies = (n1.sum(0) > 0) & (n1.sum(0) < n_items * k)  # expected == 1 exactly otherwise
    out = np.full(n_labels, np.nan)
    np.divide(observed - expected, 1 - expected, out=out, where=varies)
    return out, k, n_items


def _set_stats(Y: np.ndarray, rated: np.ndarray, pairs: list[_Pair]) -> SetAgreement:
    """Krippendorff's alpha with MASI distance, exact match and mean Jaccard over whole label sets."""
    n_items = Y.shape[0]
    if n_items == 0:
        return SetAgreement(0, None, None, None, _few_items(0))
    n_raters = rated.sum(1)
    jaccard_sum = np.zeros(n_items)
    observed = 0.0  # sum over items of sum over ordered rater pairs of distance / (m_u - 1)
    for pair in pairs:
        jaccard_sum[pair.shared] += pair.jaccard
        observed += float((2 * pair.masi / (n_raters[pair.shared] - 1)).sum())
    mean_jaccard = jaccard_sum / (n_raters * (n_raters - 1) / 2)
    codes = _pack(Y[rated])  # every pairable rating: all items have two or more raters
    if codes.shape[1] == 1:  # up to 64 labels: sort plain integers, much faster than rows
        distinct, ids, counts = np.unique(codes[:, 0], return_inverse=True, return_counts=True)
        distinct = distinct[:, None]
    else:
        distinct, ids, counts = np.unique(codes, axis=0, return_inverse=True, return_counts=True)
    ids_by_item = np.full(rated.shape, -1)
    ids_by_item[rated] = ids.reshape(-1)
    exact = np.where(rated, ids_by_item, -1).max(1) == np.where(rated, ids_by_item, len(distinct)).min(1)
    expected = _expected_masi(distinct, counts)
    alpha = 1.0 - (len(codes) - 1) * observed / expected if expected > 0 else None
    return SetAgreement(
        n_items=n_items,
        krippendorff_alpha_masi=_num(alpha),
        exact_match=_mean(exact),
        mean_jaccard=_mean(mean_jaccard),
        warning=_join(
            _few_items(n_items),
            None
            if expected > 0
            else "every annotator chose the same label set on every shared clause: alpha is undefined (no variation)",
        ),
    )


def _pack(rows: np.ndarray) -> np.ndarray:
    """Pack (n, L) 0/1 rows into (n, ceil(L / 64)) uint64 bit sets."""
    n_words = -(-rows.shape[1] // 64)
    padded = np.zeros((len(rows), 64 * n_words), dtype=bool)
    padded[:, : rows.shape[1]] = rows
    return np.packbits(padded, axis=1, bitorder="little").view(np.uint64)


def _expected_masi(codes: np.ndarray, counts: np.ndarray) -> float:
    """Sum over pairs of distinct packed sets c, k of n_c * n_k * MASI(c, k)."""
    # The hot spot when nearly every set is distinct: K^2 pairs. MASI depends only on the two set
    # sizes and the intersection size, so sets are grouped by size and, per pair of sizes, the
    # distance is looked up by intersection size (a popcount) in a small table.
    n_words = codes.shape[1]
    sizes = np.bitwise_count(codes).sum(1)
    weights = counts.astype(np.float64)
    groups = [(int(s), np.flatnonzero(sizes == s)) for s in np.unique(sizes)]
    total = 0.0
    for gi, (s, rows) in enumerate(groups):
        for t, cols in groups[gi:]:
            table = _masi_from_counts(np.arange(min(s, t) + 1), s, t)
            symmetric = 1.0 if s == t else 2.0  # the (t, s) block is the transpose of this one
            if len(table) == 1:  # an empty set against anything: no intersection to look at
                total += symmetric * table[0] * weights[rows].sum() * weights[cols].sum()
                continue
            col_codes, col_weights = codes[cols], weights[cols]
            step = max(1, _MASI_BLOCK_CELLS // len(cols))
            for start in range(0, len(rows), step):
                block = rows[start : start + step]
                inter = np.bitwise_count(codes[block, None, 0] & col_codes[None, :, 0])
                for word in range(1, n_words):
                    inter += np.bitwise_count(codes[block, None, word] & col_codes[None, :, word])
                total += symmetric * float(weights[block] @ (table[inter] @ col_weights))
    return total


def _annotator_stats(latest, annotators, rated, adjudicated, model, shown) -> tuple[AnnotatorAgreement, ...]:
    """The shown annotators' counts and agreement with the adjudicated and the predicted sets."""
    names = {annotators[a] for a in shown}
    n_annotations = dict.fromkeys(names, 0)
    compared: dict[tuple[str, str], list[tuple[set[str], set[str]]]] = {
        (name, ref): [] for name in names for ref in ("adjudicated", "model")
    }
    for cid, sets in latest.items():
        for name, chosen in sets.items():
            if name not in names:
                continue
            n_annotations[name] += 1
            for ref, reference in (("adjudicated", adjudicated), ("model", model)):
                if cid in reference:
                    compared[name, ref].append((set(chosen), set(reference[cid])))
    return tuple(
        AnnotatorAgreement(
            annotator=annotators[a],
            n_annotations=n_annotations[annotators[a]],
            n_items=int(rated[:, a].sum()),
            adjudicated=_reference_agreement(compared[annotators[a], "adjudicated"]),
            model=_reference_agreement(compared[annotators[a], "model"]),
        )
        for a in shown
    )


def _reference_agreement(compared: list[tuple[set, set]]) -> ReferenceAgreement:
    """Exact match and mean Jaccard of (annotator set, reference set) pairs."""
    if not compared:
        return ReferenceAgreement(0, None, None)
    exact = [a == b for a, b in compared]
    jaccard = [_jaccard(a, b) for a, b in compared]
    return ReferenceAgreement(len(compared), float(np.mean(exact)), float(np.mean(jaccard)))


# --------------------------------------------------------------------------- small helpers


def _in_order(chosen: set, labels: tuple[str, ...]) -> tuple[str, ...]:
    """The chosen labels in label-set order."""
    return tuple(label for label in labels if label in chosen)


def _jaccard(a: set, b: set) -> float:
    """Jaccard similarity of two sets; 1 for two empty sets."""
    return len(a & b) / len(a | b) if a or b else 1.0


def _num(x) -> float | None:
    """A Python float, or None when missing or not finite."""
    if x is None:
        return None
    x = float(x)
    return x if math.isfinite(x) else None


def _mean(values: np.ndarray) -> float | None:
    """Mean as a Python float, None for no values."""
    return float(np.mean(values)) if len(values) else None


def _few_items(n: int) -> str | None:
    """The small-sample warning, or None from MIN_ITEMS items on."""
    if n == 0:
        return "no clause has two or more annotators yet: nothing to compare"
    if n < MIN_ITEMS:
        return f"only {n} item{'s' if n != 1 else ''}: too few for this figure to mean anything"
    return None


def _join(*notes: str | None) -> str | None:
    """Join the non-empty notes with '; ', or None."""
    kept = [note for note in notes if note]
    return "; ".join(kept) if kept else None


def _plain(value):
    """Tuples to lists, recursively, so the dict is plain JSON."""
    if isinstance(value, dict):
        return {key: _plain(v) for key, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value
