"""Query strategies on a tiny pool of real clauses: scores, the modAL adapter, batches worth a
person's time (no labeled text again, no near-duplicates in a batch) and the cold start."""

from __future__ import annotations

import random
from types import SimpleNamespace

import numpy as np
import pytest
from modAL import multilabel as modal_multilabel

from annotator.query import strategies as S
from annotator.query.pool_scores import _outputs, _Outputs, _rank01, lci_scores
from annotator.query.queries import _ScoredPool
from annotator.errors import EmptyPoolError, InputError, PoolExhaustedError
from annotator.model.features import PolicyTextFeaturizer
from annotator.labels import load_label_config
from annotator.model.classifier import PolicyClassifier
from annotator.text.normalize import match_key
from annotator.text.seedset import read_labeled_file
from annotator.model.training import label_matrix
from tests.conftest import SEED_TSV


@pytest.fixture(scope="module")
def corpus():
    """240 real clauses; a char-only featurizer and a classifier fitted on the first 120."""
    labels = load_label_config().labels
    examples = random.Random(0).sample(read_labeled_file(SEED_TSV, labels).examples, 240)
    texts = [e.text for e in examples]
    Y = label_matrix(examples, labels)
    featurizer = PolicyTextFeaturizer(word_ngram_range=None).fit(texts)
    X = featurizer.transform(texts)
    model = PolicyClassifier(labels=labels, cv=1).fit_features(X[:120], Y[:120])
    return SimpleNamespace(labels=labels, texts=texts, Y=Y, X=X, model=model)


def rng(seed=0):
    return np.random.default_rng(seed)


# check_pool and ranking ---------------------------------------------------------------------------
def test_check_pool_messages():
    with pytest.raises(PoolExhaustedError) as err:
        S.check_pool(3, 20)
    assert str(err.value) == "3 unlabeled segments left, 20 requested; lower --batch-size or ingest more documents"
    with pytest.raises(EmptyPoolError) as err:
        S.check_pool(0, 5)
    assert str(err.value) == "no unlabeled segments left; ingest more documents or export the labels"
    for bad in (0, -1, 2.5, True):
        with pytest.raises(InputError, match="batch size must be a positive integer"):
            S.check_pool(10, bad)
    S.check_pool(5, 5)


def test_rank_top_is_best_first_and_breaks_ties_with_the_rng():
    scores = np.array([0.1, 0.9, 0.5, 0.9, 0.9, 0.2])
    first = S.rank_top(scores, 3, rng(1))
    assert sorted(first.tolist()) == [1, 3, 4]
    assert S.rank_top(scores, 3, rng(1)).tolist() == first.tolist()
    orders = {tuple(S.rank_top(scores, 3, rng(seed)).tolist()) for seed in range(20)}
    assert len(orders) > 1  # the tie among 1, 3, 4 is broken differently by different seeds
    assert S.rank_top(scores, 5, rng(0)).tolist()[3:] == [2, 5]
    assert S.rank_top(scores, 6, rng(0)).tolist()[-1] == 0


def test_get_strategy_and_the_default():
    assert S.get_strategy("default").name == S.DEFAULT_STRATEGY
    assert S.get_strategy("random").fn is S.random_sampling
    with pytest.raises(InputError) as err:
        S.get_strategy("uncertainty")
    assert str(err.value).startswith("unknown strategy 'uncertainty'; valid: default, random, ")
    assert "mmu" in str(err.value)


# scores -------------------------------------------------------------------------------------------
def test_mmu_is_the_gap_between_weakest_accepted_and_strongest_rejected_label():
    margin = np.array([[2.0, 0.5, -1.0], [3.0, -0.2, -4.0], [-0.5, -1.5, -3.0]])
    out = _Outputs(proba=1 / (1 + np.exp(-margin)), margin=margin, pred=np.array([[1, 1, 0], [1, 0, 0], [1, 0, 0]]))
    assert S.mmu_scores(out).tolist() == pytest.approx([-1.5, -3.2, -1.0])
    assert lci_scores(out, 1.0).tolist() == [1.0, 0.0, 0.0]


