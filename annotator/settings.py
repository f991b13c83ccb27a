"""Settings: the only configuration object, and the only reader of ``os.environ``.

Values are layered: defaults, then a TOML file (``ANNOTATOR_CONFIG`` or ``<home>/config.toml``),
then ``ANNOTATOR_*`` environment variables, then explicit overrides. Everything else receives a
``Settings`` instance; nothing reads the environment on its own.
"""
from __future__ import annotations

import dataclasses
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from .errors import InputError
from .labels import DEFAULT_LABEL_CONFIG, LabelConfig, load_label_config

ENV_PREFIX = "ANNOTATOR_"
# Names read without the prefix because Label Studio's own tools use them.
_PLAIN_ENV = {"LABEL_STUDIO_URL": "ls_url", "LABEL_STUDIO_API_KEY": "ls_api_key",
              "BASIC_AUTH_USER": "basic_auth_user", "BASIC_AUTH_PASS": "basic_auth_pass"}
_SECRET_FIELDS = {"ls_api_key", "basic_auth_pass", "webhook_secret", "dashboard_password"}
_URL_FIELDS = {"database_url", "redis_url"}  # shown with only their password masked


@dataclass(frozen=True)
class Settings:
    """Everything configurable about one annotator project.

    ``home`` holds the project's whole state: ``annotator.db`` (the store), ``models/`` (model
    versions) and ``cache/`` (pool features), so two projects never mix.
    """

    home: Path = Path(".annotator")
    label_config: Path = DEFAULT_LABEL_CONFIG
    strategy: str = "default"  # the measured best, see docs/benchmarks.md
    batch_size: int = 20
    low_water: int = 10  # push the next batch when fewer unlabeled pushed tasks remain
    retrain_every: int = 10  # new labels that trigger a retrain ...
    retrain_delay: float = 5.0  # ... or seconds after the first unretrained label
    min_train_labels: int = 20  # labels needed before the first model is trained
    overlap_share: float = 0.1  # share of pushed clauses served to two annotators
    seed: int = 0
    ls_url: str = "http://127.0.0.1:8080"
    ls_api_key: str = field(default="", repr=False)
    ls_project_title: str = "Policy clauses"
    backend_url: str = "http://127.0.0.1:9090"
    basic_auth_user: str = ""
    basic_auth_pass: str = field(default="", repr=False)
    webhook_secret: str = field(default="", repr=False)
    dashboard_password: str = field(default="", repr=False)
    max_request_bytes: int = 10 * 1024 * 1024
    # Scale-out (docs/deployment.md). Empty means the embedded default.
    database_url: str = field(default="", repr=False)  # postgresql://...; empty: SQLite at db_path
    redis_url: str = field(default="", repr=False)  # redis://...; empty: the in-process worker
    dask_scheduler: str = ""  # "local" or tcp://host:port; empty: featurize in this process

    def __post_init__(self) -> None:
        object.__setattr__(self, "home", Path(self.home))
        object.__setattr__(self, "label_config", Path(self.label_config))
        for name in ("batch_size", "low_water", "retrain_every", "min_train_labels", "max_request_bytes"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise InputError(f"{ENV_PREFIX}{name.upper()} must be a positive integer, got {value!r}")
        if not 0.0 <= self.overlap_share <= 1.0:
            raise InputError(
                f"{ENV_PREFIX}OVERLAP_SHARE must be between 0 and 1, got {self.overlap_share!r}"
            )
        if self.retrain_delay < 0:
            raise InputError(f"{ENV_PREFIX}RETRAIN_DELAY must be >= 0, got {self.retrain_delay!r}")

    # Derived paths -------------------------------------------------------------------------
    @property
    def db_path(self) -> Path:
        return self.home / "annotator.db"

    @property
    def store_url(self) -> str:
        """What :class:`~annotator.store.Store` opens: ``database_url`` when set, else the SQLite file."""
        return self.database_url or str(self.db_path)

    @property
    def model_dir(self) -> Path:
        return self.home / "models"

    @property
    def cache_dir(self) -> Path:
        return self.home / "cache"

    def labels_config(self) -> LabelConfig:
        """The parsed labeling config (labels, from/to names)."""
        return load_label_config(self.label_config)

    @property
    def labels(self) -> tuple[str, ...]:
        return self.labels_config().labels

    def replace(self, **changes: Any) -> Settings:
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    def public_dict(self) -> dict[str, Any]:
        """The settings as plain values with secrets masked, safe to log or show."""
        out = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name in _SECRET_FIELDS:
                value = "***" if value else ""
            elif f.name in _URL_FIELDS:
                value = mask_password(value)
            out[f.name] = str(value) if isinstance(value, Path) else value
        return out

    @classmethod
    def from_env(
        cls,
        environ: Mapping[str, str] | None = None,
        *,
        config_file: str | Path | None = None,
        **overrides: Any,
    ) -> Settings:
        """Build settings from a TOML file, ``ANNOTATOR_*`` variables and explicit overrides.

        Examples
        --------
        >>> Settings.from_env({"ANNOTATOR_BATCH_SIZE": "5"}).batch_size
        5
        """
        environ = os.environ if environ is None else environ
        types = {f.name: f.type for f in fields(cls)}
        values: dict[str, Any] = {}
        home = overrides.get("home") or environ.get(f"{ENV_PREFIX}HOME") or cls.home
        config_file = config_file or environ.get(f"{ENV_PREFIX}CONFIG")
        if config_file is None and (Path(home) / "config.toml").is_file():
            config_file = Path(home) / "config.toml"
        if config_file is not None:
            values.update(_read_toml(Path(config_file), types))
        for name in types:
            key = f"{ENV_PREFIX}{name.upper()}"
            if key in environ:
                values[name] = _coerce(key, environ[key], types[name])
        for key, name in _PLAIN_ENV.items():
            if key in environ and f"{ENV_PREFIX}{name.upper()}" not in environ:
                values[name] = environ[key]
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)


