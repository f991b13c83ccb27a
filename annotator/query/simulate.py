"""Replay active learning on labeled data: how many labels does each strategy need?

An oracle answers every query from a labeled pool file; after every batch the classifier is
refitted (only the classifier: the featurizer is fitted once, unsupervised, on the pool and test
texts) and measured on a separate test file it never trains on. Runs are repeated over several
seeds and the learning curves averaged, so users can choose a strategy on their own data.

``simulate_files`` is what ``annotator simulate`` calls; its JSON result has ``curves``
(``{strategy: [{labels, micro_f1, macro_f1}, ...]}``, means over seeds) and ``full_data`` (the
same classifier trained on the whole pool), plus the labels each strategy needs to reach 95% of the
full-data macro-F1. The key names are an interface other tools read; add keys, never rename them.

``simulate_folds`` (``annotator simulate --folds K``) splits one labeled set into K folds with
near-duplicates kept together, runs :func:`simulate` with each chosen fold as the test set, and
compares every strategy with random in pairs by fold and seed (:func:`paired_summary`: gain at
each label count, area under the curve, labels to 95% of full data relative to random, with 95%
t intervals) and replays the stopping signal along every run (:func:`stopping_replay`). Its
result has only new keys (``per_fold``, ``paired``, ``stopping``, ...). Choose a strategy on some
folds and report it on the others.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import scipy.sparse as sp
from scipy import stats

from ..errors import InputError
from ..model.features import PolicyTextFeaturizer
from ..model.classifier import PolicyClassifier
from ..text.normalize import match_key
from ..optional import require
from ..text.near_duplicates import near_duplicate_groups
from ..text.seedset import read_labeled_file
from .stopping import VersionPoint, decision_agreement, stop_signal
from .strategies import (
    DEFAULT_STRATEGY,
    FeatureClassifier,
    Strategy,
    cold_start_batch,
    get_strategy,
    make_learner,
    select_batch,
)
from ..model.training import label_matrix, metrics

log = logging.getLogger(__name__)

# The classifier refitted after every simulated batch: the product's own, with its default
# parameters (calibration and threshold tuning included: skipping them, cv=1, lowers macro-F1 by
# ~0.04 between 400 and 1,600 labels and would misstate what users get). full_data uses it too.
SIMULATION_MODEL_PARAMS: dict = {}
TARGET_SHARE = 0.95

Progress = Callable[[str, int, int], None]  # (strategy, seed, labels so far)


def simulate(
    pool_texts: Sequence[str],
    Y_pool: np.ndarray,
    test_texts: Sequence[str],
    Y_test: np.ndarray,
    labels: Sequence[str],
    strategies: Sequence[str | Strategy] = ("default",),
    *,
    seed_size: int = 50,
    batch_size: int = 50,
    budget: int = 2000,
    seeds: int = 5,
    random_state: int = 0,
    first_seed: int = 0,
    model_params: dict | None = None,
    model_factory: Callable[..., PolicyClassifier] = PolicyClassifier,
    features: tuple[sp.spmatrix, sp.spmatrix] | None = None,
    cache_dir: str | Path | None = None,
    progress: Progress | None = None,
    track_agreement: bool = False,
) -> dict:
    """Simulate active learning for each strategy over ``seeds`` runs and average the curves.

    Parameters
    ----------
    pool_texts, Y_pool : the pool the oracle answers from (texts and 0/1 label matrix).
    test_texts, Y_test : the evaluation set (never trained on).
    labels : the label set (columns of the Y matrices).
    strategies : names in :data:`~annotator.query.strategies.STRATEGIES` (``"default"`` allowed) or
        Strategy objects; each is reported under its own name.
    seed_size : labels before the first model: the cold-start batch (random for ``random``).
    batch_size : labels per query round.
    budget : stop when this many clauses are labeled (capped at the pool size).
    seeds : runs per strategy; run ``s`` (``first_seed <= s < first_seed + seeds``) uses
        ``np.random.default_rng([random_state, s])`` and a model seeded with ``s``, so runs of
        seeds 0-1 and 2-4 can be computed apart and pooled (``curves_per_seed``).
    model_params : PolicyClassifier parameters (default :data:`SIMULATION_MODEL_PARAMS`).
    model_factory : builds the classifier from ``labels``, ``random_state`` and ``model_params``
        (default PolicyClassifier; benchmarks may pass a variant).
    features : precomputed ``(X_pool, X_test)``; by default a PolicyTextFeaturizer is fitted on
        all texts (unsupervised) and its features cached under ``cache_dir`` if given.
    progress : called as ``progress(strategy, seed, n_labeled)`` after every round.
    track_agreement : also record each round's ``pool_agreement`` in ``curves_per_seed`` (see
        :func:`run_once`; the fold mode uses it to replay the stopping signal).

    Returns
    -------
    dict
        ``curves``, ``curves_std``, ``curves_per_seed``, ``labels_to_target``, ``full_data``,
        ``target_macro_f1``, the run parameters and ``seconds``; see the module docstring.

    Raises
    ------
    InputError
        On an unknown strategy, bad sizes, or a pool smaller than the seed set.
    """
    start = time.perf_counter()
    chosen = [get_strategy(s) if isinstance(s, str) else s for s in strategies]
    names = [s.name for s in chosen]
    if len(set(names)) != len(names):
        raise InputError(f"strategy listed twice: {', '.join(names)}")
    for name, value in (("seed_size", seed_size), ("batch_size", batch_size), ("budget", budget), ("seeds", seeds)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise InputError(f"--{name.replace('_', '-')} must be a positive integer, got {value!r}")
    if isinstance(first_seed, bool) or not isinstance(first_seed, (int, np.integer)) or first_seed < 0:
        raise InputError(f"first_seed must be a non-negative integer, got {first_seed!r}")
    Y_pool, Y_test = np.asarray(Y_pool, dtype=np.int8), np.asarray(Y_test, dtype=np.int8)
    if len(pool_texts) < seed_size:
        raise InputError(f"the pool has {len(pool_texts)} clauses, fewer than --seed-size {seed_size}")
    budget = min(budget, len(pool_texts))
    params = dict(SIMULATION_MODEL_PARAMS if model_params is None else model_params)
    X_pool, X_test = features if features is not None else featurize(pool_texts, test_texts, cache_dir)

    def new_model(seed: int) -> PolicyClassifier:
        return model_factory(labels=tuple(labels), random_state=seed, **params)

    groups = near_duplicate_groups(pool_texts)
    full = FeatureClassifier(model=new_model(random_state)).fit(X_pool, Y_pool, groups=groups)
    full_metrics = _scores(full, X_test, Y_test, labels)
    target = TARGET_SHARE * full_metrics["macro_f1"]
    curves, spread, runs = {}, {}, {}
    for strategy in chosen:
        per_seed = []
        for s in range(first_seed, first_seed + seeds):
            per_seed.append(
                run_once(
                    strategy,
                    X_pool,
                    Y_pool,
                    X_test,
                    Y_test,
                    pool_texts,
                    labels,
                    model=new_model(s),
                    seed_size=seed_size,
                    batch_size=batch_size,
                    budget=budget,
                    rng=np.random.default_rng([random_state, s]),
                    groups=groups,
                    track_agreement=track_agreement,
                    progress=None if progress is None else functools.partial(progress, strategy.name, s),
                )
            )
        curves[strategy.name], spread[strategy.name] = _mean_curve(per_seed)
        runs[strategy.name] = per_seed
    return {
        "curves": curves,
        "curves_std": spread,
        "curves_per_seed": runs,
        "full_data": {"labels": int(len(pool_texts)), **full_metrics},
        "target_macro_f1": target,
        "labels_to_target": {name: labels_to_reach(curve, target) for name, curve in curves.items()},
        "labels_to_target_per_seed": {
            name: [labels_to_reach(c, target) for c in per_seed] for name, per_seed in runs.items()
        },
        "default_strategy": DEFAULT_STRATEGY,
        "strategies": names,
        "seeds": seeds,
        "first_seed": first_seed,
        "seed_size": seed_size,
        "batch_size": batch_size,
        "budget": budget,
        "n_pool": int(len(pool_texts)),
        "n_test": int(len(test_texts)),
        "model_params": params,
        "seconds": round(time.perf_counter() - start, 1),
    }


def run_once(
    strategy: Strategy,
    X_pool,
    Y_pool: np.ndarray,
    X_test,
    Y_test: np.ndarray,
    pool_texts: Sequence[str],
    labels: Sequence[str],
    *,
    model: PolicyClassifier,
    seed_size: int,
    batch_size: int,
    budget: int,
    rng: np.random.Generator,
    groups: np.ndarray | None = None,
    progress: Callable[[int], None] | None = None,
    track_agreement: bool = False,
) -> list[dict]:
    """One simulated run: cold start, then query/label/refit rounds through a modAL learner.

        ``groups``: near-duplicate group of each pool row, passed to the classifier's calibration
        folds as ``annotator train`` does. ``track_agreement``: every point after the first also gets
        ``pool_agreement``, the kappa between this and the previous model's decisions on the clauses
        still unlabeled (:func:`~annotator.query.stopping.decision_agreement`), for the stopping signal, and
    every point ``multi_label``, how many labeled clauses the oracle answered with two labels or more.

        With ``batch_size=10`` a run is what the live loop serves: it retrains every ``retrain_every``
        (10) labels and Label Studio serves the strategy's top-ranked clauses of :func:`select_batch`.
    """
    n_pool = X_pool.shape[0]
    if strategy.cold_start:
        first = np.asarray(cold_start_batch(pool_texts, labels, seed_size, rng=rng, X=X_pool), dtype=int)
    else:
        first = rng.choice(n_pool, seed_size, replace=False)
    labeled = np.zeros(n_pool, dtype=bool)
    labeled[first] = True
    learner = make_learner(
        model,
        strategy,
        X_training=X_pool[first],
        Y_training=Y_pool[first],
        groups=None if groups is None else groups[first],
        unlabeled=X_pool,
        random_state=int(rng.integers(2**31 - 1)),
    )
    n_train = len(first)
    curve = [{"labels": n_train, **_scores(learner.estimator, X_test, Y_test, labels)}]
    decisions = learner.estimator.predict(X_pool) if track_agreement else None
    multi = int((Y_pool[first].sum(axis=1) >= 2).sum())
    if track_agreement:
        curve[0]["multi_label"] = multi
    keys = np.array([match_key(t) for t in pool_texts], dtype=object)
    while n_train < budget and not labeled.all():
        free = np.flatnonzero(~labeled)
        n = int(min(batch_size, budget - n_train, len(free)))
        picked = select_batch(
            learner,
            X_pool[free],
            n,
            strategy=strategy,
            rng=rng,
            texts=[pool_texts[i] for i in free],
            labeled_texts=[pool_texts[i] for i in np.flatnonzero(labeled)],
        )
        new = free[np.asarray(picked, dtype=int)]
        if not len(new):
            break
        # The whole pool goes to the classifier's self-training, as the live loop passes the
        # project's clauses; the rows already labeled are left out by the classifier itself.
        learner.teach(X_pool[new], Y_pool[new], groups=None if groups is None else groups[new], unlabeled=X_pool)
        n_train += len(new)
        # The product never shows a clause whose normalized text is already labeled: its copies
        # leave the pool without counting as labels.
        labeled[free[np.isin(keys[free], keys[new])]] = True
        labeled[new] = True
        curve.append({"labels": n_train, **_scores(learner.estimator, X_test, Y_test, labels)})
        if track_agreement:
            multi += int((Y_pool[new].sum(axis=1) >= 2).sum())
            curve[-1]["multi_label"] = multi
            if not labeled.all():
                assert decisions is not None  # predicted before the loop when track_agreement is set
                previous, decisions = decisions, learner.estimator.predict(X_pool)
                curve[-1]["pool_agreement"] = round(decision_agreement(previous[~labeled], decisions[~labeled]), 5)
        if progress is not None:
            progress(n_train)
    return curve


def _scores(estimator: FeatureClassifier, X_test, Y_test: np.ndarray, labels: Sequence[str]) -> dict:
    result = metrics(Y_test, estimator.predict(X_test), labels)
    return {"micro_f1": round(result["micro_f1"], 4), "macro_f1": round(result["macro_f1"], 4)}


def _mean_curve(per_seed: list[list[dict]]) -> tuple[list[dict], list[dict]]:
    """Mean and std over seeds at the first run's label counts (other runs interpolated)."""
    grid = np.array([p["labels"] for p in per_seed[0]])
    mean, std = [], []
    stacked = {
        key: np.array([np.interp(grid, [p["labels"] for p in run], [p[key] for p in run]) for run in per_seed])
        for key in ("micro_f1", "macro_f1")
    }
    for i, n in enumerate(grid):
        mean.append({"labels": int(n), **{k: round(float(v[:, i].mean()), 4) for k, v in stacked.items()}})
        std.append({"labels": int(n), **{k: round(float(v[:, i].std()), 4) for k, v in stacked.items()}})
    return mean, std


