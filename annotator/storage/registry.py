"""ModelRegistry: saves model versions atomically next to a row in the store, loads them safely.

A version's file is written to a temporary name and moved into place with ``os.replace`` before
its row is committed, so a crash mid-save leaves at most an orphan temp file (ignored and cleaned
up), never a row pointing to half a model. Loaded models are cached on the instance by version.

Integrity: a row stores its file's name relative to the model directory (a moved, restored or
copied home serves its own files) and the file's SHA-256 in ``metrics["sha256"]``. A file is
unpickled only after its bytes match that checksum: unpickling runs code, so a checksum kept in
the store (not beside the file) is what keeps a truncated, corrupted or crafted file from being
loaded. A version that fails (missing file, wrong checksum, unpicklable) is skipped by
``load("latest")``, which falls back to the newest intact version, and is listed by
:meth:`ModelRegistry.broken_versions`. Rows written before checksums existed (absolute paths,
no ``sha256``) still load, with a warning, when their file is where they say or in the model
directory.

Retention: :meth:`ModelRegistry.prune` deletes the files of old versions and keeps their rows,
so the learning curve keeps every version.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import logging
import os
import pickle
import tempfile
import threading
from collections.abc import Collection
from datetime import datetime, UTC
from pathlib import Path
from typing import Any

from ..errors import InputError, NotFoundError, NotTrainedError, StoreError
from ..lifecycle import check_parent_alive
from .store import Store
from ..types import ModelVersion

log = logging.getLogger(__name__)


# Where the modules of annotator 0.1's flat layout live now (issue 17). A pickle names each class by
# its module, so a model saved before the move (``annotator.model.PolicyClassifier``) is read from
# the new place; a name moves here when the module that defines a pickled class moves.
MOVED_MODULES: dict[str, str] = {
    "annotator.normalize": "annotator.text.normalize",
    "annotator.segment": "annotator.text.segment",
    "annotator.near_duplicates": "annotator.text.near_duplicates",
    "annotator.features": "annotator.model.features",
    "annotator.model": "annotator.model.classifier",
    "annotator.calibration": "annotator.model.calibration",
    "annotator.loo": "annotator.model.loo",
    "annotator.training": "annotator.model.training",
    "annotator.poolcache": "annotator.model.poolcache",
    "annotator.project_features": "annotator.model.project_features",
    "annotator.dask_features": "annotator.model.dask_features",
}


class _Unpickler(pickle.Unpickler):
    """pickle.Unpickler that finds classes saved under a module's old path (MOVED_MODULES)."""

    def find_class(self, module: str, name: str) -> Any:
        return super().find_class(MOVED_MODULES.get(module, module), name)


def loads(data: bytes) -> Any:
    """Unpickle a saved model, reading the pre-move module paths of MOVED_MODULES."""
    return _Unpickler(io.BytesIO(data)).load()


CHECKSUM_KEY = "sha256"  # metrics key of a version's file checksum (hex SHA-256)
PRUNED_KEY = "pruned_at"  # metrics key set when prune() deleted the version's file (UTC ISO time)
_READ_CHUNK = 1 << 20


