"""Enqueue-to-finished time of a training cycle: the embedded worker process vs RQ on Redis.

One seeded project (``benchlib.seeded_project``: ``--seed`` labeled clauses, ``--pool`` unlabeled
ones, trained as ``annotator train`` does). The backend is built by ``create_app`` exactly as in
production, without and with ``ANNOTATOR_REDIS_URL`` (a throw-away redis-server and one
``annotator worker`` process, forking per cycle or ``--no-fork``); each run asks for a forced
cycle (a retrain: the cached features are reused, the classifier refitted) and times request ->
result in the backend. ``overhead`` is the median of that time minus the cycle's own ``seconds``
(what the queue, the process hop and fetching the result cost).

Usage: nice -n 5 .venv/bin/python bench/queue_latency.py [--seed 1000] [--pool 5000] [--runs 5]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchlib import seeded_project  # noqa: E402

from backend import create_app  # noqa: E402
from tests.redisserver import RedisServer, redis_binary, worker_process  # noqa: E402


def timed_cycles(settings, runs: int) -> list[tuple[float, float]]:
    """``(request -> result seconds, the cycle's own seconds)`` of ``runs`` forced cycles."""
    app = create_app(settings)
    queue = app.extensions["annotator"]["queue"]
    try:
        if not queue.wait_idle(timeout=120):
            raise SystemExit("the queue did not settle")
        time.sleep(3)  # let the embedded worker process finish warming up (it does before the first label)
        out = []
        for _ in range(runs):
            before = queue.status()["cycles"]
            started = time.perf_counter()
            queue.request_now()
            while queue.status()["cycles"] == before:
                time.sleep(0.005)
            elapsed = time.perf_counter() - started
            status = queue.status()
            if status["last_error"]:
                raise SystemExit(f"cycle failed: {status['last_error']}")
            out.append((elapsed, status["last_result"]["seconds"]))
        return out
    finally:
        queue.shutdown()


def wait_for_worker(url: str, home: Path, timeout: float = 120) -> None:
    import redis
    from rq import Queue, Worker

    from annotator.cycle.jobqueue import queue_name

    connection = redis.Redis.from_url(url)
    queue = Queue(queue_name(home), connection=connection)
    deadline = time.monotonic() + timeout
    while Worker.count(connection=connection, queue=queue) < 1:
        if time.monotonic() > deadline:
            raise SystemExit("the worker did not start")
        time.sleep(0.1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, default=1000, help="labeled seed clauses")
    parser.add_argument("--pool", type=int, default=5000, help="unlabeled pool clauses")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    binary = redis_binary()
    if binary is None:
        raise SystemExit("redis-server is not installed")
    work = Path(tempfile.mkdtemp(prefix="queue_latency_"))
    server = RedisServer(binary).start()
    worker = None
    try:
        settings, _, train_s = seeded_project(work / "home", n_seed=args.seed, n_pool=args.pool)
        print(
            f"seeded project: {args.seed:,} labels, {args.pool:,} pool clauses, trained in {train_s:.1f} s; "
            f"load {os.getloadavg()[0]:.1f}",
            flush=True,
        )
        rows = [("embedded worker process", timed_cycles(settings, args.runs))]
        for name, worker_args in (
            ("RQ on Redis, 1 `annotator worker` (a fork per cycle)", ()),
            ("RQ on Redis, 1 `annotator worker --no-fork`", ("--no-fork",)),
        ):
            worker = worker_process(
                settings.home, server.url, burst=False, args=worker_args, log_path=work / "worker.log"
            )
            wait_for_worker(server.url, settings.home)
            rows.append((name, timed_cycles(settings.replace(redis_url=server.url), args.runs)))
            worker.terminate()
            worker.wait(timeout=30)
            worker = None
        print(
            f"\nload {os.getloadavg()[0]:.1f}\n| queue | request -> result (median of {args.runs}) | cycle itself "
            "| overhead |\n|---|---|---|---|"
        )
        for name, runs in rows:
            total = statistics.median(t for t, _ in runs)
            own = statistics.median(s for _, s in runs)
            overhead = statistics.median(t - s for t, s in runs)
            print(
                f"| {name} | {total:.2f} s | {own:.2f} s | {overhead:.2f} s |  (all: "
                + ", ".join(f"{t:.2f}/{s:.2f}" for t, s in runs)
                + ")"
            )
    finally:
        if worker is not None:
            worker.terminate()
            worker.wait(timeout=30)
        server.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
