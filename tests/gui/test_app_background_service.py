"""The app with the real background service: an answer still running when the app quits
goes on in the service and is shown complete when the app starts again; one killed while
the window is open is brought back."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from backend.entrypoints.local_service import ServicePaths, pid_alive, read_discovery
from desktop.app import RECONNECTING, App
from desktop.core.paths import AppPaths
from desktop.services.credentials import CredentialStore, MemoryKeyring
from desktop.services.local_profile import LocalProfile
from tests.gui.conftest import save_screenshot
from tests.service_helpers import stop_all

LONG = " ".join(f"w{i}" for i in range(200))  # echo at 20 ms a word: ~4 s
FAST = ["--claim-idle", "0.5"]


def _open(qtbot, paths: AppPaths) -> App:  # type: ignore[no-untyped-def]
    app = App(paths, CredentialStore(MemoryKeyring()), LocalProfile(service_args=FAST))
    qtbot.addWidget(app.window)
    app.window.show()
    qtbot.waitExposed(app.window)
    app.start()
    qtbot.waitUntil(lambda: app.api is not None, timeout=30000)
    return app


def test_an_answer_running_when_the_app_quit_is_complete_on_the_next_start(  # type: ignore[no-untyped-def]
        qtbot, paths: AppPaths, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    marker = str(tmp_path / "runtime")
    monkeypatch.setenv("TINYLLAMA_RUNTIME_DIR", marker)
    monkeypatch.setenv("TINYLLAMA_DATA_DIR", str(tmp_path / "service"))
    try:
        first = _open(qtbot, paths)
        conv = first.window.new_conversation()
        first.window.send(LONG)
        qtbot.waitUntil(lambda: first.history.messages(conv.id)[-1].status == "running", timeout=20000)
        first.shutdown()  # the person quits mid-answer
        first.window.close()
        info = read_discovery(ServicePaths.default())
        assert info is not None and pid_alive(info["pid"])  # quitting did not stop the service

        second = _open(qtbot, paths)
        try:
            qtbot.waitUntil(lambda: second.history.messages(conv.id)[-1].status == "done", timeout=30000)
            assert second.history.messages(conv.id)[-1].content == LONG
            assert read_discovery(ServicePaths.default()) == info  # the same service, reused
        finally:
            second.shutdown()
    finally:
        stop_all(marker)


def test_a_killed_service_is_brought_back_while_the_window_is_open(  # type: ignore[no-untyped-def]
        qtbot, paths: AppPaths, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """kill -9 of the service mid-answer: the app says it is reconnecting (no errors), starts
    the service again, finishes the running answer and sends a prompt typed meanwhile."""
    marker = str(tmp_path / "runtime")
    monkeypatch.setenv("TINYLLAMA_RUNTIME_DIR", marker)
    monkeypatch.setenv("TINYLLAMA_DATA_DIR", str(tmp_path / "service"))
    try:
        app = _open(qtbot, paths)
        errors: list[str] = []
        app.window.error_shown.connect(errors.append)
        conv = app.window.new_conversation()
        app.window.send(LONG)
        qtbot.waitUntil(lambda: app.history.messages(conv.id)[-1].status == "running", timeout=20000)
        info = read_discovery(ServicePaths.default())
        assert info is not None
        first_api = app.api

        os.kill(info["pid"], signal.SIGKILL)  # the service crashes mid-answer
        qtbot.waitUntil(lambda: app.window.wake.text() == RECONNECTING, timeout=20000)
        save_screenshot(app.window, "main_reconnecting.png")
        assert "#2e9d4b" not in app.window.wake.dot.styleSheet()  # not "ready" while it is away
        app.window.send("typed while it was away")  # held, not refused

        qtbot.waitUntil(lambda: app.api is not first_api and app.api is not None, timeout=30000)
        qtbot.waitUntil(lambda: [m.status for m in app.history.messages(conv.id)] == ["done"] * 4,
                        timeout=30000)
        messages = app.history.messages(conv.id)
        assert [m.content for m in messages] == [LONG, LONG, "typed while it was away", "typed while it was away"]
        new_info = read_discovery(ServicePaths.default())
        assert new_info is not None and new_info["pid"] != info["pid"] and pid_alive(new_info["pid"])
        assert errors == []  # no "can't reach" shown, no traceback, nothing failed
        assert app.window.wake.text() != RECONNECTING and not app.window.wake.error_text()
        app.shutdown()
    finally:
        stop_all(marker)
