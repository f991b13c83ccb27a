"""Blueprint "dashboard": the project leads' pages, server-rendered (no build step, no CDN).

Routes (registered under ``/dashboard``):

- ``GET /dashboard`` — one page: what stops the loop from feeding the annotators, if anything
  (:func:`pipeline_alerts`), progress, labels per hour, annotators, label distribution,
  agreement per label, the annotator heat map, the learning curve and the disagreement queue.
  ``?queue=N`` sets how many queue entries are listed (default 20, at most 500: each carries a form).
- ``GET /dashboard/agreement.json`` — ``AgreementReport.to_dict()``, the figures the page shows.
- ``POST /dashboard/resolve`` — form fields ``clause_id``, ``labels`` (repeated), ``resolver``,
  ``note``, ``csrf_token``: stores the lead's adjudicated set (annotators' answers are untouched).
- ``GET|POST /dashboard/login``, ``POST /dashboard/logout`` — when ``Settings.dashboard_password`` is
  set, every other dashboard page redirects to the login form.

Every figure on the page is the value of :func:`annotator.review.dashboard.dashboard_data`, formatted by
:func:`format_figure`; elements that show an agreement figure carry ``data-figure`` (its path in
``AgreementReport.to_dict()``), ``data-kind`` and the unrounded ``data-value``, so tests can check
the page against the report. Pictures are inline SVG and CSS bars built from those values.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import os
import secrets
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

from flask import Blueprint, current_app, flash, jsonify, redirect, render_template, request, session, url_for

from annotator import (
    HOURS_SHOWN,
    DashboardData,
    InputError,
    Settings,
    Store,
    adjudicate,
    agreement_for_store,
    dashboard_data,
    missing_api_key_problem,
)

from .context import get_registry, get_settings, get_store, label_config, last_failed_run, training_queue
from .errors import redact

bp = Blueprint("dashboard", __name__, template_folder="templates", static_folder="static", static_url_path="/static")

DEFAULT_QUEUE = 20
MAX_QUEUE = 500
QUEUE_STEP = 50  # entries the "show more" link adds
_AUTH_KEY = "dashboard_auth"
_THROTTLE_KEY = "annotator.login_throttle"
SESSION_GENERATION_KEY = "dashboard_session_generation"  # store meta: a new value at logout ends every session
LOGIN_FAILURES_ALLOWED = 5  # failed logins per client address ...
LOGIN_WINDOW_S = 60.0  # ... within this many seconds; then 429 with Retry-After
_CSRF_KEY = "dashboard_csrf"
_OPEN_ENDPOINTS = frozenset({"dashboard.login", "dashboard.static"})


# --------------------------------------------------------------------------- app set-up


@bp.record_once
def _configure_app(state) -> None:
    """Give the app a session key and safe cookie defaults unless the app already set them."""
    app = state.app
    if not app.secret_key:
        app.secret_key = _project_secret(app.config["ANNOTATOR"].home / "secret_key")
    if app.config.get("SESSION_COOKIE_SAMESITE") is None:
        app.config["SESSION_COOKIE_SAMESITE"] = "Lax"
    if not app.config.get("SESSION_COOKIE_SECURE"):  # behind HTTPS: ANNOTATOR_SESSION_COOKIE_SECURE=true
        app.config["SESSION_COOKIE_SECURE"] = bool(app.config["ANNOTATOR"].session_cookie_secure)
    app.config["SESSION_COOKIE_HTTPONLY"] = True
    app.extensions.setdefault(_THROTTLE_KEY, LoginThrottle())


def _project_secret(path: Path) -> bytes:
    """A random key kept in the project home (mode 0600), made once and shared by every worker.

    Written to a temporary file and hard-linked into place, so two workers starting at once agree
    on one key and nobody reads a half-written file. Deleting the file logs everyone out.
    """
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".secret-", dir=path.parent)
        try:
            with os.fdopen(fd, "w", encoding="ascii") as fh:
                fh.write(secrets.token_hex(32))
            os.chmod(tmp, 0o600)
            try:
                os.link(tmp, path)
            except FileExistsError:  # another worker made it first: use theirs
                pass
        finally:
            Path(tmp).unlink(missing_ok=True)
    text = path.read_text(encoding="ascii", errors="replace").strip()
    try:
        key = bytes.fromhex(text)
    except ValueError:
        key = b""
    if len(key) < 16:
        raise InputError(
            f"{path} does not hold a session key (32 random bytes as hex); delete it and "
            "start the backend again to make a new one"
        )
    return key


# --------------------------------------------------------------------------- login and CSRF


def _password() -> str:
    return get_settings().dashboard_password


def _auth_token(password: str) -> str:
    """What a logged-in session holds: bound to the password and to the server-side session
    generation (changing the password, or any logout, ends every session)."""
    key = current_app.secret_key
    key = key if isinstance(key, bytes) else str(key).encode()
    generation = get_store().get_meta(SESSION_GENERATION_KEY) or ""
    return hmac.new(key, f"{password}\0{generation}".encode(), hashlib.sha256).hexdigest()


def _logged_in() -> bool:
    password = _password()
    token = session.get(_AUTH_KEY, "")
    return not password or (isinstance(token, str) and hmac.compare_digest(token, _auth_token(password)))


class LoginThrottle:
    """Failed dashboard logins per client address in a sliding window (one per app, thread-safe).

    After ``limit`` failures within ``window`` seconds an address gets 429 until the oldest of them
    leaves the window; a successful login clears its failures. At most ``max_addresses`` addresses
    are remembered (the oldest forgotten first), so a flood of addresses cannot grow it without end.
    Each backend process counts its own failures (gunicorn workers: up to ``limit`` per worker).
    """

    def __init__(
        self,
        *,
        limit: int = LOGIN_FAILURES_ALLOWED,
        window: float = LOGIN_WINDOW_S,
        max_addresses: int = 10_000,
        clock=time.monotonic,
    ) -> None:
        self.limit, self.window, self.max_addresses, self.clock = limit, window, max_addresses, clock
        self._failures: dict[str, list[float]] = {}
        self._lock = threading.Lock()

    def retry_after(self, address: str) -> int:
        """Seconds until ``address`` may try again (0: now)."""
        with self._lock:
            recent = self._recent(address)
            if len(recent) < self.limit:
                return 0
            return max(1, math.ceil(recent[0] + self.window - self.clock()))

    def failed(self, address: str) -> None:
        with self._lock:
            recent = self._recent(address)
            recent.append(self.clock())
            self._failures[address] = recent
            while len(self._failures) > self.max_addresses:
                self._failures.pop(next(iter(self._failures)))

    def succeeded(self, address: str) -> None:
        with self._lock:
            self._failures.pop(address, None)

    def _recent(self, address: str) -> list[float]:
        now = self.clock()
        recent = [t for t in self._failures.get(address, ()) if now - t < self.window]
        if recent:
            self._failures[address] = recent
        else:
            self._failures.pop(address, None)
        return recent


@bp.before_request
def _require_login():
    if request.endpoint in _OPEN_ENDPOINTS or _logged_in():
        return None
    if request.method == "GET":
        return redirect(url_for(".login", next=request.full_path.rstrip("?")))
    return redirect(url_for(".login"), code=303)


def csrf_token() -> str:
    """The session's form token (made on first use)."""
    if _CSRF_KEY not in session:
        session[_CSRF_KEY] = secrets.token_urlsafe(32)
    return session[_CSRF_KEY]


