"""Query strategies: which unlabeled clauses a person should label next.

Every strategy is a plain function ``fn(estimator, X_pool, n, *, rng) -> np.ndarray`` returning
exactly ``n`` unique row indices into ``X_pool``, best first; ``STRATEGIES`` maps names to them and
``DEFAULT_STRATEGY`` names the one measured best (docs/benchmarks.md). They run as modAL query
functions: :func:`make_learner` puts a model and a strategy in a :class:`PolicyActiveLearner`
(modAL's ``ActiveLearner``), and ``learner.query(X_pool, n, rng=rng)`` calls the strategy.

What the live product calls:

- :func:`select_batch` -- the next batch from a fitted model and the pool's cached features, with
  the two rules a person's time needs: no clause whose normalized text is already labeled, and no
  two near-duplicates in one batch. It never fits anything.
- :func:`cold_start_batch` -- the first batch, before any model exists: clauses that match each
  label's keywords (derived from the label names, or given), then k-means representatives.

Why the default is not an off-the-shelf uncertainty score: on this data (27 labels, 2-8% positives
each, near-duplicate clusters, label noise) every stock modAL multi-label strategy labels *worse*
than random sampling -- they pick long multi-label clauses and starve rare labels, and macro-F1
weighs every label equally. The default, ``tempered``, keeps random sampling's coverage and only
leans on uncertainty: it draws clauses without replacement with probability proportional to
``rank(MMU) ** 2``, after a keyword/k-means cold start, skipping near-duplicates of labeled clauses.
It was the only strategy measured ahead of random at every budget, and only by a small margin;
see docs/benchmarks.md ("Active learning (simulator)") for the measurements behind the choice.
"""
from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp
from modAL import multilabel as modal_multilabel
from modAL.batch import ranked_batch
from modAL.models import ActiveLearner, Committee
from sklearn.base import BaseEstimator, clone
from sklearn.cluster import KMeans
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.preprocessing import normalize as l2_normalize
from sklearn.random_projection import SparseRandomProjection
from sklearn.utils.validation import check_is_fitted

from .cleaning import similar_pairs
from .errors import EmptyPoolError, InputError, PoolExhaustedError
from .model import at_least_one
from .normalize import match_key

log = logging.getLogger(__name__)

StrategyFn = Callable[..., np.ndarray]


# Pool checks and ranking -----------------------------------------------------------------------
def check_pool(n_pool: int, n: int) -> None:
    """Raise if a batch of ``n`` cannot be drawn from ``n_pool`` unlabeled clauses.

    Raises
    ------
    InputError
        If ``n`` is not a positive integer.
    EmptyPoolError
        If the pool is empty.
    PoolExhaustedError
        If the pool holds fewer than ``n`` clauses.

    Examples
    --------
    >>> check_pool(3, 20)
    Traceback (most recent call last):
    ...
    annotator.errors.PoolExhaustedError: 3 unlabeled segments left, 20 requested; lower --batch-size or ingest more documents
    """
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise InputError(f"batch size must be a positive integer, got {n!r}")
    if n_pool == 0:
        raise EmptyPoolError("no unlabeled segments left; ingest more documents or export the labels")
    if n_pool < n:
        raise PoolExhaustedError(
            f"{n_pool} unlabeled segments left, {n} requested; lower --batch-size or ingest more documents")


