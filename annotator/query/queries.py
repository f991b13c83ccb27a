"""The query strategies themselves: plain modAL query functions
``fn(estimator, X_pool, n, *, rng) -> np.ndarray`` returning ``n`` unique row indices into
``X_pool``, best first. :mod:`annotator.query.strategies` names them and picks the default; the
measurements behind each are in docs/benchmarks.md ("Active learning (simulator)")."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

import numpy as np
import scipy.sparse as sp
from modAL.batch import ranked_batch
from modAL.models import ActiveLearner, Committee
from sklearn.cluster import KMeans
from sklearn.preprocessing import normalize as l2_normalize

from .coldstart import _kmeans_representatives
from ..errors import InputError
from .pool_scores import (
    FeatureClassifier,
    StrategyFn,
    _estimator,
    _outputs,
    _Outputs,
    _rank01,
    check_pool,
    label_need,
    lci_scores,
    mmu_scores,
    rank_top,
)

log = logging.getLogger(__name__)


# Strategies -------------------------------------------------------------------------------------
def random_sampling(estimator, X_pool, n: int, *, rng: np.random.Generator) -> np.ndarray:
    """Uniform random picks: the baseline every other strategy is measured against."""
    check_pool(X_pool.shape[0], n)
    return rng.permutation(X_pool.shape[0])[:n]


def _by_score(score_fn: Callable[[FeatureClassifier, _Outputs, object], np.ndarray], doc: str) -> StrategyFn:
    def strategy(estimator, X_pool, n: int, *, rng: np.random.Generator) -> np.ndarray:
        check_pool(X_pool.shape[0], n)
        est = _estimator(estimator)
        return rank_top(score_fn(est, _outputs(est, X_pool), X_pool), n, rng)

    strategy.__doc__ = doc
    return strategy


class _ScoredPool:
    """What modAL's multi-label functions call, answered from one scoring pass.

    modAL 0.4.2.1's multilabel functions call ``classifier.predict``/``predict_proba`` on the pool,
    ``len(X_pool)`` (fails on sparse matrices) and ``classifier.estimator.estimators_`` (fails on a
    plain estimator). Giving them this view and ``np.arange(n_pool)`` as the pool makes every one
    work on sparse features with any estimator, and scores the pool once.
    """

    def __init__(self, out: _Outputs) -> None:
        self._out = out
        self.classes_ = np.arange(out.proba.shape[1])
        self.estimator = self
        self.estimators_ = [_LabelColumn(out.margin, j) for j in range(out.proba.shape[1])]

    def predict_proba(self, rows: np.ndarray) -> np.ndarray:
        return self._out.proba[rows]

    def predict(self, rows: np.ndarray) -> np.ndarray:
        return self._out.pred[rows]


class _LabelColumn:
    def __init__(self, margin: np.ndarray, j: int) -> None:
        self._margin, self._j = margin, j

    def decision_function(self, rows: np.ndarray) -> np.ndarray:
        return self._margin[rows, self._j]


def _modal_multilabel(modal_fn: Callable, largest_first: bool, doc: str) -> StrategyFn:
    """Adapter for modAL's multi-label query functions: one tie-break path, through ``rng``.

    modAL's own tie-break (``random_tie_break=True``) draws from the global numpy RNG, so it is
    called with ``random_tie_break=False`` and ``n_instances`` = the whole pool: that returns every
    row's score, which is ranked here with ties broken by ``rng``.
    """

    def strategy(estimator, X_pool, n: int, *, rng: np.random.Generator) -> np.ndarray:
        check_pool(X_pool.shape[0], n)
        n_pool = X_pool.shape[0]
        view = _ScoredPool(_outputs(_estimator(estimator), X_pool))
        rows, values = modal_fn(view, np.arange(n_pool), n_instances=n_pool, random_tie_break=False)
        scores = np.empty(n_pool)
        scores[rows] = values
        return rank_top(scores if largest_first else -scores, n, rng)

    strategy.__doc__ = doc
    return strategy


def _svm_binary_minimum(estimator, X_pool, n: int, *, rng: np.random.Generator) -> np.ndarray:
    """modAL's SVM_binary_minimum (Brinker 2006) ranked over the pool: smallest |decision| of any label.

    modAL's function returns a single index (no ``n_instances``); its score, the minimum absolute
    distance to any label's boundary, is computed from the same per-label decision functions.
    """
    check_pool(X_pool.shape[0], n)
    view = _ScoredPool(_outputs(_estimator(estimator), X_pool))
    rows = np.arange(X_pool.shape[0])
    decision = np.array([svm.decision_function(rows) for svm in view.estimator.estimators_]).T
    return rank_top(-np.min(np.abs(decision), axis=1), n, rng)


def _mixed(est: FeatureClassifier, out: _Outputs, X_pool, *, beta: float) -> np.ndarray:
    """Li & Guo's adaptive score: MMU^beta * LCI^(1-beta), both as [0, 1] ranks."""
    mmu, lci = _rank01(mmu_scores(out)), _rank01(lci_scores(out, est.cardinality_))
    return (mmu + 1e-3) ** beta * (lci + 1e-3) ** (1 - beta)