def _check_form_origin() -> None:
    """Reject a form posted from another site: a foreign Origin header or a missing/wrong token."""
    origin = request.headers.get("Origin")
    if origin and origin != "null" and urlsplit(origin).netloc != request.host:
        raise InputError(
            f"form posted from {origin}, not from this dashboard ({request.host}); "
            "open the dashboard and submit it there"
        )
    sent = request.form.get("csrf_token", "")
    if not sent or not hmac.compare_digest(sent, session.get(_CSRF_KEY, "")):
        raise InputError(
            "the form's security token is missing or out of date (the session expired or "
            "the secret key changed); reload the dashboard and submit again"
        )


def _safe_next(target: str | None) -> str:
    """Only a path inside the dashboard: never redirect a login to another site."""
    home = url_for(".index")
    if not target or target.startswith("//") or not target.startswith(home.rstrip("/")):
        return home
    return target


@bp.route("/login", methods=["GET", "POST"])
def login():
    password = _password()
    target = _safe_next(request.values.get("next"))
    if not password:
        return redirect(target)
    error = None
    if request.method == "POST":
        throttle: LoginThrottle = current_app.extensions[_THROTTLE_KEY]
        address = request.remote_addr or "unknown"
        wait = throttle.retry_after(address)
        if wait:  # checked before the password: a throttled guess learns nothing
            error = (
                f"Too many failed logins from this address ({throttle.limit} within "
                f"{throttle.window:g} seconds). Try again in {wait} seconds."
            )
            response = current_app.make_response(
                (render_template("dashboard_login.html", error=error, next=target), 429)
            )
            response.headers["Retry-After"] = str(wait)
            return response
        _check_form_origin()
        if hmac.compare_digest(request.form.get("password", "").encode(), password.encode()):
            throttle.succeeded(address)
            session[_AUTH_KEY] = _auth_token(password)
            return redirect(target, code=303)
        throttle.failed(address)
        error = "Wrong password."
    return render_template("dashboard_login.html", error=error, next=target), 401 if error else 200