def rank_top(scores: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """Indices of the ``n`` highest ``scores``, best first; ties broken by ``rng`` (the only tie-break)."""
    scores = np.asarray(scores, dtype=float)
    if n < len(scores):
        kth = np.partition(scores, len(scores) - n)[len(scores) - n]
        candidates = np.flatnonzero(scores >= kth)  # every row tied with the n-th best is a candidate
    else:
        candidates = np.arange(len(scores))
    order = np.lexsort((rng.random(len(candidates)), -scores[candidates]))
    return candidates[order[:n]]


# The estimator strategies see --------------------------------------------------------------------
class FeatureClassifier(BaseEstimator):
    """A :class:`~annotator.model.PolicyClassifier` over precomputed features, as modAL expects it.

    ``fit(X, Y)`` calls ``model.fit_features`` on a clone (the featurizer is fitted once, on the
    whole pool); ``predict_proba``/``decision_function``/``predict`` take feature rows. It also
    keeps what rarity-aware strategies need from the labeled set: positives per label and the mean
    number of labels per clause. With ``n_members > 0`` it fits a bootstrap committee beside the
    main model, for query-by-committee.

    Parameters
    ----------
    model : an unfitted PolicyClassifier (cloned on every fit).
    n_members : committee size for query-by-committee (0: no committee).
    random_state : seeds the committee's bootstrap samples.
    """

    def __init__(self, *, model=None, n_members: int = 0, random_state: int = 0):
        self.model = model
        self.n_members = n_members
        self.random_state = random_state

    @classmethod
    def from_fitted(cls, model, Y_labeled: np.ndarray | None = None) -> FeatureClassifier:
        """Wrap an already fitted model (the live product: nothing is refitted)."""
        check_is_fitted(model, "thresholds_")
        wrapper = cls(model=model)
        wrapper.model_ = model
        wrapper.members_ = []
        wrapper._set_label_stats(None if Y_labeled is None else np.asarray(Y_labeled), len(model.labels_))
        return wrapper

    def fit(self, X, Y, groups=None) -> FeatureClassifier:
        """Fit a clone of ``model`` on feature rows; ``groups`` (near-duplicate group per row) is
        passed on for the model's calibration folds."""
        if self.model is None:
            raise InputError("FeatureClassifier needs a model, e.g. PolicyClassifier(labels=...)")
        Y = np.asarray(Y)
        self.model_ = (clone(self.model).fit_features(X, Y) if groups is None
                       else clone(self.model).fit_features(X, Y, groups=np.asarray(groups)))
        self.members_ = []
        rng = np.random.default_rng(self.random_state)
        for _ in range(self.n_members):
            rows = rng.integers(0, X.shape[0], X.shape[0])
            member = clone(self.model)
            if "cv" in member.get_params():  # members only vote: skip their calibration folds
                member.set_params(cv=1)
            self.members_.append(member.fit_features(X[rows], Y[rows]))
        self._set_label_stats(Y, Y.shape[1])
        return self

    def _set_label_stats(self, Y: np.ndarray | None, n_labels: int) -> None:
        if Y is None or not len(Y):
            self.label_counts_ = None
            self.cardinality_ = None
            self.n_labeled_ = getattr(getattr(self, "model_", None), "n_train_", None)
        else:
            self.label_counts_ = Y.sum(axis=0).astype(float)
            self.cardinality_ = float(Y.sum(axis=1).mean())
            self.n_labeled_ = int(len(Y))
        self.classes_ = np.arange(n_labels)  # modAL's Committee and max_loss read classes_

    @property
    def labels_(self) -> np.ndarray:
        return self.model_.labels_

    @property
    def thresholds_(self) -> np.ndarray:
        return np.asarray(self.model_.thresholds_, dtype=float)

    def predict_proba(self, X) -> np.ndarray:
        check_is_fitted(self, "model_")
        return self.model_.predict_proba_features(X)

    def decision_function(self, X) -> np.ndarray:
        check_is_fitted(self, "model_")
        return self.model_.decision_function_features(X)

    def decide(self, proba: np.ndarray) -> np.ndarray:
        """0/1 labels from probabilities, the model's own rule (at least one label per clause)."""
        decide = getattr(self.model_, "decide", None)
        return decide(proba) if decide is not None else at_least_one(proba, self.thresholds_)

    def predict(self, X) -> np.ndarray:
        return self.decide(self.predict_proba(X))


def _estimator(obj) -> FeatureClassifier:
    """The FeatureClassifier behind a learner, a committee, or a fitted model."""
    if isinstance(obj, FeatureClassifier):
        return obj
    if isinstance(obj, Committee):
        return obj.learner_list[0].estimator
    if isinstance(obj, ActiveLearner):
        return obj.estimator
    return FeatureClassifier.from_fitted(obj)


@dataclass
class _Outputs:
    """One scoring pass over the pool, shared by every score a strategy computes."""

    proba: np.ndarray  # (n, n_labels) probabilities
    margin: np.ndarray  # logit(p) - logit(threshold): > 0 means the label is predicted
    pred: np.ndarray  # 0/1 decisions (at least one label per clause)


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-6, 1 - 1e-6)
    return np.log(p) - np.log1p(-p)


def _outputs(est: FeatureClassifier, X_pool) -> _Outputs:
    proba = est.predict_proba(X_pool)
    margin = _logit(proba) - _logit(est.thresholds_)
    return _Outputs(proba, margin, est.decide(proba))


