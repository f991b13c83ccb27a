"""One redaction on every path out of the process (issue 16): planted secrets never come back out.

Paths: the function itself, HTTP error bodies, /health, log lines and tracebacks (the backend's
and the CLI's), the training worker's log, CLI error output, export metadata.
"""

from __future__ import annotations

import io
import json
import logging

import pytest
from click.testing import CliRunner

from annotator import LabelStudioError, Settings, Store
from annotator.cli import main
from annotator.redaction import RedactingFilter, install_log_redaction, redact, redact_obj, settings_secrets

API_KEY = "lsk-planted-0123456789abcdef"
BASIC_PASS = "basic-pw-7a6b5c4d"
WEBHOOK = "hook-secret-1b2c3d4e"
DASH = "dash-pw-5e6f7a8b"
LS_PASS = "ls-url-pw-31415"
DB_PASS = "db-pw-27182"
REDIS_PASS = "redis-pw-16180"
BEARER = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl"
PLANTED = (API_KEY, BASIC_PASS, WEBHOOK, DASH, LS_PASS, DB_PASS, REDIS_PASS, BEARER, "dXNlcjpzM2NyZXQ=")


def leaked(text: str) -> list[str]:
    return [s for s in PLANTED if s in text]


def planted_settings(tmp_path, **changes) -> Settings:
    values = dict(
        home=tmp_path / "home",
        ls_api_key=API_KEY,
        basic_auth_user="ls",
        basic_auth_pass=BASIC_PASS,
        webhook_secret=WEBHOOK,
        dashboard_password=DASH,
        ls_url=f"http://admin:{LS_PASS}@ls.local:8080",
        database_url="",
        redis_url="",
    )
    values.update(changes)
    return Settings(**values)


# A message quoting everything a failing Label Studio call can echo back.
NOISY = (
    f"POST http://admin:{LS_PASS}@ls.local:8080/api/projects/1/import failed: 401 "
    f"{{'Authorization': 'Token {API_KEY}', 'X-Annotator-Secret': '{WEBHOOK}'}} "
    f"Authorization: Bearer {BEARER}; basic: Basic dXNlcjpzM2NyZXQ= password={DASH}&next=/ "
    f"postgresql://ann:{DB_PASS}@db:5432/annotator redis://:{REDIS_PASS}@cache:6379/0"
)


# --------------------------------------------------------------------------- the function


def test_redact_masks_every_kind_of_secret(tmp_path):
    text = redact(NOISY, settings_secrets(planted_settings(tmp_path)))
    assert leaked(text) == []
    assert text == (
        "POST http://admin:***@ls.local:8080/api/projects/1/import failed: 401 "
        "{'Authorization': 'Token ***', 'X-Annotator-Secret': '***'} "
        "Authorization: Bearer ***; basic: Basic *** password=***&next=/ "
        "postgresql://ann:***@db:5432/annotator redis://:***@cache:6379/0"
    )
    assert redact(text) == text  # idempotent


@pytest.mark.parametrize(
    "text, expected",
    [
        ("Token expired; log in again", "Token expired; log in again"),
        ('Basic realm="annotator"', 'Basic realm="annotator"'),
        ("the token is invalid", "the token is invalid"),
        ("3 clauses, macro-F1 0.41", "3 clauses, macro-F1 0.41"),
        ("api_key=abc123", "api_key=***"),
        ('{"api_key": "abc123", "n": 3}', '{"api_key": "***", "n": 3}'),
        ("ftp://user:@host/x", "ftp://user:@host/x"),
    ],
)
def test_redact_leaves_ordinary_text_alone_and_masks_key_value_pairs(text, expected):
    assert redact(text) == expected


def test_settings_secrets_cover_the_secret_fields_url_passwords_and_the_basic_token(tmp_path):
    settings = planted_settings(
        tmp_path, database_url=f"postgresql://ann:{DB_PASS}@db/x", redis_url=f"redis://:{REDIS_PASS}@cache:6379/0"
    )
    secrets = settings_secrets(settings)
    assert {API_KEY, BASIC_PASS, WEBHOOK, DASH, LS_PASS, DB_PASS, REDIS_PASS} <= set(secrets)
    import base64

    assert base64.b64encode(f"ls:{BASIC_PASS}".encode()).decode() in secrets
    assert settings_secrets(Settings(home=tmp_path, ls_api_key="abc")) == ()  # too short to mask safely
    assert settings_secrets(None) == ()


def test_a_url_quoted_secret_is_masked_too():
    assert redact("GET /api?token=a%2Fb%2Bc%3D%3D", ["a/b+c=="]) == "GET /api?token=***"
    assert redact("seen: a%2Fb%2Bc%3D%3D", ["a/b+c=="]) == "seen: ***"


def test_redact_obj_masks_nested_strings_and_keys():
    assert redact_obj({"who": [f"Token {API_KEY}"], API_KEY: 1, "n": 2}, [API_KEY]) == {
        "who": ["Token ***"],
        "***": 1,
        "n": 2,
    }


# --------------------------------------------------------------------------- logs and tracebacks


