"""Tests written for mutants that mutmut found alive in annotator/query (docs/mutation-testing.md).

``label_need`` is how much each label still needs positives, ``1 / (1 + positives) ** power``: the
lean of labelwise margin, label quota, rarity weighting, BADGE and tempered sampling's
``need_power`` towards the labels random sampling starves. Its values are checked exactly.
"""

from __future__ import annotations

import random
from types import SimpleNamespace

import numpy as np
import pytest

from annotator.labels import load_label_config
from annotator.model.classifier import PolicyClassifier
from annotator.model.features import PolicyTextFeaturizer
from annotator.model.training import label_matrix
from annotator.query import strategies as S
from annotator.query.pool_scores import _Outputs, _outputs, _rank01, label_need
from annotator.text.seedset import read_labeled_file
from tests.conftest import SEED_TSV


def test_label_need_is_one_over_one_plus_the_positives_to_the_power():
    est = SimpleNamespace(label_counts_=np.array([0.0, 1.0, 3.0, 9.0]))
    assert label_need(est, 4).tolist() == pytest.approx([1.0, 1 / 2, 1 / 4, 1 / 10])  # power 1 by default
    assert label_need(est, 4, 2.0).tolist() == pytest.approx([1.0, 1 / 4, 1 / 16, 1 / 100])
    assert label_need(est, 4, 0.5).tolist() == pytest.approx([1.0, 2**-0.5, 1 / 2, 10**-0.5])
    assert label_need(est, 4, 0.0).tolist() == [1.0, 1.0, 1.0, 1.0]


def test_label_need_is_uniform_when_the_positives_are_unknown():
    est = SimpleNamespace(label_counts_=None)
    assert label_need(est, 3).tolist() == [1.0, 1.0, 1.0]
    assert label_need(est, 3, 2.0).tolist() == [1.0, 1.0, 1.0]


# The default strategy, tempered sampling: which clauses it queues, exactly ------------------------


@pytest.fixture(scope="module")
def fitted():
    """A classifier fitted on 120 real clauses (tuned thresholds, not all 0.5), and 120 others as the pool."""
    labels = load_label_config().labels
    examples = random.Random(1).sample(read_labeled_file(SEED_TSV, labels).examples, 240)
    texts = [e.text for e in examples]
    X = PolicyTextFeaturizer(word_ngram_range=None).fit(texts).transform(texts)
    model = PolicyClassifier(labels=labels).fit_features(X[:120], label_matrix(examples, labels)[:120])
    return model, X[120:]


def expected_weights(scores, gamma):
    """(rank scaled to [0, 1] + 1/n) ** gamma, computed here from the docstring's formula."""
    n = len(scores)
    ranks = np.argsort(np.argsort(scores, kind="stable"), kind="stable") / (n - 1)
    return (ranks + 1.0 / n) ** gamma


def _logit(p):
    p = np.clip(p, 1e-6, 1 - 1e-6)
    return np.log(p) - np.log1p(-p)


def mmu_by_hand(model, X):
    """Max-margin uncertainty from the model's probabilities and thresholds, on the logit scale:
    minus (weakest decided label's margin - strongest rejected label's margin)."""
    proba = model.predict_proba_features(X)
    margin = _logit(proba) - _logit(model.thresholds_)
    decided = model.decide(proba).astype(bool)
    weakest_in = np.array([m[d].min() for m, d in zip(margin, decided)])
    strongest_out = np.array([m[~d].max() if (~d).any() else w - 10.0 for m, d, w in zip(margin, decided, weakest_in)])
    return -(weakest_in - strongest_out)


def test_the_default_strategy_draws_by_rank_of_uncertainty_cubed(fitted):
    model, X = fitted
    assert S.DEFAULT_STRATEGY == "tempered"
    assert len(set(model.thresholds_.tolist())) > 1  # tuned: the margin is not just logit(p)
    est = S.FeatureClassifier.from_fitted(model)
    assert S.mmu_scores(_outputs(est, X)) == pytest.approx(mmu_by_hand(model, X))
    weights = expected_weights(mmu_by_hand(model, X), 3.0)
    for seed in range(3):
        expected = S.gumbel_order(weights, np.random.default_rng(seed))[:15]
        assert S.tempered_sampling(model, X, 15, rng=np.random.default_rng(seed)).tolist() == expected.tolist()
        chosen = S.select_batch(model, X, 15, rng=np.random.default_rng(seed))
        assert np.asarray(chosen).tolist() == expected.tolist()