# Uncertainty scores (higher = query first) ------------------------------------------------------
def mmu_scores(out: _Outputs) -> np.ndarray:
    """Max-margin uncertainty (Li & Guo 2013): minus the gap between the weakest predicted label
    and the strongest rejected one, on the threshold-relative logit scale."""
    pos = out.pred.astype(bool)
    weakest_in = np.where(pos, out.margin, np.inf).min(axis=1)
    strongest_out = np.where(pos, -np.inf, out.margin).max(axis=1)
    strongest_out[~np.isfinite(strongest_out)] = weakest_in[~np.isfinite(strongest_out)] - 10.0
    return -(weakest_in - strongest_out)


def lci_scores(out: _Outputs, cardinality: float | None) -> np.ndarray:
    """Label cardinality inconsistency: distance of the predicted label count from the labeled mean."""
    target = 1.0 if cardinality is None else cardinality
    return np.abs(out.pred.sum(axis=1) - target)


def entropy_scores(out: _Outputs) -> np.ndarray:
    """Mean per-label binary entropy."""
    p = np.clip(out.proba, 1e-9, 1 - 1e-9)
    return -(p * np.log(p) + (1 - p) * np.log(1 - p)).mean(axis=1)


def _rank01(values: np.ndarray) -> np.ndarray:
    """Values as ranks scaled to [0, 1] (scale-free mixing of two scores)."""
    if len(values) < 2:
        return np.ones(len(values))
    return values.argsort(kind="stable").argsort(kind="stable") / (len(values) - 1)


def label_need(est: FeatureClassifier, n_labels: int, power: float = 1.0) -> np.ndarray:
    """How much each label needs positives: 1 / (1 + positives so far) ** power (uniform if unknown)."""
    counts = est.label_counts_ if est.label_counts_ is not None else np.zeros(n_labels)
    return 1.0 / (1.0 + counts) ** power


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
    return (_rank01(mmu_scores(out)) + 1e-3) * density ** beta


def _rarity_weighted(est, out, X_pool, *, power: float = 0.5) -> np.ndarray:
    """Per-label uncertainty weighted by how few positives each label has: sum_j need_j * 4p(1-p)."""
    need = label_need(est, out.proba.shape[1], power)
    return (4 * out.proba * (1 - out.proba)) @ need


def cluster_margin(estimator, X_pool, n: int, *, rng: np.random.Generator,
                   candidates_per_slot: int = 10) -> np.ndarray:
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


def ranked_batch_sampling(estimator, X_pool, n: int, *, rng: np.random.Generator,
                          candidates_per_slot: int = 10) -> np.ndarray:
    """modAL's ranked batch-mode sampling (Cardoso et al. 2017) on MMU uncertainty, restricted to
    the top ``candidates_per_slot * n`` candidates so its distance computations stay small on big
    pools (modAL's own cold start builds an n_pool x n_pool distance matrix)."""
    check_pool(X_pool.shape[0], n)
    learner = estimator if isinstance(estimator, ActiveLearner) else None
    est = _estimator(estimator)
    scores = _rank01(mmu_scores(_outputs(est, X_pool)))
    cand = rank_top(scores, min(X_pool.shape[0], candidates_per_slot * n), rng)
    proxy = _RankedBatchView(l2_normalize(learner.X_training) if learner is not None
                             and learner.X_training is not None else None)
    order, _ = ranked_batch(proxy, l2_normalize(X_pool[cand]), scores[cand], n_instances=n,
                            metric="euclidean", n_jobs=None)
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
            raise InputError("strategy 'qbc' needs a committee of models: fit a "
                             "FeatureClassifier(n_members=...) or use it in `annotator simulate`")
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


def coverage_batch(estimator, X_pool, n: int, *, rng: np.random.Generator, power: float = 1.0,
                   uncertainty_weight: float = 0.5, candidates_per_slot: int = 20) -> np.ndarray:
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
        block = X[start:start + chunk_rows]
        out[start:start + block.shape[0]] = np.asarray(block.multiply(block).sum(axis=1)).ravel()
    return out


def badge(estimator, X_pool, n: int, *, rng: np.random.Generator, candidates_per_slot: int = 20,
          need_power: float = 0.0, balanced: float = 0.0) -> np.ndarray:
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
    norm2 = _row_norms2(X_pool) * (G ** 2).sum(axis=1)
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
        nxt = int(rng.choice(len(cand), p=dist / total)) if total > 0 else \
            int(rng.choice(np.setdiff1d(np.arange(len(cand)), picked)))
        picked.append(nxt)
        dist = np.minimum(dist, np.maximum(diag + diag[nxt] - 2 * K[:, nxt], 0))
    return cand[np.asarray(picked)]


