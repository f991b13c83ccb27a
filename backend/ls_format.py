"""Pure converters between Label Studio's ML-backend payloads and the library's values.

Payloads are validated here, at the edge: a wrong shape is an InputError naming the field, so a
handler never reads a missing key as ``None``.

Limits (README, "Settings"): a payload past one is refused with a 400 that names the field, the
size and the limit. They bound what one request can cost (memory, CPU, the size of every page
and JSON that grows with the number of annotators) and what a client can make the store hold.
Bidi control characters: clause text loses them in :func:`annotator.normalize_text` (like
zero-width characters); an annotator's name or email carrying one is refused, since a name is an
identity that must not change silently. A text that normalizes to nothing is refused.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime, UTC
from typing import Any

from annotator import (
    ANNOTATION_ACTIONS,
    DELETE_ACTION,
    MAX_ID,
    LabelConfig,
    SchemaMismatchError,
    is_ls_id,
    normalize_text,
    parse_label_config,
)

MAX_DEPTH = 64  # Label Studio's payloads nest about 6 deep; far deeper is an attack on the parser
MAX_TEXT_CHARS = 5_000  # a task's text: clauses are at most 300 characters, a long paragraph fits
MAX_NAME_CHARS = 254  # an annotator's email, username or name (the longest valid email address)
MAX_FIELD_CHARS = 2_000  # any other string of an annotation or a task (times, sections, choices)
MAX_EVENT_ANNOTATIONS = 500  # annotations (or deleted ids) in one bulk webhook event
MAX_PREDICT_TASKS = 1_000  # tasks in one /predict request
MAX_PREDICT_CHARS = 500_000  # characters of text in one /predict request (about 2 s of CPU)
_SURROGATE = re.compile("[\ud800-\udfff]")
_BIDI = re.compile("[\u200e\u200f\u202a-\u202e\u2066-\u2069]")


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
            f"{what}: not UTF-8 text (invalid byte 0x{data[exc.start]:02x} at offset {exc.start})"
        ) from None
    if not text.strip():
        raise SchemaMismatchError(f"{what}: the body is empty")
    try:
        payload = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SchemaMismatchError(f"{what}: invalid JSON at line {exc.lineno} column {exc.colno} ({exc.msg})") from None
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
                f"(\\u{ord(bad.group()):04x}); send valid Unicode text"
            )


def require_object(payload: Any, what: str) -> dict:
    if not isinstance(payload, dict):
        raise SchemaMismatchError(f"{what} must be a JSON object, got {type(payload).__name__}")
    return payload


def parse_predict(payload: Any, config: LabelConfig) -> list[tuple[Any, str]]:
    """``(task_id, text)`` for each task of a /predict request, in order.

    At most ``MAX_PREDICT_TASKS`` tasks of at most ``MAX_TEXT_CHARS`` characters each and
    ``MAX_PREDICT_CHARS`` in all; a text that normalizes to nothing (zero-width or bidi control
    characters only) is refused, and so is an id that is not a positive integer in range.
    """
    payload = require_object(payload, "the /predict body")
    tasks = payload.get("tasks")
    if not isinstance(tasks, list):
        raise SchemaMismatchError("the /predict body needs a 'tasks' list")
    if len(tasks) > MAX_PREDICT_TASKS:
        raise SchemaMismatchError(
            f"the /predict body has {len(tasks)} tasks; at most {MAX_PREDICT_TASKS} are "
            "predicted per request: send them in smaller batches"
        )
    out = []
    total = 0
    for i, task in enumerate(tasks):
        if not isinstance(task, dict) or not isinstance(task.get("data"), dict):
            raise SchemaMismatchError(f"task {i} has no 'data' object")
        task_id = task.get("id")
        if task_id is not None and not is_ls_id(task_id):
            raise SchemaMismatchError(f"task {i}: 'id' must be an integer from 1 to {MAX_ID}, got {_show(task_id)}")
        text = task["data"].get(config.value_key)
        if not isinstance(text, str) or not text.strip():
            raise SchemaMismatchError(
                f"task {task.get('id', i)} has no text at data['{config.value_key}']; the labeling config "
                f'must contain <Text value="${config.value_key}">'
            )
        _check_text(text, f"task {task_id if task_id is not None else i}", config.value_key)
        total += len(text)
        if total > MAX_PREDICT_CHARS:
            raise SchemaMismatchError(
                f"the /predict body holds more than {MAX_PREDICT_CHARS} characters of text "
                f"(at task {i}); send the tasks in smaller batches"
            )
        out.append((task_id, text))
    return out


def _check_text(text: str, what: str, key: str) -> None:
    """A task text within ``MAX_TEXT_CHARS`` that does not normalize to nothing."""
    if len(text) > MAX_TEXT_CHARS:
        raise SchemaMismatchError(
            f"{what}: data['{key}'] has {len(text)} characters; at most {MAX_TEXT_CHARS} "
            "are accepted (a clause is a sentence or a short paragraph)"
        )
    if not normalize_text(text):
        raise SchemaMismatchError(
            f"{what}: data['{key}'] is empty once normalized (only invisible characters "
            "such as zero-width spaces or bidi controls); send the clause's text"
        )


@dataclass(frozen=True)
class WebhookEvent:
    """A validated webhook payload: the action and what it carries."""

    action: str
    annotations: tuple[tuple[dict, dict], ...] = ()  # (annotation, task) pairs
    deleted_ids: tuple[int, ...] = ()
    project_id: int | None = None


def parse_webhook(payload: Any, config: LabelConfig | None = None) -> WebhookEvent:
    """Validate a webhook body from Label Studio.

    Beyond its shape: ids are integers from 1 to ``MAX_ID``; a bulk event carries at most
    ``MAX_EVENT_ANNOTATIONS`` annotations; an annotator's email/username/name is at most
    ``MAX_NAME_CHARS`` characters without bidi controls; the task text (``data[value_key]`` of
    ``config``; every data string without a config) at most ``MAX_TEXT_CHARS`` and not empty once
    normalized; every other string at most ``MAX_FIELD_CHARS``.
    """
    payload = require_object(payload, "the webhook body")
    action = payload.get("action")
    if not isinstance(action, str) or not action:
        raise SchemaMismatchError("the webhook body needs an 'action' string")
    if len(action) > MAX_FIELD_CHARS:
        raise SchemaMismatchError(f"the webhook 'action' has {len(action)} characters; at most {MAX_FIELD_CHARS}")
    project = payload.get("project")
    project_id = project.get("id") if isinstance(project, dict) else project
    if isinstance(project_id, int) and not isinstance(project_id, bool) and not is_ls_id(project_id):
        raise SchemaMismatchError(f"the webhook's project id must be an integer from 1 to {MAX_ID}, got {project_id}")
    project_id = project_id if isinstance(project_id, int) and not isinstance(project_id, bool) else None
    if action in ANNOTATION_ACTIONS:
        annotations = payload.get("annotation", payload.get("annotations"))
        tasks = payload.get("task", payload.get("tasks"))
        if isinstance(annotations, dict):
            annotations, tasks = [annotations], ([tasks] if isinstance(tasks, dict) else tasks)
        if not isinstance(annotations, list) or not annotations:
            raise SchemaMismatchError(f"{action} needs an 'annotation' object")
        if len(annotations) > MAX_EVENT_ANNOTATIONS:
            raise SchemaMismatchError(
                f"{action} carries {len(annotations)} annotations; at most "
                f"{MAX_EVENT_ANNOTATIONS} are accepted per event"
            )
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
            if isinstance(task_id, int) and not is_ls_id(task_id):
                raise SchemaMismatchError(f"task 'id' must be an integer from 1 to {MAX_ID}, got {task_id}")
            _check_task(task, task_id, config)
            pairs.append((annotation, task))
        return WebhookEvent(action, tuple(pairs), project_id=project_id)
    if action == DELETE_ACTION:
        deleted = payload.get("annotations")
        if not isinstance(deleted, list):
            raise SchemaMismatchError("ANNOTATIONS_DELETED needs an 'annotations' list")
        if len(deleted) > MAX_EVENT_ANNOTATIONS:
            raise SchemaMismatchError(
                f"ANNOTATIONS_DELETED carries {len(deleted)} annotations; at most "
                f"{MAX_EVENT_ANNOTATIONS} are accepted per event"
            )
        ids = []
        for item in deleted:
            ann_id = item.get("id") if isinstance(item, dict) else None
            if not isinstance(ann_id, int) or isinstance(ann_id, bool):
                raise SchemaMismatchError("every deleted annotation needs an integer 'id'")
            if not is_ls_id(ann_id):
                raise SchemaMismatchError(
                    f"deleted annotation 'id' must be an integer from 1 to {MAX_ID}, got {ann_id}"
                )
            ids.append(ann_id)
        return WebhookEvent(action, deleted_ids=tuple(ids), project_id=project_id)
    return WebhookEvent(action, project_id=project_id)


def _is_key(value: Any) -> bool:
    """A value that can look a task up by id (a JSON list or object cannot)."""
    return isinstance(value, (int, str, float)) or value is None


def _show(value: Any) -> str:
    """A client's value for a message, cut short (a message must not echo megabytes)."""
    text = repr(value)
    return text if len(text) <= 60 else f"{text[:57]}..."


