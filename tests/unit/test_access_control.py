"""Access control: every refusal of the backend, and secrets that never leave it.

Basic auth (``BASIC_AUTH_USER``/``BASIC_AUTH_PASS``) guards every endpoint but /health; the webhook
secret header guards /webhook; the dashboard has its own login. Export paths are confined to the
output folder in tests/unit/test_export.py (``test_refuses_paths_outside_the_root`` and the symlink
case), so they are not repeated here.
"""

from __future__ import annotations

import base64
import logging

import pytest

from annotator import LabelStudioError, Settings, Store
from backend import create_app

API_KEY = "lsk-9f8e7d6c5b4a"
PASSWORD = "pw-7a6b5c4d"
SECRET = "hook-1b2c3d4e"
DASH = "dash-5e6f7a8b"
SECRETS = (API_KEY, PASSWORD, SECRET, DASH)
REFUSED = {"error": "basic auth credentials missing or wrong", "type": "Unauthorized"}
DELETE_NOTHING = {"action": "ANNOTATIONS_DELETED", "annotations": []}  # an event that needs the secret


def basic(user: str, password: str) -> dict:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


GOOD = basic("ls", PASSWORD)


def make_app(tmp_path, **overrides):
    values = dict(
        home=tmp_path / "home",
        ls_api_key=API_KEY,
        basic_auth_user="ls",
        basic_auth_pass=PASSWORD,
        webhook_secret=SECRET,
    )
    values.update(overrides)
    settings = Settings(**values)
    return create_app(settings, start_queue=False), settings


@pytest.fixture
def app(tmp_path):
    return make_app(tmp_path)[0]


REQUESTS = {
    "setup": ("POST", "/setup", {"project": "1.1"}),
    "predict": ("POST", "/predict", {"tasks": []}),
    "webhook": ("POST", "/webhook", {"action": "START_TRAINING"}),
    "dashboard": ("GET", "/dashboard/", None),
    "agreement": ("GET", "/dashboard/agreement.json", None),
    "unknown path": ("GET", "/nothing-here", None),
}
BAD_CREDENTIALS = {
    "missing": {},
    "wrong password": basic("ls", "pw"),
    "wrong user": basic("admin", PASSWORD),
    "password as user": basic(PASSWORD, ""),
    "not basic": {"Authorization": f"Bearer {PASSWORD}"},
    "not base64": {"Authorization": "Basic !!!"},
    "non-UTF-8 password": {"Authorization": "Basic " + base64.b64encode(b"ls:\xff\xfe").decode()},
}


def send(client, name, headers):
    method, path, body = REQUESTS[name]
    headers = {**headers, "X-Annotator-Secret": SECRET}  # the webhook secret is right: auth is what's tested
    return client.open(path, method=method, json=body, headers=headers)


@pytest.mark.parametrize("credentials", list(BAD_CREDENTIALS))
@pytest.mark.parametrize("name", list(REQUESTS))
def test_every_endpoint_but_health_refuses_bad_basic_auth(app, name, credentials):
    response = send(app.test_client(), name, BAD_CREDENTIALS[credentials])
    assert response.status_code == 401 and response.get_json() == REFUSED
    assert response.headers["WWW-Authenticate"] == 'Basic realm="annotator"'


@pytest.mark.parametrize(
    "name, status",
    [("setup", 200), ("predict", 200), ("webhook", 201), ("dashboard", 200), ("agreement", 200), ("unknown path", 404)],
)
def test_the_right_credentials_are_let_through(app, name, status):
    assert send(app.test_client(), name, GOOD).status_code == status


def test_health_needs_no_credentials(app):
    response = app.test_client().get("/health")
    assert response.status_code == 200 and response.get_json()["status"] == "UP"


def test_a_password_without_a_user_still_guards_the_backend(tmp_path):
    # Was a hole: auth switched on only when BASIC_AUTH_USER was set.
    app, _ = make_app(tmp_path, basic_auth_user="")
    client = app.test_client()
    assert client.post("/predict", json={"tasks": []}).status_code == 401
    assert client.post("/predict", json={"tasks": []}, headers=basic("", PASSWORD)).status_code == 200


def test_the_dashboard_without_its_own_login_is_behind_basic_auth(tmp_path):
    # Was a hole: with basic auth on and no dashboard password, /dashboard was open to anyone.
    app, _ = make_app(tmp_path)
    client = app.test_client()
    assert client.get("/dashboard/").status_code == 401
    assert client.get("/dashboard/", headers=GOOD).status_code == 200


def test_a_dashboard_with_its_own_login_asks_for_that_login(tmp_path):
    app, _ = make_app(tmp_path, dashboard_password=DASH)
    response = app.test_client().get("/dashboard/")
    assert response.status_code == 302 and "/dashboard/login" in response.headers["Location"]