def _share_among_labels(weight: np.ndarray, queues: list, n_pool: int, n: int,
                        rng: np.random.Generator) -> np.ndarray:
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


def tempered_sampling(estimator, X_pool, n: int, *, rng: np.random.Generator, gamma: float = 2.0) -> np.ndarray:
    """Uncertainty-weighted random sampling: clauses are drawn without replacement with probability
    proportional to ``rank(MMU uncertainty) ** gamma`` (``gamma=0`` is random sampling).

    Unlike top-k uncertainty it keeps random sampling's coverage of the pool -- every topic and
    label keeps being seen in proportion -- while leaning towards the clauses the model is unsure
    about; the labeled set stays close to the pool's distribution, which the calibration and
    threshold tuning of the classifier rely on.
    """
    check_pool(X_pool.shape[0], n)
    est = _estimator(estimator)
    return gumbel_order(_tempered_weights(mmu_scores(_outputs(est, X_pool)), gamma), rng)[:n]


def label_quota(estimator, X_pool, n: int, *, rng: np.random.Generator, power: float = 1.0,
                gamma: float = 2.0, floor: float = 0.0) -> np.ndarray:
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
    queues = [iter(gumbel_order(_tempered_weights(closeness[:, j], gamma), rng)[: n + 1])
              for j in range(n_labels)]
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
        for bound, fn in phases)
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
        f"{share:.0%} {(fn.__doc__ or '').strip().splitlines()[0]}" for share, fn in parts)
    return strategy


# The registry -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Strategy:
    """A named query strategy.

    ``cold_start``: whether the first batch (before any model) comes from :func:`cold_start_batch`
    (as in the live product) or at random (the baseline). ``dedupe``: whether :func:`select_batch`
    also skips near-duplicates of labeled clauses (off for ``random``, the plain baseline).
    ``committee``: members of the bootstrap committee the strategy needs (0: a single model).
    """

    name: str
    fn: StrategyFn
    description: str
    cold_start: bool = True
    committee: int = 0
    dedupe: bool = True
    params: Mapping[str, float] = field(default_factory=dict)


def _partial(fn: Callable, **params) -> StrategyFn:
    def strategy(estimator, X_pool, n: int, *, rng: np.random.Generator) -> np.ndarray:
        return fn(estimator, X_pool, n, rng=rng, **params)
    strategy.__doc__ = fn.__doc__
    return strategy


_mmu = _by_score(lambda est, out, X: mmu_scores(out), "Max-margin uncertainty (Li & Guo 2013).")

