"""Error handlers: every failure answers JSON with a 4xx/5xx status, never a traceback."""

from __future__ import annotations

import logging
import traceback
import uuid

from flask import Flask, current_app, jsonify
from werkzeug.exceptions import HTTPException

from annotator import (
    AnnotatorError,
    InputError,
    NotFoundError,
    NotTrainedError,
    install_log_redaction,
    settings_secrets,
)
from annotator import redact as redact_text

log = logging.getLogger(__name__)


class Unauthorized(AnnotatorError):
    """Missing or wrong credentials."""


def _status(exc: AnnotatorError) -> int:
    if isinstance(exc, Unauthorized):
        return 401
    if isinstance(exc, InputError):
        return 400
    if isinstance(exc, NotFoundError):
        return 404
    if isinstance(exc, NotTrainedError):
        return 409
    return 500


def redact(text: str) -> str:
    """``text`` fit for a response or a log: redacted by :func:`annotator.redact` with the app's
    secrets, unsendable characters escaped.

    A message can quote what another system said (Label Studio echoing a token, a payload value);
    it must never carry the API key, a password or the webhook secret back out.
    """
    settings = current_app.config.get("ANNOTATOR")
    return redact_text(text, settings_secrets(settings)).encode("utf-8", "backslashreplace").decode("utf-8")


def register_error_handlers(app: Flask) -> None:
    """Map AnnotatorError to JSON + status; hide unexpected errors behind a request id.

    Also puts the redaction filter (with this app's secrets) on the process's log handlers, so a
    log line or traceback written by any module of the app is redacted too.
    """
    install_log_redaction(settings_secrets(app.config.get("ANNOTATOR")), owner=app)

    @app.errorhandler(AnnotatorError)
    def annotator_error(exc: AnnotatorError):
        status = _status(exc)
        message = redact(str(exc))
        if status >= 500:
            log.error("%s: %s", type(exc).__name__, message)
        response = jsonify({"error": message, "type": type(exc).__name__})
        if status == 401:
            response.headers["WWW-Authenticate"] = 'Basic realm="annotator"'
        return response, status

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException):
        return jsonify({"error": redact(exc.description or exc.name)}), exc.code or 500

    @app.errorhandler(Exception)
    def unexpected(exc: Exception):
        request_id = uuid.uuid4().hex[:12]
        # The traceback goes to the log as text, redacted: an exception message may quote a secret.
        log.error("unexpected error (request %s)\n%s", request_id, redact(traceback.format_exc()))
        return jsonify({"error": "internal error", "request_id": request_id}), 500
