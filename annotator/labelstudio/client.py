"""Label Studio, seen from the product: one client object over the label-studio-sdk 2.x ``LabelStudio``,
and the one place that knows Label Studio's prediction and result formats (a task's data has its
own home, the leaf :mod:`annotator.task_format`, shared with the task file ``annotator ingest`` writes).

Creates or reuses the project, connects the ML backend and the webhook, switches the project to
Label Studio's own uncertainty sampling, imports tasks and refreshes their predictions (a score
per task: lower is asked sooner), reads tasks and annotations back, and makes annotator accounts
that can log in. Tasks are never deleted, and a task is always matched to its clause by its data
(Label Studio on SQLite reuses the ids of deleted tasks). Every SDK error becomes a
LabelStudioError that names the call and Label Studio's answer; the API key never appears in a
message.
"""

from __future__ import annotations

import base64
import logging
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import LabelStudioError
from ..labels import LabelConfig
from .. import task_format
from ..task_format import CLAUSE_ID_KEY, SECTION_KEY, data_of

if TYPE_CHECKING:
    from label_studio_sdk.core.request_options import RequestOptions

log = logging.getLogger(__name__)

# START_TRAINING is not a webhook event: Label Studio posts it to the ML backend's /webhook itself.
ANNOTATION_ACTIONS = ("ANNOTATION_CREATED", "ANNOTATIONS_CREATED", "ANNOTATION_UPDATED")
DELETE_ACTION = "ANNOTATIONS_DELETED"
TRAIN_ACTION = "START_TRAINING"  # Label Studio's "Start Training" posts it to /webhook itself
WEBHOOK_ACTIONS = (*ANNOTATION_ACTIONS, DELETE_ACTION)  # the events the project's webhook sends
MAX_ID = 2**63 - 1  # SQLite's INTEGER range: a larger id cannot be stored; Label Studio's ids start at 1
WEBHOOK_SECRET_HEADER = "X-Annotator-Secret"
UNCERTAINTY_SAMPLING = "Uncertainty sampling"  # Project.sampling: lowest prediction score first
NO_RETRY: RequestOptions = {"max_retries": 0}  # the SDK retries POSTs: a retried import would create duplicate tasks
MODEL_VERSION_PREFIX = "policy-clf-v"
COLD_START_VERSION = "policy-clf-cold-start"  # the ranking before the first model


def ls_model_version(version: int | None) -> str:
    """The name Label Studio shows for a model version, e.g. ``policy-clf-v7``."""
    return COLD_START_VERSION if version is None else f"{MODEL_VERSION_PREFIX}{version}"


def version_from_ls(name: Any) -> int | None:
    """The model version number in a Label Studio ``model_version`` name (None if it is not ours)."""
    match = re.fullmatch(rf"{MODEL_VERSION_PREFIX}(\d+)", str(name or ""))
    return int(match.group(1)) if match else None


@dataclass(frozen=True)
class LsTask:
    """What the loop reads of one Label Studio task: its id, its data, and how far it is labeled."""

    id: int
    clause_id: str | None  # data["clause_id"] as the task holds it (checked against the text by the caller)
    text: str | None  # data[value_key]
    n_annotations: int  # submitted annotations (skips not counted)
    is_labeled: bool  # Label Studio's own flag: as many annotations as the task's overlap asks


def task_data(clause_id: str, text: str, section: str | None, config: LabelConfig) -> dict[str, str]:
    """The ``data`` of a clause's task in this project: the text under the labeling config's
    ``<Text>`` key, its section and clause id (:func:`annotator.task_format.task_data`)."""
    return task_format.task_data(clause_id, text, section, value_key=config.value_key)


def prediction_payload(
    labels: Sequence[str], score: float, model_version: str, config: LabelConfig, task_id: int | None = None
) -> dict:
    """A Label Studio prediction: the pre-filled labels (may be empty) and the task's priority score."""
    payload = {
        "model_version": model_version,
        "score": round(float(score), 6),
        "result": choices_result(labels, config) if labels else [],
    }
    if task_id is not None:
        payload["task"] = task_id
    return payload


