"""Features of every pool clause, computed once and cached on disk; re-scoring is a sparse product.

Tokenizing is the slow part of scoring a pool (char + jieba word TF-IDF of 1M clauses takes
minutes; the classifier's product takes seconds). So each clause is featurized once, with the
fitted featurizer, when it enters the pool, and stored under the project's cache directory::

    <cache_dir>/pool/<fingerprint>/meta.json              featurizer fingerprint, shards, sizes
    <cache_dir>/pool/<fingerprint>/shard-000000.ids.npy   clause ids of the shard's rows
    <cache_dir>/pool/<fingerprint>/shard-000000.data.npy  CSR arrays (float32 / int32 / int64),
    ...                        .indices.npy .indptr.npy   memory-mapped when read

The fingerprint is the SHA-1 of the featurizer's fitted state (vocabulary, idf weights, parameters,
scikit-learn version): a refitted or changed featurizer gets a new directory, so stale features are
never used; :meth:`PoolCache.clear_stale` deletes the old ones. For the cache to survive retrains,
fit the featurizer once on the pool (unsupervised) and train the classifier with ``fit_features``.

Re-scoring after a retrain (:meth:`PoolCache.score`) reads the shards memory-mapped, chunk by
chunk, so resident memory stays at one chunk plus the (n, n_labels) float32 result.
One process writes (ingestion); any number read.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from ..errors import InputError, NotFoundError

log = logging.getLogger(__name__)

SHARD_ROWS = 100_000
CHUNK_ROWS = 50_000


def featurizer_fingerprint(featurizer) -> str:
    """SHA-1 of the fitted featurizer's state: its parameters, vocabularies and weights.

    Computed from each object's pickled state (``__getstate__``, so lazily built helpers such as
    the jieba tokenizer are left out) with dict keys sorted: equal for a featurizer and its
    pickled copy, different as soon as a vocabulary, a weight or a parameter differs.
    """
    digest = hashlib.sha1()
    _feed(digest, featurizer)
    return digest.hexdigest()


def _feed(digest, obj) -> None:
    """Add a canonical encoding of ``obj`` to ``digest``."""
    if obj is None or isinstance(obj, (bool, int, float, complex, str, bytes)):
        digest.update(f"{type(obj).__name__}:{obj!r};".encode())
    elif isinstance(obj, np.generic):
        _feed(digest, obj.item())
    elif isinstance(obj, np.ndarray):
        digest.update(f"ndarray:{obj.dtype}:{obj.shape};".encode())
        if obj.dtype.hasobject:
            for item in obj.ravel():
                _feed(digest, item)
        else:
            digest.update(np.ascontiguousarray(obj).tobytes())
    elif sp.issparse(obj):
        csr = sp.csr_matrix(obj)
        digest.update(f"sparse:{csr.shape};".encode())
        for part in (csr.data, csr.indices, csr.indptr):
            _feed(digest, part)
    elif isinstance(obj, dict):
        digest.update(f"dict:{len(obj)};".encode())
        for key in sorted(obj, key=repr):
            _feed(digest, key)
            _feed(digest, obj[key])
    elif isinstance(obj, (list, tuple)):
        digest.update(f"{type(obj).__name__}:{len(obj)};".encode())
        for item in obj:
            _feed(digest, item)
    elif isinstance(obj, (set, frozenset)):
        _feed(digest, sorted(obj, key=repr))
    elif isinstance(obj, (type, np.dtype)) or callable(obj) and not hasattr(obj, "__dict__"):
        digest.update(f"ref:{getattr(obj, '__qualname__', obj)!r};".encode())
    else:
        digest.update(f"object:{type(obj).__module__}.{type(obj).__qualname__};".encode())
        _feed(digest, obj.__getstate__())


def score_features(model, X, *, chunk_rows: int = CHUNK_ROWS, dtype=np.float32) -> np.ndarray:
    """``model.predict_proba_features`` over ``X`` in row chunks, as a ``dtype`` array."""
    out = np.empty((X.shape[0], len(model.labels_)), dtype=dtype)
    for start in range(0, X.shape[0], chunk_rows):
        out[start : start + chunk_rows] = model.predict_proba_features(X[start : start + chunk_rows])
    return out


class PoolCache:
    """The cached features of pool clauses for one fitted featurizer.

    Parameters
    ----------
    cache_dir : the project's cache directory (``Settings.cache_dir``).
    featurizer : the fitted featurizer whose features are cached (e.g. ``model.featurizer_``).
    shard_rows : rows per shard file written by :meth:`add`.
    fingerprint : the featurizer's :func:`featurizer_fingerprint` when the caller already knows it
        (it is saved with each model version): hashing a large vocabulary takes about a second.

    Examples
    --------
    >>> cache = PoolCache(settings.cache_dir, featurizer)            # doctest: +SKIP
    >>> cache.add([c.id for c in clauses], [c.text for c in clauses])  # doctest: +SKIP
    >>> ids, proba = cache.score(model)                              # doctest: +SKIP
    """

    def __init__(
        self, cache_dir: str | Path, featurizer, *, shard_rows: int = SHARD_ROWS, fingerprint: str | None = None
    ) -> None:
        self.featurizer = featurizer
        self.fingerprint = fingerprint or featurizer_fingerprint(featurizer)
        self.root = Path(cache_dir) / "pool"
        self.directory = self.root / self.fingerprint[:16]
        self.shard_rows = shard_rows
        self._meta: dict | None = None
        self._index: dict[str, int] | None = None

    # Reading ----------------------------------------------------------------------------------
    @property
    def meta(self) -> dict:
        if self._meta is None:
            path = self.directory / "meta.json"
            if path.exists():
                self._meta = json.loads(path.read_text(encoding="utf-8"))
                if self._meta.get("fingerprint") != self.fingerprint:
                    raise InputError(f"{path} belongs to another featurizer; delete {self.directory}")
            else:
                self._meta = {"fingerprint": self.fingerprint, "n_features": None, "shards": []}
        return self._meta

    def __len__(self) -> int:
        return sum(s["rows"] for s in self.meta["shards"])

    def __contains__(self, clause_id: object) -> bool:
        """Whether the clause's features are cached."""
        return str(clause_id) in self._positions()

    def ids(self) -> np.ndarray:
        """Every cached clause id, in cache order."""
        parts = [np.load(self._file(s, "ids"), allow_pickle=False) for s in self.meta["shards"]]
        return np.concatenate(parts) if parts else np.array([], dtype="<U1")

    def _positions(self) -> dict[str, int]:
        if self._index is None:
            self._index = {str(clause_id): i for i, clause_id in enumerate(self.ids())}
        return self._index

    def _file(self, shard: dict, part: str) -> Path:
        return self.directory / f"{shard['name']}.{part}.npy"

    def _shard_matrix(self, shard: dict) -> sp.csr_matrix:
        """A shard as a CSR matrix over memory-mapped arrays (nothing read until used)."""
        data, indices, indptr = (np.load(self._file(shard, p), mmap_mode="r") for p in ("data", "indices", "indptr"))
        return sp.csr_matrix((data, indices, indptr), shape=(shard["rows"], self.meta["n_features"]), copy=False)

    def iter_chunks(self, chunk_rows: int = CHUNK_ROWS) -> Iterator[tuple[slice, sp.csr_matrix]]:
        """``(rows, X)`` for consecutive chunks of the cache, ``rows`` the slice in cache order."""
        offset = 0
        for shard in self.meta["shards"]:
            data, indices, indptr = (
                np.load(self._file(shard, p), mmap_mode="r") for p in ("data", "indices", "indptr")
            )
            for start in range(0, shard["rows"], chunk_rows):
                stop = min(start + chunk_rows, shard["rows"])
                lo, hi = int(indptr[start]), int(indptr[stop])
                X = sp.csr_matrix(
                    (np.asarray(data[lo:hi]), np.asarray(indices[lo:hi]), np.asarray(indptr[start : stop + 1]) - lo),
                    shape=(stop - start, self.meta["n_features"]),
                )
                yield slice(offset + start, offset + stop), X
            offset += shard["rows"]

    def matrix(self, ids: Sequence[str] | None = None) -> sp.csr_matrix:
        """The features of ``ids`` (all cached rows if None), in that order, in memory.

        Only the requested rows are read from the memory-mapped shards.

        Raises
        ------
        NotFoundError
            If an id is not cached; the message names it and says to call ``add``.
        """
        n_features = self.meta["n_features"] or 0
        shards = self.meta["shards"]
        if ids is None:
            parts = [self._shard_matrix(s).copy() for s in shards]
            return sp.vstack(parts, format="csr") if parts else sp.csr_matrix((0, n_features), dtype=np.float32)
        positions = self._positions()
        missing = [i for i in ids if i not in positions]
        if missing:
            raise NotFoundError(
                f"{len(missing)} clause(s) not in the feature cache (first: {missing[0]}); add them with PoolCache.add"
            )
        if not len(ids):
            return sp.csr_matrix((0, n_features), dtype=np.float32)
        rows = np.fromiter((positions[i] for i in ids), dtype=np.int64, count=len(ids))
        starts = np.cumsum([0] + [s["rows"] for s in shards])
        shard_of = np.searchsorted(starts, rows, side="right") - 1
        parts, order = [], []
        for k in np.unique(shard_of):
            mine = np.flatnonzero(shard_of == k)
            parts.append(self._shard_matrix(shards[k])[rows[mine] - starts[k]])
            order.append(mine)
        X = sp.vstack(parts, format="csr") if len(parts) > 1 else sp.csr_matrix(parts[0])
        inverse = np.empty(len(rows), dtype=np.int64)
        inverse[np.concatenate(order)] = np.arange(len(rows))
        return X[inverse]

    def score(
        self, model, ids: Sequence[str] | None = None, *, chunk_rows: int = CHUNK_ROWS
    ) -> tuple[np.ndarray, np.ndarray]:
        """Probabilities of every cached clause (or of ``ids``) from a retrained ``model``.

        Returns ``(ids, proba)``: the ids scored and a float32 (n, n_labels) array, row-aligned.
        With ``ids`` None the cache is streamed chunk by chunk from the memory-mapped shards.
        """
        if ids is not None:
            X = self.matrix(ids)
            return np.asarray(ids), score_features(model, X, chunk_rows=chunk_rows)
        all_ids = self.ids()
        out = np.empty((len(all_ids), len(model.labels_)), dtype=np.float32)
        for rows, X in self.iter_chunks(chunk_rows):
            out[rows] = model.predict_proba_features(X)
        return all_ids, out

    # Writing ----------------------------------------------------------------------------------
    def add(self, ids: Sequence[str], texts: Sequence[str], *, batch_rows: int = 20_000) -> int:
        """Featurize and cache the clauses not cached yet; return how many were added.

        Raises
        ------
        InputError
            If ``ids`` and ``texts`` differ in length or ``ids`` repeats an id.
        """
        if len(ids) != len(texts):
            raise InputError(f"{len(ids)} ids but {len(texts)} texts")
        if len(set(ids)) != len(ids):
            raise InputError("ids must be unique")
        known = self._positions()
        new = [(str(i), t) for i, t in zip(ids, texts) if str(i) not in known]
        if not new:
            return 0
        self.directory.mkdir(parents=True, exist_ok=True)
        for start in range(0, len(new), self.shard_rows):
            part = new[start : start + self.shard_rows]
            blocks = [
                self.featurizer.transform([t for _, t in part[b : b + batch_rows]])
                for b in range(0, len(part), batch_rows)
            ]
            self._write_shard([i for i, _ in part], sp.vstack(blocks, format="csr"))
        log.info("feature cache %s: %d clauses added, %d in total", self.directory, len(new), len(self))
        return len(new)

    def add_features(self, ids: Sequence[str], X: sp.spmatrix) -> int:
        """Cache features computed elsewhere by this same featurizer (e.g. in parallel workers)."""
        if len(ids) != X.shape[0]:
            raise InputError(f"{len(ids)} ids but {X.shape[0]} feature rows")
        known = self._positions()
        keep = [k for k, i in enumerate(ids) if str(i) not in known]
        if len(set(ids)) != len(ids):
            raise InputError("ids must be unique")
        if not keep:
            return 0
        self.directory.mkdir(parents=True, exist_ok=True)
        X = sp.csr_matrix(X)
        if len(keep) < X.shape[0]:
            X = X[keep]
        for start in range(0, len(keep), self.shard_rows):
            # Copies only when needed: a shard of features is hundreds of MB at pool scale.
            part = X if len(keep) <= self.shard_rows else X[start : start + self.shard_rows]
            self._write_shard([str(ids[k]) for k in keep[start : start + self.shard_rows]], part)
        return len(keep)

    def _write_shard(self, ids: list[str], X: sp.csr_matrix) -> None:
        meta = self.meta
        if meta["n_features"] is None:
            meta["n_features"] = int(X.shape[1])
        elif meta["n_features"] != X.shape[1]:
            raise InputError(f"featurizer produced {X.shape[1]} features, cache has {meta['n_features']}")
        shard = {"name": f"shard-{len(meta['shards']):06d}", "rows": len(ids), "nnz": int(X.nnz)}
        if not X.has_sorted_indices:
            X = X.sorted_indices()  # a sorted copy: the caller's matrix is left as it was
        arrays = {
            "ids": np.asarray(ids),
            "data": X.data.astype(np.float32, copy=False),
            "indices": X.indices.astype(np.int32, copy=False),
            "indptr": X.indptr.astype(np.int64, copy=False),
        }
        written: list[Path] = []
        try:
            for part, array in arrays.items():
                tmp = self.directory / f".{shard['name']}.{part}.tmp.npy"
                written.append(tmp)
                np.save(tmp, array, allow_pickle=False)
                written.append(self._file(shard, part))
                os.replace(tmp, self._file(shard, part))
            tmp = self.directory / ".meta.json.tmp"
            written.append(tmp)
            tmp.write_text(json.dumps(dict(meta, shards=[*meta["shards"], shard])), encoding="utf-8")
            os.replace(tmp, self.directory / "meta.json")  # the shard exists only once meta lists it
        except BaseException as exc:
            # A full disk (ENOSPC) or an interrupt mid-shard: remove the partial files so they take
            # no space and are never read, then let the real error through (a failed training run
            # records it as it is, "No space left on device").
            for path in written:
                try:
                    path.unlink(missing_ok=True)
                except OSError as cleanup:  # the original error matters more; say what was left
                    log.warning("could not remove the partial cache file %s: %s", path, cleanup)
            if isinstance(exc, OSError):
                log.error(
                    "feature cache %s: writing %s failed (%s); its partial files were removed",
                    self.directory,
                    shard["name"],
                    exc.strerror or exc,
                )
            raise
        meta["shards"].append(shard)
        positions = self._positions()
        start = len(positions)
        positions.update({clause_id: start + k for k, clause_id in enumerate(ids)})

    def clear_stale(self) -> list[Path]:
        """Delete the caches of other featurizers; return the directories removed."""
        removed = []
        if self.root.exists():
            for path in self.root.iterdir():
                if path.is_dir() and path != self.directory:
                    shutil.rmtree(path)
                    removed.append(path)
        return removed

    def disk_bytes(self) -> int:
        """Bytes the cache's files take on disk."""
        return sum(p.stat().st_size for p in self.directory.glob("*.npy")) if self.directory.exists() else 0
