"""Help → "About", "Open log folder" and "Copy diagnostics" on the real main window."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import pytest
from PySide6.QtCore import QUrl
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QLabel

from desktop.core.diagnostics import diagnostics_report
from desktop.views import help_menu
from desktop.views.help_menu import HelpMenu, qt_versions
from tests.gui.conftest import save_screenshot

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
    assert [a.text() for a in menu.menu.actions() if not a.isSeparator()] == [
        "&Keyboard shortcuts", "Open &log folder", "&Copy diagnostics", "&About TinyLlama"]

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


class _NoFileManager:
    """A desktop with no file manager: QDesktopServices.openUrl says it opened nothing."""

    urls: ClassVar[list[QUrl]] = []

    @staticmethod
    def openUrl(url: QUrl) -> bool:
        _NoFileManager.urls.append(url)
        return False


def test_open_log_folder_without_a_file_manager_shows_and_copies_the_path(
    open_window: Callable[..., Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, qtbot: Any
) -> None:
    opened = open_window()
    menu = HelpMenu(opened.window, tmp_path / "logs", lambda: "")
    QGuiApplication.clipboard().setText("something else")
    monkeypatch.setattr(help_menu, "QDesktopServices", _NoFileManager)
    menu.open_logs_action.trigger()
    assert [u.toLocalFile() for u in _NoFileManager.urls] == [str(tmp_path / "logs")]  # it did try
    assert QGuiApplication.clipboard().text() == str(tmp_path / "logs")
    box = menu.dialog
    assert box is not None
    qtbot.waitUntil(box.isVisible)
    assert str(tmp_path / "logs") in box.text() and "Path copied" in box.text()
    box.close()


def test_about_names_the_version_the_licence_and_links_the_readme(
    open_window: Callable[..., Any], tmp_path: Path, qtbot: Any
) -> None:
    from desktop.core.diagnostics import app_version

    opened = open_window()
    menu = HelpMenu(opened.window, tmp_path / "logs", lambda: "")
    menu.about_action.trigger()
    box = menu.dialog
    assert box is not None
    qtbot.waitUntil(box.isVisible)
    text = box.text()
    assert f"TinyLlama {app_version()}" in text and app_version() != "unknown (not installed)"
    assert "Licence: Apache-2.0" in text
    readme = QUrl.fromLocalFile(str(help_menu.SOURCE_ROOT / "README.md")).toString()
    assert f'href="{readme}"' in text  # this checkout has a README: About links it
    labels = [label for label in box.findChildren(QLabel) if "href" in label.text()]
    assert labels and labels[0].openExternalLinks()  # a click opens it in the browser / viewer
    save_screenshot(box, "help_about.png")
    box.close()
    # A bundle carries no README: About says where to look instead of a dead link.
    assert "href" not in help_menu.about_text(tmp_path / "no-source")
