"""Featurizing a big pool: in one process vs on a Dask LocalCluster, then re-scoring it all.

The pool is N synthetic clauses (default 1,000,000) made from the real seed clauses: each joins
the head of one random seed clause to the tail of another (new texts, real vocabulary and
lengths; 1M are built in a few seconds). The featurizer (char + opening + jieba word TF-IDF) and
a classifier are fitted on the seed file. Then, each step in a fresh child process so its peak
memory is its own:

- in-process: ``PoolCache.add(ids, texts)`` over the whole pool (what ingestion does today);
- dask: ``featurize_into_cache`` on a LocalCluster of ``--workers`` single-threaded worker
  processes, the clauses streamed in partitions of ``--partition`` (the client never holds the
  pool's texts); peak RSS of the client and of each worker;
- the two caches are compared file by file (they must be byte-identical);
- re-score: ``PoolCache.score(model)`` over the whole cache (memory-mapped, chunk by chunk).

Usage: nice -n 5 .venv/bin/python bench/featurize_pool.py [--n 1000000] [--workers 2]
       [--partition 20000] [--workdir DIR] [--skip-inprocess]
"""

from __future__ import annotations

import argparse
import filecmp
import os
import pickle
import random
import resource
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

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


def seed_texts() -> list[str]:
    return [e.text for e in read_labeled_file(DATA, load_label_config().labels).examples]


