"""The first batch, before any model exists: clauses matching each label's keywords (derived
from the label names, or given), then k-means representatives of the pool."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

import numpy as np
from sklearn.cluster import KMeans
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.preprocessing import normalize as l2_normalize
from sklearn.random_projection import SparseRandomProjection

from ..text.near_duplicates import similar_pairs
from ..text.normalize import match_key
from .pool_scores import check_pool


# Cold start -------------------------------------------------------------------------------------
_LABEL_SPLIT = re.compile("[和与及、/]")
_GENERIC_SUFFIXES = (
    "产业",
    "建设",
    "机构",
    "队伍",
    "保护",
    "支持",
    "激励",
    "服务",
    "计划",
    "基地",
    "平台",
    "转化",
    "监管",
)


def label_keywords(labels: Sequence[str]) -> dict[str, tuple[str, ...]]:
    """Keywords derived from each label name: the name, its parts around 和/与/及, and each part
    without a generic suffix (产业, 建设, 机构 ...) when at least two characters remain.

    Examples
    --------
    >>> label_keywords(["集成电路产业", "教育和科普"])["教育和科普"]
    ('教育和科普', '教育', '科普')
    """
    out = {}
    for label in labels:
        words = [label]
        for part in _LABEL_SPLIT.split(label):
            words.append(part)
            for suffix in _GENERIC_SUFFIXES:
                if part.endswith(suffix) and len(part) - len(suffix) >= 2:
                    words.append(part[: -len(suffix)])
        out[label] = tuple(dict.fromkeys(w for w in words if len(w) >= 2))
    return out


def cold_start_batch(
    texts: Sequence[str],
    labels: Sequence[str],
    n: int,
    *,
    rng: np.random.Generator,
    keywords: Mapping[str, Sequence[str]] | None = None,
    X=None,
    per_label: int = 1,
    max_sample: int = 20000,
) -> list[int]:
    """The first batch, before any model exists: every label covered, the rest diverse.

    1. For each label (fewest keyword matches first, round-robin, ``per_label`` rounds), the
       clause matching its longest keyword, shortest clause first among equals (short clauses tend
       to carry one label), skipping near-duplicates of clauses already picked.
    2. The remaining slots: the clause nearest to each k-means centroid of the pool's features
       (``X``, or character 1-2-gram TF-IDF of a sample of at most ``max_sample`` clauses), so the
       first model sees the pool's main topics, not random noise.

    Parameters
    ----------
    texts : the unlabeled pool.
    labels : the label set.
    n : batch size.
    rng : the only source of randomness.
    keywords : label -> keywords; labels missing from it use :func:`label_keywords`.
    X : optional feature rows of ``texts`` (the cached pool features).

    Returns
    -------
    list[int]
        ``n`` distinct indices into ``texts``.
    """
    check_pool(len(texts), n)
    derived = label_keywords(labels)
    keywords = {label: tuple(keywords.get(label) or derived[label]) if keywords else derived[label] for label in labels}
    keys = [match_key(t) for t in texts]
    picked: list[int] = []
    seen_keys: set[str] = set()
    matches = {}
    for label in labels:
        hits = []
        for i, text in enumerate(texts):
            best = max((len(w) for w in keywords[label] if w in text), default=0)
            if best:
                hits.append((-best, len(text), rng.random(), i))
        matches[label] = [i for *_, i in sorted(hits)]
    order = sorted(labels, key=lambda label: len(matches[label]))
    for _ in range(per_label):
        for label in order:
            if len(picked) == n:
                break
            for i in matches[label]:
                if keys[i] not in seen_keys and not _near_duplicate(keys[i], [keys[j] for j in picked]):
                    picked.append(i)
                    seen_keys.add(keys[i])
                    break
    if len(picked) < n:
        picked += _kmeans_representatives(
            texts, keys, n - len(picked), picked, seen_keys, rng=rng, X=X, max_sample=max_sample
        )
    return picked[:n]


def _near_duplicate(key: str, others: list[str]) -> bool:
    if not others:
        return False
    rows, cols, _, _ = similar_pairs([key] + others)
    return bool(((rows == 0) | (cols == 0)).any())


def _kmeans_representatives(
    texts: Sequence[str],
    keys: list[str],
    k: int,
    picked: list[int],
    seen_keys: set[str],
    *,
    rng: np.random.Generator,
    X=None,
    max_sample: int = 20000,
) -> list[int]:
    """The clause nearest each of ``k`` k-means centroids of (a sample of) the pool, unpicked ones."""
    free = np.array([i for i in range(len(texts)) if keys[i] not in seen_keys and i not in set(picked)])
    if len(free) > max_sample:
        free = np.sort(rng.choice(free, max_sample, replace=False))
    if len(free) <= k:
        return list(free)
    if X is None:
        F = TfidfVectorizer(
            analyzer="char", ngram_range=(1, 2), sublinear_tf=True, min_df=2, dtype=np.float32
        ).fit_transform([texts[i] for i in free])
    else:
        F = X[free]
    # k-means on a 256-dimension random projection: cosine geometry kept, 100x faster than on
    # >100k sparse TF-IDF columns.
    seed = int(rng.integers(2**31 - 1))
    F = l2_normalize(F)
    if F.shape[1] > 256:
        F = SparseRandomProjection(256, dense_output=True, random_state=seed).fit_transform(F)
    km = KMeans(n_clusters=k, n_init=1, random_state=seed).fit(F)
    dist = km.transform(F)
    out: list[int] = []
    used = set()
    for c in np.argsort(np.bincount(km.labels_, minlength=k))[::-1]:  # biggest topics first
        for a in np.argsort(dist[:, c]):
            if a not in used and keys[free[a]] not in seen_keys:
                used.add(a)
                seen_keys.add(keys[free[a]])
                out.append(int(free[a]))
                break
    return out
