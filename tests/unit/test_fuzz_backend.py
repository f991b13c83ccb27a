"""Fuzzing /predict, /setup and /webhook: every answer is a 2xx or a 4xx with a JSON ``error``, never a
5xx, and a rejected request leaves the store exactly as it was.

Payloads start from the real shapes Label Studio sends (built with the project's labeling config and
real seed clauses); hypothesis then drops fields, swaps values for wrong JSON types anywhere in the
tree, puts unknown labels in, or sends raw bytes (truncated JSON, invalid UTF-8, GBK text).
"""

from __future__ import annotations

import json
import sqlite3
from collections import Counter

import pytest
from hypothesis import HealthCheck, given, settings as hsettings, strategies as st

from annotator import ModelRegistry, Settings, Store, choices_result
from annotator.cycle.project import import_labels, training_examples
from annotator.model.training import train_model
from backend import create_app

from ..conftest import report_line, seed_lines

CAP = 64 * 1024  # max_request_bytes of the fuzzed app: small so the 413 case stays cheap
FUZZ = hsettings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
TABLES = ("clauses", "annotations", "annotation_history", "pushed_tasks", "model_versions")
RUN = Counter()  # examples run per endpoint, printed at the end of the module
STATUS = Counter()  # answers by status code: the fuzzing must reach accepted requests too


@pytest.fixture(scope="module", autouse=True)
def report_case_count(request):
    yield
    report_line(
        request.config,
        f"\nfuzz_backend cases: {sum(RUN.values())} {dict(RUN)}; status codes {dict(sorted(STATUS.items()))}",
    )


@pytest.fixture(scope="module")
def app_and_settings(tmp_path_factory):
    home = tmp_path_factory.mktemp("fuzz") / "home"
    settings = Settings(home=home, max_request_bytes=CAP)
    seed = home.parent / "seed.tsv"
    seed.write_text("\n".join(seed_lines(80)) + "\n", encoding="utf-8")
    with Store(settings.db_path) as store:
        import_labels(store, seed, settings.labels)
        result = train_model(training_examples(store, settings.labels), settings.labels, holdout=0)
        ModelRegistry(settings.model_dir, store).save(result.model, n_train=result.n_train, metrics={})
    return create_app(settings, start_queue=False), settings


@pytest.fixture(scope="module")
def client(app_and_settings):
    return app_and_settings[0].test_client()


def snapshot(settings) -> dict:
    con = sqlite3.connect(settings.db_path)
    try:
        return {t: sorted(map(tuple, con.execute(f"SELECT * FROM {t}").fetchall()), key=repr) for t in TABLES}
    finally:
        con.close()


def check_response(response, settings, before) -> None:
    """The property: no 5xx; a 4xx is JSON with a non-empty error message and changed nothing."""
    STATUS[response.status_code] += 1
    assert response.status_code < 500, response.get_data(as_text=True)
    body = response.get_json(silent=True)
    assert isinstance(body, dict), response.get_data()[:200]
    if response.status_code >= 400:
        assert isinstance(body.get("error"), str) and body["error"].strip(), body
        assert snapshot(settings) == before


def post(client, path, body: bytes, content_type="application/json"):
    return client.post(path, data=body, content_type=content_type)


# Strategies ------------------------------------------------------------------------------------
LABELS = Settings().labels
CONFIG = Settings().labels_config()
TEXTS = [line.split("\t", 1)[1] for line in seed_lines(40, seed=3)]

# All of Unicode, surrogates included: JSON can carry "\ud800" and the backend must refuse it cleanly.
any_text = st.text(
    st.characters(blacklist_categories=()) | st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF), max_size=12
)
scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=2**63 - 2, max_value=2**70)
    | st.floats()
    | any_text
)
json_values = st.recursive(
    scalars, lambda kids: st.lists(kids, max_size=3) | st.dictionaries(any_text, kids, max_size=3), max_leaves=6
)
label = st.sampled_from(LABELS) | st.sampled_from(["财政补助", "", " 企业", "企业\n"]) | any_text
clause_text = st.sampled_from(TEXTS) | any_text
timestamp = (
    st.sampled_from(
        [
            "2026-11-24T09:00:00Z",
            "2026-11-24 10:00:00",
            "0001-01-01T00:00:00+14:00",
            "9999-12-31T23:59:59-14:00",
            "not a time",
            "",
        ]
    )
    | any_text
)
ids = st.integers(min_value=1, max_value=50) | st.integers(min_value=2**63 - 2, max_value=2**64)