def pool_density(X_pool) -> np.ndarray:
    """Mean cosine similarity of each row to the whole pool: x . mean(pool), in one sparse product."""
    Xn = l2_normalize(X_pool)
    centroid = np.asarray(Xn.mean(axis=0)).ravel()
    return np.asarray(Xn @ centroid).ravel()


def _density_weighted(est, out, X_pool, *, beta: float = 1.0) -> np.ndarray:
    """Information density (Settles & Craven 2008): uncertainty x density^beta."""
    density = np.clip(pool_density(X_pool), 1e-9, None)
    return (_rank01(mmu_scores(out)) + 1e-3) * density**beta


def _rarity_weighted(est, out, X_pool, *, power: float = 0.5) -> np.ndarray:
    """Per-label uncertainty weighted by how few positives each label has: sum_j need_j * 4p(1-p)."""
    need = label_need(est, out.proba.shape[1], power)
    return (4 * out.proba * (1 - out.proba)) @ need


def cluster_margin(estimator, X_pool, n: int, *, rng: np.random.Generator, candidates_per_slot: int = 10) -> np.ndarray:
    """Cluster-margin (Citovsky et al. 2021): the most uncertain (MMU) clause of each k-means
    cluster of the top ``candidates_per_slot * n`` uncertain candidates, clusters taken round-robin."""
    check_pool(X_pool.shape[0], n)
    est = _estimator(estimator)
    scores = mmu_scores(_outputs(est, X_pool))
    cand = rank_top(scores, min(X_pool.shape[0], candidates_per_slot * n), rng)
    if len(cand) <= n:
        return cand[:n]
    km = KMeans(n_clusters=n, n_init=1, random_state=int(rng.integers(2**31 - 1)))
    clusters = km.fit_predict(l2_normalize(X_pool[cand]))
    picked: list[int] = []
    by_cluster = [list(cand[clusters == c]) for c in range(n)]  # each already best first
    while len(picked) < n:
        for members in sorted((m for m in by_cluster if m), key=lambda m: -scores[m[0]]):
            picked.append(members.pop(0))
            if len(picked) == n:
                break
    return np.asarray(picked)


def ranked_batch_sampling(
    estimator, X_pool, n: int, *, rng: np.random.Generator, candidates_per_slot: int = 10
) -> np.ndarray:
    """modAL's ranked batch-mode sampling (Cardoso et al. 2017) on MMU uncertainty, restricted to
    the top ``candidates_per_slot * n`` candidates so its distance computations stay small on big
    pools (modAL's own cold start builds an n_pool x n_pool distance matrix)."""
    check_pool(X_pool.shape[0], n)
    learner = estimator if isinstance(estimator, ActiveLearner) else None
    est = _estimator(estimator)
    scores = _rank01(mmu_scores(_outputs(est, X_pool)))
    cand = rank_top(scores, min(X_pool.shape[0], candidates_per_slot * n), rng)
    proxy = _RankedBatchView(
        l2_normalize(learner.X_training) if learner is not None and learner.X_training is not None else None
    )
    order, _ = ranked_batch(
        proxy, l2_normalize(X_pool[cand]), scores[cand], n_instances=n, metric="euclidean", n_jobs=None
    )
    return cand[np.asarray(order, dtype=int)]


