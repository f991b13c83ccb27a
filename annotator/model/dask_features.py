"""Featurize a large pool on Dask: the same fitted featurizer, run over partitions by many workers.

Tokenizing is what featurizing a pool costs (char n-grams plus jieba words: about 1,000 clauses/s
per core on the reference machine, see docs/deployment.md), and every clause is independent, so a
pool too big for one process is cut into partitions of :data:`PARTITION_ROWS` clauses that Dask
workers transform in parallel. The fitted featurizer (its vocabularies and idf weights) is sent to
every worker once (``client.scatter(..., broadcast=True)``), not with each partition. Results come
back in input order and are written to the :class:`~annotator.model.poolcache.PoolCache` one shard at a
time, so the cache is byte for byte the one ``PoolCache.add`` writes in one process, and the
client holds at most a shard of features plus the partitions in flight, never the whole pool.

``ANNOTATOR_DASK_SCHEDULER`` chooses the cluster: ``local`` starts a ``LocalCluster`` of
single-threaded worker processes on this machine for the call (tokenizing holds the GIL, so
threads would not help); ``tcp://host:port`` uses a running scheduler and its workers.
"""

from __future__ import annotations

import logging
import os
import sys
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager

import scipy.sparse as sp

from ..errors import AnnotatorError, InputError
from ..optional import require
from .poolcache import PoolCache

log = logging.getLogger(__name__)

PARTITION_ROWS = 20_000  # clauses per task: ~7 s of tokenizing, a few MB of text each way
MIN_DASK_ROWS = 2 * PARTITION_ROWS  # fewer new clauses than this featurize faster than a cluster starts


@contextmanager
def dask_client(scheduler: str, *, n_workers: int | None = None, timeout: float = 10.0) -> Iterator[object]:
    """A ``distributed.Client`` for ``scheduler`` (``local`` or ``tcp://host:port``), closed after.

    ``local`` starts a LocalCluster of ``n_workers`` (default: one per core) single-threaded worker
    processes on the loopback interface, and stops it on exit; a scheduler address must answer
    within ``timeout`` seconds.

    Raises
    ------
    InputError
        If ``scheduler`` is neither ``local`` nor a scheduler address.
    AnnotatorError
        If the scheduler at that address cannot be reached.
    MissingExtraError
        Without the 'scale' extra (dask[distributed]).
    """
    distributed = require("distributed", "Dask featurization (ANNOTATOR_DASK_SCHEDULER)")
    Client, LocalCluster = distributed.Client, distributed.LocalCluster

    if scheduler == "local":
        # The scheduler always serves HTTP; on a free loopback port, so a busy 8787 costs no warning.
        cluster = LocalCluster(
            n_workers=n_workers or os.cpu_count() or 1,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address="127.0.0.1:0",
        )
        try:
            with Client(cluster) as client:
                yield client
        finally:
            cluster.close()
        return
    if "://" not in scheduler:
        raise InputError(
            f"ANNOTATOR_DASK_SCHEDULER must be 'local' or a scheduler address such as "
            f"tcp://10.0.0.5:8786, got {scheduler!r}"
        )
    try:
        client = Client(scheduler, timeout=timeout)
    except (OSError, TimeoutError) as exc:
        raise AnnotatorError(
            f"cannot reach the Dask scheduler at {scheduler} (ANNOTATOR_DASK_SCHEDULER): "
            f"{exc}; start `dask scheduler` and workers there, or set it to 'local'"
        ) from None
    with client:
        yield client


def _transform(featurizer, texts: list[str]) -> sp.csr_matrix:
    """On a worker: the features of one partition."""
    return featurizer.transform(texts)


def transform_partitions(
    client, featurizer, texts: Iterable[str], *, partition_rows: int = PARTITION_ROWS, max_in_flight: int | None = None
) -> Iterator[sp.csr_matrix]:
    """``featurizer.transform`` of ``texts`` on the cluster, yielded partition by partition in order.

    ``texts`` is read lazily, ``partition_rows`` at a time; at most ``max_in_flight`` partitions
    (default: two per worker) are submitted and not yet yielded, which bounds this process's memory.
    """
    if partition_rows < 1:
        raise InputError(f"partition_rows must be a positive integer, got {partition_rows!r}")
    n_workers = max(1, len(client.scheduler_info().get("workers", {})))
    max_in_flight = max_in_flight or 2 * n_workers
    shared = client.scatter(featurizer, broadcast=True, hash=False)  # once per worker, not per task
    pending: deque = deque()
    batch: list[str] = []

    def submit() -> None:
        pending.append(client.submit(_transform, shared, list(batch), pure=False))
        batch.clear()

    for text in texts:
        batch.append(text)
        if len(batch) == partition_rows:
            submit()
            while len(pending) >= max_in_flight:
                yield pending.popleft().result()
    if batch:
        submit()
    while pending:
        yield pending.popleft().result()