def labels_to_reach(curve: list[dict], target: float, key: str = "macro_f1") -> int | None:
    """The first label count at which ``curve`` reaches ``target`` (None: not within the budget)."""
    for point in curve:
        if point[key] >= target:
            return int(point["labels"])
    return None


def featurize(
    pool_texts: Sequence[str], test_texts: Sequence[str], cache_dir: str | Path | None = None
) -> tuple[sp.csr_matrix, sp.csr_matrix]:
    """Fit a PolicyTextFeaturizer on pool + test texts (no labels used) and transform both.

    With ``cache_dir`` the matrix is cached as ``simulate-<hash of texts and params>.npz``.
    """
    featurizer = PolicyTextFeaturizer()
    texts = list(pool_texts) + list(test_texts)
    digest = hashlib.sha1(repr(sorted(featurizer.get_params().items())).encode())
    for text in texts:
        digest.update(text.encode("utf-8") + b"\0")
    path = Path(cache_dir) / f"simulate-{digest.hexdigest()[:16]}.npz" if cache_dir else None
    if path is not None and path.exists():
        X = sp.load_npz(path).tocsr()
    else:
        X = featurizer.fit_transform(texts)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp.npz")
            sp.save_npz(tmp, X, compressed=False)
            tmp.replace(path)
    return X[: len(pool_texts)], X[len(pool_texts) :]


