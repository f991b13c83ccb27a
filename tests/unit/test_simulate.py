"""The simulator on a tiny pool of real clauses: result shape (the interface other tools read),
determinism, default-name reporting, labels-to-target, files, plot, and the CLI command."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from annotator.cli import commands as cli
from annotator.query import simulate as sim
from annotator.errors import InputError
from annotator.model.features import PolicyTextFeaturizer
from annotator.labels import load_label_config
from annotator.text.seedset import read_labeled_file
from annotator.query.strategies import DEFAULT_STRATEGY
from annotator.model.training import label_matrix
from tests.conftest import SEED_TSV, seed_lines


@pytest.fixture(scope="module")
def tiny():
    labels = load_label_config().labels
    examples = random.Random(3).sample(read_labeled_file(SEED_TSV, labels).examples, 200)
    pool, test = examples[:140], examples[140:]
    pool_texts, test_texts = [e.text for e in pool], [e.text for e in test]
    featurizer = PolicyTextFeaturizer(word_ngram_range=None).fit(pool_texts + test_texts)
    return dict(
        labels=labels,
        pool=pool,
        test=test,
        pool_texts=pool_texts,
        test_texts=test_texts,
        Y_pool=label_matrix(pool, labels),
        Y_test=label_matrix(test, labels),
        features=(featurizer.transform(pool_texts), featurizer.transform(test_texts)),
    )


def run(tiny, strategies=("random", "default"), **kwargs):
    params = dict(seed_size=20, batch_size=20, budget=60, seeds=2, features=tiny["features"], model_params={"cv": 1})
    params.update(kwargs)
    return sim.simulate(
        tiny["pool_texts"], tiny["Y_pool"], tiny["test_texts"], tiny["Y_test"], tiny["labels"], strategies, **params
    )


def test_result_shape_and_default_reported_under_its_name(tiny):
    result = run(tiny)
    assert set(result["curves"]) == {"random", DEFAULT_STRATEGY}
    assert result["strategies"] == ["random", DEFAULT_STRATEGY]
    for curve in result["curves"].values():
        assert [p["labels"] for p in curve] == [20, 40, 60]
        assert all(set(p) == {"labels", "micro_f1", "macro_f1"} for p in curve)
        assert all(0 <= p["macro_f1"] <= 1 and 0 <= p["micro_f1"] <= 1 for p in curve)
    assert set(result["full_data"]) >= {"labels", "micro_f1", "macro_f1"}
    assert result["full_data"]["labels"] == 140
    assert result["target_macro_f1"] == pytest.approx(0.95 * result["full_data"]["macro_f1"])
    assert set(result["labels_to_target"]) == set(result["curves"])
    json.dumps(result)  # plain JSON values only


def test_same_seeds_same_curves(tiny):
    assert run(tiny, ("default",))["curves"] == run(tiny, ("default",))["curves"]


def test_seeds_can_be_run_apart_and_pooled(tiny):
    both = run(tiny, ("random",), seeds=2)
    first, second = run(tiny, ("random",), seeds=1), run(tiny, ("random",), seeds=1, first_seed=1)
    assert both["curves_per_seed"]["random"] == (
        first["curves_per_seed"]["random"] + second["curves_per_seed"]["random"]
    )
    assert second["first_seed"] == 1
    with pytest.raises(InputError, match="first_seed must be a non-negative integer, got -1"):
        run(tiny, ("random",), first_seed=-1)


def test_a_committee_strategy_runs(tiny):
    result = run(tiny, ("qbc",), seeds=1, budget=40)
    assert [p["labels"] for p in result["curves"]["qbc"]] == [20, 40]


def test_budget_is_capped_by_the_pool(tiny):
    result = run(tiny, ("random",), seeds=1, budget=10_000, batch_size=50)
    assert result["curves"]["random"][-1]["labels"] == 140
    assert result["budget"] == 140


def test_bad_arguments(tiny):
    with pytest.raises(InputError, match="unknown strategy 'nope'"):
        run(tiny, ("nope",))
    with pytest.raises(InputError, match="strategy listed twice"):
        run(tiny, ("random", "random"))
    with pytest.raises(InputError, match="--batch-size must be a positive integer, got 0"):
        run(tiny, ("random",), batch_size=0)
    with pytest.raises(InputError, match="the pool has 140 clauses, fewer than --seed-size 500"):
        run(tiny, ("random",), seed_size=500)


def test_labels_to_reach_and_mean_curve():
    curve = [{"labels": 50, "macro_f1": 0.2}, {"labels": 100, "macro_f1": 0.5}, {"labels": 150, "macro_f1": 0.6}]
    assert sim.labels_to_reach(curve, 0.5) == 100
    assert sim.labels_to_reach(curve, 0.7) is None
    runs = [
        [{"labels": 10, "micro_f1": 0.1, "macro_f1": 0.2}, {"labels": 20, "micro_f1": 0.3, "macro_f1": 0.4}],
        [{"labels": 10, "micro_f1": 0.3, "macro_f1": 0.4}, {"labels": 20, "micro_f1": 0.5, "macro_f1": 0.6}],
    ]
    mean, std = sim._mean_curve(runs)
    assert mean == [{"labels": 10, "micro_f1": 0.2, "macro_f1": 0.3}, {"labels": 20, "micro_f1": 0.4, "macro_f1": 0.5}]
    assert std[0]["macro_f1"] == pytest.approx(0.1)


def test_summary_table_and_plot(tiny, tmp_path):
    result = run(tiny, ("random",), seeds=1)
    table = sim.summary_table(result, budgets=(20, 40, 60))
    assert table.splitlines()[0].split() == ["strategy", "20", "40", "60", "labels", "to", "95%"]
    assert table.splitlines()[1].startswith("random")
    path = sim.plot_curves(result, tmp_path / "curves.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def write_tsv(path: Path, examples) -> Path:
    path.write_text("".join(f"{label}\t{e.text}\n" for e in examples for label in e.labels), encoding="utf-8")
    return path


def test_simulate_files_featurizes_once_and_caches(tiny, tmp_path):
    pool = write_tsv(tmp_path / "pool.tsv", tiny["pool"] + tiny["test"][:3])  # 3 test clauses leak into the pool
    test = write_tsv(tmp_path / "test.tsv", tiny["test"])
    cache = tmp_path / "cache"
    result = sim.simulate_files(
        pool,
        test,
        tiny["labels"],
        ["random"],
        seed_size=20,
        batch_size=20,
        budget=40,
        seeds=1,
        cache_dir=cache,
        model_params={"cv": 1},
    )
    assert result["pool_dropped_as_test_copies"] == 3
    assert result["n_pool"] == 140 and result["n_test"] == 60
    assert len(list(cache.glob("simulate-*.npz"))) == 1
    again = sim.simulate_files(
        pool,
        test,
        tiny["labels"],
        ["random"],
        seed_size=20,
        batch_size=20,
        budget=40,
        seeds=1,
        cache_dir=cache,
        model_params={"cv": 1},
    )
    assert again["curves"] == result["curves"]


def _cli_main():
    return cli.main


def test_cli_simulate_json_and_plot(tiny, tmp_path, monkeypatch):
    main = _cli_main()
    monkeypatch.setattr(sim, "SIMULATION_MODEL_PARAMS", {"cv": 1})
    pool = write_tsv(tmp_path / "pool.tsv", tiny["pool"])
    test = write_tsv(tmp_path / "test.tsv", tiny["test"])
    result = CliRunner().invoke(
        main,
        [
            "--home",
            str(tmp_path / "home"),
            "simulate",
            "--labeled",
            str(pool),
            "--test",
            str(test),
            "--strategy",
            "random",
            "--strategy",
            "default",
            "--seed-size",
            "20",
            "--batch-size",
            "20",
            "--budget",
            "40",
            "--seeds",
            "1",
            "--json",
            "--plot",
            str(tmp_path / "c.png"),
        ],
    )
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert set(out["curves"]) == {"random", DEFAULT_STRATEGY}
    assert [p["labels"] for p in out["curves"]["random"]] == [20, 40]
    assert "macro_f1" in out["full_data"] and (tmp_path / "c.png").exists()


def test_cli_simulate_unknown_strategy_is_a_usage_error(tiny, tmp_path):
    main = _cli_main()
    pool = write_tsv(tmp_path / "pool.tsv", tiny["pool"])
    result = CliRunner().invoke(
        main,
        [
            "--home",
            str(tmp_path / "home"),
            "simulate",
            "--labeled",
            str(pool),
            "--test",
            str(pool),
            "--strategy",
            "nope",
        ],
    )
    assert result.exit_code == 2
    assert "unknown strategy 'nope'; valid: default, random" in result.output


# Fold mode ---------------------------------------------------------------------------------------
FOLD_KEYS = {
    "folds",
    "fold_ids",
    "split_seed",
    "baseline",
    "fold_sizes",
    "strategies",
    "default_strategy",
    "seeds",
    "first_seed",
    "seed_size",
    "batch_size",
    "budget",
    "per_fold",
    "paired",
    "stopping",
    "seconds",
}
INTERVAL_KEYS = {"mean", "sd", "ci_low", "ci_high", "n"}


@pytest.fixture(scope="module")
def folded(tiny):
    texts = tiny["pool_texts"] + tiny["test_texts"]
    Y = np.vstack([tiny["Y_pool"], tiny["Y_test"]])
    features = PolicyTextFeaturizer(word_ngram_range=None).fit_transform(texts)
    result = sim.simulate_folds(
        texts,
        Y,
        tiny["labels"],
        ["default"],
        folds=3,
        fold_ids=[0, 2],
        seeds=2,
        seed_size=20,
        batch_size=20,
        budget=80,
        features=features,
        model_params={"cv": 1},
        budgets=(40, 60, 80),
    )
    return texts, result


def test_fold_mode_json_keys(folded):
    _, result = folded
    assert set(result) == FOLD_KEYS
    assert result["strategies"] == ["random", DEFAULT_STRATEGY]  # the baseline is added first
    assert result["fold_ids"] == [0, 2] and [r["fold"] for r in result["per_fold"]] == [0, 2]
    assert sum(result["fold_sizes"]) == 200
    for fold in result["per_fold"]:  # each fold is a whole simulate() result, the old keys included
        assert {"curves", "curves_per_seed", "full_data", "target_macro_f1", "labels_to_target"} <= set(fold)
        run = fold["curves_per_seed"]["random"][0]
        assert "pool_agreement" not in run[0] and all(-1 <= p["pool_agreement"] <= 1 for p in run[1:])
        assert all(0 <= p["multi_label"] <= p["labels"] for p in run)
    row = result["paired"][DEFAULT_STRATEGY]
    assert set(row) == {
        "labels_to_target_ratio",
        "auc_gain",
        "gain_at",
        "ahead_everywhere_200_1200",
        "worst_gain_200_1200",
        "pairs",
    }
    assert set(row["labels_to_target_ratio"]) == INTERVAL_KEYS | {"n_unreached"}
    assert set(row["auc_gain"]) == INTERVAL_KEYS and row["auc_gain"]["n"] == 4  # 2 folds x 2 seeds
    assert list(row["gain_at"]) == ["40", "60", "80"]
    assert [(p["fold"], p["seed"]) for p in row["pairs"]] == [(0, 0), (0, 1), (2, 0), (2, 1)]
    baseline = result["paired"]["random"]
    assert baseline["auc_gain"]["mean"] == 0 and baseline["labels_to_target_ratio"]["mean"] == 1
    stop = result["stopping"][DEFAULT_STRATEGY]
    assert set(stop) == {"stop_minus_target", "stop_f1_share", "n_never_stopped", "runs"}
    assert len(stop["runs"]) == 4
    json.dumps(result)


def test_fold_mode_old_keys_unchanged_without_folds(tiny):
    result = run(tiny, ("random",), seeds=1)
    assert not {"paired", "per_fold", "stopping"} & set(result)
    assert all(set(p) == {"labels", "micro_f1", "macro_f1"} for p in result["curves_per_seed"]["random"][0])


def test_folds_never_share_a_near_duplicate_group():
    texts = list(dict.fromkeys(line.split("\t", 1)[1] for line in seed_lines(2000)))
    groups = sim.near_duplicate_groups(texts)
    fold_of = sim.grouped_folds(texts, 5, rng=np.random.default_rng(0), groups=groups)
    assert set(fold_of.tolist()) == {0, 1, 2, 3, 4}
    for g in np.unique(groups):
        assert len(set(fold_of[groups == g].tolist())) == 1
    sizes = np.bincount(fold_of)
    assert sizes.max() - sizes.min() <= max(np.bincount(groups))  # balanced up to one group
    assert (groups != np.arange(len(texts))).any()  # the seed file does have near-duplicates
    assert (sim.grouped_folds(texts, 5, rng=np.random.default_rng(0), groups=groups) == fold_of).all()


def test_grouped_folds_errors():
    with pytest.raises(InputError, match="--folds must be an integer of at least 2, got 1"):
        sim.grouped_folds(["a", "b"], 1, rng=np.random.default_rng(0))
    with pytest.raises(InputError, match="2 near-duplicate groups cannot fill 3 folds; lower --folds"):
        sim.grouped_folds(["甲乙丙", "丁戊己"], 3, rng=np.random.default_rng(0))


def test_paired_summary_by_hand():
    def curve(values, agreement=None):
        return [{"labels": n, "micro_f1": v, "macro_f1": v} for n, v in zip((100, 200, 300), values)]

    per_fold = [
        {
            "fold": 0,
            "strategies": ["random", "x"],
            "first_seed": 0,
            "seed_size": 100,
            "budget": 300,
            "batch_size": 100,
            "target_macro_f1": 0.5,
            "full_data": {"macro_f1": 0.55},
            "curves_per_seed": {
                "random": [curve((0.2, 0.4, 0.5)), curve((0.2, 0.3, 0.45))],
                "x": [curve((0.3, 0.5, 0.5)), curve((0.3, 0.5, 0.5))],
            },
        }
    ]
    row = sim.paired_summary(per_fold, "random", budgets=(200, 300))["x"]
    assert [p["ratio"] for p in row["pairs"]] == [0.6667, 0.5]  # 200/300; 200/400 (random never reached it)
    assert row["labels_to_target_ratio"]["n_unreached"] == 0
    assert row["gain_at"]["200"]["mean"] == pytest.approx(0.15)
    assert row["auc_gain"]["mean"] == 0.1063  # ((0.45 - 0.375) + (0.45 - 0.3125)) / 2, rounded
    assert sim.curve_area(curve((0.2, 0.4, 0.5)), 100, 300) == pytest.approx(0.375)
    assert sim.interval([1.0, 3.0]) == {"mean": 2.0, "sd": 1.4142, "ci_low": -10.7062, "ci_high": 14.7062, "n": 2}


def test_batch_size_10_is_the_live_loop_policy():
    """The live loop retrains every retrain_every (10) labels and serves select_batch's top-ranked
    clauses: the simulator replays that with --batch-size 10 (run_once's docstring says so)."""
    assert "batch_size=10" in sim.run_once.__doc__ and "live loop" in sim.run_once.__doc__


def test_cli_simulate_folds(tiny, tmp_path, monkeypatch):
    monkeypatch.setattr(sim, "SIMULATION_MODEL_PARAMS", {"cv": 1})
    data = write_tsv(tmp_path / "all.tsv", tiny["pool"] + tiny["test"])
    result = CliRunner().invoke(
        _cli_main(),
        [
            "--home",
            str(tmp_path / "home"),
            "simulate",
            "--labeled",
            str(data),
            "--folds",
            "3",
            "--fold",
            "1",
            "--strategy",
            "default",
            "--seed-size",
            "20",
            "--batch-size",
            "20",
            "--budget",
            "40",
            "--seeds",
            "1",
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["fold_ids"] == [1] and out["strategies"] == ["random", DEFAULT_STRATEGY]
    assert set(out) == FOLD_KEYS


@pytest.mark.parametrize(
    "args, message",
    [
        ([], "give either --test FILE or --folds K"),
        (["--folds", "3", "--test", "{pool}"], "give either --test FILE or --folds K"),
        (["--test", "{pool}", "--fold", "1"], "--fold needs --folds"),
        (["--folds", "3", "--plot", "x.png"], "--plot draws the curves of --test"),
    ],
)
def test_cli_simulate_fold_usage_errors(tiny, tmp_path, args, message):
    pool = write_tsv(tmp_path / "pool.tsv", tiny["pool"])
    args = [a.replace("{pool}", str(pool)) for a in args]
    result = CliRunner().invoke(
        _cli_main(), ["--home", str(tmp_path / "home"), "simulate", "--labeled", str(pool)] + args
    )
    assert result.exit_code == 2
    assert message in result.output


def test_the_simulated_classifier_self_trains_on_the_pool_as_the_live_one(tiny):
    """From MIN_SELF_TRAINING_ROWS labels on, the simulated model labels pool clauses itself, as a
    live retrain does; below, and with ``self_training=0``, the curves are the plain model's."""
    kwargs = dict(strategies=("random",), seed_size=60, batch_size=50, budget=110, seeds=1)
    trained = run(tiny, **kwargs, model_params={"cv": 1})
    plain = run(tiny, **kwargs, model_params={"cv": 1, "self_training": 0})
    first, second = trained["curves"]["random"], plain["curves"]["random"]
    assert [p["labels"] for p in first] == [p["labels"] for p in second] == [60, 110]
    assert first[0] == second[0]  # 60 labels: below the minimum, no self-training
    assert first[1] != second[1]  # 110 labels: the pool changed the model