class _RankedBatchView:
    """The attributes modAL's ranked_batch reads from a learner."""

    on_transformed = False

    def __init__(self, X_training) -> None:
        self.X_training = X_training


def _committee_disagreement(estimator, X_pool, n: int, *, rng: np.random.Generator) -> np.ndarray:
    """Query-by-committee: mean over labels of the variance of the members' probabilities."""
    check_pool(X_pool.shape[0], n)
    if isinstance(estimator, Committee):
        probas = [learner.predict_proba(X_pool) for learner in estimator.learner_list]
    else:
        est = _estimator(estimator)
        if not est.members_:
            raise InputError(
                "strategy 'qbc' needs a committee of models: fit a "
                "FeatureClassifier(n_members=...) or use it in `annotator simulate`"
            )
        probas = [m.predict_proba_features(X_pool) for m in est.members_]
    return rank_top(np.var(np.stack(probas), axis=0).mean(axis=1), n, rng)


def _epsilon(inner: StrategyFn, epsilon: float) -> StrategyFn:
    """``inner`` with a share ``epsilon`` of each batch replaced by uniform random picks."""

    def strategy(estimator, X_pool, n: int, *, rng: np.random.Generator) -> np.ndarray:
        check_pool(X_pool.shape[0], n)
        first = inner(estimator, X_pool, n, rng=rng)
        n_random = int(round(epsilon * n))
        if not n_random:
            return first
        keep = list(first[: n - n_random])
        rest = np.setdiff1d(np.arange(X_pool.shape[0]), keep)
        extra = rng.choice(rest, size=n_random, replace=False)
        return np.concatenate([keep, extra]).astype(int)

    strategy.__doc__ = f"{inner.__doc__} With {epsilon:.0%} of each batch drawn at random."
    return strategy


def coverage_batch(
    estimator,
    X_pool,
    n: int,
    *,
    rng: np.random.Generator,
    power: float = 1.0,
    uncertainty_weight: float = 0.5,
    candidates_per_slot: int = 20,
) -> np.ndarray:
    """Label-coverage batches: greedily pick the clause with the best mix of expected positives for
    the labels with the fewest positives so far and max-margin uncertainty.

    Each label's need is ``1 / (1 + expected positives) ** power``, where the expected positives
    are the labeled positives plus the probabilities of the clauses already in this batch, so one
    batch does not spend all its slots on the same starved label. The gain of a clause is
    ``sum_j p_j * need_j``; it is mixed with MMU uncertainty as ``[0, 1]`` ranks.
    """
    check_pool(X_pool.shape[0], n)
    est = _estimator(estimator)
    out = _outputs(est, X_pool)
    n_labels = out.proba.shape[1]
    expected = (est.label_counts_ if est.label_counts_ is not None else np.zeros(n_labels)).astype(float)
    uncertainty = mmu_scores(out)
    first_gain = out.proba @ (1.0 / (1.0 + expected) ** power)
    m = min(X_pool.shape[0], candidates_per_slot * n)
    cand = np.union1d(rank_top(uncertainty, m, rng), rank_top(first_gain, m, rng))
    proba = out.proba[cand]
    u_rank = _rank01(uncertainty[cand])
    jitter = rng.random(len(cand)) * 1e-9
    taken = np.zeros(len(cand), dtype=bool)
    picked = []
    for _ in range(n):
        gain = proba @ (1.0 / (1.0 + expected) ** power)
        score = (1 - uncertainty_weight) * _rank01(gain) + uncertainty_weight * u_rank + jitter
        score[taken] = -np.inf
        best = int(np.argmax(score))
        taken[best] = True
        picked.append(cand[best])
        expected = expected + proba[best]
    return np.asarray(picked)


def _row_norms2(X, chunk_rows: int = 100_000) -> np.ndarray:
    """Squared L2 norm of every row, chunk by chunk (no copy of a big sparse pool)."""
    if not sp.issparse(X):
        return (np.asarray(X, dtype=float) ** 2).sum(axis=1)
    X = sp.csr_matrix(X)
    out = np.empty(X.shape[0])
    for start in range(0, X.shape[0], chunk_rows):
        block = X[start : start + chunk_rows]
        out[start : start + block.shape[0]] = np.asarray(block.multiply(block).sum(axis=1)).ravel()
    return out


