"""The Flask backend: Label Studio ML backend protocol plus the leads' dashboard.

``create_app(settings=None, *, registry=None, queue=...)`` layers configuration like Flask's
tutorial app: defaults, then the environment (``Settings.from_env``), then the ``settings``
argument. No module-level app; ``backend.wsgi`` builds one for production servers.
"""

from __future__ import annotations

import logging
import threading

from flask import Flask
from flask.json.provider import DefaultJSONProvider

from annotator import (
    InputError,
    JobQueueError,
    MissingExtraError,
    ModelRegistry,
    NotTrainedError,
    Settings,
    Store,
    missing_api_key_problem,
    run_cycle,
)

from .context import close_store
from .errors import register_error_handlers
from .jobs import RedisTrainingQueue, TrainingQueue

log = logging.getLogger(__name__)


def create_app(
    settings: Settings | None = None,
    *,
    registry: ModelRegistry | None = None,
    start_queue: bool = True,
    in_process_jobs: bool = False,
) -> Flask:
    """Build the app.

    Parameters
    ----------
    settings : the project settings (default: from the environment).
    registry : a ModelRegistry to share (default: one over the project's model dir).
    start_queue : start the background TrainingQueue (False for read-only uses and some tests).
    in_process_jobs : run training cycles in a thread of this process instead of a worker process.
    """
    settings = settings or Settings.from_env()
    app = Flask(__name__)
    app.config["ANNOTATOR"] = settings
    app.config["MAX_CONTENT_LENGTH"] = settings.max_request_bytes
    app.config["JSON_AS_ASCII"] = False
    assert isinstance(app.json, DefaultJSONProvider), "the app keeps Flask's default JSON provider"
    app.json.ensure_ascii = False
    settings.home.mkdir(parents=True, exist_ok=True)
    with Store(settings.store_url) as store:  # migrate once at start-up, not inside a request
        store.schema_version  # noqa: B018 -- reading it migrates the store
        if start_queue and (problem := missing_api_key_problem(settings, store)):
            log.warning("%s", problem)
    if registry is None:
        registry = ModelRegistry(settings.model_dir, Store(settings.store_url))
    queue = None
    if start_queue:
        queue = _training_queue(settings, in_process_jobs)
        threading.Thread(target=_warm_serving, args=(settings, registry), name="annotator-warm-up", daemon=True).start()
    app.extensions["annotator"] = {"registry": registry, "queue": queue, "label_config": settings.labels_config()}
    app.teardown_appcontext(close_store)
    register_error_handlers(app)

    from . import dashboard, ls_api

    app.register_blueprint(ls_api.bp)
    app.register_blueprint(dashboard.bp, url_prefix="/dashboard")
    return app


def _training_queue(settings: Settings, in_process_jobs: bool) -> TrainingQueue:
    """The RQ-backed queue when ``settings.redis_url`` is set and Redis answers; else the embedded one.

    An unreachable Redis does not keep the backend down: cycles run in this process's worker, as
    without Redis, and the reason is logged and shown on /health (``training.queue.fallback``).
    """
    fallback = None
    if settings.redis_url:
        try:
            return RedisTrainingQueue(
                settings,
                every=settings.retrain_every,
                delay=settings.retrain_delay,
                reconcile_every=settings.reconcile_every,
            )
        # Redis down, a URL that is not a Redis URL, or redis/rq not installed
        except (JobQueueError, InputError, MissingExtraError) as exc:
            fallback = f"{exc}; training cycles run in this backend process instead"
            log.error("%s", fallback)
    queue = TrainingQueue(
        _cycle_job(settings),
        every=settings.retrain_every,
        delay=settings.retrain_delay,
        reconcile_every=settings.reconcile_every,
        in_process=in_process_jobs,
    )
    queue.fallback = fallback
    return queue


def _warm_serving(settings: Settings, registry: ModelRegistry) -> None:
    """Load the latest model and its tokenizer (jieba's dictionary takes seconds to load) before
    the first /predict needs them, so no annotator waits on a cold worker."""
    try:
        with Store(settings.store_url) as store:
            _, model = registry.using(store).load("latest")
            model.predict_proba(["预热"])
    except NotTrainedError:
        pass
    except Exception:  # warming is an optimization: the first request loads the model instead
        log.exception("warming the latest model up failed")


class _cycle_job:
    """A picklable ``job(force, train)`` that runs one cycle for these settings (``train=False``:
    a reconciliation with Label Studio that never retrains)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def __call__(self, force: bool, train: bool = True) -> dict:
        return run_cycle(self.settings, force=force, train=train)
