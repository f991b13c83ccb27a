"""The ML-backend protocol over Flask's test client, with a real store and a real (small) model."""

from __future__ import annotations

import base64
import io

import pytest

from annotator import Annotation, Clause, ModelRegistry, Settings, Store, choices_result, clause_id, normalize_text
from annotator.cycle.project import import_labels, training_examples
from annotator.model.training import train_model
from backend import create_app

from ..conftest import seed_lines

TEXT = "对符合条件的科技型中小企业给予贷款贴息和融资担保支持。"


@pytest.fixture(scope="module")
def trained_home(tmp_path_factory):
    home = tmp_path_factory.mktemp("api") / "home"
    settings = Settings(home=home)
    seed = home.parent / "seed.tsv"
    seed.write_text("\n".join(seed_lines(200)) + "\n", encoding="utf-8")
    with Store(settings.db_path) as store:
        import_labels(store, seed, settings.labels)
        result = train_model(training_examples(store, settings.labels), settings.labels, holdout=0)
        ModelRegistry(settings.model_dir, store).save(result.model, n_train=result.n_train, metrics={})
    return home


def make_client(home, **overrides):
    settings = Settings(home=home, **overrides)
    return create_app(settings, start_queue=False).test_client(), settings


@pytest.fixture
def client(trained_home):
    return make_client(trained_home)[0]


@pytest.fixture
def empty_client(tmp_path):
    return make_client(tmp_path / "empty")[0]


def annotation_event(
    settings,
    ann_id=101,
    task_id=7,
    labels=("金融支持",),
    action="ANNOTATION_CREATED",
    updated_at="2026-11-24T10:00:00Z",
    text=TEXT,
):
    config = settings.labels_config()
    return {
        "action": action,
        "project": {"id": 1},
        "task": {"id": task_id, "data": {"text": text, "section": ""}},
        "annotation": {
            "id": ann_id,
            "task": task_id,
            "completed_by": 3,
            "result": choices_result(list(labels), config),
            "created_at": "2026-11-24T09:00:00Z",
            "updated_at": updated_at,
        },
    }


def test_health_and_setup_report_the_model_version(client):
    health = client.get("/health").get_json()
    assert health["status"] == "UP" and health["model_version"] == "1"
    schema = Settings().labels_config().xml  # Label Studio sends the project's labeling config
    assert client.post("/setup", json={"project": "1.1", "schema": schema}).get_json() == {
        "model_version": "policy-clf-v1"
    }


def test_predict_without_a_model_returns_no_results(empty_client):
    response = empty_client.post("/predict", json={"tasks": [{"id": 1, "data": {"text": TEXT}}]})
    assert response.status_code == 200 and response.get_json() == {"results": []}


def test_predict_returns_one_choices_result_per_task_in_order(client, trained_home):
    settings = Settings(home=trained_home)
    texts = ["加快集成电路产业发展，支持芯片设计企业。", "对引进的高层次人才给予安家补贴。"]
    tasks = [{"id": i + 1, "data": {"text": t}} for i, t in enumerate(texts)]
    body = client.post("/predict", json={"tasks": tasks}).get_json()
    with Store(settings.db_path) as store:
        _, model = ModelRegistry(settings.model_dir, store).load("latest")
    # Computed here from the probabilities and the thresholds, not through the rule under test: the
    # labels the classifier decides, in label-set order, scored by the lowest of their probabilities.
    proba = model.predict_proba(texts)
    decided = model.decide(proba).astype(bool)
    expected = [(tuple(model.labels_[row]), round(float(p[row].min()), 4)) for p, row in zip(proba, decided)]
    assert body["model_version"] == "policy-clf-v1"
    assert [(tuple(r["result"][0]["value"]["choices"]), r["score"]) for r in body["results"]] == expected
    assert all(r["model_version"] == "policy-clf-v1" for r in body["results"])
    assert all(len(labels) < 5 and 0 < score <= 1 for labels, score in expected)  # a decision, not every label
    assert [score for _, score in expected] != [0.5, 0.5]
    for result in body["results"]:
        (region,) = result["result"]
        assert (region["from_name"], region["to_name"], region["type"]) == ("labels", "text", "choices")


@pytest.mark.parametrize(
    "payload, message",
    [
        ({"tasks": "x"}, "needs a 'tasks' list"),
        ({"tasks": [{"id": 1}]}, "task 0 has no 'data' object"),
        ({"tasks": [{"id": 5, "data": {"txt": "x"}}]}, "task 5 has no text at data['text']"),
        ([1, 2], "must be a JSON object"),
    ],
)
def test_bad_predict_payloads_are_400_with_a_message(client, payload, message):
    response = client.post("/predict", json=payload)
    assert response.status_code == 400 and message in response.get_json()["error"]


