"""The project's job queue: training cycles on RQ (Redis), when ``ANNOTATOR_REDIS_URL`` is set.

The one home of the queue for both of its sides. Each backend process debounces its webhooks
(``backend/jobs.py``: ``RedisTrainingQueue``) and hands every due cycle to :class:`CycleQueue`, which
enqueues it on the project's RQ queue and waits for its result; ``annotator worker`` processes, any
number of them, run the queued cycles (:func:`run_worker`, :func:`cycle_job`). Both sides take from here
the queue's name (:func:`queue_name`), the job's dotted name (:data:`CYCLE_JOB`), the settings a job
carries (:func:`job_fields`, rebuilt by :func:`job_settings`) and the connection to Redis
(:func:`redis_connection`: connect and PING once; :class:`~annotator.errors.JobQueueError` naming
the URL without its password when Redis cannot be reached).

A job carries the backend's settings as plain values with the secrets left out (every field that
``Settings`` hides from its repr: the Label Studio API key, passwords, the database and Redis URLs):
a worker reads those from its own environment or ``<home>/config.toml``, so no secret is written to
Redis.

A cycle is enqueued only when none that would do as much is already waiting in the queue: several
backend processes share one queued cycle instead of stacking up copies. One cycle runs at a time per
project: the job holds a Redis lock named after the queue (kept alive while the cycle runs, so a
killed worker frees it within :data:`LOCK_TTL` seconds) on top of the project's file lock that
:func:`annotator.cycle.loop.run_cycle` takes, so that holds across machines too.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ..errors import AnnotatorError, CycleJobError, InputError, JobQueueError
from ..optional import require
from ..settings import Settings, mask_password

log = logging.getLogger(__name__)

QUEUE_PREFIX = "annotator:"
CYCLE_JOB = "annotator.cycle.jobqueue.cycle_job"  # run by `annotator worker`, found by this dotted name
CYCLE_TIMEOUT = 3600  # seconds an rq worker lets one cycle run before it stops it
RESULT_TTL = 86_400  # seconds Redis keeps a finished cycle's report ...
FAILURE_TTL = 7 * 86_400  # ... and a failed cycle's traceback (`rq info`, the failed-job registry)
LOST_JOB_GRACE = 120  # seconds past the job timeout after which a started job whose worker died is given up
LOCK_TTL = 60  # seconds a killed holder keeps the cycle lock; renewed every LOCK_TTL / 3 while alive
LOCK_WAIT = 3600  # seconds a job waits for another worker's cycle before it fails
FEATURE = "the RQ job queue (ANNOTATOR_REDIS_URL)"  # how a missing 'scale' extra names what needs it


# Naming and the job's settings ------------------------------------------------------------------
def queue_name(home: str | Path) -> str:
    """The project's RQ queue: ``annotator:<absolute home path>`` (one queue per project).

    Run the workers with the same ``--home`` path as the backend.

    Examples
    --------
    >>> queue_name("/srv/annotator")
    'annotator:/srv/annotator'
    """
    return f"{QUEUE_PREFIX}{Path(home).resolve()}"


def job_fields(settings: Settings) -> dict[str, Any]:
    """The settings a queued cycle carries: every plain value, no secret.

    Secrets are the fields ``Settings`` hides from its repr (API key, passwords, database and Redis
    URLs); the worker reads them from its own environment or config file, so none is put in Redis.
    Paths become strings. :func:`job_settings` turns the result back into ``Settings``.
    """
    out = {}
    for f in dataclasses.fields(settings):
        if f.repr:
            value = getattr(settings, f.name)
            out[f.name] = str(value) if isinstance(value, Path) else value
    return out


def job_settings(settings_fields: dict[str, Any]) -> Settings:
    """The settings a cycle job runs with: the backend's plain values (:func:`job_fields`), secrets
    from this process's environment."""
    return Settings.from_env(**settings_fields)