def badge(
    estimator,
    X_pool,
    n: int,
    *,
    rng: np.random.Generator,
    candidates_per_slot: int = 20,
    need_power: float = 0.0,
    balanced: float = 0.0,
) -> np.ndarray:
    """BADGE (Ash et al. 2020) for one-vs-rest logistic regression: k-means++ seeding over gradient
    embeddings ``x (outer) (p - y_hat)`` -- uncertain (long gradients) and diverse (far apart) at once.

    Distances come from the kernel ``(X X^T) * (G G^T)`` of the top ``candidates_per_slot * n``
    candidates by gradient norm, so no embedding of n_features x n_labels columns is built. With
    ``need_power > 0`` each label's gradient is scaled by ``need ** need_power`` (need = 1 / (1 +
    positives so far)), so uncertainty about rarely seen labels counts more; with ``balanced > 0``
    each gradient carries the classifier's class weight (``n / (2 n_class)``, to that power), as the
    class-balanced loss it trains on does.
    """
    check_pool(X_pool.shape[0], n)
    est = _estimator(estimator)
    out = _outputs(est, X_pool)
    G = out.proba - out.pred
    if need_power:
        G = G * label_need(est, G.shape[1], need_power)
    if balanced and est.label_counts_ is not None:
        # The classifier's own loss weights (class_weight="balanced"): n / (2 n_class), to a power.
        n_lab = max(est.n_labeled_ or 1, 1)
        pos = np.clip(est.label_counts_, 1, n_lab - 1 if n_lab > 1 else 1)
        w_pos, w_neg = (n_lab / (2 * pos)) ** balanced, (n_lab / (2 * (n_lab - pos + 1e-9))) ** balanced
        G = G * np.where(out.pred.astype(bool), w_pos, w_neg)
    norm2 = _row_norms2(X_pool) * (G**2).sum(axis=1)
    cand = rank_top(norm2, min(X_pool.shape[0], candidates_per_slot * n), rng)
    Xc = X_pool[cand]
    K = Xc @ Xc.T
    K = (K.toarray() if sp.issparse(K) else np.asarray(K)) * (G[cand] @ G[cand].T)
    diag = np.diag(K).copy()
    picked = [0]  # candidates are ranked: 0 has the longest gradient
    dist = np.maximum(diag + diag[0] - 2 * K[:, 0], 0)
    for _ in range(1, min(n, len(cand))):
        dist[picked] = 0
        total = dist.sum()
        nxt = (
            int(rng.choice(len(cand), p=dist / total))
            if total > 0
            else int(rng.choice(np.setdiff1d(np.arange(len(cand)), picked)))
        )
        picked.append(nxt)
        dist = np.minimum(dist, np.maximum(diag + diag[nxt] - 2 * K[:, nxt], 0))
    return cand[np.asarray(picked)]