def simulate_files(
    labeled: str | Path, test: str | Path, labels: Sequence[str], strategies: Sequence[str] = ("default",), **kwargs
) -> dict:
    """:func:`simulate` on a labeled pool file and a test file (seed TSV, CSV or JSONL).

    Pool clauses whose normalized text also appears in the test file are dropped from the pool
    (an exact copy would measure memory, not learning); the count is reported as
    ``pool_dropped_as_test_copies``.
    """
    labels = tuple(labels)
    pool = read_labeled_file(labeled, labels).examples
    test_examples = read_labeled_file(test, labels).examples
    test_keys = {match_key(e.text) for e in test_examples}
    kept = [e for e in pool if match_key(e.text) not in test_keys]
    result = simulate(
        [e.text for e in kept],
        label_matrix(kept, labels),
        [e.text for e in test_examples],
        label_matrix(test_examples, labels),
        labels,
        strategies,
        **kwargs,
    )
    result["pool_dropped_as_test_copies"] = len(pool) - len(kept)
    return result


def summary_table(result: dict, budgets: Sequence[int] = (200, 400, 800, 1200, 1600, 2000)) -> str:
    """A plain-text table: macro-F1 per strategy at ``budgets`` and labels to 95% of full data."""
    budgets = [b for b in budgets if b <= result["budget"]]
    head = ["strategy"] + [str(b) for b in budgets] + ["labels to 95%"]
    rows = [head]
    for name, curve in result["curves"].items():
        grid = [p["labels"] for p in curve]
        values = [
            np.interp(b, grid, [p["macro_f1"] for p in curve]) if grid[0] <= b <= grid[-1] else None for b in budgets
        ]
        reached = result["labels_to_target"][name]
        rows.append(
            [name]
            + ["-" if v is None else f"{v:.3f}" for v in values]
            + [f"{reached:,}" if reached else f">{result['budget']:,}"]
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)) for row in rows]
    full = result["full_data"]
    lines.append(
        f"full data ({full['labels']:,} labels): macro-F1 {full['macro_f1']:.3f}, "
        f"micro-F1 {full['micro_f1']:.3f}; 95% target {result['target_macro_f1']:.3f}"
    )
    return "\n".join(lines)


