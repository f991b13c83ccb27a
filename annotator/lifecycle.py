"""Process lifecycle: a worker process that outlives its parent must neither linger nor publish.

The backend runs training cycles in a worker process (``backend.jobs``). When the backend is
stopped (SIGTERM, ``kill -9``) that worker must exit too, and a cycle it was running must not save
a model version afterwards (the docs call such a run "interrupted"). Two tools:

- :func:`exit_when_parent_dies`, called once in the worker (the executor's initializer): a daemon
  thread waits on the parent's sentinel (a pipe the parent holds open; the kernel closes it when
  the parent dies, however it dies) and ends this process with ``os._exit``;
- :func:`parent_alive` / :func:`check_parent_alive`, checked just before anything is published
  (:meth:`annotator.storage.registry.ModelRegistry.save` calls the latter), so the window between the
  parent's death and the worker's exit cannot publish either.

A process not started by :mod:`multiprocessing` (the CLI, an ``annotator worker``) has no parent to
outlive: for it the parent is always "alive".
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import threading

from .errors import AnnotatorError

log = logging.getLogger(__name__)

PARENT_DIED_EXIT_CODE = 70  # what a worker whose parent died exits with (EX_SOFTWARE)


class ParentDiedError(AnnotatorError):
    """This worker's parent process died: its work must not be published."""


def parent_alive() -> bool:
    """Whether the process that started this one (through :mod:`multiprocessing`) is still running.

    Returns True in a process that multiprocessing did not start (nothing to outlive).

    Examples
    --------
    >>> parent_alive()  # in the main process
    True
    """
    parent = multiprocessing.parent_process()
    if parent is None:
        return True
    return parent.is_alive()


def check_parent_alive(what: str = "the result") -> None:
    """Raise :class:`ParentDiedError` if this worker's parent died; call it before publishing ``what``."""
    if not parent_alive():
        parent = multiprocessing.parent_process()
        raise ParentDiedError(
            f"the parent process (pid {parent.pid if parent else '?'}) of this worker "
            f"(pid {os.getpid()}) died; {what} is not published (the run is interrupted)"
        )


def exit_when_parent_dies(*, exit_code: int = PARENT_DIED_EXIT_CODE) -> threading.Thread | None:
    """In a multiprocessing child: end this process as soon as its parent dies.

    Starts a daemon thread that blocks on the parent's sentinel; returns it (None in a process
    multiprocessing did not start). ``os._exit`` skips cleanup on purpose: the parent that would
    receive a result is gone, and a cycle must stop where it is rather than finish and publish.
    """
    parent = multiprocessing.parent_process()
    if parent is None:
        return None
    sentinel = getattr(parent, "sentinel", None)

    def watch() -> None:
        if sentinel is not None:
            from multiprocessing.connection import wait

            wait([sentinel])
        else:  # pragma: no cover - every POSIX start method passes the sentinel
            while parent.is_alive():
                threading.Event().wait(1.0)
        log.warning("parent process %s died; worker %d exits", parent.pid, os.getpid())
        os._exit(exit_code)

    thread = threading.Thread(target=watch, name="annotator-parent-watch", daemon=True)
    thread.start()
    return thread


def check_can_listen(host: str, port: int) -> None:
    """Raise InputError unless this process could listen on ``host:port`` now.

    ``annotator serve`` replaces itself with the WSGI server; a busy port or an unknown host would
    then end in that server's traceback. Checked first, they are one line naming the option.
    """
    import socket

    from .errors import InputError

    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except (socket.gaierror, UnicodeError) as exc:
        raise InputError(f"--host {host!r} is not an address of this machine ({exc}); use 127.0.0.1 or 0.0.0.0")
    family, kind, proto, _, address = infos[0]
    try:
        with socket.socket(family, kind, proto) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the WSGI servers do
            sock.bind(address)
    except OSError as exc:
        raise InputError(
            f"cannot listen on {host}:{port}: {exc.strerror or exc}; stop what uses that port or choose another --port"
        ) from None
