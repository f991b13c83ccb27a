"""The contract every registered strategy keeps (STYLE.md section 4), run through modAL's learner:
exactly n unique in-range indices, the same seed gives the same batch, errors on empty/short pools."""

from __future__ import annotations

import random

import numpy as np
import pytest

from annotator.query import strategies as S
from annotator.errors import EmptyPoolError, PoolExhaustedError
from annotator.model.features import PolicyTextFeaturizer
from annotator.labels import load_label_config
from annotator.model.classifier import PolicyClassifier
from annotator.text.seedset import read_labeled_file
from annotator.model.training import label_matrix
from tests.conftest import SEED_TSV

N_TRAIN = 100


@pytest.fixture(scope="module")
def data():
    labels = load_label_config().labels
    examples = random.Random(1).sample(read_labeled_file(SEED_TSV, labels).examples, 160)
    texts = [e.text for e in examples]
    X = PolicyTextFeaturizer(word_ngram_range=None).fit_transform(texts)
    return labels, X, label_matrix(examples, labels)


@pytest.fixture(scope="module")
def learners(data):
    """One fitted learner per committee size, shared by the strategies that need it."""
    labels, X, Y = data
    cache = {}

    def get(strategy: S.Strategy) -> S.PolicyActiveLearner:
        if strategy.committee not in cache:
            cache[strategy.committee] = S.make_learner(
                PolicyClassifier(labels=labels, cv=1), strategy, X_training=X[:N_TRAIN], Y_training=Y[:N_TRAIN]
            )
        learner = cache[strategy.committee]
        learner.query_strategy = strategy.fn
        return learner

    return get


@pytest.mark.parametrize("name", list(S.STRATEGIES))
def test_n_unique_in_range_and_seeded(name, data, learners):
    _, X, _ = data
    strategy = S.STRATEGIES[name]
    learner = learners(strategy)
    pool = X[N_TRAIN:]
    rows, picked_rows = learner.query(pool, 12, rng=np.random.default_rng(7))
    assert isinstance(rows, np.ndarray) and rows.dtype.kind == "i"
    assert len(rows) == 12 and len(set(rows.tolist())) == 12
    assert rows.min() >= 0 and rows.max() < pool.shape[0]
    assert picked_rows.shape[0] == 12
    again, _ = learner.query(pool, 12, rng=np.random.default_rng(7))
    assert again.tolist() == rows.tolist()
    one, _ = learner.query(pool, 1, rng=np.random.default_rng(7))
    assert len(one) == 1
    every, _ = learner.query(pool, pool.shape[0], rng=np.random.default_rng(7))
    assert sorted(every.tolist()) == list(range(pool.shape[0]))


@pytest.mark.parametrize("name", list(S.STRATEGIES))
def test_errors_on_empty_and_short_pools(name, data, learners):
    _, X, _ = data
    learner = learners(S.STRATEGIES[name])
    with pytest.raises(EmptyPoolError):
        learner.query(X[:0], 3, rng=np.random.default_rng(0))
    with pytest.raises(PoolExhaustedError) as err:
        learner.query(X[N_TRAIN : N_TRAIN + 3], 20, rng=np.random.default_rng(0))
    assert str(err.value) == "3 unlabeled segments left, 20 requested; lower --batch-size or ingest more documents"


@pytest.mark.parametrize("name", list(S.STRATEGIES))
def test_every_strategy_is_described(name):
    strategy = S.STRATEGIES[name]
    assert strategy.name == name and strategy.description and strategy.fn.__doc__