def plot_curves(result: dict, path: str | Path) -> Path:
    """Draw macro-F1 learning curves of every strategy (and the full-data line) to ``path``."""
    matplotlib = require("matplotlib", "simulate --plot")
    matplotlib.use("Agg")
    plt = require("matplotlib.pyplot", "simulate --plot")

    fig, ax = plt.subplots(figsize=(8, 5))
    for name, curve in result["curves"].items():
        ax.plot(
            [p["labels"] for p in curve],
            [p["macro_f1"] for p in curve],
            label=name,
            linewidth=2.2 if name == result.get("default_strategy") else 1.2,
        )
    full = result["full_data"]["macro_f1"]
    ax.axhline(full, color="black", linestyle="--", linewidth=1, label=f"full data ({full:.3f})")
    ax.axhline(result["target_macro_f1"], color="grey", linestyle=":", linewidth=1, label="95% of full")
    ax.set_xlabel("labeled clauses")
    ax.set_ylabel("macro-F1 on the test file")
    ax.set_title(f"Active learning, mean of {result['seeds']} runs")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


# Fold mode: several grouped folds x seeds, strategies compared to a baseline in pairs ------------
FOLD_BUDGETS = (100, 200, 400, 600, 800, 1000, 1200, 1600, 2000)


def grouped_folds(
    texts: Sequence[str], n_folds: int, *, rng: np.random.Generator, groups: np.ndarray | None = None
) -> np.ndarray:
    """A fold id per text, ``0 <= id < n_folds``; a near-duplicate group is never split.

    Groups (:func:`~annotator.text.near_duplicates.near_duplicate_groups` unless given) go biggest
    first, ties in ``rng`` order, each to the fold with the fewest texts so far, so the folds are
    of near-equal size.

    Raises
    ------
    InputError
        If there are fewer groups than folds.
    """
    groups = near_duplicate_groups(texts) if groups is None else np.asarray(groups)
    ids, index, sizes = np.unique(groups, return_inverse=True, return_counts=True)
    if isinstance(n_folds, bool) or not isinstance(n_folds, (int, np.integer)) or n_folds < 2:
        raise InputError(f"--folds must be an integer of at least 2, got {n_folds!r}")
    if len(ids) < n_folds:
        raise InputError(f"{len(ids)} near-duplicate groups cannot fill {n_folds} folds; lower --folds")
    order = rng.permutation(len(ids))
    order = order[np.argsort(-sizes[order], kind="stable")]
    load = np.zeros(n_folds)
    fold_of_group = np.empty(len(ids), dtype=int)
    for g in order:
        k = int(np.argmin(load))
        fold_of_group[g] = k
        load[k] += sizes[g]
    return fold_of_group[index.ravel()]


