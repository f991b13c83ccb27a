"""Store on SQLite vs PostgreSQL: bulk clauses, concurrent annotation upserts, labeled-example reads.

For each engine, on a fresh store:
- add N clauses in one call (as an ingest of many documents does);
- upsert M annotations from T threads, each with its own Store (as T backend request threads or
  workers do): M/2 Label Studio annotations, each created and then updated once, in shuffled
  order; checks every annotation is stored exactly once with its latest labels;
- read what training reads: ``training_examples`` (annotations, adjudications, the labeled
  clauses), the unlabeled pool (every clause) and ``labeled_clause_ids``.

Both engines durable by default (SQLite WAL + synchronous=FULL, PostgreSQL fsync + synchronous
commit); PostgreSQL is a private server from tests/pgserver.py on loopback.

Usage: .venv/bin/python bench/store_engines.py [--clauses 100000] [--annotations 10000] [--threads 16]
       [--pg-fast] [--engines sqlite,postgresql]
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from annotator import Settings, Store  # noqa: E402
from annotator.cycle.ls_queue import unlabeled_pool  # noqa: E402
from tests.pgserver import PostgresServer  # noqa: E402
from annotator.cycle.project import training_examples  # noqa: E402
from annotator.types import Annotation, Clause  # noqa: E402
from benchlib import percentile  # noqa: E402


def clauses(n: int) -> list[Clause]:
    return [
        Clause(
            f"c{i:07d}",
            f"第{i}条 对符合条件的企业给予贷款贴息支持，用于研发投入和成果转化。",
            None,
            "第三章 金融支持",
            i % 100,
        )
        for i in range(n)
    ]


def upserts(n: int, n_clauses: int, labels: tuple[str, ...], seed: int = 0) -> list[Annotation]:
    """``n`` saves: ``n // 2`` annotations, each created (minute 0) and updated (minute 1), shuffled."""
    rng = random.Random(seed)
    out = []
    for ann_id in range(1, n // 2 + 1):
        clause = f"c{rng.randrange(n_clauses):07d}"
        for minute in (0, 1):
            out.append(
                Annotation(
                    clause,
                    (labels[(ann_id + minute) % len(labels)],),
                    f"user{ann_id % 7}",
                    "label_studio",
                    ls_annotation_id=ann_id,
                    ls_task_id=ann_id,
                    created_at="2024-05-01T10:00:00Z",
                    updated_at=f"2024-05-01T10:0{minute}:00Z",
                )
            )
    rng.shuffle(out)
    return out


def run(target: str, args, labels: tuple[str, ...]) -> dict:
    figures: dict = {}
    with Store(target) as store:
        batch = clauses(args.clauses)
        started = time.perf_counter()
        added = store.add_clauses(batch)
        figures["add_clauses_s"] = time.perf_counter() - started
        assert added == args.clauses, added

    saves = upserts(args.annotations, args.clauses, labels)
    latencies: list[float] = []
    lock = threading.Lock()

    def work(part: list[Annotation]) -> None:
        mine = []
        with Store(target) as s:
            for annotation in part:
                t0 = time.perf_counter()
                s.save_annotation(annotation)
                mine.append(time.perf_counter() - t0)
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=work, args=(saves[n :: args.threads],)) for n in range(args.threads)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    figures["upsert_s"] = time.perf_counter() - started
    figures["upsert_p50_ms"] = percentile(latencies, 50) * 1000
    figures["upsert_p99_ms"] = percentile(latencies, 99) * 1000

    with Store(target) as store:
        stored = store.annotations()
        assert len(stored) == args.annotations // 2, len(stored)
        assert all(a.labels == (labels[(a.ls_annotation_id + 1) % len(labels)],) for a in stored), "lost update"
        started = time.perf_counter()
        examples = training_examples(store, labels)
        figures["training_examples_s"] = time.perf_counter() - started
        figures["n_examples"] = len(examples)
        started = time.perf_counter()
        pool = unlabeled_pool(store.clauses(), store.labeled_clause_ids())
        figures["unlabeled_pool_s"] = time.perf_counter() - started
        figures["n_pool"] = len(pool)
        started = time.perf_counter()
        store.labeled_clause_ids()
        figures["labeled_ids_s"] = time.perf_counter() - started
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clauses", type=int, default=100_000)
    parser.add_argument("--annotations", type=int, default=10_000)
    parser.add_argument("--threads", type=int, default=16)
    parser.add_argument("--pg-fast", action="store_true", help="PostgreSQL without fsync (a test server's settings)")
    parser.add_argument("--engines", default="sqlite,postgresql")
    args = parser.parse_args()
    labels = Settings().labels
    results = {}
    with tempfile.TemporaryDirectory(prefix="annotator-bench-") as tmp:
        for engine in args.engines.split(","):
            if engine == "sqlite":
                results[engine] = run(str(Path(tmp) / "annotator.db"), args, labels)
            else:
                with PostgresServer(durable=not args.pg_fast) as server:
                    results[engine] = run(server.create_database("annotator"), args, labels)
            print(f"{engine}: {results[engine]}", file=sys.stderr, flush=True)
    rows = [
        ("add %d clauses (s)" % args.clauses, "add_clauses_s"),
        ("upsert %d annotations, %d threads (s)" % (args.annotations, args.threads), "upsert_s"),
        ("  per save p50 (ms)", "upsert_p50_ms"),
        ("  per save p99 (ms)", "upsert_p99_ms"),
        ("training_examples (s)", "training_examples_s"),
        ("unlabeled pool (s)", "unlabeled_pool_s"),
        ("labeled_clause_ids (s)", "labeled_ids_s"),
    ]
    engines = list(results)
    print(f"{'':44}" + "".join(f"{e:>14}" for e in engines))
    for title, key in rows:
        print(f"{title:44}" + "".join(f"{results[e][key]:>14.3f}" for e in engines))
    e = engines[0]
    print(
        f"({results[e]['n_examples']} labeled examples, pool {results[e]['n_pool']}; "
        f"PostgreSQL {'without fsync' if args.pg_fast else 'durable'})"
    )


if __name__ == "__main__":
    main()
