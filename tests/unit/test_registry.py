"""ModelRegistry: versions are saved atomically with their row, loaded by number or "latest", cached."""

from __future__ import annotations

import hashlib
import os
import pickle
import re
import shutil

import numpy as np
import pytest

from annotator import AnnotatorError, ModelRegistry, NotFoundError, NotTrainedError, PolicyClassifier, Store, StoreError
from annotator.labels import load_label_config
from annotator.text.seedset import read_labeled_file
from annotator.model.training import label_matrix
from tests.conftest import seed_lines

LABELS = load_label_config().labels

# BUG features.py:47: jieba's load_userdict(path) opens the user dictionary and never closes it.
pytestmark = pytest.mark.filterwarnings(
    r"ignore:Exception ignored in.*policy_terms\.txt:pytest.PytestUnraisableExceptionWarning"
)


class Unpicklable:
    """A model that fails half-way through pickling, like one still holding a lock."""

    def __reduce__(self):
        raise TypeError("cannot pickle '_thread.lock' object")


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    path = tmp_path_factory.mktemp("registry") / "small.tsv"
    path.write_text("\n".join(seed_lines(60)) + "\n", encoding="utf-8")
    examples = read_labeled_file(path, LABELS).examples
    texts = [e.text for e in examples]
    model = PolicyClassifier(labels=LABELS, threshold=0.3, cv=2).fit(texts, label_matrix(examples, LABELS))
    return model, texts[:5]


@pytest.fixture
def registry(settings, store):
    return ModelRegistry(settings.model_dir, store)


def test_nothing_trained_yet(registry):
    with pytest.raises(NotTrainedError) as info:
        registry.load()
    assert str(info.value) == "no model has been trained yet; run `annotator train` or label more clauses"
    assert registry.versions() == []


def test_save_then_load_a_real_classifier_in_a_fresh_registry(settings, registry, fitted):
    model, texts = fitted
    saved = registry.save(model, n_train=60, metrics={"macro_f1": 0.41})
    with open(settings.model_dir / "model-00001.pkl", "rb") as fh:
        digest = hashlib.sha256(fh.read()).hexdigest()
    assert (saved.version, saved.n_train, saved.metrics) == (1, 60, {"macro_f1": 0.41, "sha256": digest})
    assert saved.path == str((settings.model_dir / "model-00001.pkl").resolve())
    assert os.listdir(settings.model_dir) == ["model-00001.pkl"]

    with Store(settings.db_path) as other_store:  # a new process: nothing cached
        info, loaded = ModelRegistry(settings.model_dir, other_store).load("latest")
        assert info == saved
        assert loaded is not model
        assert list(loaded.labels_) == list(model.labels_) == list(LABELS)
        np.testing.assert_allclose(loaded.predict_proba(texts), model.predict_proba(texts))


def test_versions_are_numbered_and_loadable_by_number(registry):
    for n in (10, 20, 30):
        registry.save({"n": n}, n_train=n)
    assert [v.version for v in registry.versions()] == [1, 2, 3]
    assert registry.load()[1] == {"n": 30}
    assert registry.load(2)[1] == {"n": 20}
    assert registry.load("1")[0].n_train == 10


def test_unknown_version_lists_the_known_ones(registry):
    registry.save({"n": 1}, n_train=1)
    with pytest.raises(NotFoundError) as info:
        registry.load(7)
    assert str(info.value) == "no model version 7; known: 1"


def test_non_numeric_version_is_a_clean_error(registry):
    registry.save({"n": 1}, n_train=1)
    with pytest.raises(AnnotatorError):
        registry.load("abc")


def test_loaded_models_are_cached_on_the_instance(registry, settings, store):
    registry.save({"n": 1}, n_train=1)
    first = registry.load()[1]
    assert registry.load()[1] is first
    assert registry.using(store).load()[1] is first  # a per-request view shares the cache
    assert ModelRegistry(settings.model_dir, store).load()[1] is not first  # a new instance does not


def test_latest_skips_a_version_whose_file_is_gone(registry, caplog):
    registry.save({"n": 1}, n_train=1)
    v2 = registry.save({"n": 2}, n_train=2)
    os.remove(v2.path)
    fresh = ModelRegistry(registry.model_dir, registry.store)
    info, model = fresh.load()
    assert (info.version, model) == (1, {"n": 1})
    assert (
        f"model version 2 cannot be loaded: file {v2.path} is missing; falling back to an older version" in caplog.text
    )
    assert fresh.broken_versions() == [{"version": 2, "path": v2.path, "reason": f"file {v2.path} is missing"}]


