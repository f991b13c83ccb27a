"""The store's database connection: SQLite (a file path) or PostgreSQL (a ``postgresql://`` URL).

:class:`~annotator.storage.store.Store` writes its SQL once, in the subset both engines run the same way
(``?`` parameters, ``ON CONFLICT`` upserts, ``RETURNING``, partial indexes) and in SQLite's type
names. A connection from :func:`connect` hides what still differs:

- placeholders: ``?`` becomes ``%s`` for psycopg;
- schema DDL: ``INTEGER`` becomes ``BIGINT`` (SQLite integers are 64-bit), ``REAL`` becomes
  ``DOUBLE PRECISION``, ``AUTOINCREMENT`` keys become identity columns, and ``{rowid}`` (a table
  read in insertion order) becomes an explicit ``rowid`` identity column, which SQLite has built in;
- the schema version: ``PRAGMA user_version`` in SQLite, a one-row ``schema_version`` table in PostgreSQL;
- the write transaction: SQLite's ``BEGIN IMMEDIATE`` takes the database's single writer lock at the
  start. PostgreSQL gets the same by a transaction-level advisory lock taken first in every write
  transaction (READ COMMITTED, so each statement after the lock sees every earlier commit), which
  keeps read-then-write methods such as ``save_annotation`` correct across processes and threads;
- errors: the driver exceptions that mean "the store refused this" (constraints, locks, values an
  engine cannot hold such as integers past 64 bits or NUL characters in PostgreSQL text) become
  :class:`~annotator.errors.StoreError`, naming the store; a URL's password is never shown.
"""

from __future__ import annotations

import os
import re
import sqlite3
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ..errors import StoreError
from ..optional import require
from ..settings import mask_password

POSTGRES_SCHEMES = ("postgresql://", "postgres://")
# Key of the advisory lock that stands for SQLite's writer lock (any constant; this one spells "annotatr").
WRITER_LOCK_KEY = 0x616E6E6F74617472
LOCK_TIMEOUT_S = 30.0  # how long a writer waits for the writer lock before its StoreError, both engines


def is_postgres_url(target: str | Path) -> bool:
    return isinstance(target, str) and target.lower().startswith(POSTGRES_SCHEMES)


def connect(target: str | Path) -> Connection:
    """A connection to ``target``: a ``postgresql://`` URL, a SQLite file path, or ``":memory:"``."""
    if is_postgres_url(target):
        return PostgresConnection(str(target))
    if isinstance(target, str) and re.match(r"^[a-z][a-z0-9+.-]*://", target, flags=re.IGNORECASE):
        raise StoreError(
            f"unsupported store URL {mask_password(target)}; use a postgresql://user:password@"
            f"host:port/dbname URL, or a file path for SQLite"
        )
    return SqliteConnection(str(target))


class Connection:
    """What Store needs of a database: statements, write transactions and the schema version."""

    engine: str
    label: str  # how messages name the store: the file path, or the URL without its password

    def execute(self, sql: str, params: Iterable = ()) -> Any:
        """Run one statement; returns a cursor (``fetchone``, ``fetchall``, iteration, ``rowcount``)."""
        raise NotImplementedError

    def executemany(self, sql: str, rows: Iterable[tuple]) -> Any:
        """Run one statement per row; the cursor's ``rowcount`` is the total."""
        raise NotImplementedError

    def begin(self) -> None:
        """Start a write transaction holding the store's writer lock."""
        raise NotImplementedError

    def commit(self) -> None:
        self._run("COMMIT")

    def rollback(self) -> None:
        self._run("ROLLBACK")

    def translate_ddl(self, script: str) -> str:
        """A schema script (SQLite type names, ``{rowid}`` markers) in this engine's dialect."""
        raise NotImplementedError

    def schema_version(self) -> int:
        raise NotImplementedError

    def set_schema_version(self, version: int) -> None:
        """Record ``version``; call it inside the migration's transaction."""
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def _run(self, sql: str) -> None:
        self.execute(sql)

    def _refused(self, exc: Exception) -> StoreError:
        return StoreError(f"store {self.label}: {_one_line(exc)}")

    def _unstorable(self, exc: Exception) -> StoreError:
        return StoreError(f"store {self.label}: a value cannot be stored ({_one_line(exc)})")


