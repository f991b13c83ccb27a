"""Bring Label Studio annotations into the store, from webhook events or a full re-sync.

Idempotent by Label Studio annotation id: a repeated event changes nothing, an update replaces the
labels (the old ones stay in the history), an out-of-order older update is ignored, a deletion marks
the annotation deleted. A skipped ("cancelled") annotation is not a label and is treated as deleted.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable

from ..errors import SchemaMismatchError, UnknownLabelError
from ..labels import LabelConfig, unknown_label_message
from ..labelstudio.client import LabelStudioClient, annotation_from_ls
from ..storage.store import Store
from ..types import Annotation, Clause

log = logging.getLogger(__name__)


def record_annotation(
    store: Store, annotation: dict, task: dict, config: LabelConfig, *, project_id: int | None = None
) -> str:
    """Store one Label Studio annotation; returns created/updated/unchanged/stale/deleted/ignored.

    The label attaches to the clause whose text the task shows (the clause id is the hash of the
    normalized text), never to a clause named only by the task's id or a ``clause_id`` in its data.
    A choice of the config's "not a policy measure" answer is stored as such (no labels). The
    annotation remembers the pre-fill its task showed, so agreement can say which double
    annotations were blind.

    Parameters
    ----------
    project_id : the connected Label Studio project; an annotation of another project is refused.

    Raises
    ------
    SchemaMismatchError
        If the payload lacks an annotation id or task text, or comes from another project.
    UnknownLabelError
        If a chosen label is not in the label set (nothing is stored).
    """
    fields, labels = annotation_from_ls(annotation, task, config)
    if project_id is not None and fields["project_id"] is not None and fields["project_id"] != project_id:
        raise SchemaMismatchError(
            f"annotation {fields['ls_annotation_id']} belongs to Label Studio project {fields['project_id']}, "
            f"but this backend serves project {project_id} (one backend, one project home); nothing was stored"
        )
    if fields["clause_id_given"] not in (None, fields["clause_id"]):
        log.warning(
            "annotation %s: the task's data names clause %s, but its text is clause %s; the label "
            "attaches to the clause whose text was shown",
            fields["ls_annotation_id"],
            fields["clause_id_given"],
            fields["clause_id"],
        )
    if fields["cancelled"]:
        return "deleted" if store.delete_ls_annotation(fields["ls_annotation_id"]) else "ignored"
    if labels is None:
        raise SchemaMismatchError(
            f"annotation {fields['ls_annotation_id']} has no choices result from "
            f"'{config.from_name}'; the labeling config must use <Choices name=\"{config.from_name}\">"
        )
    not_policy = config.not_policy is not None and config.not_policy in labels
    if not_policy:
        if len(labels) > 1:
            log.warning(
                "annotation %s chose '%s' and labels; it is stored as not a policy measure",
                fields["ls_annotation_id"],
                config.not_policy,
            )
        labels = ()
    for label in labels:
        if label not in config.labels:
            raise UnknownLabelError(
                f"annotation {fields['ls_annotation_id']}: " + unknown_label_message(label, config.labels)
            )
    ordered = tuple(label for label in config.labels if label in labels)
    annotator = annotator_names(store).get(fields["annotator"], fields["annotator"])
    with store.transaction():
        store.add_clauses([Clause(fields["clause_id"], fields["text"], None, fields["section"])])
        pushed = store.pushed_task(fields["clause_id"])
        _, what = store.save_annotation(
            Annotation(
                clause_id=fields["clause_id"],
                labels=ordered,
                annotator=annotator,
                source="label_studio",
                ls_annotation_id=fields["ls_annotation_id"],
                ls_task_id=fields["ls_task_id"],
                created_at=fields["created_at"],
                updated_at=fields["updated_at"],
                not_policy=not_policy,
                prefill_version=pushed.prefill_version if pushed else None,
            )
        )
    return what


USERS_KEY = "ls_users"


def remember_users(store: Store, client: LabelStudioClient) -> dict[str, str]:
    """Store Label Studio's user id -> email map, so annotations name real people, not ids; an
    annotation recorded under a bare user id (its person joined after the last look) is renamed."""
    names = {str(u["id"]): u.get("email") or str(u["id"]) for u in client.users() if "id" in u}
    if names != annotator_names(store):
        store.set_meta(USERS_KEY, json.dumps(names, ensure_ascii=False))
    store.rename_annotators(names)
    return names


def annotator_names(store: Store) -> dict[str, str]:
    """The remembered user id -> email map (empty before ``connect``/``sync``)."""
    return json.loads(store.get_meta(USERS_KEY) or "{}")


def record_deletions(store: Store, ls_annotation_ids: Iterable[int]) -> int:
    """Mark Label Studio annotations deleted; returns how many were live in the store."""
    return sum(store.delete_ls_annotation(i) for i in ls_annotation_ids)


def sync_project(store: Store, client: LabelStudioClient, project_id: int, config: LabelConfig) -> dict:
    """Reconcile the store with every annotation in a Label Studio project.

    Annotations missing from the store are added, changed ones updated, and Label Studio
    annotations the store holds but the project no longer has are marked deleted.
    """
    remember_users(store, client)
    counts: dict[str, int] = {}
    problems: list[str] = []
    seen: set[int] = set()
    for task in client.tasks(project_id):
        for annotation in task.get("annotations") or []:
            if isinstance(annotation.get("id"), int):
                seen.add(annotation["id"])
            try:
                what = record_annotation(store, annotation, task, config, project_id=project_id)
            except UnknownLabelError as exc:
                problems.append(str(exc))
                continue
            counts[what] = counts.get(what, 0) + 1
    stale = [
        a.ls_annotation_id
        for a in store.annotations(sources=["label_studio"], not_policy=None)
        if a.ls_annotation_id is not None and a.ls_annotation_id not in seen
    ]
    counts["deleted_missing"] = record_deletions(store, stale)
    log.info("synced project %d: %s", project_id, counts)
    return {"project_id": project_id, "counts": counts, "problems": problems}
