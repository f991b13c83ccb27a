"""The one redaction every path out of the process goes through: HTTP bodies, logs, CLI errors, exports.

A message can quote what another system said (Label Studio echoing the ``Authorization`` header
of a failed request, a database driver repeating its connection URL), so text is redacted where
it leaves the process, not where it was made. :func:`redact` masks, with ``***``:

- the configured secrets (:func:`settings_secrets`: the Label Studio API key, the basic-auth and
  dashboard passwords, the webhook secret, the passwords inside the database, Redis and Label
  Studio URLs), also in their URL-quoted form and as a basic-auth ``user:pass`` token;
- ``Authorization`` header values (``Token …``, ``Bearer …``, ``Basic …``), in headers, JSON or
  Python reprs, and stand-alone ``Bearer``/``Token`` credentials and ``Basic`` tokens;
- passwords in URLs (``scheme://user:PASSWORD@host``) and secret-looking query parameters or
  key/value pairs (``password=``, ``api_key``, ``token``, ``secret`` …).

Log records are redacted by :class:`RedactingFilter`, which :func:`install_log_redaction` puts on
the root logger's handlers (and on :data:`logging.lastResort`, which prints when none is
configured); it also redacts a record's traceback text, which handlers would otherwise format
from the live exception.
"""

from __future__ import annotations

import base64
import binascii
import logging
import re
import weakref
from collections.abc import Iterable
from typing import Any
from urllib.parse import quote, unquote, urlsplit

MASK = "***"
MIN_SECRET_CHARS = 4  # masking a one-letter "secret" would garble every message

_SECRET_FIELDS = ("ls_api_key", "basic_auth_pass", "webhook_secret", "dashboard_password")
_URL_FIELDS = ("ls_url", "database_url", "redis_url", "backend_url")

