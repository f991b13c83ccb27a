"""Near-duplicate detection: exact character-shingle overlap between clauses, as a sparse product.

Two clauses are near-duplicates when their character 3-shingle sets (over the match key, see
:func:`annotator.text.normalize.match_key`) have Jaccard similarity >= 0.5, or when 80% of the shorter
one's shingles (at least 10) lie inside the longer one: a clause and its truncated copy, or a
sentence and the paragraph it was cut from. Cleaning merges or groups them, splits and folds keep
a group together, and batch selection never puts two in one batch.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import sparse
from scipy.sparse.csgraph import connected_components

from .normalize import match_key

SHINGLE_SIZE = 3
OVERLAP_JACCARD = 0.5
OVERLAP_CONTAINMENT = 0.8
OVERLAP_MIN_SHINGLES = 10  # containment of a very short clause in a paragraph says nothing


def shingle_matrix(keys: Sequence[str], k: int = SHINGLE_SIZE) -> sparse.csr_matrix:
    """Binary (n_texts, n_shingles) matrix of character ``k``-shingles; a shorter text is one shingle.

    Vectorized for ``k <= 3``: a shingle is its ``k`` code points packed into one 63-bit integer
    (21 bits each), exact, with no hashing; the select_batch of every retrain shingles thousands
    of labeled clauses, which a loop over Python sets made cost more than the query itself.
    """
    if k > 3 or not keys:
        return _shingle_matrix_loop(keys, k)
    n = len(keys)
    lengths = np.fromiter((len(key) for key in keys), dtype=np.int64, count=n)
    codes = np.frombuffer("".join(keys).encode("utf-32-le"), dtype=np.uint32).astype(np.uint64)
    owner = np.repeat(np.arange(n), lengths)  # the key each code point belongs to
    windows = max(0, len(codes) - k + 1)
    values: np.ndarray = np.zeros(windows, dtype=np.uint64)
    for j in range(k):
        values = (values << np.uint64(21)) | codes[j : j + windows]
    inside = owner[:windows] == owner[k - 1 : k - 1 + windows]  # starts and ends in one key
    rows, values = owner[:windows][inside], values[inside]
    short = np.flatnonzero(lengths < k)  # a key shorter than k is one shingle: its codes, padded
    if len(short):
        pad = (1 << 21) - 1  # beyond the last code point: no text has it
        extra = []
        for i in short:
            value = 0
            for code in [ord(char) for char in keys[i]] + [pad] * (k - len(keys[i])):
                value = (value << 21) | code
            extra.append(value)
        rows = np.concatenate([rows, short])
        values = np.concatenate([values, np.array(extra, dtype=np.uint64)])
    vocabulary, columns = np.unique(values, return_inverse=True)
    pairs = np.unique(rows * len(vocabulary) + columns.ravel())  # each shingle once per key, by row
    rows, columns = np.divmod(pairs, len(vocabulary))
    indptr = np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=n))])
    return sparse.csr_matrix((np.ones(len(pairs), dtype=np.int32), columns, indptr), shape=(n, max(1, len(vocabulary))))


def _shingle_matrix_loop(keys: Sequence[str], k: int) -> sparse.csr_matrix:
    vocabulary: dict[str, int] = {}
    indices: list[int] = []
    indptr = [0]
    for key in keys:
        shingles = {key[i : i + k] for i in range(max(1, len(key) - k + 1))}
        indices.extend(vocabulary.setdefault(s, len(vocabulary)) for s in shingles)
        indptr.append(len(indices))
    data = np.ones(len(indices), dtype=np.int32)
    return sparse.csr_matrix((data, indices, indptr), shape=(len(keys), max(1, len(vocabulary))))


def similar_pairs(
    keys: Sequence[str],
    *,
    k: int = SHINGLE_SIZE,
    min_jaccard: float = OVERLAP_JACCARD,
    min_containment: float = OVERLAP_CONTAINMENT,
    min_shingles: int = OVERLAP_MIN_SHINGLES,
    chunk_size: int = 1000,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Exact shingle-Jaccard and containment for every pair of texts sharing a shingle.

    Computed block by block as a sparse product (exact, no MinHash false negatives); memory stays at
    ``chunk_size`` rows of the product.

    Returns
    -------
    rows, cols, jaccard, containment : ndarray
        Pairs ``rows[i] < cols[i]`` with ``jaccard >= min_jaccard``, or ``containment >=
        min_containment`` when the smaller text has at least ``min_shingles`` shingles.
    """
    X = shingle_matrix(keys, k)
    sizes = np.asarray(X.sum(axis=1)).ravel()
    XT = X.T.tocsr()
    found: list[tuple[np.ndarray, ...]] = []
    for start in range(0, X.shape[0], chunk_size):
        block = (X[start : start + chunk_size] @ XT).tocoo()
        rows, cols, shared = block.row + start, block.col, block.data.astype(float)
        upper = rows < cols
        rows, cols, shared = rows[upper], cols[upper], shared[upper]
        jaccard = shared / (sizes[rows] + sizes[cols] - shared)
        smaller = np.minimum(sizes[rows], sizes[cols])
        containment = shared / smaller
        keep = (jaccard >= min_jaccard) | ((containment >= min_containment) & (smaller >= min_shingles))
        found.append((rows[keep], cols[keep], jaccard[keep], containment[keep]))
    if not found:
        empty = np.zeros(0)
        return empty.astype(int), empty.astype(int), empty, empty
    return tuple(np.concatenate(parts) for parts in zip(*found))  # type: ignore[return-value]


def connected_groups(n: int, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """Component id per node of the undirected graph with edges ``rows[i]``--``cols[i]``."""
    graph = sparse.coo_matrix((np.ones(len(rows)), (rows, cols)), shape=(n, n))
    return connected_components(graph, directed=False)[1]


def near_duplicate_groups(texts: Sequence[str]) -> np.ndarray:
    """A group id per text; near-duplicates (see :func:`similar_pairs`) share one."""
    rows, cols, _, _ = similar_pairs([match_key(t) for t in texts])
    return connected_groups(len(texts), rows, cols)
