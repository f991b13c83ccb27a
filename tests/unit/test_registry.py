"""ModelRegistry: versions are saved atomically with their row, loaded by number or "latest", cached."""
from __future__ import annotations

import os
import pickle

import numpy as np
import pytest

from annotator import (AnnotatorError, ModelRegistry, NotFoundError, NotTrainedError, PolicyClassifier, Store,
                       StoreError)
from annotator.labels import load_label_config
from annotator.seedset import read_labeled_file
from annotator.training import label_matrix
from tests.conftest import seed_lines

LABELS = load_label_config().labels

# BUG features.py:47: jieba's load_userdict(path) opens the user dictionary and never closes it.
pytestmark = pytest.mark.filterwarnings(
    r"ignore:Exception ignored in.*policy_terms\.txt:pytest.PytestUnraisableExceptionWarning")


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
    assert (saved.version, saved.n_train, saved.metrics) == (1, 60, {"macro_f1": 0.41})
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
    assert f"model version 2: file {v2.path} is missing; skipping it" in caplog.text


def test_a_missing_or_corrupt_file_is_a_store_error(registry):
    v1 = registry.save({"n": 1}, n_train=1)
    v2 = registry.save({"n": 2}, n_train=2)
    fresh = ModelRegistry(registry.model_dir, registry.store)
    with open(v2.path, "wb") as fh:
        fh.write(b"not a pickle")
    with pytest.raises(StoreError, match=f"^model version 2 at {v2.path} cannot be loaded: "):
        fresh.load(2)
    os.remove(v1.path)
    with pytest.raises(StoreError, match=f"^model version 1 at {v1.path} cannot be loaded: "):
        fresh.load(1)


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
