"""What the live benchmarks share: a project home seeded from the shipped labels, and percentiles."""

from __future__ import annotations

import multiprocessing as mp
import random
import time
from pathlib import Path

from annotator import ModelRegistry, Settings, Store
from annotator.labels import TASKS_DIR
from annotator.cycle.loop import train_project
from annotator.text.normalize import clause_id
from annotator.cycle.project import import_labels
from annotator.types import Clause


def in_child(fn, *args) -> dict:
    """``fn(*args, queue)`` in a fresh spawned interpreter (so its peak RSS is the step's own);
    returns what it put on the queue."""
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=fn, args=(*args, queue))
    proc.start()
    result = queue.get()
    proc.join()
    return result


def percentile(values, q: float) -> float:
    """The q-th percentile (nearest rank) of ``values``; NaN when there are none."""
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q / 100 * (len(values) - 1))))] if values else float("nan")


def seeded_project(
    home: Path, *, n_seed: int, n_pool: int, holdout: float = 0.15, shuffle_seed: int = 0, database_url: str = ""
) -> tuple[Settings, list[str], float]:
    """A project with ``n_seed`` labeled seed clauses and a pool of ``n_pool`` unlabeled ones,
    trained as ``annotator train`` does. Returns ``(settings, pool texts, training seconds)``.
    ``database_url``: the project's store on PostgreSQL instead of its SQLite file.

    The pool is the seed file's other clauses, repeated with a numbered suffix when more are
    asked for than there are (new texts, real vocabulary).
    """
    by_text: dict[str, list[str]] = {}
    for line in (TASKS_DIR / "seed_labels.tsv").read_text(encoding="utf-8").splitlines():
        by_text.setdefault(line.split("\t", 1)[1], []).append(line)
    texts = sorted(by_text)
    random.Random(shuffle_seed).shuffle(texts)
    seed_file = home.parent / "seed.tsv"
    seed_file.parent.mkdir(parents=True, exist_ok=True)
    seed_file.write_text("\n".join(line for t in texts[:n_seed] for line in by_text[t]), encoding="utf-8")
    rest = texts[n_seed:]
    pool = [t if i < len(rest) else f"{t}（{i}）" for i, t in enumerate((rest * (n_pool // len(rest) + 1))[:n_pool])]
    settings = Settings(home=home, database_url=database_url)
    with Store(settings.store_url) as store:
        import_labels(store, seed_file, settings.labels)
        store.add_clauses(Clause(clause_id(t), t) for t in pool)
        started = time.monotonic()
        train_project(settings, store, ModelRegistry(settings.model_dir, store), holdout=holdout)
    return settings, pool, time.monotonic() - started