_ALL = [
    Strategy("random", random_sampling, "uniform random sampling (the baseline)", cold_start=False,
             dedupe=False),
    Strategy("min_confidence", _modal_multilabel(modal_multilabel.min_confidence, False,
             "modAL min_confidence: lowest per-label probability."),
             "modAL min_confidence (Esuli & Sebastiani 2009)", cold_start=False, dedupe=False),
    Strategy("avg_confidence", _modal_multilabel(modal_multilabel.avg_confidence, True,
             "modAL avg_confidence: highest mean probability."),
             "modAL avg_confidence (Esuli & Sebastiani 2009)", cold_start=False, dedupe=False),
    Strategy("max_score", _modal_multilabel(modal_multilabel.max_score, True,
             "modAL max_score."), "modAL max_score (Esuli & Sebastiani 2009)", cold_start=False, dedupe=False),
    Strategy("avg_score", _modal_multilabel(modal_multilabel.avg_score, True,
             "modAL avg_score."), "modAL avg_score (Esuli & Sebastiani 2009)", cold_start=False, dedupe=False),
    Strategy("max_loss", _modal_multilabel(modal_multilabel.max_loss, True, "modAL max_loss."),
             "modAL max_loss (Li et al. 2004)", cold_start=False, dedupe=False),
    Strategy("mean_max_loss", _modal_multilabel(modal_multilabel.mean_max_loss, True,
             "modAL mean_max_loss."), "modAL mean_max_loss (Li et al. 2004)", cold_start=False, dedupe=False),
    Strategy("svm_binary_minimum", _svm_binary_minimum, "modAL SVM_binary_minimum (Brinker 2006)",
             cold_start=False, dedupe=False),
    Strategy("entropy", _by_score(lambda est, out, X: entropy_scores(out), "Mean per-label entropy."),
             "mean per-label binary entropy", cold_start=False, dedupe=False),
    Strategy("mmu", _mmu, "max-margin uncertainty (Li & Guo 2013)"),
    Strategy("lci_mmu", _by_score(lambda est, out, X: _mixed(est, out, X, beta=0.5),
             "MMU combined with label cardinality inconsistency (Li & Guo 2013)."),
             "max-margin + label cardinality inconsistency (Li & Guo 2013)"),
    Strategy("density", _by_score(_density_weighted, "MMU x pool density (information density)."),
             "information density: MMU x mean similarity to the pool (Settles & Craven 2008)"),
    Strategy("cluster_margin", cluster_margin, "most uncertain of each k-means cluster of candidates"),
    Strategy("ranked_batch", ranked_batch_sampling, "modAL ranked batch on MMU, over candidates"),
    Strategy("rarity", _by_score(_rarity_weighted, "Per-label uncertainty weighted by rarity."),
             "per-label uncertainty weighted by 1/sqrt(1 + positives so far)"),
    Strategy("eps_mmu", _epsilon(_mmu, 0.2), "MMU with 20% of each batch random"),
    Strategy("qbc", _committee_disagreement, "query-by-committee: variance over 4 bootstrap models",
             committee=4),
    Strategy("labelwise", _partial(labelwise_margin), "per-label uncertainty, batch shared equally "
             "among labels"),
    Strategy("badge", badge, "BADGE: k-means++ over gradient embeddings (Ash et al. 2020)"),
    Strategy("coverage", _partial(coverage_batch), "label coverage (expected positives of "
             "starved labels) mixed with MMU"),
    Strategy("tempered", _partial(tempered_sampling), "random draws weighted by rank(MMU)^2"),
    Strategy("quota", _partial(label_quota), "per-label quotas by need, drawn near each label's threshold"),
    Strategy("representative", representative, "k-means representatives of the pool (diversity only)"),
]
STRATEGIES: dict[str, Strategy] = {s.name: s for s in _ALL}
DEFAULT_STRATEGY = "tempered"


def get_strategy(name: str) -> Strategy:
    """The strategy called ``name`` (``"default"``: :data:`DEFAULT_STRATEGY`).

    Raises
    ------
    InputError
        If no strategy has that name; the message lists the valid names.
    """
    key = DEFAULT_STRATEGY if name == "default" else name
    if key not in STRATEGIES:
        raise InputError(f"unknown strategy '{name}'; valid: default, {', '.join(STRATEGIES)}")
    return STRATEGIES[key]


# modAL learners ---------------------------------------------------------------------------------
class PolicyActiveLearner(ActiveLearner):
    """modAL's ActiveLearner, with fixes for the pinned stack and the product's classifier.

    - ``teach``/``fit`` validate shapes themselves: modAL 0.4.2.1 passes ``force_all_finite`` to
      scikit-learn's ``check_X_y``, deprecated in 1.6 (a FutureWarning) and removed in 1.8.
    - ``query`` calls the strategy once and takes its result as the indices: modAL's ``query``
      first unpacks the result as ``(indices, metrics)`` in a bare ``try`` and calls the strategy
      again when that fails, so a batch of exactly 2 indices was split into two scalars and every
      other batch was computed twice.
    - Sparse training rows are stacked with scipy, and each row's near-duplicate group can ride
      along (``teach(X, y, groups=...)``) so calibration folds keep near-duplicates together,
      as in ``annotator train``.
    - No ``bootstrap``: modAL draws it from the global numpy RNG.
    """

    groups_training = None  # near-duplicate group id per training row, if the caller keeps them

    def _add_training_data(self, X, y, groups=None) -> None:
        _check_rows(X, y)
        if self.X_training is None:
            self.X_training, self.y_training = X, np.asarray(y)
            self.groups_training = None if groups is None else np.asarray(groups)
        else:
            _check_rows(self.X_training, X, what="new rows and training rows")
            self.X_training = (sp.vstack([self.X_training, X], format="csr") if sp.issparse(X)
                               else np.vstack([self.X_training, X]))
            self.y_training = np.vstack([self.y_training, np.asarray(y)])
            if self.groups_training is not None and groups is not None:
                self.groups_training = np.concatenate([self.groups_training, np.asarray(groups)])
            else:
                self.groups_training = None

    def _fit_to_known(self, bootstrap: bool = False, **fit_kwargs) -> PolicyActiveLearner:
        if bootstrap:
            raise InputError("bootstrap=True is not supported (it draws from the global numpy RNG); "
                             "use FeatureClassifier(n_members=...) for a seeded committee")
        if self.groups_training is not None:
            fit_kwargs = dict(fit_kwargs, groups=self.groups_training)
        self.estimator.fit(self.X_training, self.y_training, **fit_kwargs)
        return self

    def fit(self, X, y, bootstrap: bool = False, groups=None, **fit_kwargs) -> PolicyActiveLearner:
        _check_rows(X, y)
        self.X_training, self.y_training = X, np.asarray(y)
        self.groups_training = None if groups is None else np.asarray(groups)
        return self._fit_to_known(bootstrap=bootstrap, **fit_kwargs)

    def teach(self, X, y, bootstrap: bool = False, only_new: bool = False, groups=None, **fit_kwargs) -> None:
        """Add labeled rows (and their near-duplicate groups, if kept) and refit from scratch."""
        if only_new:
            raise InputError("only_new=True is not supported: the classifier refits from scratch")
        self._add_training_data(X, y, groups)
        self._fit_to_known(bootstrap=bootstrap, **fit_kwargs)

    def query(self, X_pool, *query_args, **query_kwargs):
        rows = np.asarray(self.query_strategy(self, X_pool, *query_args, **query_kwargs), dtype=int)
        return rows, X_pool[rows]