def _fold_progress(progress: Callable, fold: int) -> Callable:
    """The per-run progress callback of one fold: the strategy's name is suffixed with the fold."""

    def report(name: str, seed: int, n_labels: int) -> None:
        progress(f"{name} fold {fold}", seed, n_labels)

    return report


def simulate_folds(
    texts: Sequence[str],
    Y: np.ndarray,
    labels: Sequence[str],
    strategies: Sequence[str | Strategy] = ("random", "default"),
    *,
    folds: int = 5,
    fold_ids: Sequence[int] | None = None,
    split_seed: int = 0,
    baseline: str = "random",
    budgets: Sequence[int] = FOLD_BUDGETS,
    features: sp.spmatrix | None = None,
    cache_dir: str | Path | None = None,
    progress: Progress | None = None,
    **kwargs,
) -> dict:
    """:func:`simulate` on each of several grouped folds of one labeled set, compared in pairs.

    The texts are split into ``folds`` folds with near-duplicate groups kept whole
    (:func:`grouped_folds`, ``split_seed``); for each fold in ``fold_ids`` (default all) that fold
    is the test set and the others the pool. Every strategy is then compared with ``baseline`` on
    the same fold and seed (:func:`paired_summary`). Choose a strategy on some folds (e.g.
    ``fold_ids=[0, 1]``) and report it on the others (``[2, 3, 4]``), never on the folds it was
    chosen on.

    Parameters
    ----------
    texts, Y : the labeled set (texts and 0/1 label matrix).
    labels : the label set.
    strategies : as for :func:`simulate`; ``baseline`` is added first if missing.
    folds, fold_ids, split_seed : the split and the folds to run.
    budgets : label counts at which gains are reported (those within the budget).
    features : precomputed feature rows of ``texts`` (default: featurized once, unsupervised).
    kwargs : passed to :func:`simulate` (``seed_size``, ``batch_size``, ``budget``, ``seeds``, ...).

    Returns
    -------
    dict
        New keys only (the ``--labeled/--test`` result is unchanged): ``folds``, ``fold_ids``,
        ``split_seed``, ``baseline``, ``fold_sizes``, ``per_fold`` (each fold's :func:`simulate`
        result with ``fold``), ``paired`` (:func:`paired_summary`), ``stopping``
        (:func:`stopping_replay`), the run parameters and ``seconds``.

    Raises
    ------
    InputError
        On a fold id outside ``0..folds-1``, and whatever :func:`simulate` raises.
    """
    start = time.perf_counter()
    chosen = [get_strategy(s) if isinstance(s, str) else s for s in strategies]
    if baseline not in [s.name for s in chosen]:
        chosen = [get_strategy(baseline)] + chosen
    Y = np.asarray(Y, dtype=np.int8)
    fold_of = grouped_folds(texts, folds, rng=np.random.default_rng(split_seed))
    fold_ids = list(range(folds)) if fold_ids is None else [int(k) for k in fold_ids]
    bad = [k for k in fold_ids if not 0 <= k < folds]
    if bad or len(set(fold_ids)) != len(fold_ids) or not fold_ids:
        raise InputError(f"fold ids must be distinct and within 0..{folds - 1}, got {fold_ids}")
    X = featurize(texts, [], cache_dir)[0] if features is None else features
    per_fold = []
    for k in fold_ids:
        test, pool = np.flatnonzero(fold_of == k), np.flatnonzero(fold_of != k)
        log.info("fold %d: pool %d, test %d", k, len(pool), len(test))
        result = simulate(
            [texts[i] for i in pool],
            Y[pool],
            [texts[i] for i in test],
            Y[test],
            labels,
            chosen,
            features=(X[pool], X[test]),
            track_agreement=True,
            progress=None if progress is None else _fold_progress(progress, k),
            **kwargs,
        )
        per_fold.append({"fold": k, **result})
    first = per_fold[0]
    return {
        "folds": folds,
        "fold_ids": fold_ids,
        "split_seed": split_seed,
        "baseline": baseline,
        "fold_sizes": np.bincount(fold_of, minlength=folds).tolist(),
        "strategies": [s.name for s in chosen],
        "default_strategy": DEFAULT_STRATEGY,
        "seeds": first["seeds"],
        "first_seed": first["first_seed"],
        "seed_size": first["seed_size"],
        "batch_size": first["batch_size"],
        "budget": min(r["budget"] for r in per_fold),
        "per_fold": per_fold,
        "paired": paired_summary(per_fold, baseline, budgets),
        "stopping": stopping_replay(per_fold),
        "seconds": round(time.perf_counter() - start, 1),
    }


