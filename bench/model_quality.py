"""Held-out quality, fit time, predict time and memory of the clause classifier.

Grouped cross-validation on the seed file: near-duplicate clauses (``annotator.model.training.
near_duplicate_groups``, the product's grouping) stay in one fold, so no test clause is a truncated
copy of a training clause. Every fold fits the featurizer and the model on its training part only.

``--protocol random`` measures instead on one plain random 80/20 split of the cleaned clauses
(near-duplicates may fall on both sides), for comparison with the issue's ≈0.64 baseline figure;
the grouped figure stays the honest headline.

Compared:

- ``baseline``: char 1-3-gram TF-IDF (sublinear), one-vs-rest logistic regression (C=1, balanced
  class weights), threshold 0.5 plus the top label.
- ``baseline, C=16``: the same with the best C of 1, 2, 4, 8, 16 on these very folds (the issue's
  "well-tuned" baseline; choosing C on the test folds flatters it, which keeps the comparison fair
  to the baseline).
- ``product``: ``PolicyClassifier`` with its defaults.
- with ``--ablations``: the product without the naive-Bayes weights (``nb_power=0``), without the
  relative rule (``relative=0``), without calibration/tuning (``cv=1``), calibrated on 3-fold refits
  instead of approximate leave-group-out scores (``cv=3``), without the clause-opening
  feature block and without pooling near-duplicates' labels.

Timings (full fit, ``fit_features`` on 2,000 cached rows as the live loop does, predicting 1,000
clauses) are wall-clock seconds of this process; the machine's load average is printed beside them
because other jobs share the cores. Run it alone when the numbers matter::

    .venv/bin/python bench/model_quality.py --ablations   # 5 folds, ~5 min on 2 busy cores
    .venv/bin/python bench/model_quality.py --quick    # 2 of 5 folds, no ablations

Prints a markdown table for docs/benchmarks.md (and ``--json`` for the raw figures).
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import resource
import sys
import time
from pathlib import Path

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GroupKFold, train_test_split

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from annotator.model.features import PolicyTextFeaturizer  # noqa: E402
from annotator.labels import load_label_config  # noqa: E402
from annotator.model.classifier import PolicyClassifier, at_least_one  # noqa: E402
from annotator.text.seedset import read_labeled_file  # noqa: E402
from annotator.text.near_duplicates import near_duplicate_groups  # noqa: E402
from annotator.model.training import label_matrix, metrics  # noqa: E402


class Baseline:
    """The issue's reference: char 1-3 TF-IDF + OvR balanced LR (C=1 unless given), threshold 0.5 + top label."""

    def __init__(self, labels, C=1.0):
        self.labels = labels
        self.C = C

    def fit(self, texts, Y):
        self.tfidf_ = TfidfVectorizer(analyzer="char", ngram_range=(1, 3), sublinear_tf=True)
        X = self.tfidf_.fit_transform(texts)
        self.models_ = []
        for j in range(Y.shape[1]):
            y = Y[:, j]
            # liblinear's dual solver: the same optimum as the primal, ~10x faster here.
            self.models_.append(
                LogisticRegression(C=self.C, class_weight="balanced", solver="liblinear", dual=True, max_iter=5000).fit(
                    X, y
                )
                if 0 < y.sum() < len(y)
                else None
            )
        return self

    def predict(self, texts):
        X = self.tfidf_.transform(texts)
        proba = np.column_stack(
            [m.predict_proba(X)[:, 1] if m is not None else np.zeros(X.shape[0]) for m in self.models_]
        )
        return at_least_one(proba, 0.5)


def variants(labels, ablations: bool, n_jobs: int) -> dict:
    out = {
        "baseline": lambda: Baseline(labels),
        "baseline, C=16": lambda: Baseline(labels, C=16.0),
        "product": lambda: PolicyClassifier(labels=labels, n_jobs=n_jobs),
    }
    if ablations:
        out["product, nb_power=0 (plain LR)"] = lambda: PolicyClassifier(labels=labels, nb_power=0, n_jobs=n_jobs)
        out["product, relative=0"] = lambda: PolicyClassifier(labels=labels, relative=0, n_jobs=n_jobs)
        out["product, cv=1 (no calibration)"] = lambda: PolicyClassifier(labels=labels, cv=1, n_jobs=n_jobs)
        out["product, cv=3 (3-fold refits instead of leave-group-out)"] = lambda: PolicyClassifier(
            labels=labels, cv=3, n_jobs=n_jobs
        )
        out["product without the clause-opening block"] = lambda: PolicyClassifier(
            labels=labels, featurizer=PolicyTextFeaturizer(prefix_chars=None), n_jobs=n_jobs
        )
        out["product, merge_duplicate_labels=False"] = lambda: PolicyClassifier(
            labels=labels, merge_duplicate_labels=False, n_jobs=n_jobs
        )
    return out


def cross_validate(texts, Y, groups, labels, make, folds) -> dict:
    per_fold = []
    for train, test in folds:
        model = make().fit([texts[i] for i in train], Y[train])
        per_fold.append(metrics(Y[test], model.predict([texts[i] for i in test]), labels))
    keys = ("macro_f1", "micro_f1", "samples_f1")
    return {
        **{k: float(np.mean([m[k] for m in per_fold])) for k in keys},
        "macro_f1_folds": [round(m["macro_f1"], 4) for m in per_fold],
    }


