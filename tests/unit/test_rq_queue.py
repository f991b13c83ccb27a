"""Training cycles on RQ: a real redis-server, real `annotator worker` processes, real backends.

Two backends requesting cycles share one queued job and cycles never overlap; a failing job is
reported as in-process ones are; a real cycle trains a version in a worker; an unreachable Redis
at start is named and the backend falls back to its own worker process."""
from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from annotator import Settings, Store
from annotator.cli import main
from annotator.cycle.jobqueue import job_settings, queue_name
from annotator.cycle.project import import_labels
from backend import create_app
from backend.jobs import JobQueueUnavailable, RedisTrainingQueue, TrainingQueue, job_fields, rq_queue_name

from ..conftest import seed_lines
from ..redisserver import free_port, read_records, redis_server_or_skip, worker_process

STAND_IN = "tests.redisserver.recording_job"


def wait_for(predicate, timeout: float = 60.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


# Without a Redis server ----------------------------------------------------------------------
def test_the_backend_and_the_worker_name_the_queue_alike(tmp_path):
    for home in (tmp_path / "p", tmp_path / "项目 二", "relative/home"):
        assert rq_queue_name(home) == queue_name(home) == f"annotator:{Path(home).resolve()}"


def test_a_job_carries_the_plain_settings_and_no_secret(tmp_path):
    settings = Settings(home=tmp_path / "home", batch_size=7, retrain_delay=0.5, ls_api_key="sekrit-key",
                        webhook_secret="hook-secret", redis_url="redis://:pw@127.0.0.1:1/0", dask_scheduler="local")
    fields = job_fields(settings)
    assert {"ls_api_key", "webhook_secret", "basic_auth_pass", "dashboard_password", "database_url",
            "redis_url"}.isdisjoint(fields)
    assert "sekrit" not in repr(fields) and "pw@" not in repr(fields)
    assert fields["home"] == str(tmp_path / "home") and fields["dask_scheduler"] == "local"
    rebuilt = job_settings(fields)
    assert rebuilt.home == settings.home and rebuilt.batch_size == 7 and rebuilt.retrain_delay == 0.5


def test_an_unreachable_redis_at_start_is_named_and_the_backend_falls_back(tmp_path, caplog):
    port = free_port()
    settings = Settings(home=tmp_path / "home", redis_url=f"redis://:pw@127.0.0.1:{port}/0")
    with pytest.raises(JobQueueUnavailable, match=rf"^cannot reach Redis at redis://127\.0\.0\.1:{port}/0 "
                                                  r"\(ANNOTATOR_REDIS_URL\): .*refused"):
        RedisTrainingQueue(settings, every=1, delay=60)
    with caplog.at_level(logging.ERROR, logger="backend"):
        app = create_app(settings, in_process_jobs=True)
    queue = app.extensions["annotator"]["queue"]
    try:
        assert type(queue) is TrainingQueue
        fallback = queue.status()["queue"]["fallback"]
        assert fallback.startswith(f"cannot reach Redis at redis://127.0.0.1:{port}/0 (ANNOTATOR_REDIS_URL): ")
        assert fallback.endswith("; training cycles run in this backend process instead") and "pw" not in fallback
        assert fallback in caplog.messages
        health = app.test_client().get("/health").get_json()
        assert health["training"]["queue"] == {"backend": "in-process", "fallback": fallback}
    finally:
        queue.shutdown()


def test_the_worker_command_needs_a_reachable_redis(tmp_path):
    runner = CliRunner()
    result = runner.invoke(main, ["--home", str(tmp_path), "worker", "--burst"], env={"ANNOTATOR_REDIS_URL": ""})
    assert result.exit_code == 1
    assert "ANNOTATOR_REDIS_URL is not set; set it to the Redis server of the job queue" in result.output
    port = free_port()
    result = runner.invoke(main, ["--home", str(tmp_path), "worker", "--burst"],
                           env={"ANNOTATOR_REDIS_URL": f"redis://127.0.0.1:{port}/0"})
    assert result.exit_code == 1
    assert f"Error: cannot reach Redis at redis://127.0.0.1:{port}/0 (ANNOTATOR_REDIS_URL): " in result.output


# With a real Redis and two real workers --------------------------------------------------------
@pytest.fixture(scope="module")
def rig(tmp_path_factory):
    """redis-server, a project home, and two `annotator worker` processes listening on its queue."""
    server = redis_server_or_skip()
    base = tmp_path_factory.mktemp("rq")
    home = base / "home"
    home.mkdir()
    workers = [worker_process(home, server.url, burst=False, log_path=base / f"worker{i}.log") for i in range(2)]
    try:
        import redis
        from rq import Queue, Worker

        connection = redis.Redis.from_url(server.url)
        queue = Queue(queue_name(home), connection=connection)
        if not wait_for(lambda: Worker.count(connection=connection, queue=queue) == 2, timeout=120):
            logs = "\n".join((base / f"worker{i}.log").read_text(errors="replace")[-1500:] for i in range(2))
            pytest.fail(f"the workers did not register within 120 s:\n{logs}")
        yield {"url": server.url, "home": home, "base": base, "queue": queue, "connection": connection}
    finally:
        for w in workers:
            w.terminate()
        for w in workers:
            try:
                w.wait(timeout=20)
            except Exception:
                w.kill()
                w.wait(timeout=10)
        server.stop()


@pytest.fixture
def make_queue(rig):
    queues = []

    def make(*, record, seconds=0.3, fail=False, every=1, settings=None):
        settings = settings or Settings(home=rig["home"], redis_url=rig["url"])
        queue = RedisTrainingQueue(settings, every=every, delay=60, func=STAND_IN,
                                   func_kwargs={"record": str(record), "seconds": seconds, "fail": fail})
        queues.append(queue)
        return queue

    yield make
    for queue in queues:
        queue.shutdown(wait=True)


def test_two_backends_share_one_queued_cycle_and_cycles_never_overlap(rig, make_queue):
    from rq.registry import StartedJobRegistry

    record = rig["base"] / "overlap.jsonl"
    started = StartedJobRegistry(queue=rig["queue"])
    first, second = make_queue(record=record, seconds=1.5), make_queue(record=record, seconds=1.5)
    backend_1, backend_2 = make_queue(record=record), make_queue(record=record)
    # Keep both workers busy: one runs a cycle, the other waits for the project's cycle lock.
    first.request_now()
    assert wait_for(lambda: started.count == 1 and rig["queue"].count == 0, timeout=30)
    second.request_now()
    assert wait_for(lambda: started.count == 2 and rig["queue"].count == 0, timeout=30)
    # Labels reach two backends meanwhile: a forced cycle from one, an ordinary one from the other.
    sampled, stop = [], threading.Event()

    def sample() -> None:
        while not stop.is_set():
            sampled.append(rig["queue"].count)
            time.sleep(0.01)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        backend_1.request_now()
        assert wait_for(lambda: backend_1.status()["queue"]["job"] is not None, timeout=10)
        backend_2.notify(1)
        assert wait_for(lambda: backend_2.status()["queue"]["job"] is not None, timeout=10)
        assert backend_1.status()["queue"]["job"] == backend_2.status()["queue"]["job"]
        assert rig["queue"].count == 1  # one queued cycle, not two
        for queue in (first, second, backend_1, backend_2):
            assert queue.wait_idle(timeout=60)
    finally:
        stop.set()
        sampler.join()
    assert max(sampled) == 1
    runs = sorted(read_records(record), key=lambda r: r["start"])
    assert len(runs) == 3
    assert all(a["end"] <= b["start"] for a, b in zip(runs, runs[1:]))  # one cycle at a time
    shared = backend_1.status()
    assert shared["cycles"] == 1 and shared["last_error"] is None and shared["last_result"]["force"] is True
    assert backend_2.status()["last_result"] == shared["last_result"]  # the same job's report
    assert len({r["job"] for r in runs}) == 3 and len({r["pid"] for r in runs}) == 3  # a forked child each


def test_a_failing_cycle_is_reported_and_the_next_one_runs(rig, make_queue):
    record = rig["base"] / "failing.jsonl"
    failing = make_queue(record=record, fail=True, seconds=0)
    failing.request_now()
    assert wait_for(lambda: failing.status()["cycles"] == 1, timeout=60)
    status = failing.status()
    assert status["last_error"] == "ValueError: no labels to train on"
    assert status["last_result"] is None and status["running"] is False
    healthy = make_queue(record=record, seconds=0)
    healthy.request_now()
    assert wait_for(lambda: healthy.status()["cycles"] == 1, timeout=60)
    assert healthy.status()["last_error"] is None and healthy.status()["last_result"]["force"] is True


def test_a_real_cycle_trains_a_version_in_a_worker(rig, tmp_path):
    settings = Settings(home=rig["home"], redis_url=rig["url"], min_train_labels=20, retrain_every=5,
                        retrain_delay=60)
    labeled = tmp_path / "labeled.tsv"
    labeled.write_text("\n".join(seed_lines(60, seed=5)) + "\n", encoding="utf-8")
    with Store(settings.db_path) as store:
        import_labels(store, labeled, settings.labels)
    app = create_app(settings)
    queue = app.extensions["annotator"]["queue"]
    try:
        client = app.test_client()
        health = client.get("/health").get_json()
        assert health["model_version"] is None
        assert health["training"]["queue"] | {"queued": 0} == {
            "backend": "rq", "name": queue_name(rig["home"]), "redis": rig["url"], "job": None, "queued": 0,
            "workers": 2}
        response = client.post("/webhook", json={"action": "START_TRAINING"})  # a home serving no project yet
        assert response.status_code == 201
        assert wait_for(lambda: queue.status()["cycles"] == 1, timeout=120)
        health = client.get("/health").get_json()
        assert health["training"]["last_error"] is None, health
        assert health["training"]["last_result"]["model_version"] == 1
        assert health["model_version"] == "1"
    finally:
        queue.shutdown()