def test_modal_adapter_ranks_like_modal(corpus):
    """min_confidence through the adapter = modAL's own ranking on the same probabilities."""
    est = S.FeatureClassifier.from_fitted(corpus.model)
    X = corpus.X[120:]
    ours = S.get_strategy("min_confidence").fn(est, X, 10, rng=rng())
    proba = corpus.model.predict_proba_features(X)
    view = _ScoredPool(_Outputs(proba, proba, proba))
    theirs, _ = modal_multilabel.min_confidence(view, np.arange(X.shape[0]), n_instances=10)
    assert set(ours.tolist()) == set(theirs.tolist())
    assert np.all(np.diff(proba.min(axis=1)[ours]) >= 0)  # best (least confident) first


@pytest.mark.parametrize("name", ["max_loss", "mean_max_loss", "svm_binary_minimum"])
def test_modal_functions_that_fail_on_sparse_input_work_through_the_adapter(corpus, name):
    picked = S.get_strategy(name).fn(S.FeatureClassifier.from_fitted(corpus.model), corpus.X[120:], 7, rng=rng())
    assert len(set(picked.tolist())) == 7


def test_pool_density_is_mean_cosine_to_the_pool(corpus):
    from sklearn.preprocessing import normalize

    X = corpus.X[:30]
    Xn = normalize(X)
    expected = np.asarray((Xn @ Xn.T).mean(axis=1)).ravel()
    assert S.pool_density(X) == pytest.approx(expected, rel=1e-5)


def test_coverage_favours_labels_with_few_positives(corpus):
    """With every label but one well covered, coverage's picks lean to that label's likely positives."""
    est = S.FeatureClassifier.from_fitted(corpus.model, corpus.Y[:120])
    X = corpus.X[120:]
    proba = corpus.model.predict_proba_features(X)
    starved = int(np.argmax(proba.mean(axis=0)))
    est.label_counts_ = np.full(len(corpus.labels), 100.0)
    est.label_counts_[starved] = 0
    picked = S.coverage_batch(est, X, 10, rng=rng(), uncertainty_weight=0.0)
    assert proba[picked, starved].mean() > np.sort(proba[:, starved])[::-1][:40].mean() - 1e-9


def test_gumbel_order_draws_in_proportion_to_the_weights():
    weights = np.array([0.0, 1.0, 3.0])
    firsts = [S.gumbel_order(weights, rng(seed))[0] for seed in range(400)]
    assert 0 not in firsts  # weight 0 is never drawn before a positive weight
    assert 0.65 < np.mean(np.array(firsts) == 2) < 0.85  # 3 / (1 + 3) = 0.75
    order = S.gumbel_order(weights, rng(1))
    assert sorted(order.tolist()) == [0, 1, 2] and order[-1] == 0
    assert S.gumbel_order(weights, rng(1)).tolist() == order.tolist()


def test_tempered_sampling_leans_to_uncertain_clauses_and_is_random_at_gamma_zero(corpus):
    est = S.FeatureClassifier.from_fitted(corpus.model, corpus.Y[:120])
    X = corpus.X[120:]
    uncertainty = _rank01(S.mmu_scores(_outputs(est, X)))
    leaning = np.mean([uncertainty[S.tempered_sampling(est, X, 20, rng=rng(s), gamma=3)].mean() for s in range(10)])
    flat = np.mean([uncertainty[S.tempered_sampling(est, X, 20, rng=rng(s), gamma=0)].mean() for s in range(10)])
    assert leaning > 0.65 and 0.4 < flat < 0.6  # rank^3 draws average 0.75; uniform ones 0.5


def test_staged_sampling_draws_tempered_early_and_takes_the_most_uncertain_after_the_switch(corpus):
    """Below ``switch_at`` labels a staged batch is exactly the tempered draw; from it on, the
    clauses of highest MMU uncertainty, best first (the live loop's ranking after 1,000 labels)."""
    est = S.FeatureClassifier.from_fitted(corpus.model, corpus.Y[:120])  # 120 labeled clauses
    X = corpus.X[120:]
    assert (
        S.staged_sampling(est, X, 15, rng=rng(3), switch_at=121).tolist()
        == S.tempered_sampling(est, X, 15, rng=rng(3), gamma=2.0).tolist()
    )  # staged keeps the exponent it was measured with (2), not the default's 3
    uncertainty = S.mmu_scores(_outputs(est, X))
    top = S.staged_sampling(est, X, 15, rng=rng(3), switch_at=120)
    assert top.tolist() == S.rank_top(uncertainty, 15, rng(3)).tolist()
    assert uncertainty[top].min() >= np.sort(uncertainty)[-15]  # exactly the 15 most uncertain
    assert (
        S.get_strategy("staged").fn(est, X, 15, rng=rng(3)).tolist()
        == S.staged_sampling(est, X, 15, rng=rng(3)).tolist()
    )  # registered with the 1,000-label default: tempered at 120
    assert S.TOP_UNCERTAINTY_AFTER == 1000


