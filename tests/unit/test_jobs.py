"""TrainingQueue: webhooks return at once; cycles run debounced, one at a time, and failures are reported."""

from __future__ import annotations

import os
import threading
import time

import pytest

from annotator import CycleJobError
from backend.jobs import TrainingQueue


def worker_job(force: bool, train: bool = True) -> dict:
    """A picklable job for the worker-process path: says where it ran; fails unless forced."""
    if not force:
        raise ValueError("no labels to train on")
    return {"pid": os.getpid(), "force": force}


class Recorder:
    """A job that records its calls; fails while ``fail`` is set; can be held to look at a running cycle."""

    def __init__(self) -> None:
        self.calls: list[bool] = []  # force, for each training cycle
        self.reconciliations = 0
        self.fail = False
        self.hold = threading.Event()
        self.hold.set()
        self.started = threading.Event()

    def __call__(self, force: bool, train: bool = True) -> dict:
        if not train:
            self.reconciliations += 1
            return {"push": {"recovered": 0}}
        self.started.set()
        self.hold.wait(10)
        self.calls.append(force)
        if self.fail:
            raise RuntimeError("classifier blew up")
        return {"model_version": len(self.calls)}


@pytest.fixture
def make_queue():
    queues = []

    def make(job, **kwargs):
        kwargs.setdefault("in_process", True)
        queue = TrainingQueue(job, **kwargs)
        queues.append(queue)
        return queue

    yield make
    for queue in queues:
        queue.shutdown(wait=True)