def featurize_into_cache(
    cache: PoolCache,
    items: Iterable[tuple[str, str]],
    *,
    client,
    partition_rows: int = PARTITION_ROWS,
    total: int | None = None,
    progress: bool | None = None,
) -> int:
    """Featurize the ``(clause id, text)`` pairs not cached yet on the cluster and cache them.

    ``items`` may be a generator: it is consumed one partition at a time. Clauses already in the
    cache are skipped, as ``PoolCache.add`` does; rows are written in input order, one shard of
    ``cache.shard_rows`` at a time. ``total`` (the number of items, if known) sizes the progress
    bar, shown on stderr when it is a terminal (``progress`` True/False forces it on/off).
    Returns how many clauses were added.

    Raises
    ------
    InputError
        If an id repeats.
    """
    from tqdm import tqdm

    seen: set[str] = set()
    new_ids: list[str] = []

    def new_texts() -> Iterator[str]:
        for clause_id, text in items:
            clause_id = str(clause_id)
            if clause_id in seen:
                raise InputError(f"ids must be unique; {clause_id} repeats")
            seen.add(clause_id)
            if clause_id in cache:
                bar.update(1)
                continue
            new_ids.append(clause_id)
            yield text

    added, blocks, rows = 0, [], 0
    with tqdm(
        total=total,
        unit="clause",
        file=sys.stderr,
        desc="featurizing on dask",
        disable=None if progress is None else not progress,
    ) as bar:
        for X in transform_partitions(client, cache.featurizer, new_texts(), partition_rows=partition_rows):
            blocks.append(X)
            rows += X.shape[0]
            bar.update(X.shape[0])
            while rows >= cache.shard_rows:
                added += _write(cache, new_ids, blocks, cache.shard_rows)
                rows = sum(b.shape[0] for b in blocks)
        if rows:
            added += _write(cache, new_ids, blocks, rows)
    log.info("feature cache %s: %d clauses added on dask, %d in total", cache.directory, added, len(cache))
    return added


def _write(cache: PoolCache, new_ids: list[str], blocks: list[sp.csr_matrix], n: int) -> int:
    """Write the first ``n`` buffered rows as one shard; keep the rest buffered.

    Partitions that add up to the shard exactly (the defaults: 5 x 20,000) are stacked once and
    written without further copies.
    """
    X = sp.vstack(blocks, format="csr") if len(blocks) > 1 else blocks[0]
    blocks.clear()
    if X.shape[0] > n:
        blocks.append(X[n:])
        X = X[:n]
    ids = new_ids[:n]
    del new_ids[:n]
    return cache.add_features(ids, X)


def add_on_dask(
    cache: PoolCache,
    ids: Sequence[str],
    texts: Sequence[str],
    *,
    scheduler: str,
    min_rows: int | None = None,
    n_workers: int | None = None,
) -> int:
    """``cache.add(ids, texts)``, on the Dask cluster ``scheduler`` when there is enough to do.

    Fewer than ``min_rows`` (default :data:`MIN_DASK_ROWS`) clauses not cached yet -- a live cycle
    adds a few or none -- are featurized in this process, as without Dask: starting a cluster
    would cost more than it saves.
    """
    if len(ids) != len(texts):
        raise InputError(f"{len(ids)} ids but {len(texts)} texts")
    n_new = sum(str(i) not in cache for i in ids)
    if n_new < (MIN_DASK_ROWS if min_rows is None else min_rows):
        return cache.add(ids, texts)
    log.info("featurizing %d new pool clauses on dask (%s)", n_new, scheduler)
    with dask_client(scheduler, n_workers=n_workers) as client:
        return featurize_into_cache(cache, zip(ids, texts), client=client, total=len(ids))