# `Authorization: Token abc`, `"Authorization": "Bearer abc"`, `'authorization': 'Basic abc'`.
_AUTH_HEADER = re.compile(
    r"""(?P<head>\bauthorization["']?\s*[:=]\s*["']?(?:(?:bearer|token|basic|digest)\s+)?)"""
    r"""(?P<value>[^\s"',;}\]]+)""",
    re.IGNORECASE,
)
# Stand-alone credentials: "Bearer eyJhbGciOi...", "Token 0123abcd..." (a value with a digit, so
# "Token expired" stays readable).
_SCHEME_TOKEN = re.compile(
    r"\b(?P<head>(?:bearer|token)\s+)(?P<value>(?=[^\s\"']*\d)[A-Za-z0-9._~+/=-]{8,})", re.IGNORECASE
)
_BASIC_TOKEN = re.compile(r"\b(?P<head>basic\s+)(?P<value>[A-Za-z0-9+/]{6,}={0,2})", re.IGNORECASE)
# scheme://user:password@host (the user stays: it names the account, it opens nothing).
_URL_PASSWORD = re.compile(r"(?P<head>\b[a-z][a-z0-9+.-]*://[^\s:/?#@\"']*:)(?P<value>[^\s/?#@\"']*)@", re.IGNORECASE)
# password=..., "api_key": "...", token: ..., secret='...'
_KEY_VALUE = re.compile(
    r"""(?P<head>\b(?:password|passwd|api[_-]?key|apikey|access[_-]?token|auth[_-]?token|token|"""
    r"""secret|webhook[_-]?secret|client[_-]?secret|private[_-]?key)["']?\s*[:=]\s*["']?)"""
    r"""(?P<value>[^\s"'&,;}\])]+)""",
    re.IGNORECASE,
)


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` with every secret and credential-shaped value replaced by ``***``.

    Parameters
    ----------
    text : str
        Any message, traceback or document about to leave the process.
    secrets : iterable of str
        Known secret values (:func:`settings_secrets`); values shorter than
        ``MIN_SECRET_CHARS`` are ignored.

    Returns
    -------
    str
        The redacted text; redacting it again changes nothing.

    Examples
    --------
    >>> redact("GET http://ann:s3cret@ls:8080/api -> 401 {'Authorization': 'Token 9f8e7d6c5b4a'}")
    "GET http://ann:***@ls:8080/api -> 401 {'Authorization': 'Token ***'}"
    >>> redact("key mysecretkey rejected", ["mysecretkey"])
    'key *** rejected'
    """
    if not isinstance(text, str):
        text = str(text)
    for secret in _variants(secrets):
        text = text.replace(secret, MASK)
    text = _AUTH_HEADER.sub(_mask, text)
    text = _SCHEME_TOKEN.sub(_mask, text)
    text = _BASIC_TOKEN.sub(_mask_basic, text)
    text = _URL_PASSWORD.sub(lambda m: f"{m.group('head')}{MASK if m.group('value') else ''}@", text)
    return _KEY_VALUE.sub(_mask, text)


def redact_obj(value: Any, secrets: Iterable[str] = ()) -> Any:
    """A JSON-like value (dicts, lists, strings) with every string redacted; keys too."""
    secrets = tuple(secrets)
    if isinstance(value, str):
        return redact(value, secrets)
    if isinstance(value, dict):
        return {redact(k, secrets) if isinstance(k, str) else k: redact_obj(v, secrets) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(redact_obj(v, secrets) for v in value)
    return value


def settings_secrets(settings: Any) -> tuple[str, ...]:
    """The secret values of a :class:`~annotator.settings.Settings` (or any object with its fields).

    The secret fields themselves, the passwords inside its URLs, and the basic-auth pair as the
    ``user:pass`` text a Basic header encodes.
    """
    if settings is None:
        return ()
    out = [getattr(settings, name, "") or "" for name in _SECRET_FIELDS]
    for name in _URL_FIELDS:
        password = _url_password(getattr(settings, name, "") or "")
        if password:
            out.append(password)
    user, password = getattr(settings, "basic_auth_user", ""), getattr(settings, "basic_auth_pass", "")
    if user and password:
        out.append(base64.b64encode(f"{user}:{password}".encode("utf-8", "surrogateescape")).decode("ascii"))
    return tuple(s for s in out if isinstance(s, str) and len(s) >= MIN_SECRET_CHARS)


def _url_password(url: str) -> str:
    try:
        password = urlsplit(url).password
    except ValueError:  # an unparsable URL (bad port): fall back to the pattern
        match = _URL_PASSWORD.search(url)
        password = match.group("value") if match else None
    return unquote(password) if password else ""


def _variants(secrets: Iterable[str]) -> list[str]:
    """Each secret as written and URL-quoted, longest first (a secret inside another is masked whole)."""
    out = set()
    for secret in secrets:
        if isinstance(secret, str) and len(secret) >= MIN_SECRET_CHARS:
            out.update({secret, quote(secret, safe=""), quote(secret)})
    return sorted(out, key=len, reverse=True)


def _mask(m: re.Match) -> str:
    return f"{m.group('head')}{MASK}" if m.group("value") != MASK else m.group(0)


def _mask_basic(m: re.Match) -> str:
    """Mask a ``Basic`` token only when it decodes to ``user:pass`` ("Basic realm" stays)."""
    try:
        decoded = base64.b64decode(m.group("value"), validate=True)
    except (binascii.Error, ValueError):
        return m.group(0)
    return f"{m.group('head')}{MASK}" if b":" in decoded else m.group(0)


class RedactingFilter(logging.Filter):
    """A handler filter that redacts each record's message, arguments, traceback and stack text.

    The message is rendered once (``record.getMessage()``) and stored redacted with no arguments;
    the traceback is rendered to ``record.exc_text``, which :class:`logging.Formatter` prints
    instead of formatting the exception again.
    """

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self._permanent: set[str] = set()
        # Secrets of an owner (a Flask app) are dropped with it: tests build many apps in one process.
        self._owned: weakref.WeakKeyDictionary[Any, frozenset[str]] = weakref.WeakKeyDictionary()
        self.add_secrets(secrets)

    @property
    def secrets(self) -> set[str]:
        """Every secret masked now: the permanent ones and those of owners still alive."""
        out = set(self._permanent)
        for owned in list(self._owned.values()):
            out |= owned
        return out

    def add_secrets(self, secrets: Iterable[str], owner: Any = None) -> None:
        """Mask ``secrets`` from now on; with an ``owner``, only while the owner exists."""
        usable = {s for s in secrets if isinstance(s, str) and len(s) >= MIN_SECRET_CHARS}
        if owner is None:
            self._permanent |= usable
        else:
            self._owned[owner] = frozenset(usable) | self._owned.get(owner, frozenset())

    def filter(self, record: logging.LogRecord) -> bool:
        secrets = tuple(self.secrets)
        try:
            message = record.getMessage()
        except (TypeError, ValueError):  # a bad format string: logging reports it; leave it to it
            return True
        record.msg, record.args = redact(message, secrets), None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text, secrets)
        if record.stack_info:
            record.stack_info = redact(record.stack_info, secrets)
        return True


def install_log_redaction(
    secrets: Iterable[str] = (), *, owner: Any = None, logger: logging.Logger | None = None
) -> RedactingFilter:
    """Put a :class:`RedactingFilter` on every handler of ``logger`` (the root) and on lastResort.

    Calling it again (another app, another Settings) adds the new secrets to the filters already
    installed rather than stacking filters. With ``owner`` (the Flask app), its secrets are masked
    while the owner exists; without, for the life of the process (the CLI). Returns the filter of
    the first handler.
    """
    logger = logger if logger is not None else logging.getLogger()
    handlers = list(logger.handlers)
    if logging.lastResort is not None:
        handlers.append(logging.lastResort)
    secrets = tuple(secrets)
    first = None
    for handler in handlers:
        found = next((f for f in handler.filters if isinstance(f, RedactingFilter)), None)
        if found is None:
            found = RedactingFilter()
            handler.addFilter(found)
        found.add_secrets(secrets, owner)
        first = first or found
    if first is None:
        first = RedactingFilter()
        first.add_secrets(secrets, owner)
    return first
