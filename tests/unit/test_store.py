"""Store: one SQLite file or PostgreSQL database per project; annotations are never lost and never
doubled. Every test taking ``store`` or ``target`` runs on both engines (PostgreSQL: a real server,
tests/pgserver.py)."""

from __future__ import annotations

import random
import sqlite3
import threading

import psycopg
import pytest

from annotator import NotFoundError, Store, StoreError
from annotator.settings import mask_password
from annotator.storage.store import MIGRATIONS, canonical_time
from annotator.types import Annotation, Clause, Document, ModelVersion, Segment

LOAN = Clause("c-loan", "对符合条件的企业给予贷款贴息支持。")
FUND = Clause("c-fund", "设立专项资金支持科技成果转化。")


@pytest.fixture(params=["sqlite", "postgres"])
def target(request, settings) -> str:
    """What Store opens: the SQLite file, or a fresh PostgreSQL database's URL."""
    if request.param == "sqlite":
        return str(settings.db_path)
    return request.getfixturevalue("pg_url")


@pytest.fixture
def store(target):
    with Store(target) as s:
        yield s


def on(store_or_target, sqlite: str, postgres: str) -> str:
    """The expected text for the engine under test."""
    is_pg = (
        store_or_target.engine
        if isinstance(store_or_target, Store)
        else ("sqlite", "postgresql")[store_or_target.startswith("postgresql://")]
    ) == "postgresql"
    return postgres if is_pg else sqlite


@pytest.fixture
def filled(store):
    store.add_clauses([LOAN, FUND])
    return store


def ls(ann_id: int, labels, updated_at: str, *, clause: str = "c-loan", annotator: str = "1") -> Annotation:
    return Annotation(
        clause,
        tuple(labels),
        annotator,
        "label_studio",
        ls_annotation_id=ann_id,
        ls_task_id=7,
        created_at="2024-05-01T10:00:00Z",
        updated_at=updated_at,
    )


