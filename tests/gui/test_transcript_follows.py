"""The transcript follows the conversation: an opened chat shows its newest messages, a new
prompt and its growing answer stay in view while the view is at the bottom, and a person
who scrolled up stays where they are, with "Jump to latest" to come back."""

from __future__ import annotations

from PySide6.QtCore import QPoint, Qt

from desktop.core.history import HistoryStore
from desktop.core.paths import AppPaths
from tests.gui.conftest import save_screenshot

LONG = " ".join(f"word{i}" for i in range(400))  # ~12 s of echo at 30 ms a word


def _long_chat(paths: AppPaths, pairs: int = 20) -> int:
    """A chat of `pairs` prompts and multi-paragraph answers, far taller than the window."""
    store = HistoryStore(paths.history_db)
    conv = store.create_conversation("Long chat")
    for i in range(pairs):
        store.add_message(conv.id, "user", f"prompt {i}")
        store.add_message(conv.id, "assistant", "\n\n".join(f"answer {i} line {j}" for j in range(6)))
    store.close()
    return conv.id


def _visible(chat) -> str:  # type: ignore[no-untyped-def]
    """The text of the blocks the viewport shows now (what a person can read)."""
    view = chat.transcript.viewport()
    seen = []
    for y in range(0, view.height(), 8):
        block = chat.transcript.cursorForPosition(QPoint(30, y)).block()
        if not seen or seen[-1] != block.text():
            seen.append(block.text())
    return "\n".join(seen)


def _at_end(chat) -> bool:  # type: ignore[no-untyped-def]
    bar = chat.transcript.verticalScrollBar()
    return bar.maximum() > 0 and bar.value() >= bar.maximum() - 4


def test_opening_a_long_chat_and_a_restart_show_the_newest_messages(open_window, paths, qtbot) -> None:  # type: ignore[no-untyped-def]
    _long_chat(paths)
    first = open_window()
    chat = first.window.chat
    qtbot.waitUntil(lambda: _at_end(chat))
    assert "answer 19 line 5" in _visible(chat)
    assert "prompt 12" not in _visible(chat)  # the oldest of the shown page is far above
    assert not chat.jump_button.isVisible()
    save_screenshot(first.window, "transcript_opened_at_newest.png")
    first.close()

    second = open_window()  # a restart on the same data
    chat = second.window.chat
    qtbot.waitUntil(lambda: _at_end(chat))
    assert "answer 19 line 5" in _visible(chat)


def test_new_prompt_and_growing_answer_are_followed_until_the_person_scrolls_up(
    open_window, api, paths, qtbot,
) -> None:  # type: ignore[no-untyped-def]
    conv_id = _long_chat(paths)
    window = open_window(api).window
    chat = window.chat
    bar = chat.transcript.verticalScrollBar()
    qtbot.waitUntil(lambda: bar.maximum() > 0)
    bar.setValue(0)  # the person reads the start of the chat, then sends a prompt
    assert chat.jump_button.isVisible()
    window.send(LONG)
    # The prompt brings the view to the end, which follows the answer as it grows.
    qtbot.waitUntil(lambda: chat.at_bottom() and "word40" in _visible(chat), timeout=20000)
    answer = window.history.messages(conv_id)[-1]
    assert answer.role == "assistant" and answer.in_flight
    assert not chat.jump_button.isVisible()

    bar.setValue(bar.maximum() // 2)  # the person scrolls up mid-answer
    held = bar.value()
    grown = len(window.history.message(answer.id).content)
    qtbot.waitUntil(lambda: len(window.history.message(answer.id).content) > grown + 200, timeout=20000)
    assert bar.value() == held, "the view must stay where the person put it"
    assert chat.jump_button.isVisible() and not chat.following()
    save_screenshot(window, "transcript_jump_to_latest.png")

    qtbot.mouseClick(chat.jump_button, Qt.MouseButton.LeftButton)
    assert chat.at_bottom() and chat.following() and not chat.jump_button.isVisible()
    qtbot.waitUntil(lambda: window.history.message(answer.id).status == "done", timeout=30000)
    qtbot.waitUntil(lambda: chat.at_bottom() and "word399" in _visible(chat))
