"""Time GET /dashboard on a store with 10,000 annotations from 10 annotators over ~3,000 real clauses.

The clauses and their seed labels come from tasks/seed_labels.tsv; each annotator misses and adds
labels at their own rate; timestamps spread over three days; 8 model versions with held-out
metrics, predictions of the latest for every clause, 200 pushed tasks and 50 adjudications.

Usage: python bench/dashboard_render.py [--annotations 10000] [--annotators 10] [--clauses 3000] [--runs 5]
Prints one line per run and the median; exits 1 if the median exceeds --budget seconds (1.0).
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from datetime import datetime, timedelta, UTC
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from annotator.labels import TASKS_DIR  # noqa: E402
from annotator.text.seedset import read_labeled_file  # noqa: E402
from annotator.settings import Settings  # noqa: E402
from annotator.storage.store import Store  # noqa: E402
from annotator.types import Annotation, Clause  # noqa: E402
from backend import create_app  # noqa: E402


def fill(
    store: Store, labels: tuple[str, ...], *, n_annotations: int, n_annotators: int, n_clauses: int, seed: int = 0
) -> None:
    rng = random.Random(seed)
    examples = read_labeled_file(TASKS_DIR / "seed_labels.tsv", labels).examples
    rng.shuffle(examples)
    examples = examples[:n_clauses]
    names = [f"annotator{i:02d}" for i in range(n_annotators)]
    noise = {name: (rng.uniform(0.03, 0.25), rng.uniform(0.03, 0.2)) for name in names}
    now = datetime.now(UTC)
    store.add_clauses(Clause(e.id, e.text, None, "", i) for i, e in enumerate(examples))
    with store.transaction():
        for e in examples:
            store.save_annotation(Annotation(e.id, e.labels, "seed", "seed"))
        made, i = 0, 0
        while made < n_annotations:
            e = examples[i % len(examples)]
            i += 1
            for name in rng.sample(names, min(rng.choice((3, 3, 4)), n_annotations - made)):
                miss, extra = noise[name]
                chosen = {label for label in e.labels if rng.random() > miss}
                if rng.random() < extra:
                    chosen.add(rng.choice(labels))
                stamp = (now - timedelta(minutes=rng.uniform(0, 72 * 60))).isoformat()
                # a clause seen again (more annotations than clauses x raters) is a re-annotation
                store.save_annotation(
                    Annotation(
                        e.id,
                        tuple(sorted(chosen)),
                        name,
                        "label_studio",
                        ls_annotation_id=100000 + made,
                        created_at=stamp,
                        updated_at=stamp,
                    )
                )
                made += 1
        for v in range(1, 9):
            macro = 0.35 + 0.5 * (1 - 0.65**v)
            store.add_model_version(
                f"model-{v:05d}.pkl", 150 * v, {"macro_f1": macro, "micro_f1": macro + 0.07, "n": 300}
            )
        store.save_predictions(
            8,
            [
                (e.id, e.labels if rng.random() < 0.8 else (rng.choice(labels),), rng.uniform(0.5, 1.0))
                for e in examples
            ],
        )
        store.record_push(1, [(e.id, 50000 + k, k) for k, e in enumerate(examples[-200:])], batch=1, model_version=8)
        for e in examples[:50]:
            store.adjudicate(e.id, e.labels, "lead")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--annotations", type=int, default=10_000)
    parser.add_argument("--annotators", type=int, default=10)
    parser.add_argument("--clauses", type=int, default=3_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--budget", type=float, default=1.0)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(home=Path(tmp) / "home")
        with Store(settings.store_url) as store:
            started = time.perf_counter()
            fill(
                store,
                settings.labels,
                n_annotations=args.annotations,
                n_annotators=args.annotators,
                n_clauses=args.clauses,
            )
            n_human = len(store.annotations(sources=["label_studio"]))
            print(
                f"store: {store.count_clauses():,} clauses, {n_human:,} annotations from "
                f"{args.annotators} annotators (+ seed labels), built in {time.perf_counter() - started:.1f} s",
                file=sys.stderr,
            )
        client = create_app(settings, start_queue=False).test_client()
        times, cpu_times = [], []
        for run in range(args.runs):
            started, cpu_started = time.perf_counter(), time.process_time()
            response = client.get("/dashboard")
            elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu_started
            if response.status_code != 200:
                print(f"GET /dashboard answered {response.status_code}", file=sys.stderr)
                return 1
            times.append(elapsed)
            cpu_times.append(cpu)
            print(
                f"run {run + 1}: {elapsed * 1000:.0f} ms wall, {cpu * 1000:.0f} ms CPU "
                f"({len(response.data) / 1024:.0f} KiB)",
                file=sys.stderr,
            )
        median = statistics.median(times)
        # CPU time tells a slow machine from a busy one (other processes stretch wall time only).
        print(
            f"GET /dashboard median of {args.runs}: {median * 1000:.0f} ms wall, "
            f"{statistics.median(cpu_times) * 1000:.0f} ms CPU ({args.annotations:,} annotations, "
            f"{args.annotators} annotators, budget {args.budget * 1000:.0f} ms)"
        )
        return 0 if median <= args.budget else 1


if __name__ == "__main__":
    sys.exit(main())
