"""A cross-process lock on one project home, so one retrain-and-push cycle runs at a time.

Several backend processes (gunicorn workers, or ``annotator serve`` beside a manual
``annotator train``) each run their own training queue; without this, two cycles could train
two versions at once or rank and push the same batch twice. The lock is an OS file lock
(``fcntl.flock``) on ``<home>/cycle.lock``: released by the kernel when its holder exits, even on
``kill -9``, so a crashed cycle never leaves the project locked.
"""

from __future__ import annotations

import fcntl
import logging
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ..errors import StoreError

log = logging.getLogger(__name__)

LOCK_NAME = "cycle.lock"


@contextmanager
def project_lock(home: str | Path, *, timeout: float = 600.0) -> Iterator[float]:
    """Hold the project's cycle lock; yields the seconds spent waiting for it.

    Raises
    ------
    StoreError
        If another process held it for longer than ``timeout`` seconds.
    """
    path = Path(home) / LOCK_NAME
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    started = time.monotonic()
    try:
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() - started > timeout:
                    raise StoreError(
                        f"another process has held {path} for over {timeout:.0f} s; "
                        "is a training cycle stuck? It is released when that process exits"
                    ) from None
                time.sleep(0.05)
        waited = time.monotonic() - started
        if waited > 0.5:
            log.info("waited %.1f s for another process's training cycle", waited)
        yield waited
    finally:
        os.close(fd)  # closing the descriptor releases the lock
