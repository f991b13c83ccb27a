"""Pure converters between Label Studio's ML-backend payloads and the library's values.

Payloads are validated here, at the edge: a wrong shape is an InputError naming the field, so a
handler never reads a missing key as ``None``.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from annotator import LabelConfig, SchemaMismatchError, choices_result


def require_object(payload: Any, what: str) -> dict:
    if not isinstance(payload, dict):
        raise SchemaMismatchError(f"{what} must be a JSON object, got {type(payload).__name__}")
    return payload


def parse_predict(payload: Any, config: LabelConfig) -> list[tuple[Any, str]]:
    """``(task_id, text)`` for each task of a /predict request, in order."""
    payload = require_object(payload, "the /predict body")
    tasks = payload.get("tasks")
    if not isinstance(tasks, list):
        raise SchemaMismatchError("the /predict body needs a 'tasks' list")
    out = []
    for i, task in enumerate(tasks):
        if not isinstance(task, dict) or not isinstance(task.get("data"), dict):
            raise SchemaMismatchError(f"task {i} has no 'data' object")
        text = task["data"].get(config.value_key)
        if not isinstance(text, str) or not text.strip():
            raise SchemaMismatchError(
                f"task {task.get('id', i)} has no text at data['{config.value_key}']; the labeling config "
                f"must contain <Text value=\"${config.value_key}\">")
        out.append((task.get("id"), text))
    return out


def prediction(labels: Sequence[str], score: float, version: int, config: LabelConfig) -> dict:
    """One /predict result: the chosen labels as a choices result with the model's confidence."""
    return {"model_version": str(version), "score": round(float(score), 4),
            "result": choices_result(labels, config)}


@dataclass(frozen=True)
class WebhookEvent:
    """A validated webhook payload: the action and what it carries."""

    action: str
    annotations: tuple[tuple[dict, dict], ...] = ()  # (annotation, task) pairs
    deleted_ids: tuple[int, ...] = ()
    project_id: int | None = None


ANNOTATION_ACTIONS = ("ANNOTATION_CREATED", "ANNOTATIONS_CREATED", "ANNOTATION_UPDATED")
DELETE_ACTION = "ANNOTATIONS_DELETED"
TRAIN_ACTION = "START_TRAINING"


def parse_webhook(payload: Any) -> WebhookEvent:
    """Validate a webhook body from Label Studio."""
    payload = require_object(payload, "the webhook body")
    action = payload.get("action")
    if not isinstance(action, str) or not action:
        raise SchemaMismatchError("the webhook body needs an 'action' string")
    project = payload.get("project")
    project_id = project.get("id") if isinstance(project, dict) else project
    project_id = project_id if isinstance(project_id, int) and not isinstance(project_id, bool) else None
    if action in ANNOTATION_ACTIONS:
        annotations = payload.get("annotation", payload.get("annotations"))
        tasks = payload.get("task", payload.get("tasks"))
        if isinstance(annotations, dict):
            annotations, tasks = [annotations], ([tasks] if isinstance(tasks, dict) else tasks)
        if not isinstance(annotations, list) or not annotations:
            raise SchemaMismatchError(f"{action} needs an 'annotation' object")
        if not isinstance(tasks, list) or len(tasks) not in (1, len(annotations)):
            raise SchemaMismatchError(f"{action} needs the 'task' the annotation belongs to")
        by_id = {t.get("id"): t for t in tasks if isinstance(t, dict)}
        pairs = []
        for annotation in annotations:
            annotation = require_object(annotation, "annotation")
            task = by_id.get(annotation.get("task")) or (tasks[0] if len(tasks) == 1 else None)
            pairs.append((annotation, require_object(task, "task")))
        return WebhookEvent(action, tuple(pairs), project_id=project_id)
    if action == DELETE_ACTION:
        deleted = payload.get("annotations")
        if not isinstance(deleted, list):
            raise SchemaMismatchError("ANNOTATIONS_DELETED needs an 'annotations' list")
        ids = []
        for item in deleted:
            ann_id = item.get("id") if isinstance(item, dict) else None
            if not isinstance(ann_id, int) or isinstance(ann_id, bool):
                raise SchemaMismatchError("every deleted annotation needs an integer 'id'")
            ids.append(ann_id)
        return WebhookEvent(action, deleted_ids=tuple(ids), project_id=project_id)
    return WebhookEvent(action, project_id=project_id)
