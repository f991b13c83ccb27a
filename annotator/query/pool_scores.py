"""What a fitted model says about each pool clause: the estimator query strategies see
(:class:`FeatureClassifier`, over cached features), the uncertainty scores they rank by (higher =
ask first), and the pool checks and tie-breaking every strategy shares."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from modAL.models import ActiveLearner, Committee
from sklearn.base import BaseEstimator, clone
from sklearn.utils.validation import check_is_fitted

from ..errors import EmptyPoolError, InputError, PoolExhaustedError
from ..model.classifier import at_least_one, logit

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
            f"{n_pool} unlabeled segments left, {n} requested; lower --batch-size or ingest more documents"
        )


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
    """A :class:`~annotator.model.classifier.PolicyClassifier` over precomputed features, as modAL expects it.

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

    def fit(self, X, Y, groups=None, unlabeled=None) -> FeatureClassifier:
        """Fit a clone of ``model`` on feature rows; ``groups`` (near-duplicate group per row) is
        passed on for the model's calibration folds, ``unlabeled`` (feature rows of the pool) for
        its self-training. The committee members use neither."""
        if self.model is None:
            raise InputError("FeatureClassifier needs a model, e.g. PolicyClassifier(labels=...)")
        Y = np.asarray(Y)
        self.model_ = clone(self.model).fit_features(
            X, Y, groups=None if groups is None else np.asarray(groups), unlabeled=unlabeled
        )
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


def _outputs(est: FeatureClassifier, X_pool) -> _Outputs:
    proba = est.predict_proba(X_pool)
    margin = logit(proba) - logit(est.thresholds_)
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