def mask_password(url: str) -> str:
    """``url`` with its password replaced by ``***`` (userinfo or a ``password=`` parameter).

    Examples
    --------
    >>> mask_password("postgresql://ann:s3cret@db:5432/annotator")
    'postgresql://ann:***@db:5432/annotator'
    """
    url = re.sub(r"^([a-z][a-z0-9+.-]*://[^:/?#@]*):[^/?#]*@", r"\1:***@", url, flags=re.IGNORECASE)
    return re.sub(r"(\bpassword=)[^&\s]*", r"\1***", url, flags=re.IGNORECASE)


def _coerce(key: str, raw: str, type_name: Any) -> Any:
    type_name = str(type_name)
    try:
        if type_name == "int":
            return int(raw)
        if type_name == "float":
            return float(raw)
    except ValueError:
        kind = "an integer" if type_name == "int" else "a number"
        raise InputError(f"{key} must be {kind}, got {raw!r}") from None
    return raw


def _read_toml(path: Path, types: Mapping[str, Any]) -> dict[str, Any]:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise InputError(f"cannot read config file {path}: {exc.strerror}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"config file {path} is not valid TOML: {exc}") from exc
    data = data.get("annotator", data)
    unknown = sorted(set(data) - set(types))
    if unknown:
        raise InputError(
            f"config file {path}: unknown key(s) {', '.join(unknown)}; known: {', '.join(types)}"
        )
    checked = {}
    for key, value in data.items():
        kind = str(types[key])
        ok = {"int": isinstance(value, int) and not isinstance(value, bool),
              "float": isinstance(value, (int, float)) and not isinstance(value, bool)}.get(
            kind, isinstance(value, str))
        if not ok:
            expected = {"int": "an integer", "float": "a number"}.get(kind, "a string")
            raise InputError(f"config file {path}: '{key}' must be {expected}, got {value!r}")
        checked[key] = float(value) if kind == "float" else value
    return checked