@bp.post("/logout")
def logout():
    """End the session here and on the server: a new session generation makes every cookie issued
    before it (this one, a copy of it, every other browser's) stop opening the dashboard."""
    _check_form_origin()
    get_store().set_meta(SESSION_GENERATION_KEY, secrets.token_hex(16))
    session.pop(_AUTH_KEY, None)
    return redirect(url_for(".login"), code=303)


# --------------------------------------------------------------------------- pages


@bp.context_processor
def _template_helpers() -> dict:
    """Formatting and picture helpers, the form token and the login state, for every dashboard page."""
    return {
        "fmt": format_figure,
        "heat": heat_color,
        "bar": bar_span,
        "ticks": nice_ticks,
        "alpha_class": alpha_class,
        "csrf_token": csrf_token(),
        "login_enabled": bool(_password()),
    }


def pipeline_alerts(settings: Settings, store: Store, data: DashboardData, queue_status: dict | None) -> list[str]:
    """What keeps new batches from reaching the annotators, worded for a lead; [] when nothing does.

    A connected project without an API key where the backend runs, a failed last retrain (from
    the store), the last cycle of this backend process ending in an error (a push that failed),
    and annotators left with nothing to label while the pool still holds unlabeled clauses.
    """
    alerts, progress = [], data.progress
    if problem := missing_api_key_problem(settings, store):
        alerts.append(f"Batches cannot be pushed: {problem}.")
    if failed := last_failed_run(store):
        error = (failed.error or "no error recorded").strip().splitlines()[0]
        alerts.append(
            f"The last retrain (started {failed.started_at[:16].replace('T', ' ')} UTC) failed: "
            f"{redact(error)}. The previous model version keeps serving."
        )
    last_error = (queue_status or {}).get("last_error")
    if last_error and not any(last_error.split(": ", 1)[-1] in alert for alert in alerts):
        alerts.append(f"The last training cycle of this backend process ended with an error: {redact(last_error)}")
    if progress.n_pushed and not progress.n_pending and progress.n_unlabeled:
        alerts.append(
            f"No task is waiting in Label Studio, although {progress.n_unlabeled:,} clauses are "
            "unlabeled: the annotators have nothing to label until a cycle pushes the next batch."
        )
    for broken in get_registry().broken_versions():
        alerts.append(
            f"Model version {broken['version']} cannot be used ({broken['reason']}); the newest intact "
            "version serves instead."
        )
    return alerts


@bp.get("/", strict_slashes=False)
def index():
    limit = _queue_limit(request.args.get("queue"))
    store, settings, queue = get_store(), get_settings(), training_queue()
    data = dashboard_data(store, label_config().labels, queue_limit=limit)
    report = data.report.to_dict()
    return render_template(
        "dashboard.html",
        alerts=pipeline_alerts(settings, store, data, queue.status() if queue else None),
        d=data,
        r=report,
        settings=settings,
        queue_arg=request.args.get("queue", ""),
        more=min(limit + QUEUE_STEP, MAX_QUEUE),
        matrix=pair_matrix(report),
        activity={a.annotator: a for a in data.annotators},
        alpha_low=axis_low(row["krippendorff_alpha"] for row in report["per_label"]),
        hours_shown=HOURS_SHOWN,
        not_policy_choice=label_config().not_policy or "",
        resolver=session.get("dashboard_resolver", ""),
    )


@bp.get("/agreement.json")
def agreement_json():
    """The agreement report the page shows, as ``annotator agreement --json`` prints it."""
    return jsonify(agreement_for_store(get_store(), label_config().labels).to_dict())


@bp.post("/resolve")
def resolve():
    """Store a lead's final label set for one clause; the clause leaves the queue."""
    _check_form_origin()
    resolver, clause_id = request.form.get("resolver", "").strip(), request.form.get("clause_id", "").strip()
    ordered = adjudicate(
        get_store(),
        clause_id,
        request.form.getlist("labels"),
        resolver=resolver,
        note=request.form.get("note", ""),
        label_set=label_config().labels,
    )
    session["dashboard_resolver"] = resolver
    flash(f"Resolved {clause_id} as {'、'.join(ordered) or '(no label)'} — by {resolver}.")
    queue = request.form.get("queue", "")
    # url_for leaves out a None value: no ?queue= when the form had none.
    return redirect(url_for(".index", queue=queue or None) + "#queue", code=303)