def test_tempered_need_power_works_on_a_live_model_whose_label_counts_are_unknown(fitted):
    model, X = fitted
    est = S.FeatureClassifier.from_fitted(model)
    assert est.label_counts_ is None
    proba = model.predict_proba_features(X)
    need = proba @ np.ones(proba.shape[1])  # every label needs positives equally
    weights = expected_weights(mmu_by_hand(model, X), 3.0) * expected_weights(need, 1.0)
    picked = S.tempered_sampling(model, X, 10, rng=np.random.default_rng(5), need_power=1.0)
    assert picked.tolist() == S.gumbel_order(weights, np.random.default_rng(5))[:10].tolist()


def test_gumbel_order_puts_each_row_first_with_probability_weight_over_total():
    # With one heavy row among five, the first draw is the heavy one 6 / 10 of the time. (A sign
    # slip in the Gumbel noise gives the same answer for two rows but 0.71 here.)
    weights = np.array([1.0, 1.0, 1.0, 1.0, 6.0])
    firsts = np.array([S.gumbel_order(weights, np.random.default_rng(seed))[0] for seed in range(2000)])
    assert abs(np.mean(firsts == 4) - 0.6) < 0.04
    assert all(abs(np.mean(firsts == i) - 0.1) < 0.03 for i in range(4))


def test_ranks_of_small_pools():
    assert _rank01(np.array([5.0, 1.0])).tolist() == [1.0, 0.0]
    assert _rank01(np.array([2.0, 9.0, 4.0])).tolist() == [0.0, 1.0, 0.5]
    assert _rank01(np.array([7.0])).tolist() == [1.0]
    assert _rank01(np.array([])).tolist() == []


def test_tempered_sampling_of_a_pool_of_one_or_two_clauses(fitted):
    model, X = fitted
    assert S.tempered_sampling(model, X[:1], 1, rng=np.random.default_rng(0)).tolist() == [0]
    # Two clauses: the more uncertain one is drawn first 27 times in 28 ((1 + 1/2)^3 : (0 + 1/2)^3).
    pair = X[:2]
    top = int(np.argmax(mmu_by_hand(model, pair)))
    firsts = [S.tempered_sampling(model, pair, 1, rng=np.random.default_rng(s))[0] for s in range(400)]
    assert 0.93 < np.mean(np.array(firsts) == top) < 0.99


def test_mmu_of_a_clause_given_every_label_is_a_fixed_ten_logits_of_confidence():
    # No rejected label to compare with: the gap is taken as 10 (very confident), never NaN or
    # "most uncertain", so such a clause is queued last, not first.
    margin = np.array([[2.0, 0.5, 1.0], [0.3, -0.2, -4.0]])
    out = _Outputs(proba=1 / (1 + np.exp(-margin)), margin=margin, pred=np.array([[1, 1, 1], [1, 0, 0]]))
    scores = S.mmu_scores(out)
    assert scores.tolist() == pytest.approx([-10.0, -0.5])
    assert np.argsort(-scores).tolist() == [1, 0]


def test_tied_scores_are_ranked_in_pool_order():
    # Ties (copies of a clause, rows the model scores alike) get ranks in pool order, the same on
    # every numpy version: a stable sort, not quicksort's arbitrary order for 20+ rows.
    values = np.zeros(40)
    values[::3] = 1.0
    zeros, ones = np.flatnonzero(values == 0), np.flatnonzero(values == 1)
    expected = np.empty(40)
    expected[zeros] = np.arange(len(zeros))
    expected[ones] = len(zeros) + np.arange(len(ones))
    assert _rank01(values).tolist() == (expected / 39).tolist()