@st.composite
def annotation_pair(draw):
    task_id = draw(ids)
    task = {"id": task_id, "data": {"text": draw(clause_text), "section": "第三章"}, "project": 1}
    annotation = {
        "id": draw(ids),
        "task": task_id,
        "completed_by": draw(st.sampled_from([3, {"id": 3, "email": "a@x.cn"}])),
        "was_cancelled": draw(st.booleans()),
        "result": choices_result(draw(st.lists(label, max_size=3)), CONFIG),
        "created_at": draw(timestamp),
        "updated_at": draw(timestamp),
    }
    return annotation, task


@st.composite
def webhook_payload(draw):
    action = draw(
        st.sampled_from(
            [
                "ANNOTATION_CREATED",
                "ANNOTATION_UPDATED",
                "ANNOTATIONS_CREATED",
                "ANNOTATIONS_DELETED",
                "START_TRAINING",
                "PROJECT_UPDATED",
            ]
        )
    )
    body = {"action": action, "project": draw(st.sampled_from([{"id": 1, "title": "Policy clauses"}, 1]))}
    if action in ("ANNOTATION_CREATED", "ANNOTATION_UPDATED"):
        body["annotation"], body["task"] = draw(annotation_pair())
    elif action == "ANNOTATIONS_CREATED":
        pairs = draw(st.lists(annotation_pair(), min_size=1, max_size=3))
        body["annotations"], body["tasks"] = [a for a, _ in pairs], [t for _, t in pairs]
    elif action == "ANNOTATIONS_DELETED":
        body["annotations"] = [{"id": i} for i in draw(st.lists(ids, max_size=3))]
    return body


@st.composite
def predict_payload(draw):
    tasks = [
        {"id": draw(ids), "data": {"text": draw(clause_text)}, "project": 1} for _ in range(draw(st.integers(0, 3)))
    ]
    return {
        "tasks": tasks,
        "project": "1.1700000000",
        "label_config": CONFIG.xml,
        "params": {"login": None, "password": None, "context": None},
    }


NO_CHOICES = '<View><Text name="text" value="$text"/></View>'
schemas = (
    st.sampled_from(
        [
            CONFIG.xml,
            NO_CHOICES,
            "<View/>",
            "",
            "<View><Choices",
            "not xml at all",
            CONFIG.xml.replace('<Choice value="企业"/>', ""),  # a label fewer than the backend knows
            CONFIG.xml.replace('<Choice value="园区"/>', '<Choice value="园区"/><Choice value="新标签"/>'),
            CONFIG.xml.replace('name="labels"', 'name="tags"'),
            CONFIG.xml.replace('value="$text"', 'value="$clause"'),
            CONFIG.xml.replace('<Choice value="企业"/>', '<Choice value=""/>'),
            '<!DOCTYPE v [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">'
            '<!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;"><!ENTITY d "&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;">'
            '<!ENTITY e "&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;"><!ENTITY f "&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;">]>'
            '<View a="&f;&f;&f;&f;&f;&f;&f;&f;&f;&f;"/>',  # entity expansion ("billion laughs")
            "<View>" + "<View>" * 5000 + "</View>" * 5001,
        ]
    )
    | any_text
)


@st.composite
def setup_payload(draw):
    return {
        "project": "1.1700000000",
        "schema": draw(schemas),
        "hostname": "http://127.0.0.1:8080",
        "access_token": "tok",
        "model_version": draw(st.sampled_from(["", "1", None])),
    }


def paths(value, prefix=()):
    """Every key/index path in a JSON value (the root is the empty path)."""
    yield prefix
    if isinstance(value, dict):
        for key, child in value.items():
            yield from paths(child, (*prefix, key))
    elif isinstance(value, list):
        for i, child in enumerate(value):
            yield from paths(child, (*prefix, i))


@st.composite
def mutated(draw, base):
    """A real payload with 0-3 fields dropped or replaced by a value of any JSON type."""
    payload = draw(base)
    for _ in range(draw(st.integers(0, 3))):
        path = draw(st.sampled_from(list(paths(payload))))
        if not path:
            payload = draw(json_values)
            continue
        parent = payload
        for key in path[:-1]:
            parent = parent[key]
        if draw(st.booleans()):
            parent.pop(path[-1]) if isinstance(parent, dict) else parent.pop(path[-1])
        else:
            parent[path[-1]] = draw(json_values)
    return payload


def encoded(payload) -> bytes:
    return json.dumps(payload).encode()  # ensure_ascii: lone surrogates travel as \ud800 escapes


