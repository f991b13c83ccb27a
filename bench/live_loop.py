"""Live-loop benchmark against a real Label Studio and the real backend (loopback only).

Measures what the live-loop issue asks for:
- an annotation submitted through Label Studio's API is in the store within ... s;
- the 20th label -> a new model version -> every waiting task re-scored in Label Studio (the
  project's model_version switched), pool of 5,000 (bar: under 10 s);
- /webhook latency (p50/p99) while a retrain runs, /predict latency for 10 tasks;
- what a refresh costs in Label Studio for 200, 2,000 and 20,000 waiting tasks: reading the task
  index, importing one prediction per task, switching the model version (sizes the queue window).

Usage: .venv/bin/python bench/live_loop.py [--pool 5000] [--seed-labels 1000] [--window 200]
                                           [--refresh-sizes 200 2000 20000]
Bounded: a fixed number of requests, every loop has a deadline.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from annotator import LabelStudioClient, LabelStudioError, Store, choices_result  # noqa: E402
from annotator.cycle.connect import connect_project  # noqa: E402
from annotator.labelstudio.client import ls_model_version, prediction_payload  # noqa: E402
from annotator.cli.services import BackendServer, LabelStudioServer  # noqa: E402
from benchlib import percentile, seeded_project  # noqa: E402


def wait_for(predicate, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise TimeoutError


def refresh_cost(client: LabelStudioClient, config, n: int) -> dict:
    """Seconds Label Studio takes for the calls of a refresh over ``n`` waiting tasks (read the task
    index, drop the previous version's predictions, import the new ones, switch the version)."""
    project_id, _ = client.ensure_project(f"refresh cost {n} {time.time_ns()}", config.xml)
    client.serve_by_uncertainty(project_id)
    t0 = time.monotonic()
    for start in range(0, n, 2000):
        client.import_tasks(
            project_id,
            [
                {"data": {"text": f"第{i}条 支持企业开展研发活动。", "clause_id": f"c{i}"}}
                for i in range(start, min(n, start + 2000))
            ],
        )
    imported = time.monotonic() - t0
    out = {"tasks": n, "import_tasks_s": round(imported, 2)}
    for version in (1, 2):
        t0 = time.monotonic()
        index = client.task_index(project_id, config.value_key)
        t1 = time.monotonic()
        client.delete_predictions(project_id, [t.id for t in index])  # as refresh_queue: one per task
        t2 = time.monotonic()
        client.import_predictions(
            project_id,
            [
                prediction_payload([config.labels[i % 27]], i / n, ls_model_version(version), config, task_id=t.id)
                for i, t in enumerate(index)
            ],
        )
        t3 = time.monotonic()
        client.set_model_version(project_id, ls_model_version(version))
        t4 = time.monotonic()
        out[f"v{version}"] = {
            "task_index_s": round(t1 - t0, 2),
            "delete_predictions_s": round(t2 - t1, 2),
            "import_predictions_s": round(t3 - t2, 2),
            "set_model_version_s": round(t4 - t3, 2),
            "total_s": round(t4 - t0, 2),
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pool", type=int, default=5000)
    parser.add_argument("--seed-labels", type=int, default=1000)
    parser.add_argument("--window", type=int, default=200)
    parser.add_argument("--refresh-sizes", type=int, nargs="*", default=[200, 2000, 20000])
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="annotator-bench-"))
    settings, pool, seconds = seeded_project(tmp / "home", n_seed=args.seed_labels, n_pool=args.pool)
    print(
        f"seed model (as `annotator train`: project featurizer, pool features cached, held-out "
        f"evaluation): {args.seed_labels} labeled clauses, {seconds:.1f} s; pool {args.pool}"
    )
    with LabelStudioServer(tmp / "ls") as ls:
        t0 = time.monotonic()
        ls.start(timeout=300)
        print(f"Label Studio start: {time.monotonic() - t0:.0f} s")
        env = {
            "LABEL_STUDIO_URL": ls.url,
            "LABEL_STUDIO_API_KEY": ls.token,
            "ANNOTATOR_RETRAIN_EVERY": "20",
            "ANNOTATOR_RETRAIN_DELAY": "600",
            "ANNOTATOR_QUEUE_WINDOW": str(args.window),
        }
        with BackendServer(settings.home, env=env) as backend:
            backend.start()
            client = LabelStudioClient(ls.url, ls.token)
            s = settings.replace(ls_url=ls.url, ls_api_key=ls.token, backend_url=backend.url, queue_window=args.window)
            t0 = time.monotonic()
            with Store(s.store_url) as store:
                report = connect_project(s, store, client)
            project_id = report["project_id"]
            print(
                f"connect: {args.window} tasks imported with their scores in {time.monotonic() - t0:.1f} s "
                f"(queue: {report['push']})"
            )
            config = s.labels_config()
            tasks = sorted(client.tasks(project_id), key=lambda t: t["id"])
            # 1. annotation -> store latency, 19 labels (no retrain yet).
            delays = []
            store = Store(s.store_url)
            for i, task in enumerate(tasks[:19]):
                t0 = time.monotonic()
                ann = client.create_annotation(task["id"], choices_result([s.labels[i % 27]], config))
                wait_for(
                    lambda: any(a.ls_annotation_id == ann["id"] for a in store.annotations(sources=["label_studio"])),
                    10,
                )
                delays.append(time.monotonic() - t0)
            print(
                f"annotation in store after submit: p50 {statistics.median(delays) * 1000:.0f} ms, "
                f"max {max(delays) * 1000:.0f} ms (n={len(delays)})"
            )
            # 2. the 20th label starts a retrain; time until Label Studio serves by the new version.
            v_before = store.latest_model_version().version
            t20, wall20 = time.monotonic(), time.time()
            client.create_annotation(tasks[19]["id"], choices_result([s.labels[0]], config))
            hook_lat, predict_lat = [], []
            payload_task = json.loads(json.dumps(client.task(tasks[0]["id"]), default=str))
            body = {
                "action": "ANNOTATION_UPDATED",
                "annotation": payload_task["annotations"][0],
                "task": payload_task,
                "project": {"id": project_id},
            }
            ptasks = {"tasks": [{"id": t["id"], "data": t["data"]} for t in tasks[20:30]]}
            session = requests.Session()
            deadline = time.monotonic() + 120
            switched_at = None
            target = ls_model_version(v_before + 1)
            while time.monotonic() < deadline and switched_at is None:
                t0 = time.perf_counter()
                r = session.post(f"{backend.url}/webhook", json=body, timeout=10)
                hook_lat.append(time.perf_counter() - t0)
                assert r.status_code == 201, r.text
                t0 = time.perf_counter()
                r = session.post(f"{backend.url}/predict", json=ptasks, timeout=10)
                predict_lat.append(time.perf_counter() - t0)
                assert r.status_code == 200
                if client.project(project_id)["model_version"] == target:
                    switched_at = time.monotonic()
            if switched_at is None:
                print("Label Studio did not switch to a new model version within 120 s")
            else:
                print(
                    f"20th label -> new version -> every waiting task re-scored in Label Studio: "
                    f"{switched_at - t20:.1f} s"
                )
                latest = store.latest_model_version()
                run = next(r for r in store.train_runs() if r.model_version == latest.version)

                def after(stamp: str) -> float:
                    return datetime.fromisoformat(stamp).timestamp() - wall20

                print(
                    f"  retrain started +{after(run.started_at):.1f} s, version saved "
                    f"+{after(run.finished_at):.1f} s (fit {latest.metrics.get('seconds')} s); "
                    f"the cycle: {backend_cycle(backend, latest.version)}"
                )
            print(
                f"/webhook while retraining: p50 {percentile(hook_lat, 50) * 1000:.1f} ms, "
                f"p99 {percentile(hook_lat, 99) * 1000:.1f} ms (n={len(hook_lat)})"
            )
            print(
                f"/predict 10 tasks: p50 {percentile(predict_lat, 50) * 1000:.1f} ms, "
                f"p99 {percentile(predict_lat, 99) * 1000:.1f} ms (n={len(predict_lat)})"
            )
            store.close()
            # 3. What a refresh costs Label Studio, by the number of waiting tasks.
            for n in args.refresh_sizes:
                try:
                    print(f"refresh cost: {json.dumps(refresh_cost(client, config, n))}")
                except LabelStudioError as exc:  # e.g. a call past the client's 30 s timeout
                    print(f"refresh cost for {n} tasks: {exc}")


def backend_cycle(backend: BackendServer, version: int) -> dict:
    """The report of the cycle that trained ``version``, once it finished (evaluation included)."""

    def finished():
        status = requests.get(f"{backend.url}/health", timeout=10).json()["training"] or {}
        return (status.get("last_result") or {}).get("model_version") == version and status["last_result"]

    result = wait_for(finished, 120)
    return {k: result.get(k) for k in ("train_seconds", "ready_seconds", "seconds")} | {
        "queue": {k: (result.get("push") or {}).get(k) for k in ("imported", "refreshed", "seconds")}
    }


if __name__ == "__main__":
    main()
