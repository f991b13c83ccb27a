"""backend.ls_format: Label Studio payloads are validated at the edge and converted both ways."""

from __future__ import annotations


import pytest

from annotator import InputError, SchemaMismatchError, record_annotation
from annotator.labels import load_label_config, parse_label_config
from annotator.text.normalize import clause_id

CONFIG = load_label_config()
TEXT = "对符合条件的企业给予贷款贴息支持。"


import backend.ls_format as ls_format


def ls_task(task_id=7, text=TEXT) -> dict:
    return {"id": task_id, "data": {"text": text, "section": "第三章"}, "project": 3}


def ls_annotation(ann_id=11, task_id=7, choices=("财政支持",)) -> dict:
    return {
        "id": ann_id,
        "task": task_id,
        "completed_by": 1,
        "was_cancelled": False,
        "created_at": "2024-05-01T10:00:00Z",
        "updated_at": "2024-05-01T10:00:00Z",
        "result": [{"from_name": "labels", "to_name": "text", "type": "choices", "value": {"choices": list(choices)}}],
    }


# /predict ---------------------------------------------------------------------------------------
def test_parse_predict_returns_ids_and_texts_in_order():
    payload = {
        "tasks": [ls_task(7, TEXT), ls_task(8, "设立专项资金。"), {"data": {"text": "无编号"}}],
        "project": "3.1700000000",
        "label_config": CONFIG.xml,
    }
    assert ls_format.parse_predict(payload, CONFIG) == [(7, TEXT), (8, "设立专项资金。"), (None, "无编号")]


def test_parse_predict_reads_the_configured_data_key():
    config = parse_label_config(
        '<View><Text name="t" value="$clause"/><Choices name="c" toName="t"><Choice value="甲"/></Choices></View>'
    )
    assert ls_format.parse_predict({"tasks": [{"id": 1, "data": {"clause": "条款"}}]}, config) == [(1, "条款")]


def test_parse_predict_with_no_tasks_is_an_empty_batch():
    assert ls_format.parse_predict({"tasks": []}, CONFIG) == []


@pytest.mark.parametrize(
    "payload, message",
    [
        ([], "the /predict body must be a JSON object, got list"),
        (None, "the /predict body must be a JSON object, got NoneType"),
        ({}, "the /predict body needs a 'tasks' list"),
        ({"tasks": {"id": 1}}, "the /predict body needs a 'tasks' list"),
        ({"tasks": [ls_task(), "oops"]}, "task 1 has no 'data' object"),
        ({"tasks": [{"id": 5, "data": None}]}, "task 0 has no 'data' object"),
        (
            {"tasks": [{"id": 5, "data": {"body": TEXT}}]},
            "task 5 has no text at data['text']; the labeling config must contain <Text value=\"$text\">",
        ),
        (
            {"tasks": [{"id": 5, "data": {"text": "   "}}]},
            "task 5 has no text at data['text']; the labeling config must contain <Text value=\"$text\">",
        ),
    ],
)
def test_bad_predict_body_says_what_is_wrong(payload, message):
    with pytest.raises(SchemaMismatchError) as info:
        ls_format.parse_predict(payload, CONFIG)
    assert str(info.value) == message
    assert isinstance(info.value, InputError)  # answered with 400


def test_prediction_is_a_choices_result_with_score_and_version():
    from annotator import prediction_payload

    assert prediction_payload(["金融支持", "企业"], 0.876543, "policy-clf-v3", CONFIG) == {
        "model_version": "policy-clf-v3",
        "score": 0.876543,
        "result": [
            {"from_name": "labels", "to_name": "text", "type": "choices", "value": {"choices": ["金融支持", "企业"]}}
        ],
    }
    # No labels (a cold start, a blind overlap task without a pre-fill): no region at all.
    assert prediction_payload([], 0.25, "policy-clf-cold-start", CONFIG, task_id=7) == {
        "model_version": "policy-clf-cold-start",
        "score": 0.25,
        "result": [],
        "task": 7,
    }


