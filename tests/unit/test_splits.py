"""Group-aware iterative stratification: groups stay whole, label shares follow the ratios, seeded."""

from __future__ import annotations

import numpy as np
import pytest

from annotator.errors import InputError
from annotator.dataset.splits import (
    SPLIT_NAMES,
    check_ratios,
    group_folds,
    proportion_deviation,
    split_rows,
    stratify_groups,
)


def synthetic(n=2000, n_labels=8, seed=1):
    """Multi-label data with skewed label frequencies, 0-3 labels per row, and groups of 1-4 rows."""
    rng = np.random.default_rng(seed)
    freq = np.linspace(0.02, 0.3, n_labels)
    Y = (rng.random((n, n_labels)) < freq).astype(int)
    groups = np.repeat(np.arange(n), rng.integers(1, 5, size=n))[:n]
    return Y, groups


def test_ratios_are_checked():
    assert check_ratios((0.8, 0.1, 0.1)).tolist() == [0.8, 0.1, 0.1]
    with pytest.raises(InputError) as err:
        check_ratios((0.8, 0.3, 0.1))
    assert str(err.value) == (
        "split ratios must be at least two non-negative numbers summing to 1, got (0.8, 0.3, 0.1); e.g. (0.8, 0.1, 0.1)"
    )
    with pytest.raises(InputError, match="expected 3 split ratios"):
        check_ratios((0.5, 0.5), 3)
    with pytest.raises(InputError, match="must be numbers"):
        check_ratios(("a", 0.5))


def test_split_covers_every_row_once_and_sizes_follow_ratios():
    Y, groups = synthetic()
    parts = split_rows(Y, (0.8, 0.1, 0.1), groups=groups, seed=0)
    assert list(parts) == list(SPLIT_NAMES)
    together = np.concatenate(list(parts.values()))
    assert sorted(together.tolist()) == list(range(len(Y)))
    sizes = {name: len(idx) / len(Y) for name, idx in parts.items()}
    assert sizes["train"] == pytest.approx(0.8, abs=0.01)
    assert sizes["dev"] == pytest.approx(0.1, abs=0.01)
    assert sizes["test"] == pytest.approx(0.1, abs=0.01)


def test_groups_never_cross_splits():
    Y, groups = synthetic()
    folds = stratify_groups(Y, (0.8, 0.1, 0.1), groups=groups, seed=3)
    for g in np.unique(groups):
        assert len(set(folds[groups == g].tolist())) == 1


def test_label_shares_within_two_points_and_every_label_everywhere():
    Y, groups = synthetic()
    parts = split_rows(Y, groups=groups, seed=0)
    deviation = proportion_deviation(Y, parts)
    assert max(float(np.abs(d).max()) for d in deviation.values()) < 0.02
    for idx in parts.values():
        assert (Y[idx].sum(axis=0) > 0).all()
    # Each label's positives are spread like the rows: ~10% of them in test.
    share_in_test = Y[parts["test"]].sum(axis=0) / Y.sum(axis=0)
    assert np.abs(share_in_test - 0.1).max() < 0.03


def test_same_seed_same_split_other_seed_other_split():
    Y, groups = synthetic()
    a = stratify_groups(Y, (0.8, 0.1, 0.1), groups=groups, seed=5)
    b = stratify_groups(Y, (0.8, 0.1, 0.1), groups=groups, seed=5)
    c = stratify_groups(Y, (0.8, 0.1, 0.1), groups=groups, seed=6)
    assert (a == b).all()
    assert (a != c).any()


def test_rows_without_labels_and_empty_input():
    Y = np.zeros((10, 3), dtype=int)
    folds = stratify_groups(Y, (0.6, 0.2, 0.2), seed=0)
    assert np.bincount(folds, minlength=3).tolist() == [6, 2, 2]
    empty = split_rows(np.zeros((0, 3)), seed=0)
    assert all(len(idx) == 0 for idx in empty.values())


def test_bad_groups_shape():
    with pytest.raises(InputError, match="groups has 2 entries for 3 rows"):
        stratify_groups(np.ones((3, 2)), (0.5, 0.5), groups=[0, 1])


def test_group_folds_partition_rows():
    Y, groups = synthetic(n=500)
    folds = group_folds(Y, 5, groups=groups, seed=0)
    assert len(folds) == 5
    tests = np.concatenate([test for _, test in folds])
    assert sorted(tests.tolist()) == list(range(500))
    for train, test in folds:
        assert not set(train.tolist()) & set(test.tolist())
        assert not set(groups[train].tolist()) & set(groups[test].tolist())
    with pytest.raises(InputError, match="at least 2 folds"):
        group_folds(Y, 1)
