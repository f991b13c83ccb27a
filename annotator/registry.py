"""ModelRegistry: saves model versions atomically next to a row in the store, loads them cheaply.

A version's file is written to a temporary name and moved into place with ``os.replace`` before
its row is committed, so a crash mid-save leaves at most an orphan temp file (ignored and cleaned
up), never a row pointing to half a model. Loaded models are cached on the instance by version.
"""
from __future__ import annotations

import logging
import os
import pickle
import tempfile
import threading
from pathlib import Path
from typing import Any

from .errors import InputError, NotFoundError, NotTrainedError, StoreError
from .store import Store
from .types import ModelVersion

log = logging.getLogger(__name__)


class ModelRegistry:
    """Versioned models under ``model_dir`` with their metadata rows in ``store``."""

    def __init__(self, model_dir: str | Path, store: Store) -> None:
        self.model_dir = Path(model_dir)
        self.store = store
        self._cache: dict[int, Any] = {}
        self._lock = threading.Lock()

    def using(self, store: Store) -> ModelRegistry:
        """The same registry (and model cache) reading its rows through another Store."""
        view = ModelRegistry(self.model_dir, store)
        view._cache, view._lock = self._cache, self._lock
        return view

    def save(self, model: Any, *, n_train: int, metrics: dict | None = None) -> ModelVersion:
        """Persist ``model`` as the next version and return its ModelVersion."""
        self.model_dir.mkdir(parents=True, exist_ok=True)
        self._remove_orphans()
        fd, tmp = tempfile.mkstemp(prefix=".model-", suffix=".tmp", dir=self.model_dir)
        try:
            with os.fdopen(fd, "wb") as fh:
                pickle.dump(model, fh, protocol=pickle.HIGHEST_PROTOCOL)
                fh.flush()
                os.fsync(fh.fileno())
            with self.store.transaction():
                latest = self.store.latest_model_version()
                final = self.model_dir / f"model-{(latest.version if latest else 0) + 1:05d}.pkl"
                os.replace(tmp, final)
                version = self.store.add_model_version(str(final.resolve()), n_train, metrics or {})
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        with self._lock:
            self._cache[version.version] = model
        log.info("saved model version %d (%d training examples)", version.version, n_train)
        return version

    def versions(self) -> list[ModelVersion]:
        return self.store.model_versions()

    def latest(self) -> ModelVersion:
        """The newest version whose file exists; NotTrainedError if there is none."""
        for version in reversed(self.store.model_versions()):
            if Path(version.path).is_file():
                return version
            log.warning("model version %d: file %s is missing; skipping it", version.version, version.path)
        raise NotTrainedError("no model has been trained yet; run `annotator train` or label more clauses")

    def load(self, version: int | str = "latest") -> tuple[ModelVersion, Any]:
        """Return ``(ModelVersion, model)`` for a version number or ``"latest"``."""
        if version == "latest":
            info = self.latest()
        else:
            try:
                number = int(version)
            except (TypeError, ValueError):
                raise InputError(f"model version must be a number or 'latest', got {version!r}") from None
            matches = [v for v in self.store.model_versions() if v.version == number]
            if not matches:
                raise NotFoundError(f"no model version {version}; known: "
                                    f"{', '.join(str(v.version) for v in self.versions()) or 'none'}")
            info = matches[0]
        with self._lock:
            if info.version not in self._cache:
                try:
                    with open(info.path, "rb") as fh:
                        self._cache[info.version] = pickle.load(fh)
                except (OSError, pickle.UnpicklingError, EOFError) as exc:
                    raise StoreError(f"model version {info.version} at {info.path} cannot be loaded: {exc}") from exc
            return info, self._cache[info.version]

    def _remove_orphans(self) -> None:
        for orphan in self.model_dir.glob(".model-*.tmp"):
            orphan.unlink(missing_ok=True)