def test_prediction_accepts_numpy_scores():
    from annotator import prediction_payload

    np = pytest.importorskip("numpy")
    out = prediction_payload(("企业",), np.float32(0.5), "policy-clf-v1", CONFIG)
    assert type(out["score"]) is float and out["score"] == 0.5


# /webhook ---------------------------------------------------------------------------------------
def test_annotation_created_carries_the_annotation_and_its_task():
    body = {
        "action": "ANNOTATION_CREATED",
        "annotation": ls_annotation(),
        "task": ls_task(),
        "project": {"id": 3, "title": "Policy clauses"},
    }
    event = ls_format.parse_webhook(body)
    assert event.action == "ANNOTATION_CREATED" and event.project_id == 3
    assert event.annotations == ((ls_annotation(), ls_task()),)
    assert event.deleted_ids == ()


def test_parsed_event_is_what_record_annotation_stores(store):
    body = {
        "action": "ANNOTATION_UPDATED",
        "annotation": ls_annotation(choices=["企业", "金融支持"]),
        "task": ls_task(),
        "project": {"id": 3},
    }
    [(annotation, task)] = ls_format.parse_webhook(body).annotations
    assert record_annotation(store, annotation, task, CONFIG) == "created"
    assert [(a.clause_id, a.labels) for a in store.annotations()] == [(clause_id(TEXT), ("金融支持", "企业"))]


def test_bulk_created_annotations_are_matched_to_their_tasks():
    body = {
        "action": "ANNOTATIONS_CREATED",
        "annotations": [ls_annotation(11, 8), ls_annotation(12, 7)],
        "tasks": [ls_task(7), ls_task(8, "设立专项资金支持。")],
        "project": 3,
    }
    event = ls_format.parse_webhook(body)
    assert [(a["id"], t["id"]) for a, t in event.annotations] == [(11, 8), (12, 7)]
    assert event.project_id == 3


def test_one_task_serves_every_annotation():
    body = {
        "action": "ANNOTATIONS_CREATED",
        "annotations": [ls_annotation(11), ls_annotation(12)],
        "task": [ls_task(7)],
    }
    assert [t["id"] for _, t in ls_format.parse_webhook(body).annotations] == [7, 7]


def test_deleted_annotations_give_their_ids():
    body = {"action": "ANNOTATIONS_DELETED", "annotations": [{"id": 11}, {"id": 12}], "project": {"id": 3}}
    event = ls_format.parse_webhook(body)
    assert (event.deleted_ids, event.annotations, event.project_id) == ((11, 12), (), 3)


@pytest.mark.parametrize("action", ["START_TRAINING", "PROJECT_UPDATED", "SOMETHING_NEW"])
def test_other_actions_carry_nothing(action):
    event = ls_format.parse_webhook({"action": action, "project": {"id": 3}})
    assert (event.action, event.annotations, event.deleted_ids, event.project_id) == (action, (), (), 3)


@pytest.mark.parametrize("project", [None, "3", True, {"id": "3"}, {}])
def test_project_id_is_an_integer_or_none(project):
    assert ls_format.parse_webhook({"action": "START_TRAINING", "project": project}).project_id is None


