"""A real, throw-away redis-server for the job-queue tests, and the jobs those tests enqueue.

``RedisServer`` starts Debian's ``redis-server`` on a free loopback port with its files in a
temporary directory and no persistence, and stops it. ``redis_server_or_skip()`` skips a test
when the binary is missing, except with ``ANNOTATOR_REQUIRE_REDIS=1`` (CI, ``make test`` on a
machine with the system packages), where a missing server fails the test instead.

The job functions below run inside real ``rq`` workers, so they live in an importable module.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

REQUIRE_ENV = "ANNOTATOR_REQUIRE_REDIS"
REPO = Path(__file__).resolve().parent.parent


def redis_binary() -> str | None:
    return shutil.which("redis-server") or ("/usr/bin/redis-server" if Path("/usr/bin/redis-server").exists() else None)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class RedisServer:
    """A redis-server on 127.0.0.1:<free port>, files in a temp dir, nothing saved to disk."""

    def __init__(self, binary: str) -> None:
        self.binary = binary
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="annotator-redis-"))
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> RedisServer:
        log = open(self.dir / "redis.log", "wb")
        self.process = subprocess.Popen(
            [
                self.binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(self.dir),
                "--save",
                "",
                "--appendonly",
                "no",
                "--protected-mode",
                "yes",
                "--loglevel",
                "warning",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"redis-server exited with {self.process.returncode}: "
                    f"{(self.dir / 'redis.log').read_text(errors='replace')[-2000:]}"
                )
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(16).startswith(b"+PONG"):
                        return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"redis-server did not answer on port {self.port} within {timeout:.0f} s")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self.process = None
        shutil.rmtree(self.dir, ignore_errors=True)


def redis_server_or_skip() -> RedisServer:
    """A started server; skips (or fails, with ANNOTATOR_REQUIRE_REDIS=1) when there is no binary."""
    binary = redis_binary()
    if binary is None:
        reason = "redis-server is not installed (Debian package redis-server; `make system-deps`)"
        if os.environ.get(REQUIRE_ENV) == "1":
            pytest.fail(f"{reason}, and {REQUIRE_ENV}=1 requires the Redis tests to run")
        pytest.skip(reason)
    return RedisServer(binary).start()


def worker_process(
    home: Path,
    redis_url: str,
    *,
    burst: bool = True,
    args: tuple[str, ...] = (),
    extra_env: dict | None = None,
    log_path: Path | None = None,
) -> subprocess.Popen:
    """``annotator --home HOME worker [--burst] [ARGS]`` as a child process (the real CLI entry point)."""
    env = dict(os.environ, ANNOTATOR_REDIS_URL=redis_url, PYTHONPATH=str(REPO), **(extra_env or {}))
    cmd = (
        [sys.executable, "-m", "annotator.cli", "--home", str(home), "worker"]
        + (["--burst"] if burst else [])
        + list(args)
    )
    out = open(log_path, "ab") if log_path else subprocess.DEVNULL
    try:
        return subprocess.Popen(cmd, env=env, cwd=str(REPO), stdout=out, stderr=subprocess.STDOUT)
    finally:
        if log_path:
            out.close()


# Jobs run by the rq workers in the tests ------------------------------------------------------
def recording_job(
    settings_fields: dict,
    force: bool = False,
    train: bool = True,
    *,
    record: str,
    seconds: float = 0.3,
    fail: bool = False,
) -> dict:
    """A stand-in cycle: holds the project's cycle lock like the real job, appends its start and end
    times to ``record`` (one JSON line), and fails on request."""
    from rq import get_current_job

    from annotator.cycle.jobqueue import cycle_lock

    job = get_current_job()
    with cycle_lock(job.connection, job.origin):
        started = time.time()
        time.sleep(seconds)
        if fail:
            raise ValueError("no labels to train on")
        ended = time.time()
    with open(record, "a", encoding="utf-8") as fh:
        fh.write(json.dumps({"job": job.id, "pid": os.getpid(), "force": force, "start": started, "end": ended}) + "\n")
    return {"model_version": None, "force": force, "pid": os.getpid()}


def read_records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()] if path.exists() else []
