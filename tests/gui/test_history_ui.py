"""History in the UI: search, rename, delete, export; Markdown code blocks and copy."""

from __future__ import annotations

import json
from pathlib import Path

from PySide6.QtCore import QUrl
from PySide6.QtGui import QGuiApplication, QTextFormat
from PySide6.QtWidgets import QTextBrowser

from desktop.qt import first_paint

CODE = "Here you go:\n\n```python\ndef add(a, b):\n    return a + b\n```\n\nDone."


def test_search_rename_delete(open_window, qtbot) -> None:  # type: ignore[no-untyped-def]
    window = open_window(None).window
    garden = window.history.create_conversation("Garden plans")
    taxes = window.history.create_conversation("Taxes")
    window.history.add_message(taxes.id, "user", "What about tomatoes?")
    window._refresh_list()
    assert set(window.conversations.ids()) == {garden.id, taxes.id}

    qtbot.keyClicks(window.conversations.search, "tomato")
    assert window.conversations.ids() == [taxes.id]
    window.conversations.search.clear()
    assert len(window.conversations.ids()) == 2

    item = window.conversations.items.item(window.conversations.ids().index(garden.id))
    item.setText("Vegetable garden")  # what editing the item in place does
    assert window.history.conversation(garden.id).title == "Vegetable garden"

    window.open_conversation(garden.id)
    window.delete_conversation(garden.id)
    assert window.conversations.ids() == [taxes.id]
    assert window.chat.conversation is None


def test_export_markdown_and_json(open_window, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    window = open_window(None).window
    conv = window.history.create_conversation("Export")
    window.history.add_message(conv.id, "user", "hi")
    window.history.add_message(conv.id, "assistant", CODE)
    window.export_conversation(conv.id, tmp_path / "c.md", "md")
    window.export_conversation(conv.id, tmp_path / "c.json", "json")
    assert "def add(a, b):" in (tmp_path / "c.md").read_text()
    assert json.loads((tmp_path / "c.json").read_text())["messages"][1]["content"] == CODE


def test_code_block_copy_button(open_window, api, qtbot) -> None:  # type: ignore[no-untyped-def]
    window = open_window(api).window
    conv = window.new_conversation()
    window.send(CODE)  # the echo engine answers with the same Markdown
    qtbot.waitUntil(lambda: window.history.messages(conv.id)[-1].status == "done", timeout=20000)
    html = window.chat.transcript.toHtml()
    assert "copy:1" in html  # the user's block is 0, the answer's is 1
    window.chat.transcript.anchorClicked.emit(QUrl("copy:1"))
    assert QGuiApplication.clipboard().text() == "def add(a, b):\n    return a + b"
    text = window.chat.transcript_text()
    assert "return a + b" in text and "```" not in text


def _coloured(browser: QTextBrowser, word: str) -> bool:
    """Whether the first fragment of the transcript holding `word` has a colour of its own."""
    block = browser.document().begin()
    while block.isValid():
        it = block.begin()
        while not it.atEnd():
            fragment = it.fragment()
            if word in fragment.text():
                return fragment.charFormat().hasProperty(QTextFormat.Property.ForegroundBrush)
            it += 1
        block = block.next()
    raise AssertionError(f"{word!r} is not in the transcript")


def test_a_reopened_chat_shows_at_once_and_its_code_is_coloured_after_the_first_paint(  # type: ignore[no-untyped-def]
        open_window, qtbot, monkeypatch) -> None:
    monkeypatch.setattr(first_paint, "FALLBACK_MS", 60_000)  # only the paint itself can colour it
    first = open_window(None)
    conv = first.window.history.create_conversation("Adding")
    first.window.history.add_message(conv.id, "user", "add two numbers")
    first.window.history.add_message(conv.id, "assistant", CODE, status="done")
    first.window.open_conversation(conv.id)
    first.close()

    window = open_window(None, show=False).window  # a restart: the chat opens in the new window
    assert window.chat.conversation.id == conv.id
    assert "return a + b" in window.chat.transcript_text()
    assert not _coloured(window.chat.transcript, "def")  # built uncoloured: no Pygments yet
    window.show()
    qtbot.waitUntil(lambda: _coloured(window.chat.transcript, "def"), timeout=5000)
    assert "return a + b" in window.chat.transcript_text()
