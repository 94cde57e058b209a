"""Working with answers: edit and resend a prompt, copy any message, bordered tables,
plain auto titles, a multi-line system prompt, no pile of empty chats, a search that says
when nothing matches, and an export that lands in Documents under a name every OS takes.

Against the real local stack (its echo engine answers with the prompt's own text).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import QPoint, Qt, QUrl
from PySide6.QtGui import QGuiApplication, QTextCursor, QTextTable
from PySide6.QtWidgets import QApplication, QFileDialog, QPlainTextEdit, QTextBrowser

from desktop.core.history import DEFAULT_TITLE
from desktop.views.chat_view import EDIT_BUSY, EDITING
from tests.gui.conftest import links_to, save_screenshot

LONG = " ".join(f"word{i}" for i in range(400))  # ~12 s of echo at 30 ms a word
TABLE = "Prices:\n\n| fruit | price |\n|---|--:|\n| apple | 1.20 |\n| pear | 0.90 |\n"


def _msgs(window) -> list[Any]:  # type: ignore[no-untyped-def]
    return window.history.messages(window.chat.conversation.id)


def _done(window) -> bool:  # type: ignore[no-untyped-def]
    msgs = _msgs(window)
    return bool(msgs) and msgs[-1].status == "done"


def _ask(window, qtbot, text: str) -> None:  # type: ignore[no-untyped-def]
    assert window.send(text)
    qtbot.waitUntil(lambda: _done(window), timeout=20000)


def _click(qtbot, browser: QTextBrowser, href: str) -> None:  # type: ignore[no-untyped-def]
    """Click the link to `href` with the mouse, where it is drawn, as a person would."""
    [position] = links_to(browser, href)
    cursor = QTextCursor(browser.document())
    cursor.setPosition(position + 1)
    browser.setTextCursor(cursor)
    browser.ensureCursorVisible()
    rect = browser.cursorRect(cursor)
    at = QPoint(rect.left() - 2, rect.center().y())  # inside the link's first letters
    with qtbot.waitSignal(browser.anchorClicked, timeout=5000):
        qtbot.mouseClick(browser.viewport(), Qt.MouseButton.LeftButton, pos=at)


def _focused(widget) -> bool:  # type: ignore[no-untyped-def]
    return QApplication.focusWidget() is widget


# edit and resend -----------------------------------------------------------------------


def test_edit_replaces_the_prompt_and_everything_after_it(open_window, api, qtbot, sent_prompts) -> None:  # type: ignore[no-untyped-def]
    sent = sent_prompts
    window = open_window(api).window
    conv = window.new_conversation()
    _ask(window, qtbot, "first question")
    _ask(window, qtbot, "second question")
    old_ids = [m.id for m in _msgs(window)]
    assert window.history.conversation(conv.id).title == "first question"

    first_prompt = old_ids[0]
    _click(qtbot, window.chat.transcript, f"edit:{first_prompt}")
    prompt = window.chat.prompt
    assert prompt.toPlainText() == "first question"
    assert window.chat.editing_id() == first_prompt
    assert window.chat.edit_bar.isVisible() and window.chat.edit_label.text() == EDITING
    save_screenshot(window, "edit_prompt.png")
    prompt.selectAll()
    qtbot.keyClicks(prompt, "a better question")
    qtbot.keyClick(prompt, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: _done(window), timeout=20000)

    msgs = window.history.messages(conv.id)
    assert [(m.role, m.content) for m in msgs] == [("user", "a better question"), ("assistant", "a better question")]
    # The old rows are deleted, not hidden (SQLite may give a new row a freed id).
    assert all(window.history.message(i) is None for i in old_ids[2:])
    assert sent[-1] == [{"role": "user", "content": "a better question"}], "nothing after the edit is sent"
    assert window.history.conversation(conv.id).title == "a better question"  # it was named by the old prompt
    text = window.chat.transcript_text()
    assert "second question" not in text and "first question" not in text
    assert window.chat.editing_id() is None and not window.chat.edit_bar.isVisible()
    assert prompt.toPlainText() == ""


def test_up_in_an_empty_box_edits_the_last_prompt_and_esc_cancels(open_window, api, qtbot) -> None:  # type: ignore[no-untyped-def]
    window = open_window(api).window
    conv = window.new_conversation()
    window.activateWindow()
    _ask(window, qtbot, "one")
    _ask(window, qtbot, "two")
    prompt = window.chat.prompt
    prompt.setFocus()
    qtbot.waitUntil(lambda: _focused(prompt))

    qtbot.keyClicks(prompt, "a draft")
    qtbot.keyClick(prompt, Qt.Key.Key_Up)  # the box is not empty: Up just moves the cursor
    assert prompt.toPlainText() == "a draft" and window.chat.editing_id() is None
    _click(qtbot, window.chat.transcript, f"edit:{_msgs(window)[2].id}")
    assert prompt.toPlainText() == "two"
    qtbot.keyClick(prompt, Qt.Key.Key_Escape)  # cancels the edit; the draft comes back
    assert window.chat.editing_id() is None and prompt.toPlainText() == "a draft"
    assert [m.content for m in window.history.messages(conv.id)] == ["one", "one", "two", "two"]

    prompt.clear()
    qtbot.keyClick(prompt, Qt.Key.Key_Up)
    assert prompt.toPlainText() == "two" and window.chat.editing_id() == _msgs(window)[2].id
    qtbot.keyClicks(prompt, ", edited")
    qtbot.keyClick(prompt, Qt.Key.Key_Return, Qt.KeyboardModifier.ControlModifier)
    qtbot.waitUntil(lambda: _done(window) and len(_msgs(window)) == 4 and _msgs(window)[-1].content == "two, edited",
                    timeout=20000)
    assert [m.content for m in window.history.messages(conv.id)] == ["one", "one", "two, edited", "two, edited"]
    assert window.history.conversation(conv.id).title == "one"  # only the first prompt names the chat


def test_edit_is_refused_while_an_answer_runs(open_window, api, qtbot) -> None:  # type: ignore[no-untyped-def]
    window = open_window(api).window
    conv = window.new_conversation()
    window.send(LONG)
    qtbot.waitUntil(lambda: _msgs(window)[-1].status == "running", timeout=20000)
    prompt_id = _msgs(window)[0].id
    window.statusBar().clearMessage()
    qtbot.keyClick(window.chat.prompt, Qt.Key.Key_Up)
    assert window.chat.editing_id() is None and window.chat.prompt.toPlainText() == ""
    assert window.statusBar().currentMessage() == EDIT_BUSY
    window.statusBar().clearMessage()
    _click(qtbot, window.chat.transcript, f"edit:{prompt_id}")
    assert window.chat.editing_id() is None and window.statusBar().currentMessage() == EDIT_BUSY
    assert window.session.resend(conv.id, prompt_id, "changed") is None  # the session refuses too
    assert window.history.messages(conv.id)[0].content == LONG
    window.stop()
    qtbot.waitUntil(lambda: _msgs(window)[-1].status == "cancelled", timeout=10000)


# copy ---------------------------------------------------------------------------------


def test_every_message_copies_its_raw_text_and_each_copy_says_so(open_window, api, qtbot) -> None:  # type: ignore[no-untyped-def]
    window = open_window(api).window
    window.new_conversation()
    source = "Use **bold** and `code`:\n\n```python\nprint('hi')\n```"
    _ask(window, qtbot, source)
    prompt, answer = _msgs(window)
    bar = window.statusBar()
    clipboard = QGuiApplication.clipboard()

    for msg, said in ((prompt, "Copied your prompt."), (answer, "Copied the answer.")):
        clipboard.clear()
        bar.clearMessage()
        _click(qtbot, window.chat.transcript, f"copy-message:{msg.id}")
        assert clipboard.text() == source, "the Markdown source, not the rendered text"
        assert bar.currentMessage() == said

    bar.clearMessage()
    window.chat.transcript.anchorClicked.emit(QUrl("copy:1"))  # the answer's code block
    assert clipboard.text() == "print('hi')" and bar.currentMessage() == "Copied the code."

    clipboard.clear()
    bar.clearMessage()
    qtbot.keyClick(window.chat.prompt, Qt.Key.Key_C,
                   Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier)
    assert clipboard.text() == source and bar.currentMessage() == "Copied the last answer."


# Markdown tables ----------------------------------------------------------------------


def test_tables_have_borders_and_the_actions_show(open_window, api, qtbot) -> None:  # type: ignore[no-untyped-def]
    window = open_window(api).window
    window.resize(900, 640)
    window.new_conversation()
    _ask(window, qtbot, TABLE)
    doc = window.chat.transcript.document()
    tables = [f for f in doc.rootFrame().childFrames() if isinstance(f, QTextTable)]
    data = [t for t in tables if "apple" in _cell_text(t)]
    assert len(data) == 2, "the prompt's table and the answer's"
    for table in data:
        fmt = table.format()
        assert fmt.border() >= 1 and fmt.cellSpacing() == 0 and fmt.borderCollapse()
        assert (table.rows(), table.columns()) == (3, 2)
    text = window.chat.transcript_text()
    assert "Edit" in text and text.count("Copy") >= 2
    window.chat.jump_to_latest()
    path = save_screenshot(window, "transcript_actions_table.png")
    assert path.stat().st_size > 0


def _cell_text(table: QTextTable) -> str:
    return " ".join(
        table.cellAt(r, c).firstCursorPosition().block().text()
        for r in range(table.rows()) for c in range(table.columns())
    )


# titles -------------------------------------------------------------------------------


def test_the_auto_title_is_plain_words(open_window, api, qtbot) -> None:  # type: ignore[no-untyped-def]
    window = open_window(api).window
    conv = window.new_conversation()
    _ask(window, qtbot, "# Fix **my** `parser` in [the docs](https://example.com/x)\n\n- quickly please")
    title = window.history.conversation(conv.id).title
    assert title == "Fix my parser in the docs quickly please"
    assert window.conversations.items.item(0).text() == title and window.chat.title.text() == title

    other = window.new_conversation()
    _ask(window, qtbot, "Explain **why** the quick brown fox jumps over the lazy dog every single morning")
    title = window.history.conversation(other.id).title
    assert title == "Explain why the quick brown fox jumps over the…"


# system prompt ------------------------------------------------------------------------


def test_the_system_prompt_has_lines_saves_on_focus_out_and_survives_a_restart(open_window, api, qtbot) -> None:  # type: ignore[no-untyped-def]
    first = open_window(api)
    window = first.window
    conv = window.new_conversation()
    window.activateWindow()
    window.chat.settings_button.click()
    box = window.chat.system_prompt
    assert isinstance(box, QPlainTextEdit)
    box.setFocus()
    qtbot.waitUntil(lambda: _focused(box))
    qtbot.keyClicks(box, "You are terse.")
    qtbot.keyClick(box, Qt.Key.Key_Return)
    qtbot.keyClicks(box, "Answer in French.")
    assert window.history.conversation(conv.id).system_prompt == "", "not written on every key"
    qtbot.keyClick(box, Qt.Key.Key_Tab)  # focus leaves the box: now it is saved
    qtbot.waitUntil(lambda: not _focused(box))
    assert window.history.conversation(conv.id).system_prompt == "You are terse.\nAnswer in French."
    save_screenshot(window, "system_prompt_lines.png")

    box.setFocus()
    qtbot.waitUntil(lambda: _focused(box))
    box.moveCursor(QTextCursor.MoveOperation.End)
    qtbot.keyClick(box, Qt.Key.Key_Return)
    qtbot.keyClicks(box, "Be kind.")
    first.close()  # quit with the box still focused: the last line is kept too

    window = open_window(api).window
    assert window.chat.conversation.id == conv.id
    assert window.chat.system_prompt.toPlainText() == "You are terse.\nAnswer in French.\nBe kind."


# new chat -----------------------------------------------------------------------------


def test_new_chat_reuses_an_unused_chat_and_start_up_drops_those_left(open_window, api, qtbot) -> None:  # type: ignore[no-untyped-def]
    first = open_window(api)
    window = first.window
    empty = window.new_conversation()
    qtbot.keyClick(window.chat.prompt, Qt.Key.Key_N, Qt.KeyboardModifier.ControlModifier)
    assert window.new_conversation().id == empty.id and window.chat.conversation.id == empty.id
    assert window.conversations.ids() == [empty.id], "one New chat, not three"

    _ask(window, qtbot, "now it is used")
    fresh = window.new_conversation()
    assert fresh.id != empty.id
    window.open_conversation(empty.id)
    assert window.new_conversation().id == fresh.id  # the unused one, wherever it is in the list
    named = window.history.create_conversation("Ideas")  # renamed on purpose, still empty
    window._refresh_list()
    assert len(window.conversations.ids()) == 3
    first.close()

    window = open_window(api).window
    ids = window.conversations.ids()
    assert fresh.id not in ids and window.history.conversation(fresh.id) is None
    assert set(ids) == {empty.id, named.id}
    assert all(window.conversations.items.item(i).text() != DEFAULT_TITLE for i in range(len(ids)))


# search -------------------------------------------------------------------------------


def test_a_search_that_finds_nothing_says_so(open_window, qtbot) -> None:  # type: ignore[no-untyped-def]
    window = open_window(None).window
    garden = window.history.create_conversation("Garden plans")
    window._refresh_list()
    side = window.conversations
    qtbot.keyClicks(side.search, "xyz")
    assert side.ids() == []
    assert side.no_match.isVisible() and side.no_match.text() == "No chats match “xyz”"
    assert not side.items.isVisible()
    # Where the first match would be, right under the search box.
    qtbot.waitUntil(lambda: 0 <= side.no_match.y() - side.search.geometry().bottom() < 40)
    save_screenshot(window, "search_no_match.png")
    side.search.clear()
    assert side.ids() == [garden.id] and side.items.isVisible() and not side.no_match.isVisible()
    qtbot.keyClicks(side.search, "gard")
    assert side.ids() == [garden.id] and not side.no_match.isVisible()


# export -------------------------------------------------------------------------------


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A home folder of the test's own (Qt reads HOME and XDG_CONFIG_HOME for Documents)."""
    folder = tmp_path / "home"
    folder.mkdir()
    monkeypatch.setenv("HOME", str(folder))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(folder / ".config"))
    return folder