@pytest.fixture
def log_stream():
    """A root handler like the CLI's and the backend's, with the redaction filter installed."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    old_level = root.level
    root.setLevel(logging.DEBUG)
    yield stream, handler
    root.removeHandler(handler)
    root.setLevel(old_level)


def test_log_lines_arguments_and_tracebacks_are_redacted(tmp_path, log_stream):
    stream, handler = log_stream
    install_log_redaction(settings_secrets(planted_settings(tmp_path)))
    assert sum(isinstance(f, RedactingFilter) for f in handler.filters) == 1
    log = logging.getLogger("annotator.test")
    log.warning("cycle failed: %s", NOISY)
    try:
        raise LabelStudioError(f"Label Studio answered 401 for key {API_KEY} at http://a:{LS_PASS}@h")
    except LabelStudioError:
        log.exception("training cycle failed")
    log.error("stack", stack_info=True, extra={"x": API_KEY})
    text = stream.getvalue()
    assert leaked(text) == []
    assert "Traceback (most recent call last)" in text
    assert "LabelStudioError: Label Studio answered 401 for key *** at http://a:***@h" in text
    install_log_redaction(["another-secret-value"])  # a second app: same filter, more secrets
    assert sum(isinstance(f, RedactingFilter) for f in handler.filters) == 1
    log.error("seen another-secret-value and %s", API_KEY)
    assert stream.getvalue().splitlines()[-1] == "ERROR annotator.test: seen *** and ***"


def test_the_last_resort_handler_is_covered_when_nothing_configured_logging(tmp_path):
    install_log_redaction([API_KEY])
    assert any(isinstance(f, RedactingFilter) and API_KEY in f.secrets for f in logging.lastResort.filters)


def test_the_training_worker_redacts_its_log_with_the_jobs_secrets(log_stream):
    from backend.jobs import _configure_worker

    stream, handler = log_stream
    _configure_worker(logging.INFO, (API_KEY,))  # what the worker process runs first
    logging.getLogger("annotator.cycle.loop").error("push failed: key %s", API_KEY)
    assert stream.getvalue().splitlines()[-1] == "ERROR annotator.cycle.loop: push failed: key ***"


# --------------------------------------------------------------------------- HTTP


@pytest.fixture
def app(tmp_path):
    from backend import create_app

    settings = planted_settings(tmp_path, basic_auth_user="", basic_auth_pass="", dashboard_password="")
    app = create_app(settings, start_queue=False)

    def boom_known():
        raise LabelStudioError(NOISY)

    def boom_unexpected():
        raise RuntimeError(NOISY)

    app.add_url_rule("/boom-known", "boom_known", boom_known)
    app.add_url_rule("/boom-unexpected", "boom_unexpected", boom_unexpected)
    return app


def test_http_error_bodies_and_the_log_are_redacted(app, caplog, log_stream):
    stream, _ = log_stream
    client = app.test_client()
    known = client.get("/boom-known")
    assert known.status_code == 500 and leaked(known.get_data(as_text=True)) == []
    assert known.get_json()["error"].startswith("POST http://admin:***@ls.local:8080/api/projects/1/import failed")
    unexpected = client.get("/boom-unexpected")
    assert unexpected.status_code == 500 and unexpected.get_json()["error"] == "internal error"
    assert leaked(stream.getvalue()) == [] and "RuntimeError" in stream.getvalue()
    assert leaked("\n".join(r.getMessage() + (r.exc_text or "") for r in caplog.records)) == []


def test_health_redacts_a_failed_runs_error(app, tmp_path):
    with Store(app.config["ANNOTATOR"].db_path) as store:
        run = store.start_train_run(20)
        store.finish_train_run(run, error=f"LabelStudioError: {NOISY}")
    body = app.test_client().get("/health").get_data(as_text=True)
    assert leaked(json.loads(body).get("last_training_error") or "") == []
    assert "Token ***" in body


def test_health_shows_no_secret_at_all(app):
    with Store(app.config["ANNOTATOR"].db_path) as store:
        run = store.start_train_run(20)
        store.finish_train_run(run, error=f"LabelStudioError: {NOISY}")
    assert leaked(app.test_client().get("/health").get_data(as_text=True)) == []


# --------------------------------------------------------------------------- CLI


def test_cli_error_output_is_redacted(tmp_path, monkeypatch):
    import annotator.dataset.reports as reports

    def fail(*args, **kwargs):
        raise LabelStudioError(NOISY)

    monkeypatch.setattr(reports, "agreement_summary", fail)
    env = {
        "ANNOTATOR_HOME": str(tmp_path / "home"),
        "LABEL_STUDIO_API_KEY": API_KEY,
        "LABEL_STUDIO_URL": f"http://admin:{LS_PASS}@ls.local:8080",
        "ANNOTATOR_WEBHOOK_SECRET": WEBHOOK,
    }
    result = CliRunner().invoke(main, ["agreement"], env=env)
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert leaked(result.output) == []
    assert "Error: POST http://admin:***@ls.local:8080/api/projects/1/import failed: 401 " in result.output


def test_cli_os_errors_are_a_message_not_a_traceback(tmp_path, monkeypatch):
    import annotator.dataset.reports as reports

    def fail(*args, **kwargs):
        raise PermissionError(13, "Permission denied", f"/srv/{API_KEY}/x")

    monkeypatch.setattr(reports, "agreement_summary", fail)
    result = CliRunner().invoke(
        main, ["agreement"], env={"ANNOTATOR_HOME": str(tmp_path / "home"), "LABEL_STUDIO_API_KEY": API_KEY}
    )
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert result.output.strip() == "Error: Permission denied (/srv/***/x)"


def test_an_apps_secrets_are_masked_while_the_app_lives(log_stream):
    import gc

    stream, handler = log_stream

    class App:
        pass

    app = App()
    install_log_redaction(["owned-secret-42"], owner=app)
    log = logging.getLogger("annotator.test")
    log.error("owned-secret-42")
    assert stream.getvalue().splitlines()[-1] == "ERROR annotator.test: ***"
    del app
    gc.collect()
    log.error("owned-secret-42")  # another app's password is an ordinary word to this one
    assert stream.getvalue().splitlines()[-1] == "ERROR annotator.test: owned-secret-42"
