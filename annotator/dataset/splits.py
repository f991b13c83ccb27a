"""Iterative stratification for multi-label data, over groups of rows that must stay together.

The algorithm is Sechidis, Tsoumakas and Vlahavas (2011), "On the Stratification of Multi-Label
Data", as implemented by ``iterstrat.ml_stratifiers.IterativeStratification``, extended to groups:
each group (near-duplicate or overlapping clauses, see :mod:`annotator.dataset.cleaning`) is placed as one
unit, weighted by its number of rows and its per-label row counts, so a split's size and label counts
are measured in rows, not groups. iterstrat itself cannot keep groups together, and its
representative-row workaround (one row per group with the union of labels) miscounts groups that
hold several rows. Randomness comes only from ``seed``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..errors import InputError

SPLIT_NAMES = ("train", "dev", "test")
DEFAULT_RATIOS = (0.8, 0.1, 0.1)


def check_ratios(ratios: Sequence[float] | np.ndarray, n_splits: int | None = None) -> np.ndarray:
    """Return ``ratios`` as an array after checking they are non-negative and sum to 1."""
    try:
        values = np.asarray([float(r) for r in ratios], dtype=float)
    except (TypeError, ValueError) as exc:
        raise InputError(f"split ratios must be numbers, got {ratios!r}") from exc
    if n_splits is not None and len(values) != n_splits:
        raise InputError(f"expected {n_splits} split ratios (train, dev, test), got {len(values)}: {ratios!r}")
    if len(values) < 2 or np.any(values < 0) or not np.isclose(values.sum(), 1.0, atol=1e-6):
        raise InputError(
            f"split ratios must be at least two non-negative numbers summing to 1, got {tuple(ratios)!r}; "
            "e.g. (0.8, 0.1, 0.1)"
        )
    return values


def _pick(candidates: np.ndarray, rng: np.random.Generator) -> int:
    """One of ``candidates``, at random when there are several."""
    return int(candidates[0] if len(candidates) == 1 else candidates[rng.integers(len(candidates))])


def stratify_groups(
    Y: np.ndarray,
    ratios: Sequence[float] | np.ndarray,
    *,
    groups: Sequence[int] | np.ndarray | None = None,
    seed: int = 0,
) -> np.ndarray:
    """Assign every row to a fold so each label is spread by ``ratios`` and groups stay whole.

    Parameters
    ----------
    Y : ndarray of shape (n_samples, n_labels)
        0/1 label matrix.
    ratios : sequence or 1-d array of float
        Wanted share of rows per fold, summing to 1 (e.g. ``(0.8, 0.1, 0.1)``).
    groups : array-like of shape (n_samples,), optional
        Group id per row; rows of one group land in the same fold. Default: every row alone.
    seed : int
        Seed of the only random generator used (row order and tie-breaks).

    Returns
    -------
    ndarray of shape (n_samples,)
        Fold index per row, in ``range(len(ratios))``.

    Raises
    ------
    InputError
        If ``ratios`` are invalid or ``groups`` has the wrong length.

    Examples
    --------
    >>> Y = np.array([[1, 0], [1, 0], [0, 1], [0, 1]])
    >>> folds = stratify_groups(Y, (0.5, 0.5), seed=0)
    >>> sorted(Y[folds == 0].sum(axis=0).tolist())
    [1, 1]
    """
    r = check_ratios(ratios)
    Y = np.asarray(Y, dtype=np.int64)
    if Y.ndim != 2:
        raise InputError(f"Y must be a 2-d 0/1 matrix, got shape {Y.shape}")
    n_rows = Y.shape[0]
    group_of: np.ndarray  # any ids at first, then their index among the distinct ids
    if groups is None:
        group_of = np.arange(n_rows)
    else:
        group_of = np.asarray(groups)
        if group_of.shape != (n_rows,):
            raise InputError(f"groups has {group_of.shape[0] if group_of.ndim else 0} entries for {n_rows} rows")
    _, group_of = np.unique(group_of, return_inverse=True)
    n_groups = int(group_of.max()) + 1 if n_rows else 0
    counts: np.ndarray = np.zeros((n_groups, Y.shape[1]), dtype=np.int64)  # (n_groups, n_labels)
    np.add.at(counts, group_of, Y)
    weights = np.bincount(group_of, minlength=n_groups).astype(float)

    rng = np.random.default_rng(seed)
    # Random order (iterstrat's shuffle=True), big groups first: small ones then even out the counts.
    order = rng.permutation(n_groups)
    order = order[np.argsort(-weights[order], kind="stable")]
    counts, weights = counts[order], weights[order]
    wanted_rows = r * weights.sum()
    wanted_labels = np.outer(r, counts.sum(axis=0)).astype(float)
    fold_of = np.full(n_groups, -1, dtype=np.int64)
    has_label = counts > 0

    pending = np.ones(n_groups, dtype=bool)
    while pending.any():
        remaining = counts[pending].sum(axis=0)
        if not remaining.any():
            break
        # The rarest label first: its few rows decide its spread, later labels have rows to spare.
        rarest = np.flatnonzero(remaining == remaining[remaining > 0].min())
        label = _pick(rarest, rng)
        for g in np.flatnonzero(pending & has_label[:, label]):
            best = np.flatnonzero(wanted_labels[:, label] == wanted_labels[:, label].max())
            if len(best) > 1:
                best = best[wanted_rows[best] == wanted_rows[best].max()]
            fold = _pick(best, rng)
            fold_of[g] = fold
            pending[g] = False
            wanted_labels[fold] -= counts[g]
            wanted_rows[fold] -= weights[g]
    for g in np.flatnonzero(pending):  # groups without any label: fill the folds by size
        fold = _pick(np.flatnonzero(wanted_rows == wanted_rows.max()), rng)
        fold_of[g] = fold
        wanted_rows[fold] -= weights[g]

    folds_by_group = np.empty(n_groups, dtype=np.int64)
    folds_by_group[order] = fold_of
    return folds_by_group[group_of]


def split_rows(
    Y: np.ndarray,
    ratios: Sequence[float] | np.ndarray = DEFAULT_RATIOS,
    *,
    groups: Sequence[int] | np.ndarray | None = None,
    seed: int = 0,
) -> dict[str, np.ndarray]:
    """Split rows into train/dev/test by group-aware iterative stratification.

    Returns
    -------
    dict
        ``{"train": indices, "dev": indices, "test": indices}``, each sorted ascending.
    """
    folds = stratify_groups(Y, check_ratios(ratios, len(SPLIT_NAMES)), groups=groups, seed=seed)
    return {name: np.flatnonzero(folds == k) for k, name in enumerate(SPLIT_NAMES)}


def group_folds(
    Y: np.ndarray, n_folds: int, *, groups: Sequence[int] | np.ndarray | None = None, seed: int = 0
) -> list[tuple[np.ndarray, np.ndarray]]:
    """``(train_idx, test_idx)`` pairs for K-fold cross-validation by group-aware stratification."""
    if n_folds < 2:
        raise InputError(f"cross-validation needs at least 2 folds, got {n_folds}")
    folds = stratify_groups(Y, np.full(n_folds, 1.0 / n_folds), groups=groups, seed=seed)
    return [(np.flatnonzero(folds != k), np.flatnonzero(folds == k)) for k in range(n_folds)]


def proportion_deviation(Y: np.ndarray, assignment: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Per split, each label's share of rows minus its share in the whole data (in proportion units)."""
    Y = np.asarray(Y)
    whole = Y.mean(axis=0) if len(Y) else np.zeros(Y.shape[1])
    return {
        name: (Y[idx].mean(axis=0) - whole) if len(idx) else np.zeros(Y.shape[1]) for name, idx in assignment.items()
    }