def _export(window, qtbot, conv_id: int) -> QFileDialog:  # type: ignore[no-untyped-def]
    dialog = window._ask_export(conv_id, "md")
    assert isinstance(dialog, QFileDialog)
    qtbot.waitExposed(dialog)
    return dialog


def test_export_starts_in_documents_with_a_safe_name_and_says_where(open_window, home: Path, qtbot) -> None:  # type: ignore[no-untyped-def]
    (home / "Documents").mkdir()
    window = open_window(None).window
    conv = window.history.create_conversation('Plans: Q1/Q2 <draft> "v2"? *final*...')
    window.history.add_message(conv.id, "user", "hello")
    dialog = _export(window, qtbot, conv.id)
    assert Path(dialog.directory().absolutePath()) == home / "Documents"
    [chosen] = dialog.selectedFiles()
    assert Path(chosen).name == "Plans Q1 Q2 draft v2 final.md"
    dialog.accept()
    target = home / "Documents" / "Plans Q1 Q2 draft v2 final.md"
    qtbot.waitUntil(target.exists)
    assert "hello" in target.read_text(encoding="utf-8")
    assert window.statusBar().currentMessage() == f"Saved to {target}"


def test_export_falls_back_to_home_and_a_failed_write_is_words(open_window, home: Path, qtbot) -> None:  # type: ignore[no-untyped-def]
    window = open_window(None).window
    conv = window.history.create_conversation("CON")  # the Windows console's name
    dialog = _export(window, qtbot, conv.id)
    assert Path(dialog.directory().absolutePath()) == home
    assert Path(dialog.selectedFiles()[0]).name == "Chat CON.md"
    dialog.reject()

    missing = home / "no such folder" / "chat.md"
    assert window.export_conversation(conv.id, missing, "md") is False
    said = window.wake.error_text()
    assert said.startswith(f"Could not save the chat to {missing}: No such file or directory")
    assert "Traceback" not in said and "Errno" not in said
