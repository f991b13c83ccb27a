"""The one-command demo: a local Label Studio and backend, the newsletters ingested, a model trained
on the seed set, the project connected and the first uncertain batch waiting for an annotator."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from ..cycle.connect import connect_project
from ..labels import demo_files
from ..labelstudio.client import LabelStudioClient
from ..cycle.loop import train_project
from ..cycle.project import import_labels, ingest_documents
from ..storage.registry import ModelRegistry
from .services import DEMO_TOKEN, BackendServer, LabelStudioServer, stop_signals_interrupt
from ..settings import Settings
from ..storage.store import Store

log = logging.getLogger(__name__)


def prepare_project(settings: Settings, store: Store, echo: Callable[[str], None]) -> None:
    """Ingest the newsletters, import the seed labels and train once (each step idempotent).

    The documents and seed labels come with the source repository (:func:`annotator.labels.demo_files`).

    Raises
    ------
    InputError
        If they are missing (a wheel install); the message says where to get them.
    """
    sources, seed_file = demo_files()
    ingested = ingest_documents(store, [sources], tasks_out=settings.home / "tasks.json")
    echo(
        f"ingested {len(ingested.documents)} documents: {ingested.new_clauses} new clauses "
        f"({ingested.total_clauses} in the project)"
    )
    imported = import_labels(store, seed_file, settings.labels)
    echo(f"seed labels: {imported.examples} labeled clauses ({imported.annotations['created']} new)")
    registry = ModelRegistry(settings.model_dir, store)
    if store.latest_model_version() is None:
        echo("training the first model on the seed set ...")
        trained, figures = train_project(settings, store, registry)
        seconds = registry.load(trained.version.version)[0].metrics.get("seconds", 0)
        echo(
            f"model version {trained.version.version}: held-out macro-F1 {figures.get('macro_f1', 0):.3f} "
            f"({seconds:.0f} s)"
        )


def run_demo(
    settings: Settings,
    *,
    ls_port: int,
    backend_port: int,
    username: str,
    password: str,
    stay: bool,
    echo: Callable[[str], None],
) -> None:
    """Run the whole demo; blocks until Ctrl-C (or SIGTERM, SIGHUP) when ``stay``, then stops both
    servers.

    Raises
    ------
    InputError
        Before anything starts, if the demo's documents are missing (a wheel install:
        :func:`annotator.labels.demo_files`).
    AnnotatorError
        If a port is taken (checked before the preparation).
    """
    demo_files()  # a wheel install has none: say where to get them before any port or folder is touched
    backend_url = f"http://127.0.0.1:{backend_port}"
    settings = settings.replace(ls_url=f"http://127.0.0.1:{ls_port}", ls_api_key=DEMO_TOKEN, backend_url=backend_url)
    ls = LabelStudioServer(
        settings.home / "labelstudio", port=ls_port, username=username, password=password, token=DEMO_TOKEN
    )
    backend = BackendServer(
        settings.home, port=backend_port, env={"LABEL_STUDIO_URL": ls.url, "LABEL_STUDIO_API_KEY": DEMO_TOKEN}
    )
    ls.check_port()  # before the minute of preparation, not after it
    backend.check_port()
    settings.home.mkdir(parents=True, exist_ok=True)
    with Store(settings.store_url) as store:
        prepare_project(settings, store, echo)
    echo(f"starting Label Studio on {ls.url} (first start takes about a minute: database migrations) ...")
    with stop_signals_interrupt():  # a kill or a closed terminal stops both servers too
        try:
            ls.start()
            backend.start()
            echo(f"backend on {backend.url} (dashboard: {backend.url}/dashboard)")
            with Store(settings.store_url) as store, LabelStudioClient(ls.url, DEMO_TOKEN) as client:
                report = connect_project(settings, store, client, backend_url=backend_url)
            push = report["push"] or {}
            echo("")
            echo(f"Label Studio: {report['url']}")
            echo(f"login: {username} / {password}")
            echo(f"{push.get('pending', 0)} clauses are waiting, most uncertain first. Ctrl-C stops both servers.")
            while stay:
                time.sleep(1)
        except KeyboardInterrupt:
            echo("stopping ...")
        finally:
            backend.stop()
            ls.stop()