# Connecting -------------------------------------------------------------------------------------
def redis_location(connection: Any) -> str:
    """``redis://host:port/db`` (or ``unix://path?db=N``) of a ``redis.Redis``, never with its password.

    Examples
    --------
    >>> import redis
    >>> redis_location(redis.Redis.from_url("redis://:s3cret@10.0.0.5:6380/2"))
    'redis://10.0.0.5:6380/2'
    """
    kwargs = connection.connection_pool.connection_kwargs
    if "path" in kwargs:
        return f"unix://{kwargs['path']}?db={kwargs.get('db', 0)}"
    return f"redis://{kwargs.get('host', 'localhost')}:{kwargs.get('port', 6379)}/{kwargs.get('db', 0)}"


def redis_connection(url: str, **options: Any) -> Any:
    """A connected ``redis.Redis`` for ``url``, checked once with PING.

    Parameters
    ----------
    url : the Redis URL (``ANNOTATOR_REDIS_URL``).
    **options : more ``redis.Redis`` options (``socket_timeout``, ...).

    Raises
    ------
    InputError
        If no URL is configured or it is not a Redis URL.
    JobQueueError
        If Redis cannot be reached; the message names the URL without its password.
    MissingExtraError
        Without the 'scale' extra (redis).
    """
    redis = require("redis", FEATURE)

    if not url:
        raise InputError(
            "ANNOTATOR_REDIS_URL is not set; set it to the Redis server of the job queue, e.g. redis://127.0.0.1:6379/0"
        )
    try:
        connection = redis.Redis.from_url(url, socket_connect_timeout=5, **options)
    except ValueError as exc:
        raise InputError(
            f"ANNOTATOR_REDIS_URL {mask_password(url)!r} is not a Redis URL ({exc}); expected redis://host:port/db"
        ) from None
    try:
        connection.ping()
    except redis.RedisError as exc:
        raise JobQueueError(
            f"cannot reach Redis at {redis_location(connection)} (ANNOTATOR_REDIS_URL): {exc}; "
            "start redis-server there or fix the URL"
        ) from None
    return connection


