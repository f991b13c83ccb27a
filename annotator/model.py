"""The multi-label clause classifier: policy text features + one-vs-rest logistic regression,
with per-label Platt calibration and per-label thresholds learned from out-of-fold scores.

It always predicts at least one label (a clause of a policy document is about something), labels
with no positive or no negative example yet are listed in ``untrainable_labels_`` and predicted
with a constant probability, and column order always comes from ``labels`` (the label set), never
from the data.
"""
from __future__ import annotations

import logging

import numpy as np
import scipy.sparse as sp
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import KFold
from sklearn.utils.validation import check_is_fitted

from .errors import InputError
from .features import PolicyTextFeaturizer, check_documents

log = logging.getLogger(__name__)


def at_least_one(proba: np.ndarray, thresholds: np.ndarray | float) -> np.ndarray:
    """0/1 predictions: labels at or above their threshold, plus the top label of every row."""
    Y = (proba >= thresholds).astype(np.int8)
    if len(proba):
        Y[np.arange(len(proba)), proba.argmax(axis=1)] = 1
    return Y


class PolicyClassifier(ClassifierMixin, BaseEstimator):
    """Multi-label classifier over raw clause texts.

    Parameters
    ----------
    labels : the label set; columns of ``Y`` and of ``predict_proba`` follow it.
    C : inverse regularization strength of each per-label logistic regression.
    class_weight : passed to LogisticRegression (``"balanced"`` helps rare labels).
    threshold : ``"tuned"`` for per-label thresholds from out-of-fold predictions, or a float.
    cv : folds for calibration and threshold tuning (used when there are enough examples).
    featurizer : a transformer from texts to features (default: PolicyTextFeaturizer()).
    random_state : seeds the fold split.
    """

    def __init__(self, *, labels=(), C=4.0, class_weight="balanced", threshold="tuned", cv=3,
                 featurizer=None, random_state=0):
        self.labels = labels
        self.C = C
        self.class_weight = class_weight
        self.threshold = threshold
        self.cv = cv
        self.featurizer = featurizer
        self.random_state = random_state

    # Fitting -------------------------------------------------------------------------------
    def fit(self, X, Y):
        """Fit on raw texts ``X`` and a (n_samples, n_labels) 0/1 matrix ``Y``."""
        docs = check_documents(X)
        Y = self._check_Y(Y, len(docs))
        self.labels_ = np.array(self.labels, dtype=object)
        featurizer = self.featurizer if self.featurizer is not None else PolicyTextFeaturizer()
        self.featurizer_ = featurizer.fit(docs) if self.featurizer is not None else featurizer.fit(docs)
        features = self.featurizer_.transform(docs)
        return self.fit_features(features, Y)

    def fit_features(self, features: sp.spmatrix, Y):
        """Fit the per-label models on already computed features (the featurizer must be fitted)."""
        Y = self._check_Y(Y, features.shape[0])
        self.labels_ = np.array(self.labels, dtype=object)
        positives = Y.sum(axis=0)
        trainable = (positives > 0) & (positives < len(Y))
        self.untrainable_labels_ = tuple(self.labels_[~trainable])
        if self.untrainable_labels_:
            log.info("labels without positive or negative examples yet: %s",
                     ", ".join(self.untrainable_labels_))
        self.constant_proba_ = (positives == len(Y)).astype(float)
        self.trainable_ = np.flatnonzero(trainable)
        self.coef_ = np.zeros((len(self.labels_), features.shape[1]))
        self.intercept_ = np.zeros(len(self.labels_))
        for j in self.trainable_:
            model = self._new_lr().fit(features, Y[:, j])
            self.coef_[j], self.intercept_[j] = model.coef_[0], model.intercept_[0]
        self.calibration_ = np.tile([1.0, 0.0], (len(self.labels_), 1))  # proba = sigmoid(a*s + b)
        self.thresholds_ = np.full(len(self.labels_), 0.5)
        self._calibrate(features, Y)
        if self.threshold != "tuned":
            self.thresholds_[:] = float(self.threshold)
        self.n_train_ = len(Y)
        return self

    def _new_lr(self) -> LogisticRegression:
        return LogisticRegression(C=self.C, class_weight=self.class_weight, max_iter=2000,
                                  solver="liblinear")

    def _calibrate(self, features: sp.spmatrix, Y: np.ndarray) -> None:
        """Platt-scale each label on out-of-fold scores and pick its F1-best threshold."""
        if not len(self.trainable_) or len(Y) < 30:
            return
        n_folds = min(self.cv, int(Y[:, self.trainable_].sum(axis=0).min()))
        if n_folds < 2:
            return
        scores = np.zeros((len(Y), len(self.labels_)))
        folds = KFold(n_folds, shuffle=True, random_state=self.random_state)
        for train, test in folds.split(features):
            for j in self.trainable_:
                y = Y[train, j]
                if 0 < y.sum() < len(y):
                    scores[test, j] = self._new_lr().fit(features[train], y).decision_function(
                        features[test])
        for j in self.trainable_:
            platt = LogisticRegression(C=1e4).fit(scores[:, [j]], Y[:, j])
            a, b = platt.coef_[0, 0], platt.intercept_[0]
            if a <= 0:  # out-of-fold scores carry no signal: keep raw sigmoid
                continue
            self.calibration_[j] = a, b
            proba = _sigmoid(a * scores[:, j] + b)
            self.thresholds_[j] = _best_threshold(proba, Y[:, j])

    def _check_Y(self, Y, n: int) -> np.ndarray:
        Y = np.asarray(Y)
        if Y.ndim != 2 or Y.shape != (n, len(self.labels)):
            raise InputError(f"Y must have shape ({n}, {len(self.labels)}) (texts × labels), got {Y.shape}")
        if not np.isin(Y, (0, 1)).all():
            raise InputError("Y must contain only 0 and 1")
        return Y.astype(np.int8)

    # Prediction ----------------------------------------------------------------------------
    def decision_function_features(self, features: sp.spmatrix) -> np.ndarray:
        """Raw per-label scores for precomputed features (one sparse product)."""
        check_is_fitted(self, "coef_")
        return np.asarray(features @ self.coef_.T) + self.intercept_

    def predict_proba_features(self, features: sp.spmatrix) -> np.ndarray:
        """Calibrated per-label probabilities for precomputed features."""
        scores = self.decision_function_features(features)
        proba = _sigmoid(scores * self.calibration_[:, 0] + self.calibration_[:, 1])
        fixed = np.ones(len(self.labels_), dtype=bool)
        fixed[self.trainable_] = False
        proba[:, fixed] = self.constant_proba_[fixed]
        return proba

    def transform_texts(self, X) -> sp.csr_matrix:
        check_is_fitted(self, "featurizer_")
        return self.featurizer_.transform(check_documents(X))

    def predict_proba(self, X) -> np.ndarray:
        """(n_texts, n_labels) calibrated probabilities, columns in ``labels_`` order."""
        return self.predict_proba_features(self.transform_texts(X))

    def decide(self, proba: np.ndarray) -> np.ndarray:
        """0/1 label decisions from probabilities: at or above the label's threshold and at least
        half the row's top probability, plus the top label of every row."""
        check_is_fitted(self, "thresholds_")
        keep = (proba >= self.thresholds_) & (proba >= 0.5 * proba.max(axis=1, keepdims=True))
        Y = keep.astype(np.int8)
        if len(proba):
            Y[np.arange(len(proba)), proba.argmax(axis=1)] = 1
        return Y

    def predict(self, X) -> np.ndarray:
        """(n_texts, n_labels) 0/1 predictions with at least one label per text."""
        return self.decide(self.predict_proba(X))

    def predict_labels(self, X) -> list[tuple[str, ...]]:
        """Predicted label names per text."""
        return [tuple(self.labels_[row.astype(bool)]) for row in self.predict(X)]


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(z, -40, 40)))


def _best_threshold(proba: np.ndarray, y: np.ndarray, grid=np.linspace(0.2, 0.8, 13)) -> float:
    """The threshold on ``grid`` with the best F1 (ties: closest to 0.5)."""
    best, best_f1 = 0.5, -1.0
    for t in sorted(grid, key=lambda t: abs(t - 0.5)):
        pred = proba >= t
        tp = float((pred & (y == 1)).sum())
        f1 = 2 * tp / (pred.sum() + y.sum()) if (pred.sum() + y.sum()) else 0.0
        if f1 > best_f1 + 1e-9:
            best, best_f1 = float(t), f1
    return best
