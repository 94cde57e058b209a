"""The main window: chats on the left, the chat in the middle, wake status at the bottom.

It wires views to the ChatSession and the status poller; it owns no network code. The
composition root (desktop/app.py) gives it an ApiClient once the profile is connected.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QAction, QCloseEvent, QKeySequence
from PySide6.QtWidgets import (
    QFileDialog,
    QLabel,
    QMainWindow,
    QMessageBox,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from desktop.core.errors import AppError, BudgetExceededError, NetworkError, SessionExpiredError
from desktop.core.history import HistoryStore
from desktop.core.models import ChatMessage, Conversation
from desktop.core.settings import Settings
from desktop.qt.chat_session import ChatSession
from desktop.qt.poller import StatusPoller
from desktop.qt.runner import Runner
from desktop.services.api import ApiClient
from desktop.views.chat_view import ChatView
from desktop.views.conversation_list import ConversationList
from desktop.views.wake_status import WakeStatusBar


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
        self.resize(1000, 680)
        self.history = history
        self.settings = settings
        self.runner = runner
        self.session = ChatSession(history, runner, parent=self)
        self.status_poller: StatusPoller | None = None
        self._search = ""

        self.conversations = ConversationList(self)
        self.chat = ChatView(parent=self)
        self.wake = WakeStatusBar(self)
        self.notice = QLabel(self)
        self.notice.setObjectName("notice")
        self.notice.setWordWrap(True)
        self.notice.setStyleSheet(
            "background: #fff8e1; border: 1px solid #f0d98c; padding: 6px; border-radius: 4px;"
        )
        self.notice.setVisible(False)

        splitter = QSplitter(Qt.Orientation.Horizontal, self)
        splitter.addWidget(self.conversations)
        splitter.addWidget(self.chat)
        splitter.setStretchFactor(1, 1)
        splitter.setSizes([240, 760])
        central = QWidget(self)
        layout = QVBoxLayout(central)
        layout.setContentsMargins(6, 6, 6, 0)
        layout.addWidget(self.notice)
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
        self.chat.settings_changed.connect(self.history.update_conversation)
        self.session.message_changed.connect(self._message_changed)
        self.session.error.connect(self.show_error)
        self.session.compute_hint.connect(self.wake.set_compute)
        self.session.inflight_changed.connect(self._inflight_changed)

        last = int(settings.get("window.last_conversation") or 0)
        self._refresh_list()
        ids = self.conversations.ids()
        if ids:
            self.open_conversation(last if last in ids else ids[0])

    def _build_menus(self) -> None:
        chat = self.menuBar().addMenu("&Chat")
        new = QAction("&New chat", self, shortcut=QKeySequence.StandardKey.New)
        new.triggered.connect(self.new_conversation)
        chat.addAction(new)
        chat.addAction("Export as &Markdown…", lambda: self._ask_export(self._current(), "md"))
        chat.addAction("Export as &JSON…", lambda: self._ask_export(self._current(), "json"))
        chat.addSeparator()
        quit_action = QAction("&Quit", self, shortcut=QKeySequence.StandardKey.Quit)
        quit_action.triggered.connect(self.close)
        chat.addAction(quit_action)
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
        self.status_poller.failed.connect(self.session.report)  # a lost local service: reconnect
        self.status_poller.start()
        self.session.resume()

    def show_notice(self, text: str) -> None:
        self.notice.setText(text)
        self.notice.setVisible(bool(text))

    def set_signed_in(self, username: str | None, aws: bool = False) -> None:
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
        self.shutdown()
        super().closeEvent(event)

    # conversations -------------------------------------------------------------------

    def _current(self) -> int:
        conv = self.chat.conversation
        return conv.id if conv else 0

    def _refresh_list(self) -> None:
        self.conversations.set_conversations(self.history.conversations(self._search),
                                             self._current() or None)

    def _search_changed(self, text: str) -> None:
        self._search = text.strip()
        self._refresh_list()

    def new_conversation(self) -> Conversation:
        chat = self.settings.section("chat")
        conv = self.history.create_conversation(
            system_prompt=chat["system_prompt"], temperature=float(chat["temperature"]),
            max_tokens=int(chat["max_tokens"]), model=chat["model"],
        )
        self.open_conversation(conv.id)
        self.chat.prompt.setFocus()
        return conv

    def open_conversation(self, conv_id: int) -> None:
        conv = self.history.conversation(conv_id)
        if conv is None:
            return
        self.chat.set_conversation(conv, self.history.messages(conv_id))
        self.settings.set("window.last_conversation", conv_id)
        if self.conversations.current_id() != conv_id:
            self._refresh_list()

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
        self._refresh_list()

    def _confirm_delete(self, conv_id: int) -> None:
        conv = self.history.conversation(conv_id)
        answer = QMessageBox.question(self, "Delete chat", f"Delete “{conv.title if conv else ''}”?")
        if answer == QMessageBox.StandardButton.Yes:
            self.delete_conversation(conv_id)

    def export_conversation(self, conv_id: int, path: Path, fmt: str) -> None:
        text = (self.history.export_json if fmt == "json" else self.history.export_markdown)(conv_id)
        Path(path).write_text(text, encoding="utf-8")

    def _ask_export(self, conv_id: int, fmt: str) -> None:
        conv = self.history.conversation(conv_id)
        if conv is None:
            return
        suffix = "json" if fmt == "json" else "md"
        name, _ = QFileDialog.getSaveFileName(
            self, "Export chat", f"{conv.title}.{suffix}", f"*.{suffix}"
        )
        if name:
            try:
                self.export_conversation(conv_id, Path(name), fmt)
            except OSError as exc:
                self.show_error(AppError(f"Could not write {name}: {exc.strerror}"))

    # chat ----------------------------------------------------------------------------

    def send(self, text: str) -> None:
        conv_id = self._current() or self.new_conversation().id
        if not isinstance(self.wake.error, BudgetExceededError):
            self.wake.clear_error()
        if self.session.send(conv_id, text) is not None:
            self._refresh_list()
            conv = self.history.conversation(conv_id)
            self.chat.set_title(conv.title if conv else "")
            if self.status_poller is not None:
                self.status_poller.poll_now()

    def stop(self) -> None:
        if self._current():
            self.session.stop_conversation(self._current())

    def _message_changed(self, msg: ChatMessage) -> None:
        self.chat.upsert(msg)
        if not msg.in_flight and msg.status == "done" and isinstance(self.wake.error, NetworkError):
            self.wake.clear_error()

    def _inflight_changed(self, count: int) -> None:
        self.wake.set_waiting(count)
