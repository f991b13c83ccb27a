"""Store: the project's single source of truth, a SQLite file (WAL) or a PostgreSQL database.

All SQL lives here. Methods take and return the dataclasses of :mod:`annotator.types`, never rows.
Annotations are never lost: an update keeps the previous version in ``annotation_history``, a deletion
only marks the row, and out-of-order updates (an older ``updated_at``) are ignored. One Store per
thread: one per CLI command, one per Flask request. The same SQL runs on both engines (``?``
parameters, ``ON CONFLICT`` upserts, ``RETURNING``, no engine-only functions in queries);
:mod:`annotator.storage.dbengine` translates placeholders and DDL types and gives PostgreSQL the writer
lock that ``BEGIN IMMEDIATE`` is in SQLite, so every write transaction runs alone on either engine.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime, UTC
from pathlib import Path

from .dbengine import Connection, connect
from ..errors import NotFoundError, StoreError
from ..types import Annotation, Clause, Document, ModelVersion, PushedTask, TrainRun

# Written with SQLite's type names; dbengine translates them for PostgreSQL. ``{rowid}`` gives a
# table read in insertion order an explicit ``rowid`` column where the engine has none built in.
MIGRATIONS: tuple[str, ...] = (
    # 1: the initial schema
    """
    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    CREATE TABLE documents (
        id TEXT PRIMARY KEY, path TEXT NOT NULL, title TEXT NOT NULL, ingested_at TEXT NOT NULL
    );
    CREATE TABLE clauses (
        id TEXT PRIMARY KEY, text TEXT NOT NULL,
        document_id TEXT REFERENCES documents(id), section TEXT NOT NULL DEFAULT '',
        position INTEGER NOT NULL DEFAULT 0, created_at TEXT NOT NULL{rowid}
    );
    CREATE TABLE annotations (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        clause_id TEXT NOT NULL REFERENCES clauses(id),
        annotator TEXT NOT NULL, labels TEXT NOT NULL, source TEXT NOT NULL,
        ls_annotation_id INTEGER UNIQUE, ls_task_id INTEGER,
        created_at TEXT NOT NULL, updated_at TEXT NOT NULL, deleted_at TEXT
    );
    CREATE UNIQUE INDEX annotations_local ON annotations(clause_id, annotator, source)
        WHERE ls_annotation_id IS NULL;
    CREATE INDEX annotations_clause ON annotations(clause_id);
    CREATE TABLE annotation_history (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        annotation_id INTEGER NOT NULL REFERENCES annotations(id),
        action TEXT NOT NULL, labels TEXT NOT NULL, at TEXT NOT NULL
    );
    CREATE TABLE adjudications (
        clause_id TEXT PRIMARY KEY REFERENCES clauses(id), labels TEXT NOT NULL,
        resolver TEXT NOT NULL, note TEXT NOT NULL DEFAULT '', created_at TEXT NOT NULL
    );
    CREATE TABLE model_versions (
        version INTEGER PRIMARY KEY, path TEXT NOT NULL, created_at TEXT NOT NULL,
        n_train INTEGER NOT NULL, metrics TEXT NOT NULL
    );
    CREATE TABLE predictions (
        clause_id TEXT NOT NULL REFERENCES clauses(id), model_version INTEGER NOT NULL,
        labels TEXT NOT NULL, score REAL NOT NULL, created_at TEXT NOT NULL,
        PRIMARY KEY (clause_id, model_version)
    );
    CREATE TABLE pushed_tasks (
        clause_id TEXT PRIMARY KEY REFERENCES clauses(id), project_id INTEGER NOT NULL,
        ls_task_id INTEGER UNIQUE, rank INTEGER NOT NULL, batch INTEGER NOT NULL,
        model_version INTEGER, pushed_at TEXT NOT NULL, removed_at TEXT
    );
    CREATE TABLE train_runs (
        id INTEGER PRIMARY KEY AUTOINCREMENT, status TEXT NOT NULL, started_at TEXT NOT NULL,
        finished_at TEXT, n_labels INTEGER, model_version INTEGER, error TEXT
    );
    """,
    # 2: the live loop serves through Label Studio's uncertainty sampling and never deletes a task.
    # A task id is no longer unique (Label Studio on SQLite reuses the ids of deleted tasks, so a
    # stale row must never block a new push); each pushed task keeps its priority score and the
    # pre-fill it shows; an annotation keeps whether it said "not a policy measure" and the
    # pre-fill its task showed (blind double annotation).
    """
    CREATE TABLE pushed_tasks_v2 (
        clause_id TEXT PRIMARY KEY REFERENCES clauses(id), project_id INTEGER NOT NULL,
        ls_task_id INTEGER, rank INTEGER NOT NULL, batch INTEGER NOT NULL,
        model_version INTEGER, pushed_at TEXT NOT NULL, removed_at TEXT,
        score REAL, prefill_version INTEGER, prefill_labels TEXT NOT NULL DEFAULT '[]'
    );
    INSERT INTO pushed_tasks_v2(clause_id, project_id, ls_task_id, rank, batch, model_version, pushed_at,
        removed_at) SELECT clause_id, project_id, ls_task_id, rank, batch, model_version, pushed_at, removed_at
        FROM pushed_tasks;
    DROP TABLE pushed_tasks;
    ALTER TABLE pushed_tasks_v2 RENAME TO pushed_tasks;
    CREATE INDEX pushed_tasks_task ON pushed_tasks(ls_task_id);
    ALTER TABLE annotations ADD COLUMN not_policy INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE annotations ADD COLUMN prefill_version INTEGER;
    """,
)


def now() -> str:
    """The current UTC time as an ISO-8601 string (the store's only timestamp format)."""
    return datetime.now(UTC).isoformat(timespec="microseconds")


def canonical_time(value: str) -> str:
    """``value`` (any ISO-8601 form, e.g. Label Studio's ``...Z``) in the store's UTC format.

    One format keeps string comparison chronological; an unreadable value becomes ``now()``.
    """
    try:
        parsed = datetime.fromisoformat(value.replace(" ", "T"))
    except (ValueError, AttributeError):
        return now()
    try:
        parsed = parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)
        return parsed.astimezone(UTC).isoformat(timespec="microseconds")
    except OverflowError:  # e.g. 0001-01-01T00:00:00+14:00: before year 1 in UTC
        return now()


