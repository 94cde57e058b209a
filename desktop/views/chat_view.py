"""The chat on screen: transcript with rendered Markdown, the prompt box, Send and Stop.

Only the answer that is growing is re-rendered on each update (its HTML replaces the tail
of the document), so a long transcript does not cost a full re-layout 4 times a second.

The transcript follows the conversation: opening a chat shows its newest messages, a new
prompt scrolls into view, and while the view is at the bottom it follows the growing
answer. Once the person scrolls up it stays put and offers "Jump to latest".
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

from backend.core.prompts import MAX_TOKENS_LIMIT
from desktop.core.markdown import MarkdownRenderer
from desktop.core.models import ChatMessage, Conversation
from desktop.views import theme

# How many messages a chat shows when opened; older ones come with "Show earlier".
RECENT = 16
# Within this many pixels of the end counts as "at the bottom" (a wheel notch is ~20 px).
BOTTOM_SLACK_PX = 4
SEND_KEYS = ("enter", "ctrl+enter")

_WAITING_WORDS = {
    "sending": "Sending…",
    "queued": "Queued…",
    "waking": "Waiting for the GPU to wake…",
    "running": "",
}
RETRYING = "Retrying: the worker stopped, so the answer is starting over…"


CUT_MARK = "cut at the token limit"


def answer_meta(msg: ChatMessage) -> str:
    """'42 tokens · first token 0.31 s · total 1.20 s · ≈ $0.0001' (what is known); an
    answer cut at max_tokens starts 'cut at the token limit — 512 tokens'."""
    parts = []
    if msg.cut:
        tokens = f" — {msg.completion_tokens} tokens" if msg.completion_tokens is not None else ""
        parts.append(CUT_MARK + tokens)
    elif msg.completion_tokens is not None:
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

    send_requested = Signal(str)  # the box keeps the text until the window calls prompt_sent()
    stop_requested = Signal()
    continue_requested = Signal()  # "Continue" under the last answer, cut at the token limit
    # (conversation id, {"system_prompt", "temperature", "max_tokens", "model"}): only the
    # settings, never the whole conversation as loaded (that would write back a stale title)
    settings_changed = Signal(int, object)

    def __init__(self, renderer: MarkdownRenderer | None = None, parent: QWidget | None = None):
        super().__init__(parent)
        self._renderer = renderer or MarkdownRenderer()
        self._conv: Conversation | None = None
        self._messages: list[ChatMessage] = []
        self._code_blocks: list[str] = []
        self._tail_pos = -1
        self._tail_blocks = 0
        self._first_shown = 0
        self._following = True  # the view sticks to the end as it grows
        self._rendering = False  # our own re-layouts are not the person scrolling
        self.send_key = "enter"
        self.copied = ""

        self.transcript = QTextBrowser(self)
        self.transcript.setOpenLinks(False)
        self.transcript.anchorClicked.connect(self._link)
        self.transcript.document().setDocumentMargin(12)
        bar = self.transcript.verticalScrollBar()
        # rangeChanged also comes from Qt's deferred layout, after our calls returned.
        bar.rangeChanged.connect(self._range_changed)
        bar.valueChanged.connect(self._scrolled)
        self.jump_button = QToolButton(self.transcript)
        self.jump_button.setText("↓ Jump to latest")
        self.jump_button.setToolTip("Scroll to the newest message (End)")
        self.jump_button.setCursor(Qt.CursorShape.PointingHandCursor)
        self.jump_button.clicked.connect(self.jump_to_latest)
        self.jump_button.setVisible(False)
        self.transcript.installEventFilter(self)

        self.settings_button = QToolButton(self)
        self.settings_button.setText("Chat settings")
        self.settings_button.setCheckable(True)
        self.settings_panel = self._build_settings()
        self.settings_panel.setVisible(False)
        self.settings_button.toggled.connect(self.settings_panel.setVisible)

        self.prompt = QPlainTextEdit(self)
        self.prompt.setFixedHeight(84)
        self.prompt.setTabChangesFocus(True)  # Tab leaves the box, as in every form
        self.send_button = QPushButton("Send", self)
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
        QWidget.setTabOrder(self.prompt, self.send_button)
        QWidget.setTabOrder(self.send_button, self.stop_button)
        self.set_send_key("enter")
        self.set_conversation(None, [])
        theme.on_change(self._palette_changed)

    def set_send_key(self, key: str) -> None:
        """"enter": Enter sends, Shift+Enter makes a new line; "ctrl+enter": the other way."""
        self.send_key = key if key in SEND_KEYS else "enter"
        if self.send_key == "enter":
            self.prompt.setPlaceholderText("Ask anything — Enter sends, Shift+Enter makes a new line")
        else:
            self.prompt.setPlaceholderText("Ask anything — Ctrl+Enter sends, Enter makes a new line")
        if not self._messages:
            self._render_all()

    def _send_hint(self) -> str:
        return "Enter" if self.send_key == "enter" else "Ctrl+Enter"

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
        self.max_tokens.setRange(1, MAX_TOKENS_LIMIT)
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
        self._following = True  # an opened chat shows its newest messages
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

    def set_context_tokens(self, context_tokens: int | None) -> None:
        """The loaded model's context, where the server knows it, bounds "Max tokens" (the
        server caps each answer to what the conversation leaves; this shows the ceiling).
        The chat's own setting is not rewritten: another model may take it whole."""
        ceiling = min(MAX_TOKENS_LIMIT, context_tokens) if context_tokens else MAX_TOKENS_LIMIT
        if ceiling != self.max_tokens.maximum():
            self.max_tokens.blockSignals(True)
            self.max_tokens.setMaximum(ceiling)
            if self._conv is not None:
                self.max_tokens.setValue(self._conv.max_tokens)  # shown clamped to the ceiling
            self.max_tokens.blockSignals(False)

    def set_title(self, title: str) -> None:
        self.title.setText(title)
        if self._conv is not None:
            self._conv.title = title

    def prompt_sent(self) -> None:
        """The window took the prompt: empty the box (until then it keeps what was typed)."""
        self.prompt.clear()

    def last_answer(self) -> ChatMessage | None:
        """The newest assistant message with text, if any."""
        return next((m for m in reversed(self._messages) if m.role == "assistant" and m.content), None)

    def at_bottom(self) -> bool:
        bar = self.transcript.verticalScrollBar()
        return bar.value() >= bar.maximum() - BOTTOM_SLACK_PX

    def following(self) -> bool:
        """Whether the view sticks to the end of the conversation as it grows."""
        return self._following

    def jump_to_latest(self) -> None:
        """Scroll to the end and follow the conversation again."""
        self._following = True
        bar = self.transcript.verticalScrollBar()
        bar.setValue(bar.maximum())
        self._update_jump()

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
            if msg.role == "user":
                self._following = True  # the person's own new prompt always comes into view
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

    def _message_html(self, msg: ChatMessage, offset: int, last: bool = True) -> tuple[str, list[str]]:
        who = {"user": "You", "assistant": "Assistant"}.get(msg.role, msg.role.title())
        c = theme.colours()
        self._renderer.code_style = c.code()
        colour = c.user if msg.role == "user" else c.assistant
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
                parts.append(f'<p style="color:{c.muted};"><i>{waiting}</i></p>')
        if msg.error and msg.status in ("failed", "expired"):
            parts.append(f'<p style="color:{c.error};">{html.escape(msg.error)}</p>')
        meta = answer_meta(msg) if msg.role == "assistant" else ""
        if meta:
            # Only the chat's last answer can be continued: later turns already followed it.
            more = ' &nbsp;·&nbsp; <a href="continue:">Continue</a>' if msg.cut and last else ""
            # The mark in bold: the one thing in the grey line a reader must not miss.
            words = html.escape(meta).replace(CUT_MARK, f"<b>{CUT_MARK}</b>", 1)
            parts.append(f'<p style="color:{c.muted}; font-size:small;">{words}{more}</p>')
        return "".join(parts), body.code_blocks if body else []

    def _palette_changed(self) -> None:
        """Light ↔ dark: lay the transcript out again in the new colours, where it was."""
        bar = self.transcript.verticalScrollBar()
        where = bar.value()
        self._render_all()
        if not self._following:
            bar.setValue(where)

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
            text, blocks = self._message_html(msg, len(self._code_blocks), last=False)
            self._code_blocks.extend(blocks)
            head.append(text)
        if not self._messages:
            head.append(
                f'<p style="color:{theme.colours().muted}; margin-top:40px;" align="center">'
                + f"Type a prompt below and press {self._send_hint()}."
                + "</p>"
            )
        self._rendering = True
        try:
            self.transcript.setHtml("".join(head))
            self._tail_pos = -1
            if self._messages:
                self._start_tail()
            if self._following:
                # QTextEdit scrolls to its text cursor when first shown: keep that at the end.
                end = self.transcript.textCursor()
                end.movePosition(QTextCursor.MoveOperation.End)
                self.transcript.setTextCursor(end)
        finally:
            self._rendering = False
        self._stick()

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
        # A cut answer that was last offered "Continue"; no longer last, it must drop it.
        offered = not was_empty and self._messages[-1].cut
        self._messages.append(msg)
        if was_empty or self._tail_pos < 0 or offered:
            self._render_all()
        else:
            self._start_tail()

    def _render_tail(self) -> None:
        msg = self._messages[-1]
        text, blocks = self._message_html(msg, self._tail_blocks)
        self._code_blocks[self._tail_blocks:] = blocks
        cursor = QTextCursor(self.transcript.document())
        cursor.setPosition(self._tail_pos)
        cursor.movePosition(QTextCursor.MoveOperation.End, QTextCursor.MoveMode.KeepAnchor)
        was = self._rendering
        self._rendering = True
        try:
            cursor.beginEditBlock()
            cursor.removeSelectedText()
            cursor.insertHtml(text)
            cursor.endEditBlock()
        finally:
            self._rendering = was
        self._stick()

    # following -----------------------------------------------------------------------

    def _stick(self) -> None:
        """Keep the end in view while following; say whether there is more below."""
        if self._following:
            bar = self.transcript.verticalScrollBar()
            bar.setValue(bar.maximum())
        self._update_jump()

    def _range_changed(self, _low: int, _high: int) -> None:
        self._stick()

    def _scrolled(self, _value: int) -> None:
        if not self._rendering:
            # The person (wheel, bar, keys) decides: at the end follows, anywhere else stays.
            self._following = self.at_bottom()
        self._update_jump()

    def _update_jump(self) -> None:
        show = not self._following and not self.at_bottom()
        if show != self.jump_button.isVisible():
            self.jump_button.setVisible(show)
        if show:
            self._place_jump()

    def _place_jump(self) -> None:
        self.jump_button.adjustSize()
        view = self.transcript.viewport().geometry()
        size = self.jump_button.sizeHint()
        self.jump_button.move(view.right() - size.width() - 12, view.bottom() - size.height() - 10)
        self.jump_button.raise_()

    # actions -------------------------------------------------------------------------

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if watched is self.transcript and event.type() == QEvent.Type.Resize:
            self._update_jump()
        if (
            watched is self.prompt
            and event.type() == QEvent.Type.KeyPress
            and isinstance(event, QKeyEvent)
            and event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter)
        ):
            mods = event.modifiers()
            ctrl = bool(mods & Qt.KeyboardModifier.ControlModifier)
            plain = not mods & (Qt.KeyboardModifier.ShiftModifier | Qt.KeyboardModifier.ControlModifier
                                | Qt.KeyboardModifier.AltModifier | Qt.KeyboardModifier.MetaModifier)
            # Ctrl+Enter sends in either mode: nobody presses it for a new line.
            if ctrl or (plain and self.send_key == "enter"):
                self._send()
                return True
            if self.send_key == "enter" and mods & Qt.KeyboardModifier.ShiftModifier:
                self.prompt.insertPlainText("\n")  # Shift+Enter: a plain newline, not a soft break
                return True
        return super().eventFilter(watched, event)

    def _send(self) -> None:
        text = self.prompt.toPlainText().strip()
        if not text or not self.send_button.isEnabled():
            return
        self.send_requested.emit(text)

    def _link(self, url: QUrl) -> None:
        if url.scheme() == "more":
            self._first_shown = max(0, self._first_shown - RECENT)
            self._following = False  # the person is reading back: stay at the top
            self._render_all()
            self.transcript.verticalScrollBar().setValue(0)
        elif url.scheme() == "continue":
            if self._messages and self._messages[-1].cut and not self.busy():
                self.continue_requested.emit()
        elif url.scheme() == "copy":
            index = int(url.path() or url.toString().split(":", 1)[1])
            if 0 <= index < len(self._code_blocks):
                self.copied = self._code_blocks[index]
                QGuiApplication.clipboard().setText(self.copied)

    def _settings_edited(self) -> None:
        if self._conv is None:
            return
        values = {
            "system_prompt": self.system_prompt.text(),
            "temperature": round(self.temperature.value(), 2),
            "max_tokens": self.max_tokens.value(),
            "model": self.model.text().strip(),
        }
        for key, value in values.items():
            setattr(self._conv, key, value)
        self.settings_changed.emit(self._conv.id, values)
