"""A real Label Studio server for the end-to-end tests: one per test session, on a free loopback
port, with a temporary data dir (first start runs the migrations: about a minute)."""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest

from annotator.services import LabelStudioServer

ANNOTATOR = str(Path(sys.executable).parent / "annotator")  # the console script, as a user runs it


@pytest.fixture(scope="session")
def label_studio(tmp_path_factory):
    """A fresh Label Studio; ``ANNOTATOR_E2E_LS_PORT=N`` reuses one already running on port N with
    the demo's admin and token (a developer's loop: no minute of migrations per run)."""
    port = os.environ.get("ANNOTATOR_E2E_LS_PORT")
    if port:
        yield LabelStudioServer(tmp_path_factory.mktemp("label-studio"), port=int(port))
        return
    server = LabelStudioServer(tmp_path_factory.mktemp("label-studio"))
    server.start(timeout=300)
    yield server
    server.stop()


def wait_for(predicate, timeout: float, what: str):
    """Poll ``predicate`` until it returns something truthy (returned); fail naming ``what``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")