def _share_among_labels(weight: np.ndarray, queues: list, n_pool: int, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` rows shared out among the labels by ``weight`` (each next slot to the label with the
    largest ``weight / (1 + slots so far)``), each label's slot filled from its own queue of rows,
    best first, skipping rows already taken; an exhausted queue gives a random free row."""
    taken = np.zeros(n_pool, dtype=bool)
    given = np.zeros(len(queues))
    tie = rng.random(len(queues)) * 1e-9
    picked: list[int] = []
    while len(picked) < n:
        j = int(np.argmax(weight / (1.0 + given) + tie))
        given[j] += 1
        i = next((i for i in queues[j] if not taken[i]), None)
        if i is None:  # this label's rows are used up by other labels: fall back to any free row
            i = int(rng.choice(np.flatnonzero(~taken)))
        taken[i] = True
        picked.append(int(i))
    return np.asarray(picked)


def labelwise_margin(estimator, X_pool, n: int, *, rng: np.random.Generator, power: float = 0.0) -> np.ndarray:
    """Per-label uncertainty, label by label: the batch is shared out among the labels (equally, or
    by ``need ** power`` with need = 1 / (1 + positives)), and each label's share goes to the clauses
    closest to *its* threshold. No score is averaged over labels, so long multi-label clauses do not
    take every slot and every label's boundary is refined.
    """
    check_pool(X_pool.shape[0], n)
    est = _estimator(estimator)
    out = _outputs(est, X_pool)
    n_pool, n_labels = out.margin.shape
    weight = label_need(est, n_labels, 1.0) ** power
    closeness = -np.abs(out.margin)
    # Each label's queue holds its n closest clauses: fewer than n are taken before the batch is
    # full, so a queue always has a free clause when its label's turn comes.
    queues = [iter(rank_top(closeness[:, j], n, rng)) for j in range(n_labels)]
    return _share_among_labels(weight, queues, n_pool, n, rng)


def gumbel_order(weights: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """All rows in a random order drawn without replacement with probability proportional to
    ``weights`` (Gumbel-top-k: ``log w + Gumbel noise``, sorted); rows of weight 0 come last."""
    weights = np.asarray(weights, dtype=float)
    with np.errstate(divide="ignore"):
        keys = np.log(weights) - np.log(-np.log(rng.random(len(weights)) + 1e-300) + 1e-300)
    return np.lexsort((rng.random(len(weights)), -keys))


def _tempered_weights(scores: np.ndarray, gamma: float) -> np.ndarray:
    """``(rank in [0, 1] + 1/n) ** gamma``: 0 gives uniform weights, larger values lean to the top."""
    return (_rank01(scores) + 1.0 / max(len(scores), 1)) ** gamma


def tempered_sampling(
    estimator,
    X_pool,
    n: int,
    *,
    rng: np.random.Generator,
    gamma: float = 3.0,
    need_power: float = 0.0,
    density_power: float = 0.0,
) -> np.ndarray:
    """Uncertainty-weighted random sampling: clauses are drawn without replacement with probability
    proportional to ``rank(MMU uncertainty) ** gamma`` (``gamma=0`` is random sampling).

    Unlike top-k uncertainty it keeps random sampling's coverage of the pool -- every topic and
    label keeps being seen in proportion -- while leaning towards the clauses the model is unsure
    about; the labeled set stays close to the pool's distribution, which the calibration and
    threshold tuning of the classifier rely on. With ``need_power > 0`` the weight is also
    multiplied by ``rank(expected positives of starved labels) ** need_power`` (``sum_j p_j /
    (1 + positives_j)``): a lean towards the labels random sampling starves; with
    ``density_power > 0`` by ``rank(pool density) ** density_power`` (:func:`pool_density`), a
    lean towards typical clauses.
    """
    check_pool(X_pool.shape[0], n)
    est = _estimator(estimator)
    out = _outputs(est, X_pool)
    weights = _tempered_weights(mmu_scores(out), gamma)
    if need_power:
        weights = weights * _tempered_weights(out.proba @ label_need(est, out.proba.shape[1]), need_power)
    if density_power:
        weights = weights * _tempered_weights(pool_density(X_pool), density_power)
    return gumbel_order(weights, rng)[:n]


# Labels after which ``staged_sampling`` stops drawing and asks for the most uncertain clauses.
TOP_UNCERTAINTY_AFTER = 1000


def staged_sampling(
    estimator, X_pool, n: int, *, rng: np.random.Generator, switch_at: int = TOP_UNCERTAINTY_AFTER, gamma: float = 2.0
) -> np.ndarray:
    """:func:`tempered_sampling` below ``switch_at`` labeled clauses (with ``gamma`` 2, the exponent
    it was measured with), then the most uncertain clauses first (top max-margin uncertainty, ties
    broken by ``rng``).

    The idea: early, random sampling's coverage of the pool's topics is what wins macro-F1, and
    tempered draws keep it; later the model's uncertainty might be worth following all the way.
    Measured (docs/benchmarks.md, "Second choice round"): ahead of ``tempered`` on the folds it was
    chosen on (0.84 vs 0.87 of random's labels to 95% of full data), behind it on the report folds
    (0.92 vs 0.86), so not the default. A model whose number of labels is unknown is treated as early.
    """
    check_pool(X_pool.shape[0], n)
    est = _estimator(estimator)
    if est.n_labeled_ is not None and est.n_labeled_ >= switch_at:
        return rank_top(mmu_scores(_outputs(est, X_pool)), n, rng)
    return tempered_sampling(estimator, X_pool, n, rng=rng, gamma=gamma)


def label_quota(
    estimator, X_pool, n: int, *, rng: np.random.Generator, power: float = 1.0, gamma: float = 2.0, floor: float = 0.0
) -> np.ndarray:
    """Per-label quotas: the batch is shared among the labels by ``need ** power`` (need = 1 / (1 +
    positives so far); ``floor`` adds a uniform share), and each label's share is drawn from the
    clauses near *its* threshold, with probability proportional to ``rank(closeness) ** gamma``.

    Every label gets slots in every batch, the labels with the fewest positives the most, and no
    long multi-label clause can take the batch; drawing (not top-k) keeps the picks spread out.
    """
    check_pool(X_pool.shape[0], n)
    est = _estimator(estimator)
    out = _outputs(est, X_pool)
    n_pool, n_labels = out.margin.shape
    need = label_need(est, n_labels, 1.0) ** power
    weight = need / need.sum() + floor / n_labels
    closeness = -np.abs(out.margin)
    # Each label's order: at most n rows of it are taken, so its first n draws suffice.
    queues = [iter(gumbel_order(_tempered_weights(closeness[:, j], gamma), rng)[: n + 1]) for j in range(n_labels)]
    return _share_among_labels(weight, queues, n_pool, n, rng)


def representative(estimator, X_pool, n: int, *, rng: np.random.Generator) -> np.ndarray:
    """Diversity only: the clause nearest each of ``n`` k-means centroids of the pool (on a
    256-dimension random projection), biggest clusters first -- the pool's main topics."""
    check_pool(X_pool.shape[0], n)
    n_pool = X_pool.shape[0]
    if n == n_pool:
        return rng.permutation(n_pool)
    keys = [str(i) for i in range(n_pool)]
    picked = _kmeans_representatives(keys, keys, n, [], set(), rng=rng, X=X_pool)
    if len(picked) < n:
        rest = np.setdiff1d(np.arange(n_pool), picked)
        picked += list(rng.permutation(rest)[: n - len(picked)])
    return np.asarray(picked[:n], dtype=int)


def scheduled(phases: Sequence[tuple[int | None, StrategyFn]]) -> StrategyFn:
    """Switch strategies as labels accumulate: ``phases`` is ``[(up_to_labels, fn), ..., (None, fn)]``;
    the first phase whose bound exceeds the number of labeled clauses runs (the last if unknown)."""

    def strategy(estimator, X_pool, n: int, *, rng: np.random.Generator) -> np.ndarray:
        n_labeled = _estimator(estimator).n_labeled_
        for bound, fn in phases:
            if bound is None or (n_labeled is not None and n_labeled < bound):
                return fn(estimator, X_pool, n, rng=rng)
        return phases[-1][1](estimator, X_pool, n, rng=rng)

    strategy.__doc__ = "Scheduled: " + "; then ".join(
        f"{(fn.__doc__ or '').strip().splitlines()[0]}" + (f" below {bound} labels" if bound else "")
        for bound, fn in phases
    )
    return strategy


def blended(parts: Sequence[tuple[float, StrategyFn]]) -> StrategyFn:
    """One batch from several strategies: ``parts`` is ``[(share, fn), ...]``; picks interleave in
    proportion to the shares, each part skipping rows already taken."""

    def strategy(estimator, X_pool, n: int, *, rng: np.random.Generator) -> np.ndarray:
        check_pool(X_pool.shape[0], n)
        shares = np.array([share for share, _ in parts], dtype=float)
        rankings = [iter(fn(estimator, X_pool, n, rng=rng)) for _, fn in parts]
        given = np.zeros(len(parts))
        taken: set[int] = set()
        picked: list[int] = []
        while len(picked) < n:
            k = int(np.argmax(shares / (1.0 + given)))
            given[k] += 1
            i = next((int(i) for i in rankings[k] if int(i) not in taken), None)
            if i is None:
                shares[k] = 0.0
                continue
            taken.add(i)
            picked.append(i)
        return np.asarray(picked)

    strategy.__doc__ = "Blend of " + ", ".join(
        f"{share:.0%} {(fn.__doc__ or '').strip().splitlines()[0]}" for share, fn in parts
    )
    return strategy