@pytest.mark.parametrize(
    "body, message",
    [
        ("ANNOTATION_CREATED", "the webhook body must be a JSON object, got str"),
        ({}, "the webhook body needs an 'action' string"),
        ({"action": ""}, "the webhook body needs an 'action' string"),
        ({"action": 5}, "the webhook body needs an 'action' string"),
        ({"action": "ANNOTATION_CREATED", "task": ls_task()}, "ANNOTATION_CREATED needs an 'annotation' object"),
        (
            {"action": "ANNOTATIONS_CREATED", "annotations": [], "tasks": []},
            "ANNOTATIONS_CREATED needs an 'annotation' object",
        ),
        (
            {"action": "ANNOTATION_CREATED", "annotation": ls_annotation()},
            "ANNOTATION_CREATED needs the 'task' the annotation belongs to",
        ),
        (
            {"action": "ANNOTATION_UPDATED", "annotation": ls_annotation(), "task": "7"},
            "ANNOTATION_UPDATED needs the 'task' the annotation belongs to",
        ),
        (
            {
                "action": "ANNOTATIONS_CREATED",
                "annotations": [ls_annotation(11), ls_annotation(12), ls_annotation(13)],
                "tasks": [ls_task(7), ls_task(8)],
            },
            "ANNOTATIONS_CREATED needs the 'task' the annotation belongs to",
        ),
        (
            {"action": "ANNOTATIONS_CREATED", "annotations": ["x"], "tasks": [ls_task()]},
            "annotation must be a JSON object, got str",
        ),
        ({"action": "ANNOTATIONS_DELETED"}, "ANNOTATIONS_DELETED needs an 'annotations' list"),
        (
            {"action": "ANNOTATIONS_DELETED", "annotations": [{"id": 1}, {"id": "2"}]},
            "every deleted annotation needs an integer 'id'",
        ),
        ({"action": "ANNOTATIONS_DELETED", "annotations": [11]}, "every deleted annotation needs an integer 'id'"),
        (
            {"action": "ANNOTATIONS_DELETED", "annotations": [{"id": False}]},
            "every deleted annotation needs an integer 'id'",
        ),
    ],
)
def test_bad_webhook_body_says_what_is_wrong(body, message):
    with pytest.raises(SchemaMismatchError) as info:
        ls_format.parse_webhook(body)
    assert str(info.value) == message


# Regressions found by tests/unit/test_fuzz_backend.py -----------------------------------------
JSON_ERROR = "the request body must be JSON (Content-Type: application/json)"


@pytest.mark.parametrize(
    "data, message",
    [
        (b"[" * 5000 + b"]" * 5000, f"{JSON_ERROR}: nested deeper than 64 levels"),  # was RecursionError, 500
        (b"[" * 65 + b"]" * 65, f"{JSON_ERROR}: nested deeper than 64 levels"),
        (
            b'{"tasks": [{"data": {"text": "\\ud800"}}]}',  # was UnicodeEncodeError in the store or the reply
            f"{JSON_ERROR}: a string holds an unpaired UTF-16 surrogate (\\ud800); send valid Unicode text",
        ),
        (
            b'{"\\udfff": 1}',
            f"{JSON_ERROR}: a string holds an unpaired UTF-16 surrogate (\\udfff); send valid Unicode text",
        ),
        (b"\xff\xfe not json", f"{JSON_ERROR}: not UTF-8 text (invalid byte 0xff at offset 0)"),
        ('{"tasks": "财政"}'.encode("gbk"), f"{JSON_ERROR}: not UTF-8 text (invalid byte 0xb2 at offset 11)"),
        (b'{"tasks": [', f"{JSON_ERROR}: invalid JSON at line 1 column 12 (Expecting value)"),
        (b"  ", f"{JSON_ERROR}: the body is empty"),
        (b'{"tasks": ' + b"9" * 5000 + b"}", f"{JSON_ERROR}: a number with more than 4300 digits"),
    ],
)
def test_unusable_json_bodies_say_why(data, message):
    with pytest.raises(SchemaMismatchError) as info:
        ls_format.parse_json_body(data, is_json=True)
    assert str(info.value) == message


def test_json_body_accepts_paired_surrogates_a_bom_and_64_levels():
    assert ls_format.parse_json_body(b'{"t": "\\ud83d\\ude00"}', is_json=True) == {"t": "😀"}
    assert ls_format.parse_json_body("\ufeff[1]".encode(), is_json=True) == [1]
    assert ls_format.parse_json_body(b"[" * 64 + b"]" * 64, is_json=True) is not None


def test_json_body_needs_a_json_content_type():
    with pytest.raises(SchemaMismatchError) as info:
        ls_format.parse_json_body(b"{}", is_json=False, content_type="text/plain")
    assert str(info.value) == f"{JSON_ERROR}, got Content-Type 'text/plain'"


def created(annotation, task=None) -> dict:
    return {"action": "ANNOTATION_CREATED", "annotation": annotation, "task": task or ls_task()}


