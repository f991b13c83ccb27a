"""A real PostgreSQL server for the test session (annotator.pgserver), or a clear skip without one.

The store tests run on SQLite and on PostgreSQL. Where the server binaries are missing the
PostgreSQL cases are skipped, naming what to install; with ``ANNOTATOR_REQUIRE_POSTGRES=1``
(set in CI) they fail instead, so they can never be skipped silently.
"""
from __future__ import annotations

import os

import pytest

from annotator.pgserver import PostgresServer, find_bindir

REQUIRE_ENV = "ANNOTATOR_REQUIRE_POSTGRES"
MISSING = ("PostgreSQL server binaries (initdb, postgres) not found under /usr/lib/postgresql/*/bin or "
           "on PATH; install Debian's 'postgresql' package (make system-deps)")


def start_server() -> PostgresServer:
    """A started server, or pytest's skip (fail when ANNOTATOR_REQUIRE_POSTGRES=1) without binaries."""
    bindir = find_bindir(os.environ.get("PATH"))
    if bindir is None:
        if os.environ.get(REQUIRE_ENV) == "1":
            pytest.fail(f"{MISSING}; {REQUIRE_ENV}=1 makes this a failure instead of a skip", pytrace=False)
        pytest.skip(MISSING)
    return PostgresServer(bindir=bindir).start()
