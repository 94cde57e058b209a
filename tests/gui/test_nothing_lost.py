"""Nothing a person typed or named is lost: titles survive settings changes and restarts, a
prompt that cannot go out stays in the box with words that say what to do (or is held while
the local stack starts and then sent), and the window's size, splitter and open chat come
back after a restart, even after a crash."""

from __future__ import annotations

import json

from PySide6.QtCore import Qt

from desktop.app import App
from desktop.core.paths import AppPaths
from desktop.services.credentials import CredentialStore, MemoryKeyring
from desktop.services.local_profile import LocalProfile
from tests.gui.conftest import fast_local_stack, save_screenshot


def test_titles_survive_chat_settings_changes_and_a_restart(open_window, api, qtbot) -> None:  # type: ignore[no-untyped-def]
    first = open_window(api)
    window = first.window
    conv = window.new_conversation()
    window.send("plan my garden")
    qtbot.waitUntil(lambda: window.history.messages(conv.id)[-1].status == "done", timeout=20000)
    assert window.history.conversation(conv.id).title == "plan my garden"

    window.chat.settings_button.click()
    window.chat.temperature.setValue(0.2)  # the panel still holds the chat as it was opened
    stored = window.history.conversation(conv.id)
    assert stored.title == "plan my garden" and stored.temperature == 0.2

    window.rename_conversation(conv.id, "Garden")
    window.chat.max_tokens.setValue(99)
    qtbot.keyClicks(window.chat.system_prompt, "Be brief.")
    window.chat.system_prompt.editingFinished.emit()
    stored = window.history.conversation(conv.id)
    assert (stored.title, stored.max_tokens, stored.system_prompt) == ("Garden", 99, "Be brief.")
    first.close()

    second = open_window(api)
    assert second.window.chat.conversation.title == "Garden"
    assert second.window.conversations.items.item(0).text() == "Garden"
    assert second.window.chat.max_tokens.value() == 99


def test_a_prompt_that_cannot_go_out_stays_in_the_box(open_window, qtbot) -> None:  # type: ignore[no-untyped-def]
    window = open_window(None).window  # not connected
    window.new_conversation()
    prompt = window.chat.prompt
    qtbot.keyClicks(prompt, "are you there?")
    qtbot.keyClick(prompt, Qt.Key.Key_Return)
    assert prompt.toPlainText() == "are you there?"
    assert "Not connected yet" in window.wake.error_text() and "still in the box" in window.wake.error_text()
    assert window.history.messages(window.chat.conversation.id) == []

    window.set_signed_in(None, aws=True)  # an AWS profile, signed out
    qtbot.keyClick(prompt, Qt.Key.Key_Return)
    assert prompt.toPlainText() == "are you there?"
    assert "Sign in from Account → Sign in…" in window.wake.error_text()
    save_screenshot(window, "prompt_kept_signed_out.png")


def test_a_prompt_sent_while_the_local_stack_starts_goes_out_when_it_is_ready(qtbot, paths: AppPaths) -> None:  # type: ignore[no-untyped-def]
    app = App(paths, CredentialStore(MemoryKeyring()), LocalProfile(stack_factory=fast_local_stack))
    qtbot.addWidget(app.window)
    try:
        app.window.show()
        qtbot.waitExposed(app.window)
        app.start()
        assert app.api is None  # still starting
        assert "Starting the local stack" in app.window.wake.text()
        prompt = app.window.chat.prompt
        qtbot.keyClicks(prompt, "early bird")
        qtbot.keyClick(prompt, Qt.Key.Key_Return)
        assert app.window.wake.error_text() == ""
        conv = app.window.chat.conversation
        qtbot.waitUntil(lambda: app.history.messages(conv.id)[-1].status == "done", timeout=30000)
        assert app.history.messages(conv.id)[-1].content == "early bird"
        assert "Starting" not in app.window.wake.text()
    finally:
        app.shutdown()


def test_size_splitter_and_open_chat_survive_a_restart_and_a_crash(open_window, paths, qtbot) -> None:  # type: ignore[no-untyped-def]
    first = open_window(None)
    window = first.window
    older = window.history.create_conversation("Older")
    window.history.create_conversation("Newer")
    window._refresh_list()
    window.open_conversation(older.id)
    # A crash now: nothing more is written, yet the file already names the open chat.
    assert json.loads(paths.settings_file.read_text())["window"]["last_conversation"] == older.id

    window.resize(700, 520)  # within the offscreen screen's 800×800
    window.splitter.setSizes([300, 390])
    window.splitter.splitterMoved.emit(300, 1)  # what dragging the handle emits
    qtbot.waitUntil(lambda: json.loads(paths.settings_file.read_text())["window"]["splitter"] != "")
    first.close()

    second = open_window(None).window
    assert (second.width(), second.height()) == (700, 520)
    assert second.splitter.sizes()[0] == 300
    assert second.chat.conversation.id == older.id


def test_a_saved_size_larger_than_the_screen_is_fitted(open_window, qtbot) -> None:  # type: ignore[no-untyped-def]
    first = open_window(None)
    first.window.resize(1300, 1100)  # saved on a bigger screen, or at another scale
    first.window.save_geometry()
    first.close()
    window = open_window(None).window
    room = window.screen().availableGeometry()
    assert window.frameGeometry().width() <= room.width() and window.frameGeometry().height() <= room.height()
    assert room.contains(window.frameGeometry().topLeft())
