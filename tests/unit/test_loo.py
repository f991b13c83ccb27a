"""loo: approximate leave-group-out scores land near the scores of real refits without the group,
on real seed clauses, and the classifier calibrated on them predicts as well as one calibrated on
fold refits."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.metrics import f1_score

from annotator import InputError
from annotator.model.features import PolicyTextFeaturizer
from annotator.labels import load_label_config
from annotator.model.loo import LeaveGroupOut
from annotator.model.classifier import PolicyClassifier, _fit_label
from annotator.text.seedset import read_labeled_file
from annotator.model.training import label_matrix
from tests.conftest import seed_lines

LABELS = load_label_config().labels


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    path = tmp_path_factory.mktemp("loo") / "seed.tsv"
    path.write_text("\n".join(seed_lines(700, seed=5)) + "\n", encoding="utf-8")
    examples = read_labeled_file(path, LABELS).examples
    texts = [e.text for e in examples]
    X = PolicyTextFeaturizer().fit_transform(texts)
    return X.tocsr(), label_matrix(examples, LABELS), texts


def _one_label_fit(model, X, y):
    """Coef, intercept and NB weights of one label, as PolicyClassifier fits it."""
    weights = model._nb_weights(X, y[:, None])[:, 0]
    coef, intercept = _fit_label(
        X.astype(np.float64), y, weights, C=model.C, class_weight=model.class_weight, random_state=0
    )
    return coef, intercept, weights


def test_scores_move_most_of_the_way_to_a_real_refit_without_the_clause(data):
    X, Y, _ = data
    j = int(np.argmax(Y.sum(axis=0)))  # the most frequent label: many positives to leave out
    y = Y[:, j]
    model = PolicyClassifier(labels=LABELS)
    coef, intercept, weights = _one_label_fit(model, X, y)
    groups = np.arange(len(y))
    approx = LeaveGroupOut(X, groups).scores(
        y[:, None], weights[:, None], coef[None, :], np.array([intercept]), C=model.C, class_weight=model.class_weight
    )[:, 0]
    fitted = np.asarray(X @ coef).ravel() + intercept
    rng = np.random.default_rng(0)
    probe = np.concatenate(
        [rng.choice(np.flatnonzero(y == 1), 12, replace=False), rng.choice(np.flatnonzero(y == 0), 12, replace=False)]
    )
    refit = []
    for i in probe:
        keep = np.arange(len(y)) != i
        c, b, _ = _one_label_fit(model, X[keep], y[keep])
        refit.append((X[i] @ c).item() + b)
    refit = np.array(refit)
    # The training score is optimistic (the model saw the clause); the approximation removes most of that.
    assert np.abs(approx[probe] - refit).mean() < 0.5 * np.abs(fitted[probe] - refit).mean()
    assert np.corrcoef(approx[probe], refit)[0, 1] > 0.95
    # Leaving a positive out lowers its score, leaving a negative out raises it.
    assert (approx[probe[:12]] < fitted[probe[:12]]).all() and (approx[probe[12:]] > fitted[probe[12:]]).all()


def test_a_clause_and_its_copy_are_left_out_together(data):
    X, Y, _ = data
    j = int(np.argmax(Y.sum(axis=0)))
    first = int(np.flatnonzero(Y[:, j] == 1)[0])
    X2 = sp.vstack([X, X[first]]).tocsr()  # an exact copy of a positive clause
    y = np.append(Y[:, j], 1)
    model = PolicyClassifier(labels=LABELS)
    coef, intercept, weights = _one_label_fit(model, X2, y)
    args = (y[:, None], weights[:, None], coef[None, :], np.array([intercept]))
    kw = dict(C=model.C, class_weight=model.class_weight)
    apart = LeaveGroupOut(X2, np.arange(len(y))).scores(*args, **kw)[first, 0]
    together = np.arange(len(y))
    together[-1] = first
    joint = LeaveGroupOut(X2, together).scores(*args, **kw)
    keep = np.ones(len(y), dtype=bool)
    keep[[first, len(y) - 1]] = False
    c, b, _ = _one_label_fit(model, X2[keep], y[keep])
    refit = (X2[first] @ c).item() + b
    # With its copy still in training the clause looks easy; left out with it, its score drops toward the refit.
    assert joint[first, 0] < apart
    assert abs(joint[first, 0] - refit) < abs(apart - refit)
    assert joint[first, 0] == pytest.approx(joint[-1, 0])


def test_loo_calibration_predicts_as_well_as_fold_refits(data):
    X, Y, _ = data
    train, test = np.arange(500), np.arange(500, X.shape[0])
    f1 = {}
    for cv in ("loo", 3):
        model = PolicyClassifier(labels=LABELS, cv=cv).fit_features(X[train], Y[train])
        f1[cv] = f1_score(Y[test], model.decide(model.predict_proba_features(X[test])), average="micro")
        assert (model.calibration_[:, 0] > 0).all()
    assert f1["loo"] >= f1[3] - 0.02


def test_an_unknown_calibration_method_is_named_in_the_error(data):
    X, Y, _ = data
    with pytest.raises(InputError, match="cv must be 'loo'.*'kfold'"):
        PolicyClassifier(labels=LABELS, cv="kfold").fit_features(X[:200], Y[:200])