class PolicyCommittee(Committee):
    """modAL's Committee with the same single-call ``query`` as :class:`PolicyActiveLearner`."""

    def query(self, X_pool, *query_args, **query_kwargs):
        rows = np.asarray(self.query_strategy(self, X_pool, *query_args, **query_kwargs), dtype=int)
        return rows, X_pool[rows]


def _check_rows(X, y, what: str = "X and y") -> None:
    n_x = X.shape[0]
    n_y = y.shape[0] if hasattr(y, "shape") else len(y)
    if what == "X and y" and n_x != n_y:
        raise InputError(f"{what} have different numbers of rows: {n_x} and {n_y}")
    if what != "X and y" and X.shape[1:] != y.shape[1:]:
        raise InputError(f"{what} have different numbers of columns: {X.shape[1:]} and {y.shape[1:]}")


def make_learner(model, strategy: str | Strategy = "default", *, X_training=None, Y_training=None,
                 groups=None, random_state: int = 0) -> PolicyActiveLearner:
    """A modAL learner over precomputed features whose ``query`` runs ``strategy``.

    ``model`` is an unfitted PolicyClassifier (fitted on ``X_training`` if given, with ``groups``
    the near-duplicate group of each row for its calibration folds; refitted by ``teach``) or an
    already fitted one (wrapped as is: the live product never fits while querying).
    Committee strategies get a :class:`FeatureClassifier` with a bootstrap committee inside.
    """
    strategy = get_strategy(strategy) if isinstance(strategy, str) else strategy
    if hasattr(model, "thresholds_"):
        estimator = FeatureClassifier.from_fitted(model, Y_training)
        return PolicyActiveLearner(estimator, strategy.fn)
    estimator = FeatureClassifier(model=model, n_members=strategy.committee, random_state=random_state)
    learner = PolicyActiveLearner(estimator, strategy.fn)
    if X_training is not None:
        learner.fit(X_training, Y_training, groups=groups)
    return learner


