"""The store's SQLite files are readable by their owner only (issue 16)."""

from __future__ import annotations

import os
import stat

import pytest

from annotator.errors import StoreError
from annotator.storage.store import Store


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.mark.parametrize("umask", [0o022, 0o000])
def test_a_new_store_and_its_wal_files_are_private(tmp_path, umask):
    old = os.umask(umask)
    try:
        db = tmp_path / "home" / "annotator.db"
        with Store(db) as store:
            store.set_meta("k", "v")  # a write: the -wal and -shm files exist while it is open
            files = [db, db.with_name("annotator.db-wal"), db.with_name("annotator.db-shm")]
            assert [p.name for p in files if p.exists()] == ["annotator.db", "annotator.db-wal", "annotator.db-shm"]
            assert [oct(mode(p)) for p in files] == ["0o600"] * 3
    finally:
        os.umask(old)


def test_an_existing_store_keeps_the_mode_its_owner_chose(tmp_path):
    db = tmp_path / "annotator.db"
    with Store(db):
        pass
    os.chmod(db, 0o640)
    with Store(db) as store:
        assert store.get_meta("missing") is None
    assert mode(db) == 0o640


def test_a_store_that_cannot_be_created_is_a_store_error(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    os.chmod(locked, 0o500)
    try:
        if os.access(locked, os.W_OK):  # root ignores permissions
            pytest.skip("running as root")
        with pytest.raises(StoreError, match="^cannot create the store .*: Permission denied$"):
            Store(locked / "annotator.db")
    finally:
        os.chmod(locked, 0o700)
