"""An answer cut at the token limit says so, and Continue asks for the rest.

Against the real local stack: its echo engine honours max_tokens and ends such an answer
with finish_reason "length", as llama.cpp, vLLM and OpenAI do.
"""

from __future__ import annotations

from PySide6.QtCore import QPoint, Qt
from PySide6.QtGui import QPalette, QTextCursor
from PySide6.QtWidgets import QApplication, QTextBrowser

from desktop.qt.chat_session import CONTINUE_PROMPT
from desktop.views import theme
from tests.gui.conftest import links_to, save_screenshot

PROMPT = "one two three four five six seven"
CUT = "cut at the token limit — 3 tokens"


def _assistant(window):  # type: ignore[no-untyped-def]
    return [m for m in window.history.messages(window.chat.conversation.id) if m.role == "assistant"]


def _click_continue(qtbot, browser: QTextBrowser) -> None:  # type: ignore[no-untyped-def]
    """Click the link with the mouse, where it is drawn, as a person would."""
    [position] = links_to(browser, "continue:")
    browser.verticalScrollBar().setValue(browser.verticalScrollBar().maximum())
    cursor = QTextCursor(browser.document())
    cursor.setPosition(position + 1)
    rect = browser.cursorRect(cursor)
    at = QPoint(rect.left() - 2, rect.center().y())  # inside the link's first letters
    with qtbot.waitSignal(browser.anchorClicked, timeout=5000):
        qtbot.mouseClick(browser.viewport(), Qt.MouseButton.LeftButton, pos=at)


def _cut_answer(open_window, api, qtbot):  # type: ignore[no-untyped-def]
    """A window whose open chat has max_tokens 3 (set in its settings panel) and one answer
    cut at that limit."""
    opened = open_window(api)
    window = opened.window
    window.new_conversation()
    window.chat.max_tokens.setValue(3)  # the panel writes the chat's setting
    assert window.history.conversation(window.chat.conversation.id).max_tokens == 3
    assert window.send(PROMPT)
    qtbot.waitUntil(lambda: _assistant(window)[-1].status == "done", timeout=20000)
    return opened


def test_a_cut_answer_is_marked_and_continue_sends_the_conversation(open_window, api, qtbot,  # type: ignore[no-untyped-def]
                                                                    sent_prompts) -> None:
    sent = sent_prompts
    window = _cut_answer(open_window, api, qtbot).window
    [answer] = _assistant(window)
    assert (answer.content, answer.finish_reason, answer.completion_tokens) == ("one two three", "length", 3)
    text = window.chat.transcript_text()
    assert CUT in text and "Continue" in text
    assert "· 3 tokens" not in text  # the plain count is replaced by the mark, not repeated
    save_screenshot(window, "cut_answer.png")

    _click_continue(qtbot, window.chat.transcript)
    qtbot.waitUntil(lambda: len(_assistant(window)) == 2 and _assistant(window)[-1].status == "done",
                    timeout=20000)
    assert sent[-1] == [
        {"role": "user", "content": PROMPT},
        {"role": "assistant", "content": "one two three"},  # the cut answer, as the model's turn
        {"role": "user", "content": CONTINUE_PROMPT},
    ]
    follow_up = _assistant(window)[-1]
    assert follow_up.request_id != answer.request_id
    text = window.chat.transcript_text()
    assert text.index("one two three") < text.index(CONTINUE_PROMPT) < text.rindex(follow_up.content)
    # The echo engine cuts the follow-up too: only the newest answer offers Continue.
    assert follow_up.cut and len(links_to(window.chat.transcript, "continue:")) == 1
    save_screenshot(window, "cut_answer_continued.png")


def test_a_whole_answer_is_not_marked(open_window, api, qtbot) -> None:  # type: ignore[no-untyped-def]
    window = open_window(api).window
    window.new_conversation()
    window.chat.max_tokens.setValue(64)
    assert window.send("short and whole")
    qtbot.waitUntil(lambda: _assistant(window)[-1].status == "done", timeout=20000)
    [answer] = _assistant(window)
    assert answer.finish_reason == "stop" and not answer.cut
    text = window.chat.transcript_text()
    assert "3 tokens" in text
    assert "cut at the token limit" not in text and "Continue" not in text
    assert links_to(window.chat.transcript, "continue:") == []
    window.continue_answer()  # the menu path refuses too: nothing to continue
    assert len(window.history.messages(window.chat.conversation.id)) == 2


def test_the_mark_survives_a_restart_and_continue_still_works(open_window, api, qtbot) -> None:  # type: ignore[no-untyped-def]
    first = _cut_answer(open_window, api, qtbot)
    conv_id = first.window.chat.conversation.id
    first.close()

    window = open_window(api).window  # the app started again on the same data dir
    assert window.chat.conversation.id == conv_id
    [answer] = _assistant(window)
    assert answer.finish_reason == "length"
    assert CUT in window.chat.transcript_text()
    _click_continue(qtbot, window.chat.transcript)
    qtbot.waitUntil(lambda: len(_assistant(window)) == 2 and _assistant(window)[-1].status == "done",
                    timeout=20000)
    assert window.history.messages(conv_id)[2].content == CONTINUE_PROMPT


def test_dark_palette_screenshot(open_window, api, qtbot) -> None:  # type: ignore[no-untyped-def]
    app = QApplication.instance()
    assert isinstance(app, QApplication)
    theme.apply(app, "dark")  # the app's own Dark theme
    try:
        window = _cut_answer(open_window, api, qtbot).window
        assert window.chat.transcript.palette().color(QPalette.ColorRole.Base) == theme.dark_palette().color(
            QPalette.ColorRole.Base)
        assert CUT in window.chat.transcript_text()
        save_screenshot(window, "cut_answer_dark.png")
    finally:
        theme.apply(app, "system")