def timings(texts, Y, labels, repeats: int) -> dict:
    load_before = os.getloadavg()[0]
    fits = {}
    for n_jobs in (1, 2):
        wall, cpu = [], []
        for _ in range(repeats):
            start, cpu_start = time.perf_counter(), time.process_time()
            model = PolicyClassifier(labels=labels, n_jobs=n_jobs).fit(texts, Y)
            wall.append(time.perf_counter() - start)
            cpu.append(time.process_time() - cpu_start)
        fits[n_jobs] = {"wall": min(wall), "cpu_this_process": min(cpu)}
    # The live loop and the simulator refit on cached features: fit_features on 2,000 rows.
    features = model.featurizer_.transform(texts)
    rows = np.random.default_rng(0).choice(len(texts), min(2000, len(texts)), replace=False)
    refits = []
    for _ in range(max(2, repeats)):
        start = time.perf_counter()
        PolicyClassifier(labels=labels).fit_features(features[rows], Y[rows])
        refits.append(time.perf_counter() - start)
    batch = texts[:1000]
    # Cold: a model just loaded from disk rebuilds its jieba dictionary on the first call.
    loaded = pickle.loads(pickle.dumps(model))
    start = time.perf_counter()
    loaded.predict(batch)
    cold = time.perf_counter() - start
    warm = []
    for _ in range(max(3, repeats)):
        start = time.perf_counter()
        model.predict(batch)
        warm.append(time.perf_counter() - start)
    return {
        "n_train": len(texts),
        "fit_seconds": fits,
        "fit_features_2000_seconds": min(refits),
        "predict_1000_seconds": min(warm),
        "predict_1000_cold_seconds": cold,
        "model_pickle_mb": len(pickle.dumps(model)) / 1e6,
        "load_average_1min": [round(load_before, 2), round(os.getloadavg()[0], 2)],
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=str(REPO / "tasks" / "seed_labels.tsv"))
    parser.add_argument("--folds", type=int, default=5, help="GroupKFold splits (default 5)")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="first 2 folds only (easier than average: ~0.015 above the 5-fold figure), no ablations, one timing run",
    )
    parser.add_argument("--ablations", action="store_true", help="also evaluate the product without each part")
    parser.add_argument("--n-jobs", type=int, default=1, help="processes fitting the per-label models in CV")
    parser.add_argument(
        "--protocol",
        choices=("grouped", "random"),
        default="grouped",
        help="grouped k-fold CV (default) or one random 80/20 split (seed 0)",
    )
    parser.add_argument("--no-timing", action="store_true", help="skip the fit/predict timings")
    parser.add_argument("--timing-only", action="store_true", help="only the fit/predict timings (no CV)")
    parser.add_argument("--json", action="store_true", help="print the raw figures as JSON too")
    args = parser.parse_args(argv)

    labels = load_label_config().labels
    data = read_labeled_file(args.data, labels)
    texts = data.texts
    Y = label_matrix(data.examples, labels)
    groups = near_duplicate_groups(texts)
    if args.protocol == "random":
        folds = [train_test_split(np.arange(len(texts)), test_size=0.2, random_state=0)]
        protocol = f"One random 80/20 split (seed 0) of {len(texts):,} seed clauses"
    else:
        folds = list(GroupKFold(args.folds).split(texts, groups=groups))
        if args.quick:
            folds = folds[:2]
        protocol = (
            f"Grouped {args.folds}-fold CV on {len(texts):,} seed clauses"
            f"{f' (first {len(folds)} folds)' if len(folds) < args.folds else ''}"
        )
    print(
        f"{len(texts)} clauses, {len(set(groups))} near-duplicate groups, {protocol}, "
        f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores",
        file=sys.stderr,
    )

    results = {}
    for name, make in (
        {} if args.timing_only else variants(labels, args.ablations and not args.quick, args.n_jobs)
    ).items():
        start = time.perf_counter()
        results[name] = cross_validate(texts, Y, groups, labels, make, folds)
        print(
            f"  {name}: macro-F1 {results[name]['macro_f1']:.4f} ({time.perf_counter() - start:.0f} s)", file=sys.stderr
        )
    timing = None if args.no_timing else timings(texts, Y, labels, repeats=1 if args.quick else 2)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    print(f"\n{protocol}:\n")
    print("| model | macro-F1 | micro-F1 | samples-F1 | macro-F1 per fold |")
    print("|---|---|---|---|---|")
    for name, r in results.items():
        print(
            f"| {name} | {r['macro_f1']:.3f} | {r['micro_f1']:.3f} | {r['samples_f1']:.3f} | "
            f"{', '.join(f'{v:.3f}' for v in r['macro_f1_folds'])} |"
        )
    if timing is None:
        return 0
    print(f"\n| product on the full file ({timing['n_train']:,} clauses) | value |")
    print("|---|---|")
    for n_jobs, fit in timing["fit_seconds"].items():
        print(
            f"| fit, n_jobs={n_jobs}: wall (CPU of the main process) | {fit['wall']:.1f} s "
            f"({fit['cpu_this_process']:.1f} s) |"
        )
    print(f"| fit_features on 2,000 precomputed rows, n_jobs=1 | {timing['fit_features_2000_seconds']:.1f} s |")
    print(f"| predict 1,000 clauses, warm | {timing['predict_1000_seconds']:.2f} s |")
    print(f"| predict 1,000 clauses, just loaded (builds jieba) | {timing['predict_1000_cold_seconds']:.2f} s |")
    print(f"| pickled model | {timing['model_pickle_mb']:.1f} MB |")
    print(f"| peak memory of this process | {peak_mb:.0f} MB |")
    print(
        f"| 1-min load average before/after timing ({os.cpu_count()} cores) | "
        f"{timing['load_average_1min'][0]} / {timing['load_average_1min'][1]} |"
    )
    if args.json:
        print(json.dumps({"cv": results, "timing": timing, "peak_rss_mb": peak_mb}, ensure_ascii=False, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