def wait_for(predicate, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return predicate()


def test_a_new_queue_is_idle(make_queue):
    queue = make_queue(Recorder(), every=3, delay=60)
    assert queue.status() == {
        "running": False,
        "pending_labels": 0,
        "cycles": 0,
        "last_error": None,
        "last_result": None,
        "last_finished_at": None,
    }
    assert queue.wait_idle(timeout=1)


def test_enough_new_labels_start_one_cycle(make_queue):
    job = Recorder()
    queue = make_queue(job, every=3, delay=60)
    queue.notify(2)
    time.sleep(0.3)
    assert job.calls == [] and queue.status()["pending_labels"] == 2  # not yet: 2 < 3, delay not over
    queue.notify(1)
    assert queue.wait_idle(timeout=10)
    assert wait_for(lambda: queue.status()["cycles"] == 1)
    assert job.calls == [False]
    status = queue.status()
    assert status["pending_labels"] == 0 and status["last_result"] == {"model_version": 1}
    assert status["last_error"] is None and status["last_finished_at"] is not None


def test_a_burst_of_labels_is_one_cycle(make_queue):
    job = Recorder()
    queue = make_queue(job, every=5, delay=60)
    for _ in range(12):
        queue.notify()
    assert wait_for(lambda: queue.status()["cycles"] >= 1)
    queue.wait_idle(timeout=10)
    assert len(job.calls) <= 2  # 12 labels never become 12 retrains


def test_a_few_labels_start_a_cycle_after_the_delay(make_queue):
    job = Recorder()
    queue = make_queue(job, every=100, delay=0.3)
    start = time.monotonic()
    queue.notify(1)
    assert wait_for(lambda: queue.status()["cycles"] == 1, timeout=10)
    assert time.monotonic() - start >= 0.3
    assert job.calls == [False]


def test_people_labeling_steadily_get_one_retrain_per_every_labels_not_one_per_label(make_queue):
    """The delay counts from the last label (a lull), not the first: a label every 0.1 s with a
    0.3 s delay never starts a cycle on its own; every 5th label does."""
    job = Recorder()
    queue = make_queue(job, every=5, delay=0.3)
    for _ in range(10):
        queue.notify(1)
        time.sleep(0.1)
    assert wait_for(lambda: queue.status()["cycles"] == 2)
    time.sleep(0.5)
    assert job.calls == [False, False] and queue.status()["pending_labels"] == 0


def test_a_reconciliation_runs_when_no_cycle_ran_for_a_while_and_never_trains(make_queue):
    job = Recorder()
    queue = make_queue(job, every=100, delay=60, reconcile_every=0.2)
    assert wait_for(lambda: job.reconciliations >= 2)
    assert job.calls == []  # reconciliations never retrain
    queue.request_refresh()
    n = job.reconciliations
    assert wait_for(lambda: job.reconciliations > n, timeout=1)


def test_recovered_annotations_count_toward_the_next_retrain(make_queue):
    class Recovering(Recorder):
        def __call__(self, force: bool, train: bool = True) -> dict:
            if not train:
                self.reconciliations += 1
                return {"push": {"recovered": 3 if self.reconciliations == 1 else 0}}
            return super().__call__(force, train)

    job = Recovering()
    queue = make_queue(job, every=3, delay=60, reconcile_every=0.2)  # noqa: F841 -- held: the queue runs while it lives
    assert wait_for(lambda: job.calls == [False])  # the three recovered labels started a retrain


def test_zero_or_negative_notifications_are_ignored(make_queue):
    job = Recorder()
    queue = make_queue(job, every=1, delay=0)
    queue.notify(0)
    queue.notify(-3)
    time.sleep(0.3)
    assert job.calls == [] and queue.status()["pending_labels"] == 0


def test_request_now_runs_a_forced_cycle(make_queue):
    job = Recorder()
    queue = make_queue(job, every=100, delay=60)
    queue.request_now()
    assert wait_for(lambda: queue.status()["cycles"] == 1)
    assert job.calls == [True]


def test_labels_arriving_during_a_cycle_wait_for_the_next_one(make_queue):
    job = Recorder()
    job.hold.clear()
    queue = make_queue(job, every=2, delay=60)
    queue.request_now()
    assert job.started.wait(5)
    assert queue.status()["running"] is True
    queue.notify(1)
    assert queue.status()["pending_labels"] == 1
    job.hold.set()
    assert wait_for(lambda: queue.status()["cycles"] == 1)
    assert queue.status()["pending_labels"] == 1 and job.calls == [True]


def test_a_failing_cycle_is_reported_and_the_worker_survives(make_queue):
    job = Recorder()
    queue = make_queue(job, every=1, delay=60)
    queue.notify()
    assert wait_for(lambda: queue.status()["cycles"] == 1)

    job.fail = True
    queue.notify()
    assert wait_for(lambda: queue.status()["cycles"] == 2)
    status = queue.status()
    assert status["last_error"] == "RuntimeError: classifier blew up"
    assert status["last_result"] == {"model_version": 1}  # what still serves

    job.fail = False
    queue.request_now()
    assert wait_for(lambda: queue.status()["cycles"] == 3)
    status = queue.status()
    assert status["last_error"] is None and status["last_result"] == {"model_version": 3}


def test_shutdown_stops_the_worker(make_queue):
    job = Recorder()
    queue = make_queue(job, every=1, delay=0)
    queue.shutdown(wait=True)
    queue.notify(5)
    queue.request_now()
    time.sleep(0.3)
    assert job.calls == []


def test_cycles_run_in_a_worker_process_that_survives_a_failure(make_queue):
    queue = make_queue(worker_job, every=1, delay=60, in_process=False)
    queue.request_now()
    assert wait_for(lambda: queue.status()["cycles"] == 1, timeout=60)
    status = queue.status()
    assert status["last_error"] is None
    pid = status["last_result"]["pid"]
    assert pid != os.getpid() and status["last_result"]["force"] is True

    queue.notify()  # an unforced cycle: the job raises in the worker process
    assert wait_for(lambda: queue.status()["cycles"] == 2, timeout=60)
    status = queue.status()
    assert status["last_error"] == "ValueError: no labels to train on"
    assert status["last_result"]["pid"] == pid

    queue.request_now()  # the same long-lived worker serves the next cycle
    assert wait_for(lambda: queue.status()["cycles"] == 3, timeout=60)
    status = queue.status()
    assert status["last_error"] is None and status["last_result"]["pid"] == pid


class WarmJob:
    """A picklable job whose warm-up leaves a mark (the pid it ran in) before any cycle."""

    def __init__(self, mark) -> None:
        self.mark = str(mark)

    def warm_up(self) -> None:
        with open(self.mark, "a", encoding="utf-8") as fh:
            fh.write(f"{os.getpid()}\n")

    def __call__(self, force: bool, train: bool = True) -> dict:
        return {"pid": os.getpid()}


def test_the_worker_process_is_started_and_warmed_before_the_first_label(make_queue, tmp_path):
    mark = tmp_path / "warm.txt"
    queue = make_queue(WarmJob(mark), every=1, delay=60, in_process=False)
    assert wait_for(mark.exists, timeout=60)  # no label has arrived: the queue warmed up by itself
    assert queue.status()["cycles"] == 0
    queue.request_now()
    assert wait_for(lambda: queue.status()["cycles"] == 1, timeout=60)
    # The cycle ran in the same, already warm, worker process.
    assert mark.read_text(encoding="utf-8").split() == [str(queue.status()["last_result"]["pid"])]
    assert queue.status()["last_result"]["pid"] != os.getpid()


def test_a_fallback_from_redis_is_reported_with_the_status(make_queue):
    queue = make_queue(Recorder(), every=3, delay=60)
    queue.fallback = "cannot reach Redis at redis://127.0.0.1:6379/0 (ANNOTATOR_REDIS_URL): refused"
    assert queue.status()["queue"] == {"backend": "in-process", "fallback": queue.fallback}


def test_a_cycle_that_failed_in_the_job_queue_is_reported_by_its_line_without_a_traceback(make_queue, caplog):
    def queued_job(force: bool, train: bool = True) -> dict:
        raise CycleJobError("ValueError: no labels to train on")

    queue = make_queue(queued_job, every=1, delay=60)
    queue.request_now()
    assert wait_for(lambda: queue.status()["cycles"] == 1)
    assert queue.status()["last_error"] == "ValueError: no labels to train on"
    failed = [r for r in caplog.records if r.name == "backend.jobs"]
    assert [(r.levelname, r.getMessage(), r.exc_info) for r in failed] == [
        (
            "ERROR",
            "training cycle failed in the job queue: ValueError: no labels to train on; "
            "the previous model keeps serving",
            None,
        )
    ]
