"""Help → "Open log folder" and "Copy diagnostics" on the real main window."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import QUrl
from PySide6.QtGui import QGuiApplication

from desktop.core.diagnostics import diagnostics_report
from desktop.views import help_menu
from desktop.views.help_menu import HelpMenu, qt_versions

TOKEN = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ1c2VyIn0.c2lnbmF0dXJl"


def test_help_menu_copies_diagnostics_without_tokens_and_opens_the_log_folder(
    open_window: Callable[..., Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    opened = open_window()
    errors = [f"03:40 ERROR tinyllama: refused Bearer {TOKEN}"]
    menu = HelpMenu(
        opened.window,
        tmp_path / "logs",
        lambda: diagnostics_report(profile="local", errors=errors, extra_versions=qt_versions()),
    )

    titles = [a.text() for a in opened.window.menuBar().actions()]
    assert titles.count("&Help") == 1  # the window's Help menu, joined, not a second one
    assert [a.text() for a in menu.menu.actions()] == ["&Keyboard shortcuts", "Open &log folder", "&Copy diagnostics"]

    menu.copy_action.trigger()
    copied = QGuiApplication.clipboard().text()
    assert "Profile: local" in copied and "PySide6 " in copied and "refused Bearer [redacted]" in copied
    assert TOKEN not in copied

    urls = []

    class FakeDesktopServices:
        @staticmethod
        def openUrl(url: QUrl) -> bool:
            urls.append(url)
            return True

    monkeypatch.setattr(help_menu, "QDesktopServices", FakeDesktopServices)
    menu.open_logs_action.trigger()
    assert (tmp_path / "logs").is_dir()
    assert [u.toLocalFile() for u in urls] == [str(tmp_path / "logs")]
