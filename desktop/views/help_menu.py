"""Help → "About TinyLlama", "Open log folder" and "Copy diagnostics", added to the main
window's menu bar."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6 import QtCore  # its Qt namespace only once used: see desktop.qt.properties
from PySide6 import __version__ as pyside_version
from PySide6.QtCore import QObject, qVersion
from PySide6.QtGui import QDesktopServices, QGuiApplication
from PySide6.QtWidgets import QMainWindow, QMenu

from desktop.core.diagnostics import app_version

if TYPE_CHECKING:
    from PySide6.QtWidgets import QMessageBox

# The README and docs next to the package in a checkout or an installed source tree; a
# bundle carries neither, and then About names the README instead of linking it.
SOURCE_ROOT = Path(__file__).resolve().parents[2]
FALLBACK_LICENCE = "Apache-2.0"  # pyproject.toml's, for a bundle without package metadata


def licence() -> str:
    """The licence pyproject.toml declares, read from the installed package's metadata."""
    from importlib.metadata import PackageNotFoundError, metadata  # heavy: loaded for About only

    try:
        return metadata("tinyllama").get("License") or FALLBACK_LICENCE
    except PackageNotFoundError:
        return FALLBACK_LICENCE


def about_text(root: Path = SOURCE_ROOT) -> str:
    """Help → About as HTML: version, licence, and links to the README and docs."""
    import html  # this, QUrl and the dialogs load when the menu is first used, not at start-up

    from PySide6.QtCore import QUrl

    links = [f'<a href="{QUrl.fromLocalFile(str(path)).toString()}">{label}</a>'
             for label, path in (("README", root / "README.md"), ("Screenshots and docs", root / "docs"))
             if path.exists()]
    docs = " · ".join(links) if links else "the README.md that comes with the source"
    return (f"<h3>TinyLlama {html.escape(app_version())}</h3>"
            "<p>Your own LLM on your own AWS account, or on this computer.</p>"
            f"<p>Licence: {html.escape(licence())}<br>Qt {html.escape(qVersion())},"
            f" PySide6 {html.escape(pyside_version)}</p>"
            f"<p>Documentation: {docs}</p>")


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
        self.menu.addSeparator()
        self.about_action = self.menu.addAction("&About TinyLlama", self.show_about)
        self.about_action.setMenuRole(self.about_action.MenuRole.AboutRole)  # macOS: the app menu
        self.dialog: QMessageBox | None = None

    def show_about(self) -> QMessageBox:
        """Help → About: version, licence, links (window-modal, no nested event loop)."""
        from PySide6.QtWidgets import QMessageBox

        box = QMessageBox(QMessageBox.Icon.NoIcon, "About TinyLlama", about_text(),
                          QMessageBox.StandardButton.Close, self.window)
        box.setTextFormat(QtCore.Qt.TextFormat.RichText)
        box.setTextInteractionFlags(QtCore.Qt.TextInteractionFlag.TextBrowserInteraction)
        self.dialog = box
        box.open()
        return box

    def open_log_folder(self) -> bool:
        """Open the log folder in the file manager; where none opens it (a bare desktop, a
        sandbox), show its path and copy it so it can be pasted into one."""
        from PySide6.QtCore import QUrl
        from PySide6.QtWidgets import QMessageBox

        self.log_dir.mkdir(parents=True, exist_ok=True)
        if QDesktopServices.openUrl(QUrl.fromLocalFile(str(self.log_dir))):
            return True
        QGuiApplication.clipboard().setText(str(self.log_dir))
        box = QMessageBox(QMessageBox.Icon.Information, "Log folder",
                          f"No file manager opened the log folder. It is here:\n\n{self.log_dir}\n\n"
                          "Path copied to the clipboard.", QMessageBox.StandardButton.Close, self.window)
        box.setTextInteractionFlags(QtCore.Qt.TextInteractionFlag.TextSelectableByMouse)
        self.dialog = box
        box.open()
        return False

    def copy_diagnostics(self) -> str:
        text = self.diagnostics()
        QGuiApplication.clipboard().setText(text)
        self.window.statusBar().showMessage("Diagnostics copied to the clipboard (no tokens).", 5000)
        return text
