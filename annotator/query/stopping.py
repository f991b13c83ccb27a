"""When to stop labeling: what the next labels should add, and whether predictions have settled.

Two signals from the model versions a project already has, for project leads:

- **Expected gain.** An inverse power law ``macro_f1(n) = a - b * n ** -c`` (the usual shape of a
  learning curve, Figueroa et al. 2012) is fitted to the versions' held-out macro-F1 against their
  label counts; the gain of the next ``n_next`` labels is read off the fit, with an interval that
  covers both the fit's noise and the exponents ``c`` the data cannot rule out.
- **Stabilizing predictions** (Bloodgood & Vijay-Shanker 2009): Cohen's kappa between two
  consecutive versions' 0/1 decisions on the unlabeled pool. When several versions in a row agree
  almost perfectly, more labels are changing little of what the model would say.

:func:`stop_signal` combines them into a :class:`StopSignal` with a plain sentence. Pure functions:
no store, no web framework. docs/benchmarks.md ("Active learning (simulator)") measures where the
signal says stop against where 95% of the full-data macro-F1 was actually reached.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
from scipy import stats

from ..errors import InputError

log = logging.getLogger(__name__)

# Defaults chosen with the simulator on folds 0-1 of the seed file and reported on folds 2-4
# (docs/benchmarks.md): stop when the next 200 labels should add less than 0.01 macro-F1 (upper
# end of the interval) and 3 versions in a row agree at kappa >= 0.92 on the unlabeled pool
# (Bloodgood & Vijay-Shanker's window of 3; their 0.99 was never reached by versions 50 labels
# apart on this data before 2,000 labels). 0.92 is for the self-trained classifier (the default):
# its consecutive versions agree ~0.02 less than plain ones (median 0.94 against 0.96 at 1,500-2,000
# labels), and at the earlier 0.96 most self-trained runs never stopped; without self-training
# (``self_training = 0``) 0.96 stopped at about the same distance from 95% of full (docs/benchmarks.md).
MIN_GAIN = 0.01
AGREEMENT_THRESHOLD = 0.92
MIN_STABLE_VERSIONS = 3
MIN_CURVE_POINTS = 3
MIN_SPACING = 50  # labels between the versions the curve is fitted on (the simulator's batch)
PERSIST_LABELS = 100  # the gain must have stayed low over the last 100 labels
_EXPONENTS = np.linspace(0.05, 2.0, 40)


@dataclass(frozen=True)
class VersionPoint:
    """One model version as the stopping signal sees it."""

    version: int
    n_labels: int  # labels the version was trained on
    macro_f1: float | None  # its held-out macro-F1 (None while pending)
    pool_agreement: float | None  # kappa with the previous version's decisions on the unlabeled pool


@dataclass(frozen=True)
class StopSignal:
    """What the next labels should bring, how settled predictions are, and the verdict."""

    n_next: int
    expected_gain: float | None
    gain_low: float | None
    gain_high: float | None
    stable_versions: int
    stop: bool
    sentence: str

    def to_dict(self) -> dict:
        """Plain JSON values, for /health and the dashboard."""
        return asdict(self)


def decision_agreement(Y_previous: np.ndarray, Y_new: np.ndarray) -> float:
    """Cohen's kappa over all (clause, label) 0/1 decisions of two model versions.

    The stabilizing-predictions measure of Bloodgood & Vijay-Shanker (2009), taken over every
    cell of the two decision matrices. When both versions make one constant decision everywhere
    (chance agreement 1), the kappa is 1 if they agree and 0 otherwise.

    Parameters
    ----------
    Y_previous, Y_new : (n_clauses, n_labels) 0/1 decisions on the same unlabeled clauses.

    Returns
    -------
    float
        Kappa in [-1, 1]; 1 is identical decisions.

    Raises
    ------
    InputError
        If the shapes differ or there are no decisions.

    Examples
    --------
    >>> round(decision_agreement(np.array([[1, 0], [0, 0]]), np.array([[1, 0], [0, 1]])), 3)
    0.5
    """
    a, b = np.asarray(Y_previous), np.asarray(Y_new)
    if a.shape != b.shape:
        raise InputError(
            f"decision matrices differ in shape: {a.shape} and {b.shape}; "
            "score both versions on the same unlabeled clauses"
        )
    if a.size == 0:
        raise InputError("no decisions to compare: the unlabeled pool is empty")
    a, b = a.ravel().astype(bool), b.ravel().astype(bool)
    observed = float(np.mean(a == b))
    pa, pb = float(a.mean()), float(b.mean())
    chance = pa * pb + (1 - pa) * (1 - pb)
    if chance >= 1.0:
        return 1.0 if observed == 1.0 else 0.0
    return (observed - chance) / (1.0 - chance)


@dataclass(frozen=True)
class CurveGain:
    """The learning-curve fit's gain for the next labels, with its interval (None: no interval)."""

    gain: float
    low: float | None
    high: float | None
    exponent: float


