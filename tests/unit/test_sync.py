"""sync: Label Studio annotations (webhook payloads or API dicts) land in the store exactly once."""

from __future__ import annotations

import copy

import pytest

from annotator import SchemaMismatchError, UnknownLabelError, record_annotation, record_deletions
from annotator.labels import load_label_config
from annotator.labelstudio.client import annotation_from_ls, choices_result, labels_from_result
from annotator.text.normalize import clause_id
from annotator.types import Clause

CONFIG = load_label_config()
TEXT = "对符合条件的企业给予贷款贴息支持。"


def task(task_id: int = 7, text: str = TEXT, **data) -> dict:
    return {"id": task_id, "data": {"text": text, "section": "第三章 金融支持", **data}, "project": 1}


def annotation(
    ann_id: int = 11, choices=("财政支持",), updated_at: str = "2024-05-01T10:00:00.000000Z", **extra
) -> dict:
    return {
        "id": ann_id,
        "task": 7,
        "completed_by": 1,
        "was_cancelled": False,
        "created_at": "2024-05-01T10:00:00.000000Z",
        "updated_at": updated_at,
        "result": [{"from_name": "labels", "to_name": "text", "type": "choices", "value": {"choices": list(choices)}}],
        **extra,
    }


def test_created_annotation_is_stored_with_its_clause(store):
    assert record_annotation(store, annotation(choices=["企业", "金融支持"]), task(), CONFIG) == "created"
    [ann] = store.annotations()
    assert ann.clause_id == clause_id(TEXT)
    assert ann.labels == ("金融支持", "企业")  # label-set order
    assert (ann.annotator, ann.source, ann.ls_annotation_id, ann.ls_task_id) == ("1", "label_studio", 11, 7)
    clause = store.get_clause(clause_id(TEXT))
    assert (clause.text, clause.section) == (TEXT, "第三章 金融支持")


def test_repeated_event_changes_nothing(store):
    record_annotation(store, annotation(), task(), CONFIG)
    assert record_annotation(store, annotation(), task(), CONFIG) == "unchanged"
    assert store.count_annotations() == 1 and store.count_clauses() == 1
    assert len(store.annotation_history(store.annotations()[0].id)) == 1


def test_update_replaces_labels_and_keeps_history(store):
    record_annotation(store, annotation(), task(), CONFIG)
    later = annotation(choices=["金融支持"], updated_at="2024-05-01T10:05:00.000000Z")
    assert record_annotation(store, later, task(), CONFIG) == "updated"
    [ann] = store.annotations()
    assert ann.labels == ("金融支持",)
    assert [h["labels"] for h in store.annotation_history(ann.id)] == [["财政支持"], ["金融支持"]]


def test_out_of_order_older_update_is_ignored(store):
    record_annotation(store, annotation(choices=["金融支持"], updated_at="2024-05-01T10:05:00Z"), task(), CONFIG)
    assert record_annotation(store, annotation(updated_at="2024-05-01T10:00:00Z"), task(), CONFIG) == "stale"
    assert store.annotations()[0].labels == ("金融支持",)


def test_skipped_annotation_counts_as_deleted(store):
    record_annotation(store, annotation(), task(), CONFIG)
    assert record_annotation(store, annotation(was_cancelled=True, result=[]), task(), CONFIG) == "deleted"
    assert store.annotations() == []
    assert record_annotation(store, annotation(ann_id=12, was_cancelled=True, result=[]), task(), CONFIG) == "ignored"


def test_unknown_label_stores_nothing_and_names_the_closest(store):
    with pytest.raises(UnknownLabelError) as info:
        record_annotation(store, annotation(choices=["财政支持", "财政补助"]), task(), CONFIG)
    assert str(info.value).startswith(
        "annotation 11: label '财政补助' is not in the label set; did you mean '财政支持'? known: 金融支持, "
    )
    assert store.count_annotations() == 0 and store.count_clauses() == 0