class ModelRegistry:
    """Versioned models under ``model_dir`` with their metadata rows in ``store``."""

    def __init__(self, model_dir: str | Path, store: Store) -> None:
        self.model_dir = Path(model_dir)
        self.store = store
        self._cache: dict[int, Any] = {}
        self._broken: dict[int, tuple[tuple | None, str]] = {}  # version -> (file signature, reason)
        self._verified: dict[int, tuple] = {}  # version -> signature of the file state that matched
        self._lock = threading.Lock()

    def using(self, store: Store) -> ModelRegistry:
        """The same registry (and model cache) reading its rows through another Store."""
        view = ModelRegistry(self.model_dir, store)
        view._cache, view._broken, view._verified, view._lock = self._cache, self._broken, self._verified, self._lock
        return view

    def save(self, model: Any, *, n_train: int, metrics: dict | None = None) -> ModelVersion:
        """Persist ``model`` as the next version and return its ModelVersion.

        The row holds the file's name relative to ``model_dir`` and its SHA-256 in
        ``metrics["sha256"]``; the returned ModelVersion's ``path`` is the absolute file path.

        Raises
        ------
        annotator.lifecycle.ParentDiedError
            In a worker process whose parent (the backend) died: nothing is published.
        """
        self.model_dir.mkdir(parents=True, exist_ok=True)
        self._remove_orphans()
        fd, tmp = tempfile.mkstemp(prefix=".model-", suffix=".tmp", dir=self.model_dir)
        try:
            with os.fdopen(fd, "wb") as fh:
                writer = _HashingWriter(fh)
                pickle.dump(model, writer, protocol=pickle.HIGHEST_PROTOCOL)
                fh.flush()
                os.fsync(fh.fileno())
            stored = dict(metrics or {}, **{CHECKSUM_KEY: writer.hexdigest()})
            with self.store.transaction():
                latest = self.store.latest_model_version()
                final = self.model_dir / f"model-{(latest.version if latest else 0) + 1:05d}.pkl"
                # A worker whose backend died must not publish (its run is "interrupted").
                check_parent_alive(f"model version {(latest.version if latest else 0) + 1}")
                os.replace(tmp, final)
                version = self.store.add_model_version(final.name, n_train, stored)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        with self._lock:
            self._cache[version.version] = model
            self._broken.pop(version.version, None)
        log.info("saved model version %d (%d training examples)", version.version, n_train)
        return self._resolved(version)

    def versions(self) -> list[ModelVersion]:
        """Every version, oldest first, with ``path`` the absolute file path."""
        return [self._resolved(v) for v in self.store.model_versions()]

    def latest(self) -> ModelVersion:
        """The newest version that loads intact; NotTrainedError if there is none.

        Broken versions are skipped (and listed by :meth:`broken_versions`); pruned ones too.
        """
        return self.load("latest")[0]

    def load(self, version: int | str = "latest") -> tuple[ModelVersion, Any]:
        """Return ``(ModelVersion, model)`` for a version number or ``"latest"``.

        ``"latest"`` is the newest version whose file is intact (checksum verified before
        unpickling); broken versions are skipped with a warning and reported by
        :meth:`broken_versions`.

        Raises
        ------
        NotTrainedError
            ``"latest"`` when no version is intact (the message names the broken ones).
        NotFoundError
            An unknown version, or one whose file :meth:`prune` deleted.
        StoreError
            A version (by number) whose file is missing, fails its checksum or cannot be unpickled.
        """
        rows = self.store.model_versions()
        if version == "latest":
            problems = []
            for info in reversed(rows):
                if PRUNED_KEY in info.metrics:
                    continue
                try:
                    return self._load_row(info)
                except StoreError as exc:
                    problems.append(f"version {info.version}: {self._reason(info)}")
                    log.warning("%s; falling back to an older version", exc)
            if problems:
                raise NotTrainedError(
                    "no intact model version to serve ("
                    + "; ".join(problems)
                    + "); run `annotator train` to train a new one"
                )
            raise NotTrainedError("no model has been trained yet; run `annotator train` or label more clauses")
        try:
            number = int(version)
        except (TypeError, ValueError):
            raise InputError(f"model version must be a number or 'latest', got {version!r}") from None
        matches = [v for v in rows if v.version == number]
        if not matches:
            raise NotFoundError(
                f"no model version {version}; known: {', '.join(str(v.version) for v in rows) or 'none'}"
            )
        info = matches[0]
        if PRUNED_KEY in info.metrics:
            kept = [str(v.version) for v in rows if PRUNED_KEY not in v.metrics]
            raise NotFoundError(
                f"model version {number} was pruned on {info.metrics[PRUNED_KEY]} (its file was deleted by the "
                f"retention policy; its metrics are kept); versions with a file: {', '.join(kept) or 'none'}"
            )
        return self._load_row(info)

    def broken_versions(self) -> list[dict]:
        """``[{"version", "path", "reason"}, ...]`` for each version (not pruned) that cannot be served.

        A reason is one of: the file is missing; its checksum does not match (the file changed
        after it was saved); it cannot be unpickled. Checksums are computed once per file state
        (size and modification time), so calling this for every /health answer is cheap.
        """
        out = []
        for info in self.store.model_versions():
            if PRUNED_KEY in info.metrics:
                continue
            with self._lock:
                if info.version in self._cache:
                    continue
            path = self._path(info)
            reason = self._check_file(info, path)
            if reason is None:
                with self._lock:
                    known = self._broken.get(info.version)
                if known is not None and known[0] == _signature(path):
                    reason = known[1]
            if reason is not None:
                out.append({"version": info.version, "path": str(path), "reason": reason})
        return out

    def prune(self, *, keep_last: int, keep: Collection[int] = ()) -> list[int]:
        """Delete the model files of versions older than the newest ``keep_last`` and not in ``keep``.

        Rows and metrics stay (the learning curve keeps every version); each pruned row gets
        ``metrics["pruned_at"]``, so it is reported as pruned, never as broken, and loading it
        raises NotFoundError. The newest intact version is always kept, whatever ``keep_last``,
        so pruning never leaves the backend nothing to serve.

        Returns
        -------
        list of int
            The versions whose files this call deleted, oldest first.
        """
        if not isinstance(keep_last, int) or isinstance(keep_last, bool) or keep_last < 1:
            raise InputError(f"keep_last must be a positive integer, got {keep_last!r}")
        rows = self.store.model_versions()
        protected = {v.version for v in rows[-keep_last:]} | {int(k) for k in keep}
        try:
            protected.add(self.latest().version)
        except NotTrainedError:
            pass
        pruned = []
        stamp = datetime.now(UTC).isoformat(timespec="seconds")
        for info in rows:
            if info.version in protected or PRUNED_KEY in info.metrics:
                continue
            path = self._path(info)
            if path.parent.resolve() == self.model_dir.resolve():  # never delete outside the model dir
                path.unlink(missing_ok=True)
            self.store.update_model_metrics(info.version, {PRUNED_KEY: stamp})
            with self._lock:
                self._cache.pop(info.version, None)
                self._broken.pop(info.version, None)
            pruned.append(info.version)
        if pruned:
            log.info("pruned the files of model versions %s (kept: %s)", pruned, sorted(protected))
        return pruned

    # Internals ----------------------------------------------------------------------------------
    def _path(self, info: ModelVersion) -> Path:
        """The file of a row: relative to ``model_dir``; an old absolute row, its name in
        ``model_dir`` first (a moved or copied home), else the absolute path."""
        stored = Path(info.path)
        if not stored.is_absolute():
            return self.model_dir / stored
        local = self.model_dir / stored.name
        return local if local.is_file() or not stored.is_file() else stored

    def _resolved(self, info: ModelVersion) -> ModelVersion:
        return dataclasses.replace(info, path=str(self._path(info).resolve()))

    def _check_file(self, info: ModelVersion, path: Path) -> str | None:
        """Why ``path`` cannot be served for ``info`` (missing, unreadable, wrong checksum), or None."""
        signature = _signature(path)
        if signature is None or not path.is_file():
            return f"file {path} is missing"
        expected = info.metrics.get(CHECKSUM_KEY)
        with self._lock:
            known = self._broken.get(info.version)
            if expected is None or self._verified.get(info.version) == signature:
                return None
        if known is not None and known[0] == signature and known[1].startswith("checksum"):
            return known[1]
        try:
            actual = _sha256(path)
        except OSError as exc:
            return f"file {path} cannot be read: {exc.strerror or exc}"
        return self._compare(info, path, signature, actual)

    def _compare(self, info: ModelVersion, path: Path, signature: tuple | None, actual: str) -> str | None:
        """Record and return the checksum verdict for one file state."""
        expected = info.metrics.get(CHECKSUM_KEY)
        with self._lock:
            if expected is None or actual == expected:
                if signature is not None:
                    self._verified[info.version] = signature
                return None
            reason = (
                f"checksum mismatch: {path} has SHA-256 {actual[:12]}…, saved as {str(expected)[:12]}… "
                "(the file changed after it was saved)"
            )
            self._broken[info.version] = (signature, reason)
            self._verified.pop(info.version, None)
            return reason

    def _reason(self, info: ModelVersion) -> str:
        with self._lock:
            known = self._broken.get(info.version)
        return known[1] if known else "cannot be loaded"

    def _load_row(self, info: ModelVersion) -> tuple[ModelVersion, Any]:
        """Verify then unpickle one version (cached); StoreError naming the reason when it fails."""
        resolved = self._resolved(info)
        with self._lock:
            if info.version in self._cache:
                return resolved, self._cache[info.version]
        path = self._path(info)
        signature = _signature(path)
        data, reason = b"", None  # data is read only when the file is there
        if signature is None or not path.is_file():
            reason = f"file {path} is missing"
        else:
            try:
                data = path.read_bytes()  # verified and unpickled from the same bytes: no swap in between
            except OSError as exc:
                reason = f"file {path} cannot be read: {exc.strerror or exc}"
        if reason is None:
            reason = self._compare(info, path, signature, hashlib.sha256(data).hexdigest())
        if reason is None and CHECKSUM_KEY not in info.metrics:
            log.warning(
                "model version %d has no checksum (saved by an older annotator); loading %s unverified",
                info.version,
                path,
            )
        if reason is None:
            try:
                model = loads(data)
            except (
                pickle.UnpicklingError,
                EOFError,
                AttributeError,
                ImportError,
                IndexError,
                KeyError,
                TypeError,
                ValueError,
                MemoryError,
            ) as exc:
                reason = f"{path} cannot be unpickled: {type(exc).__name__}: {exc}"
        if reason is not None:
            with self._lock:
                self._broken[info.version] = (signature, reason)
            raise StoreError(f"model version {info.version} cannot be loaded: {reason}")
        with self._lock:
            self._broken.pop(info.version, None)
            self._cache.setdefault(info.version, model)
            return resolved, self._cache[info.version]

    def _remove_orphans(self) -> None:
        for orphan in self.model_dir.glob(".model-*.tmp"):
            orphan.unlink(missing_ok=True)


class _HashingWriter(io.RawIOBase):
    """A write-only file object that hashes what passes through it to ``fh``."""

    def __init__(self, fh) -> None:
        super().__init__()
        self._fh = fh
        self._digest = hashlib.sha256()

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        self._digest.update(data)
        return self._fh.write(data)

    def hexdigest(self) -> str:
        return self._digest.hexdigest()


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(_READ_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _signature(path: Path) -> tuple | None:
    """What identifies a file's state cheaply: size and modification time."""
    try:
        st = path.stat()
    except OSError:
        return None
    return (st.st_size, st.st_mtime_ns, st.st_ino)
