"""The multi-label clause classifier: policy text features + one-vs-rest logistic regression on
naive-Bayes-weighted features, with per-label Platt calibration and per-label thresholds learned
from out-of-sample scores.

How a fit goes (every step measured with ``bench/model_quality.py``, see docs/benchmarks.md):

1. **Per-label NB-LR.** For each label the features are scaled by ``sign(r)·|r|**nb_power``, where
   ``r`` is the label's naive-Bayes log-count ratio (Wang & Manning 2012), and a class-balanced
   logistic regression is fitted on them (liblinear's dual solver: ~10x faster than the primal
   when features outnumber clauses). The scaling is folded into ``coef_``, so prediction is one
   sparse product. With ``n_jobs > 1`` labels are fitted in worker processes.
2. **Out-of-sample scores** for calibration, without refitting (``cv="loo"``, the default): each
   clause's score by the model fitted without it and its near-duplicates, one Newton step from
   the fitted weights (:mod:`annotator.model.loo`). ``cv=K`` instead refits on ``K`` group folds (K
   more fits per label; the same macro-F1 in the simulator and on the seed file, see
   docs/benchmarks.md). Near-duplicates (a clause and its truncated copy) are left out together,
   otherwise the scores, and so the thresholds, would be over-confident.
3. **Platt scaling** per label on those scores: ``proba = sigmoid(a·score + b)``; a label with
   fewer than 3 positives uses one scaling fitted on all labels' scores.
4. **The decision rule** (:meth:`PolicyClassifier.decide`): a label is predicted when its
   probability reaches its threshold *and* ``relative`` times the clause's top probability; the
   top label is always predicted (a clause of a policy document is about something). Thresholds
   are tuned per label for F1 under that whole rule on the out-of-sample probabilities, then
   shrunk halfway toward the best shared threshold (per-label optima are noisy for rare labels).

5. **Self-training on the pool** (when ``fit`` gets ``unlabeled`` clauses and ``self_training > 0``):
   after the fit above, the unlabeled clauses whose every label is furthest from its threshold (in
   logit) get the model's own decisions as labels -- as many as there are labeled clauses, at most
   ``self_training`` -- and the per-label models are refitted on both. Calibration and thresholds
   still read only the real labels (their leave-group-out scores under the refitted model).
   Uncertainty sampling asks for the clauses near the boundary; the confident ones it never asks
   for come back this way (Wang et al. 2016, "cost-effective active learning"). Measured in
   docs/benchmarks.md ("Self-training on the pool").

Before all this, near-duplicate clauses pool their labels (``merge_duplicate_labels``): the seed
file gives a clause and its truncated copy different single labels (each the label it was collected
for), so each copy is taught both; the figures that tune thresholds use the pooled labels too.

Labels with no positive or no negative example yet are listed in ``untrainable_labels_`` and get a
constant probability (0 or 1); column order always comes from ``labels`` (the label set), never
from the data.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from joblib import Parallel, delayed
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GroupKFold
from sklearn.utils.validation import check_is_fitted
from threadpoolctl import threadpool_limits

from .calibration import fit_platt
from .loo import LeaveGroupOut
from ..text.near_duplicates import near_duplicate_groups
from ..errors import InputError
from .features import PolicyTextFeaturizer, check_documents

log = logging.getLogger(__name__)

# Fewer labeled clauses: no calibration (raw sigmoid scores, threshold 0.5). Mean macro-F1 of 4
# random training sets of the simulator's pool (leave-group-out / 3 folds / none): 20 clauses
# 0.049 / 0.073 / 0.071, 30: 0.076 / 0.052 / 0.080, 50: 0.117 / 0.089 / 0.109, 100: 0.263 / 0.247 /
# 0.228, 150: 0.352 / 0.316 / 0.288. Fold refits were measured earlier to cost macro-F1 up to ~100
# clauses on other draws.
MIN_CALIBRATION_ROWS = 120  # with cv = K folds
MIN_LOO_CALIBRATION_ROWS = 40  # with cv = "loo"
MIN_PLATT_POSITIVES = 3  # positives (and negatives) for a label's own Platt fit
MIN_TUNING_POSITIVES = 5  # fewer: the label uses the shared threshold instead of its own
THRESHOLD_SHRINKAGE = 0.5  # weight of the shared threshold in each label's tuned one
# Self-training: no pseudo-labels below this many labeled clauses (the first models are too weak to
# teach), and at most this many unlabeled clauses scored for them (a random subsample of a larger pool).
MIN_SELF_TRAINING_ROWS = 100
MAX_SELF_TRAINING_CANDIDATES = 20_000
THRESHOLD_GRID = np.round(np.linspace(0.1, 0.9, 33), 3)
NB_SMOOTHING = 1.0  # additive smoothing of the naive-Bayes feature counts
# liblinear's stopping tolerance. At 2,000 clauses, 1e-2 stops after 14 passes on average instead
# of 21 (1e-3) or 27 (the default 1e-4): scores within 0.001 of 1e-4's, the same top label for
# every test clause (docs/benchmarks.md, "Active learning"), ~30% less time per fit.
LIBLINEAR_TOL = 1e-2


def at_least_one(proba: np.ndarray, thresholds: np.ndarray | float, *, relative: float = 0.0) -> np.ndarray:
    """0/1 predictions: labels at or above their threshold, plus the top label of every row.

    Parameters
    ----------
    proba : (n, n_labels) probabilities.
    thresholds : one threshold per label (or one for all).
    relative : also require ``proba >= relative * (the row's top probability)``; 0 disables it.

    Returns
    -------
    ndarray of int8, shape (n, n_labels), at least one 1 per row.

    Examples
    --------
    >>> at_least_one(np.array([[0.2, 0.3], [0.9, 0.6]]), 0.5).tolist()
    [[0, 1], [1, 1]]
    >>> at_least_one(np.array([[0.9, 0.6]]), 0.5, relative=0.7).tolist()
    [[1, 0]]
    """
    proba = np.asarray(proba)
    keep = proba >= thresholds
    if relative and proba.size:
        keep &= proba >= relative * proba.max(axis=1, keepdims=True)
    Y = keep.astype(np.int8)
    if len(proba):
        Y[np.arange(len(proba)), proba.argmax(axis=1)] = 1
    return Y


class PolicyClassifier(ClassifierMixin, BaseEstimator):
    """Multi-label classifier over raw clause texts.

    Parameters
    ----------
    labels : the label set; columns of ``Y`` and of ``predict_proba`` follow it.
    C : inverse regularization strength of each per-label logistic regression.
    nb_power : exponent of the naive-Bayes feature weights ``sign(r)·|r|**nb_power``; 0 gives
        plain logistic regression on the TF-IDF features, 1 the original NB-SVM weighting.
    class_weight : passed to LogisticRegression (``"balanced"`` helps rare labels).
    threshold : ``"tuned"`` for per-label thresholds from out-of-sample predictions, or a float.
    relative : a label is predicted only if its probability is at least this share of the
        clause's top probability (0 disables the rule).
    cv : how calibration and threshold tuning get out-of-sample scores: ``"loo"``, approximate
        leave-group-out scores of the fitted model (no refit); an int >= 2, that many group-fold
        refits; 0 or 1, no calibration (raw sigmoid scores, threshold 0.5 unless ``threshold`` is
        a float).
    featurizer : an unfitted transformer from texts to features, cloned by ``fit`` (default:
        ``PolicyTextFeaturizer()``).
    n_jobs : worker processes fitting the per-label models (1: in this process). Results are
        identical for every value.
    random_state : seeds the fold split and liblinear's coordinate order.
    merge_duplicate_labels : train every clause on the union of the label sets of its group
        (``groups`` of :meth:`fit`: near-duplicates; of :meth:`fit_features`: identical rows).
    self_training : at most this many unlabeled clauses (and never more than the labeled ones)
        are added with the model's own, most confident decisions when ``fit`` is given
        ``unlabeled`` clauses; 0 disables self-training. The default, 1,000, keeps a refit at
        2,000 labels under a second (docs/benchmarks.md, "Step time").

    Attributes
    ----------
    labels_ : ndarray of str, the label set.
    featurizer_ : the fitted featurizer (``fit`` sets it; callers of ``fit_features`` may set it).
    coef_, intercept_ : (n_labels, n_features) and (n_labels,) raw score weights (NB scaling folded in).
    calibration_ : (n_labels, 2) Platt ``(a, b)`` per label.
    thresholds_ : (n_labels,) decision thresholds on the calibrated probabilities.
    untrainable_labels_ : tuple of labels with no positive or no negative training example.
    n_train_ : number of (really) labeled training clauses.
    n_self_trained_ : number of unlabeled clauses added with the model's own labels (0 without
        self-training).

    Examples
    --------
    >>> model = PolicyClassifier(labels=("财政支持", "税收激励")).fit(texts, Y)  # doctest: +SKIP
    >>> model.predict_labels(["对符合条件的企业给予最高100万元补助。"])          # doctest: +SKIP
    [('财政支持',)]
    """

    def __init__(
        self,
        *,
        labels=(),
        C=1.0,
        nb_power=0.5,
        class_weight="balanced",
        threshold="tuned",
        relative=0.5,
        cv="loo",
        featurizer=None,
        n_jobs=1,
        random_state=0,
        merge_duplicate_labels=True,
        self_training=1000,
    ):
        self.labels = labels
        self.C = C
        self.nb_power = nb_power
        self.class_weight = class_weight
        self.threshold = threshold
        self.relative = relative
        self.cv = cv
        self.featurizer = featurizer
        self.n_jobs = n_jobs
        self.random_state = random_state
        self.merge_duplicate_labels = merge_duplicate_labels
        self.self_training = self_training

    # Fitting -------------------------------------------------------------------------------
    def fit(self, X, Y, groups=None, unlabeled=None) -> PolicyClassifier:
        """Fit the featurizer and the per-label models on raw texts.

        Parameters
        ----------
        X : sequence of str, the clause texts.
        Y : (n_texts, n_labels) 0/1 matrix, columns in ``labels`` order.
        groups : optional group id per text for the calibration folds; by default near-duplicate
            texts (same 3-shingles up to punctuation, or one inside the other) share a group.
        unlabeled : optional sequence of str, clauses without labels, for self-training (see
            ``self_training``). The featurizer is fitted on ``X`` only.

        Raises
        ------
        InputError
            If a text is not a str, ``labels`` is empty or ``Y`` has the wrong shape or values.
        """
        docs = check_documents(X)
        Y = self._check_Y(Y, len(docs))
        featurizer = clone(self.featurizer) if self.featurizer is not None else PolicyTextFeaturizer()
        features = featurizer.fit_transform(docs)
        self.featurizer_ = featurizer
        if groups is None and (self._calibrates(len(docs)) or self.merge_duplicate_labels):
            groups = near_duplicate_groups(docs)
        pool = None if unlabeled is None else featurizer.transform(check_documents(unlabeled))
        return self.fit_features(features, Y, groups=groups, unlabeled=pool)

    def fit_features(self, features: sp.spmatrix, Y, groups=None, unlabeled=None) -> PolicyClassifier:
        """Fit the per-label models on already computed features (the featurizer must be fitted).

        ``groups`` as in :meth:`fit`; by default identical feature rows (e.g. the repeats of a
        bootstrap sample) share a group. ``unlabeled``: feature rows of clauses without labels,
        for self-training; rows identical to a labeled one are never used.
        """
        # One BLAS thread: the products here are small, and on a busy 2-core machine OpenBLAS's
        # threads spin against each other (the Platt fits ran 6x slower under load).
        with threadpool_limits(limits=1, user_api="blas"):
            features = sp.csr_matrix(features)
            Y, groups = self._fit_features(features, Y, groups)
            if unlabeled is not None:
                self._self_train(features, Y, groups, unlabeled)
            return self

    def _fit_features(self, features: sp.csr_matrix, Y, groups) -> tuple[np.ndarray, np.ndarray | None]:
        """The fit on labeled rows; returns the labels it trained on (merged over ``groups``) and
        the groups it used."""
        self.n_self_trained_ = 0
        Y = self._check_Y(Y, features.shape[0])
        if groups is not None and len(groups) != len(Y):
            raise InputError(f"groups has {len(groups)} entries but there are {len(Y)} texts: one group id per text")
        if groups is None and (self._calibrates(len(Y)) or self.merge_duplicate_labels):
            groups = _identical_rows(features)
        if self.merge_duplicate_labels:
            Y = merge_group_labels(Y, np.asarray(groups))
        self.labels_ = np.array(self.labels, dtype=object)
        positives = Y.sum(axis=0)
        trainable = (positives > 0) & (positives < len(Y))
        self.untrainable_labels_ = tuple(self.labels_[~trainable])
        if self.untrainable_labels_:
            log.info("labels without positive or negative examples yet: %s", ", ".join(self.untrainable_labels_))
        self.constant_proba_ = (positives == len(Y)).astype(float)
        self.trainable_ = np.flatnonzero(trainable)
        self._fit_and_calibrate(features, Y, groups)
        self.n_train_ = len(Y)
        return Y, groups

    def _fit_and_calibrate(
        self, features: sp.csr_matrix, Y: np.ndarray, groups: np.ndarray | None, n_labeled: int | None = None
    ) -> None:
        """The per-label models on all rows (labels outside ``trainable_`` stay constant), then
        calibration and thresholds from the first ``n_labeled`` rows' out-of-sample scores (all
        rows by default; self-training's pseudo-labeled rows come after them)."""
        coef, self.intercept_, nb_weights = self._fit_linear(features, Y)
        fixed = np.ones(len(self.labels_), dtype=bool)
        fixed[self.trainable_] = False
        coef[fixed], self.intercept_[fixed] = 0.0, 0.0
        # Stored column-major: ``coef_.T`` is then a C-contiguous (n_features, n_labels) array, so
        # scoring ``features @ coef_.T`` reads each feature's 27 weights from one cache line
        # (1M pool clauses re-score in 17 s instead of 28 s, bench/pool_scoring.py).
        self.coef_ = np.asfortranarray(coef)
        self.calibration_ = np.tile([1.0, 0.0], (len(self.labels_), 1))  # proba = sigmoid(a*s + b)
        self.thresholds_ = np.full(len(self.labels_), 0.5)
        if self._calibrates(len(Y) if n_labeled is None else n_labeled) and len(self.trainable_):
            self._calibrate(features, Y, np.asarray(groups), nb_weights, n_labeled=n_labeled)
        if self.threshold != "tuned":
            self.thresholds_[:] = float(self.threshold)

    def _self_train(self, features: sp.csr_matrix, Y: np.ndarray, groups: np.ndarray | None, unlabeled) -> None:
        """Refit on the labeled rows plus the most confident unlabeled rows, labeled by the fitted
        model's own decisions; calibration and thresholds from the labeled rows' scores only."""
        n = len(Y)
        k = min(n, int(self.self_training or 0))
        if k < 1 or n < MIN_SELF_TRAINING_ROWS or not len(self.trainable_) or not unlabeled.shape[0]:
            return
        pool = sp.csr_matrix(unlabeled, dtype=features.dtype)
        if pool.shape[1] != features.shape[1]:
            raise InputError(
                f"unlabeled has {pool.shape[1]} feature columns but the labeled rows have {features.shape[1]}: "
                "use the same fitted featurizer for both"
            )
        rows = np.arange(pool.shape[0])
        if len(rows) > MAX_SELF_TRAINING_CANDIDATES:
            rows = np.sort(
                np.random.default_rng(self.random_state).choice(len(rows), MAX_SELF_TRAINING_CANDIDATES, replace=False)
            )
        candidates = pool[rows]
        proba = self.predict_proba_features(candidates)
        decisions = self.decide(proba)
        confidence = np.abs(logit(proba[:, self.trainable_]) - logit(self.thresholds_[self.trainable_])).min(axis=1)
        # A clause already labeled (an identical feature row) keeps its real labels only.
        ids = _identical_rows(sp.vstack([features, candidates], format="csr"))
        confidence[np.isin(ids[n:], ids[:n])] = -np.inf
        k = min(k, int(np.isfinite(confidence).sum()))
        if k < 1:
            return
        chosen = np.argsort(-confidence, kind="stable")[:k]
        X2 = sp.vstack([features, candidates[chosen]], format="csr")
        Y2 = np.vstack([Y, decisions[chosen].astype(np.int8)])
        groups = _identical_rows(features) if groups is None else np.unique(np.asarray(groups), return_inverse=True)[1]
        groups2 = np.concatenate([groups, groups.max(initial=-1) + 1 + np.arange(k)])
        self._fit_and_calibrate(X2, Y2, groups2, n_labeled=n)  # labels without real positives stay constant
        self.n_self_trained_ = k
        log.info("self-training: %d unlabeled clauses added with the model's own labels", k)

    def _calibrates(self, n: int) -> bool:
        if self.cv is None:
            return False
        if self.cv == "loo":
            return n >= MIN_LOO_CALIBRATION_ROWS
        if isinstance(self.cv, str):
            raise InputError(f"cv must be 'loo', a number of folds, or 0 for no calibration; got {self.cv!r}")
        return self.cv >= 2 and n >= MIN_CALIBRATION_ROWS

    def _fit_linear(self, features: sp.csr_matrix, Y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per-label NB-LR ``(coef, intercept, nb_weights)``: zeros for labels without both classes;
        ``nb_weights`` is (n_features, n_labels), the scaling each label's ``coef`` has folded in."""
        n_labels = Y.shape[1]
        coef = np.zeros((n_labels, features.shape[1]), dtype=np.float32)
        intercept = np.zeros(n_labels)
        weights = np.zeros((features.shape[1], n_labels), dtype=np.float32)
        todo = [j for j in range(n_labels) if 0 < Y[:, j].sum() < len(Y)]
        if not todo:
            return coef, intercept, weights
        weights[:, todo] = self._nb_weights(features, Y[:, todo])
        # liblinear takes float64: one conversion here instead of a copy inside every label's fit.
        features = features.astype(np.float64, copy=False)
        params = dict(C=self.C, class_weight=self.class_weight, random_state=self.random_state)
        jobs = (delayed(_fit_label)(features, Y[:, j], weights[:, j], **params) for j in todo)
        if self.n_jobs in (None, 1):
            fitted = [function(*args, **kwargs) for function, args, kwargs in jobs]
        else:
            # Processes, not threads: liblinear seeds one process-wide random generator per fit,
            # so concurrent fits in threads would draw from it in a racy order (not reproducible).
            fitted = Parallel(n_jobs=self.n_jobs)(jobs)
        for j, (w, b) in zip(todo, fitted):
            coef[j], intercept[j] = w, b
        return coef, intercept, weights

    def _nb_weights(self, features: sp.csr_matrix, Y: np.ndarray) -> np.ndarray:
        """(n_features, n_labels) naive-Bayes weights ``sign(r)|r|**nb_power`` over binary presence."""
        if not self.nb_power:
            return np.ones((features.shape[1], Y.shape[1]), dtype=np.float32)
        present = features.copy()
        present.data[:] = 1.0
        pos = np.asarray(present.T @ Y.astype(np.float32))
        neg = np.asarray(present.sum(axis=0)).T - pos
        p = pos + NB_SMOOTHING
        q = neg + NB_SMOOTHING
        r = np.log(p / p.sum(axis=0)) - np.log(q / q.sum(axis=0))
        return (np.sign(r) * np.abs(r) ** self.nb_power).astype(np.float32)

    def _calibrate(
        self,
        features: sp.csr_matrix,
        Y: np.ndarray,
        groups: np.ndarray,
        nb_weights: np.ndarray,
        n_labeled: int | None = None,
    ) -> None:
        """Platt-scale each label on out-of-sample scores and tune the decision thresholds.

        ``n_labeled``: only the first rows are really labeled (the rest are self-training's); the
        scores come from the model fitted on all rows, the scaling and thresholds from these."""
        if self.cv == "loo":
            scores = self._leave_group_out_scores(features, Y, groups, nb_weights)
        elif len(np.unique(groups)) < self.cv:
            return
        else:
            scores = self._out_of_fold_scores(features, Y, groups)
        if n_labeled is not None:
            scores, Y = scores[:n_labeled], Y[:n_labeled]
        # Labels with too few positives for their own Platt fit (early in active
        # learning, most of them) share one fitted on every label's scores pooled: left on the raw
        # sigmoid of a class-balanced model, they would outrank the calibrated labels everywhere.
        shared = _platt(scores[:, self.trainable_].ravel(), Y[:, self.trainable_].ravel())
        for j in self.trainable_:
            own = _platt(scores[:, j], Y[:, j], min_each=MIN_PLATT_POSITIVES)
            calibration = own if own is not None else shared
            if calibration is not None:
                self.calibration_[j] = calibration
        # A label a fold could not fit is, for that fold, a label the model never predicts.
        proba = self._calibrated(np.nan_to_num(scores, nan=-40.0))
        fixed = ~np.isin(np.arange(Y.shape[1]), self.trainable_)
        proba[:, fixed] = self.constant_proba_[fixed]
        self.thresholds_ = tune_thresholds(proba, Y, relative=self.relative, trainable=self.trainable_)

    def _leave_group_out_scores(
        self, features: sp.csr_matrix, Y: np.ndarray, groups: np.ndarray, nb_weights: np.ndarray
    ) -> np.ndarray:
        """Each clause's score by the final model with its group left out, one Newton step away
        (:mod:`annotator.model.loo`): no refit."""
        scores = np.full(Y.shape, np.nan)
        j = self.trainable_
        scores[:, j] = LeaveGroupOut(features, groups).scores(
            Y[:, j], nb_weights[:, j], self.coef_[j], self.intercept_[j], C=self.C, class_weight=self.class_weight
        )
        return scores

    def _out_of_fold_scores(self, features: sp.csr_matrix, Y: np.ndarray, groups: np.ndarray) -> np.ndarray:
        """Scores of ``cv`` group folds, each clause scored by the fold model not trained on it."""
        scores = np.full(Y.shape, np.nan)
        folds = GroupKFold(self.cv, shuffle=True, random_state=self.random_state)
        for train, test in folds.split(features, groups=groups):
            coef, intercept, _ = self._fit_linear(features[train], Y[train])
            fitted = (Y[train].sum(axis=0) > 0) & (Y[train].sum(axis=0) < len(train))
            scores[np.ix_(test, np.flatnonzero(fitted))] = features[test] @ coef[fitted].T + intercept[fitted]
        return scores

    def _check_Y(self, Y, n: int) -> np.ndarray:
        n_labels = len(self.labels)
        if not n_labels:
            raise InputError(
                "PolicyClassifier has no labels; pass the label set, e.g. "
                "PolicyClassifier(labels=load_label_config().labels)"
            )
        if len(set(self.labels)) != n_labels:
            raise InputError(
                "labels contains a label twice: "
                f"{', '.join(sorted({l for l in self.labels if list(self.labels).count(l) > 1}))}"
            )
        Y = np.asarray(Y)
        if Y.ndim != 2:
            raise InputError(
                f"Y must be a 2-D (texts × labels) 0/1 matrix, got {Y.ndim}-D shape {Y.shape}; "
                "build it with annotator.model.training.label_matrix(examples, labels)"
            )
        if Y.shape[0] != n:
            raise InputError(f"Y has {Y.shape[0]} rows but there are {n} texts: one row per text")
        if Y.shape[1] != n_labels:
            raise InputError(
                f"Y has {Y.shape[1]} columns but the label set has {n_labels} labels "
                f"({', '.join(map(str, self.labels[:5]))}{', …' if n_labels > 5 else ''}): "
                "one column per label, in label-set order"
            )
        bad = np.argwhere(~np.isin(Y, (0, 1)))
        if len(bad):
            i, j = bad[0]
            raise InputError(
                f"Y must contain only 0 and 1; Y[{i}, {j}] is {Y[i, j].item()!r} (text {i}, label {self.labels[j]})"
            )
        return Y.astype(np.int8)

    # Prediction ----------------------------------------------------------------------------
    def decision_function_features(self, features: sp.spmatrix) -> np.ndarray:
        """Raw per-label scores for precomputed features (one sparse product)."""
        check_is_fitted(self, "coef_")
        return np.asarray(features @ self.coef_.T, dtype=np.float64) + self.intercept_

    def _calibrated(self, scores: np.ndarray) -> np.ndarray:
        return _sigmoid(scores * self.calibration_[:, 0] + self.calibration_[:, 1])

    def predict_proba_features(self, features: sp.spmatrix) -> np.ndarray:
        """Calibrated per-label probabilities for precomputed features."""
        proba = self._calibrated(self.decision_function_features(features))
        fixed = np.ones(len(self.labels_), dtype=bool)
        fixed[self.trainable_] = False
        proba[:, fixed] = self.constant_proba_[fixed]
        return proba

    def transform_texts(self, X) -> sp.csr_matrix:
        """Features of raw texts from the fitted featurizer."""
        check_is_fitted(self, "featurizer_")
        return self.featurizer_.transform(check_documents(X))

    def predict_proba(self, X) -> np.ndarray:
        """(n_texts, n_labels) calibrated probabilities, columns in ``labels_`` order."""
        return self.predict_proba_features(self.transform_texts(X))

    def decide(self, proba: np.ndarray) -> np.ndarray:
        """0/1 decisions from probabilities: the thresholds, the relative rule, the top label."""
        check_is_fitted(self, "thresholds_")
        return at_least_one(proba, self.thresholds_, relative=self.relative)

    def predictions(self, proba: np.ndarray) -> list[LabelPrediction]:
        """The one rule from probabilities to what users see: the decided labels of each row, in
        label-set order, and their confidence (the lowest probability among them).

        ``/predict``, the pre-fills pushed to Label Studio and ``annotator predict`` all use it.
        """
        chosen = self.decide(proba).astype(bool)
        return [
            LabelPrediction(tuple(self.labels_[row]), round(float(p[row].min()), 4)) for p, row in zip(proba, chosen)
        ]

    def predict(self, X) -> np.ndarray:
        """(n_texts, n_labels) 0/1 predictions with at least one label per text."""
        return self.decide(self.predict_proba(X))

    def predict_labels(self, X) -> list[tuple[str, ...]]:
        """Predicted label names per text."""
        return [tuple(self.labels_[row.astype(bool)]) for row in self.predict(X)]


@dataclass(frozen=True)
class LabelPrediction:
    """The labels the model decides for one clause, and its confidence in them."""

    labels: tuple[str, ...]
    confidence: float


def merge_group_labels(Y: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """Each row's labels replaced by the union of the labels of its group.

    Examples
    --------
    >>> merge_group_labels(np.array([[1, 0], [0, 1], [0, 1]]), np.array([0, 0, 1])).tolist()
    [[1, 1], [1, 1], [0, 1]]
    """
    if not len(Y):
        return Y
    _, inverse = np.unique(groups, return_inverse=True)
    pooled = np.zeros((inverse.max() + 1, Y.shape[1]), dtype=Y.dtype)
    np.maximum.at(pooled, inverse, Y)
    return pooled[inverse]


def tune_thresholds(
    proba: np.ndarray,
    Y: np.ndarray,
    *,
    relative: float = 0.0,
    trainable: Sequence[int] | np.ndarray | None = None,
    grid: np.ndarray = THRESHOLD_GRID,
    shrinkage: float = THRESHOLD_SHRINKAGE,
) -> np.ndarray:
    """Per-label thresholds that maximize F1 under the full decision rule of :func:`at_least_one`.

    The top label of a row is predicted whatever its threshold, so each label's F1 is computed
    with it included; the relative rule does not depend on thresholds, so labels are tuned
    independently. The shared threshold maximizes the mean F1 over labels; a label's own optimum
    is shrunk toward it by ``shrinkage`` (and replaced by it when the label has fewer than
    ``MIN_TUNING_POSITIVES`` positives).
    """
    n_labels = Y.shape[1]
    tuned = np.arange(n_labels) if trainable is None else np.asarray(trainable, dtype=int)
    thresholds = np.full(n_labels, 0.5)
    if not len(tuned):
        return thresholds
    top = np.zeros(proba.shape, dtype=bool)
    top[np.arange(len(proba)), proba.argmax(axis=1)] = True
    allowed = proba >= relative * proba.max(axis=1, keepdims=True) if relative else np.ones_like(top)
    f1 = np.zeros((len(tuned), len(grid)))
    for k, j in enumerate(tuned):
        y = Y[:, j].astype(bool)
        pred = top[:, j, None] | ((proba[:, j, None] >= grid) & allowed[:, j, None])
        tp = (pred & y[:, None]).sum(axis=0)
        f1[k] = 2 * tp / np.maximum(1, pred.sum(axis=0) + y.sum())
    shared = grid[_argmax_near_middle(f1.mean(axis=0), grid)]
    for k, j in enumerate(tuned):
        if Y[:, j].sum() < MIN_TUNING_POSITIVES:
            thresholds[j] = shared
        else:
            own = grid[_argmax_near_middle(f1[k], grid)]
            thresholds[j] = shrinkage * shared + (1 - shrinkage) * own
    return thresholds


def _argmax_near_middle(values: np.ndarray, grid: np.ndarray) -> int:
    """Index of the largest value; ties go to the grid point closest to 0.5."""
    best = np.flatnonzero(values >= values.max() - 1e-12)
    return int(best[np.argmin(np.abs(grid[best] - 0.5))])


def _platt(scores: np.ndarray, y: np.ndarray, *, min_each: int = 1) -> tuple[float, float] | None:
    """Platt ``(a, b)`` for ``proba = sigmoid(a*score + b)`` over the non-NaN scores, or None when
    either class has fewer than ``min_each`` rows or the scores carry no signal (``a <= 0``)."""
    seen = ~np.isnan(scores)
    y = y[seen]
    if min(y.sum(), len(y) - y.sum()) < min_each:
        return None
    # Newton's method on the same objective as LogisticRegression(C=1e4): ~50x faster, and the
    # live loop recalibrates every label at every retrain.
    a, b = fit_platt(scores[seen], y)
    return (a, b) if a > 0 else None


def _fit_label(
    features: sp.csr_matrix, y: np.ndarray, weights: np.ndarray, *, C: float, class_weight, random_state
) -> tuple[np.ndarray, float]:
    """One label's logistic regression on NB-weighted features; the weights folded into its coef."""
    # A new data array over the same index arrays: copying the whole matrix per label cost ~20% of a fit.
    scaled = sp.csr_matrix(
        (features.data * weights[features.indices], features.indices, features.indptr), shape=features.shape
    )
    model = LogisticRegression(
        C=C,
        class_weight=class_weight,
        solver="liblinear",
        dual=True,
        tol=LIBLINEAR_TOL,
        max_iter=5000,
        random_state=random_state,
    )
    model.fit(scaled, y)
    return model.coef_[0] * weights, float(model.intercept_[0])


def _identical_rows(features: sp.csr_matrix) -> np.ndarray:
    """A group id per row; identical rows share one."""
    ids: dict[bytes, int] = {}
    out = np.empty(features.shape[0], dtype=np.int64)
    for i in range(features.shape[0]):
        start, end = features.indptr[i], features.indptr[i + 1]
        key = hashlib.sha1(features.indices[start:end].tobytes() + features.data[start:end].tobytes()).digest()
        out[i] = ids.setdefault(key, len(ids))
    return out


def logit(p: np.ndarray) -> np.ndarray:
    """log(p / (1 - p)), with ``p`` clipped to [1e-6, 1 - 1e-6]: the scale on which a probability's
    distance from its threshold is measured (self-training's confidence, the strategies' margins)."""
    p = np.clip(p, 1e-6, 1 - 1e-6)
    return np.log(p) - np.log1p(-p)


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(z, -40, 40)))