def test_task_without_text(store):
    bad = task()
    del bad["data"]["text"]
    with pytest.raises(SchemaMismatchError) as info:
        record_annotation(store, annotation(), bad, CONFIG)
    assert str(info.value) == (
        "task 7 has no text at data['text']; the labeling config must contain <Text value=\"$text\">"
    )


@pytest.mark.parametrize("ann_id", [None, "11", True])
def test_annotation_without_integer_id(store, ann_id):
    with pytest.raises(SchemaMismatchError, match=r"^annotation has no integer 'id' \(got "):
        record_annotation(store, annotation(ann_id=ann_id), task(), CONFIG)


def test_result_that_is_not_a_choices_list(store):
    with pytest.raises(SchemaMismatchError) as info:
        record_annotation(store, annotation(result="财政支持"), task(), CONFIG)
    assert str(info.value) == (
        "annotation 11 has no choices result from 'labels'; the labeling config must use <Choices name=\"labels\">"
    )
    assert store.count_annotations() == 0


def test_result_from_another_choices_tag_is_a_schema_mismatch(store):
    other = annotation()
    other["result"][0]["from_name"] = "category"
    with pytest.raises(SchemaMismatchError):
        record_annotation(store, other, task(), CONFIG)


def test_a_clause_id_in_task_data_never_picks_the_clause_a_label_attaches_to(store, caplog):
    """The label goes to the clause whose text the task shows (a reused task id, or a crafted payload,
    cannot attach it to an unrelated stored clause)."""
    store.add_clauses([Clause("abc123def4567890", "对高校科研人员给予奖励。")])
    record_annotation(store, annotation(), task(clause_id="abc123def4567890"), CONFIG)
    assert store.annotations()[0].clause_id == clause_id(TEXT)
    assert "the task's data names clause abc123def4567890, but its text is clause" in caplog.text


def test_an_annotation_of_another_project_is_refused_and_nothing_is_stored(store):
    with pytest.raises(
        SchemaMismatchError,
        match="annotation 11 belongs to Label Studio project 9, but this "
        r"backend serves project 3 \(one backend, one project home\)",
    ):
        record_annotation(store, annotation(), dict(task(), project=9), CONFIG, project_id=3)
    assert store.annotations() == [] and store.count_clauses() == 0


def test_not_a_policy_measure_is_stored_counted_and_never_trained_on(store):
    not_policy = annotation(choices=["不是政策措施"])
    assert record_annotation(store, not_policy, task(), CONFIG) == "created"
    assert store.annotations() == []  # what training, agreement and export read
    (stored,) = store.annotations(not_policy=True)
    assert stored.labels == () and stored.not_policy and stored.clause_id == clause_id(TEXT)
    assert clause_id(TEXT) in store.labeled_clause_ids()  # never asked again


def test_a_text_of_only_invisible_characters_is_refused(store):
    with pytest.raises(SchemaMismatchError, match="task 7 has no text at data\\['text'\\]"):
        record_annotation(store, annotation(), task(text="\u200b\u200b\ufeff"), CONFIG)
    assert store.count_clauses() == 0


def test_task_text_is_normalized_to_the_ingested_clause(store):
    record_annotation(store, annotation(), task(text="对符合条件的企业给予贷款 贴息支持。 "), CONFIG)
    assert store.annotations()[0].clause_id == clause_id(TEXT)
    assert store.clauses()[0].text == TEXT


def test_annotator_email_from_an_expanded_user(store):
    record_annotation(store, annotation(completed_by={"id": 3, "email": "ann@example.com"}), task(), CONFIG)
    record_annotation(store, annotation(ann_id=12, completed_by=None), task(), CONFIG)
    assert [a.annotator for a in store.annotations()] == ["ann@example.com", "unknown"]


def test_task_id_from_the_annotation_when_the_task_has_none(store):
    bare = task()
    del bare["id"]
    record_annotation(store, annotation(), bare, CONFIG)
    assert store.annotations()[0].ls_task_id == 7