@st.composite
def raw_body(draw, base):
    """Bytes that are not a clean JSON document: truncated, re-encoded as GBK, junk, deeply nested."""
    kind = draw(st.sampled_from(["truncated", "gbk", "junk", "nested", "bom", "huge_int"]))
    text = json.dumps(draw(base), ensure_ascii=False)
    if kind == "truncated":
        return text.encode()[: draw(st.integers(0, max(0, len(text.encode()) - 1)))]
    if kind == "gbk":
        return text.encode("gbk", "replace")
    if kind == "junk":
        return draw(st.binary(max_size=64))
    if kind == "nested":
        depth = draw(st.sampled_from([65, 900, 5000, 100_000]))
        return b"[" * depth + b"]" * depth
    if kind == "bom":
        return "\ufeff".encode() + text.encode()
    return b'{"tasks": ' + b"9" * draw(st.integers(4000, 5000)) + b"}"


# The tests -------------------------------------------------------------------------------------
ENDPOINTS = {"/predict": predict_payload(), "/setup": setup_payload(), "/webhook": webhook_payload()}


@pytest.mark.parametrize("path", list(ENDPOINTS))
@FUZZ
@given(data=st.data())
def test_mutated_payloads_get_2xx_or_a_clear_4xx(app_and_settings, client, path, data):
    settings = app_and_settings[1]
    payload = data.draw(mutated(ENDPOINTS[path]))
    before = snapshot(settings)
    check_response(post(client, path, encoded(payload)), settings, before)
    RUN[path] += 1


@pytest.mark.parametrize("path", list(ENDPOINTS))
@FUZZ
@given(data=st.data())
def test_raw_bodies_get_a_clear_4xx(app_and_settings, client, path, data):
    settings = app_and_settings[1]
    body = data.draw(raw_body(ENDPOINTS[path]))
    content_type = data.draw(st.sampled_from(["application/json", "application/json; charset=utf-8", "text/plain", ""]))
    before = snapshot(settings)
    response = post(client, path, body, content_type)
    check_response(response, settings, before)
    RUN[f"{path} raw"] += 1


@pytest.mark.parametrize("path", list(ENDPOINTS))
@hsettings(FUZZ, max_examples=8)
@given(size=st.integers(CAP + 1, 3 * CAP))
def test_bodies_over_the_size_cap_are_413(app_and_settings, client, path, size):
    settings = app_and_settings[1]
    before = snapshot(settings)
    body = b'{"tasks": [], "pad": "' + b"x" * size + b'"}'
    response = post(client, path, body)
    assert response.status_code == 413
    assert "exceeds the capacity limit" in response.get_json()["error"]
    assert snapshot(settings) == before
    RUN[f"{path} 413"] += 1


# Limits at the edge (issue 16): one limit broken in an otherwise valid payload is a 400 naming it ------
from backend import ls_format  # noqa: E402

ZERO_WIDTH = "\u200b\u200c\u200d\u2060\ufeff"
BIDI = "\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"


@pytest.fixture(scope="module")
def limits_app(tmp_path_factory):
    settings = Settings(home=tmp_path_factory.mktemp("limits") / "home")  # the default body cap (10 MiB)
    with Store(settings.db_path) as store:
        store.schema_version
    return create_app(settings, start_queue=False), settings


def valid_pair(task_id=7, ann_id=11):
    task = {"id": task_id, "data": {"text": TEXTS[0], "section": "第三章"}, "project": 1}
    annotation = {
        "id": ann_id,
        "task": task_id,
        "completed_by": {"id": 3, "email": "a@x.cn", "username": "a"},
        "result": choices_result([LABELS[0]], CONFIG),
        "created_at": "2026-11-24T09:00:00Z",
    }
    return annotation, task


