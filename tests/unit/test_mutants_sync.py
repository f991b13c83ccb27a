"""Tests written for mutants that mutmut found alive in annotator/cycle/sync.py (docs/mutation-testing.md).

``sync_project`` (``annotator sync``) had no unit test: only the end-to-end tests against a real
Label Studio reached it. Here a stand-in client serves the project's users and tasks, and the
test checks what ``annotator sync`` reports and what the store holds afterwards.
"""

from __future__ import annotations

from annotator import Annotation, Clause, record_annotation
from annotator.cycle.sync import sync_project
from annotator.labels import load_label_config
from annotator.text.normalize import clause_id

CONFIG = load_label_config()
FIRST = "对符合条件的企业给予贷款贴息支持。"
SECOND = "对引进的高层次人才给予安家补贴。"
GONE = "支持企业开展技术改造。"


def ls_annotation(ann_id, choices, user=1, cancelled=False):
    return {
        "id": ann_id,
        "completed_by": user,
        "was_cancelled": cancelled,
        "created_at": "2024-05-01T10:00:00Z",
        "updated_at": "2024-05-01T10:00:00Z",
        "result": [{"from_name": "labels", "to_name": "text", "type": "choices", "value": {"choices": list(choices)}}],
    }


def ls_task(task_id, text, *annotations, project=5):
    return {"id": task_id, "project": project, "data": {"text": text, "section": ""}, "annotations": list(annotations)}


class FakeClient:
    """What sync_project reads of Label Studio: its users and its project's tasks."""

    def __init__(self, tasks, users):
        self._tasks, self._users = tasks, users
        self.asked = []

    def users(self):
        return self._users

    def tasks(self, project_id):
        self.asked.append(project_id)
        return iter(self._tasks)


def test_sync_adds_new_annotations_reports_problems_and_marks_vanished_ones_deleted(store):
    # Before: one Label Studio annotation the project no longer has, and a seed label (never synced).
    record_annotation(store, ls_annotation(99, ["企业"]), ls_task(3, GONE), CONFIG)
    store.add_clauses([Clause(clause_id(SECOND), SECOND, None, "")])
    store.save_annotation(Annotation(clause_id(SECOND), ("人才队伍",), "seed", "seed"))
    client = FakeClient(
        [
            ls_task(
                7, FIRST, ls_annotation(11, ["金融支持", "企业"], user=1), ls_annotation(12, ["没有这个标签"], user=2)
            ),
            ls_task(8, SECOND, ls_annotation(13, ["人才队伍"], user=2, cancelled=True)),
            ls_task(9, SECOND),
        ],
        users=[{"id": 1, "email": "ann@example.org"}, {"id": 2}],
    )

    report = sync_project(store, client, 5, CONFIG)

    assert client.asked == [5]
    assert report["project_id"] == 5
    assert report["counts"] == {"created": 1, "ignored": 1, "deleted_missing": 1}
    [problem] = report["problems"]
    assert problem.startswith("annotation 12: ") and "没有这个标签" in problem
    live = {(a.clause_id, a.labels, a.annotator, a.source, a.ls_annotation_id) for a in store.annotations()}
    assert live == {
        (clause_id(FIRST), ("金融支持", "企业"), "ann@example.org", "label_studio", 11),
        (clause_id(SECOND), ("人才队伍",), "seed", "seed", None),
    }

    # A second sync of the same project changes nothing.
    again = sync_project(store, client, 5, CONFIG)
    assert again["counts"] == {"unchanged": 1, "ignored": 1, "deleted_missing": 0}
    assert len(again["problems"]) == 1


def test_sync_of_an_empty_project_deletes_every_label_studio_annotation(store):
    record_annotation(store, ls_annotation(21, ["企业"]), ls_task(3, FIRST), CONFIG)
    record_annotation(store, ls_annotation(22, ["人才队伍"]), ls_task(4, SECOND), CONFIG)
    report = sync_project(store, FakeClient([], users=[]), 5, CONFIG)
    assert report == {"project_id": 5, "counts": {"deleted_missing": 2}, "problems": []}
    assert store.annotations() == []
