"""Measure query strategies on the seed data with the simulator (the figures in docs/benchmarks.md).

The seed file is split once, near-duplicate aware (annotator.model.training.holdout_split, 25% test,
seed 0); the rest is the pool the oracle answers from. Each strategy's result is saved as JSON under
``--out`` so strategies can run in separate processes; ``--table`` prints the table of every saved
result, with labels-to-95% and the ratio to random.

Usage:
    .venv/bin/python bench/simulate_strategies.py --strategies random coverage --seeds 5
    .venv/bin/python bench/simulate_strategies.py --strategies "coverage[power=0.5]"   # a variant
    .venv/bin/python bench/simulate_strategies.py --strategies random --seeds 3 --first-seed 2  # more seeds
    .venv/bin/python bench/simulate_strategies.py --table      # runs over different seeds pooled
    .venv/bin/python bench/simulate_strategies.py --step-timing     # one query + retrain at 5,000

Fold mode (``--folds K``): the whole seed file is split into K near-duplicate-grouped folds
(annotator.query.simulate.grouped_folds, ``--split-seed``); each fold in ``--fold-ids`` is the test set
once, the other folds the pool. Every (fold, strategy, seeds) run is saved under
``--out/folds/`` and reused, so candidates are added without rerunning the baseline; the paired
summary (annotator.query.simulate.paired_summary) and the stopping-signal replay are printed and saved.
Seed blocks run apart (``--first-seed 4 --seeds 4`` after ``--seeds 4``) are pooled by a later
``--seeds 8`` without running anything again.
Choose on some folds, report on others:
    .venv/bin/python bench/simulate_strategies.py --folds 5 --fold-ids 0 1 --seeds 2 --strategies random tempered
    .venv/bin/python bench/simulate_strategies.py --folds 5 --fold-ids 2 3 4 --seeds 2 --strategies random tempered
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import re
import sys
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from annotator.query import strategies as S  # noqa: E402
from annotator.query.coldstart import label_keywords  # noqa: E402
from annotator.labels import load_label_config  # noqa: E402
from annotator.model.classifier import PolicyClassifier  # noqa: E402
from annotator.text.seedset import read_labeled_file  # noqa: E402
from annotator.query.simulate import (
    FOLD_BUDGETS,
    _mean_curve,
    curve_at,
    featurize,
    grouped_folds,  # noqa: E402
    interval,
    labels_to_reach,
    paired_summary,
    simulate,
    stopping_replay,
)
from annotator.text.near_duplicates import near_duplicate_groups  # noqa: E402
from annotator.model.training import holdout_split, label_matrix  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
SEEDS = REPO.parent / "shared" / "seeds" / "labeled_policy_clauses.tsv"
DATA = SEEDS if SEEDS.exists() else REPO / "tasks" / "seed_labels.tsv"
OUT = REPO / "bench" / "out" / "simulate"
BUDGETS = (200, 400, 800, 1200, 1600, 2000)
# Strategies that take keyword parameters, for "name[key=value,...]" variants.
PARAMETRIC = {
    "coverage": S.coverage_batch,
    "cluster_margin": S.cluster_margin,
    "ranked_batch": S.ranked_batch_sampling,
    "badge": S.badge,
    "labelwise": S.labelwise_margin,
    "tempered": S.tempered_sampling,
    "staged": S.staged_sampling,
    "quota": S.label_quota,
}


def load_split(test_size: float = 0.25, seed: int = 0):
    labels = load_label_config().labels
    examples = read_labeled_file(DATA, labels).examples
    texts = [e.text for e in examples]
    Y = label_matrix(examples, labels)
    train, test = holdout_split(texts, test_size, seed)
    return labels, [texts[i] for i in train], Y[train], [texts[i] for i in test], Y[test]


def parse_strategy(spec: str) -> S.Strategy:
    """A registered name, or ``base[key=value,...]`` for a parametric variant; a suffix ``@cold``
    (cold-start batch, near-duplicates of labeled clauses skipped) or ``@random`` (random first
    batch, no near-duplicate rule) overrides the strategy's own setting. ``a>N>b`` runs ``a``
    below N labels and then ``b``; ``0.5*a+0.5*b`` shares every batch between ``a`` and ``b``."""
    if ">" in spec:  # "badge>800>labelwise": badge below 800 labels, then labelwise
        items = spec.split(">")
        phases = [
            (int(items[k + 1]) if k + 1 < len(items) else None, parse_strategy(items[k]).fn)
            for k in range(0, len(items), 2)
        ]
        return S.Strategy(spec, S.scheduled(phases), spec, cold_start=parse_strategy(items[0]).cold_start)
    if "+" in spec:  # "0.5*badge+0.5*labelwise": one batch shared between strategies
        parts = [part.split("*", 1) for part in spec.split("+")]
        base = [(float(share), parse_strategy(name)) for share, name in parts]
        return S.Strategy(
            spec, S.blended([(share, st.fn) for share, st in base]), spec, cold_start=base[0][1].cold_start
        )
    if "@" in spec:
        base, start = spec.rsplit("@", 1)
        strategy = parse_strategy(base)
        return dataclasses.replace(strategy, name=spec, cold_start=start == "cold", dedupe=start == "cold")
    match = re.fullmatch(r"(\w+)\[(.*)\]", spec)
    if not match:
        return S.get_strategy(spec)
    base, raw = match.groups()
    params = {
        k: int(v) if v.lstrip("-").isdigit() else float(v) for k, v in (kv.split("=") for kv in raw.split(",") if kv)
    }
    if base not in PARAMETRIC:
        raise SystemExit(f"no parametric strategy {base!r}; have {', '.join(PARAMETRIC)}")
    return S.Strategy(spec, S._partial(PARAMETRIC[base], **params), f"{base} with {params}")


def run(args) -> None:
    labels, pool_texts, Y_pool, test_texts, Y_test = load_split(args.test_size, args.split_seed)
    features = featurize(pool_texts, test_texts, cache_dir=OUT / "cache")
    for spec in args.strategies:
        strategy = parse_strategy(spec)
        started = time.perf_counter()
        result = simulate(
            pool_texts,
            Y_pool,
            test_texts,
            Y_test,
            labels,
            [strategy],
            seed_size=args.seed_size,
            batch_size=args.batch_size,
            budget=args.budget,
            seeds=args.seeds,
            first_seed=args.first_seed,
            features=features,
            model_params=model_params(args),
        )
        name = re.sub(r"[^\w.=,-]", "_", spec)
        seeds = "" if args.first_seed == 0 else f"@seeds{args.first_seed}-{args.first_seed + args.seeds - 1}"
        path = OUT / f"{args.tag}{name}{seeds}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(result, ensure_ascii=False, indent=1))
        curve = result["curves"][strategy.name]
        values = " ".join(
            f"{np.interp(b, [p['labels'] for p in curve], [p['macro_f1'] for p in curve]):.3f}"
            for b in BUDGETS
            if b <= result["budget"]
        )
        print(
            f"{spec:40s} {values}  to95={result['labels_to_target'][strategy.name]} "
            f"full={result['full_data']['macro_f1']:.3f} ({time.perf_counter() - started:.0f} s)",
            flush=True,
        )


def model_params(args) -> dict | None:
    """The classifier's parameters for a run: the product's defaults unless ``--self-training``
    says otherwise (give such runs their own ``--tag``: the saved files are named by strategy)."""
    return None if args.self_training is None else {"self_training": args.self_training}


def load_all():
    labels = load_label_config().labels
    examples = read_labeled_file(DATA, labels).examples
    return labels, [e.text for e in examples], label_matrix(examples, labels)


def run_folds(args) -> dict:
    """Fold mode: every (fold, strategy) simulated once and saved; then the paired summary."""
    labels, texts, Y = load_all()
    fold_of = grouped_folds(texts, args.folds, rng=np.random.default_rng(args.split_seed))
    X = featurize(texts, [], cache_dir=OUT / "cache")[0]
    if args.keyword_features:
        X = sp.hstack([X, args.keyword_features * keyword_matrix(texts, labels)], format="csr")
    fold_ids = args.fold_ids if args.fold_ids is not None else list(range(args.folds))
    Y_oracle = single_label_oracle(Y, np.random.default_rng(args.split_seed)) if args.oracle == "single" else Y
    suffix = "_single" if args.oracle == "single" else ""
    per_fold, references = [], []
    for k in fold_ids:
        test, pool = np.flatnonzero(fold_of == k), np.flatnonzero(fold_of != k)
        merged = None
        for spec in ["random"] + [s for s in args.strategies if s != "random"]:
            strategy = parse_strategy(spec)
            name = re.sub(r"[^\w.=,-]", "_", spec)
            path = (
                OUT / "folds" / f"{args.tag}k{args.folds}s{args.split_seed}f{k}_b{args.batch_size}_"
                f"n{args.budget}_seeds{args.first_seed}-{args.first_seed + args.seeds - 1}_{name}{suffix}.json"
            )
            reference = path.with_name(path.name.replace("_single.json", ".json"))
            if suffix and reference.exists():
                references.append((k, strategy.name, json.loads(reference.read_text())))
            pooled = None if path.exists() else saved_blocks(path, args.first_seed, args.seeds)
            if path.exists():
                result = json.loads(path.read_text())
            elif pooled is not None:
                result = pooled
            else:
                started = time.perf_counter()
                result = simulate(
                    [texts[i] for i in pool],
                    Y_oracle[pool],
                    [texts[i] for i in test],
                    Y[test],
                    labels,
                    [strategy],
                    seed_size=args.seed_size,
                    batch_size=args.batch_size,
                    budget=args.budget,
                    seeds=args.seeds,
                    first_seed=args.first_seed,
                    features=(X[pool], X[test]),
                    track_agreement=True,
                    model_params=model_params(args),
                )
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(json.dumps(result, ensure_ascii=False))
                print(
                    f"fold {k} {spec}: to95={result['labels_to_target_per_seed'][strategy.name]} "
                    f"full={result['full_data']['macro_f1']:.3f} ({time.perf_counter() - started:.0f} s)",
                    flush=True,
                )
            if merged is None:
                merged = dict(result, fold=k, strategies=[], curves_per_seed={})
            merged["strategies"].append(strategy.name)
            merged["curves_per_seed"][strategy.name] = result["curves_per_seed"][strategy.name]
        per_fold.append(merged)
    summary = {
        "folds": args.folds,
        "fold_ids": fold_ids,
        "split_seed": args.split_seed,
        "seeds": args.seeds,
        "first_seed": args.first_seed,
        "batch_size": args.batch_size,
        "budget": args.budget,
        "baseline": "random",
        "full_macro_f1": {str(r["fold"]): r["full_data"]["macro_f1"] for r in per_fold},
        "paired": paired_summary(per_fold, "random", FOLD_BUDGETS),
        "stopping": stopping_replay(per_fold),
    }
    if references:
        summary["single_label_penalty"] = oracle_penalty(per_fold, references)
    print_folds(summary)
    out = (
        OUT
        / "folds"
        / (
            f"{args.tag}summary_k{args.folds}_f{'-'.join(map(str, fold_ids))}_b{args.batch_size}"
            f"_n{args.budget}{suffix}.json"
        )
    )
    out.write_text(json.dumps(summary, ensure_ascii=False, indent=1))
    return summary


def keyword_matrix(texts, labels) -> sp.csr_matrix:
    """One column per label: 1 where the clause contains one of the label's keywords (derived
    from the label names, as the cold start uses them: annotator.query.coldstart.label_keywords)."""
    keywords = label_keywords(labels)
    rows = [[j for j, label in enumerate(labels) if any(k in text for k in keywords[label])] for text in texts]
    indptr = np.cumsum([0] + [len(r) for r in rows])
    indices = np.array([j for r in rows for j in r], dtype=np.int32)
    return sp.csr_matrix((np.ones(len(indices)), indices, indptr), shape=(len(texts), len(labels)))


def saved_blocks(path: Path, first: int, count: int) -> dict | None:
    """Runs of seeds ``first..first+count-1`` pooled from files saved by separate runs whose seed
    blocks tile that range (e.g. 0-3 and 4-7 for 0-7); None if they do not."""
    stem, rest = path.name.split("_seeds", 1)
    tail = rest.split("_", 1)[1]  # strategy name, oracle suffix, .json

    def last_seed(p: Path) -> int:
        return int(p.name.split("_seeds", 1)[1].split("_", 1)[0].split("-")[1])

    blocks, at = [], first
    while at < first + count:
        found = [p for p in path.parent.glob(f"{stem}_seeds{at}-*_{tail}") if last_seed(p) < first + count]
        if not found:
            return None
        best = max(found, key=last_seed)
        blocks.append(json.loads(best.read_text()))
        at = last_seed(best) + 1
    result = dict(blocks[0], first_seed=first, seeds=count)
    result["curves_per_seed"] = {
        name: [run for b in blocks for run in b["curves_per_seed"][name]] for name in blocks[0]["curves_per_seed"]
    }
    return result


def single_label_oracle(Y: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The answers of an annotator who gives one label per clause: a clause with several labels
    keeps one of them, drawn by ``rng``."""
    out = np.zeros_like(Y)
    for i, row in enumerate(Y):
        on = np.flatnonzero(row)
        if len(on):
            out[i, rng.choice(on)] = 1
    return out


