"""The README's first command, for real: ``annotator demo`` ingests the shipped newsletters, trains
on the shipped seed file, starts Label Studio and the backend, and leaves the first uncertain batch
waiting with the model's labels pre-filled. Someone labels ten clauses, a retrain re-scores the
queue; a SIGTERM (a ``kill``, a closed terminal) stops the demo *and* both servers it started;
running it again on the same home works, adds nothing and pushes no clause twice."""

from __future__ import annotations

import re
import signal
import subprocess
from pathlib import Path

import pytest
import requests

from annotator import LabelStudioClient, Settings, Store, choices_result
from annotator.cli.services import DEMO_TOKEN, free_port, port_answers as answers

from .conftest import ANNOTATOR, wait_for

pytestmark = pytest.mark.e2e


def run_demo(home: Path, ls_port: int, port: int, log: Path, *extra: str) -> subprocess.Popen:
    with open(log, "w") as out:
        return subprocess.Popen(
            [ANNOTATOR, "--home", str(home), "demo", "--ls-port", str(ls_port), "--port", str(port), *extra],
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def test_demo_pushes_the_first_batch_stops_its_servers_on_sigterm_and_reruns_idempotently(tmp_path):
    home, log = tmp_path / "home", tmp_path / "demo.log"
    ls_port, port = free_port(), free_port()
    demo = run_demo(home, ls_port, port, log)
    try:
        wait_for(
            lambda: "clauses are waiting" in log.read_text() or demo.poll() is not None,
            600,
            "the demo to push its first batch",
        )
        output = log.read_text()
        assert demo.poll() is None, output
        assert "ingested 4 documents" in output and "seed labels: 5602 labeled clauses" in output
        assert "model version 1: held-out macro-F1" in output
        waiting = int(re.search(r"(\d+) clauses are waiting", output).group(1))
        project_id = int(re.search(rf"http://127\.0\.0\.1:{ls_port}/projects/(\d+)/", output).group(1))

        # What the annotator finds when logging in: the batch, each task with the model's labels.
        with LabelStudioClient(f"http://127.0.0.1:{ls_port}", DEMO_TOKEN) as client:
            tasks = list(client.tasks(project_id))
        assert waiting > 0 and len(tasks) == waiting
        for task in tasks:
            (prediction,) = task["predictions"]
            assert prediction["model_version"] == "policy-clf-v1" and prediction["result"][0]["value"]["choices"]
        health = requests.get(f"http://127.0.0.1:{port}/health", timeout=10).json()
        assert health["status"] == "UP" and health["model_version"] == "1"
        assert requests.get(f"http://127.0.0.1:{port}/dashboard", timeout=30).status_code == 200

        # Ten labels (retrain_every): a retrain re-scores the waiting tasks under version 2.
        config = Settings(home=home).labels_config()
        with LabelStudioClient(f"http://127.0.0.1:{ls_port}", DEMO_TOKEN) as client:
            for i, task in enumerate(tasks[:10]):
                client.create_annotation(task["id"], choices_result([config.labels[i]], config))
            wait_for(
                lambda: client.project(project_id)["model_version"] == "policy-clf-v2",
                180,
                "the queue re-scored by version 2",
            )
            tasks = list(client.tasks(project_id))

        demo.send_signal(signal.SIGTERM)
        assert demo.wait(timeout=90) == 0, log.read_text()
        assert "stopping" in log.read_text()
        assert not answers(ls_port) and not answers(port), "a server outlived the demo"
    finally:
        if demo.poll() is None:
            demo.terminate()
            demo.wait(timeout=90)

    # Again, as a user does the next morning: nothing new is stored, no clause is pushed twice.
    rerun = run_demo(home, ls_port, port, tmp_path / "rerun.log")
    try:
        wait_for(
            lambda: "clauses are waiting" in (tmp_path / "rerun.log").read_text() or rerun.poll() is not None,
            600,
            "the demo to start again",
        )
        output = (tmp_path / "rerun.log").read_text()
        assert rerun.poll() is None, output
        assert "ingested 4 documents: 0 new clauses" in output and "(0 new)" in output
        assert "training the first model" not in output
        with LabelStudioClient(f"http://127.0.0.1:{ls_port}", DEMO_TOKEN) as client:
            again = list(client.tasks(project_id))
            assert client.project(project_id)["model_version"] == "policy-clf-v2"
        clause_ids = [task["data"]["clause_id"] for task in again]
        assert len(clause_ids) == len(set(clause_ids)) == len(tasks), "a clause was pushed twice"
        health = requests.get(f"http://127.0.0.1:{port}/health", timeout=10).json()
        assert health["status"] == "UP" and health["reason"] is None
        with Store(Settings(home=home).store_url) as store:
            assert len(store.annotations(sources=["label_studio"])) == 10
    finally:
        rerun.send_signal(signal.SIGTERM)
        assert rerun.wait(timeout=90) == 0
    assert not answers(ls_port) and not answers(port)
