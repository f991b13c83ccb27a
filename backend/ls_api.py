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

from annotator import (
    ANNOTATION_ACTIONS,
    DELETE_ACTION,
    PROJECT_KEY,
    TRAIN_ACTION,
    WEBHOOK_SECRET_HEADER,
    NotTrainedError,
    SchemaMismatchError,
    clause_id,
    ls_model_version,
    missing_api_key_problem,
    normalize_text,
    prediction_payload,
    project_id_from_setup,
    record_annotation,
    record_deletions,
    stop_signal_for_store,
)

from .context import get_registry, get_settings, get_store, label_config, last_failed_run, training_queue
from .errors import Unauthorized, redact
from .ls_format import check_setup, parse_json_body, parse_predict, parse_webhook

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
    """Liveness plus what a person checking the backend wants to know; never a secret.

    ``status`` is ``"UP"`` while the loop works and ``"DEGRADED"`` while it is failing (the last
    training run or the last cycle failed), with ``reason`` saying why; the backend still answers.
    """
    store = get_store()
    latest = store.latest_model_version()
    failed = last_failed_run(store)
    queue = training_queue()
    settings = get_settings()
    training = queue.status() if queue else None
    reasons = []
    if failed is not None:
        reasons.append(f"the last training run failed: {failed.error}")
    if training and training.get("last_error"):
        reasons.append(f"the last cycle failed: {training['last_error']}")
    if problem := missing_api_key_problem(settings, store):
        reasons.append(problem)
    broken = get_registry().broken_versions()
    reasons += [
        f"model version {b['version']} cannot be used ({b['reason']}); the newest intact version serves" for b in broken
    ]
    if training and training.get("last_error"):
        training = dict(training, last_error=redact(training["last_error"]))
    return jsonify(
        {
            "status": "DEGRADED" if reasons else "UP",
            "reason": redact("; ".join(reasons)) if reasons else None,
            "model_class": "PolicyClassifier",
            "model_version": str(latest.version) if latest else None,
            "ls_model_version": ls_model_version(latest.version) if latest else None,
            # Without a key, retrains cannot push batches to Label Studio (the URL is no secret).
            "label_studio": {
                "url": redact(settings.ls_url),
                "api_key_set": bool(settings.ls_api_key),
                "project_id": connected_project(store),
            },
            "training": training,
            "last_training_error": redact(failed.error or "") or None if failed else None,
            "broken_versions": [{"version": b["version"], "reason": b["reason"]} for b in broken],
            # When to stop labeling: "about +0.01 macro-F1 per 200 more labels; predictions stable for 3 versions".
            "stop_signal": stop_signal_for_store(store).to_dict(),
        }
    )


@bp.post("/setup")
def setup():
    """Label Studio's Model page connects the backend here: check the labeling config, and learn the
    project (Label Studio sends its id) when this project home is not connected yet; then the
    training queue wires the project (uncertainty sampling, the webhook's secret) and fills it."""
    payload = json_body()
    check_setup(payload, label_config())
    project_id = project_id_from_setup(payload.get("project") if isinstance(payload, dict) else None)
    store = get_store()
    if project_id is not None and adopt_project(store, project_id):
        queue = training_queue()
        if queue:
            queue.request_refresh()
    latest = store.latest_model_version()
    return jsonify({"model_version": ls_model_version(latest.version) if latest else ""})


def adopt_project(store, project_id: int) -> bool:
    """Connect this project home to ``project_id`` if it serves none yet (True when it was new).

    Raises SchemaMismatchError (400) for another project: one backend serves one project home.
    """
    connected = connected_project(store)
    if connected is None:
        store.set_meta(PROJECT_KEY, str(project_id))
        log.info("connected to Label Studio project %d (learned from Label Studio's own call)", project_id)
        return True
    if connected != project_id:
        raise SchemaMismatchError(
            f"this backend serves Label Studio project {connected}, not project {project_id}: one backend "
            "serves one project home; start another backend with its own --home for that project"
        )
    return False


def connected_project(store) -> int | None:
    value = store.get_meta(PROJECT_KEY)
    return int(value) if value is not None else None


@bp.post("/predict")
def predict():
    """Pre-fills for Label Studio's tasks, by the classifier's one prediction rule.

    Blind double annotation: a clause someone already labeled gets the pre-fill its task showed
    before that (frozen when the first label arrived), never one from a model that learned it.
    """
    config = label_config()
    tasks = parse_predict(json_body(), config)
    try:
        info, model = get_registry().load("latest")
    except NotTrainedError:
        return jsonify({"results": []})
    if not tasks:
        return jsonify({"results": [], "model_version": ls_model_version(info.version)})
    texts = [normalize_text(text) for _, text in tasks]
    store = get_store()
    labeled = store.labeled_clause_ids(among=[clause_id(text) for text in texts])
    predicted = model.predictions(model.predict_proba(texts))
    results = []
    for text, p in zip(texts, predicted):
        cid = clause_id(text)
        if cid in labeled:
            frozen = store.pushed_task(cid)
            labels = frozen.prefill_labels if frozen else ()
            version = frozen.prefill_version if frozen else None
            results.append(
                prediction_payload(
                    labels,
                    p.confidence if labels == p.labels else 0.0,
                    ls_model_version(version) if version else "blind",
                    config,
                )
            )
        else:
            results.append(prediction_payload(p.labels, p.confidence, ls_model_version(info.version), config))
    return jsonify({"results": results, "model_version": ls_model_version(info.version)})


def check_webhook_secret() -> None:
    secret = get_settings().webhook_secret
    if secret and not hmac.compare_digest(_header_bytes(request.headers.get(WEBHOOK_SECRET_HEADER, "")), _utf8(secret)):
        raise Unauthorized("webhook secret header missing or wrong")


@bp.post("/webhook")
def webhook():
    """Label Studio's events. Annotation events need the webhook secret (when one is set): they
    write labels. START_TRAINING is Label Studio's own "Start Training" call, which carries basic
    auth only (checked for every endpoint), so it needs no secret. An event of another project is
    refused; the first event of a home that serves no project yet connects it."""
    started = time.perf_counter()
    payload = json_body()
    if not isinstance(payload, dict) or payload.get("action") != TRAIN_ACTION:
        check_webhook_secret()  # before the body is read any further: only START_TRAINING is exempt
    event = parse_webhook(payload, label_config())
    queue = training_queue()
    store = get_store()
    if event.action in (*ANNOTATION_ACTIONS, DELETE_ACTION, TRAIN_ACTION) and event.project_id is not None:
        adopted = adopt_project(store, event.project_id)
    else:
        adopted = False
    project_id = connected_project(store)
    body: dict[str, object]  # the 201 answer: status, action, and what the event changed
    if event.action in ANNOTATION_ACTIONS:
        config = label_config()
        with store.transaction():  # a bulk event with one bad annotation stores none of them
            outcomes = [
                record_annotation(store, annotation, task, config, project_id=project_id)
                for annotation, task in event.annotations
            ]
        changed = sum(o in ("created", "updated", "deleted") for o in outcomes)
        if queue and changed:
            queue.notify(changed)
        body = {"status": "ok", "action": event.action, "outcomes": outcomes}
    elif event.action == DELETE_ACTION:
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
    if adopted and queue and event.action != TRAIN_ACTION:
        queue.request_refresh()  # wire and fill the newly learned project
    log.debug("webhook %s handled in %.1f ms", event.action, 1000 * (time.perf_counter() - started))
    return jsonify(body), 201
