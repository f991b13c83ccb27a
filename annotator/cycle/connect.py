"""Set up a Label Studio project for this annotator project, idempotently.

Creates or reuses the project (the packaged labeling config), registers the webhook with the
secret header *before* connecting the ML backend (Label Studio would otherwise create its own
unauthenticated webhook to the same URL), connects the backend, switches the project to Label
Studio's uncertainty sampling, remembers the project id in the store and fills the queue. Running
it twice changes nothing. (A backend added on Label Studio's own Model page learns its project
from ``/setup`` instead, and its training queue does the same wiring.)
"""

from __future__ import annotations

import logging

from ..labelstudio.client import LabelStudioClient
from ..storage.locks import project_lock
from .loop import PROJECT_KEY, WIRED_KEY
from .ls_queue import refresh_queue, wire_project
from ..storage.registry import ModelRegistry
from ..settings import Settings
from ..storage.store import Store
from .sync import remember_users

log = logging.getLogger(__name__)


def connect_project(
    settings: Settings,
    store: Store,
    client: LabelStudioClient,
    *,
    backend_url: str | None = None,
    title: str | None = None,
    push: bool = True,
) -> dict:
    """Create/reuse the Label Studio project, wire the backend and webhook, push the first batch."""
    config = settings.labels_config()
    backend_url = (backend_url or settings.backend_url).rstrip("/")
    project_id, created = client.ensure_project(title or settings.ls_project_title, config.xml)
    auth = (settings.basic_auth_user, settings.basic_auth_pass) if settings.basic_auth_user else None
    webhook_id = client.ensure_webhook(
        project_id, f"{backend_url}/webhook", secret=settings.webhook_secret, basic_auth=auth
    )
    backend_id = client.ensure_ml_backend(
        project_id, backend_url, user=settings.basic_auth_user, password=settings.basic_auth_pass
    )
    overlap = {"maximum_annotations": 2, "overlap_cohort_percentage": round(100 * settings.overlap_share)}
    project = client.project(project_id)
    if settings.overlap_share > 0 and any(project.get(k) != v for k, v in overlap.items()):
        # Label Studio (open source) serves this share of tasks to a second annotator, so
        # agreement can be measured; the rest is labeled once. Set once: Label Studio draws the
        # overlap tasks anew whenever these change, which would reshuffle work in progress.
        client.update_project(project_id, **overlap)
    wire_project(client, project_id)
    store.set_meta(PROJECT_KEY, str(project_id))
    store.set_meta(WIRED_KEY, str(project_id))
    remember_users(store, client)
    store.set_meta("ls_url", client.url)
    push_report = None
    if push:
        with project_lock(settings.home):  # a backend already running may start a cycle meanwhile
            push_report = refresh_queue(
                settings, store, ModelRegistry(settings.model_dir, store), client, project_id
            ).to_dict()
    log.info(
        "project %d %s; backend %d; webhook %d", project_id, "created" if created else "reused", backend_id, webhook_id
    )
    return {
        "project_id": project_id,
        "created": created,
        "ml_backend_id": backend_id,
        "webhook_id": webhook_id,
        "backend_url": backend_url,
        "push": push_report,
        "url": f"{client.url}/projects/{project_id}/data",
    }