DB_FILE_MODE = 0o600  # the store holds every label and annotator: readable by its owner only


def _create_private(path: str) -> None:
    """Create the database file (if it does not exist yet) readable and writable by its owner only.

    SQLite creates its ``-wal`` and ``-shm`` files with the database file's permissions, so they
    are private too. An existing file keeps its mode: the owner may have chosen to share it.
    """
    if path.startswith("file:"):  # a SQLite URI: SQLite itself creates it
        return
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, DB_FILE_MODE)
    except FileExistsError:
        return
    except OSError as exc:
        raise StoreError(f"cannot create the store {path}: {exc.strerror}") from None
    os.close(fd)
    os.chmod(path, DB_FILE_MODE)  # the umask may have taken bits away, never add any: make it exact


class SqliteConnection(Connection):
    """One sqlite3 connection in autocommit mode (transactions are explicit), WAL, foreign keys on."""

    engine = "sqlite"

    def __init__(self, path: str) -> None:
        self.label = path
        if path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            _create_private(path)
        try:
            self._conn = sqlite3.connect(path, timeout=LOCK_TIMEOUT_S, isolation_level=None, check_same_thread=False)
            self._conn.row_factory = sqlite3.Row
            self._conn.execute("PRAGMA foreign_keys=ON")
            self._conn.execute(f"PRAGMA busy_timeout={int(LOCK_TIMEOUT_S * 1000)}")
            if path != ":memory:":
                self._enable_wal()
                # FULL: an annotation acknowledged to Label Studio survives a power cut too.
                self._conn.execute("PRAGMA synchronous=FULL")
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"cannot open the store {path}: {exc}") from exc

    def _enable_wal(self) -> None:
        """Switch to WAL. On a new database the switch needs the write lock, and SQLite answers
        "database is locked" at once (no busy handler) while another process or thread creates
        the schema: try again until the lock timeout."""
        deadline = time.monotonic() + LOCK_TIMEOUT_S
        while True:
            try:
                self._conn.execute("PRAGMA journal_mode=WAL")
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def execute(self, sql: str, params: Iterable = ()) -> sqlite3.Cursor:
        try:
            return self._conn.execute(sql, tuple(params))
        except (sqlite3.OperationalError, sqlite3.IntegrityError) as exc:
            raise self._refused(exc) from exc
        except (OverflowError, UnicodeEncodeError) as exc:  # a value SQLite cannot hold: nothing written
            raise self._unstorable(exc) from exc

    def executemany(self, sql: str, rows: Iterable[tuple]) -> sqlite3.Cursor:
        try:
            return self._conn.executemany(sql, rows)
        except (sqlite3.OperationalError, sqlite3.IntegrityError) as exc:
            raise self._refused(exc) from exc
        except (OverflowError, UnicodeEncodeError) as exc:
            raise self._unstorable(exc) from exc

    def begin(self) -> None:
        self._run("BEGIN IMMEDIATE")

    def translate_ddl(self, script: str) -> str:
        return script.replace("{rowid}", "")

    def schema_version(self) -> int:
        return self.execute("PRAGMA user_version").fetchone()[0]

    def set_schema_version(self, version: int) -> None:
        self._run(f"PRAGMA user_version={int(version)}")

    def close(self) -> None:
        self._conn.close()


