"""Platt scaling by Newton's method: the same fit as scikit-learn's LogisticRegression, much faster."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from annotator.model.calibration import PLATT_C, fit_platt


@pytest.mark.parametrize("n, positives, shift", [(1000, 0.05, 2.0), (300, 0.3, 0.5), (60, 0.1, 4.0)])
def test_platt_matches_scikit_learn_logistic_regression(n, positives, shift):
    rng = np.random.default_rng(n)
    y = (rng.random(n) < positives).astype(int)
    y[:2] = [0, 1]
    scores = rng.normal(size=n) + shift * y - 1.0
    expected = LogisticRegression(C=PLATT_C, tol=1e-12, max_iter=10_000).fit(scores[:, None], y)
    a, b = fit_platt(scores, y)
    assert a == pytest.approx(expected.coef_[0, 0], rel=1e-4, abs=1e-6)
    assert b == pytest.approx(expected.intercept_[0], rel=1e-4, abs=1e-6)


def test_perfectly_separated_scores_still_give_a_finite_increasing_map():
    scores = np.array([-3.0, -2.0, -1.0, 1.0, 2.0, 3.0])
    a, b = fit_platt(scores, np.array([0, 0, 0, 1, 1, 1]))
    assert np.isfinite([a, b]).all() and a > 0
    proba = 1 / (1 + np.exp(-(a * scores + b)))
    assert (proba[3:] > 0.99).all() and (proba[:3] < 0.01).all()


def test_scores_that_carry_no_signal_give_a_flat_slope():
    rng = np.random.default_rng(0)
    scores = rng.normal(size=500)
    y = (rng.random(500) < 0.2).astype(int)
    a, b = fit_platt(scores, y)
    assert abs(a) < 0.3
    assert 1 / (1 + np.exp(-b)) == pytest.approx(y.mean(), abs=0.03)
