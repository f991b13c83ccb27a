"""The local servers' guards: a taken port is refused with a clear message before anything starts,
and SIGTERM/SIGHUP reach the demo as Ctrl-C does, so it stops the servers it started."""

from __future__ import annotations

import os
import signal
import socket
import time

import pytest
from click.testing import CliRunner

from annotator.cli import main
from annotator.errors import AnnotatorError
from annotator.cli.services import BackendServer, LabelStudioServer, free_port, stop_signals_interrupt


@pytest.fixture
def taken_port():
    """A port something listens on (as an earlier demo's Label Studio would)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


@pytest.mark.parametrize(
    "server, what, option",
    [
        (lambda tmp, port: LabelStudioServer(tmp / "ls", port=port), "Label Studio", "--ls-port"),
        (lambda tmp, port: BackendServer(tmp / "home", port=port), "the backend", "--port"),
    ],
)
def test_a_taken_port_is_refused_before_anything_starts(tmp_path, taken_port, server, what, option):
    srv = server(tmp_path, taken_port)
    with pytest.raises(AnnotatorError) as error:
        srv.start(timeout=5)
    message = str(error.value)
    assert f"port {taken_port}" in message and f"{what} cannot start" in message and option in message
    assert srv.process is None  # nothing was spawned, nothing to clean up
    assert not (tmp_path / "ls").exists() and not (tmp_path / "home").exists()


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP])
def test_stop_signals_interrupt_like_ctrl_c_and_restore_the_handlers(signum):
    before = signal.getsignal(signum)
    with pytest.raises(KeyboardInterrupt, match=signal.Signals(signum).name):
        with stop_signals_interrupt():
            os.kill(os.getpid(), signum)
            time.sleep(5)  # the handler interrupts the sleep at once
            raise AssertionError("the signal did not interrupt the block")
    assert signal.getsignal(signum) is before


@pytest.mark.parametrize("option", ["--ls-port", "--port"])
def test_the_demo_refuses_a_taken_port_at_once_before_preparing_anything(tmp_path, taken_port, option):
    home = tmp_path / "home"
    other = "--port" if option == "--ls-port" else "--ls-port"
    result = CliRunner().invoke(main, ["--home", str(home), "demo", option, str(taken_port), other, str(free_port())])
    assert result.exit_code == 1
    assert f"port {taken_port} on 127.0.0.1 is already in use" in result.stderr
    assert f"annotator demo {option} N" in result.stderr
    assert "ingested" not in result.stderr and not (home / "annotator.db").exists()  # nothing was prepared


def test_a_missing_label_studio_names_the_server_extra(tmp_path, monkeypatch):
    monkeypatch.setattr("annotator.cli.services.shutil.which", lambda *a, **k: None)
    with pytest.raises(AnnotatorError) as exc:
        LabelStudioServer(tmp_path / "ls", port=free_port()).start()
    assert str(exc.value) == (
        "a local Label Studio (annotator demo) needs the 'server' extra: pip install 'annotator[server]'"
    )
