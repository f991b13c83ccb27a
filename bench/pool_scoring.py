"""Pool scoring at scale: re-scoring cached features after a retrain, for 100k and 1M clauses.

Synthetic pools are made from the real seed clauses (no network): each synthetic clause joins the
first part of one random seed clause to the last part of another, so texts are new but the
vocabulary, lengths and non-zeros per row are those of real clauses. Up to ``--unique`` (default
100,000) clauses are featurized for real with the product featurizer (char + jieba word TF-IDF,
timed); bigger pools tile those feature rows under new ids (scoring cost depends on rows and
non-zeros, not on whether two rows are equal) -- ``--unique 1000000`` featurizes them all.

Measured, each in a fresh child process so its peak memory is its own:
- featurize: featurizer.transform of the unique clauses (clauses/s), once at ingestion;
- re-score: PoolCache.score(model) over the whole pool (memory-mapped shards, chunk by chunk),
  wall time and peak RSS of the scoring process.

Usage: .venv/bin/python bench/pool_scoring.py [--sizes 100000 1000000] [--unique 100000]
"""

from __future__ import annotations

import argparse
import pickle
import random
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

import scipy.sparse as sp

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchlib import in_child  # noqa: E402
from annotator.model.features import PolicyTextFeaturizer  # noqa: E402
from annotator.labels import load_label_config  # noqa: E402
from annotator.model.classifier import PolicyClassifier  # noqa: E402
from annotator.model.poolcache import PoolCache  # noqa: E402
from annotator.text.seedset import read_labeled_file  # noqa: E402
from annotator.model.training import label_matrix  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
SEEDS = REPO.parent / "shared" / "seeds" / "labeled_policy_clauses.tsv"
DATA = SEEDS if SEEDS.exists() else REPO / "tasks" / "seed_labels.tsv"


def synthetic_clauses(texts: list[str], n: int, seed: int = 0) -> list[str]:
    """``n`` new clauses, each the head of one real clause joined to the tail of another."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        a, b = rng.choice(texts), rng.choice(texts)
        out.append(a[: max(4, len(a) // 2)] + b[len(b) // 2 :])
    return out


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _score_child(cache_dir: str, featurizer_path: str, model_path: str, queue) -> None:
    with open(featurizer_path, "rb") as f:
        featurizer = pickle.load(f)
    with open(model_path, "rb") as f:
        model = pickle.load(f)
    baseline = peak_rss_mb()
    cache = PoolCache(cache_dir, featurizer)
    started = time.perf_counter()
    ids, proba = cache.score(model)
    seconds = time.perf_counter() - started
    queue.put(
        {
            "rows": len(ids),
            "seconds": seconds,
            "peak_rss_mb": peak_rss_mb(),
            "baseline_rss_mb": baseline,
            "proba_mb": proba.nbytes / 2**20,
            "mean_top_proba": float(proba.max(axis=1).mean()),
        }
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="*", default=[100_000, 1_000_000])
    parser.add_argument("--unique", type=int, default=100_000, help="clauses featurized for real")
    parser.add_argument("--workdir", default=None, help="where the caches go (default: a temp dir)")
    parser.add_argument(
        "--score-only", action="store_true", help="re-score the caches already in --workdir (skip featurizing)"
    )
    args = parser.parse_args()

    if args.score_only:
        if not args.workdir:
            raise SystemExit("--score-only needs --workdir")
        work = Path(args.workdir)
        for size in args.sizes:
            for variant in ("model",):
                result = in_child(
                    _score_child,
                    str(work / f"cache_{size}"),
                    str(work / "featurizer.pkl"),
                    str(work / f"{variant}.pkl"),
                )
                print(
                    f"| {size:,} | {variant} | {result['seconds']:.2f} s | {size / result['seconds']:,.0f} | "
                    f"{result['peak_rss_mb']:.0f} MB (interpreter + model {result['baseline_rss_mb']:.0f} MB) |",
                    flush=True,
                )
        return
    labels = load_label_config().labels
    examples = read_labeled_file(DATA, labels).examples
    texts = [e.text for e in examples]
    featurizer = PolicyTextFeaturizer().fit(texts)
    model = PolicyClassifier(labels=labels, cv=1).fit_features(
        featurizer.transform(texts), label_matrix(examples, labels)
    )
    work = Path(args.workdir or tempfile.mkdtemp(prefix="pool_scoring_"))
    work.mkdir(parents=True, exist_ok=True)
    (work / "featurizer.pkl").write_bytes(pickle.dumps(featurizer))
    (work / "model.pkl").write_bytes(pickle.dumps(model))

    n_unique = min(args.unique, max(args.sizes))
    pool = synthetic_clauses(texts, n_unique)
    started = time.perf_counter()
    X_unique = sp.vstack([featurizer.transform(pool[i : i + 20_000]) for i in range(0, n_unique, 20_000)], format="csr")
    featurize_s = time.perf_counter() - started
    print(
        f"featurize {n_unique:,} synthetic clauses: {featurize_s:.1f} s "
        f"({n_unique / featurize_s:,.0f} clauses/s; 1M would take ~{1e6 / n_unique * featurize_s:.0f} s); "
        f"{X_unique.nnz / n_unique:.0f} non-zeros per clause, {X_unique.shape[1]:,} features",
        flush=True,
    )
    rows = []
    for size in args.sizes:
        cache_dir = work / f"cache_{size}"
        shutil.rmtree(cache_dir, ignore_errors=True)
        cache = PoolCache(cache_dir, featurizer)
        started = time.perf_counter()
        for start in range(0, size, n_unique):
            stop = min(start + n_unique, size)
            cache.add_features([f"c{i}" for i in range(start, stop)], X_unique[: stop - start])
        write_s = time.perf_counter() - started
        for variant in ("model",):
            result = in_child(_score_child, str(cache_dir), str(work / "featurizer.pkl"), str(work / f"{variant}.pkl"))
            rows.append((size, variant, result, cache.disk_bytes()))
            print(
                f"pool {size:>9,} [{variant}]: re-score {result['seconds']:.2f} s "
                f"({size / result['seconds']:,.0f} clauses/s), peak RSS {result['peak_rss_mb']:.0f} MB "
                f"(process baseline {result['baseline_rss_mb']:.0f} MB, result {result['proba_mb']:.0f} MB), "
                f"cache on disk {cache.disk_bytes() / 2**20:,.0f} MB, cache write {write_s:.1f} s",
                flush=True,
            )
    print("\n| pool | scoring | re-score | clauses/s | peak RSS of the scoring process | features on disk |")
    print("|---|---|---|---|---|---|")
    for size, variant, result, disk in rows:
        print(
            f"| {size:,} | {variant} | {result['seconds']:.2f} s | {size / result['seconds']:,.0f} | "
            f"{result['peak_rss_mb']:.0f} MB (interpreter + model {result['baseline_rss_mb']:.0f} MB) | "
            f"{disk / 2**20:,.0f} MB |"
        )
    if args.workdir is None:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