_NAME_KEYS = ("email", "username", "first_name", "last_name")


def _check_annotation(annotation: dict) -> dict:
    """Refuse what the store cannot hold: an id out of range, a timestamp that is not a usable time,
    an annotator name past ``MAX_NAME_CHARS`` or with bidi controls, a string past ``MAX_FIELD_CHARS``."""
    ann_id = annotation.get("id")
    if not isinstance(ann_id, int) or isinstance(ann_id, bool):
        raise SchemaMismatchError(f"annotation has no integer 'id' (got {_show(ann_id)})")
    if not is_ls_id(ann_id):
        raise SchemaMismatchError(f"annotation 'id' must be an integer from 1 to {MAX_ID}, got {ann_id}")
    _check_annotator(annotation.get("completed_by"), ann_id)
    for key in ("created_at", "updated_at"):
        value = annotation.get(key)
        if value is None or value == "":
            continue
        if not isinstance(value, str):
            raise SchemaMismatchError(
                f"annotation {ann_id}: '{key}' must be an ISO-8601 time string such as "
                f"'2026-11-24T09:00:00Z', got {type(value).__name__}"
            )
        if len(value) > MAX_FIELD_CHARS:
            break  # refused with the other long strings below
        try:
            parsed = datetime.fromisoformat(value.replace(" ", "T"))
        except ValueError:
            continue  # the store dates an unreadable time "now", as Label Studio's own API may send
        try:
            (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).astimezone(UTC)
        except OverflowError:
            raise SchemaMismatchError(
                f"annotation {ann_id}: '{key}' {value!r} is out of range in UTC; "
                "send a time such as '2026-11-24T09:00:00Z'"
            ) from None
    _check_lengths(annotation, f"annotation {ann_id}", MAX_FIELD_CHARS)
    return annotation