def iter_pool(texts: list[str], n: int, seed: int = 0) -> Iterator[tuple[str, str]]:
    """``n`` (id, clause) pairs, each clause the head of one real clause joined to the tail of another."""
    rng = random.Random(seed)
    for i in range(n):
        a, b = rng.choice(texts), rng.choice(texts)
        yield f"c{i:07d}", a[: max(4, len(a) // 2)] + b[len(b) // 2 :]


def peak_rss_mb() -> float:
    """This process's peak resident memory (VmHWM: unlike ru_maxrss, not inherited across exec)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _load(work: Path, name: str):
    with open(work / f"{name}.pkl", "rb") as f:
        return pickle.load(f)


def _inprocess_child(work: str, n: int, queue) -> None:
    work = Path(work)
    featurizer = _load(work, "featurizer")
    started = time.perf_counter()
    ids, texts = map(list, zip(*iter_pool(seed_texts(), n)))
    build_s = time.perf_counter() - started
    baseline = peak_rss_mb()
    cache = PoolCache(work / "cache_inprocess", featurizer)
    started = time.perf_counter()
    cache.add(ids, texts)
    seconds = time.perf_counter() - started
    queue.put(
        {
            "build_s": build_s,
            "seconds": seconds,
            "peak_rss_mb": peak_rss_mb(),
            "baseline_rss_mb": baseline,
            "disk_mb": cache.disk_bytes() / 2**20,
            "rows": len(cache),
        }
    )


def _dask_child(work: str, n: int, n_workers: int, partition: int, queue) -> None:
    from annotator.model.dask_features import dask_client, featurize_into_cache

    work = Path(work)
    featurizer = _load(work, "featurizer")
    texts = seed_texts()
    cache = PoolCache(work / "cache_dask", featurizer)
    started = time.perf_counter()
    with dask_client("local", n_workers=n_workers) as client:
        startup_s = time.perf_counter() - started
        baseline = peak_rss_mb()
        started = time.perf_counter()
        featurize_into_cache(cache, iter_pool(texts, n), client=client, partition_rows=partition, total=n)
        seconds = time.perf_counter() - started
        workers = client.run(peak_rss_mb)
    queue.put(
        {
            "startup_s": startup_s,
            "seconds": seconds,
            "peak_rss_mb": peak_rss_mb(),
            "baseline_rss_mb": baseline,
            "workers_rss_mb": sorted(workers.values()),
            "disk_mb": cache.disk_bytes() / 2**20,
            "rows": len(cache),
        }
    )


def _score_child(work: str, cache_name: str, queue) -> None:
    work = Path(work)
    featurizer, model = _load(work, "featurizer"), _load(work, "model")
    baseline = peak_rss_mb()
    cache = PoolCache(work / cache_name, featurizer)
    started = time.perf_counter()
    ids, proba = cache.score(model)
    queue.put(
        {
            "rows": len(ids),
            "seconds": time.perf_counter() - started,
            "peak_rss_mb": peak_rss_mb(),
            "baseline_rss_mb": baseline,
        }
    )


def same_files(a: Path, b: Path) -> bool:
    files_a = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    files_b = sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file())
    return files_a == files_b and all(filecmp.cmp(a / p, b / p, shallow=False) for p in files_a)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=1_000_000, help="clauses in the pool")
    parser.add_argument("--workers", type=int, default=2, help="Dask worker processes")
    parser.add_argument("--partition", type=int, default=20_000, help="clauses per Dask task")
    parser.add_argument("--workdir", default=None, help="where the caches go (default: a temp dir, removed)")
    parser.add_argument("--skip-inprocess", action="store_true", help="only the Dask run and the re-score")
    args = parser.parse_args()

    work = Path(args.workdir or tempfile.mkdtemp(prefix="featurize_pool_"))
    work.mkdir(parents=True, exist_ok=True)
    for name in ("cache_inprocess", "cache_dask"):
        shutil.rmtree(work / name, ignore_errors=True)
    labels = load_label_config().labels
    examples = read_labeled_file(DATA, labels).examples
    texts = [e.text for e in examples]
    featurizer = PolicyTextFeaturizer().fit(texts)
    model = PolicyClassifier(labels=labels, cv=1).fit_features(
        featurizer.transform(texts), label_matrix(examples, labels)
    )
    (work / "featurizer.pkl").write_bytes(pickle.dumps(featurizer))
    (work / "model.pkl").write_bytes(pickle.dumps(model))
    started = time.perf_counter()
    sum(1 for _ in iter_pool(texts, args.n))
    print(
        f"pool of {args.n:,} synthetic clauses built in {time.perf_counter() - started:.1f} s; featurizer "
        f"fitted on {len(texts):,} seed clauses ({featurizer.n_features_out_:,} features, "
        f"{len(pickle.dumps(featurizer)) / 2**20:.1f} MB pickled, broadcast once to each worker); "
        f"load {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores",
        flush=True,
    )

    rows = []
    if not args.skip_inprocess:
        r = in_child(_inprocess_child, str(work), args.n)
        rows.append(("in-process (1 process)", r["seconds"], r["peak_rss_mb"], "", r["disk_mb"]))
        print(
            f"in-process: {r['seconds']:.0f} s, {args.n / r['seconds']:,.0f} clauses/s, peak RSS "
            f"{r['peak_rss_mb']:,.0f} MB (texts in memory {r['baseline_rss_mb']:,.0f} MB), cache "
            f"{r['disk_mb']:,.0f} MB; load {os.getloadavg()[0]:.1f}",
            flush=True,
        )
    r = in_child(_dask_child, str(work), args.n, args.workers, args.partition)
    workers = ", ".join(f"{m:,.0f}" for m in r["workers_rss_mb"])
    rows.append((f"dask LocalCluster ({args.workers} workers)", r["seconds"], r["peak_rss_mb"], workers, r["disk_mb"]))
    print(
        f"dask ({args.workers} workers, partitions of {args.partition:,}): {r['seconds']:.0f} s "
        f"(+ {r['startup_s']:.1f} s cluster start), {args.n / r['seconds']:,.0f} clauses/s, client peak RSS "
        f"{r['peak_rss_mb']:,.0f} MB, workers {workers} MB, cache {r['disk_mb']:,.0f} MB; "
        f"load {os.getloadavg()[0]:.1f}",
        flush=True,
    )
    if not args.skip_inprocess:
        print("caches byte-identical:", same_files(work / "cache_inprocess", work / "cache_dask"), flush=True)
    s = in_child(_score_child, str(work), "cache_dask")
    print(
        f"re-score {s['rows']:,} cached clauses: {s['seconds']:.1f} s, peak RSS {s['peak_rss_mb']:,.0f} MB "
        f"(interpreter + model {s['baseline_rss_mb']:,.0f} MB)",
        flush=True,
    )

    print("\n| featurize | wall | clauses/s | peak RSS client | peak RSS workers | cache on disk |")
    print("|---|---|---|---|---|---|")
    for name, seconds, rss, workers, disk in rows:
        print(
            f"| {name} | {seconds:,.0f} s | {args.n / seconds:,.0f} | {rss:,.0f} MB | "
            f"{workers + ' MB' if workers else '-'} | {disk:,.0f} MB |"
        )
    print(
        f"| re-score (PoolCache.score) | {s['seconds']:.1f} s | {s['rows'] / s['seconds']:,.0f} | "
        f"{s['peak_rss_mb']:,.0f} MB | - | - |"
    )
    if args.workdir is None:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
