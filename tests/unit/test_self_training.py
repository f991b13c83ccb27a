"""Self-training on the unlabeled pool (PolicyClassifier's ``self_training``): how many pool clauses
the model labels itself, that a labeled clause never gets a pseudo-label, that labels without a real
positive stay constant, and that training and the settings pass the pool and the cap. Real seed clauses."""

from __future__ import annotations

import numpy as np
import pytest

from annotator import InputError
from annotator.labels import load_label_config
from annotator.model.classifier import MIN_SELF_TRAINING_ROWS, PolicyClassifier
from annotator.model.features import PolicyTextFeaturizer
from annotator.model.training import label_matrix, train_model
from annotator.settings import Settings
from annotator.text.seedset import read_labeled_file
from annotator.types import Example
from tests.conftest import seed_lines

LABELS = load_label_config().labels


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """250 labeled clauses, 450 unlabeled ones, featurized once on all texts (as the product does)."""
    path = tmp_path_factory.mktemp("self_training") / "seed.tsv"
    path.write_text("\n".join(seed_lines(700, seed=5)) + "\n", encoding="utf-8")
    examples = read_labeled_file(path, LABELS).examples
    texts = [e.text for e in examples]
    featurizer = PolicyTextFeaturizer().fit(texts)
    X = featurizer.transform(texts)
    Y = label_matrix(examples, LABELS)
    return featurizer, X[:250], Y[:250], X[250:], texts


def test_labels_as_many_pool_clauses_as_labeled_ones_up_to_the_cap(data):
    _, X, Y, pool, _ = data
    model = PolicyClassifier(labels=LABELS).fit_features(X, Y, unlabeled=pool)
    assert (model.n_train_, model.n_self_trained_) == (250, 250)
    capped = PolicyClassifier(labels=LABELS, self_training=40).fit_features(X, Y, unlabeled=pool)
    assert (capped.n_train_, capped.n_self_trained_) == (250, 40)


def test_changes_the_model_and_keeps_its_outputs_well_formed(data):
    _, X, Y, pool, _ = data
    plain = PolicyClassifier(labels=LABELS).fit_features(X, Y)
    trained = PolicyClassifier(labels=LABELS).fit_features(X, Y, unlabeled=pool)
    assert not np.allclose(plain.coef_, trained.coef_)
    proba = trained.predict_proba_features(pool)
    assert proba.shape == (pool.shape[0], len(LABELS)) and ((proba >= 0) & (proba <= 1)).all()
    assert (trained.decide(proba).sum(axis=1) >= 1).all()
    assert trained.untrainable_labels_ == plain.untrainable_labels_
    # labels with no real positive stay constant: the model's own labels never create one
    for label in trained.untrainable_labels_:
        j = LABELS.index(label)
        assert (proba[:, j] == trained.constant_proba_[j]).all()


def test_a_pool_of_labeled_clauses_teaches_nothing_new(data):
    """A pool row identical to a labeled row is that clause: it keeps its real labels only."""
    _, X, Y, _, _ = data
    plain = PolicyClassifier(labels=LABELS).fit_features(X, Y)
    same = PolicyClassifier(labels=LABELS).fit_features(X, Y, unlabeled=X[::-1])
    assert same.n_self_trained_ == 0
    np.testing.assert_array_equal(same.coef_, plain.coef_)
    np.testing.assert_array_equal(same.thresholds_, plain.thresholds_)


def test_off_below_the_minimum_and_when_disabled(data):
    _, X, Y, pool, _ = data
    few = PolicyClassifier(labels=LABELS).fit_features(
        X[: MIN_SELF_TRAINING_ROWS - 1], Y[: MIN_SELF_TRAINING_ROWS - 1], unlabeled=pool
    )
    assert few.n_self_trained_ == 0
    off = PolicyClassifier(labels=LABELS, self_training=0).fit_features(X, Y, unlabeled=pool)
    plain = PolicyClassifier(labels=LABELS).fit_features(X, Y)
    assert off.n_self_trained_ == 0
    np.testing.assert_array_equal(off.coef_, plain.coef_)


def test_fit_on_texts_takes_unlabeled_texts(data):
    _, _, Y, _, texts = data
    model = PolicyClassifier(labels=LABELS).fit(texts[:250], Y, unlabeled=texts[250:400])
    assert (model.n_train_, model.n_self_trained_) == (250, 150)  # fewer pool clauses than labeled: all go


def test_pool_with_other_features_is_refused(data):
    _, X, Y, pool, _ = data
    with pytest.raises(InputError, match="unlabeled has 3 feature columns but the labeled rows have"):
        PolicyClassifier(labels=LABELS).fit_features(X, Y, unlabeled=pool[:, :3])


def test_train_model_passes_the_pool(data):
    featurizer, X, Y, pool, texts = data
    examples = [Example(str(i), texts[i], tuple(np.array(LABELS)[Y[i].astype(bool)])) for i in range(250)]
    result = train_model(examples, LABELS, holdout=0, featurizer=featurizer, features=X, unlabeled=pool)
    assert result.model.n_self_trained_ == 250
    off = train_model(examples, LABELS, holdout=0, featurizer=featurizer, features=X, unlabeled=pool, self_training=0)
    assert off.model.n_self_trained_ == 0


def test_setting_is_read_and_bounded(monkeypatch):
    assert Settings().self_training == 1000
    monkeypatch.setenv("ANNOTATOR_SELF_TRAINING", "0")
    assert Settings.from_env().self_training == 0
    monkeypatch.setenv("ANNOTATOR_SELF_TRAINING", "-3")
    with pytest.raises(InputError, match="^ANNOTATOR_SELF_TRAINING must be from 0 to 1000000, got -3$"):
        Settings.from_env()
