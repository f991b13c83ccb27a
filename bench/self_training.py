"""Self-training against no self-training, paired by fold and seed (the figures in docs/benchmarks.md,
"Self-training on the pool").

The runs come from ``simulate_strategies.py --folds 5``: the product's classifier (self-training on,
``--tag st_``) and the same classifier with ``--self-training 0`` (``--tag plain_``), on the same
folds and seeds. This script reads both sets of saved runs and prints, for each fold set, the
paired comparisons with random: self-trained tempered / self-trained random (what users get against
random sampling with the same classifier), the same without self-training, and each arm with
against without self-training (labels to 95% of full data, mean macro-F1 over 50-2,000 labels).

Usage:
    .venv/bin/python bench/simulate_strategies.py --folds 5 --fold-ids 0 1 --seeds 4 \\
        --strategies random tempered --tag st_
    .venv/bin/python bench/simulate_strategies.py --folds 5 --fold-ids 0 1 --seeds 4 \\
        --strategies random tempered --self-training 0 --tag plain_
    .venv/bin/python bench/self_training.py --fold-ids 0 1 --seeds 4
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from simulate_strategies import OUT, saved_blocks  # noqa: E402

from annotator.query.simulate import paired_summary  # noqa: E402


def load(tag: str, fold: int, name: str, first: int, count: int, batch: int = 50, budget: int = 2000) -> dict:
    path = OUT / "folds" / f"{tag}k5s0f{fold}_b{batch}_n{budget}_seeds{first}-{first + count - 1}_{name}.json"
    result = json.loads(path.read_text()) if path.exists() else saved_blocks(path, first, count)
    if result is None:
        raise SystemExit(f"missing runs: {path.name} (run simulate_strategies.py with --tag {tag})")
    return result


def compare(folds: list[int], first: int, count: int, tags: tuple[str, str] = ("st_", "plain_")) -> dict:
    """Arms renamed ``{tag}{strategy}`` in one per-fold record, then every pairing that matters.

    ``tags``: the candidate's runs and the baseline's (default: self-trained and plain); with other
    tags the comparisons are titled by them (``kw_ tempered / st_ random`` ...)."""
    new, old = tags
    per_fold = []
    for fold in folds:
        arms = {
            f"{tag}{name}": load(tag, fold, name, first, count) for tag in (new, old) for name in ("random", "tempered")
        }
        base = arms[f"{old}random"]  # the baseline's full-data macro-F1 sets the 95% target
        per_fold.append(
            dict(
                base,
                fold=fold,
                strategies=list(arms),
                curves_per_seed={
                    arm: result["curves_per_seed"][name]
                    for (arm, result), name in zip(arms.items(), ["random", "tempered"] * 2)
                },
            )
        )
    names = (
        {new: "self-trained", old: "plain"}
        if tags == ("st_", "plain_")
        else {new: new.rstrip("_"), old: old.rstrip("_")}
    )
    pairs = {
        f"{names[a]} {x} / {names[b]} {y}": (f"{a}{x}", f"{b}{y}")
        for a, x, b, y in (
            (new, "tempered", new, "random"),
            (old, "tempered", old, "random"),
            (new, "random", old, "random"),
            (new, "tempered", old, "tempered"),
            (new, "tempered", old, "random"),
        )
    }
    out = {}
    for title, (arm, baseline) in pairs.items():
        row = paired_summary(per_fold, baseline)[arm]
        out[title] = row
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--fold-ids", type=int, nargs="+", required=True)
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--seeds", type=int, required=True)
    parser.add_argument(
        "--tags", nargs=2, default=["st_", "plain_"], help="candidate and baseline run tags (default: st_ plain_)"
    )
    args = parser.parse_args()
    summary = compare(args.fold_ids, args.first_seed, args.seeds, tuple(args.tags))
    print(f"folds {args.fold_ids}, seeds {args.first_seed}..{args.first_seed + args.seeds - 1}")
    print("| comparison | pairs | labels to 95% ratio [95% CI] | per fold | AUC gain [95% CI] | worst gain 200-1,200 |")
    print("|---|---|---|---|---|---|")
    for title, row in summary.items():
        ratio, auc, worst = row["labels_to_target_ratio"], row["auc_gain"], row["worst_gain_200_1200"]
        by_fold: dict[int, list[float]] = {}
        for pair in row["pairs"]:
            by_fold.setdefault(pair["fold"], []).append(pair["ratio"])
        folds = " / ".join(f"{sum(v) / len(v):.2f}" for v in by_fold.values())
        print(
            f"| {title} | {ratio['n']} | {ratio['mean']:.2f} [{ratio['ci_low']:.2f}, {ratio['ci_high']:.2f}] | {folds} "
            f"| {auc['mean']:+.4f} [{auc['ci_low']:+.4f}, {auc['ci_high']:+.4f}] "
            f"| {worst['mean']:+.3f} at {worst['labels']} [{worst['ci_low']:+.3f}, {worst['ci_high']:+.3f}] |"
        )
    out = (
        OUT
        / "folds"
        / f"{'' if args.tags == ['st_', 'plain_'] else args.tags[0]}self_training_f{'-'.join(map(str, args.fold_ids))}_s{args.first_seed}-{args.first_seed + args.seeds - 1}.json"
    )
    out.write_text(json.dumps(summary, ensure_ascii=False, indent=1))


if __name__ == "__main__":
    main()
