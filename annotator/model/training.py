"""Training and evaluation: from examples to a fitted PolicyClassifier with honest metrics.

Metrics are computed on a held-out slice that keeps near-duplicate clauses on one side of the
split (a truncated copy of a training clause in the test slice would inflate every figure).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from sklearn.metrics import accuracy_score, f1_score
from sklearn.model_selection import GroupShuffleSplit

from ..text.near_duplicates import near_duplicate_groups
from ..errors import InputError
from .classifier import PolicyClassifier
from ..types import Example

log = logging.getLogger(__name__)


def label_matrix(examples: Sequence[Example], labels: Sequence[str]) -> np.ndarray:
    """(n_examples, n_labels) 0/1 matrix, columns in label-set order."""
    index = {label: j for j, label in enumerate(labels)}
    Y = np.zeros((len(examples), len(labels)), dtype=np.int8)
    for i, example in enumerate(examples):
        for label in example.labels:
            Y[i, index[label]] = 1
    return Y


def metrics(Y_true: np.ndarray, Y_pred: np.ndarray, labels: Sequence[str]) -> dict:
    """The evaluation figures of the CLI contract: n, micro/macro/samples F1, subset accuracy, per label."""
    per_label = f1_score(Y_true, Y_pred, average=None, zero_division=0)
    support = Y_true.sum(axis=0)
    present = support > 0
    return {
        "n": int(len(Y_true)),
        "micro_f1": float(f1_score(Y_true, Y_pred, average="micro", zero_division=0)),
        # Labels absent from the evaluated slice would count as 0 and say nothing about the model.
        "macro_f1": float(per_label[present].mean()) if present.any() else 0.0,
        "samples_f1": float(f1_score(Y_true, Y_pred, average="samples", zero_division=0)),
        "subset_accuracy": float(accuracy_score(Y_true, Y_pred)),
        "per_label": {label: {"f1": float(f), "support": int(s)} for label, f, s in zip(labels, per_label, support)},
    }


@dataclass
class TrainResult:
    """A fitted model, what it was trained on, and its held-out metrics."""

    model: PolicyClassifier
    n_train: int
    metrics: dict
    seconds: float
    groups: np.ndarray  # near-duplicate group of each example (reusable by the caller)


def holdout_split(
    texts: Sequence[str], test_size: float, seed: int, groups: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Train/test indices with near-duplicate groups (computed from ``texts`` unless given) kept whole."""
    groups = near_duplicate_groups(texts) if groups is None else groups
    splitter = GroupShuffleSplit(n_splits=1, test_size=test_size, random_state=seed)
    return next(splitter.split(np.zeros(len(texts)), groups=groups))


def train_model(
    examples: Sequence[Example],
    labels: Sequence[str],
    *,
    holdout: float = 0.15,
    refit: bool = True,
    seed: int = 0,
    featurizer=None,
    features=None,
    groups=None,
    unlabeled=None,
    **model_params,
) -> TrainResult:
    """Fit a PolicyClassifier on ``examples``.

    With ``holdout > 0`` a near-duplicate-aware slice is held out and the metrics are measured on
    it; ``refit=True`` then refits on every example so no label is wasted (the metrics describe
    the slightly smaller model, an honest lower bound).

    ``featurizer`` (already fitted, e.g. on the whole pool) and ``features`` (its rows for
    ``examples``, e.g. from the pool cache) skip tokenizing: only the classifier is fitted.
    ``groups``: the examples' near-duplicate groups when already known (``TrainResult.groups``
    of an earlier training on the same examples); computed otherwise. ``unlabeled``: clauses
    without labels for the classifier's self-training (texts, or feature rows when ``featurizer``
    is given); none by default.

    Raises
    ------
    InputError
        If there are fewer than 2 examples.
    """
    if len(examples) < 2:
        raise InputError(f"need at least 2 labeled clauses to train, got {len(examples)}")
    start = time.perf_counter()
    texts = [e.text for e in examples]
    Y = label_matrix(examples, labels)
    result_metrics: dict = {}
    params = dict(labels=tuple(labels), random_state=seed, **model_params)
    # Near-duplicates stay together in the held-out split and in the calibration folds.
    groups = near_duplicate_groups(texts) if groups is None else np.asarray(groups)

    def fit(rows):
        if featurizer is None:
            return PolicyClassifier(**params).fit(
                [texts[i] for i in rows], Y[rows], groups=groups[rows], unlabeled=unlabeled
            )
        model = PolicyClassifier(**params)
        model.featurizer_ = featurizer
        return model.fit_features(features[rows], Y[rows], groups=groups[rows], unlabeled=unlabeled)

    everything = np.arange(len(examples))
    if featurizer is not None and features is None:
        features = featurizer.transform(texts)
    if holdout and len(examples) >= 20:
        train, test = holdout_split(texts, holdout, seed, groups=groups)
        model = fit(train)
        held_out = model.transform_texts([texts[i] for i in test]) if featurizer is None else features[test]
        result_metrics = metrics(Y[test], model.decide(model.predict_proba_features(held_out)), labels)
        result_metrics["holdout"] = holdout
        if refit:
            model = fit(everything)
    else:
        model = fit(everything)
    result_metrics["untrainable_labels"] = list(model.untrainable_labels_)
    seconds = time.perf_counter() - start
    log.info(
        "trained on %d examples in %.1f s (held-out macro-F1 %s)",
        len(examples),
        seconds,
        f"{result_metrics['macro_f1']:.3f}" if "macro_f1" in result_metrics else "n/a",
    )
    return TrainResult(model, len(examples), result_metrics, seconds, groups)


def evaluate_model(model: PolicyClassifier, examples: Sequence[Example]) -> dict:
    """Metrics of ``model`` on labeled ``examples`` (labels outside the model's set are an error)."""
    labels = tuple(model.labels_)
    Y = label_matrix(examples, labels)
    return metrics(Y, model.predict([e.text for e in examples]), labels)
