"""Settings: defaults, then TOML, then ANNOTATOR_* variables, then overrides; bad values name their key."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from annotator import InputError, Settings
from annotator.labels import DEFAULT_LABEL_CONFIG
from annotator.settings import mask_password


def test_defaults_and_derived_paths(tmp_path):
    s = Settings(home=tmp_path / "proj")
    assert s.batch_size == 20 and s.strategy == "default" and s.seed == 0
    assert s.db_path == tmp_path / "proj" / "annotator.db"
    assert s.model_dir == tmp_path / "proj" / "models"
    assert s.cache_dir == tmp_path / "proj" / "cache"
    assert s.label_config == DEFAULT_LABEL_CONFIG


def test_home_given_as_string_becomes_a_path(tmp_path):
    s = Settings(home=str(tmp_path), label_config=str(DEFAULT_LABEL_CONFIG))
    assert isinstance(s.home, Path) and isinstance(s.label_config, Path)


def test_labels_come_from_the_label_config(settings):
    assert len(settings.labels) == 27
    assert settings.labels[:2] == ("金融支持", "财政支持")
    assert settings.labels_config().from_name == "labels"


def test_settings_are_frozen(settings):
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.batch_size = 5


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("batch_size", 0, "ANNOTATOR_BATCH_SIZE must be a positive integer, got 0"),
        ("batch_size", True, "ANNOTATOR_BATCH_SIZE must be a positive integer, got True"),
        ("low_water", -1, "ANNOTATOR_LOW_WATER must be a positive integer, got -1"),
        ("retrain_every", 2.5, "ANNOTATOR_RETRAIN_EVERY must be a positive integer, got 2.5"),
        ("min_train_labels", 0, "ANNOTATOR_MIN_TRAIN_LABELS must be a positive integer, got 0"),
        ("overlap_share", 1.5, "ANNOTATOR_OVERLAP_SHARE must be between 0 and 1, got 1.5"),
        ("retrain_delay", -1.0, "ANNOTATOR_RETRAIN_DELAY must be >= 0, got -1.0"),
    ],
)
def test_invalid_value_names_the_variable_and_the_value(tmp_path, field, value, message):
    with pytest.raises(InputError) as info:
        Settings(home=tmp_path, **{field: value})
    assert str(info.value) == message


def test_replace_validates_again(settings):
    assert settings.replace(batch_size=7).batch_size == 7
    with pytest.raises(InputError, match="ANNOTATOR_BATCH_SIZE must be a positive integer, got 0"):
        settings.replace(batch_size=0)


def test_secrets_are_masked(tmp_path):
    s = Settings(
        home=tmp_path,
        ls_api_key="tok-123",
        basic_auth_pass="pass-456",
        webhook_secret="",
        dashboard_password="dash-789",
    )
    public = s.public_dict()
    assert public["ls_api_key"] == "***" and public["basic_auth_pass"] == "***"
    assert public["dashboard_password"] == "***" and public["webhook_secret"] == ""
    assert public["home"] == str(tmp_path)
    assert not any(secret in repr(s) for secret in ("tok-123", "pass-456", "dash-789"))


def test_urls_show_everything_but_their_password(tmp_path):
    s = Settings(
        home=tmp_path,
        database_url="postgresql://ann:s3cr%40t@db.internal:5432/annotator",
        redis_url="redis://:r3dis@cache:6379/0",
    )
    public = s.public_dict()
    assert public["database_url"] == "postgresql://ann:***@db.internal:5432/annotator"
    assert public["redis_url"] == "redis://:***@cache:6379/0"
    assert not any(secret in repr(s) for secret in ("s3cr", "r3dis"))
    assert Settings(home=tmp_path).public_dict()["database_url"] == ""


@pytest.mark.parametrize(
    "url, shown",
    [
        ("postgresql://ann@db/annotator", "postgresql://ann@db/annotator"),  # no password: nothing to hide
        ("postgresql://ann:p@ss@db/annotator", "postgresql://ann:***@db/annotator"),  # an unescaped @
        (
            "postgresql://db/annotator?sslmode=require&password=pw",
            "postgresql://db/annotator?sslmode=require&password=***",
        ),
        ("host=db password=pw dbname=annotator", "host=db password=*** dbname=annotator"),  # libpq key=value
        ("redis://cache:6379/0", "redis://cache:6379/0"),
    ],
)
def test_mask_password(url, shown):
    assert mask_password(url) == shown


def test_store_url_is_the_database_url_else_the_sqlite_file(tmp_path):
    assert Settings(home=tmp_path).store_url == str(tmp_path / "annotator.db")
    url = "postgresql://ann:pw@db:5432/annotator"
    assert Settings(home=tmp_path, database_url=url).store_url == url
    assert Settings.from_env({"ANNOTATOR_DATABASE_URL": url}, home=tmp_path).store_url == url


def test_from_env_reads_annotator_variables(tmp_path):
    s = Settings.from_env(
        {
            "ANNOTATOR_HOME": str(tmp_path),
            "ANNOTATOR_BATCH_SIZE": "5",
            "ANNOTATOR_RETRAIN_DELAY": "0.5",
            "ANNOTATOR_STRATEGY": "mmu",
        }
    )
    assert (s.home, s.batch_size, s.retrain_delay, s.strategy) == (tmp_path, 5, 0.5, "mmu")


def test_from_env_uses_the_mapping_given_not_os_environ(tmp_path, monkeypatch):
    monkeypatch.setenv("ANNOTATOR_BATCH_SIZE", "7")
    assert Settings.from_env({}, home=tmp_path).batch_size == 20
    assert Settings.from_env(home=tmp_path).batch_size == 7


@pytest.mark.parametrize(
    "environ, message",
    [
        ({"ANNOTATOR_BATCH_SIZE": "abc"}, "ANNOTATOR_BATCH_SIZE must be an integer, got 'abc'"),
        ({"ANNOTATOR_RETRAIN_DELAY": "soon"}, "ANNOTATOR_RETRAIN_DELAY must be a number, got 'soon'"),
        ({"ANNOTATOR_BATCH_SIZE": "0"}, "ANNOTATOR_BATCH_SIZE must be a positive integer, got 0"),
    ],
)
def test_from_env_bad_value_names_the_variable(tmp_path, environ, message):
    with pytest.raises(InputError) as info:
        Settings.from_env(environ, home=tmp_path)
    assert str(info.value) == message


def test_label_studio_plain_names_and_prefixed_ones_win(tmp_path):
    env = {"LABEL_STUDIO_URL": "http://ls:8080", "LABEL_STUDIO_API_KEY": "k1", "BASIC_AUTH_USER": "u"}
    s = Settings.from_env(env, home=tmp_path)
    assert (s.ls_url, s.ls_api_key, s.basic_auth_user) == ("http://ls:8080", "k1", "u")
    s = Settings.from_env({**env, "ANNOTATOR_LS_URL": "http://other:9000"}, home=tmp_path)
    assert s.ls_url == "http://other:9000"


def test_layers_toml_then_environment_then_overrides(tmp_path):
    (tmp_path / "config.toml").write_text("[annotator]\nbatch_size = 8\nlow_water = 3\nseed = 4\n", encoding="utf-8")
    s = Settings.from_env({"ANNOTATOR_LOW_WATER": "6", "ANNOTATOR_SEED": "5"}, home=tmp_path, seed=9)
    assert (s.batch_size, s.low_water, s.seed) == (8, 6, 9)


def test_config_file_from_variable_without_table(tmp_path):
    config = tmp_path / "elsewhere.toml"
    config.write_text('strategy = "entropy"\n', encoding="utf-8")
    s = Settings.from_env({"ANNOTATOR_CONFIG": str(config)}, home=tmp_path / "home")
    assert s.strategy == "entropy"


def test_none_overrides_do_not_erase_values(tmp_path):
    s = Settings.from_env({"ANNOTATOR_HOME": str(tmp_path), "ANNOTATOR_BATCH_SIZE": "3"}, home=None, batch_size=None)
    assert (s.home, s.batch_size) == (tmp_path, 3)


def test_unknown_toml_key_is_reported_with_the_known_ones(tmp_path):
    config = tmp_path / "config.toml"
    config.write_text("batch_sise = 5\n", encoding="utf-8")
    with pytest.raises(InputError) as info:
        Settings.from_env({}, home=tmp_path)
    assert str(info.value).startswith(f"config file {config}: unknown key(s) batch_sise; known: home, ")
    assert "batch_size" in str(info.value)


def test_invalid_toml_is_reported(tmp_path):
    config = tmp_path / "config.toml"
    config.write_text("batch_size = = 5\n", encoding="utf-8")
    with pytest.raises(InputError, match=f"^config file {config} is not valid TOML: "):
        Settings.from_env({}, home=tmp_path)


def test_missing_config_file_is_reported(tmp_path):
    missing = tmp_path / "nope.toml"
    with pytest.raises(InputError) as info:
        Settings.from_env({}, home=tmp_path, config_file=missing)
    assert str(info.value) == f"cannot read config file {missing}: No such file or directory"


def test_quoted_number_in_toml_names_the_key(tmp_path):
    (tmp_path / "config.toml").write_text('retrain_delay = "5"\n', encoding="utf-8")
    with pytest.raises(InputError, match="'retrain_delay' must be a number, got '5'"):
        Settings.from_env({}, home=tmp_path)