def simulate_folds_file(
    labeled: str | Path, labels: Sequence[str], strategies: Sequence[str] = ("random", "default"), **kwargs
) -> dict:
    """:func:`simulate_folds` on a labeled file (seed TSV, CSV or JSONL)."""
    labels = tuple(labels)
    examples = read_labeled_file(labeled, labels).examples
    return simulate_folds([e.text for e in examples], label_matrix(examples, labels), labels, strategies, **kwargs)


def interval(values: Sequence[float], level: float = 0.95) -> dict:
    """Mean, standard deviation and the Student-t confidence interval of the mean of ``values``."""
    v = np.asarray([x for x in values if x is not None], dtype=float)
    if not len(v):
        return {"mean": None, "sd": None, "ci_low": None, "ci_high": None, "n": 0}
    mean = float(v.mean())
    sd = float(v.std(ddof=1)) if len(v) > 1 else 0.0
    half = float(stats.t.ppf(0.5 + level / 2, len(v) - 1) * sd / np.sqrt(len(v))) if len(v) > 1 else 0.0
    return {
        "mean": round(mean, 4),
        "sd": round(sd, 4),
        "ci_low": round(mean - half, 4),
        "ci_high": round(mean + half, 4),
        "n": int(len(v)),
    }


def curve_at(curve: list[dict], n: float, key: str = "macro_f1") -> float | None:
    """``key`` of ``curve`` interpolated at ``n`` labels (None outside the curve)."""
    grid = [p["labels"] for p in curve]
    if not grid[0] <= n <= grid[-1]:
        return None
    return float(np.interp(n, grid, [p[key] for p in curve]))


