"""Load test of the backend under gunicorn: concurrent webhooks (with duplicates and updates) while
/predict is hammered and retrains run; afterwards every annotation must be stored exactly once,
with its latest version, and no request may have failed.

Loopback only, bounded in count and time: ``--annotations`` distinct annotations sent by
``--clients`` threads (plus duplicates and updates), ``--deadline`` seconds at most. The store is
the project's SQLite file, or with ``--postgres`` a private PostgreSQL server (tests/pgserver.py,
durable settings) that the backend's workers share through ``ANNOTATOR_DATABASE_URL``; the check
reads the results through ``Store``, so it is the same on both engines.

Usage: .venv/bin/python bench/load_webhooks.py [--workers 4] [--clients 16] [--annotations 5000] [--postgres]
Prints throughput, latency percentiles and the store check; exits 1 if the check fails.
"""

from __future__ import annotations

import argparse
import contextlib
import random
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from annotator import Store, choices_result  # noqa: E402
from annotator.cycle.loop import needs_training  # noqa: E402
from annotator.text.normalize import clause_id  # noqa: E402
from tests.pgserver import PostgresServer  # noqa: E402
from annotator.cli.services import BackendServer  # noqa: E402
from benchlib import percentile, seeded_project  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--annotations", type=int, default=5000)
    parser.add_argument("--duplicates", type=float, default=0.2, help="share of annotations sent twice")
    parser.add_argument("--updates", type=float, default=0.2, help="share of annotations updated later")
    parser.add_argument("--seed-labels", type=int, default=500)
    parser.add_argument("--retrain-every", type=int, default=300, help="new labels (per worker) per retrain")
    parser.add_argument("--deadline", type=float, default=900)
    parser.add_argument(
        "--postgres", action="store_true", help="store on a private PostgreSQL server instead of the SQLite file"
    )
    args = parser.parse_args()
    with contextlib.ExitStack() as stack:
        database_url = ""
        if args.postgres:
            database_url = stack.enter_context(PostgresServer(durable=True)).create_database("annotator")
        return run(args, database_url)