def test_two_annotators_on_one_task(store):
    record_annotation(store, annotation(11, completed_by=1), task(), CONFIG)
    record_annotation(store, annotation(12, ["金融支持"], completed_by=2), task(), CONFIG)
    assert {a.annotator: a.labels for a in store.annotations()} == {"1": ("财政支持",), "2": ("金融支持",)}
    assert store.count_clauses() == 1


def test_record_deletions_counts_live_ones(store):
    for ann_id in (11, 12):
        record_annotation(store, annotation(ann_id), task(), CONFIG)
    assert record_deletions(store, [11, 99]) == 1
    assert record_deletions(store, [11]) == 0
    assert [a.ls_annotation_id for a in store.annotations()] == [12]
    assert len(store.annotations(include_deleted=True)) == 2


def test_payload_is_not_modified(store):
    ann, t = annotation(), task()
    before = copy.deepcopy((ann, t))
    record_annotation(store, ann, t, CONFIG)
    assert (ann, t) == before


# The pure Label Studio converters sync relies on (annotator.labelstudio.client) ------------------------
def test_choices_result_uses_the_config_names():
    assert choices_result(["金融支持", "企业"], CONFIG) == [
        {"from_name": "labels", "to_name": "text", "type": "choices", "value": {"choices": ["金融支持", "企业"]}}
    ]


def test_labels_from_result_round_trips_and_drops_repeats():
    result = choices_result(["金融支持", "企业"], CONFIG) + choices_result(["企业"], CONFIG)
    assert labels_from_result(result, CONFIG) == ("金融支持", "企业")


@pytest.mark.parametrize(
    "result",
    [
        None,
        "财政支持",
        {"choices": ["财政支持"]},
        [{"from_name": "labels", "value": {"choices": "财政支持"}}],
        [{"from_name": "labels", "value": {"choices": [1]}}],
        [{"from_name": "labels", "value": None}],
    ],
)
def test_labels_from_result_refuses_what_is_not_a_choices_result(result):
    assert labels_from_result(result, CONFIG) is None


def test_labels_from_result_skips_other_tags():
    result = [
        {"from_name": "comment", "type": "textarea", "value": {"text": ["看不懂"]}},
        "junk",
        *choices_result(["企业"], CONFIG),
    ]
    assert labels_from_result(result, CONFIG) == ("企业",)


def test_annotation_from_ls_fields():
    fields, labels = annotation_from_ls(
        annotation(completed_by={"id": 5}), task(text=" 对符合条件的企业给予贷款贴息支持。"), CONFIG
    )
    assert labels == ("财政支持",)
    assert fields == {
        "ls_annotation_id": 11,
        "ls_task_id": 7,
        "annotator": "5",
        "created_at": "2024-05-01T10:00:00.000000Z",
        "updated_at": "2024-05-01T10:00:00.000000Z",
        "cancelled": False,
        "text": TEXT,
        "clause_id": clause_id(TEXT),
        "clause_id_given": None,
        "section": "第三章 金融支持",
        "project_id": 1,
    }


def test_sync_path_refuses_ids_and_times_the_store_cannot_hold(store):
    """Label Studio's API reaches the store through the same reader as webhooks: out-of-range
    values are refused (annotation ids) or replaced (times before year 1 in UTC), never a crash."""
    from annotator.errors import SchemaMismatchError
    from annotator.labelstudio.client import annotation_from_ls
    from annotator.storage.store import canonical_time

    config = load_label_config()
    task = {"id": 1, "data": {"text": "支持企业研发。"}}
    with pytest.raises(SchemaMismatchError, match=r"annotation has no integer 'id' \(got 9223372036854775808\)"):
        annotation_from_ls({"id": 2**63, "result": []}, task, config)
    with pytest.raises(SchemaMismatchError, match="task id 9223372036854775808 is out of range"):
        annotation_from_ls({"id": 1, "result": []}, dict(task, id=2**63), config)
    assert canonical_time("0001-01-01T00:00:00+14:00") > "2026"  # unreadable in UTC: now