def oracle_penalty(per_fold: list[dict], references: list[tuple[int, str, dict]]) -> dict:
    """Macro-F1 lost at each budget when the oracle answers one label per clause, per strategy:
    (full-label oracle run) - (single-label oracle run), paired by fold and seed."""
    single = {r["fold"]: r for r in per_fold}
    out: dict = {}
    for k, name, full in references:
        for _s, (run_full, run_single) in enumerate(
            zip(full["curves_per_seed"][name], single[k]["curves_per_seed"][name])
        ):
            for b in FOLD_BUDGETS:
                a, c = curve_at(run_full, b), curve_at(run_single, b)
                if a is not None and c is not None:
                    out.setdefault(name, {}).setdefault(str(b), []).append(a - c)
    return {name: {b: interval(v) for b, v in row.items()} for name, row in out.items()}


def worst_text(worst: dict | None) -> str:
    return "-" if not worst else f"{worst['mean']:+.3f} at {worst['labels']}"


def print_folds(summary: dict) -> None:
    """Markdown rows: gain over random at each budget, AUC gain and labels-to-95% ratio, with CIs."""
    paired = summary["paired"]
    budgets = [b for b in next(iter(paired.values()))["gain_at"] if int(b) >= 200]
    print(
        f"\nfolds {summary['fold_ids']} of {summary['folds']} x seeds {summary['first_seed']}.."
        f"{summary['first_seed'] + summary['seeds'] - 1}, batch {summary['batch_size']}; full-data macro-F1 "
        + ", ".join(f"fold {k} {v:.3f}" for k, v in summary["full_macro_f1"].items())
    )
    print(
        "| strategy | " + " | ".join(budgets) + " | AUC gain | labels to 95% vs random | unreached | worst 200-1200 |"
    )
    print("|---" * (len(budgets) + 5) + "|")
    for name, row in paired.items():
        if name == "random":
            continue
        cells = [f"{row['gain_at'][b]['mean']:+.3f} ±{row['gain_at'][b]['sd']:.3f}" for b in budgets]
        ratio, auc = row["labels_to_target_ratio"], row["auc_gain"]
        print(
            f"| {name} | " + " | ".join(cells) + f" | {auc['mean']:+.4f} [{auc['ci_low']:+.4f}, "
            f"{auc['ci_high']:+.4f}] | {ratio['mean']:.2f} [{ratio['ci_low']:.2f}, {ratio['ci_high']:.2f}] | "
            f"{ratio['n_unreached']} | {worst_text(row.get('worst_gain_200_1200'))} |"
        )
    for name, row in summary["stopping"].items():
        d, share = row["stop_minus_target"], row["stop_f1_share"]
        print(
            f"stop signal, {name}: stop - labels to 95% = {d['mean']} (sd {d['sd']}, n {d['n']}), "
            f"macro-F1 at stop / full = {share['mean']} (sd {share['sd']}), never stopped {row['n_never_stopped']}; "
            + " ".join(f"{r['stop_at']}/{r['labels_to_target']}" for r in row["runs"])
        )
    for name, row in summary.get("single_label_penalty", {}).items():
        print(
            f"single-label oracle penalty, {name}: "
            + ", ".join(f"{b} {v['mean']:+.3f} ±{v['sd']:.3f}" for b, v in row.items() if int(b) >= 200)
        )