def run(args, database_url: str) -> int:
    """Seed a project on the chosen store, load the backend, check the store; the exit code."""
    tmp = Path(tempfile.mkdtemp(prefix="annotator-load-"))
    settings, pool, _ = seeded_project(
        tmp / "home", n_seed=args.seed_labels, n_pool=args.annotations, holdout=0, database_url=database_url
    )
    print(f"store: {'PostgreSQL (durable)' if database_url else 'SQLite (WAL, synchronous=FULL)'}")
    config = settings.labels_config()
    labels = settings.labels
    rng = random.Random(1)

    # Every annotation's versions, in the order a real Label Studio would emit them.
    events = []  # webhook bodies
    final: dict[int, tuple[str, ...]] = {}
    for k, text in enumerate(pool[: args.annotations]):
        ann_id = 10_000 + k
        first = (labels[rng.randrange(27)],)
        task = {"id": 50_000 + k, "data": {"text": text, "clause_id": clause_id(text)}}
        ann = {
            "id": ann_id,
            "task": task["id"],
            "completed_by": {"email": f"a{k % 10}@example.com"},
            "created_at": "2026-12-01T10:00:00Z",
            "updated_at": "2026-12-01T10:00:00Z",
            "result": choices_result(list(first), config),
        }
        events.append({"action": "ANNOTATION_CREATED", "annotation": ann, "task": task, "project": {"id": 1}})
        final[ann_id] = first
        if rng.random() < args.duplicates:
            events.append(events[-1])  # Label Studio retries a webhook it thinks failed
        if rng.random() < args.updates:
            second = tuple(sorted({first[0], labels[rng.randrange(27)]}, key=labels.index))
            newer = dict(ann, updated_at="2026-12-01T11:00:00Z", result=choices_result(list(second), config))
            events.append({"action": "ANNOTATION_UPDATED", "annotation": newer, "task": task, "project": {"id": 1}})
            final[ann_id] = second
    # Concurrent clients deliver in any order: an update may even arrive before its create, which
    # the store must then ignore as older (updated_at) than what it holds.
    rng.shuffle(events)

    env = {
        "ANNOTATOR_RETRAIN_EVERY": str(args.retrain_every),
        "ANNOTATOR_RETRAIN_DELAY": "5",
        **({"ANNOTATOR_DATABASE_URL": database_url} if database_url else {}),
    }
    with BackendServer(settings.home, env=env, workers=args.workers, threads=args.threads) as backend:
        t0 = time.monotonic()
        backend.start(timeout=120)
        print(f"gunicorn: {args.workers} workers x {args.threads} threads, up in {time.monotonic() - t0:.1f} s")
        deadline = time.monotonic() + args.deadline
        hook_lat, predict_lat, failures = [], [], []
        lock = threading.Lock()
        stop = threading.Event()
        sessions = threading.local()

        def session() -> requests.Session:
            if not hasattr(sessions, "s"):
                sessions.s = requests.Session()
            return sessions.s

        def timed(kind: str, latencies: list, call, accepted) -> None:
            """One request: its latency, and a failure unless ``accepted(response)``."""
            started = time.perf_counter()
            try:
                r = call()
                ok, what = accepted(r), f"{r.status_code} {r.text[:200]}"
            except (requests.RequestException, ValueError) as exc:  # ValueError: a body that is not JSON
                ok, what = False, repr(exc)
            with lock:
                latencies.append(time.perf_counter() - started)
                if not ok:
                    failures.append((kind, what))

        def send(event) -> None:
            if time.monotonic() <= deadline:
                timed(
                    "webhook",
                    hook_lat,
                    lambda: session().post(f"{backend.url}/webhook", json=event, timeout=60),
                    lambda r: r.status_code == 201,
                )

        predict_body = {"tasks": [{"id": i, "data": {"text": t}} for i, t in enumerate(pool[:10])]}

        def hammer_predict() -> None:
            s = requests.Session()
            while not stop.is_set() and time.monotonic() < deadline:
                timed(
                    "predict",
                    predict_lat,
                    lambda: s.post(f"{backend.url}/predict", json=predict_body, timeout=60),
                    lambda r: r.status_code == 200 and len(r.json()["results"]) == 10,
                )

        predictors = [threading.Thread(target=hammer_predict) for _ in range(2)]
        for t in predictors:
            t.start()
        started = time.monotonic()
        with ThreadPoolExecutor(args.clients) as pool_exec:
            list(pool_exec.map(send, events))
        sent_for = time.monotonic() - started
        stop.set()
        for t in predictors:
            t.join()
        # Let the retrains finish: the latest version covers every stored label and none is running.
        with Store(settings.store_url) as store:
            while time.monotonic() < deadline and (
                needs_training(store) or any(r.status == "running" for r in store.train_runs())
            ):
                time.sleep(1)
        settled_after = time.monotonic() - started - sent_for

    with Store(settings.store_url) as store:
        annotations = store.annotations(sources=["label_studio"])
        versions = [v.version for v in store.model_versions()]
        runs = Counter(r.status for r in store.train_runs(limit=10_000))
    stored: dict[int, list] = {}
    for annotation in annotations:
        stored.setdefault(annotation.ls_annotation_id, []).append(annotation.labels)
    missing = [a for a in final if a not in stored]
    twice = [a for a, v in stored.items() if len(v) > 1]
    wrong = [a for a, v in stored.items() if a in final and v[0] != final[a]]
    print(
        f"sent {len(events)} webhooks ({len(final)} annotations, "
        f"{len(events) - len(final)} duplicates/updates) from {args.clients} clients in {sent_for:.1f} s: "
        f"{len(events) / sent_for:.0f} webhooks/s"
    )
    print(
        f"/webhook: p50 {percentile(hook_lat, 50) * 1000:.1f} ms, p99 {percentile(hook_lat, 99) * 1000:.1f} ms; "
        f"/predict (10 tasks, 2 clients): p50 {percentile(predict_lat, 50) * 1000:.1f} ms, "
        f"p99 {percentile(predict_lat, 99) * 1000:.1f} ms, {len(predict_lat)} requests"
    )
    print(
        f"model versions {versions[0]}..{versions[-1]} ({len(versions)}, gapless: "
        f"{versions == list(range(1, len(versions) + 1))}); train runs {dict(runs)}; the last version "
        f"covered every label {settled_after:.0f} s after the last webhook"
    )
    print(
        f"failed requests: {len(failures)}; annotations missing {len(missing)}, stored twice {len(twice)}, "
        f"not at their latest version {len(wrong)}"
    )
    for kind, what in failures[:5]:
        print(f"  failure ({kind}): {what}")
    ok = not (failures or missing or twice or wrong)
    print("CHECK", "PASSED" if ok else "FAILED", f"(median webhook {statistics.median(hook_lat) * 1000:.1f} ms)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
