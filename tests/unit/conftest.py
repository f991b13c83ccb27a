"""Unit-test fixtures beyond tests/conftest.py: a PostgreSQL server shared by the session."""

from __future__ import annotations

import pytest

from ..pgserver import start_server


@pytest.fixture(scope="session")
def pg_server():
    """One real PostgreSQL server for the whole session (started on first use, ~2 s)."""
    server = start_server()
    yield server
    server.stop()


@pytest.fixture
def pg_url(pg_server) -> str:
    """The URL of a new, empty schema on the session's server (a fresh database to the store)."""
    return pg_server.create_schema()
