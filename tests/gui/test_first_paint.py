"""A launch shows the window first and connects the profile after its first paint.

Real widgets on the offscreen platform: `after_first_paint` calls once, after the paint,
and still calls for a window that never paints; `launch` returns with the window shown and
the profile not started yet, and starts it once the window has painted.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from PySide6.QtWidgets import QLabel
from pytestqt.qtbot import QtBot

from desktop.app import App, launch
from desktop.qt import first_paint
from desktop.qt.first_paint import after_first_paint
from desktop.services.credentials import CredentialStore, MemoryKeyring
from tests.gui.conftest import close_launched


def test_the_call_comes_once_after_the_first_paint(qtbot: QtBot) -> None:
    label = QLabel("hello")
    qtbot.addWidget(label)
    calls: list[bool] = []
    after_first_paint(label, lambda: calls.append(label.isVisible()))
    qtbot.wait(0)  # a turn of the event loop: nothing painted, nothing called
    assert calls == []
    label.show()
    qtbot.waitUntil(lambda: calls == [True])
    label.repaint()  # a second paint does not call again
    qtbot.waitExposed(label)
    assert calls == [True]


def test_a_window_that_never_paints_still_gets_the_call(qtbot: QtBot, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(first_paint, "FALLBACK_MS", 20)
    label = QLabel("never shown")
    qtbot.addWidget(label)
    calls: list[str] = []
    after_first_paint(label, lambda: calls.append("called"))
    qtbot.waitUntil(lambda: calls == ["called"])


def test_launch_starts_the_profile_after_the_window_painted(qtbot: QtBot, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    started: list[bool] = []
    # The profile itself is not started here (test_app_background_service does that): only when.
    monkeypatch.setattr(App, "start", lambda self: started.append(self.window.isVisible()))
    launched = launch(tmp_path / "data", CredentialStore(MemoryKeyring()))
    assert launched is not None
    app, _help = launched
    try:
        assert app.window.isVisible()
        assert started == []  # launch returned with the window up and nothing connecting yet
        qtbot.waitUntil(lambda: started == [True])
    finally:
        close_launched(app)


def test_launch_starts_from_the_last_light_or_dark_and_follows_the_platform_after_the_paint(
        qtbot: QtBot, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The window is coloured from the platform's answer saved at the last launch (asking
    before the paint costs 13 ms, desktop.qt.properties); once painted, the launch asks, and
    an answer that changed since (a system turned light) is followed and saved."""
    import json

    from PySide6.QtGui import QPalette
    from PySide6.QtWidgets import QApplication

    from desktop.views import theme

    monkeypatch.setattr(App, "start", lambda self: None)
    data = tmp_path / "data"
    data.mkdir()
    (data / "settings.json").write_text(json.dumps({"appearance": {"theme": "system", "system": "dark"}}))
    platform_style = QApplication.style().name()
    launched = launch(data, CredentialStore(MemoryKeyring()))
    assert launched is not None
    app, _help = launched
    try:
        # Painted as the last launch's dark system (offscreen's own palette is light: Fusion's dark).
        assert theme.colours().dark
        assert app.window.palette().color(QPalette.ColorRole.Window).lightnessF() < 0.5
        qtbot.waitUntil(lambda: json.loads((data / "settings.json").read_text())["appearance"]["system"] == "light")
        assert not theme.colours().dark  # the platform's light, its own style again
        assert app.window.palette().color(QPalette.ColorRole.Window).lightnessF() >= 0.5
        assert QApplication.style().name() == platform_style
    finally:
        close_launched(app)
        theme.apply(QApplication.instance(), "system")
