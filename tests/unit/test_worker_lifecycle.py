"""A training worker dies with its backend, and a run whose parent died never publishes (issue 16).

Real processes: a parent Python process starts the worker, the test kills the parent with
SIGKILL and watches what its children do.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from annotator.lifecycle import ParentDiedError, check_parent_alive, parent_alive

REPO = Path(__file__).resolve().parents[2]


class PidJob:
    """A picklable cycle job that records the worker's pid, then runs "forever" (a long fit)."""

    def __init__(self, pid_file: str) -> None:
        self.pid_file = pid_file

    def __call__(self, *args, **kwargs) -> dict:
        Path(self.pid_file).write_text(str(os.getpid()))
        time.sleep(120)
        return {}


def publish_after_parent_dies(home: str, ready: str, result: str) -> None:
    """In a spawned child (no parent watch): wait for the parent to die, then try to save a model."""
    from annotator.storage.registry import ModelRegistry
    from annotator.storage.store import Store

    Path(ready).write_text(str(os.getpid()))
    deadline = time.monotonic() + 60
    while parent_alive() and time.monotonic() < deadline:
        time.sleep(0.05)
    with Store(Path(home) / "annotator.db") as store:
        try:
            ModelRegistry(Path(home) / "models", store).save({"n": 1}, n_train=1)
            outcome = "published"
        except ParentDiedError as exc:
            outcome = f"ParentDiedError: {exc}"
    Path(result).write_text(outcome, encoding="utf-8")


def _children(pid: int) -> list[int]:
    """Pids whose parent is ``pid`` (from /proc)."""
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                out.append(int(entry.name))
    return out


def _running(pid: int) -> bool:
    """Whether ``pid`` is a live process (a zombie waiting for a reaper counts as gone)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


def _wait(predicate, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return predicate()


def _start(script: str, log: Path) -> subprocess.Popen:
    with open(log, "wb") as err:
        return subprocess.Popen(
            [sys.executable, "-c", textwrap.dedent(script)],
            cwd=REPO,
            env=dict(os.environ, PYTHONPATH=str(REPO)),
            stdout=subprocess.DEVNULL,
            stderr=err,
        )


pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc (Linux)")


def test_parent_alive_in_a_process_multiprocessing_did_not_start():
    assert parent_alive() is True
    check_parent_alive()  # no error


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_the_training_worker_and_its_helpers_exit_when_the_backend_dies(tmp_path, sig):
    pid_file = tmp_path / "worker.pid"
    parent = _start(
        f"""
        import time
        from backend.jobs import TrainingQueue
        from tests.unit.test_worker_lifecycle import PidJob
        queue = TrainingQueue(PidJob({str(pid_file)!r}), every=1, delay=0.0, in_process=False)
        queue.request_now()
        time.sleep(300)
    """,
        tmp_path / "parent.log",
    )
    try:
        assert _wait(pid_file.exists, 90), (tmp_path / "parent.log").read_text()
        worker = int(pid_file.read_text())
        helpers = _children(parent.pid)  # the worker and multiprocessing's resource tracker
        assert worker in helpers
        os.kill(parent.pid, sig)
        parent.wait(10)
        assert _wait(lambda: not _running(worker), 15), "the worker outlived its backend"
        assert _wait(lambda: not any(_running(p) for p in helpers), 15), (
            f"still running: {[p for p in helpers if _running(p)]}"
        )
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait(10)
        if pid_file.exists() and _running(int(pid_file.read_text())):
            os.kill(int(pid_file.read_text()), signal.SIGKILL)


def test_a_run_whose_parent_died_never_publishes_a_model_version(tmp_path):
    home, ready, result = tmp_path / "home", tmp_path / "ready", tmp_path / "result"
    parent = _start(
        f"""
        import multiprocessing, time
        from tests.unit.test_worker_lifecycle import publish_after_parent_dies
        child = multiprocessing.get_context("spawn").Process(
            target=publish_after_parent_dies, args=({str(home)!r}, {str(ready)!r}, {str(result)!r}))
        child.start()
        time.sleep(300)
    """,
        tmp_path / "parent.log",
    )
    try:
        assert _wait(ready.exists, 90), (tmp_path / "parent.log").read_text()
        child = int(ready.read_text())
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait(10)
        assert _wait(result.exists, 30), (tmp_path / "parent.log").read_text()
        outcome = result.read_text(encoding="utf-8")
        assert outcome == (
            f"ParentDiedError: the parent process (pid {parent.pid}) of this worker (pid {child}) "
            "died; model version 1 is not published (the run is interrupted)"
        )
        from annotator.storage.store import Store

        with Store(home / "annotator.db") as store:
            assert store.model_versions() == []
        assert [p.name for p in (home / "models").glob("model-*.pkl")] == []
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait(10)