@pytest.mark.parametrize(
    "body, message",
    [
        # ids beyond SQLite's INTEGER range were an OverflowError in the store (500)
        (
            created(ls_annotation(ann_id=2**63)),
            "annotation 'id' must be an integer from 1 to 9223372036854775807, got 9223372036854775808",
        ),
        (
            created(ls_annotation(), ls_task(task_id=10**20)),
            "task 'id' must be an integer from 1 to 9223372036854775807, got 100000000000000000000",
        ),
        (
            created({**ls_annotation(), "task": 2**63}, {"data": {"text": TEXT}}),  # a task without its own id
            "task 'id' must be an integer from 1 to 9223372036854775807, got 9223372036854775808",
        ),
        (
            {"action": "ANNOTATIONS_DELETED", "annotations": [{"id": 2**64}]},
            "deleted annotation 'id' must be an integer from 1 to 9223372036854775807, got 18446744073709551616",
        ),
        (created({**ls_annotation(), "id": "11"}), "annotation has no integer 'id' (got '11')"),
        # a time that overflows when moved to UTC was an OverflowError in the store (500)
        (
            created({**ls_annotation(), "created_at": "0001-01-01T00:00:00+14:00"}),
            "annotation 11: 'created_at' '0001-01-01T00:00:00+14:00' is out of range in UTC; "
            "send a time such as '2026-11-24T09:00:00Z'",
        ),
        (
            created({**ls_annotation(), "updated_at": "9999-12-31T23:59:59-14:00"}),
            "annotation 11: 'updated_at' '9999-12-31T23:59:59-14:00' is out of range in UTC; "
            "send a time such as '2026-11-24T09:00:00Z'",
        ),
        (
            created({**ls_annotation(), "updated_at": {"t": 1}}),
            "annotation 11: 'updated_at' must be an ISO-8601 time string such as '2026-11-24T09:00:00Z', got dict",
        ),
    ],
)
def test_values_the_store_cannot_hold_are_refused_at_the_edge(body, message):
    with pytest.raises(SchemaMismatchError) as info:
        ls_format.parse_webhook(body)
    assert str(info.value) == message


def test_an_unhashable_task_reference_falls_back_to_the_only_task():
    # {"task": [7]} in the annotation was a TypeError (unhashable) building the task lookup: 500
    body = created({**ls_annotation(), "task": [7]})
    assert [t["id"] for _, t in ls_format.parse_webhook(body).annotations] == [7]
    bulk = {
        "action": "ANNOTATIONS_CREATED",
        "annotations": [{**ls_annotation(11), "task": {"id": 8}}, ls_annotation(12, 8)],
        "tasks": [{**ls_task(7), "id": [7]}, ls_task(8)],
    }
    with pytest.raises(SchemaMismatchError) as info:
        ls_format.parse_webhook(bulk)
    assert str(info.value) == "task must be a JSON object, got NoneType"


def test_an_unreadable_time_is_left_to_the_store():
    body = created({**ls_annotation(), "created_at": "yesterday"})
    assert ls_format.parse_webhook(body).annotations[0][0]["created_at"] == "yesterday"


# /setup ---------------------------------------------------------------------------------------
def test_setup_accepts_the_backends_own_config_or_none():
    assert ls_format.check_setup({"project": "1.1", "schema": CONFIG.xml}, CONFIG) is None
    assert ls_format.check_setup({"project": "1.1"}, CONFIG) is None


@pytest.mark.parametrize(
    "schema, message",
    [
        (
            '<View><Text name="text" value="$text"/></View>',
            "the /setup 'schema' (the project's labeling config) is unusable: labeling config has no <Choices> tag; "
            'add <Choices name="labels" toName="text" choice="multiple"> with one <Choice value=...> per label',
        ),
        (
            "<View",
            "the /setup 'schema' (the project's labeling config) is unusable: labeling config is not valid "
            "XML: unclosed token: line 1, column 0",
        ),
        (5, "the /setup 'schema' must be the labeling config XML string, got int"),
        (
            CONFIG.xml.replace('<Choice value="企业"/>', ""),
            "the project's labeling config lacks 企业; give Label Studio the backend's label config "
            "(annotator connect) or retrain with the new label set",
        ),
        (
            CONFIG.xml.replace('<Choice value="园区"/>', '<Choice value="园区"/><Choice value="新标签"/>'),
            "the project's labeling config has 新标签 unknown to the backend; give Label Studio the backend's "
            "label config (annotator connect) or retrain with the new label set",
        ),
        (
            CONFIG.xml.replace('value="$text"', 'value="$clause"'),
            'the project\'s labeling config has <Choices name="labels" toName="text"> reading data[\'clause\']; '
            'this backend expects <Choices name="labels" toName="text"> reading data[\'text\']',
        ),
    ],
)
def test_setup_refuses_a_config_the_backend_cannot_serve(schema, message):
    with pytest.raises(SchemaMismatchError) as info:
        ls_format.check_setup({"project": "1.1", "schema": schema}, CONFIG)
    assert str(info.value) == message


