"""Training cycles on a real job queue: RQ on Redis, when ``ANNOTATOR_REDIS_URL`` is set.

Each backend process still debounces its webhooks, but instead of running the retrain-and-push
cycle itself it enqueues it on the project's RQ queue (``backend/jobs.py``, the enqueueing side);
``annotator worker`` processes, any number of them, run the queued cycles. This module is the
workers' side: the queue's name, the job function the backend enqueues (by its dotted name, with
plain arguments), the project's cycle lock in Redis, and the worker loop.

A job carries the backend's settings as plain values with the secrets left out (every field that
``Settings`` hides from its repr: the Label Studio API key, passwords, the database and Redis URLs):
a worker reads those from its own environment or ``<home>/config.toml``, so no secret is written to
Redis.

One cycle runs at a time per project: the job holds a Redis lock named after the queue (kept alive
while the cycle runs, so a killed worker frees it within :data:`LOCK_TTL` seconds) on top of the
project's file lock that :func:`annotator.cycle.loop.run_cycle` takes, so that holds across machines too.
"""
from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ..errors import AnnotatorError, InputError
from ..optional import require
from ..settings import Settings, mask_password

log = logging.getLogger(__name__)

QUEUE_PREFIX = "annotator:"
LOCK_TTL = 60  # seconds a killed holder keeps the cycle lock; renewed every LOCK_TTL / 3 while alive
LOCK_WAIT = 3600  # seconds a job waits for another worker's cycle before it fails
FEATURE = "the RQ job queue (ANNOTATOR_REDIS_URL)"  # how a missing 'scale' extra names what needs it


def queue_name(home: str | Path) -> str:
    """The project's RQ queue: ``annotator:<absolute home path>`` (one queue per project).

    The backend (``backend/jobs.py``) names the queue by the same rule, so run the workers with the
    same ``--home`` path as the backend.
    """
    return f"{QUEUE_PREFIX}{Path(home).resolve()}"


def redis_connection(url: str, **options):
    """A connected ``redis.Redis`` for ``url`` (checked with PING).

    Raises
    ------
    InputError
        If no URL is configured or it is not a Redis URL.
    AnnotatorError
        If Redis cannot be reached; the message names the URL (password masked).
    MissingExtraError
        Without the 'scale' extra (redis).
    """
    redis = require("redis", FEATURE)

    if not url:
        raise InputError("ANNOTATOR_REDIS_URL is not set; set it to the Redis server of the job queue, "
                         "e.g. redis://127.0.0.1:6379/0")
    try:
        connection = redis.Redis.from_url(url, socket_connect_timeout=5, **options)
    except ValueError as exc:
        raise InputError(f"ANNOTATOR_REDIS_URL {mask_password(url)!r} is not a Redis URL ({exc}); "
                         "expected redis://host:port/db") from None
    try:
        connection.ping()
    except redis.RedisError as exc:
        raise AnnotatorError(f"cannot reach Redis at {mask_password(url)} (ANNOTATOR_REDIS_URL): {exc}; "
                             "start redis-server there or fix the URL") from None
    return connection


def job_settings(settings_fields: dict) -> Settings:
    """The settings a cycle job runs with: the backend's plain values, secrets from this process."""
    return Settings.from_env(**settings_fields)


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
        raise AnnotatorError(f"another worker has held the cycle lock of {queue} for over {wait:.0f} s; "
                             "is a training cycle stuck? It expires when that worker stops")
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
        log.warning("LABEL_STUDIO_API_KEY is not set in this worker's environment: the cycle trains "
                    "but cannot push batches to Label Studio")
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
    InputError, AnnotatorError
        As :func:`redis_connection`: no URL configured, or Redis unreachable.
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