# Batches worth a person's time ------------------------------------------------------------------
def select_batch(model, X_pool, n: int, *, strategy: str | Strategy = "default",
                 rng: np.random.Generator, texts: Sequence[str] | None = None,
                 labeled_texts: Sequence[str] = (), Y_labeled: np.ndarray | None = None,
                 candidate_factor: int = 3) -> list[int]:
    """The next ``n`` pool rows to label, best first; never fits a model.

    The strategy ranks ``candidate_factor * n`` candidates through modAL's ``ActiveLearner.query``;
    they are taken in rank order, skipping

    - a clause whose normalized text (:func:`~annotator.normalize.match_key`) is in
      ``labeled_texts`` or already in the batch;
    - a near-duplicate of a clause already in the batch, and (for strategies with ``dedupe``, all
      but ``random``) a near-duplicate of a labeled clause: the overlap rule of
      :mod:`annotator.cleaning` (character 3-shingle Jaccard >= 0.5, or 80% of the shorter
      clause inside the longer) when ``texts`` are given, else cosine >= 0.8 of the feature rows.

    If too few candidates survive, the whole pool is ranked.

    Parameters
    ----------
    model : a fitted PolicyClassifier, or a PolicyActiveLearner (the simulator's).
    X_pool : cached features of the unlabeled clauses (see :mod:`annotator.poolcache`).
    n : batch size.
    strategy : a name in :data:`STRATEGIES`, ``"default"``, or a Strategy.
    rng : the only source of randomness (ties, random picks).
    texts : the pool's texts, row-aligned with ``X_pool`` (for the duplicate rules).
    labeled_texts : texts already labeled (their copies and near-duplicates are skipped).
    Y_labeled : the labeled 0/1 matrix, for strategies that use label counts or cardinality.

    Returns
    -------
    list[int]
        ``n`` row indices into ``X_pool`` (fewer only if duplicates leave fewer usable clauses).

    Raises
    ------
    EmptyPoolError, PoolExhaustedError
        If the pool is empty or smaller than ``n``.
    """
    n_pool = X_pool.shape[0]
    check_pool(n_pool, n)
    strategy = get_strategy(strategy) if isinstance(strategy, str) else strategy
    learner = model if isinstance(model, (ActiveLearner, Committee)) else make_learner(
        model, strategy, Y_training=Y_labeled)
    if texts is not None and len(texts) != n_pool:
        raise InputError(f"texts has {len(texts)} entries but X_pool has {n_pool} rows")
    labeled_keys = list(dict.fromkeys(match_key(t) for t in labeled_texts))
    m = min(n_pool, candidate_factor * n)
    while True:
        ranked, _ = learner.query(X_pool, m, rng=rng)
        picked = _dedupe(np.asarray(ranked, dtype=int), X_pool,
                         None if texts is None else [match_key(texts[i]) for i in ranked],
                         labeled_keys, n, near_labeled=strategy.dedupe)
        if len(picked) == n or m == n_pool:
            return picked
        m = n_pool


def _dedupe(ranked: np.ndarray, X_pool, keys: list[str] | None, labeled_keys: list[str], n: int, *,
            near_labeled: bool, cosine: float = 0.8) -> list[int]:
    """Take ``ranked`` in order, dropping labeled texts and near-duplicates (see select_batch)."""
    m = len(ranked)
    if keys is not None:
        blocked = set(labeled_keys)
        others = labeled_keys if near_labeled else []
        rows, cols, _, _ = similar_pairs(keys + others)
        first_of_key: dict[str, int] = {}
        for a, key in enumerate(keys):  # identical keys are duplicates even when too short to shingle
            first_of_key.setdefault(key, a)
        skip = np.array([key in blocked or first_of_key[key] != a for a, key in enumerate(keys)], dtype=bool)
        near_old = rows[(rows < m) & (cols >= m)]  # rows < cols: a candidate close to a labeled clause
        skip[near_old] = True
        inside = (rows < m) & (cols < m)
        rows, cols = rows[inside], cols[inside]
    else:
        Xn = l2_normalize(X_pool[ranked])
        sim = sp.coo_matrix(Xn @ Xn.T)
        close = (sim.data >= cosine) & (sim.row < sim.col)
        rows, cols = sim.row[close], sim.col[close]
        skip = np.zeros(m, dtype=bool)
    graph = sp.coo_matrix((np.ones(len(rows), dtype=bool), (rows, cols)), shape=(m, m))
    graph = (graph + graph.T).tocsr()
    chosen: list[int] = []
    taken = np.zeros(m, dtype=bool)
    for a in range(m):
        if skip[a] or taken[graph.indices[graph.indptr[a]:graph.indptr[a + 1]]].any():
            continue
        chosen.append(int(ranked[a]))
        taken[a] = True
        if len(chosen) == n:
            break
    return chosen


# Cold start -------------------------------------------------------------------------------------
_LABEL_SPLIT = re.compile("[和与及、/]")
_GENERIC_SUFFIXES = ("产业", "建设", "机构", "队伍", "保护", "支持", "激励", "服务", "计划", "基地",
                     "平台", "转化", "监管")


def label_keywords(labels: Sequence[str]) -> dict[str, tuple[str, ...]]:
    """Keywords derived from each label name: the name, its parts around 和/与/及, and each part
    without a generic suffix (产业, 建设, 机构 ...) when at least two characters remain.

    Examples
    --------
    >>> label_keywords(["集成电路产业", "教育和科普"])["教育和科普"]
    ('教育和科普', '教育', '科普')
    """
    out = {}
    for label in labels:
        words = [label]
        for part in _LABEL_SPLIT.split(label):
            words.append(part)
            for suffix in _GENERIC_SUFFIXES:
                if part.endswith(suffix) and len(part) - len(suffix) >= 2:
                    words.append(part[: -len(suffix)])
        out[label] = tuple(dict.fromkeys(w for w in words if len(w) >= 2))
    return out


