"""The app with the real background service: an answer still running when the app quits
goes on in the service and is shown complete when the app starts again."""

from __future__ import annotations

from pathlib import Path

import pytest

from backend.entrypoints.local_service import ServicePaths, pid_alive, read_discovery
from desktop.app import App
from desktop.core.paths import AppPaths
from desktop.services.credentials import CredentialStore, MemoryKeyring
from desktop.services.local_profile import LocalProfile
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
