"""Pool featurization on Dask: a real LocalCluster of two worker processes, real seed clauses, and the
same bytes as the in-process featurizer."""

from __future__ import annotations

import filecmp
from pathlib import Path

import logging

import numpy as np
import pytest
import scipy.sparse as sp

from annotator import Settings, Store
from annotator.model.dask_features import add_on_dask, dask_client, featurize_into_cache, transform_partitions
from annotator.errors import AnnotatorError, InputError
from annotator.model.features import PolicyTextFeaturizer
from annotator.model.project_features import pool_cache
from annotator.text.normalize import clause_id
from annotator.model.poolcache import PoolCache
from annotator.types import Clause

from ..conftest import seed_lines


@pytest.fixture(scope="module")
def texts() -> list[str]:
    return sorted({line.split("\t", 1)[1] for line in seed_lines(400, seed=3)})


@pytest.fixture(scope="module")
def featurizer(texts) -> PolicyTextFeaturizer:
    return PolicyTextFeaturizer().fit(texts[:300])


@pytest.fixture(scope="module")
def client():
    from distributed import LocalCluster

    with LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address="127.0.0.1:0"
    ) as cluster:
        from distributed import Client

        with Client(cluster) as c:
            yield c


def files(directory: Path) -> dict[str, Path]:
    return {str(p.relative_to(directory)): p for p in sorted(directory.rglob("*")) if p.is_file()}


def test_partitions_come_back_in_order_and_bit_identical(client, featurizer, texts):
    expected = featurizer.transform(texts)
    parts = list(transform_partitions(client, featurizer, iter(texts), partition_rows=37, max_in_flight=3))
    assert [p.shape[0] for p in parts] == [37] * (len(texts) // 37) + [len(texts) % 37]
    got = sp.vstack(parts, format="csr")
    assert got.dtype == expected.dtype == np.float32
    for name in ("data", "indices", "indptr"):
        assert np.array_equal(getattr(got, name), getattr(expected, name)), name


def test_the_cache_is_byte_identical_to_the_in_process_one(client, featurizer, texts, tmp_path):
    ids = [f"c{i}" for i in range(len(texts))]
    local = PoolCache(tmp_path / "local", featurizer, shard_rows=150)
    local.add(ids, texts)
    remote = PoolCache(tmp_path / "dask", featurizer, shard_rows=150)
    items = ((i, t) for i, t in zip(ids, texts))  # a generator: consumed partition by partition
    assert featurize_into_cache(remote, items, client=client, partition_rows=60, progress=False) == len(ids)
    a, b = files(local.directory), files(remote.directory)
    n_shards = -(-len(ids) // 150)
    assert list(a) == list(b) and len(a) == 1 + 4 * n_shards  # meta + each shard's ids/data/indices/indptr
    assert all(filecmp.cmp(a[name], b[name], shallow=False) for name in a)
    # Cached rows are skipped, new ones appended, as PoolCache.add does.
    more = [f"{t}（补充）" for t in texts[:30]]
    assert (
        featurize_into_cache(
            remote,
            list(zip(ids[:5], texts[:5])) + [(f"n{i}", t) for i, t in enumerate(more)],
            client=client,
            partition_rows=60,
            progress=False,
        )
        == 30
    )
    X = remote.matrix([f"n{i}" for i in range(30)])
    assert (X != featurizer.transform(more)).nnz == 0


def test_a_repeated_id_is_refused(client, featurizer, tmp_path):
    cache = PoolCache(tmp_path, featurizer)
    with pytest.raises(InputError, match="ids must be unique; a repeats"):
        featurize_into_cache(cache, [("a", "一是支持企业。"), ("a", "二是加强人才。")], client=client, progress=False)


def test_a_small_batch_stays_in_process(featurizer, texts, tmp_path):
    cache = PoolCache(tmp_path, featurizer)
    # An unreachable scheduler proves no cluster is contacted for fewer than min_rows new clauses.
    assert add_on_dask(cache, ["a", "b"], texts[:2], scheduler="tcp://127.0.0.1:9", min_rows=10) == 2
    assert (cache.matrix(["a", "b"]) != featurizer.transform(texts[:2])).nnz == 0


def test_bad_or_unreachable_schedulers_are_named():
    with pytest.raises(InputError, match="ANNOTATOR_DASK_SCHEDULER must be 'local' or a scheduler address"):
        with dask_client("localhost"):
            pass
    with pytest.raises(AnnotatorError, match=r"cannot reach the Dask scheduler at tcp://127\.0\.0\.1:9 "):
        with dask_client("tcp://127.0.0.1:9", timeout=1):
            pass


def test_the_loop_fills_the_pool_cache_on_the_cluster(client, featurizer, texts, tmp_path, monkeypatch, caplog):
    """settings.dask_scheduler routes pool_cache through the cluster; the features are the same."""
    import annotator.model.dask_features as dask_features

    monkeypatch.setattr(dask_features, "MIN_DASK_ROWS", 100)  # 40,000 in production: a cluster start is seconds
    settings = Settings(home=tmp_path / "home", dask_scheduler=client.scheduler.address)
    with Store(settings.db_path) as store, caplog.at_level(logging.INFO, logger="annotator.model.dask_features"):
        store.add_clauses(Clause(clause_id(t), t) for t in texts)
        clauses = store.clauses()
        cache = pool_cache(settings, store, featurizer)
        assert f"featurizing {len(clauses)} new pool clauses on dask ({client.scheduler.address})" in caplog.messages
        assert len(cache) == len(clauses)
        assert (cache.matrix([c.id for c in clauses]) != featurizer.transform([c.text for c in clauses])).nnz == 0
        caplog.clear()
        pool_cache(settings, store, featurizer)  # nothing new: no cluster
        assert not [m for m in caplog.messages if "on dask" in m]