# The enqueueing side ----------------------------------------------------------------------------
class CycleQueue:
    """The project's RQ queue of training cycles, as a backend process uses it.

    :meth:`run` enqueues a cycle as ``func(job_fields(settings), force=..., train=..., **func_kwargs)``
    (:meth:`enqueue`), unless a cycle that does at least as much (forced, or this one is not; training,
    or this one is not) is already waiting there, and waits for that job's result (:meth:`wait`).
    Enqueueing is serialized across backends by a short Redis lock, so two backends never queue two
    copies. Connecting pings Redis once, here.

    Parameters
    ----------
    settings : the project settings; ``settings.redis_url`` names the Redis server, ``settings.home`` the queue.
    func : the job's dotted name (tests enqueue stand-ins).
    func_kwargs : extra keyword arguments for ``func``.
    job_timeout : seconds a worker lets a cycle run.

    Raises
    ------
    InputError
        If ``settings.redis_url`` is empty or not a Redis URL.
    JobQueueError
        If Redis cannot be reached; the message names the URL without its password.
    MissingExtraError
        Without the 'scale' extra (redis, rq).
    """

    def __init__(
        self,
        settings: Settings,
        *,
        func: str = CYCLE_JOB,
        func_kwargs: dict[str, Any] | None = None,
        job_timeout: int = CYCLE_TIMEOUT,
    ) -> None:
        require("redis", FEATURE)
        rq = require("rq", FEATURE)

        self.name = queue_name(settings.home)
        self.func = func
        self.job_timeout = job_timeout
        self.job_id: str | None = None  # the job this process is waiting for
        self._job_args = (job_fields(settings),)
        self._func_kwargs = dict(func_kwargs or {})
        self._warned_no_worker = False
        self.connection = redis_connection(settings.redis_url, socket_timeout=30)
        self.location = redis_location(self.connection)
        self.queue = rq.Queue(self.name, connection=self.connection)

    def status(self) -> dict[str, Any]:
        """``backend``, ``name``, ``redis`` (no password), ``job``, and ``queued`` and ``workers``, or
        ``error`` while Redis is down (``/health`` must answer then, and say so)."""
        redis = require("redis", FEATURE)
        Worker = require("rq", FEATURE).Worker

        out: dict[str, Any] = {"backend": "rq", "name": self.name, "redis": self.location, "job": self.job_id}
        try:
            out.update(queued=self.queue.count, workers=Worker.count(connection=self.connection, queue=self.queue))
        except redis.RedisError as exc:
            out["error"] = f"Redis unreachable: {exc}"
        return out

    def run(
        self, force: bool, train: bool = True, *, stopped: Callable[[], bool] | None = None, default: Any = None
    ) -> Any:
        """Enqueue a cycle (or join the waiting one that covers it) and return its report.

        ``stopped`` is polled about once a second; once it answers True, ``default`` is returned and
        the job stays queued for the workers.

        Raises
        ------
        CycleJobError
            If the cycle failed, was stopped, or its job vanished or was lost with its worker.
        """
        job = self.enqueue(force, train)
        self.job_id = job.id
        try:
            return self.wait(job, stopped=stopped, default=default)
        finally:
            self.job_id = None

    def enqueue(self, force: bool, train: bool = True) -> Any:
        """The queued cycle (an ``rq.job.Job``) that covers this one: one already waiting, or a new one."""
        Worker = require("rq", FEATURE).Worker

        with self.connection.lock(f"{self.name}:enqueue-lock", timeout=30, blocking_timeout=30):
            for job in self.queue.get_jobs():
                if (
                    job.func_name == self.func
                    and (job.kwargs.get("force") or not force)
                    and (job.kwargs.get("train", True) or not train)
                ):
                    log.info("a cycle is already queued (%s); waiting for it instead of queueing another", job.id)
                    return job
            job = self.queue.enqueue_call(
                self.func,
                args=self._job_args,
                kwargs=dict(self._func_kwargs, force=force, train=train),
                timeout=self.job_timeout,
                result_ttl=RESULT_TTL,
                failure_ttl=FAILURE_TTL,
                description=f"training cycle (force={force}, train={train})",
            )
        if not self._warned_no_worker and Worker.count(connection=self.connection, queue=self.queue) == 0:
            self._warned_no_worker = True
            log.warning(
                "no rq worker listens on %s at %s: the cycle waits until one starts (`annotator --home HOME worker`)",
                self.name,
                self.location,
            )
        return job

    def wait(self, job: Any, *, stopped: Callable[[], bool] | None = None, default: Any = None) -> Any:
        """The job's result; ``default`` once ``stopped()`` answers True.

        Raises
        ------
        CycleJobError
            If the job failed (its message is the worker's ``Type: message`` line), was stopped or
            canceled, vanished from Redis, or started over ``job_timeout + LOST_JOB_GRACE`` seconds ago.
        """
        rq_exceptions = require("rq.exceptions", FEATURE)
        InvalidJobOperation, NoSuchJobError = rq_exceptions.InvalidJobOperation, rq_exceptions.NoSuchJobError
        JobStatus = require("rq.job", FEATURE).JobStatus
        Result = require("rq.results", FEATURE).Result

        while True:
            result = job.latest_result(timeout=1)  # blocks up to 1 s on the job's result stream
            if result is not None:
                if result.type == Result.Type.SUCCESSFUL:
                    return result.return_value
                raise CycleJobError(
                    _failure_line(result.exc_string) or f"cycle job {job.id} {result.type.name.lower()}"
                )
            if stopped is not None and stopped():
                return default
            try:
                status = job.get_status(refresh=True)
            except (InvalidJobOperation, NoSuchJobError):
                raise CycleJobError(
                    f"cycle job {job.id} vanished from Redis ({self.location}) before it finished"
                ) from None
            if status in (JobStatus.FAILED, JobStatus.STOPPED, JobStatus.CANCELED):
                raise CycleJobError(
                    f"cycle job {job.id} {status.value} without a result (its worker was killed or stopped)"
                )
            started = job.started_at
            if (
                status == JobStatus.STARTED
                and started is not None
                and time.time() - started.timestamp() > self.job_timeout + LOST_JOB_GRACE
            ):
                raise CycleJobError(
                    f"cycle job {job.id} started {started:%H:%M:%S} UTC and never finished; "
                    "its worker probably died (see `rq info`)"
                )


