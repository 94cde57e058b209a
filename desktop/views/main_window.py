"""The main window: chats on the left, the chat in the middle, wake status at the bottom.

It wires views to the ChatSession and the status poller; it owns no network code. The
composition root (desktop/app.py) gives it an ApiClient once the profile is connected.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from PySide6 import QtCore  # its Qt namespace only once used: see desktop.qt.properties
from PySide6.QtCore import QByteArray, QEvent, QTimer, Signal
from PySide6.QtGui import QCloseEvent, QGuiApplication, QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QApplication,
    QFrame,
    QHBoxLayout,
    QLabel,
    QMainWindow,
    QSplitter,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from desktop.core.errors import AppError, BudgetExceededError, NetworkError, SessionExpiredError
from desktop.core.history import HistoryStore, export_file_name
from desktop.core.models import ChatMessage, Conversation
from desktop.core.settings import Settings
from desktop.qt.chat_session import ChatSession
from desktop.qt.poller import StatusPoller
from desktop.qt.properties import set_properties
from desktop.qt.runner import Runner
from desktop.services.api import ApiClient
from desktop.views import theme
from desktop.views.chat_view import EDIT_BUSY, ChatView
from desktop.views.conversation_list import ConversationList
from desktop.views.screen_fit import FRAME_ALLOWANCE_PX
from desktop.views.wake_status import WakeStatusBar

if TYPE_CHECKING:
    from PySide6.QtWidgets import QFileDialog, QMessageBox

SIGN_IN_FIRST = "Sign in from Account → Sign in… first; your prompt is still in the box."
NOT_CONNECTED = "Not connected yet; your prompt is still in the box. Send it again when the status bar says so."
# Moving or resizing the window writes its geometry this long after the last change, so a
# crash keeps the last size without writing the settings file on every pixel of a drag.
GEOMETRY_SAVE_MS = 500
# How long a passing word ("Copied the answer.", "Saved to …") stays in the status bar.
NOTE_MS = 4000
# The first window's size (logical px) where the screen has room for it.
DEFAULT_SIZE = (1000, 680)
# Below this the chat list, the prompt box and Send no longer fit side by side; it still fits a
# 1024×768 screen at 200 % (512×384 logical, less the frame).
MINIMUM_SIZE = (480, 320)
# The chat list's width when it is shown again after being collapsed to nothing.
SIDEBAR_WIDTH = 240

# What each shortcut does, for Help → Keyboard shortcuts (the actions use the same keys).
SHORTCUTS = (
    ("Enter", "Send the prompt (Shift+Enter: new line; Chat → Enter sends can swap this)"),
    ("Ctrl+Enter", "Send the prompt, in either mode"),
    ("Esc", "Stop the answer that is running (while editing a prompt: cancel the edit)"),
    ("Up", "In an empty prompt box: edit the last prompt and resend it"),
    ("Ctrl+N", "New chat"),
    ("Ctrl+K", "Search chats"),
    ("Ctrl+B", "Hide or show the chat list"),
    ("Ctrl+L", "Back to the prompt box"),
    ("Ctrl+Shift+C", "Copy the last answer"),
    ("Ctrl+Shift+R", "Regenerate the last answer"),
    ("F2", "Rename the selected chat"),
    ("Delete", "Delete the selected chat (asks first)"),
    ("End", "Jump to the latest message"),
    ("Tab", "Leave the prompt box (to Send, Stop, the chat list)"),
)


class MainWindow(QMainWindow):
    """One window per app; `connect_api` makes it live."""

    sign_in_requested = Signal()
    sign_out_requested = Signal()
    settings_requested = Signal()
    model_requested = Signal()  # Account → Model…: the app opens desktop/views/model_dialog.py
    error_shown = Signal(str)
    aws_profile_saved = Signal()  # the deploy wizard wrote a stack's outputs and the person wants to sign in

    def __init__(
        self, history: HistoryStore, settings: Settings, runner: Runner,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("TinyLlama")
        self.resize(*DEFAULT_SIZE)
        self.setMinimumSize(*MINIMUM_SIZE)
        self.history = history
        self.settings = settings
        self.runner = runner
        self.session = ChatSession(history, runner, parent=self)
        self.status_poller: StatusPoller | None = None
        self._search = ""
        self._signed_out = False  # an AWS profile without a signed-in user
        self.copied = ""

        self.conversations = ConversationList(self)
        self.chat = ChatView(parent=self)
        self.wake = WakeStatusBar(self)
        # The notice: its words, and at their right a button that dismisses it. The box has
        # the colours; the words wrap short of the button (inside one label with padding
        # they ran under it in a real X window).
        self.notice_box = QFrame(self)
        self.notice_box.setObjectName("notice")
        theme.styled(self.notice_box, "QFrame#notice { background: $warning_bg; border: 1px solid $warning_border; "
                     "border-radius: 4px; } QFrame#notice QLabel { color: $warning_text; }")
        self.notice = QLabel(self.notice_box)
        self.notice.setWordWrap(True)
        self.notice_close = QToolButton(self.notice_box)
        self.notice_close.setText("✕")
        self.notice_close.setAutoRaise(True)
        self.notice_close.setToolTip("Dismiss this notice")
        self.notice_close.setAccessibleName("Dismiss notice")
        self.notice_close.clicked.connect(lambda: self.notice_box.setVisible(False))
        notice_row = QHBoxLayout(self.notice_box)
        notice_row.setContentsMargins(6, 6, 6, 6)
        notice_row.addWidget(self.notice, 1)
        close_column = QVBoxLayout()  # ✕ at the top of a notice of several lines
        close_column.addWidget(self.notice_close)
        close_column.addStretch(1)
        notice_row.addLayout(close_column)
        self.notice_box.setVisible(False)

        # Side by side. (The parent by keyword: PySide would first try a positional one as a
        # Qt.Orientation, building the whole Qt namespace; desktop.qt.properties.)
        splitter = QSplitter(parent=self)
        splitter.addWidget(self.conversations)
        splitter.addWidget(self.chat)
        splitter.setStretchFactor(1, 1)
        splitter.setSizes([SIDEBAR_WIDTH, DEFAULT_SIZE[0] - SIDEBAR_WIDTH])
        # The chat list may be collapsed (View → Chat list, Ctrl+B, or dragging the handle);
        # the chat with its prompt box and Send never is.
        splitter.setCollapsible(0, True)
        splitter.setCollapsible(1, False)
        self._sidebar_width = SIDEBAR_WIDTH
        self.splitter = splitter
        central = QWidget(self)
        layout = QVBoxLayout(central)
        layout.setContentsMargins(6, 6, 6, 0)
        layout.addWidget(self.notice_box)
        layout.addWidget(splitter, 1)
        self.setCentralWidget(central)
        self.statusBar().addWidget(self.wake, 1)
        self.statusBar().setSizeGripEnabled(False)
        self._build_menus()

        self.conversations.selected.connect(self.open_conversation)
        self.conversations.new_requested.connect(self.new_conversation)
        self.conversations.search_changed.connect(self._search_changed)
        self.conversations.rename_requested.connect(self.rename_conversation)
        self.conversations.delete_requested.connect(self._confirm_delete)
        self.conversations.export_requested.connect(self._ask_export)
        self.chat.send_requested.connect(self.send)
        self.chat.stop_requested.connect(self.stop)
        self.chat.continue_requested.connect(self.continue_answer)
        self.chat.notify.connect(lambda text: self.statusBar().showMessage(text, NOTE_MS))
        self.chat.settings_changed.connect(self.history.update_settings)
        self.chat.set_send_key(str(settings.get("chat.send_key")))
        self.wake.local_engine = str(settings.get("local.engine") or "")
        self.conversations.chosen.connect(self._focus_prompt)
        self.session.message_changed.connect(self._message_changed)
        self.session.error.connect(self.show_error)
        self.session.compute_hint.connect(self.wake.set_compute)
        self.session.inflight_changed.connect(self._inflight_changed)

        last = int(settings.get("window.last_conversation") or 0)
        history.delete_unused(**self._new_chat_settings())  # New chats of earlier runs nobody touched
        self._refresh_list()
        ids = self.conversations.ids()
        if ids:
            self.open_conversation(last if last in ids else ids[0])
        self._geometry_timer = QTimer(self)
        self._geometry_timer.setSingleShot(True)
        self._geometry_timer.setInterval(GEOMETRY_SAVE_MS)
        self._geometry_timer.timeout.connect(self.save_geometry)
        self._restore_geometry()
        splitter.splitterMoved.connect(lambda *_: self._geometry_timer.start())
        splitter.splitterMoved.connect(lambda *_: self._sidebar_moved())
        self._sidebar_moved()
        self.chat.prompt.setFocus()  # typing starts at once

    def _build_menus(self) -> None:
        # Shortcuts go in with the action or through setShortcuts: PySide resolves
        # setShortcut(…) by first trying its argument as Qt's key types, which builds the whole
        # Qt namespace before the first paint (desktop.qt.properties).
        chat = self.menuBar().addMenu("&Chat")
        new = chat.addAction("&New chat", self.new_conversation)
        new.setShortcuts(QKeySequence.StandardKey.New)
        self.stop_action = chat.addAction("&Stop the answer", QKeySequence("Esc"), self.stop)
        self.regenerate_action = chat.addAction("&Regenerate the last answer", QKeySequence("Ctrl+Shift+R"),
                                                self.regenerate)
        self.copy_answer_action = chat.addAction("&Copy the last answer", QKeySequence("Ctrl+Shift+C"),
                                                 self.copy_last_answer)
        chat.addSeparator()
        self.search_action = chat.addAction("Searc&h chats", self.focus_search)
        self.search_action.setShortcuts([QKeySequence("Ctrl+K"), QKeySequence.StandardKey.Find])
        self.prompt_action = chat.addAction("Go to the &prompt box", QKeySequence("Ctrl+L"), self._focus_prompt)
        self.enter_sends_action = chat.addAction("&Enter sends (Shift+Enter: new line)")
        self.enter_sends_action.setCheckable(True)
        self.enter_sends_action.setChecked(self.chat.send_key == "enter")
        self.enter_sends_action.toggled.connect(self._set_enter_sends)
        chat.addSeparator()
        chat.addAction("Export as &Markdown…", lambda: self._ask_export(self._current(), "md"))
        chat.addAction("Export as &JSON…", lambda: self._ask_export(self._current(), "json"))
        chat.addSeparator()
        quit_action = chat.addAction("&Quit", self.close)
        quit_action.setShortcuts(QKeySequence.StandardKey.Quit)
        account = self.menuBar().addMenu("&Account")
        self.sign_in_action = account.addAction("Sign &in…", lambda: self.sign_in_requested.emit())
        self.sign_out_action = account.addAction("Sign &out", lambda: self.sign_out_requested.emit())
        account.addSeparator()
        account.addAction("&Profile…", lambda: self.settings_requested.emit())
        account.addAction("&Model…", lambda: self.model_requested.emit())
        account.addSeparator()
        account.addAction("&Deploy to AWS…", self.open_deploy_wizard)
        account.addAction("&Costs…", self.open_costs)
        self.set_signed_in(None)
        view = self.menuBar().addMenu("&View")
        self.sidebar_action = view.addAction("Chat &list")
        self.sidebar_action.setCheckable(True)
        self.sidebar_action.setChecked(True)
        self.sidebar_action.setShortcuts([QKeySequence("Ctrl+B")])  # as VS Code's side bar
        self.sidebar_action.toggled.connect(self.set_sidebar_visible)
        # Help → Logs and diagnostics join this menu (desktop/views/help_menu.py).
        self.help_menu = self.menuBar().addMenu("&Help")
        self.help_menu.addAction("&Keyboard shortcuts", self.show_shortcuts)
        # Delete acts on the chat list only: in the prompt box it deletes text.
        delete = QShortcut(QKeySequence.StandardKey.Delete, self.conversations.items)
        set_properties(delete, context="WidgetShortcut")
        delete.activated.connect(self._delete_selected)
        end = QShortcut(QKeySequence("End"), self.chat.transcript)
        set_properties(end, context="WidgetWithChildrenShortcut")
        end.activated.connect(self.chat.jump_to_latest)

    def shortcuts_text(self) -> str:
        """The shortcut list as HTML (Help → Keyboard shortcuts)."""
        rows = "".join(f"<tr><td><b>{key}</b>&nbsp;&nbsp;</td><td>{what}</td></tr>" for key, what in SHORTCUTS)
        return f"<table cellpadding='3'>{rows}</table>"

    def show_shortcuts(self) -> QMessageBox:
        from PySide6.QtWidgets import QMessageBox  # dialogs load when first opened

        box = QMessageBox(QMessageBox.Icon.NoIcon, "Keyboard shortcuts", self.shortcuts_text(),
                          QMessageBox.StandardButton.Close, self)
        box.setTextFormat(QtCore.Qt.TextFormat.RichText)
        box.open()
        return box

    # keyboard ------------------------------------------------------------------------

    def _focus_prompt(self) -> None:
        self.chat.prompt.setFocus(QtCore.Qt.FocusReason.ShortcutFocusReason)

    def focus_search(self) -> None:
        self.set_sidebar_visible(True)  # the search box is in the chat list
        self.conversations.search.setFocus(QtCore.Qt.FocusReason.ShortcutFocusReason)
        self.conversations.search.selectAll()

    def _set_enter_sends(self, on: bool) -> None:
        self.chat.set_send_key("enter" if on else "ctrl+enter")
        self.settings.set("chat.send_key", self.chat.send_key)
        self.settings.save()

    def _delete_selected(self) -> None:
        conv_id = self.conversations.current_id()
        if conv_id is not None:
            self._confirm_delete(conv_id)

    def copy_last_answer(self) -> str:
        """Copy the newest answer of the open chat; the status bar says so."""
        answer = self.chat.last_answer()
        if answer is None:
            self.statusBar().showMessage("No answer to copy yet.", NOTE_MS)
            return ""
        QGuiApplication.clipboard().setText(answer.content)
        self.copied = answer.content
        self.statusBar().showMessage("Copied the last answer.", NOTE_MS)
        return answer.content

    def regenerate(self) -> None:
        """Ask again for the open chat's last answer (the old one is replaced)."""
        conv_id = self._current()
        if not conv_id or self.chat.busy():
            return
        if not self._can_send():
            return
        answer = self.session.regenerate(conv_id)
        if answer is not None:
            self.chat.set_conversation(self.history.conversation(conv_id), self.history.messages(conv_id))
            if self.status_poller is not None:
                self.status_poller.poll_now()

    def continue_answer(self) -> None:
        """Ask for the rest of the open chat's last answer, cut at the token limit."""
        conv_id = self._current()
        if not conv_id or self.chat.busy() or not self._can_send():
            return
        if self.session.continue_answer(conv_id) is None:
            return
        self._refresh_list()  # the chat moves to the top, as after any prompt
        if self.status_poller is not None:
            self.status_poller.poll_now()

    # geometry ------------------------------------------------------------------------

    def _restore_geometry(self) -> None:
        geometry = str(self.settings.get("window.geometry") or "")
        restored = bool(geometry) and self.restoreGeometry(QByteArray.fromBase64(geometry.encode("ascii")))
        self.fit_to_screen(centre=not restored)
        splitter = str(self.settings.get("window.splitter") or "")
        if splitter:
            self.splitter.restoreState(QByteArray.fromBase64(splitter.encode("ascii")))

    def fit_to_screen(self, centre: bool = False) -> None:
        """Keep the whole window, frame included, on one screen's available area.

        The first window at 200 % on a 1400×900 screen (700×450 logical) would open larger
        than the screen with Send below its edge; a geometry saved on a monitor that is gone,
        or at another scale, would open off-screen. Sizes are logical pixels, as the screen's.
        """
        if self.isMaximized() or self.isFullScreen():
            return  # the window manager fits those itself
        screen = QGuiApplication.screenAt(self.geometry().center()) or QGuiApplication.primaryScreen()
        if screen is None:
            return
        room = screen.availableGeometry()
        # Before the first show the frame is not known yet: leave room for one.
        frame = self.frameGeometry()
        frame_w = max(frame.width() - self.width(), FRAME_ALLOWANCE_PX[0] if not self.isVisible() else 0)
        frame_h = max(frame.height() - self.height(), FRAME_ALLOWANCE_PX[1] if not self.isVisible() else 0)
        width = min(self.width(), room.width() - frame_w)
        height = min(self.height(), room.height() - frame_h)
        self.resize(width, height)
        width, height = self.width(), self.height()  # no smaller than the minimum size
        if centre:
            x = room.x() + (room.width() - width - frame_w) // 2
            y = room.y() + (room.height() - height - frame_h) // 2
        else:
            x = min(self.x(), room.x() + room.width() - width - frame_w)
            y = min(self.y(), room.y() + room.height() - height - frame_h)
        x, y = max(x, room.x()), max(y, room.y())
        if not centre and (x, y) == (self.x(), self.y()):
            # On screen where restoreGeometry put it. Moving it there anyway would place the
            # frame where the window was: on X11 it crept down a title bar a launch.
            return
        self.move(x, y)

    # chat list -----------------------------------------------------------------------

    def sidebar_visible(self) -> bool:
        """Whether the chat list takes any room (collapsed means width 0, as a dragged handle)."""
        return self.splitter.sizes()[0] > 0

    def set_sidebar_visible(self, visible: bool) -> None:
        """Collapse or show the chat list (View → Chat list, Ctrl+B); saved with the splitter."""
        if visible == self.sidebar_visible():
            self.sidebar_action.setChecked(visible)
            return
        sizes = self.splitter.sizes()
        total = sum(sizes)
        if visible:
            width = min(self._sidebar_width, max(total - self.chat.minimumSizeHint().width(), 0))
            self.splitter.setSizes([width, total - width])
        else:
            self._sidebar_width = sizes[0]
            self.splitter.setSizes([0, total])
            focused = QApplication.focusWidget()
            if focused is not None and self.conversations.isAncestorOf(focused):
                self._focus_prompt()  # focus never stays in a list no one sees
        self._sidebar_moved()
        self._geometry_timer.start()

    def _sidebar_moved(self) -> None:
        width = self.splitter.sizes()[0]
        # A drag to the edge passes through narrow widths before the list collapses: those
        # are not the width to come back to.
        if width >= max(self.conversations.minimumSizeHint().width(), SIDEBAR_WIDTH // 2):
            self._sidebar_width = width
        self.sidebar_action.setChecked(width > 0)

    # single instance -----------------------------------------------------------------

    def bring_to_front(self) -> None:
        """A second launch asked for this window: show it, un-minimised, raised and active."""
        if self.isMinimized():
            self.setWindowState(self.windowState() & ~QtCore.Qt.WindowState.WindowMinimized)
        self.show()
        self.raise_()
        self.activateWindow()

    def save_geometry(self) -> None:
        """Write size, position and splitter to the settings file now."""
        self.settings.set("window.geometry", bytes(self.saveGeometry().toBase64().data()).decode("ascii"))
        self.settings.set("window.splitter", bytes(self.splitter.saveState().toBase64().data()).decode("ascii"))
        self.settings.save()

    def moveEvent(self, event: QEvent) -> None:  # type: ignore[override]
        super().moveEvent(event)  # type: ignore[arg-type]
        if self.isVisible():
            self._geometry_timer.start()

    def resizeEvent(self, event: QEvent) -> None:  # type: ignore[override]
        super().resizeEvent(event)  # type: ignore[arg-type]
        if self.isVisible():
            self._geometry_timer.start()

    # deploy and costs ----------------------------------------------------------------

    def open_deploy_wizard(self) -> QWidget:
        """Account → Deploy to AWS…: the wizard, window-modal, on the shared runner."""
        from desktop.views.wizard import DeployWizard, WizardContext

        wizard = DeployWizard(WizardContext(self.settings, self.runner), self)
        wizard.sign_in_requested.connect(lambda: self.aws_profile_saved.emit())
        wizard.open()
        return wizard

    def open_costs(self) -> QWidget:
        """Account → Costs…: the cost panel of the AWS profile's stack."""
        from desktop.views.cost_panel import open_cost_panel

        panel = open_cost_panel(self.settings, self.runner, self, self.history)
        if isinstance(self.wake.error, BudgetExceededError):
            panel.set_guard_refusal(str(self.wake.error))
        panel.show()
        return panel

    # connection ----------------------------------------------------------------------

    def connect_api(self, api: ApiClient | None) -> None:
        """Go live against `api` (None disconnects): poll status, resume answers."""
        if self.status_poller is not None:
            self.status_poller.stop()
            self.status_poller.deleteLater()
            self.status_poller = None
        self.session.set_api(api)
        if api is None:
            return
        self.status_poller = StatusPoller(
            self.runner, api.status, busy=lambda: self.session.inflight() > 0, parent=self
        )
        self.status_poller.updated.connect(self.wake.set_status)
        self.status_poller.updated.connect(lambda status: self.chat.set_context_tokens(status.context_tokens))
        self.status_poller.failed.connect(self.session.report)  # a lost local service: reconnect
        self.status_poller.start()
        self.session.resume()

    def show_notice(self, text: str) -> None:
        self.notice.setText(text)
        self.notice_box.setVisible(bool(text))

    def set_signed_in(self, username: str | None, aws: bool = False) -> None:
        self._signed_out = aws and username is None
        self.sign_in_action.setVisible(aws and username is None)
        self.sign_out_action.setVisible(aws and username is not None)
        self.sign_out_action.setText(f"Sign out {username}" if username else "Sign out")

    def show_error(self, error: AppError) -> None:
        """Errors go to the status strip (never a traceback, never a modal for polling)."""
        self.wake.show_error(error)
        self.error_shown.emit(str(error))
        if isinstance(error, SessionExpiredError):
            self.sign_in_requested.emit()

    def shutdown(self) -> None:
        """Stop timers; the caller then joins the runner."""
        if self.status_poller is not None:
            self.status_poller.stop()
        self.session.shutdown()

    def closeEvent(self, event: QCloseEvent) -> None:
        self._geometry_timer.stop()
        if self.isVisible():
            self.save_geometry()
        self.shutdown()
        super().closeEvent(event)

    def changeEvent(self, event: QEvent) -> None:
        if event.type() == QEvent.Type.WindowStateChange:
            self._shown_changed()
        super().changeEvent(event)

    # conversations -------------------------------------------------------------------

    def _shown_changed(self) -> None:
        """Tell the session which chat a person can see: none while the window is minimised."""
        self.session.show(None if self.isMinimized() else self._current() or None)

    def _current(self) -> int:
        conv = self.chat.conversation
        return conv.id if conv else 0

    def _refresh_list(self) -> None:
        self.conversations.set_conversations(self.history.conversations(self._search),
                                             self._current() or None, self._search)

    def _search_changed(self, text: str) -> None:
        self._search = text.strip()
        self._refresh_list()

    def new_conversation(self) -> Conversation:
        """Open an empty chat and put the focus in the prompt box. A chat nobody used yet
        (untitled, no messages, the new-chat settings) is opened again rather than listing another."""
        fresh = self._new_chat_settings()
        conv = self.history.unused_conversation(**fresh) or self.history.create_conversation(**fresh)
        self.open_conversation(conv.id)
        self._focus_prompt()
        return conv

    def _new_chat_settings(self) -> dict[str, object]:
        """What a new chat starts with: the Chat defaults of the settings file."""
        chat = self.settings.section("chat")
        return {"system_prompt": str(chat["system_prompt"]), "temperature": float(chat["temperature"]),
                "max_tokens": int(chat["max_tokens"]), "model": str(chat["model"])}

    def open_conversation(self, conv_id: int) -> None:
        conv = self.history.conversation(conv_id)
        if conv is None:
            return
        self.chat.set_conversation(conv, self.history.messages(conv_id))
        self._shown_changed()
        if self.settings.get("window.last_conversation") != conv_id:
            self.settings.set("window.last_conversation", conv_id)
            self.settings.save()  # now, not at quit: a crash reopens this chat too
        if self.conversations.current_id() != conv_id:
            self._refresh_list()
        if not self.conversations.items.hasFocus():
            # Arrow keys in the list keep moving through chats; from anywhere else, type.
            self._focus_prompt()

    def rename_conversation(self, conv_id: int, title: str) -> None:
        self.history.rename(conv_id, title)
        if conv_id == self._current():
            conv = self.history.conversation(conv_id)
            self.chat.set_title(conv.title if conv else "")

    def delete_conversation(self, conv_id: int) -> None:
        self.session.stop_conversation(conv_id)
        self.history.delete(conv_id)
        if conv_id == self._current():
            self.chat.set_conversation(None, [])
            self._shown_changed()
        self._refresh_list()

    def _confirm_delete(self, conv_id: int) -> None:
        from PySide6.QtWidgets import QMessageBox

        conv = self.history.conversation(conv_id)
        answer = QMessageBox.question(self, "Delete chat", f"Delete “{conv.title if conv else ''}”?")
        if answer == QMessageBox.StandardButton.Yes:
            self.delete_conversation(conv_id)

    def export_conversation(self, conv_id: int, path: Path, fmt: str) -> bool:
        """Write chat `conv_id` to `path` as Markdown or JSON; the status bar says where, or
        in words why not (False)."""
        text = (self.history.export_json if fmt == "json" else self.history.export_markdown)(conv_id)
        try:
            Path(path).write_text(text, encoding="utf-8")
        except OSError as exc:
            why = exc.strerror or str(exc)
            self.show_error(AppError(f"Could not save the chat to {path}: {why}. Choose another folder or name."))
            return False
        self.statusBar().showMessage(f"Saved to {path}", NOTE_MS)
        return True

    def _ask_export(self, conv_id: int, fmt: str) -> QFileDialog | None:
        """Ask where to save chat `conv_id` (in Documents, named after the chat), then save."""
        from PySide6.QtCore import QStandardPaths
        from PySide6.QtWidgets import QFileDialog

        conv = self.history.conversation(conv_id)
        if conv is None:
            return None
        suffix = "json" if fmt == "json" else "md"
        docs = QStandardPaths.writableLocation(QStandardPaths.StandardLocation.DocumentsLocation)
        folder = Path(docs) if docs and Path(docs).is_dir() else Path.home()
        kind = "JSON" if fmt == "json" else "Markdown"
        dialog = QFileDialog(self, "Export chat", str(folder / export_file_name(conv.title, suffix)),
                             f"{kind} (*.{suffix})")
        dialog.setAcceptMode(QFileDialog.AcceptMode.AcceptSave)
        dialog.setDefaultSuffix(suffix)
        dialog.fileSelected.connect(lambda name: self.export_conversation(conv_id, Path(name), fmt))
        # Window-modal and not blocking (open, not exec): answers keep streaming meanwhile.
        dialog.setAttribute(QtCore.Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.open()
        return dialog

    # chat ----------------------------------------------------------------------------

    def _can_send(self) -> bool:
        """Whether a prompt can go out (or be held until the connection is back); if not,
        say what to do."""
        if self.session.api is not None or self.session.holding:
            return True
        self.show_error(AppError(SIGN_IN_FIRST if self._signed_out else NOT_CONNECTED))
        return False

    def send(self, text: str) -> bool:
        """Send `text` in the open chat (a new one if none); False when it could not go,
        and then the prompt box keeps it."""
        if not self._can_send():
            return False
        conv_id = self._current() or self.new_conversation().id
        editing = self.chat.editing_id()
        if editing is not None and self.chat.busy():
            self.statusBar().showMessage(EDIT_BUSY, NOTE_MS)
            return False
        if not isinstance(self.wake.error, BudgetExceededError):
            self.wake.clear_error()
        if editing is None:
            if self.session.send(conv_id, text) is None:
                return False
            self.chat.prompt_sent()
        else:
            # The edited prompt and everything after it go; the chat is shown anew.
            if self.session.resend(conv_id, editing, text) is None:
                return False
            self.chat.prompt_sent()
            self.chat.set_conversation(self.history.conversation(conv_id), self.history.messages(conv_id))
        self._refresh_list()
        conv = self.history.conversation(conv_id)
        self.chat.set_title(conv.title if conv else "")
        if self.status_poller is not None:
            self.status_poller.poll_now()
        return True

    def stop(self) -> None:
        if self._current():
            self.session.stop_conversation(self._current())

    def _message_changed(self, msg: ChatMessage) -> None:
        self.chat.upsert(msg)
        self._inflight_changed(self.session.inflight())  # queued → running changes the strip
        if not msg.in_flight and msg.status == "done" and isinstance(self.wake.error, NetworkError):
            self.wake.clear_error()

    def _inflight_changed(self, _count: int) -> None:
        waiting, running = self.session.counts()
        self.wake.set_waiting(waiting, running)