# Webhook secret ---------------------------------------------------------------------------------
@pytest.mark.parametrize("header", [None, "", "hook-1b2c3d4", SECRET + " ", SECRET.upper(), "hook-1b2c3d4é"])
def test_webhook_refuses_a_missing_or_wrong_secret(app, header):
    # Annotation events write labels, so they need the secret (START_TRAINING carries basic auth only).
    headers = {**GOOD, **({"X-Annotator-Secret": header} if header is not None else {})}
    response = app.test_client().post("/webhook", json=DELETE_NOTHING, headers=headers)
    assert response.status_code == 401
    assert response.get_json() == {"error": "webhook secret header missing or wrong", "type": "Unauthorized"}


def test_a_non_ascii_secret_header_is_refused_not_a_crash(tmp_path):
    # Regression: hmac.compare_digest on str raised TypeError for non-ASCII text, a 500.
    app, _ = make_app(tmp_path, basic_auth_user="", basic_auth_pass="", webhook_secret="密钥-42")
    client = app.test_client()
    wrong = client.post("/webhook", json=DELETE_NOTHING, headers={"X-Annotator-Secret": "é"})
    assert wrong.status_code == 401
    # A real server hands the header over as latin-1-decoded bytes; the UTF-8 secret still matches.
    sent = "密钥-42".encode().decode("latin-1")
    right = client.post("/webhook", json=DELETE_NOTHING, headers={"X-Annotator-Secret": sent})
    assert right.status_code == 201


def test_a_webhook_with_the_secret_but_no_basic_auth_is_refused(app):
    response = app.test_client().post(
        "/webhook", json={"action": "START_TRAINING"}, headers={"X-Annotator-Secret": SECRET}
    )
    assert response.status_code == 401 and response.get_json() == REFUSED


# Secrets never leave the backend --------------------------------------------------------------
def leaked(text: str) -> list[str]:
    return [s for s in SECRETS if s in text]


def test_health_shows_no_secret_even_when_an_error_quoted_one(tmp_path):
    app, settings = make_app(tmp_path, dashboard_password=DASH)
    with Store(settings.db_path) as store:
        run = store.start_train_run(20)
        store.finish_train_run(run, error=f"Label Studio refused to import tasks: HTTP 401 token {API_KEY} invalid")
    body = app.test_client().get("/health").get_data(as_text=True)
    assert leaked(body) == []
    assert app.test_client().get("/health").get_json()["last_training_error"] == (
        "Label Studio refused to import tasks: HTTP 401 token *** invalid"
    )


def boom_app(tmp_path, exc: Exception):
    app, _ = make_app(tmp_path, dashboard_password=DASH)

    def boom():
        raise exc

    app.add_url_rule("/boom", "boom", boom)
    return app


def records_text(caplog) -> str:
    return "\n".join(f"{r.getMessage()}\n{r.exc_text or ''}" for r in caplog.records)


@pytest.mark.parametrize("credentials", list(BAD_CREDENTIALS))
def test_refused_requests_log_and_answer_no_secret(app, caplog, credentials):
    caplog.set_level(logging.DEBUG)
    client = app.test_client()
    for name in REQUESTS:
        response = send(client, name, BAD_CREDENTIALS[credentials])
        assert response.status_code == 401 and leaked(response.get_data(as_text=True)) == []
    wrong_secret = client.post("/webhook", json=DELETE_NOTHING, headers={**GOOD, "X-Annotator-Secret": "nope"})
    assert wrong_secret.status_code == 401 and leaked(wrong_secret.get_data(as_text=True)) == []
    assert leaked(records_text(caplog)) == []