def curve_area(curve: list[dict], start: float, stop: float, key: str = "macro_f1") -> float:
    """Mean of ``key`` over ``start..stop`` labels: the area under the curve divided by its width."""
    grid = np.array([p["labels"] for p in curve], dtype=float)
    values = np.array([p[key] for p in curve], dtype=float)
    xs = np.union1d(grid[(grid > start) & (grid < stop)], [start, stop])
    ys = np.interp(xs, grid, values)
    return float(np.sum((ys[1:] + ys[:-1]) / 2 * np.diff(xs)) / (stop - start))


def paired_summary(per_fold: Sequence[dict], baseline: str = "random", budgets: Sequence[int] = FOLD_BUDGETS) -> dict:
    """Each strategy against ``baseline``, paired by fold and seed, with 95% t intervals.

    For every (fold, seed) pair: the ratio of labels to 95% of that fold's full-data macro-F1
    (a run that never reaches it counts as ``budget + batch_size``, a lower bound, and is counted
    in ``n_unreached``), the difference in mean macro-F1 over ``seed_size..budget`` (area under
    the curve divided by its width), and the difference in macro-F1 at each budget.
    ``ahead_everywhere_200_1200``: the mean gain is positive at every budget of 200-1,200;
    ``worst_gain_200_1200``: the smallest mean gain at any label count from 200 to 1,200 in steps
    of 50 (``labels`` and its interval), the "ahead at every budget" check at curve resolution.
    """
    out: dict = {}
    names = per_fold[0]["strategies"]
    for name in names:
        ratios: list[float] = []
        auc: list[float] = []
        gains: dict[int, list[float]] = {}
        fine: dict[int, list[float]] = {}
        unreached, pairs = 0, []
        for result in per_fold:
            censor = result["budget"] + result["batch_size"]
            start, stop = result["seed_size"], result["budget"]
            for s, (run, base) in enumerate(zip(result["curves_per_seed"][name], result["curves_per_seed"][baseline])):
                target = result["target_macro_f1"]
                reached, base_reached = labels_to_reach(run, target), labels_to_reach(base, target)
                unreached += reached is None
                ratio = (reached or censor) / (base_reached or censor)
                area = curve_area(run, start, stop) - curve_area(base, start, stop)
                ratios.append(ratio)
                auc.append(area)
                pair = {
                    "fold": result["fold"],
                    "seed": result["first_seed"] + s,
                    "labels_to_target": reached,
                    "baseline_labels_to_target": base_reached,
                    "ratio": round(ratio, 4),
                    "auc_gain": round(area, 4),
                }
                for b in budgets:
                    mine, theirs = curve_at(run, b), curve_at(base, b)
                    if mine is not None and theirs is not None:
                        gains.setdefault(b, []).append(mine - theirs)
                for b in range(200, 1201, 50):
                    mine, theirs = curve_at(run, b), curve_at(base, b)
                    if mine is not None and theirs is not None:
                        fine.setdefault(b, []).append(mine - theirs)
                pairs.append(pair)
        gain_at = {str(b): interval(v) for b, v in sorted(gains.items())}
        early = [gain_at[str(b)]["mean"] for b in sorted(gains) if 200 <= b <= 1200]
        out[name] = {
            "labels_to_target_ratio": {**interval(ratios), "n_unreached": int(unreached)},
            "auc_gain": interval(auc),
            "gain_at": gain_at,
            "ahead_everywhere_200_1200": bool(early) and all(g > 0 for g in early),
            "worst_gain_200_1200": (
                None
                if not fine
                else min(({"labels": b, **interval(v)} for b, v in fine.items()), key=lambda row: row["mean"])
            ),
            "pairs": pairs,
        }
    return out


