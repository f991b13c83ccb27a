"""Settings: the only configuration object, and the only reader of ``os.environ``.

Values are layered: defaults, then a TOML file (``ANNOTATOR_CONFIG`` or ``<home>/config.toml``),
then ``ANNOTATOR_*`` environment variables, then explicit overrides. Everything else receives a
``Settings`` instance; nothing reads the environment on its own.

Names that Label Studio's own tools use are read without the prefix (``LABEL_STUDIO_URL``,
``LABEL_STUDIO_API_KEY`` or ``LABEL_STUDIO_API_KEY_FILE``, ``BASIC_AUTH_USER``/``PASS``, and the
ML-backend examples' ``LOG_LEVEL``, ``PORT``, ``WORKERS``, ``THREADS``); the ``ANNOTATOR_*`` name
wins when both are set.
"""

from __future__ import annotations

import dataclasses
import math
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
# Names read without the prefix because Label Studio's own tools (its SDK, its ML-backend examples)
# use them; the ANNOTATOR_* name wins when both are set.
_PLAIN_ENV = {
    "LABEL_STUDIO_URL": "ls_url",
    "LABEL_STUDIO_API_KEY": "ls_api_key",
    "LABEL_STUDIO_API_KEY_FILE": "ls_api_key_file",
    "BASIC_AUTH_USER": "basic_auth_user",
    "BASIC_AUTH_PASS": "basic_auth_pass",
    "LOG_LEVEL": "log_level",
    "WORKERS": "workers",
    "THREADS": "threads",
    "PORT": "port",
}
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
# The names annotator.query.strategies.get_strategy accepts (a test keeps them equal; importing the
# strategies here would load scikit-learn and modAL for every command).
STRATEGY_NAMES = (
    "default",
    "random",
    "min_confidence",
    "avg_confidence",
    "max_score",
    "avg_score",
    "max_loss",
    "mean_max_loss",
    "svm_binary_minimum",
    "entropy",
    "mmu",
    "lci_mmu",
    "density",
    "cluster_margin",
    "ranked_batch",
    "rarity",
    "eps_mmu",
    "qbc",
    "labelwise",
    "badge",
    "coverage",
    "tempered",
    "staged",
    "quota",
    "representative",
)
# Sane ranges: beyond them a value is a typo (a seed numpy cannot take, a week-long delay, a
# batch larger than any pool), refused when the settings are read.
_BOUNDS: dict[str, tuple[float, float]] = {
    "seed": (0, 2**32 - 1),
    "batch_size": (1, 10_000),
    "queue_window": (1, 100_000),
    "retrain_every": (1, 1_000_000),
    "min_train_labels": (1, 1_000_000),
    "keep_versions": (1, 10_000),
    "low_water": (1, 100_000),
    "max_request_bytes": (1024, 2**30),
    "retrain_delay": (0, 7 * 86_400),
    "reconcile_every": (0, 7 * 86_400),
    "overlap_share": (0, 1),
    "self_training": (0, 1_000_000),
}
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
    low_water: int = 10  # no longer read: the queue keeps queue_window tasks waiting (kept for old config files)
    queue_window: int = 200  # unlabeled tasks kept waiting in Label Studio (each retrain re-scores them all)
    retrain_every: int = 10  # new labels that trigger a retrain ...
    retrain_delay: float = 60.0  # ... or seconds without a new label while labels wait (a lull)
    reconcile_every: float = 60.0  # seconds without a cycle before the queue is settled with Label Studio (0: never)
    keep_versions: int = 5  # model files kept besides the versions whose pre-fills are still shown
    min_train_labels: int = 20  # labels needed before the first model is trained
    overlap_share: float = 0.1  # share of pushed clauses served to two annotators
    # Unlabeled clauses each retrain may label itself (its most confident ones, at most as many as the
    # labeled clauses; 0: no self-training). Measured in docs/benchmarks.md, "Self-training on the pool".
    self_training: int = 1000
    seed: int = 0
    ls_url: str = "http://127.0.0.1:8080"
    ls_api_key: str = field(default="", repr=False)
    # A file holding the API key (e.g. a mounted secret): keeps the key out of the environment of
    # every child process and out of `ps`. Read when ls_api_key is empty.
    ls_api_key_file: str = ""
    ls_project_title: str = "Policy clauses"
    backend_url: str = "http://127.0.0.1:9090"
    basic_auth_user: str = ""
    basic_auth_pass: str = field(default="", repr=False)
    webhook_secret: str = field(default="", repr=False)
    dashboard_password: str = field(default="", repr=False)
    session_cookie_secure: bool = False  # send the dashboard's session cookie over HTTPS only
    max_request_bytes: int = 10 * 1024 * 1024
    # Scale-out (docs/deployment.md). Empty means the embedded default.
    database_url: str = field(default="", repr=False)  # postgresql://...; empty: SQLite at db_path
    redis_url: str = field(default="", repr=False)  # redis://...; empty: the in-process worker
    dask_scheduler: str = ""  # "local" or tcp://host:port; empty: featurize in this process
    # How `annotator serve` runs (Label Studio's ML-backend names LOG_LEVEL, PORT, WORKERS, THREADS).
    log_level: str = ""  # empty: INFO for serve and worker, WARNING for the other commands
    port: int = 9090
    workers: int = 1  # more than 1: gunicorn with that many processes
    threads: int = 8

    def __post_init__(self) -> None:
        object.__setattr__(self, "home", Path(self.home))
        object.__setattr__(self, "label_config", Path(self.label_config))
        self._check_types()
        for name in (
            "batch_size",
            "low_water",
            "queue_window",
            "retrain_every",
            "min_train_labels",
            "max_request_bytes",
            "keep_versions",
        ):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise InputError(f"{ENV_PREFIX}{name.upper()} must be a positive integer, got {value!r}")
        if not 0.0 <= self.overlap_share <= 1.0:
            raise InputError(f"{ENV_PREFIX}OVERLAP_SHARE must be between 0 and 1, got {self.overlap_share!r}")
        if self.retrain_delay < 0:
            raise InputError(f"{ENV_PREFIX}RETRAIN_DELAY must be >= 0, got {self.retrain_delay!r}")
        if self.reconcile_every < 0:
            raise InputError(f"{ENV_PREFIX}RECONCILE_EVERY must be >= 0, got {self.reconcile_every!r}")
        for name, high in (("port", 65535), ("workers", 64), ("threads", 64)):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= high:
                raise InputError(
                    f"{name.upper()} (or {ENV_PREFIX}{name.upper()}) must be an integer from 1 to {high}, got {value!r}"
                )
        level = self.log_level.strip().upper()
        if level and level not in LOG_LEVELS:
            raise InputError(
                f"LOG_LEVEL (or {ENV_PREFIX}LOG_LEVEL) must be one of {', '.join(LOG_LEVELS)}, got {self.log_level!r}"
            )
        object.__setattr__(self, "log_level", level)
        if not self.ls_api_key and self.ls_api_key_file:
            object.__setattr__(self, "ls_api_key", _read_key_file(self.ls_api_key_file))
        self._check_bounds()

    def _check_types(self) -> None:
        """Each field of the type it declares (a value from Python code is not checked by the
        TOML or environment readers), so the checks below compare numbers with numbers."""
        for f in fields(self):
            if f.name in ("port", "workers", "threads"):
                continue  # checked whole below, with the names Label Studio's tools use
            value = getattr(self, f.name)
            kind = str(f.type)
            ok = {
                "int": isinstance(value, int) and not isinstance(value, bool),
                "float": isinstance(value, (int, float)) and not isinstance(value, bool),
                "bool": isinstance(value, bool),
                "str": isinstance(value, str),
            }.get(kind, True)
            if not ok:
                expected = {
                    "int": "a positive integer" if _BOUNDS.get(f.name, (0,))[0] >= 1 else "an integer",
                    "float": "a number",
                    "bool": "true or false",
                    "str": "a string",
                }[kind]
                raise InputError(f"{ENV_PREFIX}{f.name.upper()} must be {expected}, got {value!r}")
            if kind == "float" and not math.isfinite(value):
                raise InputError(f"{ENV_PREFIX}{f.name.upper()} must be a finite number, got {value!r}")
            if kind == "str" and "\x00" in value:
                raise InputError(f"{ENV_PREFIX}{f.name.upper()} must not contain a NUL character")

    def _check_bounds(self) -> None:
        """Sane ranges, known strategy, usable URLs (issue 16: a NaN delay, a negative seed or a
        strategy nobody knows must fail when the settings are read, not mid-cycle)."""
        for name, (low, high) in _BOUNDS.items():
            value = getattr(self, name)
            if not low <= value <= high:
                raise InputError(
                    f"{ENV_PREFIX}{name.upper()} must be from {_number(low)} to {_number(high)}, got {value!r}"
                )
        if self.strategy not in STRATEGY_NAMES:
            raise InputError(
                f"{ENV_PREFIX}STRATEGY: unknown strategy {self.strategy!r}; valid: {', '.join(STRATEGY_NAMES)}"
            )
        for name in ("ls_url", "backend_url"):
            value = getattr(self, name)
            if not re.match(r"^https?://[^/\s]+", value, flags=re.IGNORECASE):
                raise InputError(
                    f"{ENV_PREFIX}{name.upper()} must be an http:// or https:// URL such as "
                    f"'http://127.0.0.1:8080', got {mask_password(value)!r}"
                )

    # Derived paths -------------------------------------------------------------------------
    @property
    def db_path(self) -> Path:
        return self.home / "annotator.db"

    @property
    def store_url(self) -> str:
        """What :class:`~annotator.storage.store.Store` opens: ``database_url`` when set, else the SQLite file."""
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
                values[name] = _coerce(key, environ[key], types[name])
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


