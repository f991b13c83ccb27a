"""A real Label Studio server for the end-to-end tests: one per test session, on a free loopback
port, with a temporary data dir (first start runs the migrations: about a minute)."""
from __future__ import annotations

import pytest

from annotator.services import LabelStudioServer


@pytest.fixture(scope="session")
def label_studio(tmp_path_factory):
    server = LabelStudioServer(tmp_path_factory.mktemp("label-studio"))
    server.start(timeout=300)
    yield server
    server.stop()
