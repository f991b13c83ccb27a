"""Tests written for mutants that mutmut found alive in backend/ls_api.py (docs/mutation-testing.md).

Each asserts what a person running the backend sees: the status code and error body of a refused
request, and the log line that says which Label Studio project the backend connected to.
"""

from __future__ import annotations

import base64
import logging

from annotator import Settings
from backend import create_app

REFUSED = {"error": "basic auth credentials missing or wrong", "type": "Unauthorized"}


def test_a_password_with_undecodable_bytes_refuses_wrong_credentials_instead_of_crashing(tmp_path):
    # A password read from a non-UTF-8 environment holds surrogate escapes ("\udcff" for the byte
    # 0xff). The comparison must encode it (surrogateescape), not raise UnicodeEncodeError: a 500.
    settings = Settings(home=tmp_path / "home", basic_auth_user="ls", basic_auth_pass="pw\udcff")
    client = create_app(settings, start_queue=False).test_client()
    token = base64.b64encode(b"ls:wrong").decode()
    for headers in ({}, {"Authorization": f"Basic {token}"}):
        response = client.post("/predict", json={"tasks": []}, headers=headers)
        assert response.status_code == 401
        assert response.get_json() == REFUSED
    assert client.get("/health").status_code == 200


def test_the_first_event_of_a_home_logs_the_project_it_connected_to(tmp_path, caplog):
    settings = Settings(home=tmp_path / "home")
    client = create_app(settings, start_queue=False).test_client()
    with caplog.at_level(logging.INFO, logger="backend.ls_api"):
        response = client.post("/webhook", json={"action": "START_TRAINING", "project": {"id": 7}})
    assert response.status_code == 201
    messages = [r.getMessage() for r in caplog.records if r.name == "backend.ls_api"]
    assert "connected to Label Studio project 7 (learned from Label Studio's own call)" in messages
    assert client.get("/health").get_json()["label_studio"]["project_id"] == 7
    # A second event of the same project connects nothing new and logs nothing more about it.
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="backend.ls_api"):
        client.post("/webhook", json={"action": "START_TRAINING", "project": {"id": 7}})
    assert not [r for r in caplog.records if "connected to" in r.getMessage()]


def test_a_body_that_is_not_json_is_refused_naming_the_content_type_it_came_with(tmp_path):
    client = create_app(Settings(home=tmp_path / "home"), start_queue=False).test_client()
    what = "the request body must be JSON (Content-Type: application/json)"
    plain = client.post("/predict", data=b'{"tasks": []}', content_type="text/plain")
    assert plain.status_code == 400
    assert plain.get_json()["error"] == f"{what}, got Content-Type 'text/plain'"
    bare = client.post("/predict", data=b'{"tasks": []}')
    assert bare.status_code == 400
    assert bare.get_json()["error"] == f"{what}, got Content-Type 'none'"


class RefreshQueue:
    """The training queue at its boundary: how often the backend asks it to wire and fill the project."""

    def __init__(self):
        self.refreshes = 0
        self.notified: list[int] = []

    def request_refresh(self) -> None:
        self.refreshes += 1

    def notify(self, n: int = 1) -> None:
        self.notified.append(n)

    def request_now(self) -> None:
        pass

    def status(self) -> dict:
        return {"last_error": None}


def test_learning_the_project_asks_once_for_it_to_be_wired_and_filled(tmp_path):
    settings = Settings(home=tmp_path / "home")
    app = create_app(settings, start_queue=False)
    queue = RefreshQueue()
    app.extensions["annotator"]["queue"] = queue
    client = app.test_client()
    schema = settings.labels_config().xml
    assert client.post("/setup", json={"project": "4.1", "schema": schema}).status_code == 200
    assert queue.refreshes == 1  # the home learned project 4: wire it (sampling, webhook) and fill it
    assert client.post("/setup", json={"project": "4.1", "schema": schema}).status_code == 200
    assert (
        client.post(
            "/webhook", json={"action": "ANNOTATIONS_DELETED", "project": {"id": 4}, "annotations": [{"id": 5}]}
        ).status_code
        == 201
    )
    assert queue.refreshes == 1  # the same project again: nothing new to wire


def test_the_first_annotation_event_of_a_new_home_asks_for_a_refresh(tmp_path):
    settings = Settings(home=tmp_path / "home")
    app = create_app(settings, start_queue=False)
    queue = RefreshQueue()
    app.extensions["annotator"]["queue"] = queue
    event = {"action": "ANNOTATIONS_DELETED", "project": {"id": 9}, "annotations": [{"id": 5}]}
    assert app.test_client().post("/webhook", json=event).status_code == 201
    assert queue.refreshes == 1