def test_non_json_body_is_400(client):
    response = client.post("/predict", data=b"\xff\xfe not json", content_type="application/json")
    assert response.status_code == 400 and "must be JSON" in response.get_json()["error"]


def test_webhook_stores_updates_and_deletes_idempotently(tmp_path):
    client, settings = make_client(tmp_path / "h")
    assert client.post("/webhook", json=annotation_event(settings)).status_code == 201
    assert client.post("/webhook", json=annotation_event(settings)).get_json()["outcomes"] == ["unchanged"]
    updated = annotation_event(
        settings, labels=("金融支持", "财政支持"), action="ANNOTATION_UPDATED", updated_at="2026-11-24T11:00:00Z"
    )
    assert client.post("/webhook", json=updated).get_json()["outcomes"] == ["updated"]
    older = annotation_event(settings, labels=("企业",), action="ANNOTATION_UPDATED", updated_at="2026-11-24T10:30:00Z")
    assert client.post("/webhook", json=older).get_json()["outcomes"] == ["stale"]
    with Store(settings.db_path) as store:
        (stored,) = store.annotations(sources=["label_studio"])
        assert stored.labels == ("金融支持", "财政支持") and stored.annotator == "3"
        assert [h["action"] for h in store.annotation_history(stored.id)] == ["created", "updated"]
    deleted = client.post("/webhook", json={"action": "ANNOTATIONS_DELETED", "annotations": [{"id": 101}]})
    assert deleted.status_code == 201 and deleted.get_json()["deleted"] == 1
    with Store(settings.db_path) as store:
        assert store.annotations(sources=["label_studio"]) == []
        assert len(store.annotations(sources=["label_studio"], include_deleted=True)) == 1


def test_unknown_label_is_rejected_and_nothing_is_stored(tmp_path):
    client, settings = make_client(tmp_path / "h")
    event = annotation_event(settings)
    event["annotation"]["result"][0]["value"]["choices"] = ["财政补助"]
    response = client.post("/webhook", json=event)
    assert response.status_code == 400
    assert "label '财政补助' is not in the label set; did you mean '财政支持'?" in response.get_json()["error"]
    with Store(settings.db_path) as store:
        assert store.annotations() == [] and store.count_clauses() == 0


def test_unknown_action_is_ignored_and_start_training_is_accepted(client):
    response = client.post("/webhook", json={"action": "PROJECT_UPDATED"})
    assert response.status_code == 200 and response.get_json()["status"] == "ignored"
    response = client.post("/webhook", json={"action": "START_TRAINING", "project": {"id": 1}})
    assert response.status_code == 201


def test_webhook_secret_is_required_when_configured(tmp_path):
    client, settings = make_client(tmp_path / "h", webhook_secret="s3cret")
    assert client.post("/webhook", json=annotation_event(settings)).status_code == 401
    ok = client.post("/webhook", json=annotation_event(settings), headers={"X-Annotator-Secret": "s3cret"})
    assert ok.status_code == 201


def test_basic_auth_guards_everything_but_health(trained_home):
    client, _ = make_client(trained_home, basic_auth_user="ls", basic_auth_pass="pw")
    assert client.get("/health").status_code == 200
    refused = client.post("/predict", json={"tasks": []})
    assert refused.status_code == 401 and "pw" not in refused.get_data(as_text=True)
    token = base64.b64encode(b"ls:pw").decode()
    assert client.post("/predict", json={"tasks": []}, headers={"Authorization": f"Basic {token}"}).status_code == 200


def test_oversized_request_is_413(tmp_path):
    client, _ = make_client(tmp_path / "h", max_request_bytes=1024)
    response = client.post("/predict", json={"tasks": [{"data": {"text": "字" * 2000}}]})
    assert response.status_code == 413


