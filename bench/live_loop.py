"""Live-loop benchmark against a real Label Studio and the real backend (loopback only).

Measures what the live-loop issue asks for:
- an annotation submitted through Label Studio's API is in the store within ... s;
- /webhook latency (p50/p99) while a retrain runs;
- /predict latency for 10 tasks (p50);
- time from the 20th new label to a new model version and a re-ranked next batch, pool of 5,000.

Usage: .venv/bin/python bench/live_loop.py [--pool 5000] [--seed-labels 1000]
Bounded: a fixed number of requests, every loop has a deadline.
"""
from __future__ import annotations

import argparse
from datetime import datetime
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from annotator import LabelStudioClient, Store, choices_result  # noqa: E402
from annotator.connect import connect_project  # noqa: E402
from annotator.services import BackendServer, LabelStudioServer  # noqa: E402
from benchlib import percentile, seeded_project  # noqa: E402


def wait_for(predicate, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise TimeoutError


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pool", type=int, default=5000)
    parser.add_argument("--seed-labels", type=int, default=1000)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="annotator-bench-"))
    settings, pool, seconds = seeded_project(tmp / "home", n_seed=args.seed_labels, n_pool=args.pool)
    print(f"seed model (as `annotator train`: project featurizer, pool features cached, held-out "
          f"evaluation): {args.seed_labels} labeled clauses, {seconds:.1f} s; pool {args.pool}")
    with LabelStudioServer(tmp / "ls") as ls:
        t0 = time.monotonic()
        ls.start(timeout=300)
        print(f"Label Studio start: {time.monotonic() - t0:.0f} s")
        env = {"LABEL_STUDIO_URL": ls.url, "LABEL_STUDIO_API_KEY": ls.token, "ANNOTATOR_RETRAIN_EVERY": "20",
               "ANNOTATOR_RETRAIN_DELAY": "600", "ANNOTATOR_BATCH_SIZE": "40", "ANNOTATOR_LOW_WATER": "10"}
        with BackendServer(settings.home, env=env) as backend:
            backend.start()
            client = LabelStudioClient(ls.url, ls.token)
            s = settings.replace(ls_url=ls.url, ls_api_key=ls.token, backend_url=backend.url, batch_size=40)
            with Store(s.store_url) as store:
                report = connect_project(s, store, client)
            project_id = report["project_id"]
            config = s.labels_config()
            tasks = sorted(client.tasks(project_id), key=lambda t: t["id"])
            # 1. annotation -> store latency, 19 labels (no retrain yet).
            delays = []
            store = Store(s.store_url)
            for i, task in enumerate(tasks[:19]):
                t0 = time.monotonic()
                ann = client.create_annotation(task["id"], choices_result([s.labels[i % 27]], config))
                wait_for(lambda: any(a.ls_annotation_id == ann["id"] for a in store.annotations(sources=["label_studio"])), 10)
                delays.append(time.monotonic() - t0)
            print(f"annotation in store after submit: p50 {statistics.median(delays)*1000:.0f} ms, "
                  f"max {max(delays)*1000:.0f} ms (n={len(delays)})")
            # 2. the 20th label starts a retrain; time until new version + re-ranked batch.
            v_before = store.latest_model_version().version
            t20, wall20 = time.monotonic(), time.time()
            client.create_annotation(tasks[19]["id"], choices_result([s.labels[0]], config))
            # While it trains: /webhook (synthetic duplicates of an existing annotation) and /predict.
            hook_lat, predict_lat = [], []
            payload_task = json.loads(json.dumps(client.task(tasks[0]["id"]), default=str))
            ann0 = payload_task["annotations"][0]
            body = {"action": "ANNOTATION_UPDATED", "annotation": ann0, "task": payload_task,
                    "project": {"id": project_id}}
            ptasks = {"tasks": [{"id": t["id"], "data": t["data"]} for t in tasks[20:30]]}
            session = requests.Session()
            deadline = time.monotonic() + 120
            new_version_at = None
            while time.monotonic() < deadline and new_version_at is None:
                t0 = time.perf_counter()
                r = session.post(f"{backend.url}/webhook", json=body, timeout=10)
                hook_lat.append(time.perf_counter() - t0)
                assert r.status_code == 201, r.text
                t0 = time.perf_counter()
                r = session.post(f"{backend.url}/predict", json=ptasks, timeout=10)
                predict_lat.append(time.perf_counter() - t0)
                assert r.status_code == 200
                latest = store.latest_model_version()
                if latest.version > v_before and any(p["model_version"] == latest.version
                                                     for p in store.pending_pushed_tasks()):
                    new_version_at = time.monotonic()
            if new_version_at is None:
                print("no new model version within 120 s")
            else:
                print(f"20th label -> new model version + re-ranked batch in Label Studio: "
                      f"{new_version_at - t20:.1f} s")
                # Where the time went, from the store's own timestamps.
                run = next(r for r in store.train_runs() if r["model_version"] == latest.version)
                pushed = min(p["pushed_at"] for p in store.pending_pushed_tasks()
                             if p["model_version"] == latest.version)

                def after(stamp: str) -> float:
                    return datetime.fromisoformat(stamp).timestamp() - wall20

                print(f"  retrain started +{after(run['started_at']):.1f} s, version saved "
                      f"+{after(run['finished_at']):.1f} s, re-ranked batch recorded +{after(pushed):.1f} s "
                      f"(fit {latest.metrics.get('seconds')} s)")
            print(f"/webhook while retraining: p50 {percentile(hook_lat, 50)*1000:.1f} ms, "
                  f"p99 {percentile(hook_lat, 99)*1000:.1f} ms (n={len(hook_lat)})")
            print(f"/predict 10 tasks: p50 {percentile(predict_lat, 50)*1000:.1f} ms, "
                  f"p99 {percentile(predict_lat, 99)*1000:.1f} ms (n={len(predict_lat)})")
            store.close()


if __name__ == "__main__":
    main()