def stopping_replay(per_fold: Sequence[dict], n_next: int = 200, **signal_kwargs) -> dict:
    """Replay :func:`~annotator.query.stopping.stop_signal` along every simulated run.

    After each round the run's versions so far (label count, test macro-F1, ``pool_agreement``)
    go to the signal; the first label count where it says stop is compared with the label count
    where the run first reached 95% of the full-data macro-F1 (``labels_to_target``).
    ``stop_minus_target``: stop label count minus target label count (negative: stopped early)
    over the pairs where both happened within the budget; ``stop_f1_share``: the macro-F1 at the
    stop over the full-data macro-F1.
    """
    out: dict = {}
    for name in per_fold[0]["strategies"]:
        runs, deltas, shares, never = [], [], [], 0
        for result in per_fold:
            full = result["full_data"]["macro_f1"]
            for s, run in enumerate(result["curves_per_seed"][name]):
                points, stop_at, stop_f1 = [], None, None
                for v, p in enumerate(run):
                    points.append(VersionPoint(v + 1, p["labels"], p["macro_f1"], p.get("pool_agreement")))
                    if stop_signal(points, n_next=n_next, **signal_kwargs).stop:
                        stop_at, stop_f1 = p["labels"], p["macro_f1"]
                        break
                reached = labels_to_reach(run, result["target_macro_f1"])
                never += stop_at is None
                if stop_at is not None and reached is not None:
                    deltas.append(stop_at - reached)
                if stop_f1 is not None and full:
                    shares.append(stop_f1 / full)
                runs.append(
                    {
                        "fold": result["fold"],
                        "seed": result["first_seed"] + s,
                        "stop_at": stop_at,
                        "labels_to_target": reached,
                        "stop_macro_f1": stop_f1,
                        "full_macro_f1": full,
                    }
                )
        out[name] = {
            "stop_minus_target": interval(deltas),
            "stop_f1_share": interval(shares),
            "n_never_stopped": int(never),
            "runs": runs,
        }
    return out


def fold_summary_table(result: dict) -> str:
    """A plain-text table of the fold mode: each strategy's paired gains over the baseline."""
    paired = result["paired"]
    budgets = [b for b in next(iter(paired.values()))["gain_at"]]
    head = ["strategy"] + [f"+{b}" for b in budgets] + ["AUC gain", "labels to 95% / base"]
    rows = [head]
    for name, row in paired.items():
        if name == result["baseline"]:
            continue
        ratio = row["labels_to_target_ratio"]
        rows.append(
            [name]
            + [f"{row['gain_at'][b]['mean']:+.3f}" for b in budgets]
            + [
                f"{row['auc_gain']['mean']:+.3f} [{row['auc_gain']['ci_low']:+.3f}, {row['auc_gain']['ci_high']:+.3f}]",
                f"{ratio['mean']:.2f} [{ratio['ci_low']:.2f}, {ratio['ci_high']:.2f}]",
            ]
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)) for row in rows]
    lines.append(
        f"gains: macro-F1 minus {result['baseline']}'s at each label count, mean over folds "
        f"{result['fold_ids']} x {result['seeds']} seeds; [95% CI, paired by fold and seed]"
    )
    return "\n".join(lines)