@st.composite
def broken_webhook(draw):
    """A valid ANNOTATION_CREATED (or bulk/delete) event with exactly one limit broken."""
    annotation, task = valid_pair()
    body = {"action": "ANNOTATION_CREATED", "annotation": annotation, "task": task, "project": {"id": 1}}
    kind = draw(
        st.sampled_from(
            [
                "email",
                "username",
                "bidi name",
                "negative id",
                "zero id",
                "bulk",
                "deleted",
                "long text",
                "empty text",
                "long field",
                "long choice",
                "project id",
            ]
        )
    )
    over = draw(st.integers(1, 3000))
    if kind == "email":
        annotation["completed_by"]["email"] = "a" * (ls_format.MAX_NAME_CHARS + over - 5) + "@x.cn"
    elif kind == "username":
        annotation["completed_by"] = "u" * (ls_format.MAX_NAME_CHARS + over)
    elif kind == "bidi name":
        name = draw(st.text(min_size=1, max_size=20))
        at = draw(st.integers(0, len(name)))
        annotation["completed_by"]["username"] = name[:at] + draw(st.sampled_from(BIDI)) + name[at:]
    elif kind in ("negative id", "zero id"):
        value = 0 if kind == "zero id" else -draw(st.integers(1, 2**63))
        where = draw(st.sampled_from(["annotation", "task", "user"]))
        if where == "annotation":
            annotation["id"] = value
        elif where == "task":
            task["id"] = annotation["task"] = value
        else:
            annotation["completed_by"]["id"] = value
    elif kind == "bulk":
        n = ls_format.MAX_EVENT_ANNOTATIONS + draw(st.integers(1, 50))
        body = {
            "action": "ANNOTATIONS_CREATED",
            "annotations": [valid_pair(7, i + 1)[0] for i in range(n)],
            "tasks": [task],
            "project": 1,
        }
    elif kind == "deleted":
        n = ls_format.MAX_EVENT_ANNOTATIONS + draw(st.integers(1, 50))
        body = {"action": "ANNOTATIONS_DELETED", "annotations": [{"id": i + 1} for i in range(n)], "project": 1}
    elif kind == "long text":
        task["data"]["text"] = "长" * (ls_format.MAX_TEXT_CHARS + over)
    elif kind == "empty text":
        task["data"]["text"] = "".join(draw(st.lists(st.sampled_from(ZERO_WIDTH + BIDI), min_size=1, max_size=30)))
    elif kind == "long field":  # past MAX_TEXT_CHARS: see the strict xfail below for MAX_FIELD_CHARS
        task["data"]["section"] = "节" * (ls_format.MAX_TEXT_CHARS + over)
    elif kind == "long choice":
        annotation["result"][0]["value"]["choices"].append("x" * (ls_format.MAX_FIELD_CHARS + over))
    else:
        body["project"] = {"id": -draw(st.integers(1, 2**63))}
    return kind, body


@st.composite
def broken_predict(draw):
    kind = draw(st.sampled_from(["tasks", "long text", "total", "empty text", "negative id"]))
    tasks = [{"id": i + 1, "data": {"text": TEXTS[i % len(TEXTS)]}} for i in range(3)]
    if kind == "tasks":
        tasks = [
            {"id": i + 1, "data": {"text": "设立专项资金。"}}
            for i in range(ls_format.MAX_PREDICT_TASKS + draw(st.integers(1, 100)))
        ]
    elif kind == "long text":
        tasks[draw(st.integers(0, 2))]["data"]["text"] = "长" * (ls_format.MAX_TEXT_CHARS + draw(st.integers(1, 999)))
    elif kind == "total":
        per = ls_format.MAX_TEXT_CHARS
        tasks = [{"id": i + 1, "data": {"text": "长" * per}} for i in range(ls_format.MAX_PREDICT_CHARS // per + 1)]
    elif kind == "empty text":
        tasks[draw(st.integers(0, 2))]["data"]["text"] = (
            "".join(draw(st.lists(st.sampled_from(ZERO_WIDTH + BIDI + " "), min_size=1, max_size=20))) + "\u200b"
        )
    else:
        tasks[draw(st.integers(0, 2))]["id"] = -draw(st.integers(0, 2**63))
    return kind, {"tasks": tasks}


@hsettings(FUZZ, max_examples=60)
@given(case=broken_webhook())
def test_a_webhook_past_a_limit_is_a_400_that_names_it(limits_app, case):
    app, settings = limits_app
    kind, body = case
    before = snapshot(settings)
    response = app.test_client().post("/webhook", json=body)
    STATUS[response.status_code] += 1
    assert response.status_code == 400, (kind, response.get_data(as_text=True)[:300])
    error = response.get_json()["error"]
    assert any(p in error for p in ("at most", "from 1 to", "bidi control", "once normalized")), (kind, error)
    assert len(error) < 400  # a message never echoes the oversized value
    assert snapshot(settings) == before
    RUN[f"/webhook limit {kind}"] += 1


@hsettings(FUZZ, max_examples=30)
@given(case=broken_predict())
def test_a_predict_past_a_limit_is_a_400_that_names_it(limits_app, case):
    app, settings = limits_app
    kind, body = case
    response = app.test_client().post("/predict", json=body)
    STATUS[response.status_code] += 1
    assert response.status_code == 400, (kind, response.get_data(as_text=True)[:300])
    error = response.get_json()["error"]
    assert any(p in error for p in ("at most", "from 1 to", "empty once normalized", "smaller batches")), (kind, error)
    assert len(error) < 400
    RUN[f"/predict limit {kind}"] += 1


def test_a_webhook_data_field_past_the_field_limit_is_refused(limits_app):
    app, _ = limits_app
    annotation, task = valid_pair()
    task["data"]["section"] = "节" * (ls_format.MAX_FIELD_CHARS + 1)
    response = app.test_client().post(
        "/webhook", json={"action": "ANNOTATION_CREATED", "annotation": annotation, "task": task, "project": {"id": 1}}
    )
    assert response.status_code == 400
    assert response.get_json()["error"] == "task 7: data['section'] has 2001 characters; at most 2000"