@bp.errorhandler(InputError)
def input_error(exc: InputError):
    """Dashboard forms get a readable page (JSON for JSON clients), always with status 400."""
    if request.accept_mimetypes.best == "application/json":
        return jsonify({"error": str(exc), "type": type(exc).__name__}), 400
    return render_template("dashboard_error.html", message=str(exc), status=400), 400


def _queue_limit(raw: str | None) -> int:
    if raw is None or raw == "":
        return DEFAULT_QUEUE
    if raw.isascii() and raw.isdigit() and 0 < int(raw) <= MAX_QUEUE:
        return int(raw)
    raise InputError(f"queue must be a number of entries from 1 to {MAX_QUEUE}, got '{raw}'")


# --------------------------------------------------------------------------- formatting and pictures


def format_figure(value: float | None, kind: str = "coef") -> str:
    """How the page shows a figure: ``coef`` 3 decimals, ``share`` a percentage with 1 decimal,
    ``rate`` 1 decimal, ``int`` with thousands separators; None (undefined) is a dash.

    Examples
    --------
    >>> format_figure(0.81249), format_figure(0.5, "share"), format_figure(None)
    ('0.812', '50.0%', '—')
    """
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "—"
    if kind == "share":
        return f"{100 * value:.1f}%"
    if kind == "int":
        return f"{value:,}"
    if kind == "rate":
        return f"{value:.1f}"
    return f"{value:.3f}"


# Light yellow to dark blue (ColorBrewer YlGnBu), for values from 0 to 1; below 0 is red.
_HEAT_STOPS = (
    (0.0, (255, 255, 217)),
    (0.25, (199, 233, 180)),
    (0.5, (127, 205, 187)),
    (0.75, (29, 145, 192)),
    (1.0, (12, 44, 132)),
)


def heat_color(value: float | None) -> tuple[str, str]:
    """Fill and text colour of a heat-map cell for a kappa in [-1, 1] (None: grey)."""
    if value is None:
        return "#eef0f3", "#8a94a6"
    if value < 0:
        return "#f4a582", "#3b0a00"
    v = min(value, 1.0)
    for (x0, c0), (x1, c1) in zip(_HEAT_STOPS, _HEAT_STOPS[1:]):
        if v <= x1:
            t = (v - x0) / (x1 - x0)
            rgb = tuple(round(a + (b - a) * t) for a, b in zip(c0, c1))
            break
    text = "#ffffff" if v > 0.6 else "#1b2433"
    return "#{:02x}{:02x}{:02x}".format(*rgb), text


def bar_span(value: float | None, low: float = 0.0, high: float = 1.0) -> tuple[float, float]:
    """``(left %, width %)`` of a bar from 0 to ``value`` on an axis from ``low`` to ``high``."""
    if value is None or high <= low:
        return 0.0, 0.0
    value = min(max(value, low), high)
    zero = (0.0 - low) / (high - low) * 100
    end = (value - low) / (high - low) * 100
    return min(zero, end), abs(end - zero)


def axis_low(values) -> float:
    """Left end of the per-label bar axis: 0, or below the most negative value in steps of 0.25."""
    low = min((v for v in values if v is not None), default=0.0)
    return max(-1.0, math.floor(min(low, 0.0) * 4) / 4)


def pair_matrix(report: dict) -> list[list[tuple[int, dict] | None]]:
    """Annotator x annotator cells ``(index in report["pairs"], pair)``; None on the diagonal."""
    index = {name: i for i, name in enumerate(report["annotators"])}
    cells: list[list[tuple[int, dict] | None]] = [[None] * len(index) for _ in index]
    for k, pair in enumerate(report["pairs"]):
        a, b = (index[name] for name in pair["annotators"])
        cells[a][b] = cells[b][a] = (k, pair)
    return cells


def alpha_class(value: float | None) -> str:
    """Krippendorff's reading of alpha: >= 0.8 reliable, >= 0.667 tentative, else unreliable."""
    if value is None:
        return "undefined"
    if value >= 0.8:
        return "good"
    if value >= 0.667:
        return "fair"
    return "poor"


def nice_ticks(maximum: float, n: int = 4) -> list[float]:
    """Round axis ticks from 0 covering ``maximum`` (at least 1).

    Examples
    --------
    >>> nice_ticks(37)
    [0, 10, 20, 30, 40]
    """
    maximum = max(float(maximum), 1.0)
    raw = maximum / n
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    if step == int(step):
        step = int(step)
    top = math.ceil(maximum / step)
    return [step * i for i in range(top + 1)]