def test_a_missing_or_corrupt_file_is_a_store_error(registry):
    v1 = registry.save({"n": 1}, n_train=1)
    v2 = registry.save({"n": 2}, n_train=2)
    fresh = ModelRegistry(registry.model_dir, registry.store)
    with open(v2.path, "wb") as fh:
        fh.write(b"not a pickle")
    with pytest.raises(StoreError) as err:
        fresh.load(2)
    assert re.fullmatch(
        rf"model version 2 cannot be loaded: checksum mismatch: {re.escape(v2.path)} has SHA-256 "
        r"[0-9a-f]{12}…, saved as [0-9a-f]{12}… \(the file changed after it was saved\)",
        str(err.value),
    )
    os.remove(v1.path)
    with pytest.raises(StoreError) as err:
        fresh.load(1)
    assert str(err.value) == f"model version 1 cannot be loaded: file {v1.path} is missing"


def test_a_failed_save_leaves_no_file_and_no_row(registry, settings):
    registry.save({"n": 1}, n_train=1)
    with pytest.raises(TypeError, match="cannot pickle"):
        registry.save(Unpicklable(), n_train=2)
    assert [v.version for v in registry.versions()] == [1]
    assert os.listdir(settings.model_dir) == ["model-00001.pkl"]
    assert registry.save({"n": 3}, n_train=3).version == 2


def test_orphan_temp_files_from_a_crash_are_ignored_and_cleaned(registry, settings):
    settings.model_dir.mkdir(parents=True)
    orphan = settings.model_dir / ".model-abc123.tmp"
    orphan.write_bytes(pickle.dumps({"half": "written"})[:5])
    with pytest.raises(NotTrainedError):
        registry.load()  # an orphan is never taken for a model
    registry.save({"n": 1}, n_train=1)
    assert sorted(os.listdir(settings.model_dir)) == ["model-00001.pkl"]


# --------------------------------------------------------------------------- integrity (issue 16)


class Crafted:
    """A pickle that runs code when loaded: what an attacker who can write the model dir would plant."""

    def __reduce__(self):
        return (os.system, ("touch crafted-ran",))


def test_rows_hold_paths_relative_to_the_model_dir_and_a_moved_home_serves(registry, settings, tmp_path):
    registry.save({"n": 1}, n_train=1)
    assert [v.path for v in registry.store.model_versions()] == ["model-00001.pkl"]
    moved = tmp_path / "elsewhere"
    shutil.copytree(settings.home, moved)
    shutil.rmtree(settings.model_dir)
    with Store(moved / "annotator.db") as store:
        info, model = ModelRegistry(moved / "models", store).load()
    assert (info.version, info.path, model) == (1, str((moved / "models" / "model-00001.pkl").resolve()), {"n": 1})


def test_an_old_absolute_row_loads_where_it_says_or_from_a_moved_home(registry, settings, tmp_path):
    settings.model_dir.mkdir(parents=True)
    old = settings.model_dir / "model-00001.pkl"
    old.write_bytes(pickle.dumps({"n": "old"}))
    registry.store.add_model_version(str(old.resolve()), 1, {})  # as written before checksums existed
    assert registry.load()[1] == {"n": "old"}
    moved = tmp_path / "moved"
    shutil.copytree(settings.home, moved)
    shutil.rmtree(settings.home)  # the absolute path now points nowhere: the moved home's own file serves
    with Store(moved / "annotator.db") as store:
        fresh = ModelRegistry(moved / "models", store)
        info, model = fresh.load()
        assert (info.path, model) == (str((moved / "models" / "model-00001.pkl").resolve()), {"n": "old"})
        assert fresh.broken_versions() == []


def test_a_copied_home_serves_its_own_files_not_the_originals(registry, settings, tmp_path):
    settings.model_dir.mkdir(parents=True)
    (settings.model_dir / "model-00001.pkl").write_bytes(pickle.dumps({"n": "original"}))
    registry.store.add_model_version(str((settings.model_dir / "model-00001.pkl").resolve()), 1, {})
    copy = tmp_path / "copy"
    shutil.copytree(settings.home, copy)
    (copy / "models" / "model-00001.pkl").write_bytes(pickle.dumps({"n": "copy"}))
    with Store(copy / "annotator.db") as store:
        assert ModelRegistry(copy / "models", store).load()[1] == {"n": "copy"}