def _check_annotator(completed_by: Any, ann_id: int) -> None:
    """The annotator (``completed_by``: an id, a name or a user object) within the name limits."""
    what = f"annotation {ann_id}: the annotator"
    if isinstance(completed_by, dict):
        values = [(f"completed_by.{k}", completed_by.get(k)) for k in _NAME_KEYS]
        user_id = completed_by.get("id")
    else:
        values, user_id = [("completed_by", completed_by)], completed_by
    if isinstance(user_id, int) and not isinstance(user_id, bool) and not is_ls_id(user_id):
        raise SchemaMismatchError(f"{what}'s id must be an integer from 1 to {MAX_ID}, got {user_id}")
    for key, value in values:
        if not isinstance(value, str):
            continue
        if len(value) > MAX_NAME_CHARS:
            raise SchemaMismatchError(
                f"{what} ('{key}') has {len(value)} characters; at most {MAX_NAME_CHARS} "
                "are accepted for an email, username or name"
            )
        if bad := _BIDI.search(value):
            raise SchemaMismatchError(
                f"{what} ('{key}') holds the bidi control character U+{ord(bad.group()):04X}, "
                "which can make a name display as another; send the plain name"
            )


def _check_task(task: dict, task_id: Any, config: LabelConfig | None) -> None:
    """The task's text within ``MAX_TEXT_CHARS`` and not empty once normalized; other strings shorter."""
    what = f"task {task_id if isinstance(task_id, int) else '?'}"
    data = task.get("data")
    if isinstance(data, dict):
        for key, value in data.items():
            if not isinstance(value, str):
                continue
            if config is not None and key == config.value_key:
                _check_text(value, what, key)
            elif len(value) > (MAX_FIELD_CHARS if config is not None else MAX_TEXT_CHARS):
                limit = MAX_FIELD_CHARS if config is not None else MAX_TEXT_CHARS
                raise SchemaMismatchError(f"{what}: data['{_cut(key)}'] has {len(value)} characters; at most {limit}")
    _check_lengths({k: v for k, v in task.items() if k != "data"}, what, MAX_FIELD_CHARS)