def choices_result(labels: Sequence[str], config: LabelConfig) -> list[dict]:
    """The Label Studio ``result`` list for a multi-label choice, names read from the config."""
    return [
        {
            "from_name": config.from_name,
            "to_name": config.to_name,
            "type": "choices",
            "value": {"choices": list(labels)},
        }
    ]


def labels_from_result(result: Any, config: LabelConfig) -> tuple[str, ...] | None:
    """The chosen labels in a Label Studio ``result`` list (None when it is not a result list)."""
    if not isinstance(result, list):
        return None
    chosen: list[str] = []
    found = False
    for region in result:
        if not isinstance(region, dict) or region.get("from_name") != config.from_name:
            continue
        value = region.get("value")
        choices = value.get("choices") if isinstance(value, dict) else None
        if not isinstance(choices, list) or not all(isinstance(c, str) for c in choices):
            return None
        found = True
        chosen.extend(choices)
    # No region from our <Choices>: another config's result, not an empty label set.
    return tuple(dict.fromkeys(chosen)) if found else None


class LabelStudioClient:
    """The product's calls to one Label Studio server.

    Parameters
    ----------
    url : base URL of the server, e.g. ``http://127.0.0.1:8080``.
    api_key : a legacy token or personal access token.
    """

    def __init__(self, url: str, api_key: str, *, timeout: float = 30.0) -> None:
        if not api_key:
            raise LabelStudioError("no Label Studio API key; pass --api-key or set LABEL_STUDIO_API_KEY")
        import httpx
        from label_studio_sdk.client import LabelStudio

        self.url = url.rstrip("/")
        self._http = httpx.Client(timeout=timeout, follow_redirects=True)
        self._client = LabelStudio(base_url=self.url, api_key=api_key, httpx_client=self._http)

    def close(self) -> None:
        """Close the HTTP connections."""
        self._http.close()

    def __enter__(self) -> LabelStudioClient:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _call(self, what: str, fn, *args, **kwargs):
        from label_studio_sdk.core.api_error import ApiError

        try:
            return fn(*args, **kwargs)
        except ApiError as exc:
            raise LabelStudioError(f"Label Studio refused to {what}: HTTP {exc.status_code} {exc.body}") from None
        except OSError as exc:
            raise LabelStudioError(f"cannot reach Label Studio at {self.url} to {what}: {exc}") from None
        except Exception as exc:  # httpx transport errors are not OSError subclasses
            if type(exc).__module__.startswith("httpx"):
                raise LabelStudioError(f"cannot reach Label Studio at {self.url} to {what}: {exc}") from None
            raise

    # Projects ------------------------------------------------------------------------------
    def ensure_project(self, title: str, label_config: str) -> tuple[int, bool]:
        """The id of the project with this title (created if missing) and whether it was created."""
        for project in self._call("list projects", self._client.projects.list):
            if project.title == title:
                if project.label_config.strip() != label_config.strip():
                    self._call(
                        "update the labeling config",
                        self._client.projects.update,
                        project.id,
                        label_config=label_config,
                    )
                return project.id, False
        project = self._call("create a project", self._client.projects.create, title=title, label_config=label_config)
        return project.id, True

    def project(self, project_id: int) -> dict:
        return self._call("read the project", self._client.projects.get, project_id).model_dump()

    def update_project(self, project_id: int, **fields) -> None:
        self._call("update the project", self._client.projects.update, project_id, **fields)

    def ensure_ml_backend(self, project_id: int, backend_url: str, *, user: str = "", password: str = "") -> int:
        """Connect the ML backend at ``backend_url`` to the project (once)."""
        for backend in self._call("list ML backends", self._client.ml.list, project=project_id):
            if backend.url.rstrip("/") == backend_url.rstrip("/"):
                return backend.id
        auth = {"auth_method": "BASIC_AUTH", "basic_auth_user": user, "basic_auth_pass": password} if user else {}
        backend = self._call(
            "connect the ML backend",
            self._client.ml.create,
            project=project_id,
            url=backend_url,
            title="annotator",
            is_interactive=False,
            **auth,
        )
        return backend.id

    def ml_backend_urls(self, project_id: int) -> list[str]:
        """The URLs of the ML backends connected to the project."""
        return [b.url for b in self._call("list ML backends", self._client.ml.list, project=project_id)]

    def ensure_webhook(
        self, project_id: int, url: str, *, secret: str = "", basic_auth: tuple[str, str] | None = None
    ) -> int:
        """Register the project's webhook to ``url`` (once), with the secret header and the
        backend's basic-auth credentials when they are set (Label Studio's own auto-created
        webhook would carry neither)."""
        headers = {WEBHOOK_SECRET_HEADER: secret} if secret else {}
        if basic_auth:
            token = base64.b64encode(f"{basic_auth[0]}:{basic_auth[1]}".encode()).decode()
            headers["Authorization"] = f"Basic {token}"
        for hook in self._call("list webhooks", self._client.webhooks.list, project=project_id):
            if hook.url.rstrip("/") == url.rstrip("/"):
                if (hook.headers or {}) != headers or hook.send_for_all_actions:
                    self._call(
                        "update the webhook",
                        self._client.webhooks.update,
                        hook.id,
                        url=url,
                        headers=headers,
                        send_payload=True,
                        send_for_all_actions=False,
                        actions=list(WEBHOOK_ACTIONS),
                    )
                return hook.id
        hook = self._call(
            "create the webhook",
            self._client.webhooks.create,
            url=url,
            project=project_id,
            headers=headers,
            send_payload=True,
            send_for_all_actions=False,
            actions=list(WEBHOOK_ACTIONS),
            is_active=True,
        )
        return hook.id

    # Tasks ---------------------------------------------------------------------------------
    def import_tasks(self, project_id: int, tasks: Sequence[dict]) -> list[int]:
        """Import tasks in order and return their ids (in the same order)."""
        if not tasks:
            return []
        response = self._call(
            "import tasks",
            self._client.projects.import_tasks,
            project_id,
            request=list(tasks),
            return_task_ids=True,
            commit_to_project=True,
            request_options=NO_RETRY,
        )
        ids = list(response.task_ids or [])
        if len(ids) != len(tasks):
            raise LabelStudioError(f"Label Studio imported {len(ids)} of {len(tasks)} tasks")
        return ids

    def import_predictions(self, project_id: int, predictions: Sequence[dict]) -> int:
        """Add predictions to existing tasks (each names its ``task``); returns how many were created."""
        if not predictions:
            return 0
        response = self._call(
            f"import {len(predictions)} predictions",
            self._client.projects.import_predictions,
            project_id,
            request=list(predictions),
            request_options=NO_RETRY,
        )
        return int(getattr(response, "created", None) or len(predictions))

    def delete_predictions(self, project_id: int, task_ids: Sequence[int]) -> None:
        """Delete every prediction of these tasks (the Data Manager's action), in one request."""
        if task_ids:
            self._call(
                f"delete the predictions of {len(task_ids)} tasks",
                self._client.actions.create,
                id="delete_tasks_predictions",
                project=project_id,
                selected_items={"all": False, "included": list(task_ids)},
                request_options=NO_RETRY,
            )

    def task_index(self, project_id: int, value_key: str) -> list[LsTask]:
        """Every task of the project with its data and labeling progress (no annotation bodies)."""
        pager = self._call(
            "list tasks", self._client.tasks.list, project=project_id, fields="task_only", page_size=1000
        )
        out = []
        for task in pager:
            task = task.model_dump() if hasattr(task, "model_dump") else dict(task)
            data = data_of(task)
            clause_id, text = data.get(CLAUSE_ID_KEY), data.get(value_key)
            out.append(
                LsTask(
                    id=int(task["id"]),
                    clause_id=clause_id if isinstance(clause_id, str) else None,
                    text=text if isinstance(text, str) else None,
                    n_annotations=int(task.get("total_annotations") or 0),
                    is_labeled=bool(task.get("is_labeled")),
                )
            )
        return out

    def serve_by_uncertainty(self, project_id: int) -> None:
        """Let Label Studio serve each annotator the lowest-score task of the current model version."""
        self.update_project(project_id, sampling=UNCERTAINTY_SAMPLING)

    def set_model_version(self, project_id: int, model_version: str) -> None:
        """Make ``model_version``'s predictions the ones Label Studio serves by and pre-fills from."""
        self.update_project(project_id, model_version=model_version)

    def tasks(self, project_id: int) -> Iterator[dict]:
        """Every task of the project with its annotations and predictions, as plain dicts."""
        pager = self._call("list tasks", self._client.tasks.list, project=project_id, fields="all", page_size=500)
        for task in pager:
            yield task.model_dump() if hasattr(task, "model_dump") else dict(task)

    def task(self, task_id: int) -> dict:
        return self._call(f"read task {task_id}", self._client.tasks.get, str(task_id)).model_dump()

    def create_annotation(self, task_id: int, result: list[dict], *, completed_by: int | None = None) -> dict:
        kwargs = {"completed_by": completed_by} if completed_by is not None else {}
        return self._call(
            "create an annotation", self._client.annotations.create, task_id, result=result, **kwargs
        ).model_dump()

    def retrieve_predictions(self, project_id: int, task_ids: Sequence[int]) -> None:
        """Ask Label Studio to fetch predictions for these tasks from the connected ML backend."""
        self._call(
            "retrieve predictions",
            self._client.actions.create,
            id="retrieve_tasks_predictions",
            project=project_id,
            selected_items={"all": False, "included": list(task_ids)},
        )

    # Users ---------------------------------------------------------------------------------
    def whoami(self) -> dict:
        return self._call("read the current user", self._client.users.whoami).model_dump()

    def users(self) -> list[dict]:
        return [u.model_dump() for u in self._call("list users", self._client.users.list)]

    def _api(self, method: str, path: str, what: str, **kwargs) -> Any:
        """One raw API call with the client's credentials, for endpoints the SDK does not wrap."""
        from label_studio_sdk.core.api_error import ApiError

        def call():
            response = self._client._client_wrapper.httpx_client.request(
                path, method=method, request_options=NO_RETRY, **kwargs
            )
            if response.status_code >= 400:
                raise ApiError(status_code=response.status_code, body=response.text[:500])
            return response.json() if response.content else {}

        return self._call(what, call)

    def invite_url(self) -> str:
        """The organization's sign-up link: whoever signs up through it joins the organization."""
        invite = self._api("GET", "api/invite", "read the organization's invite link")
        url = invite.get("invite_url") or ""
        return url if url.startswith("http") else f"{self.url}{url}"

    def activate_membership(self, user_id: int, organization_id: int) -> None:
        """Make ``organization_id`` the user's active organization: Label Studio sends annotation
        webhooks through the submitting user's active organization, and an account created through
        the API has none until its first log-in."""
        self._api(
            "PATCH",
            f"api/users/{user_id}",
            f"activate user {user_id} in the organization",
            json={"active_organization": organization_id},
        )

    def sign_up(self, email: str, password: str) -> None:
        """Create an account through the organization's invite link, as a person signing up would:
        the account can log in with ``password`` and is a member of the organization."""
        import httpx

        invite = self.invite_url()
        try:
            with httpx.Client(timeout=30, follow_redirects=False) as browser:
                page = browser.get(invite)
                token = browser.cookies.get("csrftoken") or ""
                response = browser.post(
                    invite,
                    data={"email": email, "password": password, "csrfmiddlewaretoken": token},
                    headers={"Referer": invite, "X-CSRFToken": token},
                )
        except httpx.HTTPError as exc:
            raise LabelStudioError(f"cannot reach Label Studio at {self.url} to sign up {email}: {exc}") from None
        if page.status_code >= 400 or response.status_code not in (301, 302, 303):
            reason = _form_error(response.text) or f"HTTP {response.status_code}"
            raise LabelStudioError(f"Label Studio refused to sign up {email}: {reason}")

    def find_user(self, email: str) -> dict | None:
        """The organization member with this email (case-insensitive), if any."""
        wanted = email.strip().lower()
        return next((u for u in self.users() if str(u.get("email") or "").lower() == wanted), None)


