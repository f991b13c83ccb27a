"""Test tooling, not shipped in the wheel: a throwaway PostgreSQL server from the distribution's binaries, for the store tests and benches.

``PostgresServer().start()`` runs ``initdb`` into a fresh temporary folder, starts ``postgres`` on
a free loopback port (its unix socket stays in that folder), and ``stop()`` shuts it down fast and
deletes the folder. PostgreSQL refuses to run as root, so under root both run as the ``postgres``
system user (Debian's package creates it). Connections use password authentication over TCP, the
same as a real deployment: :meth:`PostgresServer.url` gives ``postgresql://user:password@host:port/db``.
"""

from __future__ import annotations

import itertools
import logging
import os
import pwd
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import psycopg
from psycopg import sql

from annotator.cli.services import free_port
from annotator.errors import AnnotatorError

log = logging.getLogger(__name__)

SEARCH_DIRS = ("/usr/lib/postgresql",)  # Debian/Ubuntu: /usr/lib/postgresql/<major>/bin
# Durability off: a test or bench server is thrown away, and fsync would only measure the disk.
FAST_OPTIONS = {"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off"}


def find_bindir(path: str | None = None) -> Path | None:
    """The folder holding ``initdb`` and ``postgres``: the newest under /usr/lib/postgresql, else
    one on ``path`` (a PATH-style string); None when PostgreSQL's server is not installed."""

    def major(p: Path) -> int:
        return int(p.name) if p.name.isdigit() else -1

    for base in map(Path, SEARCH_DIRS):
        if base.is_dir():
            for version in sorted(base.iterdir(), key=major, reverse=True):
                if (version / "bin" / "initdb").is_file() and (version / "bin" / "postgres").is_file():
                    return version / "bin"
    initdb = shutil.which("initdb", path=path)
    if initdb and (Path(initdb).parent / "postgres").is_file():
        return Path(initdb).parent
    return None