def _check_lengths(item: Any, what: str, limit: int) -> None:
    """Refuse any string key or value past ``limit`` characters anywhere inside ``item``."""
    stack = [(item, "")]
    while stack:
        value, path = stack.pop()
        if isinstance(value, dict):
            for key, child in value.items():
                if isinstance(key, str) and len(key) > limit:
                    raise SchemaMismatchError(
                        f"{what}: a key of {path or 'the object'} has {len(key)} characters; at most {limit}"
                    )
                stack.append((child, f"{path}.{key}" if path else str(key)))
        elif isinstance(value, list):
            stack.extend((child, f"{path}[{i}]") for i, child in enumerate(value))
        elif isinstance(value, str) and len(value) > limit:
            raise SchemaMismatchError(f"{what}: '{_cut(path)}' has {len(value)} characters; at most {limit}")


def _cut(text: str, n: int = 80) -> str:
    return text if len(text) <= n else f"{text[: n - 3]}..."


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
        raise SchemaMismatchError(
            f"the /setup 'schema' must be the labeling config XML string, got {type(schema).__name__}"
        )
    try:
        theirs = parse_label_config(schema)
    except SchemaMismatchError as exc:
        raise SchemaMismatchError(f"the /setup 'schema' (the project's labeling config) is unusable: {exc}") from None
    if (theirs.from_name, theirs.to_name, theirs.value_key) != (config.from_name, config.to_name, config.value_key):
        raise SchemaMismatchError(
            f'the project\'s labeling config has <Choices name="{theirs.from_name}" '
            f"toName=\"{theirs.to_name}\"> reading data['{theirs.value_key}']; this backend expects "
            f'<Choices name="{config.from_name}" toName="{config.to_name}"> reading '
            f"data['{config.value_key}']"
        )
    missing = [label for label in config.labels if label not in theirs.labels]
    extra = [label for label in theirs.labels if label not in config.labels]
    if missing or extra:
        parts = ([f"lacks {', '.join(missing)}"] if missing else []) + (
            [f"has {', '.join(extra)} unknown to the backend"] if extra else []
        )
        raise SchemaMismatchError(
            f"the project's labeling config {' and '.join(parts)}; give Label Studio the backend's "
            "label config (annotator connect) or retrain with the new label set"
        )
