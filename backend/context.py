"""Per-app and per-request objects: settings, the store on ``g``, the registry and the queue."""

from __future__ import annotations

from flask import current_app, g

from annotator import LabelConfig, ModelRegistry, Settings, Store, TrainRun


def get_settings() -> Settings:
    return current_app.config["ANNOTATOR"]


def get_store() -> Store:
    """The request's Store, opened on first use and closed at teardown."""
    if "store" not in g:
        g.store = Store(get_settings().store_url)
    return g.store


def close_store(exc: BaseException | None = None) -> None:
    store = g.pop("store", None)
    if store is not None:
        store.close()


def label_config() -> LabelConfig:
    return current_app.extensions["annotator"]["label_config"]


def get_registry() -> ModelRegistry:
    """The app's registry (models cached across requests), reading rows through this request's store."""
    registry: ModelRegistry = current_app.extensions["annotator"]["registry"]
    return registry.using(get_store())


def last_failed_run(store: Store) -> TrainRun | None:
    """The newest training run when it failed (its row), else None."""
    runs = store.train_runs(limit=1)
    return runs[0] if runs and runs[0].status == "failed" else None


def training_queue():
    return current_app.extensions["annotator"].get("queue")