class Store:
    """The project database.

    Parameters
    ----------
    path : the SQLite file (its folder is created; ``":memory:"`` for a throwaway store), or a
        ``postgresql://user:password@host:port/dbname`` URL (``Settings.store_url`` chooses).

    Attributes
    ----------
    path : how messages name the store: the file path, or the URL with its password masked.
    engine : ``"sqlite"`` or ``"postgresql"``.

    Examples
    --------
    >>> with Store(":memory:") as store:
    ...     store.count_clauses()
    0
    """

    def __init__(self, path: str | Path) -> None:
        self._conn: Connection = connect(path)
        self.path = self._conn.label
        self.engine = self._conn.engine
        self._tx_depth = 0
        self._lock = threading.RLock()
        try:
            self._migrate()
        except BaseException:
            self._conn.close()
            raise

    # Connection management ----------------------------------------------------------------
    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """All writes inside commit together or not at all (nested calls join the outer one)."""
        with self._lock:
            if self._tx_depth == 0:
                self._conn.begin()
            self._tx_depth += 1
            try:
                yield
            except BaseException:
                self._tx_depth -= 1
                if self._tx_depth == 0:
                    self._conn.rollback()
                raise
            self._tx_depth -= 1
            if self._tx_depth == 0:
                self._conn.commit()

    def _execute(self, sql: str, params: Iterable = ()):
        """Run one statement; a refusal (constraint, lock, a value the engine cannot hold) is a
        StoreError and writes nothing."""
        return self._conn.execute(sql, params)

    def _write(self, sql: str, params: Iterable = ()):
        """One write statement in its own write transaction, so it waits for the writer lock like
        every other write (SQLite's autocommit does; PostgreSQL's would not)."""
        with self.transaction():
            return self._execute(sql, params)

    def _insert(self, sql: str, params: Iterable = ()) -> int:
        """Run an ``INSERT ... RETURNING id``; returns the new row's id."""
        return self._execute(sql, params).fetchall()[0][0]

    def _migrate(self) -> None:
        version = self._checked_version()
        while version < len(MIGRATIONS):
            with self.transaction():
                # Read again under the writer lock: another process may have migrated meanwhile.
                version = self._checked_version()
                if version == len(MIGRATIONS):
                    break
                for statement in filter(str.strip, self._conn.translate_ddl(MIGRATIONS[version]).split(";")):
                    self._execute(statement)
                version += 1
                self._conn.set_schema_version(version)

    def _checked_version(self) -> int:
        version = self._conn.schema_version()
        if version > len(MIGRATIONS):
            raise StoreError(
                f"store {self.path} has schema version {version}, newer than this annotator "
                f"({len(MIGRATIONS)}); upgrade annotator"
            )
        return version

    @property
    def schema_version(self) -> int:
        return self._conn.schema_version()

    # Meta ---------------------------------------------------------------------------------
    def get_meta(self, key: str, default: str | None = None) -> str | None:
        row = self._execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row["value"] if row else default

    def set_meta(self, key: str, value: str) -> None:
        self._write(
            "INSERT INTO meta(key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            (key, value),
        )

    # Documents and clauses ----------------------------------------------------------------
    def add_document(self, document: Document) -> int:
        """Store a document and its segments; returns how many clauses were new."""
        with self.transaction():
            self._execute(
                "INSERT INTO documents(id, path, title, ingested_at) VALUES (?, ?, ?, ?) ON CONFLICT(id) DO NOTHING",
                (document.id, document.path, document.title, now()),
            )
            return self.add_clauses(Clause(s.id, s.text, document.id, s.section, s.position) for s in document.segments)

    def add_clauses(self, clauses: Iterable[Clause]) -> int:
        """Insert clauses whose id is new; returns how many were inserted."""
        stamp = now()
        with self.transaction():
            cur = self._conn.executemany(
                "INSERT INTO clauses(id, text, document_id, section, position, created_at) "
                "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(id) DO NOTHING",
                ((c.id, c.text, c.document_id, c.section, c.position, stamp) for c in clauses),
            )
            return max(cur.rowcount, 0)

    def get_clause(self, clause_id: str) -> Clause:
        row = self._execute("SELECT * FROM clauses WHERE id = ?", (clause_id,)).fetchone()
        if row is None:
            raise NotFoundError(f"no clause with id '{clause_id}'")
        return _clause(row)

    def clauses(self, ids: Iterable[str] | None = None) -> list[Clause]:
        """All clauses in insertion order, or those with the given ids (in that order)."""
        if ids is None:
            return [_clause(r) for r in self._execute("SELECT * FROM clauses ORDER BY rowid")]
        ids = list(ids)
        found: dict[str, Clause] = {}
        for chunk in _chunks(ids, 500):
            marks = ",".join("?" * len(chunk))
            for r in self._execute(f"SELECT * FROM clauses WHERE id IN ({marks})", chunk):
                found[r["id"]] = _clause(r)
        return [found[i] for i in ids if i in found]

    def count_clauses(self) -> int:
        return self._execute("SELECT COUNT(*) FROM clauses").fetchone()[0]

    def documents(self) -> list[dict]:
        rows = self._execute(
            "SELECT d.*, COUNT(c.id) AS n_clauses FROM documents d "
            "LEFT JOIN clauses c ON c.document_id = d.id GROUP BY d.id ORDER BY d.ingested_at"
        )
        return [dict(r) for r in rows]

    # Annotations --------------------------------------------------------------------------
    def save_annotation(self, annotation: Annotation) -> tuple[int, str]:
        """Insert or update one annotation; returns ``(id, what_happened)``.

        Label Studio annotations are keyed by ``ls_annotation_id``; local ones (seed, CLI) by
        ``(clause_id, annotator, source)``. ``what_happened`` is ``"created"``, ``"updated"``,
        ``"unchanged"`` or ``"stale"`` (an update older than the stored one, ignored).
        """
        labels = json.dumps(list(annotation.labels), ensure_ascii=False)
        stamp = canonical_time(annotation.updated_at) if annotation.updated_at else now()
        not_policy = int(annotation.not_policy)
        with self.transaction():
            if annotation.ls_annotation_id is not None:
                row = self._execute(
                    "SELECT * FROM annotations WHERE ls_annotation_id = ?", (annotation.ls_annotation_id,)
                ).fetchone()
            else:
                row = self._execute(
                    "SELECT * FROM annotations WHERE clause_id = ? AND annotator = ? AND source = ? "
                    "AND ls_annotation_id IS NULL",
                    (annotation.clause_id, annotation.annotator, annotation.source),
                ).fetchone()
            if row is None:
                new_id = self._insert(
                    "INSERT INTO annotations(clause_id, annotator, labels, source, ls_annotation_id, "
                    "ls_task_id, created_at, updated_at, not_policy, prefill_version) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
                    (
                        annotation.clause_id,
                        annotation.annotator,
                        labels,
                        annotation.source,
                        annotation.ls_annotation_id,
                        annotation.ls_task_id,
                        canonical_time(annotation.created_at) if annotation.created_at else stamp,
                        stamp,
                        not_policy,
                        annotation.prefill_version,
                    ),
                )
                self._history(new_id, "created", labels)
                return new_id, "created"
            if stamp < row["updated_at"]:
                return row["id"], "stale"
            if row["labels"] == labels and row["not_policy"] == not_policy and row["deleted_at"] is None:
                return row["id"], "unchanged"
            self._execute(
                "UPDATE annotations SET labels = ?, annotator = ?, updated_at = ?, deleted_at = NULL, "
                "not_policy = ? WHERE id = ?",
                (labels, annotation.annotator, stamp, not_policy, row["id"]),
            )
            self._history(row["id"], "updated", labels)
            return row["id"], "updated"

    def delete_ls_annotation(self, ls_annotation_id: int) -> bool:
        """Mark a Label Studio annotation deleted (kept in history); False if unknown."""
        with self.transaction():
            row = self._execute(
                "SELECT id, labels FROM annotations WHERE ls_annotation_id = ? AND deleted_at IS NULL",
                (ls_annotation_id,),
            ).fetchone()
            if row is None:
                return False
            self._execute("UPDATE annotations SET deleted_at = ? WHERE id = ?", (now(), row["id"]))
            self._history(row["id"], "deleted", row["labels"])
            return True

    def _history(self, annotation_id: int, action: str, labels: str) -> None:
        self._execute(
            "INSERT INTO annotation_history(annotation_id, action, labels, at) VALUES (?, ?, ?, ?)",
            (annotation_id, action, labels, now()),
        )

    def annotations(
        self, *, sources: Iterable[str] | None = None, include_deleted: bool = False, not_policy: bool | None = False
    ) -> list[Annotation]:
        """Stored annotations, oldest first.

        ``not_policy``: False (default) gives label sets only, the answers that training, agreement
        and export read; True only the "not a policy measure" answers; None both.
        """
        sql = "SELECT * FROM annotations WHERE 1 = 1"
        params: list = []
        if not include_deleted:
            sql += " AND deleted_at IS NULL"
        if not_policy is not None:
            sql += " AND not_policy = ?"
            params.append(int(not_policy))
        if sources is not None:
            sources = list(sources)
            sql += f" AND source IN ({','.join('?' * len(sources))})"
            params += sources
        return [_annotation(r) for r in self._execute(sql + " ORDER BY id", params)]

    def rename_annotators(self, names: Mapping[str, str]) -> int:
        """Replace annotator names (e.g. a Label Studio user id recorded before its email was known);
        returns how many annotations changed."""
        with self.transaction():
            return sum(
                max(self._execute("UPDATE annotations SET annotator = ? WHERE annotator = ?", (new, old)).rowcount, 0)
                for old, new in names.items()
                if old != new
            )

    def annotation_history(self, annotation_id: int) -> list[dict]:
        rows = self._execute(
            "SELECT action, labels, at FROM annotation_history WHERE annotation_id = ? ORDER BY id", (annotation_id,)
        )
        return [{"action": r["action"], "labels": json.loads(r["labels"]), "at": r["at"]} for r in rows]

    def count_annotations(self, *, sources: Iterable[str] | None = None) -> int:
        return len(self.annotations(sources=sources))

    def labeled_clause_ids(self, among: Iterable[str] | None = None) -> set[str]:
        """Clauses with at least one live annotation (a "not a policy measure" answer included) or
        an adjudication: none of them is asked again. ``among``: only look at these clause ids
        (a few tasks of a request, without reading the whole table)."""
        sql = (
            "SELECT clause_id FROM annotations WHERE deleted_at IS NULL{cond} "
            "UNION SELECT clause_id FROM adjudications WHERE 1 = 1{cond}"
        )
        if among is None:
            return {r[0] for r in self._execute(sql.format(cond=""))}
        found: set[str] = set()
        for chunk in _chunks(list(dict.fromkeys(among)), 250):
            cond = f" AND clause_id IN ({','.join('?' * len(chunk))})"
            found |= {r[0] for r in self._execute(sql.format(cond=cond), chunk + chunk)}
        return found

    # Adjudications ------------------------------------------------------------------------
    def adjudicate(self, clause_id: str, labels: Iterable[str], resolver: str, note: str = "") -> None:
        """Store a lead's final label set for a clause (annotators' answers stay as they are)."""
        self.get_clause(clause_id)
        self._write(
            "INSERT INTO adjudications(clause_id, labels, resolver, note, created_at) "
            "VALUES (?, ?, ?, ?, ?) ON CONFLICT(clause_id) DO UPDATE SET labels = excluded.labels, "
            "resolver = excluded.resolver, note = excluded.note, created_at = excluded.created_at",
            (clause_id, json.dumps(list(labels), ensure_ascii=False), resolver, note, now()),
        )

    def adjudications(self) -> dict[str, tuple[str, ...]]:
        rows = self._execute("SELECT clause_id, labels FROM adjudications")
        return {r["clause_id"]: tuple(json.loads(r["labels"])) for r in rows}

    # Model versions and predictions -------------------------------------------------------
    def add_model_version(self, path: str, n_train: int, metrics: dict) -> ModelVersion:
        """Register a saved model file under the next version number."""
        with self.transaction():
            version = (self._execute("SELECT MAX(version) FROM model_versions").fetchone()[0] or 0) + 1
            stamp = now()
            self._execute(
                "INSERT INTO model_versions(version, path, created_at, n_train, metrics) VALUES (?, ?, ?, ?, ?)",
                (version, path, stamp, n_train, json.dumps(metrics, ensure_ascii=False)),
            )
        return ModelVersion(version, path, stamp, n_train, metrics)

    def update_model_metrics(self, version: int, metrics: dict) -> ModelVersion:
        """Merge ``metrics`` into a version's metrics (e.g. its held-out figures, measured after it
        started serving); NotFoundError for an unknown version."""
        with self.transaction():
            row = self._execute("SELECT * FROM model_versions WHERE version = ?", (version,)).fetchone()
            if row is None:
                raise NotFoundError(f"no model version {version}")
            merged = dict(_model_version(row).metrics, **metrics)
            self._execute(
                "UPDATE model_versions SET metrics = ? WHERE version = ?",
                (json.dumps(merged, ensure_ascii=False), version),
            )
        return _model_version(self._execute("SELECT * FROM model_versions WHERE version = ?", (version,)).fetchone())

    def model_versions(self) -> list[ModelVersion]:
        return [_model_version(r) for r in self._execute("SELECT * FROM model_versions ORDER BY version")]

    def latest_model_version(self) -> ModelVersion | None:
        row = self._execute("SELECT * FROM model_versions ORDER BY version DESC LIMIT 1").fetchone()
        return _model_version(row) if row else None

    def save_predictions(self, version: int, rows: Iterable[tuple[str, tuple[str, ...], float]]) -> None:
        """Store ``(clause_id, labels, score)`` predictions of one model version."""
        stamp = now()
        with self.transaction():
            self._conn.executemany(
                "INSERT INTO predictions(clause_id, model_version, labels, score, created_at) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT(clause_id, model_version) DO UPDATE SET "
                "labels = excluded.labels, score = excluded.score",
                (
                    (clause_id, version, json.dumps(list(labels), ensure_ascii=False), float(score), stamp)
                    for clause_id, labels, score in rows
                ),
            )

    def predictions(self, version: int | None = None) -> dict[str, tuple[tuple[str, ...], float]]:
        """``{clause_id: (labels, score)}`` of one version (default: the latest with predictions)."""
        if version is None:
            version = self._execute("SELECT MAX(model_version) FROM predictions").fetchone()[0]
        rows = self._execute("SELECT clause_id, labels, score FROM predictions WHERE model_version = ?", (version,))
        return {r["clause_id"]: (tuple(json.loads(r["labels"])), r["score"]) for r in rows}

    # Training runs ------------------------------------------------------------------------
    def start_train_run(self, n_labels: int) -> int:
        with self.transaction():
            return self._insert(
                "INSERT INTO train_runs(status, started_at, n_labels) VALUES (?, ?, ?) RETURNING id",
                ("running", now(), n_labels),
            )

    def finish_train_run(self, run_id: int, *, model_version: int | None = None, error: str | None = None) -> None:
        self._write(
            "UPDATE train_runs SET status = ?, finished_at = ?, model_version = ?, error = ? WHERE id = ?",
            ("failed" if error else "done", now(), model_version, error, run_id),
        )

    def fail_unfinished_train_runs(self, error: str) -> int:
        """Mark runs still 'running' as failed with ``error`` (call it holding the project's cycle
        lock: then no run can really be running); returns how many there were."""
        cur = self._write(
            "UPDATE train_runs SET status = 'failed', finished_at = ?, error = ? WHERE status = 'running'",
            (now(), error),
        )
        return cur.rowcount

    def train_runs(self, limit: int = 20) -> list[TrainRun]:
        """The newest ``limit`` training runs, newest first."""
        rows = self._execute("SELECT * FROM train_runs ORDER BY id DESC LIMIT ?", (limit,))
        return [
            TrainRun(
                r["id"], r["status"], r["started_at"], r["finished_at"], r["n_labels"], r["model_version"], r["error"]
            )
            for r in rows
        ]

    # Pushed tasks -------------------------------------------------------------------------
    def record_push(
        self, project_id: int, rows: Iterable[tuple[str, int | None, int]], *, batch: int, model_version: int | None
    ) -> None:
        """Remember ``(clause_id, ls_task_id, rank)`` rows pushed to a Label Studio project.

        A clause pushed again (returned to the pool earlier) takes the new row's values.
        """
        stamp = now()
        with self.transaction():
            self._conn.executemany(
                "INSERT INTO pushed_tasks(clause_id, project_id, ls_task_id, rank, batch, "
                "model_version, pushed_at) VALUES (?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT(clause_id) DO UPDATE SET project_id = excluded.project_id, "
                "ls_task_id = excluded.ls_task_id, rank = excluded.rank, batch = excluded.batch, "
                "model_version = excluded.model_version, pushed_at = excluded.pushed_at, "
                "removed_at = NULL",
                (
                    (clause_id, project_id, task_id, rank, batch, model_version, stamp)
                    for clause_id, task_id, rank in rows
                ),
            )

    def set_task_ids(self, task_ids: Mapping[str, int]) -> None:
        """Record the Label Studio task that holds each clause (found by the task's data)."""
        with self.transaction():
            self._conn.executemany(
                "UPDATE pushed_tasks SET ls_task_id = ? WHERE clause_id = ?",
                ((task_id, clause_id) for clause_id, task_id in task_ids.items()),
            )

    def set_priorities(
        self, rows: Iterable[tuple[str, float, int | None, tuple[str, ...] | None]], *, model_version: int | None
    ) -> None:
        """Record a refresh: ``(clause_id, score, prefill_version, prefill_labels)`` per task.

        ``prefill_labels`` None keeps the pre-fill the task already shows (a clause someone labeled).
        """
        with self.transaction():
            self._conn.executemany(
                "UPDATE pushed_tasks SET score = ?, model_version = ?, "
                "prefill_version = CASE WHEN ? THEN ? ELSE prefill_version END, "
                "prefill_labels = CASE WHEN ? THEN ? ELSE prefill_labels END WHERE clause_id = ?",
                (
                    (
                        float(score),
                        model_version,
                        labels is not None,
                        prefill_version,
                        labels is not None,
                        json.dumps(list(labels or ()), ensure_ascii=False),
                        clause_id,
                    )
                    for clause_id, score, prefill_version, labels in rows
                ),
            )

    def pushed_tasks(self, *, live_only: bool = True) -> list[PushedTask]:
        sql = "SELECT * FROM pushed_tasks"
        if live_only:
            sql += " WHERE removed_at IS NULL"
        return [_pushed(r) for r in self._execute(sql + " ORDER BY batch, rank")]

    def pending_pushed_tasks(self) -> list[PushedTask]:
        """Pushed, not removed, and not yet labeled by anyone."""
        rows = self._execute(
            "SELECT p.* FROM pushed_tasks p WHERE p.removed_at IS NULL AND NOT EXISTS ("
            "SELECT 1 FROM annotations a WHERE a.clause_id = p.clause_id AND a.deleted_at IS NULL) "
            "ORDER BY p.batch, p.rank"
        )
        return [_pushed(r) for r in rows]

    def pushed_task(self, clause_id: str) -> PushedTask | None:
        """The live push record of a clause, if it is in Label Studio."""
        row = self._execute(
            "SELECT * FROM pushed_tasks WHERE clause_id = ? AND removed_at IS NULL", (clause_id,)
        ).fetchone()
        return _pushed(row) if row else None

    def mark_removed(self, clause_ids: Iterable[str]) -> None:
        stamp = now()
        with self.transaction():
            self._conn.executemany(
                "UPDATE pushed_tasks SET removed_at = ? WHERE clause_id = ?",
                ((stamp, clause_id) for clause_id in clause_ids),
            )

    def next_batch_number(self) -> int:
        return (self._execute("SELECT MAX(batch) FROM pushed_tasks").fetchone()[0] or 0) + 1


def _chunks(items: list, size: int) -> Iterator[list]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _clause(row) -> Clause:
    return Clause(row["id"], row["text"], row["document_id"], row["section"], row["position"])


def _annotation(row) -> Annotation:
    return Annotation(
        clause_id=row["clause_id"],
        labels=tuple(json.loads(row["labels"])),
        annotator=row["annotator"],
        source=row["source"],
        id=row["id"],
        ls_annotation_id=row["ls_annotation_id"],
        ls_task_id=row["ls_task_id"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        not_policy=bool(row["not_policy"]),
        prefill_version=row["prefill_version"],
    )


def _pushed(row) -> PushedTask:
    return PushedTask(
        clause_id=row["clause_id"],
        project_id=row["project_id"],
        ls_task_id=row["ls_task_id"],
        rank=row["rank"],
        batch=row["batch"],
        model_version=row["model_version"],
        pushed_at=row["pushed_at"],
        removed_at=row["removed_at"],
        score=row["score"],
        prefill_version=row["prefill_version"],
        prefill_labels=tuple(json.loads(row["prefill_labels"] or "[]")),
    )


def _model_version(row) -> ModelVersion:
    return ModelVersion(row["version"], row["path"], row["created_at"], row["n_train"], json.loads(row["metrics"]))