# Schema and connection ------------------------------------------------------------------------
def test_new_store_is_migrated_to_the_latest_schema(settings):
    with Store(settings.db_path) as store:
        assert store.schema_version == len(MIGRATIONS) and store.engine == "sqlite"
    assert settings.db_path.is_file()
    conn = sqlite3.connect(settings.db_path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()


def test_new_postgres_database_is_migrated_with_64_bit_integers_and_doubles(pg_url):
    with Store(pg_url) as store:
        assert store.schema_version == len(MIGRATIONS) and store.engine == "postgresql"
    with psycopg.connect(pg_url) as conn:
        assert conn.execute("SELECT version FROM schema_version").fetchall() == [(len(MIGRATIONS),)]
        types = dict(
            conn.execute(
                "SELECT table_name || '.' || column_name, data_type FROM information_schema.columns "
                "WHERE table_schema = current_schema()"
            ).fetchall()
        )
    assert types["annotations.id"] == types["annotations.ls_annotation_id"] == "bigint"
    assert types["predictions.score"] == "double precision"
    assert types["clauses.rowid"] == "bigint"  # insertion order, built into SQLite
    assert len({name.split(".")[0] for name in types}) == 11  # 10 tables + schema_version


def test_reopening_keeps_the_data_and_does_not_migrate_again(target):
    with Store(target) as store:
        store.add_clauses([LOAN])
    with Store(target) as store:
        assert store.clauses() == [LOAN]
        assert store.schema_version == len(MIGRATIONS)


def set_raw_schema_version(target: str, version: int) -> None:
    if target.startswith("postgresql://"):
        with psycopg.connect(target) as conn:
            conn.execute("UPDATE schema_version SET version = %s", (version,))
    else:
        conn = sqlite3.connect(target)
        conn.execute(f"PRAGMA user_version={version}")
        conn.close()


def test_store_from_a_newer_annotator_is_refused(target):
    Store(target).close()
    set_raw_schema_version(target, len(MIGRATIONS) + 1)
    with pytest.raises(StoreError) as info:
        Store(target)
    assert str(info.value) == (
        f"store {mask_password(target)} has schema version {len(MIGRATIONS) + 1}, newer than "
        f"this annotator ({len(MIGRATIONS)}); upgrade annotator"
    )


def test_stores_opened_at_once_on_an_empty_database_migrate_it_once(target):
    opened, errors = [], []

    def open_store():
        try:
            with Store(target) as s:
                opened.append(s.schema_version)
        except Exception as exc:  # collected: the assertion below shows it
            errors.append(exc)

    threads = [threading.Thread(target=open_store) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and opened == [len(MIGRATIONS)] * 4


def test_a_missing_postgres_database_is_a_store_error_without_the_password(pg_server):
    url = pg_server.url("no_such_database")  # the server answers: the message carries its reason
    with pytest.raises(StoreError) as info:
        Store(url)
    message = str(info.value)
    assert message.startswith(
        f"cannot open the store postgresql://annotator:***@127.0.0.1:{pg_server.port}/no_such_database: "
    )
    assert 'database "no_such_database" does not exist' in message and pg_server.password not in message


def test_without_postgres_binaries_its_cases_skip_unless_ci_requires_them(monkeypatch):
    from .. import pgserver

    monkeypatch.setattr(pgserver, "find_bindir", lambda path=None: None)
    monkeypatch.delenv(pgserver.REQUIRE_ENV, raising=False)
    with pytest.raises(pytest.skip.Exception, match=r"^PostgreSQL server binaries \(initdb, postgres\) not found"):
        pgserver.start_server()
    monkeypatch.setenv(pgserver.REQUIRE_ENV, "1")
    with pytest.raises(pytest.fail.Exception, match="; ANNOTATOR_REQUIRE_POSTGRES=1 makes this a failure instead"):
        pgserver.start_server()


def test_a_url_of_another_engine_is_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(StoreError, match=r"^unsupported store URL mysql://u:\*\*\*@db/x; use a postgresql://"):
        Store("mysql://u:secret@db/x")
    assert list(tmp_path.iterdir()) == []  # not taken for a file path


def test_a_file_that_is_not_a_database_is_a_store_error(tmp_path):
    path = tmp_path / "annotator.db"
    path.write_bytes(b"this is not sqlite, just some bytes that are long enough" * 20)
    with pytest.raises(StoreError, match=f"^cannot open the store {path}: "):
        Store(path)


def test_folder_of_the_database_is_created(tmp_path):
    path = tmp_path / "a" / "b" / "annotator.db"
    Store(path).close()
    assert path.is_file()


def test_in_memory_store():
    with Store(":memory:") as store:
        assert store.count_clauses() == 0


def test_transaction_rolls_back_everything_on_error(filled):
    with pytest.raises(RuntimeError):
        with filled.transaction():
            filled.add_clauses([Clause("c-new", "新增的一条条款文字。")])
            with filled.transaction():  # nested: joins the outer one
                filled.set_meta("k", "v")
            raise RuntimeError("boom")
    assert filled.count_clauses() == 2
    assert filled.get_meta("k") is None


def test_other_connections_see_committed_writes_only(target, filled):
    other = Store(target)
    try:
        with filled.transaction():
            filled.add_clauses([Clause("c-new", "新增的一条条款文字。")])
            assert other.count_clauses() == 2
        assert other.count_clauses() == 3
    finally:
        other.close()


def test_writes_from_several_threads_with_their_own_store(target, filled):
    def work(n):
        with Store(target) as s:
            for i in range(10):
                s.add_clauses([Clause(f"t{n}-{i}", f"线程{n}写入的第{i}条条款。")])

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert filled.count_clauses() == 2 + 40


def test_a_writer_waits_for_the_writer_lock_and_gives_up_with_a_store_error(target, filled, monkeypatch):
    monkeypatch.setattr("annotator.storage.dbengine.LOCK_TIMEOUT_S", 0.3)
    with Store(target) as other:
        with filled.transaction():
            filled.set_meta("holder", "yes")
            with pytest.raises(
                StoreError, match=on(target, "database is locked", "canceling statement due to lock timeout")
            ):
                other.set_meta("waiter", "yes")
        other.set_meta("waiter", "yes")  # free again once the holder commits
        assert (other.get_meta("holder"), filled.get_meta("waiter")) == ("yes", "yes")


def test_constraint_failure_is_a_store_error(filled):
    with pytest.raises(
        StoreError,
        match=on(
            filled, "FOREIGN KEY constraint failed", 'violates foreign key constraint "annotations_clause_id_fkey"'
        ),
    ):
        filled.save_annotation(Annotation("no-such-clause", ("企业",), "alice", "cli"))
    assert filled.annotations(include_deleted=True) == []


# Values an engine cannot hold are refused, and nothing is written ------------------------------
def test_an_id_past_64_bits_is_refused_and_nothing_is_written(filled):
    with pytest.raises(
        StoreError,
        match=r"^store .*: a value cannot be stored \((Python int too large to "
        r"convert to SQLite INTEGER|bigint out of range)\)$",
    ):
        filled.save_annotation(ls(2**63, ["财政支持"], "2024-05-01T10:00:00Z"))
    assert filled.annotations(include_deleted=True) == []
    assert filled.save_annotation(ls(2**63 - 1, ["财政支持"], "2024-05-01T10:00:00Z"))[1] == "created"
    assert filled.annotations()[0].ls_annotation_id == 2**63 - 1


def test_a_bad_value_in_a_batch_writes_none_of_the_batch(filled):
    batch = [Clause("c-ok", "第一条 合法的条款。"), Clause("c-bad", "孤立代理项\ud800的条款。")]
    with pytest.raises(StoreError, match="a value cannot be stored .*surrogates not allowed"):
        filled.add_clauses(batch)
    assert filled.count_clauses() == 2
    with pytest.raises(StoreError, match="a value cannot be stored"):
        filled.record_push(5, [("c-loan", 101, 0), ("c-fund", 2**64, 1)], batch=1, model_version=None)
    assert filled.pushed_tasks(live_only=False) == []


def test_nul_characters_are_refused_by_postgres_and_kept_by_sqlite(store):
    clause = Clause("c-nul", "含有\x00空字符的条款。")
    if store.engine == "postgresql":
        with pytest.raises(
            StoreError,
            match=r"a value cannot be stored \(PostgreSQL text fields cannot "
            r"contain NUL \(0x00\) bytes\)",
        ):
            store.add_clauses([LOAN, clause])
        assert store.count_clauses() == 0
    else:
        store.add_clauses([clause])
        assert store.get_clause("c-nul") == clause


def test_meta(store):
    assert store.get_meta("project_id", "none") == "none"
    store.set_meta("project_id", "3")
    store.set_meta("project_id", "4")
    assert store.get_meta("project_id") == "4"


# Documents and clauses ------------------------------------------------------------------------
def test_documents_and_their_clauses(store):
    doc = Document(
        "d1",
        "/x/policy.txt",
        "某市科技政策",
        (Segment("s1", "第一条 支持企业创新。", "第一章", 0), Segment("s2", "第二条 设立基金。", "第一章", 1)),
    )
    assert store.add_document(doc) == 2
    assert store.add_document(doc) == 0  # re-ingest adds nothing
    assert store.get_clause("s2") == Clause("s2", "第二条 设立基金。", "d1", "第一章", 1)
    [row] = store.documents()
    assert (row["id"], row["title"], row["n_clauses"]) == ("d1", "某市科技政策", 2)


def test_clauses_keep_insertion_order_and_the_order_asked(filled):
    assert filled.add_clauses([]) == 0
    assert filled.add_clauses([LOAN]) == 0
    assert [c.id for c in filled.clauses()] == ["c-loan", "c-fund"]
    assert [c.id for c in filled.clauses(["c-fund", "missing", "c-loan"])] == ["c-fund", "c-loan"]
    ids = [f"c{i}" for i in range(1200)]
    filled.add_clauses(Clause(i, f"条款{i}") for i in ids)
    assert [c.id for c in filled.clauses(reversed(ids))] == ids[::-1]  # more than one IN (...) chunk


def test_unknown_clause(store):
    with pytest.raises(NotFoundError, match="^no clause with id 'nope'$"):
        store.get_clause("nope")


# Annotations ----------------------------------------------------------------------------------
def test_label_studio_annotation_is_idempotent_by_its_id(filled):
    first = filled.save_annotation(ls(11, ["财政支持"], "2024-05-01T10:00:00Z"))
    again = filled.save_annotation(ls(11, ["财政支持"], "2024-05-01T10:00:00Z"))
    assert first[1] == "created" and again == (first[0], "unchanged")
    [ann] = filled.annotations()
    assert (ann.clause_id, ann.labels, ann.annotator, ann.source, ann.ls_annotation_id, ann.ls_task_id) == (
        "c-loan",
        ("财政支持",),
        "1",
        "label_studio",
        11,
        7,
    )
    assert ann.updated_at == "2024-05-01T10:00:00.000000+00:00"
    [entry] = filled.annotation_history(ann.id)
    assert (entry["action"], entry["labels"]) == ("created", ["财政支持"]) and entry["at"] > "2024"


def test_update_keeps_the_old_labels_in_history(filled):
    ann_id, _ = filled.save_annotation(ls(11, ["财政支持"], "2024-05-01T10:00:00Z"))
    assert filled.save_annotation(ls(11, ["财政支持", "金融支持"], "2024-05-01T11:00:00Z")) == (ann_id, "updated")
    assert filled.annotations()[0].labels == ("财政支持", "金融支持")
    history = filled.annotation_history(ann_id)
    assert [(h["action"], h["labels"]) for h in history] == [
        ("created", ["财政支持"]),
        ("updated", ["财政支持", "金融支持"]),
    ]


def test_an_older_update_arriving_late_is_ignored(filled):
    ann_id, _ = filled.save_annotation(ls(11, ["财政支持"], "2024-05-01T12:00:00Z"))
    # Same instant written in another time zone is not older.
    assert filled.save_annotation(ls(11, ["财政支持"], "2024-05-01T20:00:00+08:00"))[1] == "unchanged"
    assert filled.save_annotation(ls(11, ["企业"], "2024-05-01T11:59:59Z")) == (ann_id, "stale")
    assert filled.annotations()[0].labels == ("财政支持",)
    assert len(filled.annotation_history(ann_id)) == 1


def test_deletion_is_soft_and_recorded(filled):
    ann_id, _ = filled.save_annotation(ls(11, ["财政支持"], "2024-05-01T10:00:00Z"))
    assert filled.delete_ls_annotation(11) is True
    assert filled.delete_ls_annotation(11) is False  # already deleted
    assert filled.delete_ls_annotation(999) is False  # unknown
    assert filled.annotations() == [] and filled.count_annotations() == 0
    [kept] = filled.annotations(include_deleted=True)
    assert kept.labels == ("财政支持",)
    assert [h["action"] for h in filled.annotation_history(ann_id)] == ["created", "deleted"]
    assert filled.labeled_clause_ids() == set()


def test_a_late_older_update_does_not_bring_a_deleted_annotation_back(filled):
    filled.save_annotation(ls(11, ["财政支持"], "2024-05-01T12:00:00Z"))
    filled.delete_ls_annotation(11)
    assert filled.save_annotation(ls(11, ["企业"], "2024-05-01T11:00:00Z"))[1] == "stale"
    assert filled.annotations() == []


def test_a_newer_save_brings_a_deleted_annotation_back(filled):
    ann_id, _ = filled.save_annotation(ls(11, ["财政支持"], "2024-05-01T12:00:00Z"))
    filled.delete_ls_annotation(11)
    assert filled.save_annotation(ls(11, ["财政支持"], "2024-05-02T09:00:00Z")) == (ann_id, "updated")
    assert [a.labels for a in filled.annotations()] == [("财政支持",)]
    assert [h["action"] for h in filled.annotation_history(ann_id)] == ["created", "deleted", "updated"]


def test_local_annotations_are_keyed_by_clause_annotator_and_source(filled):
    a = filled.save_annotation(Annotation("c-loan", ("财政支持",), "seed", "seed"))
    assert filled.save_annotation(Annotation("c-loan", ("企业",), "seed", "seed")) == (a[0], "updated")
    filled.save_annotation(Annotation("c-loan", ("企业",), "alice", "cli"))
    filled.save_annotation(Annotation("c-fund", ("企业",), "seed", "seed"))
    assert filled.count_annotations() == 3
    assert filled.count_annotations(sources=["seed"]) == 2
    assert [a.source for a in filled.annotations(sources=["cli", "label_studio"])] == ["cli"]


def test_concurrent_writers_store_every_annotation_once_and_the_latest_version_wins(target, filled):
    """Several processes' webhooks for the same annotations, in any order: no duplicate rows, no lost
    update, and each annotation ends with the labels of its newest ``updated_at``."""
    versions = [(ann_id, minute) for ann_id in range(1, 31) for minute in range(4)]
    random.Random(0).shuffle(versions)
    labels = ["财政支持", "金融支持", "企业", "人才队伍"]

    def work(part):
        with Store(target) as s:
            for ann_id, minute in part:
                s.save_annotation(
                    ls(
                        ann_id,
                        [labels[minute]],
                        f"2024-05-01T10:0{minute}:00Z",
                        clause=("c-loan", "c-fund")[ann_id % 2],
                        annotator=str(ann_id),
                    )
                )
                s.save_annotation(Annotation(("c-loan", "c-fund")[ann_id % 2], (labels[minute],), "seed", "seed"))

    threads = [threading.Thread(target=work, args=(versions[n::4],)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    from_ls = filled.annotations(sources=["label_studio"])
    assert sorted(a.ls_annotation_id for a in from_ls) == list(range(1, 31))
    assert {a.labels for a in from_ls} == {("人才队伍",)}  # minute 3: the latest of each
    for a in from_ls:
        actions = [h["action"] for h in filled.annotation_history(a.id)]
        assert actions[0] == "created" and actions.count("created") == 1 and len(actions) <= 4
    assert sorted(a.clause_id for a in filled.annotations(sources=["seed"])) == ["c-fund", "c-loan"]


def test_two_label_studio_annotations_of_one_clause_are_both_kept(filled):
    filled.save_annotation(ls(11, ["财政支持"], "2024-05-01T10:00:00Z", annotator="alice"))
    filled.save_annotation(ls(12, ["金融支持"], "2024-05-01T10:05:00Z", annotator="bob"))
    assert sorted(a.annotator for a in filled.annotations()) == ["alice", "bob"]
    assert filled.labeled_clause_ids() == {"c-loan"}


def test_canonical_time():
    assert canonical_time("2024-05-01T10:00:00Z") == "2024-05-01T10:00:00.000000+00:00"
    assert canonical_time("2024-05-01 18:00:00+08:00") == "2024-05-01T10:00:00.000000+00:00"
    assert canonical_time("2024-05-01T10:00:00") == "2024-05-01T10:00:00.000000+00:00"
    assert canonical_time("not a time") > "2024"  # unreadable: now


# Adjudications --------------------------------------------------------------------------------
def test_adjudication_overrides_and_is_replaced(filled):
    filled.adjudicate("c-loan", ["财政支持"], "lead", "guideline 3")
    filled.adjudicate("c-loan", ["财政支持", "金融支持"], "lead2")
    assert filled.adjudications() == {"c-loan": ("财政支持", "金融支持")}
    assert filled.labeled_clause_ids() == {"c-loan"}


def test_adjudicating_an_unknown_clause(filled):
    with pytest.raises(NotFoundError, match="^no clause with id 'zz'$"):
        filled.adjudicate("zz", ["企业"], "lead")
    assert filled.adjudications() == {}


# Model versions, predictions, train runs ------------------------------------------------------
def test_model_versions_are_numbered_in_order(store):
    assert store.latest_model_version() is None
    v1 = store.add_model_version("/m/1.pkl", 100, {"macro_f1": 0.5, "标签": "财政支持"})
    v2 = store.add_model_version("/m/2.pkl", 150, {})
    assert (v1.version, v2.version) == (1, 2)
    assert isinstance(v1, ModelVersion)
    assert store.latest_model_version() == v2
    assert [v.metrics for v in store.model_versions()] == [{"macro_f1": 0.5, "标签": "财政支持"}, {}]


def test_predictions_per_version(filled):
    filled.save_predictions(1, [("c-loan", ("财政支持",), 0.9)])
    filled.save_predictions(2, [("c-loan", ("金融支持",), 0.6), ("c-fund", ("企业",), 0.7)])
    filled.save_predictions(2, [("c-loan", ("企业",), 0.5)])  # re-predicting replaces
    assert filled.predictions(1) == {"c-loan": (("财政支持",), 0.9)}
    assert filled.predictions() == {"c-loan": (("企业",), 0.5), "c-fund": (("企业",), 0.7)}


def test_train_runs(store):
    ok = store.start_train_run(40)
    bad = store.start_train_run(41)
    store.finish_train_run(ok, model_version=1)
    store.finish_train_run(bad, error="ValueError: boom")
    runs = store.train_runs()
    assert [(r.id, r.status, r.model_version, r.error) for r in runs] == [
        (bad, "failed", None, "ValueError: boom"),
        (ok, "done", 1, None),
    ]


# Pushed tasks ---------------------------------------------------------------------------------
def test_pushed_tasks_pending_until_labeled_or_removed(filled):
    filled.add_clauses([Clause("c-3", "第三条条款文字内容。")])
    assert filled.next_batch_number() == 1
    filled.record_push(5, [("c-loan", 101, 0), ("c-fund", 102, 1)], batch=1, model_version=None)
    filled.record_push(5, [("c-3", 103, 0)], batch=2, model_version=1)
    assert filled.next_batch_number() == 3
    assert [t.clause_id for t in filled.pending_pushed_tasks()] == ["c-loan", "c-fund", "c-3"]
    assert filled.pushed_task("c-fund").ls_task_id == 102 and filled.pushed_task("c-none") is None

    filled.save_annotation(ls(11, ["财政支持"], "2024-05-01T10:00:00Z"))
    filled.mark_removed(["c-3"])
    assert [t.clause_id for t in filled.pending_pushed_tasks()] == ["c-fund"]
    assert [t.clause_id for t in filled.pushed_tasks()] == ["c-loan", "c-fund"]
    assert len(filled.pushed_tasks(live_only=False)) == 3


def test_pushing_a_removed_clause_again_revives_it(filled):
    filled.record_push(5, [("c-loan", 101, 0)], batch=1, model_version=None)
    filled.mark_removed(["c-loan"])
    filled.record_push(5, [("c-loan", 201, 0)], batch=2, model_version=2)
    [task] = filled.pushed_tasks()
    assert (task.ls_task_id, task.batch, task.model_version, task.removed_at) == (201, 2, 2, None)


def test_a_task_id_label_studio_reused_never_blocks_a_push(filled):
    # Label Studio on SQLite reuses a deleted task's id: the record of the old clause must not
    # make every later push fail (the loop settles records by the tasks' data, not by id).
    filled.record_push(5, [("c-loan", 101, 0)], batch=1, model_version=None)
    filled.record_push(5, [("c-fund", 101, 0)], batch=2, model_version=None)
    assert [(t.clause_id, t.ls_task_id) for t in filled.pushed_tasks()] == [("c-loan", 101), ("c-fund", 101)]


def test_refresh_records_scores_and_freezes_the_prefill_of_a_labeled_clause(filled):
    filled.record_push(5, [("c-loan", 101, 0), ("c-fund", 102, 1)], batch=1, model_version=1)
    filled.set_priorities([("c-loan", 0.0, 1, ("金融支持",)), ("c-fund", 0.5, 1, ("财政支持",))], model_version=1)
    filled.set_priorities([("c-loan", 0.25, 2, ("金融支持", "财政支持")), ("c-fund", 0.5, None, None)], model_version=2)
    loan, fund = filled.pushed_tasks()
    assert (loan.score, loan.model_version, loan.prefill_version, loan.prefill_labels) == (
        0.25,
        2,
        2,
        ("金融支持", "财政支持"),
    )
    assert (fund.score, fund.model_version, fund.prefill_version, fund.prefill_labels) == (0.5, 2, 1, ("财政支持",))


def test_a_version_1_store_is_migrated_without_losing_a_push(tmp_path):
    import sqlite3

    from annotator.storage.store import MIGRATIONS

    path = tmp_path / "old.db"
    conn = sqlite3.connect(path)
    conn.executescript(MIGRATIONS[0].replace("{rowid}", ""))
    conn.execute("INSERT INTO clauses VALUES ('c1', '第一条。', NULL, '', 0, '2024-01-01')")
    conn.execute(
        "INSERT INTO annotations(clause_id, annotator, labels, source, created_at, updated_at) "
        "VALUES ('c1', 'seed', '[\"金融支持\"]', 'seed', '2024-01-01', '2024-01-01')"
    )
    conn.execute("INSERT INTO pushed_tasks VALUES ('c1', 3, 17, 0, 1, 2, '2024-01-01', NULL)")
    conn.execute("PRAGMA user_version=1")
    conn.commit()
    conn.close()
    with Store(path) as store:
        assert store.schema_version == len(MIGRATIONS) == 2
        (task,) = store.pushed_tasks()
        assert (task.clause_id, task.project_id, task.ls_task_id, task.model_version, task.prefill_labels) == (
            "c1",
            3,
            17,
            2,
            (),
        )
        (annotation,) = store.annotations()
        assert annotation.labels == ("金融支持",) and not annotation.not_policy


# A whole project on both engines --------------------------------------------------------------
def run_project(settings, target: str, tmp_path) -> dict:
    """Seed labels, a pool, two annotators in Label Studio, a lead; train, rank, push; read back
    what the trainer, the agreement report and the export see."""
    import numpy as np

    from annotator import ModelRegistry
    from annotator.review.agreement import agreement_report
    from annotator.dataset.export import prepare_dataset
    from annotator.cycle.loop import train_project
    from annotator.cycle.ls_queue import rank_pool, unlabeled_pool
    from annotator.text.normalize import clause_id
    from annotator.cycle.project import import_labels, training_examples

    from ..conftest import seed_lines

    labeled = tmp_path / "labeled.tsv"
    labeled.write_text("\n".join(seed_lines(60)) + "\n", encoding="utf-8")
    with Store(target) as store:
        imported = import_labels(store, labeled, settings.labels)
        pool = [line.split("\t", 1)[1] for line in seed_lines(60, seed=1)]
        store.add_clauses(Clause(clause_id(t), t) for t in dict.fromkeys(pool))
        unlabeled = [c for c in store.clauses() if c.id not in store.labeled_clause_ids()][:30]
        for i, clause in enumerate(unlabeled):
            for who in ("alice", "bob")[: 1 + (i % 2)]:
                choice = settings.labels[(i + (who == "bob") * (i % 3 == 0)) % 27]
                store.save_annotation(
                    Annotation(
                        clause.id,
                        (choice,),
                        who,
                        "label_studio",
                        ls_annotation_id=100 * (who == "bob") + i,
                        ls_task_id=i,
                        created_at="2024-05-01T10:00:00Z",
                        updated_at="2024-05-01T10:00:00Z",
                    )
                )
        store.delete_ls_annotation(4)
        store.adjudicate(unlabeled[3].id, [settings.labels[0], settings.labels[5]], "lead")
        registry = ModelRegistry(settings.model_dir, store)
        trained, _ = train_project(settings, store, registry, holdout=0)
        pool = unlabeled_pool(store.clauses(), store.labeled_clause_ids())
        X = trained.cache.matrix([c.id for c in pool])
        batch = [pool[i] for i in rank_pool(settings, store, trained.model, X, pool, 10, rng=np.random.default_rng(0))]
        store.record_push(
            1,
            [(c.id, 1000 + i, i) for i, c in enumerate(batch)],
            batch=store.next_batch_number(),
            model_version=trained.version.version,
        )
        annotations = store.annotations()
        predicted = {cid: labels for cid, (labels, _) in store.predictions().items()}
        agreement = agreement_report(
            annotations, settings.labels, adjudicated=store.adjudications(), model=predicted
        ).to_dict()
        dataset = prepare_dataset(
            annotations,
            {c.id: c.text for c in store.clauses()},
            settings.labels,
            adjudications=store.adjudications(),
            noise_check=False,
        )
        return {
            "imported": imported,
            "n_clauses": store.count_clauses(),
            "annotations": [
                (a.id, a.clause_id, a.labels, a.annotator, a.source, a.ls_annotation_id)
                for a in store.annotations(include_deleted=True)
            ],
            "examples": training_examples(store, settings.labels),
            "version": (trained.version.version, trained.version.n_train),
            "predictions": store.predictions(),
            "batch": [t.clause_id for t in store.pending_pushed_tasks()],
            "agreement": agreement,
            "splits": {name: [dataset.examples[i].id for i in rows] for name, rows in dataset.splits.items()},
        }


def test_a_project_gives_the_same_answers_on_both_engines(settings, pg_url, tmp_path):
    on_sqlite = run_project(
        settings.replace(home=tmp_path / "sqlite"), str(tmp_path / "sqlite" / "annotator.db"), tmp_path
    )
    on_postgres = run_project(settings.replace(home=tmp_path / "pg", database_url=pg_url), pg_url, tmp_path)
    assert on_sqlite["n_clauses"] > 100 and len(on_sqlite["batch"]) == 10
    assert on_sqlite["version"][0] == 1 and len(on_sqlite["annotations"]) > 60
    assert on_postgres == on_sqlite


def test_labeled_clause_ids_among_a_few_reads_only_those(filled):
    filled.adjudicate("c-fund", ["财政支持"], "lead")
    everything = filled.labeled_clause_ids()
    assert filled.labeled_clause_ids(among=["c-loan", "c-fund", "c-none"]) == everything & {"c-loan", "c-fund"}
    assert filled.labeled_clause_ids(among=[]) == set()
