"""Start and stop the two servers of a local set-up: Label Studio and this project's backend.

Used by ``annotator demo``, the end-to-end tests and the live benchmarks, so all three run the
servers the same way. Label Studio gets a clean environment (it reads plain names like ``PORT``
and ``HOST`` from the environment), offline flags, and the flags that let it call a backend on
localhost. It keeps its data in SQLite under its data folder, or in a PostgreSQL database given
by URL (the same ``postgresql://user:password@host:port/dbname`` form as ``ANNOTATOR_DATABASE_URL``).
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import unquote, urlsplit

import requests

from ..errors import AnnotatorError
from ..optional import check, missing_message

log = logging.getLogger(__name__)

DEMO_TOKEN = "annotator-demo-token-0123456789"  # the local Label Studio admin's API token (loopback only)


def port_answers(port: int, host: str = "127.0.0.1") -> bool:
    """Whether something accepts TCP connections on ``host:port`` right now."""
    with socket.socket() as sock:
        sock.settimeout(2)
        return sock.connect_ex((host, port)) == 0


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_http(
    url: str, *, timeout: float, process: subprocess.Popen | None = None, log_file: Path | None = None
) -> None:
    """Wait until ``url`` answers 200, the process dies, or ``timeout`` seconds pass."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            tail = log_file.read_text(errors="replace")[-2000:] if log_file and log_file.exists() else ""
            raise AnnotatorError(f"server for {url} exited with code {process.returncode}\n{tail}")
        try:
            if requests.get(url, timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.5)
    raise AnnotatorError(f"{url} did not answer within {timeout:.0f} s")


STOP_SIGNALS = (signal.SIGTERM, signal.SIGHUP)


@contextlib.contextmanager
def stop_signals_interrupt() -> Iterator[None]:
    """Within the block, SIGTERM and SIGHUP raise KeyboardInterrupt like Ctrl-C does.

    The servers run in sessions of their own (a Ctrl-C meant for the terminal's foreground job must
    not reach Label Studio mid-migration), so a ``kill`` of the process that started them, or the
    terminal closing, never reaches them: without this the default handlers end that process
    without running its ``finally`` and leave both servers holding their ports. Only the main
    thread can take signals; elsewhere the block runs unchanged.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum, frame):
        raise KeyboardInterrupt(signal.Signals(signum).name)

    previous = {signum: signal.signal(signum, interrupt) for signum in STOP_SIGNALS}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


class _Server:
    """A child process with its log file, stopped by SIGTERM (then SIGKILL)."""

    process: subprocess.Popen | None = None
    log_path: Path
    _log_file = None
    port: int
    what: str  # how messages name the server
    port_option: str  # where a user picks another port

    def check_port(self) -> None:
        """AnnotatorError naming the port when something already answers on it: the readiness check
        would otherwise take that process's answers for this server's. ``start`` checks; call it
        first to fail before any slow preparation."""
        if port_answers(self.port):
            raise AnnotatorError(
                f"port {self.port} on 127.0.0.1 is already in use, so {self.what} cannot start "
                f"there (an earlier demo still running?): stop what holds it, or pick another "
                f"port ({self.port_option} N)"
            )

    def _spawn(self, cmd: list[str], *, env: dict, cwd: Path) -> None:
        self._log_file = open(self.log_path, "ab")
        self.process = subprocess.Popen(
            cmd, stdout=self._log_file, stderr=subprocess.STDOUT, env=env, cwd=cwd, start_new_session=True
        )

    def _close_log(self) -> None:
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    def stop(self, timeout: float = 20.0) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self._close_log()

    def kill(self) -> None:
        """SIGKILL the whole process group (fault tests)."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        self._close_log()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def label_studio_db_env(database_url: str) -> dict[str, str]:
    """The environment that points Label Studio (Django) at the PostgreSQL database ``database_url``.

    Examples
    --------
    >>> label_studio_db_env("postgresql://ls:pw@db:5433/labelstudio")["POSTGRE_PORT"]
    '5433'
    """
    parts = urlsplit(database_url)
    if parts.scheme not in ("postgresql", "postgres") or not parts.hostname or not parts.path.strip("/"):
        raise AnnotatorError(
            "Label Studio's database must be a postgresql://user:password@host:port/dbname URL, "
            f"got {parts.scheme}://{parts.hostname or ''}{parts.path}"
        )
    return {
        "DJANGO_DB": "default",
        "POSTGRE_NAME": unquote(parts.path.strip("/")),
        "POSTGRE_USER": unquote(parts.username or "postgres"),
        "POSTGRE_PASSWORD": unquote(parts.password or ""),
        "POSTGRE_HOST": parts.hostname,
        "POSTGRE_PORT": str(parts.port or 5432),
    }


