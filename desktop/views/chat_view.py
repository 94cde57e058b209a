"""The chat on screen: transcript with rendered Markdown, the prompt box, Send and Stop.

Only the answer that is growing is re-rendered on each update (its HTML replaces the tail
of the document), so a long transcript does not cost a full re-layout 4 times a second.

The transcript follows the conversation: opening a chat shows its newest messages, a new
prompt scrolls into view, and while the view is at the bottom it follows the growing
answer. Once the person scrolls up it stays put and offers "Jump to latest".

Under every message sit its actions: Copy (the message's raw text, Markdown source for an
answer) and, under a prompt, Edit: the prompt goes back into the box, and sending it
replaces that prompt and everything after it (the window does that; `editing_id` says which
prompt is being edited). Up in an empty box edits the last prompt; Esc stops editing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6 import QtCore  # its Qt namespace only once used: see desktop.qt.properties
from PySide6.QtCore import QEvent, QObject, Signal
from PySide6.QtGui import QFocusEvent, QGuiApplication, QHideEvent, QKeyEvent, QTextCursor
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

from backend.core.limits import MAX_TOKENS_LIMIT
from desktop.core.markdown import MarkdownRenderer
from desktop.core.models import ChatMessage, Conversation
from desktop.qt.first_paint import after_first_paint
from desktop.views import theme

if TYPE_CHECKING:
    from PySide6.QtCore import QUrl

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
EDIT_BUSY = "An answer is still running in this chat: stop it (Esc) or let it finish, then edit."
EDITING = "Editing a sent prompt: sending it replaces that prompt and every message after it."
# Lines the chat settings' system prompt shows before it scrolls.
SYSTEM_PROMPT_LINES = 3
_SEP = " &nbsp;·&nbsp; "


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


class LinesEdit(QPlainTextEdit):
    """A few lines of plain text that, like QLineEdit, say `editingFinished` when focus
    leaves them: the moment to save, rather than on every key."""

    editingFinished = Signal()

    def focusOutEvent(self, event: QFocusEvent) -> None:
        super().focusOutEvent(event)
        self.editingFinished.emit()


class ChatView(QWidget):
    """Shows one conversation; emits what the person asks for."""

    send_requested = Signal(str)  # the box keeps the text until the window calls prompt_sent()
    stop_requested = Signal()
    continue_requested = Signal()  # "Continue" under the last answer, cut at the token limit
    notify = Signal(str)  # a short word for the status bar: "Copied the answer.", a refusal
    # (conversation id, {"system_prompt", "temperature", "max_tokens", "model"}): only the
    # settings, never the whole conversation as loaded (that would write back a stale title)
    settings_changed = Signal(int, object)

    def __init__(self, renderer: MarkdownRenderer | None = None, parent: QWidget | None = None):
        super().__init__(parent)
        # A chat opens with its code uncoloured and is coloured right after the window's
        # first paint: Pygments' first block (~70 ms) would hold the window back.
        self._renderer = renderer or MarkdownRenderer(highlight=False)
        if not self._renderer.highlight:
            after_first_paint(self, self._colour_code)
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
        self._editing: int | None = None  # the id of the sent prompt being edited
        self._draft = ""  # what the box held before editing began, given back on cancel

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

        self.edit_bar = QWidget(self)
        self.edit_label = QLabel(EDITING, self.edit_bar)
        self.edit_label.setWordWrap(True)
        self.cancel_edit_button = QToolButton(self.edit_bar)
        self.cancel_edit_button.setText("Cancel editing")
        self.cancel_edit_button.setToolTip("Keep the chat as it is (Esc)")
        self.cancel_edit_button.clicked.connect(self.cancel_edit)
        bar_layout = QHBoxLayout(self.edit_bar)
        bar_layout.setContentsMargins(0, 0, 0, 0)
        bar_layout.addWidget(self.edit_label, 1)
        bar_layout.addWidget(self.cancel_edit_button)
        self.edit_bar.setVisible(False)

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
        layout.addWidget(self.edit_bar)
        layout.addLayout(entry)
        QWidget.setTabOrder(self.prompt, self.send_button)
        QWidget.setTabOrder(self.send_button, self.stop_button)
        self.set_send_key("enter")
        self.set_conversation(None, [])
        theme.on_change(self._render_again)

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
        # A few lines: system prompts are often paragraphs. Saved when the box loses focus,
        # not on every key (each save is an SQLite write).
        self.system_prompt = LinesEdit(panel)
        self.system_prompt.setPlaceholderText("e.g. You answer briefly.")
        self.system_prompt.setTabChangesFocus(True)
        frame = 2 * (self.system_prompt.frameWidth() + self.system_prompt.document().documentMargin())
        self.system_prompt.setFixedHeight(
            int(self.system_prompt.fontMetrics().lineSpacing() * SYSTEM_PROMPT_LINES + frame)
        )
        self.system_prompt.editingFinished.connect(self._save_system_prompt)
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
        self.model.editingFinished.connect(self._settings_edited)
        self.temperature.valueChanged.connect(self._settings_edited)
        self.max_tokens.valueChanged.connect(self._settings_edited)
        return panel

    # what is shown -------------------------------------------------------------------

    @property
    def conversation(self) -> Conversation | None:
        return self._conv

    def set_conversation(self, conv: Conversation | None, messages: list[ChatMessage]) -> None:
        self._save_system_prompt()  # an edit still in the box belongs to the chat shown until now
        if self._editing is not None and (
            conv is None or conv.id != (self._conv.id if self._conv else None)
            or all(m.id != self._editing for m in messages)
        ):
            self.cancel_edit()
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
            self.system_prompt.setPlainText(conv.system_prompt)
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
        """The window took the prompt: empty the box (until then it keeps what was typed).
        After an edited prompt the box gets back what it held before the edit began."""
        if self._editing is not None:
            self._end_edit()
            self.prompt.setPlainText(self._draft)
        else:
            self.prompt.clear()

    def editing_id(self) -> int | None:
        """The id of the sent prompt the box holds for editing; None for a new prompt."""
        return self._editing

    def edit_message(self, msg_id: int) -> bool:
        """Put sent prompt `msg_id` back into the box to edit and resend; refused (and
        said) while an answer of this chat is running."""
        msg = next((m for m in self._messages if m.id == msg_id and m.role == "user"), None)
        if msg is None:
            return False
        if self.busy():
            self.notify.emit(EDIT_BUSY)
            return False
        if self._editing is None:
            self._draft = self.prompt.toPlainText()
        self._editing = msg.id
        self.prompt.setPlainText(msg.content)
        self.prompt.moveCursor(QTextCursor.MoveOperation.End)
        self.edit_bar.setVisible(True)
        self.prompt.setFocus()
        return True

    def edit_last_prompt(self) -> bool:
        """Edit the newest prompt of the chat (Up in an empty box)."""
        last = next((m for m in reversed(self._messages) if m.role == "user"), None)
        return last is not None and self.edit_message(last.id)

    def cancel_edit(self) -> None:
        """Stop editing: the chat stays as it is and the box gets back what it held."""
        if self._editing is None:
            return
        self._end_edit()
        self.prompt.setPlainText(self._draft)
        self.prompt.moveCursor(QTextCursor.MoveOperation.End)

    def _end_edit(self) -> None:
        self._editing = None
        self.edit_bar.setVisible(False)

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
        import html  # with the first message: an empty chat's window paints without it

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
        links = self._actions(msg, last)
        if meta or links:
            more = (_SEP if meta and links else "") + _SEP.join(links)
            # The mark in bold: the one thing in the grey line a reader must not miss.
            words = html.escape(meta).replace(CUT_MARK, f"<b>{CUT_MARK}</b>", 1)
            parts.append(f'<p style="color:{c.muted}; font-size:small;">{words}{more}</p>')
        return "".join(parts), body.code_blocks if body else []

    def _colour_code(self) -> None:
        """After the first paint: colour the code blocks shown so far, and those to come."""
        self._renderer.highlight = True
        if self._code_blocks:
            self._render_again()

    def _render_again(self) -> None:
        """Lay the transcript out again where it was: in new colours (light ↔ dark), or with
        its code coloured."""
        bar = self.transcript.verticalScrollBar()
        where = bar.value()
        self._render_all()
        if not self._following:
            bar.setValue(where)

    @staticmethod
    def _actions(msg: ChatMessage, last: bool) -> list[str]:
        """The links under a message: Edit a prompt, Continue a cut answer, Copy either."""
        links = []
        if msg.role == "user":
            links.append(f'<a href="edit:{msg.id}">Edit</a>')
        # Only the chat's last answer can be continued: later turns already followed it.
        if msg.cut and last:
            links.append('<a href="continue:">Continue</a>')
        if msg.content and not msg.in_flight:
            links.append(f'<a href="copy-message:{msg.id}">Copy</a>')
        return links

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
            if show:  # a hand, as over a link (not set at start: see desktop.qt.properties)
                self.jump_button.setCursor(QtCore.Qt.CursorShape.PointingHandCursor)
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
        if watched is self.prompt and isinstance(event, QKeyEvent) and self._prompt_key(event):
            return True
        if (
            watched is self.prompt
            and event.type() == QEvent.Type.KeyPress
            and isinstance(event, QKeyEvent)
            and event.key() in (QtCore.Qt.Key.Key_Return, QtCore.Qt.Key.Key_Enter)
        ):
            mods = event.modifiers()
            ctrl = bool(mods & QtCore.Qt.KeyboardModifier.ControlModifier)
            plain = not mods & (QtCore.Qt.KeyboardModifier.ShiftModifier | QtCore.Qt.KeyboardModifier.ControlModifier
                                | QtCore.Qt.KeyboardModifier.AltModifier | QtCore.Qt.KeyboardModifier.MetaModifier)
            # Ctrl+Enter sends in either mode: nobody presses it for a new line.
            if ctrl or (plain and self.send_key == "enter"):
                self._send()
                return True
            if self.send_key == "enter" and mods & QtCore.Qt.KeyboardModifier.ShiftModifier:
                self.prompt.insertPlainText("\n")  # Shift+Enter: a plain newline, not a soft break
                return True
        return super().eventFilter(watched, event)

    def _prompt_key(self, event: QKeyEvent) -> bool:
        """Esc while editing cancels the edit; Up in an empty box edits the last prompt."""
        plain = event.modifiers() in (QtCore.Qt.KeyboardModifier.NoModifier, QtCore.Qt.KeyboardModifier.KeypadModifier)
        if event.key() == QtCore.Qt.Key.Key_Escape and plain and self._editing is not None:
            if event.type() == QEvent.Type.ShortcutOverride:
                event.accept()  # the window's Esc (Stop) must not take this key
                return True
            if event.type() == QEvent.Type.KeyPress:
                self.cancel_edit()
                return True
        if (event.type() == QEvent.Type.KeyPress and event.key() == QtCore.Qt.Key.Key_Up and plain
                and not self.prompt.toPlainText()):
            self.edit_last_prompt()
            return True
        return False

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
                self._copy(self._code_blocks[index], "Copied the code.")
        elif url.scheme() in ("copy-message", "edit"):
            msg_id = int(url.path() or url.toString().split(":", 1)[1])
            msg = next((m for m in self._messages if m.id == msg_id), None)
            if msg is None:
                return
            if url.scheme() == "edit":
                self.edit_message(msg.id)
            else:
                self._copy(msg.content, "Copied your prompt." if msg.role == "user" else "Copied the answer.")

    def _copy(self, text: str, said: str) -> None:
        self.copied = text
        QGuiApplication.clipboard().setText(text)
        self.notify.emit(said)

    def _save_system_prompt(self) -> None:
        """Write the system prompt's edit, if any (focus left the box, or the chat changes)."""
        if self._conv is not None and self.system_prompt.toPlainText() != self._conv.system_prompt:
            self._settings_edited()

    def hideEvent(self, event: QHideEvent) -> None:
        self._save_system_prompt()  # the window closes with the box still focused
        super().hideEvent(event)

    def _settings_edited(self) -> None:
        if self._conv is None:
            return
        values = {
            "system_prompt": self.system_prompt.toPlainText(),
            "temperature": round(self.temperature.value(), 2),
            "max_tokens": self.max_tokens.value(),
            "model": self.model.text().strip(),
        }
        for key, value in values.items():
            setattr(self._conv, key, value)
        self.settings_changed.emit(self._conv.id, values)
