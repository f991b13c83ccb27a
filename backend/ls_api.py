"""Blueprint "ls": the Label Studio ML-backend protocol — /health, /setup, /predict, /webhook.

Handlers validate, read or write the store, and return; they never fit a model. Training and
batch pushes run in the TrainingQueue.
"""
from __future__ import annotations

import hmac
import logging
import time

from flask import Blueprint, jsonify, request
from werkzeug.exceptions import RequestEntityTooLarge

from annotator import NotTrainedError, WEBHOOK_SECRET_HEADER, record_annotation, record_deletions

from .context import get_registry, get_settings, get_store, label_config, last_failed_run, training_queue
from .errors import Unauthorized, redact
from .ls_format import (ANNOTATION_ACTIONS, DELETE_ACTION, TRAIN_ACTION, check_setup, parse_json_body,
                        parse_predict, parse_webhook, prediction)

log = logging.getLogger(__name__)
bp = Blueprint("ls", __name__)


@bp.before_app_request
def require_basic_auth():
    """Label Studio's basic auth for ML backends, on every endpoint of the app but /health.

    Set from ``BASIC_AUTH_USER``/``BASIC_AUTH_PASS``; either one alone turns it on (a password
    without a user must not leave the backend open). The dashboard is guarded too, unless it has
    its own login (``ANNOTATOR_DASHBOARD_PASSWORD``): it shows every label and can adjudicate.
    """
    settings = get_settings()
    if not (settings.basic_auth_user or settings.basic_auth_pass) or request.endpoint == "ls.health":
        return None
    if request.blueprint == "dashboard" and settings.dashboard_password:
        return None
    auth = request.authorization
    # Both comparisons always run (no early exit that would time which of the two was wrong).
    user_ok = hmac.compare_digest(_utf8(auth.username if auth else ""), _utf8(settings.basic_auth_user))
    pass_ok = hmac.compare_digest(_utf8(auth.password if auth else ""), _utf8(settings.basic_auth_pass))
    if auth is None or auth.type != "basic" or not (user_ok and pass_ok):
        raise Unauthorized("basic auth credentials missing or wrong")
    return None


def _utf8(value: str | None) -> bytes:
    """Bytes to compare; ``surrogateescape`` keeps a secret read from a non-UTF-8 environment usable."""
    return (value or "").encode("utf-8", "surrogateescape")


def _header_bytes(value: str) -> bytes:
    """The bytes a client sent: WSGI servers hand headers over decoded as latin-1."""
    try:
        return value.encode("latin-1")
    except UnicodeEncodeError:  # only a test client passes a header as arbitrary text
        return value.encode("utf-8", "surrogatepass")


def json_body():
    data = request.get_data(cache=True)
    limit = request.max_content_length
    if limit is not None and request.content_length is None and len(data) >= limit:
        # A chunked body (no Content-Length) is cut at the limit by werkzeug, not refused: refuse
        # it here, rather than answer that the cut JSON is invalid. (A body of exactly the limit
        # is refused too; the stream cannot tell it from a longer one.)
        raise RequestEntityTooLarge()
    return parse_json_body(data, is_json=request.is_json, content_type=request.content_type or "")


@bp.get("/health")
def health():
    """Liveness plus what a person checking the backend wants to know; never a secret."""
    store = get_store()
    latest = store.latest_model_version()
    failed = last_failed_run(store)
    queue = training_queue()
    settings = get_settings()
    return jsonify({
        "status": "UP",
        "model_class": "PolicyClassifier",
        "model_version": str(latest.version) if latest else None,
        # Without a key, retrains cannot push batches to Label Studio (the URL is no secret).
        "label_studio": {"url": settings.ls_url, "api_key_set": bool(settings.ls_api_key)},
        "training": queue.status() if queue else None,
        "last_training_error": redact(failed["error"] or "") or None if failed else None,
    })


@bp.post("/setup")
def setup():
    check_setup(json_body(), label_config())
    latest = get_store().latest_model_version()
    return jsonify({"model_version": str(latest.version) if latest else ""})


@bp.post("/predict")
def predict():
    config = label_config()
    tasks = parse_predict(json_body(), config)
    try:
        info, model = get_registry().load("latest")
    except NotTrainedError:
        return jsonify({"results": []})
    if not tasks:
        return jsonify({"results": [], "model_version": str(info.version)})
    from annotator import normalize_text

    proba = model.predict_proba([normalize_text(text) for _, text in tasks])
    chosen = model.decide(proba)
    results = []
    for p, row in zip(proba, chosen):
        labels = [label for label, keep in zip(model.labels_, row) if keep]
        confidence = float(p[row.astype(bool)].min()) if row.any() else float(p.max())
        results.append(prediction(labels, confidence, info.version, config))
    return jsonify({"results": results, "model_version": str(info.version)})


def check_webhook_secret() -> None:
    secret = get_settings().webhook_secret
    if secret and not hmac.compare_digest(_header_bytes(request.headers.get(WEBHOOK_SECRET_HEADER, "")),
                                          _utf8(secret)):
        raise Unauthorized("webhook secret header missing or wrong")


@bp.post("/webhook")
def webhook():
    check_webhook_secret()
    started = time.perf_counter()
    event = parse_webhook(json_body())
    queue = training_queue()
    if event.action in ANNOTATION_ACTIONS:
        config, store = label_config(), get_store()
        with store.transaction():  # a bulk event with one bad annotation stores none of them
            outcomes = [record_annotation(store, annotation, task, config)
                        for annotation, task in event.annotations]
        changed = sum(o in ("created", "updated", "deleted") for o in outcomes)
        if queue and changed:
            queue.notify(changed)
        body = {"status": "ok", "action": event.action, "outcomes": outcomes}
    elif event.action == DELETE_ACTION:
        store = get_store()
        with store.transaction():
            deleted = record_deletions(store, event.deleted_ids)
        if queue and deleted:
            queue.notify(deleted)
        body = {"status": "ok", "action": event.action, "deleted": deleted}
    elif event.action == TRAIN_ACTION:
        if queue:
            queue.request_now()
        body = {"status": "ok", "action": event.action, "queued": bool(queue)}
    else:
        return jsonify({"status": "ignored", "action": event.action}), 200
    log.debug("webhook %s handled in %.1f ms", event.action, 1000 * (time.perf_counter() - started))
    return jsonify(body), 201
