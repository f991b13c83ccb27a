"""The project's featurizer and the feature cache of every clause, shared by retraining and ranking.

The latest model's featurizer is reused while the project has not grown much, so the pool's cached
features stay valid across retrains; past ``FEATURIZER_REFIT_GROWTH`` a new one is fitted
(unsupervised) on every clause of the store.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from ..errors import NotTrainedError
from .poolcache import PoolCache
from ..storage.registry import ModelRegistry
from ..settings import Settings
from ..storage.store import Store
from ..types import Clause

log = logging.getLogger(__name__)


FEATURIZER_REFIT_GROWTH = 1.25  # refit the featurizer once the project has 25% more clauses


@dataclass
class ProjectFeatures:
    """The featurizer the next model uses, how many clauses it was fitted on, and its pool cache."""

    featurizer: object
    n_fit: int
    cache: PoolCache


def project_features(
    settings: Settings, store: Store, registry: ModelRegistry, *, clauses: Sequence[Clause] | None = None
) -> ProjectFeatures:
    """The project's featurizer and its feature cache, completed with every clause of the store.

    The latest model's featurizer is reused while the project has not grown much, so the pool's
    cached features stay valid across retrains (and its fingerprint, saved with the version, is
    not recomputed); otherwise a new one is fitted (unsupervised) on every clause text in the store.
    """
    from .features import PolicyTextFeaturizer

    clauses = list(store.clauses() if clauses is None else clauses)
    n_clauses = len(clauses)
    try:
        info, model = registry.load("latest")
        n_fit = int(info.metrics.get("featurizer_clauses") or 0)
        if n_fit and n_clauses <= FEATURIZER_REFIT_GROWTH * n_fit:
            cache = pool_cache(
                settings,
                store,
                model.featurizer_,
                fingerprint=info.metrics.get("featurizer_fingerprint"),
                clauses=clauses,
            )
            return ProjectFeatures(model.featurizer_, n_fit, cache)
    except NotTrainedError:
        pass
    log.info("fitting the project featurizer on %d clauses", n_clauses)
    featurizer = PolicyTextFeaturizer().fit([c.text for c in clauses])
    return ProjectFeatures(featurizer, n_clauses, pool_cache(settings, store, featurizer, clauses=clauses))


def pool_cache(
    settings: Settings,
    store: Store,
    featurizer,
    *,
    fingerprint: str | None = None,
    clauses: Sequence[Clause] | None = None,
) -> PoolCache:
    """The feature cache of ``featurizer``, completed with every clause of the store.

    ``fingerprint``: the featurizer's, when already known (saved with its model version);
    ``clauses``: the store's clauses when already read (a cycle's snapshot). With
    ``settings.dask_scheduler`` set, many new clauses are featurized on Dask (same features).
    """
    cache = PoolCache(settings.cache_dir, featurizer, fingerprint=fingerprint)
    clauses = store.clauses() if clauses is None else clauses
    ids, texts = [c.id for c in clauses], [c.text for c in clauses]
    if settings.dask_scheduler:  # a big batch of new clauses is featurized over the Dask cluster
        from .dask_features import add_on_dask

        add_on_dask(cache, ids, texts, scheduler=settings.dask_scheduler)
    else:
        cache.add(ids, texts)
    return cache
