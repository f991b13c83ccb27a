"""The pool feature cache: computed once, exact, invalidated by a new featurizer, scored in chunks."""

from __future__ import annotations

import pickle
import random

import numpy as np
import pytest

from annotator.errors import InputError, NotFoundError
from annotator.model.features import PolicyTextFeaturizer
from annotator.labels import load_label_config
from annotator.model.classifier import PolicyClassifier
from annotator.text.normalize import clause_id
from annotator.model.poolcache import PoolCache, featurizer_fingerprint, score_features
from annotator.text.seedset import read_labeled_file
from annotator.model.training import label_matrix
from tests.conftest import SEED_TSV


@pytest.fixture(scope="module")
def pool():
    labels = load_label_config().labels
    examples = random.Random(4).sample(read_labeled_file(SEED_TSV, labels).examples, 120)
    texts = [e.text for e in examples]
    featurizer = PolicyTextFeaturizer(word_ngram_range=None).fit(texts)
    model = PolicyClassifier(labels=labels, cv=1).fit_features(
        featurizer.transform(texts[:60]), label_matrix(examples[:60], labels)
    )
    return texts, [clause_id(t) for t in texts], featurizer, model


def test_features_are_computed_once_and_exact(pool, tmp_path, monkeypatch):
    texts, ids, featurizer, _ = pool
    cache = PoolCache(tmp_path, featurizer, shard_rows=50)
    assert cache.add(ids[:70], texts[:70]) == 70
    assert cache.add(ids, texts) == 50  # only the new ones
    assert len(cache) == 120 and list(cache.ids()) == ids
    assert len(list(cache.directory.glob("shard-*.data.npy"))) == 3  # 50 + 20, then 50
    expected = featurizer.transform(texts)
    assert abs(cache.matrix() - expected).max() < 1e-6
    order = [ids[5], ids[100], ids[0]]
    assert abs(cache.matrix(order) - expected[[5, 100, 0]]).max() < 1e-6

    def no_transform(*args, **kwargs):
        raise AssertionError("cached clauses must not be featurized again")

    monkeypatch.setattr(PolicyTextFeaturizer, "transform", no_transform)
    reopened = PoolCache(tmp_path, featurizer)
    assert reopened.directory == cache.directory and reopened.add(ids, texts) == 0
    assert abs(reopened.matrix() - expected).max() < 1e-6


def test_scores_match_the_model_in_any_chunking(pool, tmp_path):
    texts, ids, featurizer, model = pool
    cache = PoolCache(tmp_path, featurizer, shard_rows=45)
    cache.add(ids, texts)
    expected = model.predict_proba_features(featurizer.transform(texts))
    for chunk_rows in (7, 45, 1000):
        got_ids, proba = cache.score(model, chunk_rows=chunk_rows)
        assert list(got_ids) == ids and proba.dtype == np.float32
        assert np.abs(proba - expected).max() < 1e-5
    some, proba = cache.score(model, [ids[3], ids[9]])
    assert list(some) == [ids[3], ids[9]] and np.abs(proba - expected[[3, 9]]).max() < 1e-5
    assert np.abs(score_features(model, featurizer.transform(texts), chunk_rows=11) - expected).max() < 1e-5


def test_a_changed_featurizer_gets_a_new_cache(pool, tmp_path):
    texts, ids, featurizer, _ = pool
    old = PoolCache(tmp_path, featurizer)
    old.add(ids, texts)
    refit = PolicyTextFeaturizer(word_ngram_range=None).fit(texts[:80])
    assert featurizer_fingerprint(refit) != featurizer_fingerprint(featurizer)
    assert featurizer_fingerprint(featurizer) == featurizer_fingerprint(
        PolicyTextFeaturizer(word_ngram_range=None).fit(texts)
    )
    # A saved and reloaded featurizer (the model registry pickles it) finds its cache again.
    assert featurizer_fingerprint(pickle.loads(pickle.dumps(featurizer))) == featurizer_fingerprint(featurizer)
    assert featurizer_fingerprint(
        PolicyTextFeaturizer(word_ngram_range=None, min_df=1).fit(texts)
    ) != featurizer_fingerprint(featurizer)
    new = PoolCache(tmp_path, refit)
    assert new.directory != old.directory and len(new) == 0
    new.add(ids[:10], texts[:10])
    assert new.clear_stale() == [old.directory]
    assert not old.directory.exists() and len(PoolCache(tmp_path, refit)) == 10


