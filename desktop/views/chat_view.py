"""The chat on screen: transcript with rendered Markdown, the prompt box, Send and Stop.

Only the answer that is growing is re-rendered on each update (its HTML replaces the tail
of the document), so a long transcript does not cost a full re-layout 4 times a second.
"""

from __future__ import annotations

import html

from PySide6.QtCore import QEvent, QObject, Qt, QUrl, Signal
from PySide6.QtGui import QGuiApplication, QKeyEvent, QTextCursor
from PySide6.QtWidgets import (
    QDoubleSpinBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QSpinBox,
    QTextBrowser,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from desktop.core.markdown import MarkdownRenderer
from desktop.core.models import ChatMessage, Conversation

# How many messages a chat shows when opened; older ones come with "Show earlier".
RECENT = 16

_WAITING_WORDS = {
    "sending": "Sending…",
    "queued": "Queued…",
    "waking": "Waiting for the GPU to wake…",
    "running": "",
}
RETRYING = "Retrying: the worker stopped, so the answer is starting over…"


def answer_meta(msg: ChatMessage) -> str:
    """'42 tokens · first token 0.31 s · total 1.20 s · ≈ $0.0001' (what is known)."""
    parts = []
    if msg.completion_tokens is not None:
        parts.append(f"{msg.completion_tokens} tokens")
    if msg.first_token_s is not None:
        parts.append(f"first token {msg.first_token_s:.2f} s")
    if msg.total_s is not None:
        parts.append(f"total {msg.total_s:.2f} s")
    if msg.cost_usd:
        parts.append(f"≈ ${msg.cost_usd:.4f}")
    elif msg.cost_usd == 0 and msg.status == "done":
        parts.append("no GPU cost")
    if msg.status in ("cancelled", "expired", "failed"):
        parts.append(msg.status)
    return " · ".join(parts)


class ChatView(QWidget):
    """Shows one conversation; emits what the person asks for."""

    send_requested = Signal(str)
    stop_requested = Signal()
    settings_changed = Signal(object)  # Conversation with edited generation settings

    def __init__(self, renderer: MarkdownRenderer | None = None, parent: QWidget | None = None):
        super().__init__(parent)
        self._renderer = renderer or MarkdownRenderer()
        self._conv: Conversation | None = None
        self._messages: list[ChatMessage] = []
        self._code_blocks: list[str] = []
        self._tail_pos = -1
        self._tail_blocks = 0
        self._first_shown = 0
        self.copied = ""

        self.transcript = QTextBrowser(self)
        self.transcript.setOpenLinks(False)
        self.transcript.anchorClicked.connect(self._link)
        self.transcript.document().setDocumentMargin(12)

        self.settings_button = QToolButton(self)
        self.settings_button.setText("Chat settings")
        self.settings_button.setCheckable(True)
        self.settings_panel = self._build_settings()
        self.settings_panel.setVisible(False)
        self.settings_button.toggled.connect(self.settings_panel.setVisible)

        self.prompt = QPlainTextEdit(self)
        self.prompt.setPlaceholderText("Ask anything — Ctrl+Enter sends")
        self.prompt.setFixedHeight(84)
        self.send_button = QPushButton("Send", self)
        self.send_button.setDefault(True)
        self.send_button.clicked.connect(self._send)
        self.stop_button = QPushButton("Stop", self)
        self.stop_button.setEnabled(False)
        self.stop_button.clicked.connect(self.stop_requested)
        # An event filter rather than a QShortcut: it works whenever the prompt has focus,
        # whatever the window's activation state, and catches the keypad Enter too.
        self.prompt.installEventFilter(self)

        buttons = QVBoxLayout()
        buttons.addWidget(self.send_button)
        buttons.addWidget(self.stop_button)
        buttons.addStretch()
        entry = QHBoxLayout()
        entry.addWidget(self.prompt, 1)
        entry.addLayout(buttons)
        header = QHBoxLayout()
        self.title = QLabel(self)
        self.title.setStyleSheet("font-weight: 600; font-size: 14px;")
        header.addWidget(self.title, 1)
        header.addWidget(self.settings_button)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)
        layout.addLayout(header)
        layout.addWidget(self.settings_panel)
        layout.addWidget(self.transcript, 1)
        layout.addLayout(entry)
        self.set_conversation(None, [])

    def _build_settings(self) -> QWidget:
        panel = QWidget(self)
        form = QFormLayout(panel)
        form.setContentsMargins(0, 0, 0, 0)
        self.system_prompt = QLineEdit(panel)
        self.system_prompt.setPlaceholderText("e.g. You answer briefly.")
        self.temperature = QDoubleSpinBox(panel)
        self.temperature.setRange(0.0, 2.0)
        self.temperature.setSingleStep(0.1)
        self.max_tokens = QSpinBox(panel)
        self.max_tokens.setRange(1, 4096)
        self.model = QLineEdit(panel)
        self.model.setPlaceholderText("the stack's default")
        form.addRow("System prompt", self.system_prompt)
        form.addRow("Temperature", self.temperature)
        form.addRow("Max tokens", self.max_tokens)
        form.addRow("Model", self.model)
        self.system_prompt.editingFinished.connect(self._settings_edited)
        self.model.editingFinished.connect(self._settings_edited)
        self.temperature.valueChanged.connect(self._settings_edited)
        self.max_tokens.valueChanged.connect(self._settings_edited)
        return panel

    # what is shown -------------------------------------------------------------------

    @property
    def conversation(self) -> Conversation | None:
        return self._conv

    def set_conversation(self, conv: Conversation | None, messages: list[ChatMessage]) -> None:
        self._conv = conv
        self._messages = list(messages)
        self._first_shown = len(self._messages)
        self.title.setText(conv.title if conv else "")
        self.settings_button.setEnabled(conv is not None)
        if conv is not None:
            widgets = (self.system_prompt, self.temperature, self.max_tokens, self.model)
            for w in widgets:
                w.blockSignals(True)
            self.system_prompt.setText(conv.system_prompt)
            self.temperature.setValue(conv.temperature)
            self.max_tokens.setValue(conv.max_tokens)
            self.model.setText(conv.model)
            for w in widgets:
                w.blockSignals(False)
        self._render_all()
        self._update_buttons()

    def set_title(self, title: str) -> None:
        self.title.setText(title)

    def upsert(self, msg: ChatMessage) -> None:
        """Add or update a message of the shown conversation (others are ignored)."""
        if self._conv is None or msg.conversation_id != self._conv.id:
            return
        for i, old in enumerate(self._messages):
            if old.id == msg.id:
                self._messages[i] = msg
                if i == len(self._messages) - 1:
                    self._render_tail()
                else:
                    self._render_all()
                break
        else:
            self._append(msg)
        self._update_buttons()

    def busy(self) -> bool:
        return any(m.in_flight for m in self._messages)

    def transcript_text(self) -> str:
        return self.transcript.toPlainText()

    def _update_buttons(self) -> None:
        busy = self.busy()
        self.send_button.setEnabled(not busy)
        self.stop_button.setEnabled(busy)

    # rendering -----------------------------------------------------------------------

    def _message_html(self, msg: ChatMessage, offset: int) -> tuple[str, list[str]]:
        who = {"user": "You", "assistant": "Assistant"}.get(msg.role, msg.role.title())
        colour = "#2f5fa7" if msg.role == "user" else "#3a7d44"
        text = msg.content
        if msg.in_flight and msg.status == "running":
            text = f"{text} ▍" if text else "▍"  # the answer is still growing
        body = self._renderer.render(text, offset) if text else None
        parts = [f'<p style="margin-top:14px; margin-bottom:2px; color:{colour};"><b>{who}</b></p>']
        if body is not None:
            parts.append(body.html)
        if msg.in_flight:
            waiting = RETRYING if msg.retrying else _WAITING_WORDS.get(msg.status, "")
            if waiting:
                parts.append(f'<p style="color:#888;"><i>{waiting}</i></p>')
        if msg.error and msg.status in ("failed", "expired"):
            parts.append(f'<p style="color:#b00020;">{html.escape(msg.error)}</p>')
        meta = answer_meta(msg) if msg.role == "assistant" else ""
        if meta:
            parts.append(f'<p style="color:#888; font-size:small;">{html.escape(meta)}</p>')
        return "".join(parts), body.code_blocks if body else []

    def _render_all(self) -> None:
        """Lay out the recent messages from scratch (opening a chat, rare edits).

        Only the last RECENT messages are laid out at first: QTextDocument's setHtml costs
        about 2 ms per long message, and opening a chat must not freeze the window.
        """
        self._code_blocks = []
        self._first_shown = max(0, min(self._first_shown, len(self._messages) - RECENT))
        shown = self._messages[self._first_shown:]
        head = []
        if self._first_shown:
            head.append(
                '<p align="center" style="margin-bottom:8px;"><a href="more:">Show '
                f"{min(self._first_shown, RECENT)} earlier messages</a></p>"
            )
        for msg in shown[:-1]:
            text, blocks = self._message_html(msg, len(self._code_blocks))
            self._code_blocks.extend(blocks)
            head.append(text)
        if not self._messages:
            head.append(
                '<p style="color:#888; margin-top:40px;" align="center">'
                + "Type a prompt below and press Ctrl+Enter."
                + "</p>"
            )
        self.transcript.setHtml("".join(head))
        self._tail_pos = -1
        if self._messages:
            self._start_tail()

    def _start_tail(self) -> None:
        """The last message gets its own paragraph at the end, re-rendered as it grows."""
        cursor = QTextCursor(self.transcript.document())
        cursor.movePosition(QTextCursor.MoveOperation.End)
        if cursor.position() > 0:
            cursor.insertBlock()
        self._tail_pos = cursor.position()
        self._tail_blocks = len(self._code_blocks)
        self._render_tail()

    def _append(self, msg: ChatMessage) -> None:
        """A new last message: the old tail stays as laid out; only the new one is added."""
        was_empty = len(self._messages) == 0
        self._messages.append(msg)
        if was_empty or self._tail_pos < 0:
            self._render_all()
        else:
            self._start_tail()

    def _render_tail(self) -> None:
        msg = self._messages[-1]
        bar = self.transcript.verticalScrollBar()
        at_bottom = bar.value() >= bar.maximum() - 4
        text, blocks = self._message_html(msg, self._tail_blocks)
        self._code_blocks[self._tail_blocks:] = blocks
        cursor = QTextCursor(self.transcript.document())
        cursor.setPosition(self._tail_pos)
        cursor.movePosition(QTextCursor.MoveOperation.End, QTextCursor.MoveMode.KeepAnchor)
        cursor.beginEditBlock()
        cursor.removeSelectedText()
        cursor.insertHtml(text)
        cursor.endEditBlock()
        if at_bottom:
            bar.setValue(bar.maximum())

    # actions -------------------------------------------------------------------------

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if (
            watched is self.prompt
            and event.type() == QEvent.Type.KeyPress
            and isinstance(event, QKeyEvent)
            and event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter)
            and event.modifiers() & Qt.KeyboardModifier.ControlModifier
        ):
            self._send()
            return True
        return super().eventFilter(watched, event)

    def _send(self) -> None:
        text = self.prompt.toPlainText().strip()
        if not text or not self.send_button.isEnabled():
            return
        self.prompt.clear()
        self.send_requested.emit(text)

    def _link(self, url: QUrl) -> None:
        if url.scheme() == "more":
            self._first_shown = max(0, self._first_shown - RECENT)
            self._render_all()
            self.transcript.verticalScrollBar().setValue(0)
        elif url.scheme() == "copy":
            index = int(url.path() or url.toString().split(":", 1)[1])
            if 0 <= index < len(self._code_blocks):
                self.copied = self._code_blocks[index]
                QGuiApplication.clipboard().setText(self.copied)

    def _settings_edited(self) -> None:
        if self._conv is None:
            return
        self._conv.system_prompt = self.system_prompt.text()
        self._conv.temperature = round(self.temperature.value(), 2)
        self._conv.max_tokens = self.max_tokens.value()
        self._conv.model = self.model.text().strip()
        self.settings_changed.emit(self._conv)