def table(tag: str) -> None:
    """Print the saved results; runs of the same strategy and budget over different seeds (files
    saved with ``--first-seed``) are pooled, each seed counted once."""
    pooled: dict[str, tuple[dict, dict]] = {}
    for path in sorted(OUT.glob(f"{tag}*.json")):
        result = json.loads(path.read_text())
        first = result.get("first_seed", 0)
        for name, curve in result["curves"].items():
            runs = result.get("curves_per_seed", {}).get(name)
            if runs is None:  # saved before per-seed curves were kept: the mean as it is
                pooled[name] = (result, {None: curve})
                continue
            base, by_seed = pooled.setdefault(name, (result, {}))
            if base["budget"] == result["budget"] and None not in by_seed:
                by_seed.update({first + k: run for k, run in enumerate(runs)})
    if not pooled:
        raise SystemExit(f"no results under {OUT}")
    results = {}
    for name, (result, by_seed) in pooled.items():
        if None in by_seed:
            results[name] = (result, by_seed[None])
            continue
        curve, _ = _mean_curve([by_seed[k] for k in sorted(by_seed)])
        results[name] = (dict(result, seeds=len(by_seed)), curve)
    random_needed = (
        labels_to_reach(results["random"][1], results["random"][0]["target_macro_f1"]) if "random" in results else None
    )
    print("| strategy | seeds | " + " | ".join(str(b) for b in BUDGETS) + " | labels to 95% | vs random |")
    print("|---" * (len(BUDGETS) + 4) + "|")
    for name, (result, curve) in results.items():
        grid = [p["labels"] for p in curve]
        cells = [f"{np.interp(b, grid, [p['macro_f1'] for p in curve]):.3f}" if b <= grid[-1] else "-" for b in BUDGETS]
        needed = labels_to_reach(curve, result["target_macro_f1"])
        ratio = f"{needed / random_needed:.2f}" if needed and random_needed else "-"
        reached = needed or ">" + str(result["budget"])
        print(f"| {name} | {result['seeds']} | " + " | ".join(cells) + f" | {reached} | {ratio} |")
    any_result = next(iter(results.values()))[0]
    print(
        f"\nfull data: macro-F1 {any_result['full_data']['macro_f1']:.3f}, target "
        f"{any_result['target_macro_f1']:.3f}; seeds {any_result['seeds']}, pool {any_result['n_pool']}, "
        f"test {any_result['n_test']}"
    )


