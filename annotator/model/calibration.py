"""Platt scaling: ``proba = sigmoid(a * score + b)`` fitted by Newton's method on one score column.

A classifier is recalibrated for every label at every retrain (27 labels x 4 fits each time), so
the two-parameter fit must cost microseconds, not the ~10 ms a general-purpose
``LogisticRegression`` spends on solver set-up and input checks. This is the same objective
(log-loss with an L2 penalty ``1 / (2 C)`` on the slope only, as scikit-learn's intercept is
unpenalized), solved exactly.
"""

from __future__ import annotations

import numpy as np

PLATT_C = 1e4  # the inverse penalty: nearly unregularized, but finite on separable scores
MAX_NEWTON_STEPS = 100
TOLERANCE = 1e-10


def fit_platt(scores: np.ndarray, y: np.ndarray, *, C: float = PLATT_C) -> tuple[float, float]:
    """``(a, b)`` minimizing ``sum(log-loss(y, sigmoid(a*s + b))) + a**2 / (2 C)``.

    Parameters
    ----------
    scores : (n,) real scores (no NaN).
    y : (n,) 0/1 targets with both classes present.

    Examples
    --------
    >>> a, b = fit_platt(np.array([-2.0, -1.0, 1.0, 2.0, 0.5]), np.array([0, 0, 1, 1, 0]))
    >>> a > 0
    True
    """
    s = np.asarray(scores, dtype=np.float64)
    t = np.asarray(y, dtype=np.float64)
    a, b = 0.0, float(np.log((t.sum() + 1.0) / (len(t) - t.sum() + 1.0)))
    penalty = 1.0 / C
    objective = _objective(s, t, a, b, penalty)
    for _ in range(MAX_NEWTON_STEPS):
        p = _sigmoid(a * s + b)
        r = p - t
        g = np.array([r @ s + penalty * a, r.sum()])
        w = p * (1.0 - p)
        H = np.array([[w @ (s * s) + penalty, w @ s], [w @ s, w.sum() + 1e-12]])
        try:
            step = np.linalg.solve(H, g)
        except np.linalg.LinAlgError:
            step = g / (np.abs(np.diag(H)) + 1e-12)
        scale = 1.0
        while scale > 1e-8:  # backtracking: Newton on a logistic loss can overshoot far from the optimum
            a_new, b_new = a - scale * step[0], b - scale * step[1]
            new = _objective(s, t, a_new, b_new, penalty)
            if new <= objective:
                break
            scale /= 2
        else:
            break
        converged = objective - new < TOLERANCE * max(1.0, abs(objective))
        a, b, objective = a_new, b_new, new
        if converged:
            break
    return float(a), float(b)


def _objective(s: np.ndarray, t: np.ndarray, a: float, b: float, penalty: float) -> float:
    z = a * s + b
    # log(1 + exp(z)) - t*z, computed without overflow
    return float(np.sum(np.logaddexp(0.0, z) - t * z) + 0.5 * penalty * a * a)


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(z, -40, 40)))