class LabelStudioServer(_Server):
    """A local Label Studio with an admin and a legacy API token; its data in SQLite under
    ``data_dir``, or in the PostgreSQL database ``database_url`` (created beforehand, may be empty:
    the first start runs Label Studio's migrations into it)."""

    what = "Label Studio"
    port_option = "annotator demo --ls-port"

    def __init__(
        self,
        data_dir: str | Path,
        *,
        port: int | None = None,
        username: str = "admin@example.com",
        password: str = "annotator-demo",
        token: str = DEMO_TOKEN,
        database_url: str = "",
    ) -> None:
        self.database_env = label_studio_db_env(database_url) if database_url else {}
        self.data_dir = Path(data_dir)
        self.port = port or free_port()
        self.username, self.password, self.token = username, password, token
        self.log_path = self.data_dir / "label-studio.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 420.0) -> LabelStudioServer:
        exe = shutil.which("label-studio", path=str(Path(sys.executable).parent)) or shutil.which("label-studio")
        if exe is None:
            raise AnnotatorError(missing_message("a local Label Studio (annotator demo)", "label_studio"))
        self.check_port()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        env = {
            "PATH": os.environ.get("PATH", ""),
            "HOME": str(self.data_dir),
            "LANG": "C.UTF-8",
            "ML_BLOCK_LOCAL_IP": "false",
            "SSRF_PROTECTION_ENABLED": "false",
            "LATEST_VERSION_CHECK": "false",
            "SENTRY_DSN": "",
            "FRONTEND_SENTRY_DSN": "",
            "COLLECT_ANALYTICS": "false",
            "LABEL_STUDIO_DISABLE_SIGNUP_WITHOUT_LINK": "false",
            **self.database_env,
        }
        cmd = [
            exe,
            "start",
            "--no-browser",
            "--port",
            str(self.port),
            "--internal-host",
            "127.0.0.1",
            "--data-dir",
            str(self.data_dir / "data"),
            "--username",
            self.username,
            "--password",
            self.password,
            "--user-token",
            self.token,
            "--enable-legacy-api-token",
        ]
        self._spawn(cmd, env=env, cwd=self.data_dir)
        log.info("starting Label Studio on %s (log: %s)", self.url, self.log_path)
        wait_http(f"{self.url}/health", timeout=timeout, process=self.process, log_file=self.log_path)
        return self


def backend_command(host: str, port: int, *, threads: int = 8, workers: int = 1) -> list[str]:
    """The command that serves the backend: waitress (one process, ``threads`` threads) or, with
    ``workers > 1``, gunicorn with that many worker processes of ``threads`` threads each.

    Both serve ``backend.wsgi:app``, which reads the settings from the environment and logs to
    stderr at ``LOG_LEVEL`` (INFO by default). Every gunicorn worker imports it and builds its own
    app; they share the project's store, and its cycle lock lets one retrain-and-push cycle run at a
    time (:mod:`annotator.storage.locks`).

    Raises
    ------
    MissingExtraError
        For ``workers > 1`` without gunicorn (the 'scale' extra).
    """
    if workers > 1:
        check("gunicorn", "serve --workers N (several processes, gunicorn)")
        return [
            sys.executable,
            "-m",
            "gunicorn",
            f"--bind={host}:{port}",
            f"--workers={workers}",
            f"--threads={threads}",
            "--worker-class=gthread",
            "--timeout=120",
            "--error-logfile=-",
            "backend.wsgi:app",
        ]
    return [
        sys.executable,
        "-m",
        "waitress",
        f"--host={host}",
        f"--port={port}",
        f"--threads={threads}",
        "backend.wsgi:app",
    ]


class BackendServer(_Server):
    """This project's backend (waitress, or gunicorn with ``workers > 1``), for the project in ``home``."""

    what = "the backend"
    port_option = "annotator demo --port"

    def __init__(
        self, home: str | Path, *, port: int | None = None, env: dict | None = None, threads: int = 8, workers: int = 1
    ) -> None:
        self.home = Path(home)
        self.port = port or free_port()
        self.extra_env = env or {}
        self.threads = threads
        self.workers = workers
        self.log_path = self.home / "backend.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        return backend_command("127.0.0.1", self.port, threads=self.threads, workers=self.workers)

    def start(self, timeout: float = 60.0) -> BackendServer:
        self.check_port()
        self.home.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ, ANNOTATOR_HOME=str(self.home), **self.extra_env)
        self._spawn(self.command(), env=env, cwd=Path(__file__).resolve().parents[2])  # where backend/ sits
        wait_http(f"{self.url}/health", timeout=timeout, process=self.process, log_file=self.log_path)
        return self