def step_timing(args) -> None:
    """One query + retrain step with a pool of 5,000 clauses and ``--labeled`` labels."""
    labels, pool_texts, Y_pool, test_texts, Y_test = load_split(args.test_size)
    X_pool, _ = featurize(pool_texts, test_texts, cache_dir=OUT / "cache")
    rng = np.random.default_rng(0)
    rows = rng.choice(X_pool.shape[0], 5000, replace=X_pool.shape[0] < 5000)
    X, Y, texts = X_pool[rows], Y_pool[rows], [pool_texts[i] for i in rows]
    groups = near_duplicate_groups(texts)
    for n_labeled in (200, 1000, 2000):
        walls, cpus = [], []
        for _ in range(args.repeats):
            params = model_params(args) or {}
            learner = S.make_learner(
                PolicyClassifier(labels=labels, **params),
                S.DEFAULT_STRATEGY,
                X_training=X[:n_labeled],
                Y_training=Y[:n_labeled],
                groups=groups[:n_labeled],
                unlabeled=X,
            )
            started, started_cpu = time.perf_counter(), time.process_time()
            picked = S.select_batch(
                learner,
                X[n_labeled:],
                args.batch_size,
                rng=rng,
                texts=texts[n_labeled:],
                labeled_texts=texts[:n_labeled],
            )
            queried = time.perf_counter()
            new = np.asarray(picked) + n_labeled
            learner.teach(X[new], Y[new], groups=groups[new], unlabeled=X)
            done = time.perf_counter()
            walls.append((queried - started, done - queried, done - started))
            cpus.append(time.process_time() - started_cpu)
        query, retrain, step = np.median(walls, axis=0)
        print(
            f"pool 5000, {n_labeled} labeled, strategy {S.DEFAULT_STRATEGY}: query {query:.2f} s, "
            f"retrain {retrain:.2f} s, step {step:.2f} s (CPU {np.median(cpus):.2f} s; median of "
            f"{args.repeats}, load average {os.getloadavg()[0]:.1f})",
            flush=True,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--strategies", nargs="*", default=list(S.STRATEGIES))
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument(
        "--first-seed", type=int, default=0, help="run seeds first..first+seeds-1 (pooled with other seeds by --table)"
    )
    parser.add_argument("--budget", type=int, default=2000)
    parser.add_argument("--batch-size", type=int, default=50)
    parser.add_argument("--seed-size", type=int, default=50)
    parser.add_argument("--test-size", type=float, default=0.25)
    parser.add_argument("--split-seed", type=int, default=0, help="seed of the pool/test split")
    parser.add_argument("--tag", default="", help="prefix of the saved result files")
    parser.add_argument("--folds", type=int, help="fold mode: split the whole seed file into this many folds")
    parser.add_argument("--fold-ids", type=int, nargs="*", help="the folds to test on (default all)")
    parser.add_argument(
        "--oracle",
        choices=("full", "single"),
        default="full",
        help="single: the simulated annotator gives one label per clause (its penalty is "
        "printed against saved full-oracle runs)",
    )
    parser.add_argument(
        "--self-training",
        type=int,
        help="the classifier's self_training (pool clauses it may label itself; 0: none); default: the product's",
    )
    parser.add_argument(
        "--keyword-features",
        type=float,
        default=0.0,
        help="prototype: append one column per label (clause contains one of its name's keywords), times this weight",
    )
    parser.add_argument("--table", action="store_true", help="print the table of saved results")
    parser.add_argument("--step-timing", action="store_true", help="time one query + retrain step")
    parser.add_argument("--repeats", type=int, default=3, help="step timings per size (the median is printed)")
    args = parser.parse_args()
    if args.table:
        table(args.tag)
    elif args.step_timing:
        step_timing(args)
    elif args.folds:
        run_folds(args)
    else:
        run(args)


if __name__ == "__main__":
    main()