def test_an_error_quoting_a_secret_is_masked_in_the_answer_and_the_log(tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    app = boom_app(tmp_path, LabelStudioError(f"Label Studio refused: HTTP 401 {{'token': '{API_KEY}'}}"))
    response = app.test_client().get("/boom", headers=GOOD)
    assert response.status_code == 500
    assert response.get_json() == {
        "error": "Label Studio refused: HTTP 401 {'token': '***'}",
        "type": "LabelStudioError",
    }
    assert leaked(records_text(caplog)) == [] and "HTTP 401 {'token': '***'}" in records_text(caplog)


def test_an_unexpected_error_answers_a_request_id_and_logs_a_masked_traceback(tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    app = boom_app(tmp_path, RuntimeError(f"connect failed with password={PASSWORD} secret={SECRET}"))
    response = app.test_client().get("/boom", headers=GOOD)
    body = response.get_json()
    assert response.status_code == 500 and set(body) == {"error", "request_id"} and body["error"] == "internal error"
    text = records_text(caplog)
    assert leaked(text) == []
    assert f"unexpected error (request {body['request_id']})" in text
    assert "RuntimeError: connect failed with password=*** secret=***" in text


def test_basic_auth_read_from_the_environment_guards_the_backend(tmp_path):
    # The names Label Studio's own ML-backend tools use, read by Settings.from_env.
    settings = Settings.from_env(
        {"ANNOTATOR_HOME": str(tmp_path / "home"), "BASIC_AUTH_USER": "ls", "BASIC_AUTH_PASS": PASSWORD}
    )
    client = create_app(settings, start_queue=False).test_client()
    refused = client.post("/predict", json={"tasks": []})
    assert refused.status_code == 401 and refused.headers["WWW-Authenticate"] == 'Basic realm="annotator"'
    assert client.post("/predict", json={"tasks": []}, headers=GOOD).status_code == 200
    assert client.get("/health").status_code == 200


# Dashboard login: throttling, logout that ends the session, Secure cookie (issue 16) -------------
import re  # noqa: E402

from backend.dashboard import SESSION_GENERATION_KEY  # noqa: E402


def csrf(response) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', response.get_data(as_text=True)).group(1)


def dash_client(app, address="10.0.0.1"):
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = address
    return client, csrf(client.get("/dashboard/login"))


def try_login(client, token, password):
    return client.post("/dashboard/login", data={"csrf_token": token, "password": password})


class FakeClock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


@pytest.fixture
def dash_app(tmp_path):
    return make_app(tmp_path, basic_auth_user="", basic_auth_pass="", dashboard_password=DASH)[0]


def test_failed_logins_are_throttled_per_address_with_a_clear_429(dash_app):
    clock = FakeClock()
    dash_app.extensions["annotator.login_throttle"].clock = clock
    client, token = dash_client(dash_app)
    for _ in range(5):
        assert try_login(client, token, "guess").status_code == 401
        clock.now += 1
    throttled = try_login(client, token, DASH)  # even the right password: no guess is checked now
    assert throttled.status_code == 429
    assert throttled.headers["Retry-After"] == "55"
    assert (
        "Too many failed logins from this address (5 within 60 seconds). Try again in 55 seconds."
        in throttled.get_data(as_text=True)
    )
    assert client.get("/dashboard/").status_code == 302  # not logged in
    other, other_token = dash_client(dash_app, "10.0.0.2")  # another address is not held back
    assert try_login(other, other_token, DASH).status_code == 303
    clock.now += 55  # the first failure leaves the window
    assert try_login(client, token, DASH).status_code == 303
    assert client.get("/dashboard/").status_code == 200


def test_two_hundred_fast_guesses_get_five_answers(dash_app):
    client, token = dash_client(dash_app)
    statuses = [try_login(client, token, f"guess-{i}").status_code for i in range(200)]
    assert statuses[:5] == [401] * 5 and set(statuses[5:]) == {429}


def test_a_successful_login_clears_the_addresss_failures(dash_app):
    client, token = dash_client(dash_app)
    for _ in range(4):
        try_login(client, token, "guess")
    assert try_login(client, token, DASH).status_code == 303
    for _ in range(4):
        assert try_login(client, token, "guess").status_code == 401  # counting starts again


def test_logout_ends_the_session_on_the_server_so_an_old_cookie_no_longer_opens_the_dashboard(dash_app):
    client, token = dash_client(dash_app)
    assert try_login(client, token, DASH).status_code == 303
    stolen = client.get_cookie("session").value
    thief = dash_app.test_client()
    thief.set_cookie("session", stolen)
    assert thief.get("/dashboard/").status_code == 200  # a copied cookie works while the session lives
    page = client.get("/dashboard/")
    assert client.post("/dashboard/logout", data={"csrf_token": csrf(page)}).status_code == 303
    assert client.get("/dashboard/").status_code == 302
    replay = dash_app.test_client()
    replay.set_cookie("session", stolen)
    response = replay.get("/dashboard/")
    assert response.status_code == 302 and "/dashboard/login" in response.headers["Location"]
    with Store(dash_app.config["ANNOTATOR"].db_path) as store:
        assert len(store.get_meta(SESSION_GENERATION_KEY)) == 32
    assert try_login(client, csrf(client.get("/dashboard/login")), DASH).status_code == 303  # log in again
    assert client.get("/dashboard/").status_code == 200


@pytest.mark.parametrize("secure", [False, True])
def test_the_session_cookie_can_be_marked_secure(tmp_path, secure):
    settings = Settings.from_env(
        {"ANNOTATOR_SESSION_COOKIE_SECURE": "true" if secure else "false"},
        home=tmp_path / "home",
        dashboard_password=DASH,
    )
    assert settings.session_cookie_secure is secure
    app = create_app(settings, start_queue=False)
    client, token = dash_client(app)
    response = try_login(client, token, DASH)
    cookie = response.headers["Set-Cookie"]
    assert ("; Secure" in cookie) is secure and "; HttpOnly" in cookie and "SameSite=Lax" in cookie


def test_a_bad_secure_setting_names_the_variable(tmp_path):
    from annotator import InputError

    with pytest.raises(InputError) as err:
        Settings.from_env({"ANNOTATOR_SESSION_COOKIE_SECURE": "maybe"}, home=tmp_path)
    assert str(err.value) == "ANNOTATOR_SESSION_COOKIE_SECURE must be true or false (1/0, yes/no, on/off), got 'maybe'"