# Regressions found by tests/unit/test_fuzz_backend.py -----------------------------------------
def test_a_bulk_event_with_one_bad_annotation_stores_none(tmp_path):
    # Each annotation used to commit on its own: the first was kept although the request was a 400.
    client, settings = make_client(tmp_path / "h")
    good, bad = annotation_event(settings, ann_id=1, task_id=7), annotation_event(settings, ann_id=2, task_id=8)
    bad["annotation"]["result"][0]["value"]["choices"] = ["财政补助"]
    bulk = {
        "action": "ANNOTATIONS_CREATED",
        "annotations": [good["annotation"], bad["annotation"]],
        "tasks": [good["task"], {**bad["task"], "data": {"text": "设立专项资金支持科技成果转化。"}}],
    }
    response = client.post("/webhook", json=bulk)
    assert response.status_code == 400
    assert response.get_json()["error"].startswith("annotation 2: label '财政补助' is not in the label set")
    with Store(settings.db_path) as store:
        assert store.annotations(include_deleted=True) == [] and store.count_clauses() == 0


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("id", 2**63, "annotation 'id' must be an integer from 1 to 9223372036854775807, got 9223372036854775808"),
        (
            "created_at",
            "0001-01-01T00:00:00+14:00",
            "annotation 101: 'created_at' '0001-01-01T00:00:00+14:00' is out of range in UTC; "
            "send a time such as '2026-11-24T09:00:00Z'",
        ),
    ],
)
def test_values_the_store_cannot_hold_are_400_not_500(tmp_path, field, value, message):
    client, settings = make_client(tmp_path / "h")
    event = annotation_event(settings)
    event["annotation"][field] = value
    response = client.post("/webhook", json=event)
    assert response.status_code == 400 and response.get_json()["error"] == message
    with Store(settings.db_path) as store:
        assert store.annotations(include_deleted=True) == []


@pytest.mark.parametrize("path", ["/predict", "/setup", "/webhook"])
@pytest.mark.parametrize(
    "data, message",
    [
        (b"[" * 5000 + b"]" * 5000, "nested deeper than 64 levels"),
        (b'{"tasks": [{"id": "\\ud800", "data": {}}]}', "a string holds an unpaired UTF-16 surrogate (\\ud800)"),
    ],
)
def test_hostile_json_is_400_on_every_endpoint(empty_client, path, data, message):
    response = empty_client.post(path, data=data, content_type="application/json")
    assert response.status_code == 400
    assert response.get_json()[
        "error"
    ] == f"the request body must be JSON (Content-Type: application/json): {message}" + (
        "; send valid Unicode text" if "surrogate" in message else ""
    )


def test_setup_refuses_a_labeling_config_without_choices(client):
    response = client.post(
        "/setup", json={"project": "1.1", "schema": '<View><Text name="text" value="$text"/></View>'}
    )
    assert response.status_code == 400
    assert response.get_json()["error"].startswith(
        "the /setup 'schema' (the project's labeling config) is unusable: labeling config has no <Choices> tag"
    )


def test_a_chunked_body_over_the_cap_is_413_not_a_truncated_400(tmp_path):
    # werkzeug cuts a body without Content-Length at MAX_CONTENT_LENGTH; the cut JSON was a 400
    # "invalid JSON" that hid the real problem.
    client, _ = make_client(tmp_path / "h", max_request_bytes=1024)
    body = b'{"tasks": [], "pad": "' + b"x" * 5000 + b'"}'
    response = client.post(
        "/predict",
        input_stream=io.BytesIO(body),
        content_type="application/json",
        headers={"Transfer-Encoding": "chunked"},
        environ_overrides={"wsgi.input_terminated": True},
    )
    assert response.status_code == 413
    assert response.get_json() == {"error": "The data value transmitted exceeds the capacity limit."}
    small = client.post(
        "/predict",
        input_stream=io.BytesIO(b'{"tasks": []}'),
        content_type="application/json",
        headers={"Transfer-Encoding": "chunked"},
        environ_overrides={"wsgi.input_terminated": True},
    )
    assert small.status_code == 200 and small.get_json() == {"results": []}


def test_health_says_whether_batches_can_reach_label_studio(trained_home):
    from annotator.cycle.loop import PROJECT_KEY

    with Store(Settings(home=trained_home).store_url) as store:  # connected, whichever test ran first
        store.set_meta(PROJECT_KEY, "1")
    without, _ = make_client(trained_home)
    assert without.get("/health").get_json()["label_studio"] == {
        "url": "http://127.0.0.1:8080",
        "api_key_set": False,
        "project_id": 1,
    }
    with_key, _ = make_client(trained_home, ls_url="http://ls.example:8080", ls_api_key="secret-token-123")
    body = with_key.get("/health").get_data(as_text=True)
    assert '"api_key_set":true' in body.replace(" ", "") and "secret-token-123" not in body


