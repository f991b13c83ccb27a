"""Pure converters between Label Studio's ML-backend payloads and the library's values.

Payloads are validated here, at the edge: a wrong shape is an InputError naming the field, so a
handler never reads a missing key as ``None``.
"""
from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from annotator import LabelConfig, SchemaMismatchError, choices_result, parse_label_config

MAX_DEPTH = 64  # Label Studio's payloads nest about 6 deep; far deeper is an attack on the parser
MAX_ID = 2**63 - 1  # SQLite's INTEGER range: a larger id cannot be stored
_SURROGATE = re.compile("[\ud800-\udfff]")


def parse_json_body(data: bytes, *, is_json: bool, content_type: str = "") -> Any:
    """The decoded JSON of a request body, or a SchemaMismatchError saying why it is not usable.

    Beyond ``json.loads``: nesting deeper than ``MAX_DEPTH`` (far deeper exhausts Python's
    recursion limit while parsing or printing the value) and unpaired UTF-16 surrogates such as
    ``"\\ud800"`` (JSON allows them, but they cannot be stored or sent back as UTF-8) are refused.
    """
    what = "the request body must be JSON (Content-Type: application/json)"
    if not is_json:
        raise SchemaMismatchError(f"{what}, got Content-Type '{content_type or 'none'}'")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise SchemaMismatchError(
            f"{what}: not UTF-8 text (invalid byte 0x{data[exc.start]:02x} at offset {exc.start})") from None
    if not text.strip():
        raise SchemaMismatchError(f"{what}: the body is empty")
    try:
        payload = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SchemaMismatchError(
            f"{what}: invalid JSON at line {exc.lineno} column {exc.colno} ({exc.msg})") from None
    except RecursionError:
        raise SchemaMismatchError(f"{what}: nested deeper than {MAX_DEPTH} levels") from None
    except ValueError:  # Python refuses to read an integer of more than 4300 digits
        raise SchemaMismatchError(f"{what}: a number with more than 4300 digits") from None
    _check_strings(payload, what)
    return payload


def _check_strings(payload: Any, what: str) -> None:
    """Refuse nesting deeper than MAX_DEPTH and unpaired surrogates in any key or string value."""
    stack = [(payload, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (dict, list)):
            if depth >= MAX_DEPTH:
                raise SchemaMismatchError(f"{what}: nested deeper than {MAX_DEPTH} levels")
            children = [*item.keys(), *item.values()] if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children)
        elif isinstance(item, str) and not item.isascii() and (bad := _SURROGATE.search(item)):
            raise SchemaMismatchError(
                f"{what}: a string holds an unpaired UTF-16 surrogate "
                f"(\\u{ord(bad.group()):04x}); send valid Unicode text")


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
        by_id = {t.get("id"): t for t in tasks if isinstance(t, dict) and _is_key(t.get("id"))}
        pairs = []
        for annotation in annotations:
            annotation = _check_annotation(require_object(annotation, "annotation"))
            ref = annotation.get("task")
            task = (by_id.get(ref) if _is_key(ref) else None) or (tasks[0] if len(tasks) == 1 else None)
            task = require_object(task, "task")
            task_id = task.get("id", ref)  # what the store will keep as the annotation's task
            if isinstance(task_id, int) and not _is_id(task_id):
                raise SchemaMismatchError(f"task 'id' must be an integer up to {MAX_ID}, got {task_id}")
            pairs.append((annotation, task))
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
            if not _is_id(ann_id):
                raise SchemaMismatchError(f"deleted annotation 'id' must be an integer up to {MAX_ID}, got {ann_id}")
            ids.append(ann_id)
        return WebhookEvent(action, deleted_ids=tuple(ids), project_id=project_id)
    return WebhookEvent(action, project_id=project_id)


def _is_key(value: Any) -> bool:
    """A value that can look a task up by id (a JSON list or object cannot)."""
    return isinstance(value, (int, str, float)) or value is None


def _is_id(value: Any) -> bool:
    """A Label Studio id the store can hold: an integer (not a bool) in SQLite's INTEGER range."""
    return isinstance(value, int) and not isinstance(value, bool) and -MAX_ID - 1 <= value <= MAX_ID


def _check_annotation(annotation: dict) -> dict:
    """Refuse what the store cannot hold: an id out of range, a timestamp that is not a usable time."""
    ann_id = annotation.get("id")
    if not isinstance(ann_id, int) or isinstance(ann_id, bool):
        raise SchemaMismatchError(f"annotation has no integer 'id' (got {ann_id!r})")
    if not _is_id(ann_id):
        raise SchemaMismatchError(f"annotation 'id' must be an integer up to {MAX_ID}, got {ann_id}")
    for key in ("created_at", "updated_at"):
        value = annotation.get(key)
        if value is None or value == "":
            continue
        if not isinstance(value, str):
            raise SchemaMismatchError(
                f"annotation {ann_id}: '{key}' must be an ISO-8601 time string such as "
                f"'2026-11-24T09:00:00Z', got {type(value).__name__}")
        try:
            parsed = datetime.fromisoformat(value.replace(" ", "T"))
        except ValueError:
            continue  # the store dates an unreadable time "now", as Label Studio's own API may send
        try:
            (parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)).astimezone(timezone.utc)
        except OverflowError:
            raise SchemaMismatchError(
                f"annotation {ann_id}: '{key}' {value!r} is out of range in UTC; "
                "send a time such as '2026-11-24T09:00:00Z'") from None
    return annotation


def check_setup(payload: Any, config: LabelConfig) -> None:
    """Validate a /setup body: Label Studio sends the project's labeling config as ``schema``.

    The backend predicts with its own label set, so the project's config must have the same
    ``<Choices>`` (names and labels) and read the same task data key.
    """
    payload = require_object(payload, "the /setup body")
    schema = payload.get("schema")
    if schema is None:
        return
    if not isinstance(schema, str):
        raise SchemaMismatchError(f"the /setup 'schema' must be the labeling config XML string, "
                                  f"got {type(schema).__name__}")
    try:
        theirs = parse_label_config(schema)
    except SchemaMismatchError as exc:
        raise SchemaMismatchError(f"the /setup 'schema' (the project's labeling config) is unusable: {exc}") from None
    if (theirs.from_name, theirs.to_name, theirs.value_key) != (config.from_name, config.to_name,
                                                                config.value_key):
        raise SchemaMismatchError(
            f"the project's labeling config has <Choices name=\"{theirs.from_name}\" "
            f"toName=\"{theirs.to_name}\"> reading data['{theirs.value_key}']; this backend expects "
            f"<Choices name=\"{config.from_name}\" toName=\"{config.to_name}\"> reading "
            f"data['{config.value_key}']")
    missing = [label for label in config.labels if label not in theirs.labels]
    extra = [label for label in theirs.labels if label not in config.labels]
    if missing or extra:
        parts = ([f"lacks {', '.join(missing)}"] if missing else []) + (
            [f"has {', '.join(extra)} unknown to the backend"] if extra else [])
        raise SchemaMismatchError(
            f"the project's labeling config {' and '.join(parts)}; give Label Studio the backend's "
            "label config (annotator connect) or retrain with the new label set")