class PostgresConnection(Connection):
    """One psycopg connection in autocommit mode; write transactions take the advisory writer lock."""

    engine = "postgresql"
    _DDL = (
        (re.compile(r"\bINTEGER PRIMARY KEY AUTOINCREMENT\b"), "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY"),
        (re.compile(r"\bINTEGER\b"), "BIGINT"),
        (re.compile(r"\bREAL\b"), "DOUBLE PRECISION"),
        (re.compile(r"\{rowid\}"), ", rowid BIGINT GENERATED ALWAYS AS IDENTITY"),
    )

    def __init__(self, url: str) -> None:
        psycopg = require("psycopg", "PostgreSQL stores (ANNOTATOR_DATABASE_URL)")  # the 'scale' extra

        self._psycopg = psycopg
        self.label = mask_password(url)
        self._refusals = (psycopg.IntegrityError, psycopg.OperationalError)
        try:
            self._conn = psycopg.connect(url, autocommit=True, row_factory=_row_factory, connect_timeout=30)
        except psycopg.Error as exc:
            raise StoreError(f"cannot open the store {self.label}: {_one_line(exc)}") from exc

    def execute(self, sql: str, params: Iterable = ()) -> Any:
        try:
            return self._conn.execute(_placeholders(sql), tuple(params))
        except self._refusals as exc:
            raise self._refused(exc) from exc
        except (self._psycopg.DataError, OverflowError, UnicodeEncodeError) as exc:
            # e.g. an integer past 64 bits, or a NUL character (PostgreSQL text cannot hold one)
            raise self._unstorable(exc) from exc

    def executemany(self, sql: str, rows: Iterable[tuple]) -> Any:
        cursor = self._conn.cursor()
        try:
            cursor.executemany(_placeholders(sql), rows)
        except self._refusals as exc:
            raise self._refused(exc) from exc
        except (self._psycopg.DataError, OverflowError, UnicodeEncodeError) as exc:
            raise self._unstorable(exc) from exc
        return cursor

    def _run(self, sql: str) -> None:
        try:
            self._conn.execute(sql)
        except self._refusals as exc:
            raise self._refused(exc) from exc

    def begin(self) -> None:
        # One round trip (the simple query protocol runs all three), and only transaction-level
        # state, so it also works behind a transaction-pooling proxy such as PgBouncer.
        try:
            self._run(
                f"BEGIN ISOLATION LEVEL READ COMMITTED; SET LOCAL lock_timeout = "
                f"'{int(LOCK_TIMEOUT_S * 1000)}ms'; SELECT pg_advisory_xact_lock({WRITER_LOCK_KEY})"
            )
        except StoreError:
            # The lock wait timed out after BEGIN: leave no aborted transaction behind, as a
            # failed BEGIN IMMEDIATE leaves none.
            if self._conn.info.transaction_status != self._psycopg.pq.TransactionStatus.IDLE:
                self._conn.execute("ROLLBACK")
            raise

    def translate_ddl(self, script: str) -> str:
        for pattern, replacement in self._DDL:
            script = pattern.sub(replacement, script)
        return script

    def schema_version(self) -> int:
        # A catalog query, not to_regclass(): that reads a cache which may not yet have seen a table
        # another process created while this one waited for the writer lock.
        exists = self.execute(
            "SELECT COUNT(*) FROM pg_catalog.pg_tables WHERE schemaname = current_schema() "
            "AND tablename = 'schema_version'"
        ).fetchone()[0]
        if not exists:
            return 0
        row = self.execute("SELECT MAX(version) FROM schema_version").fetchone()
        return row[0] or 0

    def set_schema_version(self, version: int) -> None:
        self._run("CREATE TABLE IF NOT EXISTS schema_version (version BIGINT NOT NULL)")
        self.execute("DELETE FROM schema_version")
        self.execute("INSERT INTO schema_version(version) VALUES (?)", (int(version),))

    def close(self) -> None:
        self._conn.close()


def _placeholders(sql: str) -> str:
    """``?`` parameters as psycopg's ``%s`` (a literal ``%`` doubled); the store's SQL holds no
    ``?`` or ``%`` inside string literals."""
    return sql.replace("%", "%%").replace("?", "%s")


def _one_line(exc: Exception) -> str:
    return "; ".join(line.strip() for line in str(exc).splitlines() if line.strip())


class Row:
    """A result row read like ``sqlite3.Row``: by position, by column name, and ``dict(row)``."""

    __slots__ = ("_values", "_index")

    def __init__(self, values: tuple, index: dict[str, int]) -> None:
        self._values = values
        self._index = index

    def __getitem__(self, key: int | str) -> Any:
        return self._values[self._index[key]] if isinstance(key, str) else self._values[key]

    def keys(self) -> list[str]:
        return list(self._index)

    def __iter__(self):
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:
        return f"Row({dict(zip(self._index, self._values))!r})"


def _row_factory(cursor):
    """psycopg row factory making :class:`Row` objects."""
    index = {column.name: i for i, column in enumerate(cursor.description or ())}
    return lambda values: Row(tuple(values), index)
