"""History in the UI: search, rename, delete, export; Markdown code blocks and copy."""

from __future__ import annotations

import json
from pathlib import Path

from PySide6.QtCore import QUrl
from PySide6.QtGui import QGuiApplication

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
