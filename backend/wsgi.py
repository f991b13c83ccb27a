"""WSGI entry point: ``annotator serve`` runs ``backend.wsgi:app`` under waitress or gunicorn, and so
can any WSGI server (``gunicorn 'backend.wsgi:app'``).

Settings come from the environment (``Settings.from_env``: ANNOTATOR_*, then Label Studio's
LABEL_STUDIO_URL, LABEL_STUDIO_API_KEY(_FILE), LOG_LEVEL ...). Logs go to stderr at LOG_LEVEL,
INFO by default, so a server says what it does; the training worker process inherits the level.
"""

import logging
import sys

from annotator import AnnotatorError, Settings

from backend import create_app

try:
    settings = Settings.from_env()
except AnnotatorError as exc:  # one line, not an import traceback from the WSGI server
    sys.exit(f"annotator backend: {exc}")
logging.basicConfig(
    level=settings.log_level or "INFO", stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
)
app = create_app(settings)