@pytest.mark.parametrize("damage", ["truncated", "flipped bytes", "crafted"])
def test_a_damaged_latest_falls_back_to_the_newest_intact_version(
    registry, settings, damage, tmp_path, monkeypatch, caplog
):
    monkeypatch.chdir(tmp_path)
    registry.save({"n": 1}, n_train=1)
    registry.save({"n": 2}, n_train=2)
    v3 = registry.save({"n": 3, "weights": list(range(100))}, n_train=3)
    with open(v3.path, "rb") as fh:
        data = fh.read()
    if damage == "truncated":
        data = data[: len(data) // 2]
    elif damage == "flipped bytes":
        data = data[:-10] + bytes(b ^ 0xFF for b in data[-10:-5]) + data[-5:]
    else:
        data = pickle.dumps(Crafted())
    with open(v3.path, "wb") as fh:
        fh.write(data)
    fresh = ModelRegistry(settings.model_dir, registry.store)
    info, model = fresh.load("latest")
    assert (info.version, model) == (2, {"n": 2})
    assert fresh.latest().version == 2
    (broken,) = fresh.broken_versions()
    assert (broken["version"], broken["path"]) == (3, v3.path)
    assert broken["reason"].startswith(f"checksum mismatch: {v3.path} has SHA-256 ")
    assert not (tmp_path / "crafted-ran").exists()  # never unpickled
    with pytest.raises(StoreError, match="^model version 3 cannot be loaded: checksum mismatch"):
        fresh.load(3)
    assert not (tmp_path / "crafted-ran").exists()
    assert "model version 3 cannot be loaded: checksum mismatch" in caplog.text


def test_a_verified_file_that_cannot_be_unpickled_is_reported_broken(registry, settings, monkeypatch):
    registry.save({"n": 1}, n_train=1)
    v2 = registry.save({"n": 2}, n_train=2)
    fresh = ModelRegistry(settings.model_dir, registry.store)
    monkeypatch.setattr(
        "annotator.storage.registry.loads", lambda data: (_ for _ in ()).throw(AttributeError("no class Foo"))
    )
    with pytest.raises(NotTrainedError) as err:
        fresh.load()
    assert str(err.value) == (
        f"no intact model version to serve (version 2: {v2.path} cannot be unpickled: "
        f"AttributeError: no class Foo; version 1: {v2.path[:-5]}1.pkl cannot be unpickled: "
        "AttributeError: no class Foo); run `annotator train` to train a new one"
    )
    assert [b["version"] for b in fresh.broken_versions()] == [1, 2]
    monkeypatch.undo()
    assert fresh.load()[1] == {"n": 2}  # repaired (a newer scikit-learn installed, say): served again
    assert [b["version"] for b in fresh.broken_versions()] == [1]  # a failure is remembered until retried
    assert fresh.load(1)[1] == {"n": 1}
    assert fresh.broken_versions() == []


def test_prune_deletes_old_files_keeps_rows_and_reports_pruned_not_broken(registry, settings):
    for n in range(1, 6):
        registry.save({"n": n}, n_train=n, metrics={"macro_f1": n / 10})
    assert registry.prune(keep_last=2, keep=[1]) == [2, 3]
    assert sorted(os.listdir(settings.model_dir)) == ["model-00001.pkl", "model-00004.pkl", "model-00005.pkl"]
    versions = registry.versions()
    assert [v.version for v in versions] == [1, 2, 3, 4, 5]  # the learning curve keeps every version
    assert [v.metrics["macro_f1"] for v in versions] == [0.1, 0.2, 0.3, 0.4, 0.5]
    assert ["pruned_at" in v.metrics for v in versions] == [False, True, True, False, False]
    assert registry.broken_versions() == []
    pruned_on = versions[1].metrics["pruned_at"]
    with pytest.raises(NotFoundError) as err:
        registry.load(2)
    assert str(err.value) == (
        f"model version 2 was pruned on {pruned_on} (its file was deleted by the retention "
        "policy; its metrics are kept); versions with a file: 1, 4, 5"
    )
    assert registry.load()[1] == {"n": 5}
    assert registry.prune(keep_last=2, keep=[1]) == []  # nothing left to prune
    assert registry.prune(keep_last=1) == [1, 4]


def test_prune_never_deletes_the_version_being_served(registry, settings):
    registry.save({"n": 1}, n_train=1)
    v2 = registry.save({"n": 2}, n_train=2)
    with open(v2.path, "wb") as fh:
        fh.write(b"garbage")
    fresh = ModelRegistry(settings.model_dir, registry.store)  # a new process: v2 was never loaded intact
    assert fresh.prune(keep_last=1) == []  # v2 is broken; v1 is what serves, so it stays
    assert fresh.load()[1] == {"n": 1}
    with pytest.raises(AnnotatorError, match="^keep_last must be a positive integer, got 0$"):
        fresh.prune(keep_last=0)


def test_a_model_pickled_under_the_flat_layout_still_loads(fitted):
    # Issue 17 moved annotator/model.py to annotator/model/classifier.py (and features, calibration …):
    # a pickle names its classes' modules, so a model saved before the move names the old ones.
    from annotator.storage.registry import MOVED_MODULES, loads

    model, texts = fitted
    data = pickle.dumps(model, protocol=2)  # protocol 2 names a global as b"c<module>\n<name>\n"
    renamed = 0
    for old, new in MOVED_MODULES.items():
        renamed += data.count(b"c" + new.encode() + b"\n")
        data = data.replace(b"c" + new.encode() + b"\n", b"c" + old.encode() + b"\n")
    assert renamed >= 2 and b"cannotator.model\nPolicyClassifier\n" in data
    with pytest.raises((ImportError, AttributeError)):
        pickle.loads(data)  # the plain unpickler looks in the old places
    old = loads(data)
    assert type(old) is PolicyClassifier
    np.testing.assert_array_equal(old.predict_proba(texts), model.predict_proba(texts))
