"""TrainingQueue: a debounced, single-worker background runner for retrain-and-push cycles.

Webhooks call ``notify()`` and return at once. The worker thread starts a cycle when enough new
labels arrived (``every``), or when labels are waiting and none arrived for ``delay`` seconds (a
lull), or at once on ``request_now()``; so people labeling steadily get one retrain per ``every``
labels, not one per label. Every ``reconcile_every`` seconds without a cycle it runs a
reconciliation (no retrain): the Label Studio queue is settled by data and annotations that no
webhook brought are stored and counted as new labels. The cycle itself runs in a separate process
(one long-lived worker process), so fitting never holds this process's GIL and ``/predict`` and
``/webhook`` stay fast; a crash in it is reported, and the previous model keeps serving. The worker
process is started (and the job's ``warm_up``, if it has one, run in it) when the queue starts,
so the first retrain does not wait for a fresh interpreter to import scikit-learn and jieba; it
logs to this process's stderr at this process's log level.

RedisTrainingQueue debounces the same way but hands each cycle to the project's RQ queue on Redis
(``ANNOTATOR_REDIS_URL``) and waits for its result, so ``status()`` reports the same running/last
result/last error; ``annotator worker`` processes run the cycles. Everything about that queue (its
name, the job's settings, enqueueing without duplicates, waiting, connecting to Redis) lives in
the library, ``annotator.cycle.jobqueue``; this module only debounces.
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

from annotator import (
    CYCLE_JOB,
    CYCLE_TIMEOUT,
    CycleJobError,
    CycleQueue,
    Settings,
    exit_when_parent_dies,
    install_log_redaction,
    settings_secrets,
)

log = logging.getLogger(__name__)


class TrainingQueue:
    """Runs ``job(force)`` in a worker process, debounced by label count and time.

    Parameters
    ----------
    job : a picklable callable ``job(force: bool, train: bool = True) -> dict`` (run in the worker
        process); ``train=False`` is a reconciliation that never retrains.
    every : new labels that start a cycle at once.
    delay : seconds without a new label after which waiting labels start a cycle anyway.
    reconcile_every : seconds without any cycle after which a reconciliation runs (0: never).
    in_process : run the job in a thread of this process instead (tests, debugging).
    """

    def __init__(
        self,
        job: Callable[..., Any],
        *,
        every: int,
        delay: float,
        reconcile_every: float = 0.0,
        in_process: bool = False,
    ) -> None:
        self.job = job
        self.every = every
        self.delay = delay
        self.reconcile_every = reconcile_every
        self.in_process = in_process
        self._cond = threading.Condition()
        self._pending = 0
        self._last_label_at: float | None = None
        self._last_cycle_at = time.monotonic()
        self._refresh_requested = False
        self._forced = False
        self._running = False
        self._stopped = False
        self._executor: ProcessPoolExecutor | None = None
        self.cycles = 0
        self.last_result: Any = None
        self.last_error: str | None = None
        self.last_finished_at: float | None = None
        self.fallback: str | None = None  # why this queue runs cycles itself although Redis is configured
        self._thread = threading.Thread(target=self._run, name="annotator-training", daemon=True)
        self._thread.start()

    # Called from request handlers ----------------------------------------------------------
    def notify(self, n_new: int = 1) -> None:
        """Count new labels; the worker decides when to run."""
        if n_new <= 0:
            return
        with self._cond:
            self._pending += n_new
            self._last_label_at = time.monotonic()
            self._cond.notify()

    def request_refresh(self) -> None:
        """Settle and fill the Label Studio queue as soon as the worker is free, without retraining
        (a newly connected project)."""
        with self._cond:
            self._refresh_requested = True
            self._cond.notify()

    def request_now(self) -> None:
        """Run a cycle as soon as the worker is free, whatever the count."""
        with self._cond:
            self._forced = True
            self._cond.notify()

    def status(self) -> dict:
        with self._cond:
            out = {
                "running": self._running,
                "pending_labels": self._pending,
                "cycles": self.cycles,
                "last_error": self.last_error,
                "last_result": self.last_result,
                "last_finished_at": self.last_finished_at,
            }
        if self.fallback is not None:
            out["queue"] = {"backend": "in-process", "fallback": self.fallback}
        return out

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
        return (
            self._pending > 0
            and self._last_label_at is not None
            and time.monotonic() - self._last_label_at >= self.delay
        )

    def _reconcile_due(self) -> bool:
        return self._refresh_requested or (
            self.reconcile_every > 0 and time.monotonic() - self._last_cycle_at >= self.reconcile_every
        )

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
                while not self._stopped and not self._due() and not self._reconcile_due():
                    self._cond.wait(timeout=0.2)
                if self._stopped:
                    return
                train = self._due()
                force = self._forced
                self._refresh_requested = False
                if train:
                    self._pending, self._last_label_at, self._forced = 0, None, False
                self._running = True
            try:
                result, error = self._execute(force, train), None
                recovered = ((result or {}).get("push") or {}).get("recovered", 0) if isinstance(result, dict) else 0
            except CycleJobError as exc:  # failed in an rq worker: its traceback is in the worker's log
                log.error("training cycle failed in the job queue: %s; the previous model keeps serving", exc)
                result, error, recovered = None, str(exc), 0
            except Exception as exc:  # the worker must survive any failing cycle
                log.exception("training cycle failed; the previous model keeps serving")
                result, error, recovered = None, f"{type(exc).__name__}: {exc}", 0
            with self._cond:
                self._running = False
                self._last_cycle_at = time.monotonic()
                if recovered:  # labels no webhook brought count toward the next retrain
                    self._pending += recovered
                    self._last_label_at = self._last_label_at or time.monotonic()
                self.cycles += 1
                self.last_result = result if error is None else self.last_result
                self.last_error = error
                self.last_finished_at = time.time()
                self._cond.notify_all()

    def _execute(self, force: bool, train: bool = True) -> Any:
        if self.in_process:
            return self.job(force, train)
        return self._execute_in_worker(self.job, force, train)

    def _execute_in_worker(self, fn: Callable[..., Any], *args: Any) -> Any:
        if self._executor is None:
            # The worker exits when this process dies (kill -9 included) and redacts its logs with
            # this job's secrets (initializer: _configure_worker).
            self._executor = ProcessPoolExecutor(
                max_workers=1,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_configure_worker,
                initargs=(
                    logging.getLogger().getEffectiveLevel(),
                    settings_secrets(getattr(self.job, "settings", None)),
                ),
            )
        try:
            return self._executor.submit(fn, *args).result()
        except BrokenProcessPool:
            self._executor = None  # the worker died (killed, out of memory): start a new one next time
            raise


class RedisTrainingQueue(TrainingQueue):
    """A TrainingQueue whose cycles run in rq workers: the same debouncing and ``status()``.

    Each due cycle goes to the project's RQ queue through the library's
    :class:`annotator.cycle.jobqueue.CycleQueue` (naming, the job's settings, enqueueing without
    duplicates, waiting for the result); this class only debounces, as TrainingQueue, and adds the
    queue's state to ``status()["queue"]``.

    Parameters
    ----------
    settings : the project settings; ``settings.redis_url`` names the Redis server.
    every, delay, reconcile_every : as TrainingQueue.
    func : the job's dotted name (tests enqueue stand-ins).
    func_kwargs : extra keyword arguments for ``func``.
    job_timeout : seconds a worker lets a cycle run.

    Raises
    ------
    JobQueueError
        If Redis cannot be reached; the message names the URL (without its password).
    InputError
        If ``settings.redis_url`` is not a Redis URL.
    MissingExtraError
        Without the 'scale' extra (redis, rq).
    """

    def __init__(
        self,
        settings: Settings,
        *,
        every: int,
        delay: float,
        reconcile_every: float = 0.0,
        func: str = CYCLE_JOB,
        func_kwargs: dict | None = None,
        job_timeout: int = CYCLE_TIMEOUT,
    ) -> None:
        self.cycle_queue = CycleQueue(settings, func=func, func_kwargs=func_kwargs, job_timeout=job_timeout)
        super().__init__(self._run_on_queue, every=every, delay=delay, reconcile_every=reconcile_every, in_process=True)

    def status(self) -> dict:
        out = super().status()
        out["queue"] = self.cycle_queue.status()
        return out

    def _run_on_queue(self, force: bool, train: bool = True) -> Any:
        """Run one cycle on the queue; when this queue shuts down meanwhile, the job stays queued."""
        return self.cycle_queue.run(force, train, stopped=lambda: self._stopped, default=self.last_result)


def _configure_worker(level: int, secrets: tuple[str, ...] = ()) -> None:
    """In the worker process: exit when the backend dies; log to stderr (the backend's log) at the
    backend's level, redacted like the backend's own log."""
    exit_when_parent_dies()
    logging.basicConfig(level=level, format="%(levelname)s %(name)s [worker]: %(message)s")
    install_log_redaction(secrets)


def _nothing() -> None:
    """The warm-up of a job without one: starting the worker imports this module, so the backend
    package and with it the training stack (annotator.run_cycle: scikit-learn, jieba, modAL)."""