def test_tempered_need_power_leans_to_starved_labels(corpus):
    """need_power > 0 draws more of the likely positives of a label with no positives yet; 0 is plain tempered."""
    est = S.FeatureClassifier.from_fitted(corpus.model, corpus.Y[:120])
    X = corpus.X[120:]
    proba = corpus.model.predict_proba_features(X)
    starved = int(np.argmax(proba.mean(axis=0)))
    est.label_counts_ = np.full(len(corpus.labels), 100.0)
    est.label_counts_[starved] = 0
    assert (
        S.tempered_sampling(est, X, 10, rng=rng(4), need_power=0.0).tolist()
        == S.tempered_sampling(est, X, 10, rng=rng(4)).tolist()
    )
    leaning = np.mean(
        [proba[S.tempered_sampling(est, X, 20, rng=rng(s), gamma=0, need_power=3), starved].mean() for s in range(10)]
    )
    flat = np.mean([proba[S.tempered_sampling(est, X, 20, rng=rng(s), gamma=0), starved].mean() for s in range(10)])
    assert leaning > flat


def test_tempered_density_power_leans_to_typical_clauses(corpus):
    est = S.FeatureClassifier.from_fitted(corpus.model, corpus.Y[:120])
    X = corpus.X[120:]
    density = _rank01(S.pool_density(X))
    leaning = np.mean(
        [density[S.tempered_sampling(est, X, 20, rng=rng(s), gamma=0, density_power=3)].mean() for s in range(10)]
    )
    flat = np.mean([density[S.tempered_sampling(est, X, 20, rng=rng(s), gamma=0)].mean() for s in range(10)])
    assert leaning > 0.65 and 0.4 < flat < 0.6  # rank^3 draws average 0.75; uniform ones 0.5


def test_label_quota_gives_starved_labels_the_most_slots(corpus):
    """With one label unseen and the rest well covered, most picks sit near that label's threshold."""
    est = S.FeatureClassifier.from_fitted(corpus.model, corpus.Y[:120])
    X = corpus.X[120:]
    starved = 3
    est.label_counts_ = np.full(len(corpus.labels), 100.0)
    est.label_counts_[starved] = 0
    picked = S.label_quota(est, X, 20, rng=rng(), gamma=50)
    assert len(set(picked.tolist())) == 20
    closeness = -np.abs(_outputs(est, X).margin[:, starved])
    near = set(np.argsort(-closeness)[:40].tolist())
    assert sum(int(i) in near for i in picked) >= 14  # need 1 vs 1/101: ~19 of 20 slots


