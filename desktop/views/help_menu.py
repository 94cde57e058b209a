"""Help → "Open log folder" and "Copy diagnostics", added to the main window's menu bar."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from PySide6 import __version__ as pyside_version
from PySide6.QtCore import QObject, QUrl, qVersion
from PySide6.QtGui import QDesktopServices, QGuiApplication
from PySide6.QtWidgets import QMainWindow, QMenu


def qt_versions() -> dict[str, str]:
    """The GUI toolkit's versions, for the diagnostics report."""
    return {"Qt": qVersion(), "PySide6": pyside_version}


class HelpMenu(QObject):
    """The Help menu; `diagnostics()` builds the report text when the user asks for it."""

    def __init__(self, window: QMainWindow, log_dir: Path, diagnostics: Callable[[], str]) -> None:
        super().__init__(window)
        self.window = window
        self.log_dir = log_dir
        self.diagnostics = diagnostics
        # The window may have started the Help menu (its keyboard shortcuts): join it.
        existing = getattr(window, "help_menu", None)
        self.menu = existing if isinstance(existing, QMenu) else window.menuBar().addMenu("&Help")
        self.open_logs_action = self.menu.addAction("Open &log folder", self.open_log_folder)
        self.copy_action = self.menu.addAction("&Copy diagnostics", self.copy_diagnostics)

    def open_log_folder(self) -> bool:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        return QDesktopServices.openUrl(QUrl.fromLocalFile(str(self.log_dir)))

    def copy_diagnostics(self) -> str:
        text = self.diagnostics()
        QGuiApplication.clipboard().setText(text)
        self.window.statusBar().showMessage("Diagnostics copied to the clipboard (no tokens).", 5000)
        return text