def _failure_line(exc_string: str | None) -> str | None:
    """``Type: message`` from a worker's traceback text (the module path of the type dropped)."""
    lines = [line for line in (exc_string or "").splitlines() if line.strip()]
    if not lines:
        return None
    head, sep, message = lines[-1].partition(": ")
    return f"{head.rsplit('.', 1)[-1]}{sep}{message}"


# The workers' side ------------------------------------------------------------------------------
@contextmanager
def cycle_lock(connection, queue: str, *, ttl: int = LOCK_TTL, wait: float = LOCK_WAIT) -> Iterator[None]:
    """Hold the project's cycle lock in Redis (``<queue>:cycle-lock``) while the block runs.

    The lock expires ``ttl`` seconds after its holder stops renewing it (killed, out of memory), so
    a dead worker never blocks the project for longer than that.

    Raises
    ------
    AnnotatorError
        If another worker's cycle held it for over ``wait`` seconds.
    """
    lock = connection.lock(f"{queue}:cycle-lock", timeout=ttl, blocking_timeout=wait, thread_local=False)
    if not lock.acquire():
        raise AnnotatorError(
            f"another worker has held the cycle lock of {queue} for over {wait:.0f} s; "
            "is a training cycle stuck? It expires when that worker stops"
        )
    stop = threading.Event()

    def renew() -> None:
        while not stop.wait(ttl / 3):
            if not lock.reacquire():
                log.error("lost the cycle lock of %s (Redis restarted or cleared?)", queue)
                return

    renewer = threading.Thread(target=renew, name="annotator-cycle-lock", daemon=True)
    renewer.start()
    try:
        yield
    finally:
        stop.set()
        renewer.join()
        lock_error = require("redis.exceptions", FEATURE).LockError
        try:
            lock.release()
        except lock_error:  # it expired meanwhile: nothing of ours left to release
            log.warning("the cycle lock of %s had expired before the cycle ended", queue)


def cycle_job(settings_fields: dict, force: bool = False, train: bool = True) -> dict:
    """The RQ job: one :func:`annotator.cycle.loop.run_cycle` under the project's cycle lock.

    ``settings_fields`` are the backend's settings as plain values without secrets
    (see :func:`job_settings`). Returns the cycle's report (stored by RQ as the job's result).
    """
    from .loop import run_cycle

    get_current_job = require("rq", FEATURE).get_current_job
    settings = job_settings(settings_fields)
    if not settings.ls_api_key:
        log.warning(
            "LABEL_STUDIO_API_KEY is not set in this worker's environment: the cycle trains "
            "but cannot push batches to Label Studio"
        )
    job = get_current_job()
    with cycle_lock(job.connection, job.origin):
        return run_cycle(settings, force=force, train=train)


def run_worker(settings: Settings, *, burst: bool = False, name: str | None = None, fork: bool = True) -> bool:
    """Run an RQ worker on the project's queue until stopped (``burst``: until the queue is empty).

    Each job runs in a forked child (RQ's default), so a job that crashes or leaks memory never takes
    the worker down; the training stack is imported before the first fork so children start warm.
    ``fork=False`` runs jobs in this process (RQ's SimpleWorker), like the backend's embedded worker
    process: a cycle a few tenths of a second faster (what a first run in a fresh process costs,
    docs/deployment.md), but a crashing cycle takes the worker with it. Returns whether any job ran.

    Raises
    ------
    InputError, JobQueueError
        As :func:`redis_connection`: no URL configured or not a Redis URL, or Redis unreachable.
    MissingExtraError
        Without the 'scale' extra (rq, redis).
    """
    rq = require("rq", FEATURE)
    connection = redis_connection(settings.redis_url)
    from .loop import run_cycle  # the training stack (scikit-learn, jieba, modAL), imported before forking

    log.debug("worker warm: %s loaded", run_cycle.__module__)
    queue = rq.Queue(queue_name(settings.home), connection=connection)
    worker = (rq.Worker if fork else rq.SimpleWorker)([queue], connection=connection, name=name)
    level = logging.getLevelName(logging.getLogger().getEffectiveLevel())
    return worker.work(burst=burst, logging_level=level if level != "WARNING" else "INFO")