def test_representative_picks_one_clause_per_topic():
    texts_x = np.vstack([np.eye(3)[k] + 0.01 * np.random.default_rng(k).random((10, 3)) for k in range(3)])
    picked = S.representative(None, texts_x, 3, rng=rng())
    assert sorted(int(i) // 10 for i in picked) == [0, 1, 2]


# select_batch -------------------------------------------------------------------------------------
def test_select_batch_never_fits(corpus, monkeypatch):
    def no_fit(*args, **kwargs):
        raise AssertionError("select_batch must not fit")

    monkeypatch.setattr(PolicyClassifier, "fit_features", no_fit)
    monkeypatch.setattr(PolicyClassifier, "fit", no_fit)
    picked = S.select_batch(corpus.model, corpus.X[120:], 8, strategy="default", rng=rng(), texts=corpus.texts[120:])
    assert len(picked) == 8 and len(set(picked)) == 8


def test_select_batch_skips_labeled_texts_and_near_duplicates(corpus):
    base = corpus.texts[120:160]
    # Copies of clause 0: punctuation changed (same normalized key), and cut short (near-duplicate).
    texts = base + [base[0].replace("，", ",") + "。", base[0][: int(len(base[0]) * 0.9)]]
    featurizer = PolicyTextFeaturizer(word_ngram_range=None).fit(corpus.texts)
    X = featurizer.transform(texts)
    model = PolicyClassifier(labels=corpus.labels, cv=1).fit_features(
        featurizer.transform(corpus.texts[:120]), corpus.Y[:120]
    )
    picked = S.select_batch(model, X, len(base), strategy="random", rng=rng(3), texts=texts)
    keys = [match_key(texts[i]) for i in picked]
    assert len(set(keys)) == len(keys)
    assert sum(i in (0, 40, 41) for i in picked) == 1  # one copy of clause 0, never two
    labeled = S.select_batch(model, X, 10, strategy="random", rng=rng(3), texts=texts, labeled_texts=[base[0]])
    assert not {0, 40} & set(labeled)  # the same normalized text is never asked again
    # Strategies other than the plain random baseline also skip near-duplicates of labeled clauses.
    every = S.select_batch(model, X, 39, strategy="mmu", rng=rng(3), texts=texts, labeled_texts=[base[0]])
    assert set(every) == set(range(42)) - {0, 40, 41}
    assert not S.STRATEGIES["random"].dedupe and S.STRATEGIES[S.DEFAULT_STRATEGY].dedupe


def test_select_batch_without_texts_uses_feature_cosine(corpus):
    X = corpus.X[[120, 120, 121, 122, 123]]
    picked = S.select_batch(corpus.model, X, 4, strategy="random", rng=rng(), texts=None)
    assert len(picked) == 4 and not {0, 1} <= set(picked)  # never both identical rows


def test_select_batch_checks_its_input(corpus):
    with pytest.raises(PoolExhaustedError):
        S.select_batch(corpus.model, corpus.X[:3], 5, rng=rng())
    with pytest.raises(InputError, match="texts has 2 entries but X_pool has 3 rows"):
        S.select_batch(corpus.model, corpus.X[:3], 2, rng=rng(), texts=corpus.texts[:2])


def test_qbc_needs_a_committee_in_the_live_product(corpus):
    with pytest.raises(InputError, match="strategy 'qbc' needs a committee"):
        S.select_batch(corpus.model, corpus.X[120:], 5, strategy="qbc", rng=rng())


# cold start ---------------------------------------------------------------------------------------
def test_label_keywords_come_from_the_label_names():
    kw = S.label_keywords(["集成电路产业", "教育和科普", "企业", "创造和知识产权保护"])
    assert kw["集成电路产业"] == ("集成电路产业", "集成电路")
    assert kw["教育和科普"] == ("教育和科普", "教育", "科普")
    assert kw["企业"] == ("企业",)
    assert "知识产权" in kw["创造和知识产权保护"]


def test_cold_start_covers_labels_and_is_diverse(corpus):
    texts = corpus.texts
    picked = S.cold_start_batch(texts, corpus.labels, 40, rng=rng(), X=corpus.X)
    assert len(picked) == 40 and len(set(picked)) == 40
    assert picked == S.cold_start_batch(texts, corpus.labels, 40, rng=rng(), X=corpus.X)
    keywords = S.label_keywords(corpus.labels)
    matched = {label for label in corpus.labels if any(any(w in texts[i] for w in keywords[label]) for i in picked)}
    findable = {label for label in corpus.labels if any(any(w in t for w in keywords[label]) for t in texts)}
    assert matched == findable
    keys = [match_key(texts[i]) for i in picked]
    assert len(set(keys)) == len(keys)


def test_cold_start_takes_given_keywords_and_works_without_features(corpus):
    picked = S.cold_start_batch(corpus.texts, corpus.labels, 5, rng=rng(), keywords={corpus.labels[0]: ["专利"]})
    assert any("专利" in corpus.texts[i] for i in picked)
    with pytest.raises(PoolExhaustedError):
        S.cold_start_batch(corpus.texts[:3], corpus.labels, 5, rng=rng())