def test_a_backend_started_for_a_connected_project_without_an_api_key_warns(tmp_path, caplog):
    import logging

    from annotator.cycle.loop import PROJECT_KEY

    settings = Settings(home=tmp_path / "home")
    with Store(settings.store_url) as store:
        store.set_meta(PROJECT_KEY, "3")
    with caplog.at_level(logging.WARNING, logger="backend"):
        app = create_app(settings, in_process_jobs=True)
    app.extensions["annotator"]["queue"].shutdown()
    (warning,) = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warning.startswith("the project is connected to Label Studio project 3, but LABEL_STUDIO_API_KEY")


# The live loop's edge: the connected project, blind overlap, a failing loop -------------------------
def test_setup_connects_a_project_added_on_label_studios_model_page_and_refuses_another(tmp_path):
    client, settings = make_client(tmp_path / "h")
    schema = settings.labels_config().xml
    assert client.post("/setup", json={"project": "4.1701", "schema": schema}).status_code == 200
    assert client.get("/health").get_json()["label_studio"]["project_id"] == 4
    response = client.post("/setup", json={"project": "5.1701", "schema": schema})
    assert response.status_code == 400
    assert response.get_json()["error"] == (
        "this backend serves Label Studio project 4, not project 5: one backend serves one project home; "
        "start another backend with its own --home for that project"
    )
    event = annotation_event(settings)
    event["project"] = {"id": 5}
    assert client.post("/webhook", json=event).status_code == 400
    with Store(settings.db_path) as store:
        assert store.annotations() == []  # nothing of the other project was stored


def test_predict_never_prefills_a_labeled_clause_from_a_model_that_learned_it(client, trained_home):
    """Blind double annotation: a clause someone labeled gets the pre-fill its task showed before."""
    settings = Settings(home=trained_home)
    text = "对首次认定的高新技术企业给予一次性奖励。"
    cid = clause_id(normalize_text(text))
    with Store(settings.db_path) as store:
        store.add_clauses([Clause(cid, normalize_text(text))])
        store.record_push(1, [(cid, 40, 0)], batch=99, model_version=1)
        store.set_priorities([(cid, 0.1, 1, ("企业",))], model_version=1)
        store.save_annotation(
            Annotation(cid, ("税收激励",), "first@example.com", "label_studio", ls_annotation_id=4000, ls_task_id=40)
        )
    body = client.post("/predict", json={"tasks": [{"id": 40, "data": {"text": text}}]}).get_json()
    (result,) = body["results"]
    assert result["model_version"] == "policy-clf-v1"
    assert result["result"][0]["value"]["choices"] == ["企业"]  # the frozen first pre-fill


def test_health_is_degraded_with_the_reason_while_the_loop_fails(tmp_path):
    client, settings = make_client(tmp_path / "h")
    assert client.get("/health").get_json()["status"] == "UP"
    with Store(settings.db_path) as store:
        run = store.start_train_run(30)
        store.finish_train_run(run, error="StoreError: disk I/O error")
    health = client.get("/health").get_json()
    assert health["status"] == "DEGRADED"
    assert health["reason"] == "the last training run failed: StoreError: disk I/O error"


class RecordingQueue:
    """The training queue at its boundary: what the webhook tells it."""

    def __init__(self):
        self.notified: list[int] = []
        self.requested = 0

    def notify(self, n_new: int = 1) -> None:
        self.notified.append(n_new)

    def request_now(self) -> None:
        self.requested += 1

    def request_refresh(self) -> None:
        pass

    def status(self) -> dict:
        return {"last_error": None}


def test_an_annotation_webhook_counts_toward_the_next_retrain(tmp_path):
    """New, changed and deleted labels reach the training queue; a repeated event does not."""
    client, settings = make_client(tmp_path / "h")
    queue = RecordingQueue()
    client.application.extensions["annotator"]["queue"] = queue
    assert client.post("/webhook", json=annotation_event(settings)).status_code == 201
    assert client.post("/webhook", json=annotation_event(settings)).status_code == 201  # the same again
    changed = annotation_event(
        settings, labels=("财政支持",), action="ANNOTATION_UPDATED", updated_at="2026-11-24T11:00:00Z"
    )
    assert client.post("/webhook", json=changed).status_code == 201
    deleted = {"action": "ANNOTATIONS_DELETED", "project": {"id": 1}, "annotations": [{"id": 101}]}
    assert client.post("/webhook", json=deleted).status_code == 201
    assert queue.notified == [1, 1, 1]
    assert client.post("/webhook", json={"action": "START_TRAINING", "project": {"id": 1}}).status_code == 201
    assert queue.requested == 1
