"""The window's own furniture: the notice can be dismissed, and the chat list can be
collapsed and shown again (View → Chat list, Ctrl+B), the choice kept across a restart."""

from __future__ import annotations

import json
from pathlib import Path

from PySide6.QtCore import QPoint, QRect, Qt

from desktop.core.paths import AppPaths
from tests.gui.conftest import save_screenshot


def test_the_notice_closes_with_its_button_and_a_new_one_shows_again(open_window, qtbot) -> None:  # type: ignore[no-untyped-def]
    window = open_window().window
    window.show_notice("The settings file could not be read; defaults are in use.")
    qtbot.waitUntil(window.notice.isVisible)
    close = window.notice_close
    # The button is on the notice, not somewhere off its edge.
    assert close.isVisible() and window.notice_box.rect().contains(close.geometry())
    # ... and the words wrap short of it (they ran under it in a real X window).
    assert not window.notice.geometry().intersects(close.geometry())
    qtbot.mouseClick(close, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not window.notice.isVisible())
    window.show_notice("Echo engine: your messages come back as answers.")
    qtbot.waitUntil(window.notice.isVisible)
    assert "Echo engine" in window.notice.text()


def test_ctrl_b_collapses_the_chat_list_and_the_choice_survives_a_restart(
    open_window, paths: AppPaths, qtbot, tmp_path: Path  # type: ignore[no-untyped-def]
) -> None:
    first = open_window()
    window = first.window
    window.history.create_conversation("Kept")
    window._refresh_list()
    window.activateWindow()
    qtbot.waitUntil(window.isActiveWindow)
    window.conversations.items.setFocus()
    assert window.sidebar_visible() and window.sidebar_action.isChecked()
    assert window.sidebar_action.shortcut().toString() == "Ctrl+B"
    assert "View" in [a.text().replace("&", "") for a in window.menuBar().actions()]

    qtbot.keyClick(window.conversations.items, Qt.Key.Key_B, Qt.KeyboardModifier.ControlModifier)
    qtbot.waitUntil(lambda: window.conversations.width() == 0)
    assert not window.sidebar_action.isChecked()
    assert window.chat.prompt.hasFocus()  # not left in a list no one sees
    save_screenshot(window, "chat_list_hidden.png")
    qtbot.waitUntil(lambda: json.loads(paths.settings_file.read_text())["window"]["splitter"] != "")
    first.close()

    second = open_window().window
    assert not second.sidebar_visible() and not second.sidebar_action.isChecked()
    second.sidebar_action.trigger()  # View → Chat list
    qtbot.waitUntil(lambda: second.conversations.width() > 100)
    assert second.sidebar_action.isChecked()


def test_searching_shows_a_collapsed_chat_list(open_window, qtbot) -> None:  # type: ignore[no-untyped-def]
    window = open_window().window
    window.set_sidebar_visible(False)
    assert window.conversations.width() == 0
    window.search_action.trigger()  # Ctrl+K: the search box is in the list
    qtbot.waitUntil(lambda: window.conversations.width() > 0 and window.conversations.search.hasFocus())
    assert window.sidebar_action.isChecked()


def test_dragging_the_handle_to_the_edge_is_the_same_collapse(open_window, qtbot) -> None:  # type: ignore[no-untyped-def]
    window = open_window().window
    for x in (200, 120, 60, 0):  # dragging the handle to the left edge, through narrow widths
        window.splitter.moveSplitter(x, 1)
    qtbot.waitUntil(lambda: not window.sidebar_action.isChecked())
    window.sidebar_action.trigger()
    qtbot.waitUntil(lambda: window.conversations.width() > 100)
    assert QRect(QPoint(0, 0), window.size()).contains(window.chat.send_button.mapTo(window, QPoint(0, 0)))