# Limits at the edge (issue 16) ------------------------------------------------------------------
def predict_body(n=1, text=TEXT, **task):
    return {"tasks": [{"id": i + 1, "data": {"text": text}, **task} for i in range(n)]}


@pytest.mark.parametrize(
    "body, message",
    [
        (
            predict_body(ls_format.MAX_PREDICT_TASKS + 1),
            "the /predict body has 1001 tasks; at most 1000 are predicted per request: send them in smaller batches",
        ),
        (
            predict_body(1, "长" * (ls_format.MAX_TEXT_CHARS + 1)),
            "task 1: data['text'] has 5001 characters; at most 5000 are accepted (a clause is a sentence or a short "
            "paragraph)",
        ),
        (
            predict_body(101, "长" * 5000),
            "the /predict body holds more than 500000 characters of text (at task 100); send the tasks in smaller batches",
        ),
        (
            predict_body(1, "\u200b\u200d\ufeff"),
            "task 1: data['text'] is empty once normalized (only invisible characters such as zero-width spaces or "
            "bidi controls); send the clause's text",
        ),
        (
            predict_body(1, "\u202e\u2066\u200f"),
            "task 1: data['text'] is empty once normalized (only invisible characters such as zero-width spaces or "
            "bidi controls); send the clause's text",
        ),
        (
            {"tasks": [{"id": -3, "data": {"text": TEXT}}]},
            "task 0: 'id' must be an integer from 1 to 9223372036854775807, got -3",
        ),
        (
            {"tasks": [{"id": 0, "data": {"text": TEXT}}]},
            "task 0: 'id' must be an integer from 1 to 9223372036854775807, got 0",
        ),
        (
            {"tasks": [{"id": "x" * 500, "data": {"text": TEXT}}]},
            f"task 0: 'id' must be an integer from 1 to 9223372036854775807, got {('x' * 500)!r:.57}...",
        ),
    ],
)
def test_predict_limits_are_enforced_with_a_clear_message(body, message):
    with pytest.raises(SchemaMismatchError) as info:
        ls_format.parse_predict(body, CONFIG)
    assert str(info.value) == message


def test_predict_accepts_a_batch_at_the_limits():
    body = predict_body(ls_format.MAX_PREDICT_TASKS, "长" * 500)
    assert len(ls_format.parse_predict(body, CONFIG)) == 1000
    assert ls_format.parse_predict(predict_body(1, "长" * 5000), CONFIG)[0][1] == "长" * 5000


def bulk(n):
    return {
        "action": "ANNOTATIONS_CREATED",
        "annotations": [ls_annotation(i + 1, 7) for i in range(n)],
        "tasks": [ls_task(7)],
    }


LONG_EMAIL = "a" * 250 + "@x.cn"