def _project_id(value: Any) -> int | None:
    """A Label Studio project id from a payload field: an int, ``{"id": …}``, or /setup's ``"3.1701…"``."""
    if isinstance(value, dict):
        value = value.get("id")
    if isinstance(value, str):
        head = value.split(".", 1)[0]
        value = int(head) if head.isdigit() else None
    return value if is_ls_id(value) else None


def project_id_from_setup(value: Any) -> int | None:
    """The project id in /setup's ``project`` field (Label Studio sends ``"<id>.<timestamp>"``)."""
    return _project_id(value)


def _form_error(html: str) -> str | None:
    """The first error message of a rejected Django form page, as plain text."""
    match = re.search(r'class="[^"]*(?:error|errorlist)[^"]*"[^>]*>(.*?)</', html, flags=re.S)
    text = re.sub(r"<[^>]+>", " ", match.group(1)).strip() if match else ""
    return re.sub(r"\s+", " ", text) or None


def is_ls_id(value: Any) -> bool:
    """A Label Studio id the store can hold: an integer (not a bool) from 1 to ``MAX_ID``."""
    return isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= MAX_ID


def annotation_from_ls(annotation: dict, task: dict, config: LabelConfig) -> tuple[dict, tuple[str, ...] | None]:
    """Read one Label Studio annotation (webhook payload or API) into plain fields.

    Returns ``(fields, labels)``: ``fields`` has ``ls_annotation_id``, ``ls_task_id``, ``annotator``,
    ``created_at``, ``updated_at``, ``cancelled``, ``text``, ``clause_id`` (the hash of the shown
    text), ``clause_id_given`` (the task data's, if any), ``section``, ``project_id``; ``labels`` is
    None when the annotation holds no readable choice result.

    Raises
    ------
    SchemaMismatchError
        If the annotation has no integer id or the task has no text at ``data[value_key]``.
    """
    from ..errors import SchemaMismatchError
    from ..text.normalize import clause_id as make_clause_id
    from ..text.normalize import normalize_text

    ann_id = annotation.get("id")
    if not is_ls_id(ann_id):
        raise SchemaMismatchError(f"annotation has no integer 'id' (got {ann_id!r})")
    task_id = task.get("id", annotation.get("task"))
    if task_id is not None and isinstance(task_id, int) and not is_ls_id(task_id):
        raise SchemaMismatchError(f"task id {task_id} is out of range (a 64-bit integer is expected)")
    data = data_of(task)
    text = data.get(config.value_key)
    if not isinstance(text, str) or not text.strip():
        raise SchemaMismatchError(
            f"task {task_id} has no text at data['{config.value_key}']; the labeling config must "
            f'contain <Text value="${config.value_key}">'
        )
    text = normalize_text(text)
    if not text:
        raise SchemaMismatchError(f"task {task_id} has no text at data['{config.value_key}'] once normalized")
    given_id = data.get(CLAUSE_ID_KEY)
    completed_by = annotation.get("completed_by")
    if isinstance(completed_by, dict):
        completed_by = completed_by.get("email") or completed_by.get("id")
    fields = {
        "ls_annotation_id": ann_id,
        "ls_task_id": task_id if isinstance(task_id, int) else None,
        "annotator": str(completed_by) if completed_by is not None else "unknown",
        "created_at": str(annotation.get("created_at") or ""),
        "updated_at": str(annotation.get("updated_at") or annotation.get("created_at") or ""),
        "cancelled": bool(annotation.get("was_cancelled")),
        "text": text,
        # The clause is the one whose text the task shows: a clause id in the data is only a hint,
        # never trusted to pick the stored clause a label attaches to (see clause_id_given).
        "clause_id": make_clause_id(text),
        "clause_id_given": given_id if isinstance(given_id, str) else None,
        "section": str(data.get(SECTION_KEY) or ""),
        "project_id": _project_id(task.get("project", annotation.get("project"))),
    }
    return fields, labels_from_result(annotation.get("result"), config)
