"""Training cycles on RQ (annotator.cycle.jobqueue, the one queue module of backends and workers):
a real redis-server, real `annotator worker` processes, real backends.

The queue's name, the job's dotted name and settings round trip; an unreachable Redis is one
JobQueueError, named without its password, on both sides, and the backend falls back to its own
worker process; two backends requesting cycles share one queued job and cycles never overlap; a
failing job is reported as in-process ones are; a real cycle trains a version in a worker."""

from __future__ import annotations

import inspect
import logging
import re
import threading
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from annotator import AnnotatorError, InputError, JobQueueError, Settings, Store
from annotator.cli import main
from annotator.cycle import jobqueue
from annotator.cycle.jobqueue import (
    CYCLE_JOB,
    CycleQueue,
    _failure_line,
    job_fields,
    job_settings,
    queue_name,
    redis_connection,
    redis_location,
)
from annotator.cycle.project import import_labels
from backend import create_app
from backend.jobs import RedisTrainingQueue, TrainingQueue

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
def test_the_queue_is_named_after_the_absolute_home(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for home in (tmp_path / "p", tmp_path / "项目 二", "relative/home"):
        assert queue_name(home) == f"annotator:{Path(home).resolve()}"
    assert queue_name("relative/home") == f"annotator:{tmp_path}/relative/home"


def test_workers_find_the_cycle_job_by_the_name_backends_enqueue():
    module, _, name = CYCLE_JOB.rpartition(".")
    assert (module, name) == (jobqueue.__name__, "cycle_job") and getattr(jobqueue, name) is jobqueue.cycle_job
    assert inspect.signature(RedisTrainingQueue).parameters["func"].default == CYCLE_JOB
    assert inspect.signature(CycleQueue).parameters["func"].default == CYCLE_JOB


def test_a_job_carries_the_plain_settings_and_no_secret(tmp_path):
    settings = Settings(
        home=tmp_path / "home",
        batch_size=7,
        retrain_delay=0.5,
        ls_api_key="sekrit-key",
        webhook_secret="hook-secret",
        redis_url="redis://:pw@127.0.0.1:1/0",
        dask_scheduler="local",
    )
    fields = job_fields(settings)
    assert {
        "ls_api_key",
        "webhook_secret",
        "basic_auth_pass",
        "dashboard_password",
        "database_url",
        "redis_url",
    }.isdisjoint(fields)
    assert "sekrit" not in repr(fields) and "pw@" not in repr(fields)
    assert fields["home"] == str(tmp_path / "home") and fields["dask_scheduler"] == "local"
    rebuilt = job_settings(fields)
    assert rebuilt.home == settings.home and rebuilt.batch_size == 7 and rebuilt.retrain_delay == 0.5
    assert job_fields(rebuilt) == fields  # the round trip loses nothing but the secrets


def test_a_redis_location_never_shows_the_password():
    import redis

    assert redis_location(redis.Redis.from_url("redis://ann:s3cret@10.0.0.5:6380/2")) == "redis://10.0.0.5:6380/2"
    assert redis_location(redis.Redis.from_url("redis://:s3cret@localhost")) == "redis://localhost:6379/0"
    assert redis_location(redis.Redis.from_url("unix://:s3cret@/run/redis.sock?db=3")) == "unix:///run/redis.sock?db=3"


def test_an_unreachable_redis_is_one_error_on_both_sides_and_the_backend_falls_back(tmp_path, caplog):
    port = free_port()
    settings = Settings(home=tmp_path / "home", redis_url=f"redis://:pw@127.0.0.1:{port}/0")
    reason = (
        rf"^cannot reach Redis at redis://127\.0\.0\.1:{port}/0 \(ANNOTATOR_REDIS_URL\): .*refused.*; "
        r"start redis-server there or fix the URL$"
    )
    with pytest.raises(JobQueueError, match=reason) as worker_side:
        redis_connection(settings.redis_url)
    with pytest.raises(JobQueueError, match=reason) as backend_side:
        RedisTrainingQueue(settings, every=1, delay=60)
    assert isinstance(backend_side.value, AnnotatorError) and str(backend_side.value) == str(worker_side.value)
    assert "pw" not in str(backend_side.value)
    with caplog.at_level(logging.ERROR, logger="backend"):
        app = create_app(settings, in_process_jobs=True)
    queue = app.extensions["annotator"]["queue"]
    try:
        assert type(queue) is TrainingQueue
        fallback = queue.status()["queue"]["fallback"]
        assert fallback == f"{backend_side.value}; training cycles run in this backend process instead"
        assert fallback in caplog.messages
        health = app.test_client().get("/health").get_json()
        assert health["training"]["queue"] == {"backend": "in-process", "fallback": fallback}
    finally:
        queue.shutdown()


def test_a_url_that_is_not_a_redis_url_is_named_masked_and_the_backend_falls_back(tmp_path):
    settings = Settings(home=tmp_path / "home", redis_url="http://ann:pw@127.0.0.1:1/0")
    message = "ANNOTATOR_REDIS_URL 'http://ann:***@127.0.0.1:1/0' is not a Redis URL"
    with pytest.raises(InputError, match=re.escape(message)):
        RedisTrainingQueue(settings, every=1, delay=60)
    app = create_app(settings, in_process_jobs=True)
    queue = app.extensions["annotator"]["queue"]
    try:
        assert type(queue) is TrainingQueue
        fallback = queue.status()["queue"]["fallback"]
        assert fallback.startswith(message) and "pw@" not in fallback
        assert fallback.endswith("; expected redis://host:port/db; training cycles run in this backend process instead")
    finally:
        queue.shutdown()


def test_a_worker_traceback_becomes_the_same_error_line_as_in_process():
    trace = (
        'Traceback (most recent call last):\n  File "/srv/annotator/cycle/loop.py", line 9, in run_cycle\n'
        "    raise LabelStudioError(...)\n"
        "annotator.errors.LabelStudioError: cannot reach http://ls:8080: Connection refused\n"
    )
    assert _failure_line(trace) == "LabelStudioError: cannot reach http://ls:8080: Connection refused"
    assert _failure_line("ValueError: no labels to train on") == "ValueError: no labels to train on"
    assert _failure_line("") is None and _failure_line(None) is None


def test_the_worker_command_needs_a_reachable_redis(tmp_path):
    runner = CliRunner()
    result = runner.invoke(main, ["--home", str(tmp_path), "worker", "--burst"], env={"ANNOTATOR_REDIS_URL": ""})
    assert result.exit_code == 1
    assert "ANNOTATOR_REDIS_URL is not set; set it to the Redis server of the job queue" in result.output
    port = free_port()
    result = runner.invoke(
        main, ["--home", str(tmp_path), "worker", "--burst"], env={"ANNOTATOR_REDIS_URL": f"redis://127.0.0.1:{port}/0"}
    )
    assert result.exit_code == 1
    assert f"Error: cannot reach Redis at redis://127.0.0.1:{port}/0 (ANNOTATOR_REDIS_URL): " in result.output
    assert result.output.rstrip().endswith("; start redis-server there or fix the URL")


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
        queue = RedisTrainingQueue(
            settings,
            every=every,
            delay=60,
            func=STAND_IN,
            func_kwargs={"record": str(record), "seconds": seconds, "fail": fail},
        )
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


def test_the_cycle_queue_runs_a_job_and_reports_its_state(rig, caplog):
    record = rig["base"] / "direct.jsonl"
    cycles = CycleQueue(
        Settings(home=rig["home"], redis_url=rig["url"]),
        func=STAND_IN,
        func_kwargs={"record": str(record), "seconds": 0},
    )
    assert cycles.name == queue_name(rig["home"]) and cycles.location == rig["url"]
    assert cycles.status() == {
        "backend": "rq",
        "name": cycles.name,
        "redis": rig["url"],
        "job": None,
        "queued": 0,
        "workers": 2,
    }
    with caplog.at_level(logging.INFO, logger="annotator.cycle.jobqueue"):
        report = cycles.run(True, train=False)
    assert report["force"] is True and cycles.status()["job"] is None
    assert [r["force"] for r in read_records(record)] == [True]
    assert not any("no rq worker listens" in m for m in caplog.messages)


def test_a_queue_without_workers_warns_once_and_a_stopped_wait_leaves_the_job_queued(rig, tmp_path, caplog):
    home = tmp_path / "unattended"  # a project no worker listens for
    cycles = CycleQueue(
        Settings(home=home, redis_url=rig["url"]), func=STAND_IN, func_kwargs={"record": str(tmp_path / "never.jsonl")}
    )
    try:
        with caplog.at_level(logging.WARNING, logger="annotator.cycle.jobqueue"):
            assert cycles.run(False, stopped=lambda: True, default="stopped") == "stopped"
            job = cycles.enqueue(False)  # the waiting job covers this one: no copy, no second warning
        assert cycles.queue.job_ids == [job.id] and cycles.status()["queued"] == 1
        assert caplog.messages == [
            f"no rq worker listens on {queue_name(home)} at {rig['url']}: the cycle waits "
            "until one starts (`annotator --home HOME worker`)"
        ]
        assert cycles.enqueue(True).id != job.id  # a forced cycle does more than the waiting one
    finally:
        cycles.queue.empty()


def test_a_real_cycle_trains_a_version_in_a_worker(rig, tmp_path):
    settings = Settings(home=rig["home"], redis_url=rig["url"], min_train_labels=20, retrain_every=5, retrain_delay=60)
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
            "backend": "rq",
            "name": queue_name(rig["home"]),
            "redis": rig["url"],
            "job": None,
            "queued": 0,
            "workers": 2,
        }
        response = client.post("/webhook", json={"action": "START_TRAINING"})  # a home serving no project yet
        assert response.status_code == 201
        assert wait_for(lambda: queue.status()["cycles"] == 1, timeout=120)
        health = client.get("/health").get_json()
        assert health["training"]["last_error"] is None, health
        assert health["training"]["last_result"]["model_version"] == 1
        assert health["model_version"] == "1"
    finally:
        queue.shutdown()