@pytest.mark.parametrize(
    "body, message",
    [
        (
            bulk(ls_format.MAX_EVENT_ANNOTATIONS + 1),
            "ANNOTATIONS_CREATED carries 501 annotations; at most 500 are accepted per event",
        ),
        (
            {"action": "ANNOTATIONS_DELETED", "annotations": [{"id": i + 1} for i in range(501)]},
            "ANNOTATIONS_DELETED carries 501 annotations; at most 500 are accepted per event",
        ),
        (
            created({**ls_annotation(), "completed_by": {"id": 4, "email": LONG_EMAIL}}),
            "annotation 11: the annotator ('completed_by.email') has 255 characters; at most 254 are accepted for an "
            "email, username or name",
        ),
        (
            created({**ls_annotation(), "completed_by": "m" * 3_000_000}),
            "annotation 11: the annotator ('completed_by') has 3000000 characters; at most 254 are accepted for an email, "
            "username or name",
        ),
        (
            created({**ls_annotation(), "completed_by": {"id": 4, "username": "ann\u202eadmin"}}),
            "annotation 11: the annotator ('completed_by.username') holds the bidi control character U+202E, which can "
            "make a name display as another; send the plain name",
        ),
        (
            created({**ls_annotation(), "completed_by": {"id": -4, "email": "a@x.cn"}}),
            "annotation 11: the annotator's id must be an integer from 1 to 9223372036854775807, got -4",
        ),
        (
            created({**ls_annotation(), "completed_by": 0}),
            "annotation 11: the annotator's id must be an integer from 1 to 9223372036854775807, got 0",
        ),
        (created(ls_annotation(ann_id=-1)), "annotation 'id' must be an integer from 1 to 9223372036854775807, got -1"),
        (
            created(ls_annotation(), ls_task(task_id=-7)),
            "task 'id' must be an integer from 1 to 9223372036854775807, got -7",
        ),
        (
            {"action": "ANNOTATIONS_DELETED", "annotations": [{"id": -2}]},
            "deleted annotation 'id' must be an integer from 1 to 9223372036854775807, got -2",
        ),
        (
            {"action": "START_TRAINING", "project": {"id": -3}},
            "the webhook's project id must be an integer from 1 to 9223372036854775807, got -3",
        ),
        (
            {"action": "START_TRAINING", "project": 2**63},
            "the webhook's project id must be an integer from 1 to 9223372036854775807, got 9223372036854775808",
        ),
        (
            created(ls_annotation(), ls_task(text="长" * 5001)),
            "task 7: data['text'] has 5001 characters; at most 5000 are accepted (a clause is a sentence or a short "
            "paragraph)",
        ),
        (
            created(ls_annotation(), ls_task(text="\u200b\u2066\u200b")),
            "task 7: data['text'] is empty once normalized (only invisible characters such as zero-width spaces or bidi "
            "controls); send the clause's text",
        ),
        (
            created(ls_annotation(), {**ls_task(), "data": {"text": TEXT, "section": "节" * 2001}}),
            "task 7: data['section'] has 2001 characters; at most 2000",
        ),
        (
            created({**ls_annotation(), "created_at": "2" * 2001}),
            "annotation 11: 'created_at' has 2001 characters; at most 2000",
        ),
        (
            created(ls_annotation(choices=("财政支持", "x" * 2001))),
            "annotation 11: 'result[0].value.choices[1]' has 2001 characters; at most 2000",
        ),
        ({"action": "A" * 2001}, "the webhook 'action' has 2001 characters; at most 2000"),
    ],
)
def test_webhook_limits_are_enforced_with_a_clear_message(body, message):
    with pytest.raises(SchemaMismatchError) as info:
        ls_format.parse_webhook(body, CONFIG)
    assert str(info.value) == message


def test_webhook_accepts_values_at_the_limits():
    email = "a" * 249 + "@x.cn"
    body = created(
        {**ls_annotation(), "completed_by": {"id": 4, "email": email, "username": "u" * 254}}, ls_task(text="长" * 5000)
    )
    ((annotation, task),) = ls_format.parse_webhook(body, CONFIG).annotations
    assert annotation["completed_by"]["email"] == email and len(task["data"]["text"]) == 5000
    assert len(ls_format.parse_webhook(bulk(500), CONFIG).annotations) == 500


def test_without_a_config_every_data_string_is_held_to_the_text_limit():
    body = created(ls_annotation(), {**ls_task(), "data": {"text": TEXT, "clause": "长" * 5001}})
    with pytest.raises(SchemaMismatchError) as info:
        ls_format.parse_webhook(body)
    assert str(info.value) == "task 7: data['clause'] has 5001 characters; at most 5000"