def test_errors_name_the_problem(pool, tmp_path):
    texts, ids, featurizer, _ = pool
    cache = PoolCache(tmp_path, featurizer)
    with pytest.raises(InputError, match="3 ids but 2 texts"):
        cache.add(ids[:3], texts[:2])
    with pytest.raises(InputError, match="ids must be unique"):
        cache.add([ids[0], ids[0]], texts[:2])
    cache.add(ids[:5], texts[:5])
    with pytest.raises(NotFoundError) as err:
        cache.matrix([ids[0], "nope"])
    assert str(err.value) == "1 clause(s) not in the feature cache (first: nope); add them with PoolCache.add"
    assert cache.disk_bytes() > 0


# --------------------------------------------------------------------------- disk full (issue 16)


def _disk_fills_at(monkeypatch, part: str):
    """np.save writes half of ``part``'s file, then the disk is full (ENOSPC), as the OS reports it."""
    import errno
    import os

    import annotator.model.poolcache as poolcache_module

    real_save = np.save

    def save(path, array, allow_pickle=False):
        if f".{part}." in str(path):
            with open(path, "wb") as fh:
                fh.write(b"\x93NUMPY partial")
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        return real_save(path, array, allow_pickle=allow_pickle)

    monkeypatch.setattr(poolcache_module.np, "save", save)


@pytest.mark.parametrize("part", ["ids", "indices", "indptr"])
def test_a_full_disk_removes_the_partial_shard_and_raises_the_real_error(pool, tmp_path, monkeypatch, part):
    texts, ids, featurizer, _ = pool
    cache = PoolCache(tmp_path, featurizer, shard_rows=50)
    cache.add(ids[:50], texts[:50])
    before = sorted(p.name for p in cache.directory.iterdir())
    with monkeypatch.context() as m:
        _disk_fills_at(m, part)
        with pytest.raises(OSError) as err:
            cache.add(ids, texts)
    assert str(err.value).startswith("[Errno 28] No space left on device")
    assert sorted(p.name for p in cache.directory.iterdir()) == before  # no partial shard, no temp file
    reopened = PoolCache(tmp_path, featurizer)
    assert len(reopened) == 50 and list(reopened.ids()) == ids[:50]
    assert reopened.add(ids, texts) == 70  # once there is room again, the rest is cached
    assert abs(reopened.matrix() - featurizer.transform(texts)).max() < 1e-6


def test_a_full_disk_while_writing_the_index_keeps_the_old_index(pool, tmp_path, monkeypatch):
    import errno
    import os
    from pathlib import Path

    texts, ids, featurizer, _ = pool
    cache = PoolCache(tmp_path, featurizer, shard_rows=50)
    cache.add(ids[:50], texts[:50])
    before = sorted(p.name for p in cache.directory.iterdir())
    real_write = Path.write_text

    def write_text(self, *args, **kwargs):
        if self.name == ".meta.json.tmp":
            real_write(self, "{", encoding="utf-8")
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_write(self, *args, **kwargs)

    monkeypatch.setattr(Path, "write_text", write_text)
    with pytest.raises(OSError, match=r"^\[Errno 28\] No space left on device$"):
        cache.add(ids, texts)
    monkeypatch.undo()
    assert sorted(p.name for p in cache.directory.iterdir()) == before
    assert len(PoolCache(tmp_path, featurizer)) == 50


def test_a_training_run_that_fills_the_disk_records_the_real_error(settings, store, monkeypatch, tmp_path):
    from annotator import ModelRegistry
    from annotator.cycle.loop import retrain
    from annotator.cycle.project import import_labels
    from tests.conftest import seed_lines

    labeled = tmp_path / "labeled.tsv"
    labeled.write_text("\n".join(seed_lines(60)) + "\n", encoding="utf-8")
    import_labels(store, labeled, settings.labels)
    _disk_fills_at(monkeypatch, "data")
    with pytest.raises(OSError):
        retrain(settings, store, ModelRegistry(settings.model_dir, store))
    (run,) = store.train_runs()
    assert run.status == "failed"
    assert run.error.startswith("OSError: [Errno 28] No space left on device")
    assert store.model_versions() == []
    assert [p.name for p in settings.cache_dir.rglob("*") if p.is_file() and p.name != "meta.json"] == []
