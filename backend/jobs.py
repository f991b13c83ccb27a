"""TrainingQueue: a debounced, single-worker background runner for retrain-and-push cycles.

Webhooks call ``notify()`` and return at once. The worker thread starts a cycle when enough new
labels arrived (``every``) or ``delay`` seconds after the first unhandled one, or at once on
``request_now()``. The cycle itself runs in a separate process (one long-lived worker process), so
fitting never holds this process's GIL and ``/predict`` and ``/webhook`` stay fast; a crash in it
is reported, and the previous model keeps serving. The worker process is started (and the job's
``warm_up``, if it has one, run in it) when the queue starts, so the first retrain does not wait
for a fresh interpreter to import scikit-learn and jieba; it logs to this process's stderr at this
process's log level.
"""
from __future__ import annotations

import logging
import multiprocessing
import threading
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

log = logging.getLogger(__name__)


class TrainingQueue:
    """Runs ``job(force)`` in a worker process, debounced by label count and time.

    Parameters
    ----------
    job : a picklable callable ``job(force: bool) -> dict`` (run in the worker process).
    every : new labels that start a cycle at once.
    delay : seconds after the first unhandled label before a cycle starts anyway.
    in_process : run the job in a thread of this process instead (tests, debugging).
    """

    def __init__(self, job: Callable[[bool], Any], *, every: int, delay: float,
                 in_process: bool = False) -> None:
        self.job = job
        self.every = every
        self.delay = delay
        self.in_process = in_process
        self._cond = threading.Condition()
        self._pending = 0
        self._first_pending_at: float | None = None
        self._forced = False
        self._running = False
        self._stopped = False
        self._executor: ProcessPoolExecutor | None = None
        self.cycles = 0
        self.last_result: Any = None
        self.last_error: str | None = None
        self.last_finished_at: float | None = None
        self._thread = threading.Thread(target=self._run, name="annotator-training", daemon=True)
        self._thread.start()

    # Called from request handlers ----------------------------------------------------------
    def notify(self, n_new: int = 1) -> None:
        """Count new labels; the worker decides when to run."""
        if n_new <= 0:
            return
        with self._cond:
            self._pending += n_new
            if self._first_pending_at is None:
                self._first_pending_at = time.monotonic()
            self._cond.notify()

    def request_now(self) -> None:
        """Run a cycle as soon as the worker is free, whatever the count."""
        with self._cond:
            self._forced = True
            self._cond.notify()

    def status(self) -> dict:
        with self._cond:
            return {"running": self._running, "pending_labels": self._pending, "cycles": self.cycles,
                    "last_error": self.last_error, "last_result": self.last_result,
                    "last_finished_at": self.last_finished_at}

    def wait_idle(self, timeout: float = 60.0) -> bool:
        """Block until no cycle is running or due (tests and benchmarks); False on timeout."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._running or self._forced or self._pending >= self.every:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(min(remaining, 0.05))
        return True

    def shutdown(self, wait: bool = True) -> None:
        with self._cond:
            self._stopped = True
            self._cond.notify_all()
        if wait:
            self._thread.join(timeout=120)
        if self._executor is not None:
            self._executor.shutdown(wait=wait, cancel_futures=True)

    # Worker ---------------------------------------------------------------------------------
    def _due(self) -> bool:
        if self._forced or self._pending >= self.every:
            return True
        return (self._pending > 0 and self._first_pending_at is not None
                and time.monotonic() - self._first_pending_at >= self.delay)

    def _warm_up(self) -> None:
        """Start the worker process and let the job import what it needs before the first cycle."""
        warm_up = getattr(self.job, "warm_up", None)
        try:
            if self.in_process:
                if warm_up is not None:
                    warm_up()
            else:
                self._execute_in_worker(warm_up if warm_up is not None else _nothing)
        except Exception:  # a failed warm-up only costs the first cycle its head start
            log.exception("warming up the training worker failed; the first cycle will start it")

    def _run(self) -> None:
        self._warm_up()
        while True:
            with self._cond:
                while not self._stopped and not self._due():
                    self._cond.wait(timeout=0.2)
                if self._stopped:
                    return
                force = self._forced
                self._pending, self._first_pending_at, self._forced = 0, None, False
                self._running = True
            try:
                result, error = self._execute(force), None
            except Exception as exc:  # the worker must survive any failing cycle
                log.exception("training cycle failed; the previous model keeps serving")
                result, error = None, f"{type(exc).__name__}: {exc}"
            with self._cond:
                self._running = False
                self.cycles += 1
                self.last_result = result if error is None else self.last_result
                self.last_error = error
                self.last_finished_at = time.time()
                self._cond.notify_all()

    def _execute(self, force: bool) -> Any:
        if self.in_process:
            return self.job(force)
        return self._execute_in_worker(self.job, force)

    def _execute_in_worker(self, fn: Callable[..., Any], *args: Any) -> Any:
        if self._executor is None:
            self._executor = ProcessPoolExecutor(
                max_workers=1, mp_context=multiprocessing.get_context("spawn"),
                initializer=_configure_worker_logging, initargs=(logging.getLogger().getEffectiveLevel(),))
        try:
            return self._executor.submit(fn, *args).result()
        except BrokenProcessPool:
            self._executor = None  # the worker died (killed, out of memory): start a new one next time
            raise


def _configure_worker_logging(level: int) -> None:
    """In the worker process: log to stderr (the backend's log) at the backend's level."""
    logging.basicConfig(level=level, format="%(levelname)s %(name)s [worker]: %(message)s")


def _nothing() -> None:
    """The warm-up of a job without one: starting the worker imports this module, so the backend
    package and with it the training stack (annotator.run_cycle: scikit-learn, jieba, modAL)."""