def spaced(n_labels: Sequence[float] | np.ndarray, min_spacing: float) -> np.ndarray:
    """Indices of the points kept ``min_spacing`` labels apart, walking back from the latest.

    Versions a few labels apart share nearly all their training data, so their figures are not
    independent; without thinning, a retrain every 10 labels would make the curve fit look five
    times surer than one every 50.
    """
    n = np.asarray(n_labels, dtype=float)
    kept: list[int] = []
    for i in np.argsort(-n, kind="stable"):
        if not kept or n[kept[-1]] - n[i] >= min_spacing:
            kept.append(int(i))
    return np.array(kept[::-1], dtype=int)


def learning_curve_gain(
    n_labels: Sequence[float], macro_f1: Sequence[float], n_next: int, *, level: float = 0.95, min_spacing: float = 0
) -> CurveGain | None:
    """Gain in macro-F1 from the last label count to ``n_next`` more, by an inverse power law fit.

    ``macro_f1 = a - b * n ** -c`` with ``b >= 0`` (more labels never predicted to hurt): for each
    exponent ``c`` on a grid, ``a`` and ``b`` are a least-squares line in ``n ** -c``; the fit is the
    exponent with the least squared error. The interval (with at least 4 points) takes every
    exponent whose error is within the profile-likelihood ``level`` region and that exponent's
    ``t`` interval on ``b``, clipped at 0. Points closer than ``min_spacing`` labels to a later
    kept point are dropped first (:func:`spaced`).

    Returns
    -------
    CurveGain or None
        None with fewer than 3 distinct label counts.
    """
    n = np.asarray(n_labels, dtype=float)
    f = np.asarray(macro_f1, dtype=float)
    if min_spacing and len(n):
        keep = spaced(n, min_spacing)
        n, f = n[keep], f[keep]
    if len(np.unique(n)) < MIN_CURVE_POINTS or (n <= 0).any():
        return None
    last = float(n.max())
    fits = []
    for c in _EXPONENTS:
        x = n**-c
        dx = last**-c - (last + n_next) ** -c  # > 0: how much n ** -c falls over the next labels
        xc = x - x.mean()
        sxx = float(xc @ xc)
        slope = float(xc @ (f - f.mean()) / sxx) if sxx > 0 else 0.0
        b = max(-slope, 0.0)
        residual = f - (f.mean() + b * x.mean()) + b * x  # f - (a - b x) with a = mean(f) + b mean(x)
        fits.append((float(residual @ residual), b, dx, sxx, float(c)))
    sse = np.array([fit[0] for fit in fits])
    best = int(np.argmin(sse))
    sse_min, b_best, dx_best, _, c_best = fits[best]
    gain = float(b_best * dx_best)
    dof = len(n) - 3
    if dof < 1:
        return CurveGain(gain, None, None, c_best)
    s2 = sse_min / dof
    region = sse <= sse_min * (1.0 + stats.f.ppf(level, 1, dof) / dof) + 1e-15
    t = stats.t.ppf(0.5 + level / 2, dof)
    lows, highs = [], []
    for (_, b, dx, sxx, _), inside in zip(fits, region):
        if inside and sxx > 0:
            half = t * np.sqrt(s2 / sxx)
            lows.append(float(max(b - half, 0.0) * dx))
            highs.append(float(max(b + half, 0.0) * dx))
    return CurveGain(gain, min(lows, default=gain), max(highs, default=gain), c_best)


def _f1s(points: Sequence[VersionPoint]) -> list[float]:
    """The held-out macro-F1 of versions that have one (callers pass only scored versions)."""
    return [float(p.macro_f1) for p in points if p.macro_f1 is not None]