def _read_key_file(path: str) -> str:
    """The API key in ``path`` (surrounding whitespace stripped); InputError naming the file."""
    try:
        key = Path(path).read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise InputError(f"LABEL_STUDIO_API_KEY_FILE: cannot read {path}: {reason}") from exc
    if not key:
        raise InputError(f"LABEL_STUDIO_API_KEY_FILE: {path} is empty; put the Label Studio API key in it")
    return key


def _number(value: float) -> str:
    """A bound as people write it: 4294967295, 0.5."""
    return str(int(value)) if float(value).is_integer() else str(value)


def _coerce(key: str, raw: str, type_name: Any) -> Any:
    type_name = str(type_name)
    if type_name == "bool":
        value = {
            "1": True,
            "true": True,
            "yes": True,
            "on": True,
            "0": False,
            "false": False,
            "no": False,
            "off": False,
            "": False,
        }.get(raw.strip().lower())
        if value is None:
            raise InputError(f"{key} must be true or false (1/0, yes/no, on/off), got {raw!r}")
        return value
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
    except UnicodeDecodeError as exc:
        raise InputError(
            f"config file {path} is not UTF-8 text (invalid byte 0x{exc.object[exc.start]:02x} at "
            f"offset {exc.start}); save it as UTF-8"
        ) from None
    data = data.get("annotator", data)
    if not isinstance(data, dict):
        raise InputError(f"config file {path}: [annotator] must be a table of settings, got {data!r:.60}")
    unknown = sorted(set(data) - set(types))
    if unknown:
        raise InputError(f"config file {path}: unknown key(s) {', '.join(unknown)}; known: {', '.join(types)}")
    checked = {}
    for key, value in data.items():
        kind = str(types[key])
        ok = {
            "int": isinstance(value, int) and not isinstance(value, bool),
            "float": isinstance(value, (int, float)) and not isinstance(value, bool),
            "bool": isinstance(value, bool),
        }.get(kind, isinstance(value, str))
        if not ok:
            expected = {"int": "an integer", "float": "a number", "bool": "true or false"}.get(kind, "a string")
            raise InputError(f"config file {path}: '{key}' must be {expected}, got {value!r}")
        checked[key] = float(value) if kind == "float" else value
    return checked