class PostgresServer:
    """A private PostgreSQL server in a temporary folder.

    Parameters
    ----------
    bindir : folder of ``initdb`` and ``postgres`` (default: :func:`find_bindir`).
    port : TCP port on 127.0.0.1 (default: a free one).
    durable : keep PostgreSQL's default fsync settings (for benches that compare engines fairly);
        by default the server skips fsync, as a test server can.
    options : extra server settings (``{"max_connections": "200"}``).

    Examples
    --------
    >>> with PostgresServer() as server:  # doctest: +SKIP
    ...     url = server.create_database()
    """

    user = "annotator"

    def __init__(
        self,
        *,
        bindir: str | Path | None = None,
        port: int | None = None,
        durable: bool = False,
        options: dict[str, str] | None = None,
    ) -> None:
        self.bindir = Path(bindir) if bindir else None
        self.port = port or free_port()
        self.durable = durable
        self.options = dict(options or {})
        self.password = secrets.token_hex(12)
        self.dir: Path | None = None
        self.process: subprocess.Popen | None = None
        self._log_file = None
        self._names = itertools.count(1)

    # Addresses -----------------------------------------------------------------------------
    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{self.user}:{self.password}@127.0.0.1:{self.port}/{database}"

    @property
    def log_path(self) -> Path:
        return self.dir / "postgres.log"

    # Life cycle ----------------------------------------------------------------------------
    def start(self, timeout: float = 60.0) -> PostgresServer:
        """initdb, start, and wait until a connection succeeds; AnnotatorError with the log if not."""
        bindir = self.bindir or find_bindir()
        if bindir is None:
            raise AnnotatorError(
                "PostgreSQL server binaries (initdb, postgres) not found under "
                "/usr/lib/postgresql/*/bin or on PATH; install the 'postgresql' package"
            )
        run_as = _unprivileged_user()
        self.dir = Path(tempfile.mkdtemp(prefix="annotator-pg-"))
        try:
            if run_as is not None:
                os.chown(self.dir, run_as.pw_uid, run_as.pw_gid)
            (self.dir / "pwfile").write_text(self.password + "\n", encoding="utf-8")
            if run_as is not None:
                os.chown(self.dir / "pwfile", run_as.pw_uid, run_as.pw_gid)
            self._run(
                [
                    str(bindir / "initdb"),
                    "-D",
                    str(self.dir / "data"),
                    "-U",
                    self.user,
                    f"--pwfile={self.dir / 'pwfile'}",
                    "--auth-local=trust",
                    "--auth-host=scram-sha-256",
                    "-E",
                    "UTF8",
                    "--no-locale",
                    "--no-sync",
                    "--no-instructions",
                ],
                run_as,
            )
            settings = {
                "listen_addresses": "127.0.0.1",
                "port": str(self.port),
                "unix_socket_directories": str(self.dir),
                "max_connections": "100",
                **({} if self.durable else FAST_OPTIONS),
                **self.options,
            }
            cmd = [str(bindir / "postgres"), "-D", str(self.dir / "data")]
            cmd += [arg for key, value in settings.items() for arg in ("-c", f"{key}={value}")]
            self._log_file = open(self.log_path, "ab")
            self.process = subprocess.Popen(
                cmd, stdout=self._log_file, stderr=subprocess.STDOUT, start_new_session=True, **_as_user(run_as)
            )
            self._wait_ready(timeout)
        except BaseException:
            self.stop()
            raise
        log.info("PostgreSQL on 127.0.0.1:%d (folder %s)", self.port, self.dir)
        return self

    def _run(self, cmd: list[str], run_as: pwd.struct_passwd | None) -> None:
        done = subprocess.run(cmd, capture_output=True, text=True, **_as_user(run_as))
        if done.returncode != 0:
            raise AnnotatorError(
                f"{Path(cmd[0]).name} failed with code {done.returncode}: "
                f"{(done.stderr or done.stdout).strip()[-2000:]}"
            )

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise AnnotatorError(f"postgres exited with code {self.process.returncode}\n{self._log_tail()}")
            try:
                psycopg.connect(self.url(), connect_timeout=2).close()
                return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise AnnotatorError(
                        f"postgres did not accept connections within {timeout:.0f} s\n{self._log_tail()}"
                    ) from None
                time.sleep(0.1)

    def _log_tail(self) -> str:
        return self.log_path.read_text(errors="replace")[-2000:] if self.log_path.exists() else ""

    def stop(self, timeout: float = 30.0) -> None:
        """Fast shutdown (open sessions are cut off), then delete the folder."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)  # "fast" shutdown; SIGTERM would wait for clients
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None
        if self.dir is not None:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None

    def __enter__(self) -> PostgresServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # Databases -----------------------------------------------------------------------------
    def create_database(self, name: str | None = None) -> str:
        """Create an empty database (default name ``db<n>``) and return its URL."""
        name = name or f"db{next(self._names)}"
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {} TEMPLATE template0").format(sql.Identifier(name)))
        return self.url(name)

    def create_schema(self, name: str | None = None) -> str:
        """Create an empty schema (default name ``s<n>``) in the ``postgres`` database and return a
        URL whose connections use only it: as good as a new database for the store, and about ten
        times faster to make (tests make one each)."""
        name = name or f"s{next(self._names)}"
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(name)))
        return f"{self.url()}?options=-csearch_path%3D{name}"


def _unprivileged_user() -> pwd.struct_passwd | None:
    """The account to run PostgreSQL as: ``postgres`` when we are root, else None (ourselves)."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam("postgres")
    except KeyError:
        raise AnnotatorError(
            "PostgreSQL refuses to run as root and there is no 'postgres' user; "
            "create one (useradd --system postgres) or run as another user"
        ) from None


def _as_user(account: pwd.struct_passwd | None) -> dict:
    """subprocess keyword arguments that run the child as ``account`` (no extra groups)."""
    if account is None:
        return {}
    return {
        "user": account.pw_uid,
        "group": account.pw_gid,
        "extra_groups": [],
        "env": {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "HOME": account.pw_dir},
    }


# The test session's server (this file once held only it, beside the server in the runtime package): the store tests run
# on SQLite and on PostgreSQL. Where the server binaries are missing the PostgreSQL cases are skipped,
# naming what to install; with ``ANNOTATOR_REQUIRE_POSTGRES=1`` (set in CI) they fail instead, so they
# can never be skipped silently.
REQUIRE_ENV = "ANNOTATOR_REQUIRE_POSTGRES"
MISSING = (
    "PostgreSQL server binaries (initdb, postgres) not found under /usr/lib/postgresql/*/bin or "
    "on PATH; install Debian's 'postgresql' package (make system-deps)"
)


def start_server() -> PostgresServer:
    """A started server, or pytest's skip (fail when ANNOTATOR_REQUIRE_POSTGRES=1) without binaries."""
    import pytest  # only the tests call this; the benches import PostgresServer without pytest

    bindir = find_bindir(os.environ.get("PATH"))
    if bindir is None:
        if os.environ.get(REQUIRE_ENV) == "1":
            pytest.fail(f"{MISSING}; {REQUIRE_ENV}=1 makes this a failure instead of a skip", pytrace=False)
        pytest.skip(MISSING)
    return PostgresServer(bindir=bindir).start()
