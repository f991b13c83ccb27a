"""Error handlers: every failure answers JSON with a 4xx/5xx status, never a traceback."""
from __future__ import annotations

import logging
import uuid

from flask import Flask, jsonify
from werkzeug.exceptions import HTTPException

from annotator import AnnotatorError, InputError, NotFoundError, NotTrainedError

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


def register_error_handlers(app: Flask) -> None:
    """Map AnnotatorError to JSON + status; hide unexpected errors behind a request id."""

    @app.errorhandler(AnnotatorError)
    def annotator_error(exc: AnnotatorError):
        status = _status(exc)
        if status >= 500:
            log.error("%s: %s", type(exc).__name__, exc)
        response = jsonify({"error": str(exc), "type": type(exc).__name__})
        if status == 401:
            response.headers["WWW-Authenticate"] = 'Basic realm="annotator"'
        return response, status

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException):
        return jsonify({"error": exc.description or exc.name}), exc.code or 500

    @app.errorhandler(Exception)
    def unexpected(exc: Exception):
        request_id = uuid.uuid4().hex[:12]
        log.exception("unexpected error (request %s)", request_id)
        return jsonify({"error": "internal error", "request_id": request_id}), 500
