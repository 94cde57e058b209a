"""The keyboard works like every peer's: focus starts in the prompt box, Enter sends and
Shift+Enter makes a new line (swappable), Tab leaves the box, Esc stops the answer, and
shortcuts for new chat, search, regenerate, copy and delete, listed under Help."""

from __future__ import annotations

import json

from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QApplication, QMessageBox

from tests.gui.conftest import save_screenshot

LONG = " ".join(f"word{i}" for i in range(400))


def _last(window):  # type: ignore[no-untyped-def]
    return window.history.messages(window.chat.conversation.id)[-1]


def _focused(widget) -> bool:  # type: ignore[no-untyped-def]
    return QApplication.focusWidget() is widget


def test_focus_is_in_the_prompt_at_start_after_new_chat_and_after_switching(open_window, qtbot) -> None:  # type: ignore[no-untyped-def]
    first = open_window(None)
    first.window.history.create_conversation("Older")
    first.window.history.create_conversation("Newer")
    first.close()
    window = open_window(None).window
    window.activateWindow()
    qtbot.waitUntil(lambda: _focused(window.chat.prompt))

    window.conversations.items.setFocus()
    qtbot.keyClick(window, Qt.Key.Key_N, Qt.KeyboardModifier.ControlModifier)  # New chat
    qtbot.waitUntil(lambda: _focused(window.chat.prompt))
    assert window.chat.conversation.title == "New chat"

    items = window.conversations.items
    row = window.conversations.ids().index(window.history.conversations()[-1].id)
    rect = items.visualItemRect(items.item(row))
    qtbot.mouseClick(items.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    assert window.chat.conversation.title == "Older"
    qtbot.waitUntil(lambda: _focused(window.chat.prompt))

    # Arrow keys in the list move through chats and keep the focus there.
    items.setFocus()
    qtbot.keyClick(items, Qt.Key.Key_Up)
    assert _focused(items) and window.chat.conversation.title != "Older"


def test_enter_sends_shift_enter_new_line_and_the_option_swaps_them(open_window, api, paths, qtbot) -> None:  # type: ignore[no-untyped-def]
    window = open_window(api).window
    window.new_conversation()
    prompt = window.chat.prompt
    qtbot.keyClicks(prompt, "first line")
    qtbot.keyClick(prompt, Qt.Key.Key_Return, Qt.KeyboardModifier.ShiftModifier)
    qtbot.keyClicks(prompt, "second line")
    qtbot.keyClick(prompt, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: _last(window).status == "done", timeout=20000)
    assert _last(window).content == "first line\nsecond line"
    assert prompt.toPlainText() == ""

    window.enter_sends_action.trigger()  # Chat → Enter sends: off, so Ctrl+Enter sends
    assert json.loads(paths.settings_file.read_text())["chat"]["send_key"] == "ctrl+enter"
    qtbot.keyClicks(prompt, "one")
    qtbot.keyClick(prompt, Qt.Key.Key_Return)
    qtbot.keyClicks(prompt, "two")
    assert prompt.toPlainText() == "one\ntwo" and len(window.history.messages(window.chat.conversation.id)) == 2
    assert "Ctrl+Enter sends" in prompt.placeholderText()
    qtbot.keyClick(prompt, Qt.Key.Key_Return, Qt.KeyboardModifier.ControlModifier)
    qtbot.waitUntil(lambda: _last(window).status == "done" and _last(window).content == "one\ntwo", timeout=20000)


def test_tab_leaves_the_box_to_send_and_esc_stops_the_answer(open_window, api, qtbot) -> None:  # type: ignore[no-untyped-def]
    window = open_window(api).window
    window.new_conversation()
    window.activateWindow()
    prompt = window.chat.prompt
    prompt.setFocus()
    qtbot.keyClicks(prompt, LONG)
    qtbot.keyClick(prompt, Qt.Key.Key_Tab)
    assert "\t" not in prompt.toPlainText()
    qtbot.waitUntil(lambda: _focused(window.chat.send_button))
    qtbot.keyClick(window.chat.send_button, Qt.Key.Key_Space)  # Send by keyboard
    qtbot.waitUntil(lambda: _last(window).status == "running" and len(_last(window).content) > 20, timeout=20000)
    qtbot.keyClick(prompt, Qt.Key.Key_Escape)
    qtbot.waitUntil(lambda: _last(window).status == "cancelled", timeout=10000)
    assert len(_last(window).content) < len(LONG)


def test_search_copy_regenerate_and_delete_shortcuts(open_window, api, qtbot) -> None:  # type: ignore[no-untyped-def]
    window = open_window(api).window
    conv = window.new_conversation()
    window.send("echo me")
    qtbot.waitUntil(lambda: _last(window).status == "done", timeout=20000)
    first_request = _last(window).request_id

    qtbot.keyClick(window.chat.prompt, Qt.Key.Key_K, Qt.KeyboardModifier.ControlModifier)
    assert _focused(window.conversations.search)

    QGuiApplication.clipboard().clear()
    qtbot.keyClick(window.chat.prompt, Qt.Key.Key_C,
                   Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier)
    assert QGuiApplication.clipboard().text() == "echo me"
    assert "Copied" in window.statusBar().currentMessage()

    qtbot.keyClick(window.chat.prompt, Qt.Key.Key_R,
                   Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier)
    qtbot.waitUntil(lambda: _last(window).request_id not in (None, first_request)
                    and _last(window).status == "done", timeout=20000)
    msgs = window.history.messages(conv.id)
    assert [m.content for m in msgs] == ["echo me", "echo me"], "regenerate replaces the answer"

    window.conversations.items.setFocus()

    def answer_yes() -> None:
        box = QApplication.activeModalWidget()
        assert isinstance(box, QMessageBox), box
        box.button(QMessageBox.StandardButton.Yes).click()

    QTimer.singleShot(0, answer_yes)
    qtbot.keyClick(window.conversations.items, Qt.Key.Key_Delete)
    assert window.history.conversation(conv.id) is None


def test_help_lists_the_shortcuts(open_window, qtbot) -> None:  # type: ignore[no-untyped-def]
    window = open_window(None).window
    action = next(a for a in window.help_menu.actions() if "shortcuts" in a.text().lower())
    action.trigger()
    box = next(w for w in QApplication.topLevelWidgets() if isinstance(w, QMessageBox) and w.isVisible())
    qtbot.waitExposed(box)
    for key in ("Esc", "Ctrl+N", "Ctrl+K", "Ctrl+Shift+R", "Ctrl+Shift+C", "Delete", "Shift+Enter"):
        assert key in box.text()
    save_screenshot(box, "help_shortcuts.png")
    box.close()
