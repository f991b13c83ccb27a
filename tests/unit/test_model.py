"""model: PolicyClassifier on a few hundred real seed clauses: the estimator contract, calibrated
probabilities in label-set order, at least one label per clause, untrainable labels, clear errors."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError

from annotator import InputError
from annotator.model.features import PolicyTextFeaturizer
from annotator.labels import load_label_config
from annotator.model.classifier import (
    PolicyClassifier,
    _identical_rows,
    at_least_one,
    merge_group_labels,
    tune_thresholds,
)
from annotator.text.seedset import read_labeled_file
from annotator.model.training import label_matrix
from tests.conftest import seed_lines

LABELS = load_label_config().labels


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    path = tmp_path_factory.mktemp("model") / "seed.tsv"
    path.write_text("\n".join(seed_lines(400, seed=2)) + "\n", encoding="utf-8")
    examples = read_labeled_file(path, LABELS).examples
    texts = [e.text for e in examples]
    return texts[:320], label_matrix(examples[:320], LABELS), texts[320:]


@pytest.fixture(scope="module")
def model(data) -> PolicyClassifier:
    texts, Y, _ = data
    return PolicyClassifier(labels=LABELS).fit(texts, Y)


def test_params_are_stored_unmodified_and_clone(data):
    featurizer = PolicyTextFeaturizer(min_df=2)
    model = PolicyClassifier(labels=LABELS, C=2.0, relative=0.4, featurizer=featurizer, random_state=7)
    params = model.get_params(deep=False)
    assert params["labels"] is LABELS and params["featurizer"] is featurizer
    assert (params["C"], params["relative"], params["random_state"]) == (2.0, 0.4, 7)
    copy = clone(model)
    assert copy.get_params(deep=False)["C"] == 2.0
    assert copy.featurizer is not featurizer and copy.featurizer.get_params() == featurizer.get_params()


def test_fit_does_not_fit_the_featurizer_passed_in(data):
    texts, Y, _ = data
    featurizer = PolicyTextFeaturizer(word_ngram_range=None)
    model = PolicyClassifier(labels=LABELS, featurizer=featurizer, cv=1).fit(texts, Y)
    assert not hasattr(featurizer, "char_")
    assert model.featurizer_.word_ is None


@pytest.mark.parametrize("method", ["predict", "predict_proba", "predict_labels", "transform_texts"])
def test_not_fitted_error_before_fit(method):
    with pytest.raises(NotFittedError):
        getattr(PolicyClassifier(labels=LABELS), method)(["对企业给予补助。"])


def test_not_fitted_error_for_features_and_decide():
    model = PolicyClassifier(labels=LABELS)
    with pytest.raises(NotFittedError):
        model.decision_function_features(np.zeros((1, 3)))
    with pytest.raises(NotFittedError):
        model.decide(np.zeros((1, len(LABELS))))


def test_probabilities_are_in_label_set_order(model, data):
    _, _, test = data
    proba = model.predict_proba(test)
    assert proba.shape == (len(test), len(LABELS))
    assert ((proba >= 0) & (proba <= 1)).all()
    assert list(model.labels_) == list(LABELS)
    assert model.thresholds_.shape == (len(LABELS),) and model.n_train_ == 320


def test_column_order_follows_the_label_set_not_the_data(data):
    texts, Y, test = data
    a = PolicyClassifier(labels=LABELS, cv=1).fit(texts, Y)
    b = PolicyClassifier(labels=LABELS[::-1], cv=1).fit(texts, Y[:, ::-1])
    assert np.allclose(a.predict_proba(test), b.predict_proba(test)[:, ::-1], atol=1e-4)


def test_at_least_one_label_per_clause(model, data):
    _, _, test = data
    for rows in (model.predict(test), model.predict(["", "天气很好。"])):
        assert rows.dtype == np.int8 and set(np.unique(rows)) <= {0, 1}
        assert (rows.sum(axis=1) >= 1).all()
    labels = model.predict_labels(test[:5])
    assert all(names and set(names) <= set(LABELS) for names in labels)


def test_predict_is_decide_of_predict_proba(model, data):
    _, _, test = data
    proba = model.predict_proba(test)
    assert (model.predict(test) == model.decide(proba)).all()
    assert (model.decide(proba) == at_least_one(proba, model.thresholds_, relative=model.relative)).all()


def test_pickle_round_trip_predicts_the_same(model, data):
    _, _, test = data
    loaded = pickle.loads(pickle.dumps(model))
    assert np.array_equal(loaded.predict_proba(test), model.predict_proba(test))
    assert np.array_equal(loaded.predict(test), model.predict(test))


def test_same_random_state_same_model(model, data):
    texts, Y, test = data
    again = PolicyClassifier(labels=LABELS).fit(texts, Y)
    assert np.array_equal(again.thresholds_, model.thresholds_)
    assert np.allclose(again.predict_proba(test), model.predict_proba(test), atol=1e-12)


def test_calibration_and_tuned_thresholds(model):
    assert (model.calibration_[model.trainable_, 0] > 0).all()
    assert ((model.thresholds_ >= 0.1) & (model.thresholds_ <= 0.9)).all()


def test_untrainable_labels_are_listed_and_never_predicted(model, data):
    texts, Y, test = data
    Y = Y.copy()
    empty = [LABELS.index("政府采购"), LABELS.index("绿色低碳")]
    Y[:, empty] = 0
    X = model.featurizer_.transform(texts)
    fitted = PolicyClassifier(labels=LABELS).fit_features(X, Y)
    assert fitted.untrainable_labels_ == ("政府采购", "绿色低碳")
    proba = fitted.predict_proba_features(model.featurizer_.transform(test))
    assert (proba[:, empty] == 0).all()
    assert (fitted.decide(proba)[:, empty] == 0).all()
    assert np.isfinite(fitted.thresholds_).all()


def test_near_duplicates_are_taught_each_others_labels(model, data):
    texts, Y, _ = data
    X = model.featurizer_.transform(texts)
    Y = Y.copy()
    j = LABELS.index("政府采购")
    pair = [int(i) for i in np.flatnonzero(Y[:, j] == 0)[:2]]
    Y[pair[0], j] = 1  # the clause has the label, its (declared) copy does not
    groups = np.arange(len(texts))
    groups[pair[1]] = groups[pair[0]]
    merged, kept = (
        PolicyClassifier(labels=LABELS, cv=1, merge_duplicate_labels=merge).fit_features(X, Y, groups=groups)
        for merge in (True, False)
    )
    assert merge_group_labels(Y, groups)[pair[1], j] == 1
    assert merged.predict_proba_features(X[pair[1]])[0, j] > kept.predict_proba_features(X[pair[1]])[0, j]


def test_merge_group_labels_keeps_rows_alone_in_their_group():
    Y = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1]], dtype=np.int8)
    assert merge_group_labels(Y, np.array([5, 5, 7])).tolist() == [[1, 1, 0], [1, 1, 0], [0, 0, 1]]
    assert merge_group_labels(Y[:0], np.array([], dtype=int)).shape == (0, 3)


def test_a_label_on_every_clause_gets_probability_one(data):
    texts, Y, test = data
    Y = Y.copy()
    Y[:, 0] = 1
    model = PolicyClassifier(labels=LABELS, cv=1).fit(texts, Y)
    assert model.untrainable_labels_ == (LABELS[0],)
    assert (model.predict_proba(test[:5])[:, 0] == 1).all()


def test_fixed_threshold_and_no_calibration(data):
    texts, Y, _ = data
    model = PolicyClassifier(labels=LABELS, cv=1, threshold=0.4).fit(texts, Y)
    assert (model.thresholds_ == 0.4).all()
    assert (model.calibration_ == [1.0, 0.0]).all()


def test_tiny_training_set_fits_without_calibration(data):
    texts, Y, _ = data
    model = PolicyClassifier(labels=LABELS).fit(texts[:8], Y[:8])
    assert (model.thresholds_ == 0.5).all()
    assert model.predict(texts[:2]).sum(axis=1).min() >= 1


def test_fit_features_on_a_bootstrap_sample(model, data):
    texts, Y, _ = data
    X = model.featurizer_.transform(texts)
    rows = np.random.default_rng(0).integers(0, len(texts), len(texts))
    groups = _identical_rows(X[rows])
    assert len(np.unique(groups)) == len(np.unique(rows))
    fitted = PolicyClassifier(labels=LABELS).fit_features(X[rows], Y[rows])
    assert fitted.n_train_ == len(rows)


def test_shape_errors_say_what_is_wrong(data):
    texts, Y, _ = data
    model = PolicyClassifier(labels=LABELS)
    with pytest.raises(InputError, match=r"^Y has 319 rows but there are 320 texts: one row per text$"):
        model.fit(texts, Y[:-1])
    with pytest.raises(
        InputError,
        match=r"^Y has 26 columns but the label set has 27 labels \(金融支持, 财政支持, "
        r"税收激励, 政府采购, 人才队伍, …\): one column per label, in label-set order$",
    ):
        model.fit(texts, Y[:, :-1])
    with pytest.raises(InputError, match=r"^Y must be a 2-D \(texts × labels\) 0/1 matrix, got 1-D shape \(320,\)"):
        model.fit(texts, Y[:, 0])
    bad = Y.copy()
    bad[3, 1] = 2
    with pytest.raises(InputError, match=r"^Y must contain only 0 and 1; Y\[3, 1\] is 2 \(text 3, label 财政支持\)$"):
        model.fit(texts, bad)
    with pytest.raises(InputError, match=r"^PolicyClassifier has no labels; pass the label set"):
        PolicyClassifier().fit(texts, Y)
    with pytest.raises(InputError, match="^text 0 is bytes, not str$"):
        model.fit([b"x"] + texts[1:], Y)


def test_at_least_one_and_the_relative_rule():
    proba = np.array([[0.1, 0.2, 0.05], [0.9, 0.6, 0.3], [0.0, 0.0, 0.0]])
    assert at_least_one(proba, 0.5).tolist() == [[0, 1, 0], [1, 1, 0], [1, 0, 0]]
    assert at_least_one(proba, 0.25, relative=0.7).tolist() == [[0, 1, 0], [1, 0, 0], [1, 0, 0]]
    assert at_least_one(np.zeros((0, 3)), 0.5).shape == (0, 3)


def test_tune_thresholds_counts_the_forced_top_label():
    # Label 1 is always the top label, so it is predicted whatever its threshold: its own optimum is
    # any value; label 0 is right exactly when its probability >= 0.4.
    proba = np.array([[0.45, 0.9], [0.35, 0.8], [0.5, 0.7], [0.2, 0.6]] * 5)
    Y = np.array([[1, 1], [0, 1], [1, 1], [0, 1]] * 5)
    thresholds = tune_thresholds(proba, Y, shrinkage=0.0)
    assert 0.35 < thresholds[0] <= 0.45
    assert thresholds[1] == 0.5  # all thresholds tie: the one closest to 0.5


def test_worker_processes_give_the_same_model(data):
    texts, Y, test = data
    one = PolicyClassifier(labels=LABELS, cv=1).fit(texts, Y)
    two = PolicyClassifier(labels=LABELS, cv=1, n_jobs=2).fit(texts, Y)
    assert np.array_equal(one.coef_, two.coef_)
    assert np.array_equal(one.predict_proba(test), two.predict_proba(test))


def test_groups_keep_copies_in_one_calibration_fold(model, data):
    texts, Y, _ = data
    X = model.featurizer_.transform(texts)
    with pytest.raises(InputError, match="^groups has 3 entries but there are 320 texts: one group id per text$"):
        PolicyClassifier(labels=LABELS).fit_features(X, Y, groups=[0, 1, 2])
    fitted = PolicyClassifier(labels=LABELS).fit_features(X, Y, groups=np.arange(len(texts)) // 2)
    assert fitted.thresholds_.shape == (len(LABELS),)
