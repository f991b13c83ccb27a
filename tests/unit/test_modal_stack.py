"""modAL 0.4.2.1 on the pinned scikit-learn, for real: ActiveLearner.teach/query on sparse TF-IDF
rows of real clauses, the quirks PolicyActiveLearner fixes, and modAL's Committee."""

from __future__ import annotations

import random

import numpy as np
import pytest
import scipy.sparse as sp
import sklearn
from modAL.models import ActiveLearner

from annotator.query import strategies as S
from annotator.errors import InputError
from annotator.model.features import PolicyTextFeaturizer
from annotator.labels import load_label_config
from annotator.model.classifier import PolicyClassifier
from annotator.text.seedset import read_labeled_file
from annotator.model.training import label_matrix
from tests.conftest import SEED_TSV

SKLEARN_18 = tuple(int(p) for p in sklearn.__version__.split(".")[:2]) >= (1, 8)


@pytest.fixture(scope="module")
def data():
    labels = load_label_config().labels
    examples = random.Random(2).sample(read_labeled_file(SEED_TSV, labels).examples, 150)
    texts = [e.text for e in examples]
    X = PolicyTextFeaturizer(word_ngram_range=None).fit_transform(texts)
    return labels, X, label_matrix(examples, labels)


def test_stock_active_learner_teach_breaks_on_this_scikit_learn(data):
    """Why PolicyActiveLearner exists: modAL passes force_all_finite to check_X_y."""
    labels, X, Y = data
    learner = ActiveLearner(S.FeatureClassifier(model=PolicyClassifier(labels=labels, cv=1)), S.random_sampling)
    if SKLEARN_18:
        with pytest.raises(TypeError, match="force_all_finite"):
            learner.teach(X[:40], Y[:40])
    else:
        with pytest.warns(FutureWarning, match="force_all_finite"):
            learner.teach(X[:40], Y[:40])


def test_teach_and_query_on_sparse_features(data):
    labels, X, Y = data
    learner = S.make_learner(PolicyClassifier(labels=labels, cv=1), "mmu", X_training=X[:40], Y_training=Y[:40])
    assert sp.issparse(learner.X_training)
    rows, picked = learner.query(X[40:], 10, rng=np.random.default_rng(0))
    learner.teach(X[40:][rows], Y[40:][rows])
    assert learner.X_training.shape[0] == 50 and learner.y_training.shape == (50, len(labels))
    assert learner.estimator.label_counts_.sum() == Y[:40].sum() + Y[40:][rows].sum()
    proba = learner.predict_proba(X[100:])
    assert proba.shape == (50, len(labels)) and np.all((proba >= 0) & (proba <= 1))


def test_teach_rejects_mismatched_rows(data):
    labels, X, Y = data
    learner = S.make_learner(PolicyClassifier(labels=labels, cv=1), "random", X_training=X[:30], Y_training=Y[:30])
    with pytest.raises(InputError, match="different numbers of rows: 5 and 4"):
        learner.teach(X[30:35], Y[30:34])
    with pytest.raises(InputError, match="only_new"):
        learner.teach(X[30:35], Y[30:35], only_new=True)


def test_query_calls_the_strategy_once_and_keeps_a_batch_of_two(data):
    """modAL's query unpacks the result as (indices, metrics) in a bare try: a 2-index batch would be
    split into two scalars, and every other result computed twice."""
    labels, X, Y = data
    calls = []

    def strategy(learner, X_pool, n, *, rng):
        calls.append(n)
        return S.random_sampling(learner, X_pool, n, rng=rng)

    learner = S.PolicyActiveLearner(S.FeatureClassifier(model=PolicyClassifier(labels=labels, cv=1)), strategy)
    rows, picked = learner.query(X[40:], 2, rng=np.random.default_rng(0))
    assert len(rows) == 2 and picked.shape[0] == 2 and calls == [2]
    learner.query(X[40:], 5, rng=np.random.default_rng(0))
    assert calls == [2, 5]


def test_modal_committee_query_by_committee(data):
    labels, X, Y = data
    members = [
        S.make_learner(
            PolicyClassifier(labels=labels, cv=1, C=c), "qbc", X_training=X[:40], Y_training=Y[:40], random_state=k
        )
        for k, c in enumerate((0.5, 4.0, 16.0))
    ]
    committee = S.PolicyCommittee(learner_list=members, query_strategy=S.get_strategy("qbc").fn)
    rows, _ = committee.query(X[40:], 6, rng=np.random.default_rng(0))
    assert len(set(rows.tolist())) == 6
    committee.teach(X[40:][rows], Y[40:][rows])
    assert all(m.X_training.shape[0] == 46 for m in committee.learner_list)


def test_fitted_model_is_wrapped_without_refitting(data):
    labels, X, Y = data
    model = PolicyClassifier(labels=labels, cv=1).fit_features(X[:40], Y[:40])
    learner = S.make_learner(model, "mmu", Y_training=Y[:40])
    assert learner.estimator.model_ is model and learner.X_training is None
    assert learner.estimator.cardinality_ == pytest.approx(Y[:40].sum(axis=1).mean())


def test_near_duplicate_groups_ride_along_to_the_calibration_folds(data, monkeypatch):
    labels, X, Y = data
    seen = []
    original = PolicyClassifier.fit_features

    def spy(self, features, Y, groups=None, unlabeled=None):
        seen.append(None if groups is None else list(groups))
        return original(self, features, Y, groups=groups, unlabeled=unlabeled)

    monkeypatch.setattr(PolicyClassifier, "fit_features", spy)
    groups = np.arange(150) // 2
    learner = S.make_learner(
        PolicyClassifier(labels=labels, cv=1), "random", X_training=X[:40], Y_training=Y[:40], groups=groups[:40]
    )
    learner.teach(X[40:50], Y[40:50], groups=groups[40:50])
    assert seen == [list(groups[:40]), list(groups[:50])]
    learner.teach(X[50:55], Y[50:55])  # rows without groups: the model's own default from then on
    assert seen[-1] is None and learner.groups_training is None
    with pytest.raises(InputError, match="bootstrap=True is not supported"):
        learner.teach(X[55:60], Y[55:60], bootstrap=True)