def cold_start_batch(texts: Sequence[str], labels: Sequence[str], n: int, *, rng: np.random.Generator,
                     keywords: Mapping[str, Sequence[str]] | None = None, X=None,
                     per_label: int = 1, max_sample: int = 20000) -> list[int]:
    """The first batch, before any model exists: every label covered, the rest diverse.

    1. For each label (fewest keyword matches first, round-robin, ``per_label`` rounds), the
       clause matching its longest keyword, shortest clause first among equals (short clauses tend
       to carry one label), skipping near-duplicates of clauses already picked.
    2. The remaining slots: the clause nearest to each k-means centroid of the pool's features
       (``X``, or character 1-2-gram TF-IDF of a sample of at most ``max_sample`` clauses), so the
       first model sees the pool's main topics, not random noise.

    Parameters
    ----------
    texts : the unlabeled pool.
    labels : the label set.
    n : batch size.
    rng : the only source of randomness.
    keywords : label -> keywords; labels missing from it use :func:`label_keywords`.
    X : optional feature rows of ``texts`` (the cached pool features).

    Returns
    -------
    list[int]
        ``n`` distinct indices into ``texts``.
    """
    check_pool(len(texts), n)
    derived = label_keywords(labels)
    keywords = {label: tuple(keywords.get(label) or derived[label]) if keywords else derived[label]
                for label in labels}
    keys = [match_key(t) for t in texts]
    picked: list[int] = []
    seen_keys: set[str] = set()
    matches = {}
    for label in labels:
        hits = []
        for i, text in enumerate(texts):
            best = max((len(w) for w in keywords[label] if w in text), default=0)
            if best:
                hits.append((-best, len(text), rng.random(), i))
        matches[label] = [i for *_, i in sorted(hits)]
    order = sorted(labels, key=lambda label: len(matches[label]))
    for _ in range(per_label):
        for label in order:
            if len(picked) == n:
                break
            for i in matches[label]:
                if keys[i] not in seen_keys and not _near_duplicate(keys[i], [keys[j] for j in picked]):
                    picked.append(i)
                    seen_keys.add(keys[i])
                    break
    if len(picked) < n:
        picked += _kmeans_representatives(texts, keys, n - len(picked), picked, seen_keys, rng=rng,
                                          X=X, max_sample=max_sample)
    return picked[:n]


def _near_duplicate(key: str, others: list[str]) -> bool:
    if not others:
        return False
    rows, cols, _, _ = similar_pairs([key] + others)
    return bool(((rows == 0) | (cols == 0)).any())


def _kmeans_representatives(texts: Sequence[str], keys: list[str], k: int, picked: list[int],
                            seen_keys: set[str], *, rng: np.random.Generator, X=None,
                            max_sample: int = 20000) -> list[int]:
    """The clause nearest each of ``k`` k-means centroids of (a sample of) the pool, unpicked ones."""
    free = np.array([i for i in range(len(texts)) if keys[i] not in seen_keys and i not in set(picked)])
    if len(free) > max_sample:
        free = np.sort(rng.choice(free, max_sample, replace=False))
    if len(free) <= k:
        return list(free)
    if X is None:
        F = TfidfVectorizer(analyzer="char", ngram_range=(1, 2), sublinear_tf=True, min_df=2,
                            dtype=np.float32).fit_transform([texts[i] for i in free])
    else:
        F = X[free]
    # k-means on a 256-dimension random projection: cosine geometry kept, 100x faster than on
    # >100k sparse TF-IDF columns.
    seed = int(rng.integers(2**31 - 1))
    F = l2_normalize(F)
    if F.shape[1] > 256:
        F = SparseRandomProjection(256, dense_output=True, random_state=seed).fit_transform(F)
    km = KMeans(n_clusters=k, n_init=1, random_state=seed).fit(F)
    dist = km.transform(F)
    out: list[int] = []
    used = set()
    for c in np.argsort(np.bincount(km.labels_, minlength=k))[::-1]:  # biggest topics first
        for a in np.argsort(dist[:, c]):
            if a not in used and keys[free[a]] not in seen_keys:
                used.add(a)
                seen_keys.add(keys[free[a]])
                out.append(int(free[a]))
                break
    return out
