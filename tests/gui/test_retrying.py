"""A prompt whose worker dies mid-answer says "retrying" and drops the frozen first try."""

from __future__ import annotations

import os
import signal

from desktop.views.chat_view import RETRYING
from tests.gui.conftest import save_screenshot

LONG = " ".join(f"word{i}" for i in range(300))  # ~9 s of echo at 30 ms a word


def _answer(window):  # type: ignore[no-untyped-def]
    msgs = [m for m in window.history.messages(window.chat.conversation.id) if m.role == "assistant"]
    return msgs[-1] if msgs else None


def test_a_retried_answer_says_retrying_and_starts_over(open_window, api, stack, qtbot) -> None:  # type: ignore[no-untyped-def]
    window = open_window(api).window
    window.new_conversation()
    window.send(LONG)
    # Well into the answer (1.5 s of echo): the retry's text, polled at most every 0.5 s
    # while nothing comes, is still shorter than this when the app first sees it.
    qtbot.waitUntil(lambda: _answer(window).status == "running" and len(_answer(window).content) > 400,
                    timeout=20000)
    frozen = len(_answer(window).content)
    shown: list[tuple[int, bool]] = []
    window.session.message_changed.connect(
        lambda m: m.role == "assistant" and shown.append((len(m.content), RETRYING in window.chat.transcript_text())))
    (worker_pid,) = stack.compute.pids
    os.kill(worker_pid, signal.SIGKILL)

    qtbot.waitUntil(lambda: RETRYING in window.chat.transcript_text(), timeout=15000)
    save_screenshot(window, "main_retrying.png")
    # The retry starts from empty; the app shows that, not the first try's text frozen.
    assert any(size < frozen and retrying for size, retrying in shown), shown
    qtbot.waitUntil(lambda: _answer(window).status == "done", timeout=30000)
    assert _answer(window).content == LONG
    assert RETRYING not in window.chat.transcript_text()