def stop_signal(
    points: Sequence[VersionPoint],
    *,
    n_next: int = 200,
    min_gain: float = MIN_GAIN,
    agreement_threshold: float = AGREEMENT_THRESHOLD,
    min_stable: int = MIN_STABLE_VERSIONS,
    min_spacing: int = MIN_SPACING,
    persist: int = PERSIST_LABELS,
) -> StopSignal:
    """Whether labeling more is worth it, from the project's model versions.

    Parameters
    ----------
    points : the model versions, in any order (sorted by version here).
    n_next : the next labels the expected gain is about.
    min_gain : below this gain over the next ``n_next`` labels (the upper end of its interval)
        labeling more is not worth it.
    agreement_threshold : a version is stable when its ``pool_agreement`` is at least this.
    min_stable : consecutive stable latest versions needed to stop.
    min_spacing : the curve is fitted on versions at least this many labels apart (the latest
        kept), so versions every 10 labels do not make the fit look surer than it is.
    persist : the gain's upper end must also have been below ``min_gain`` at every version of
        the last ``persist`` labels: one lucky fit among many looks does not stop labeling.

    Returns
    -------
    StopSignal
        ``stop`` only when both the gain's upper bound is below ``min_gain`` and the latest
        ``min_stable`` versions are stable.

    Raises
    ------
    InputError
        If ``n_next`` is not a positive integer.

    Examples
    --------
    >>> stop_signal([]).sentence
    'not enough versions yet: no model has been trained'
    """
    if isinstance(n_next, bool) or not isinstance(n_next, (int, np.integer)) or n_next < 1:
        raise InputError(f"n_next must be a positive integer, got {n_next!r}")
    ordered = sorted(points, key=lambda p: p.version)
    if not ordered:
        return StopSignal(n_next, None, None, None, 0, False, "not enough versions yet: no model has been trained")
    scored = [p for p in ordered if p.macro_f1 is not None and p.n_labels > 0]
    fit = learning_curve_gain([p.n_labels for p in scored], _f1s(scored), n_next, min_spacing=min_spacing)
    stable = 0
    for p in reversed(ordered):
        if p.pool_agreement is None or p.pool_agreement < agreement_threshold:
            break
        stable += 1
    stop = bool(
        fit is not None
        and fit.high is not None
        and fit.high < min_gain
        and stable >= min_stable
        and _low_gain_since(scored, scored[-1].n_labels - persist, n_next, min_gain, min_spacing)
    )
    if fit is None:
        have = len(spaced([p.n_labels for p in scored], min_spacing)) if scored else 0
        gain_text = (
            f"not enough versions yet to fit a learning curve ({have} with a held-out "
            f"macro-F1 {min_spacing} labels apart, {MIN_CURVE_POINTS} needed)"
        )
    else:
        gain_text = f"about {fit.gain:+.3f} macro-F1 per {n_next} more labels"
        if fit.low is not None:
            gain_text += f" ({fit.low:+.3f} to {fit.high:+.3f})"
    latest = ordered[-1].pool_agreement
    if stable:
        stable_text = f"predictions stable for {stable} version{'s' if stable > 1 else ''}"
    elif latest is None:
        stable_text = "no agreement between versions yet"
    else:
        stable_text = f"predictions still changing (agreement {latest:.3f} with the previous version)"
    sentence = f"{gain_text}; {stable_text}"
    if stop:
        sentence += "; more labels are unlikely to be worth it"
    return StopSignal(
        n_next,
        None if fit is None else fit.gain,
        None if fit is None else fit.low,
        None if fit is None else fit.high,
        stable,
        stop,
        sentence,
    )


def _low_gain_since(
    scored: Sequence[VersionPoint], since: float, n_next: int, min_gain: float, min_spacing: float
) -> bool:
    """Whether the fit on the versions up to each scored version from ``since`` on (the earlier
    ones included) had its gain's upper end below ``min_gain``."""
    for k in range(len(scored)):
        if scored[k].n_labels < since:
            continue
        fit = learning_curve_gain(
            [p.n_labels for p in scored[: k + 1]], _f1s(scored[: k + 1]), n_next, min_spacing=min_spacing
        )
        if fit is None or fit.high is None or fit.high >= min_gain:
            return False
    return True
