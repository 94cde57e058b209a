"""The SQLite history store: conversations, messages, search, resume and export."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from desktop.core.history import HistoryStore


@pytest.fixture
def store(tmp_path: Path) -> HistoryStore:
    s = HistoryStore(tmp_path / "data" / "history.sqlite3")
    yield s
    s.close()


def test_conversation_round_trip_and_settings(store: HistoryStore) -> None:
    conv = store.create_conversation("Plans", system_prompt="Be brief.", temperature=0.2,
                                     max_tokens=64, model="tiny")
    again = store.conversation(conv.id)
    assert again == conv
    again.temperature = 1.1
    store.update_conversation(again)
    assert store.conversation(conv.id).temperature == 1.1


def test_search_matches_titles_and_message_text(store: HistoryStore) -> None:
    a = store.create_conversation("Garden")
    b = store.create_conversation("Taxes")
    store.add_message(b.id, "user", "How do I prune tomatoes?")
    assert {c.id for c in store.conversations("garden")} == {a.id}
    assert {c.id for c in store.conversations("TOMATO")} == {b.id}
    assert [c.id for c in store.conversations()] == [b.id, a.id]  # newest activity first


def test_rename_and_delete_cascade(store: HistoryStore) -> None:
    conv = store.create_conversation()
    msg = store.add_message(conv.id, "user", "hi")
    store.rename(conv.id, "  Renamed  ")
    assert store.conversation(conv.id).title == "Renamed"
    store.rename(conv.id, "   ")
    assert store.conversation(conv.id).title == "Untitled"
    store.delete(conv.id)
    assert store.conversation(conv.id) is None
    assert store.message(msg.id) is None


def test_in_flight_answers_survive_reopening(tmp_path: Path) -> None:
    path = tmp_path / "h.sqlite3"
    first = HistoryStore(path)
    conv = first.create_conversation()
    first.add_message(conv.id, "user", "hello")
    running = first.add_message(conv.id, "assistant", "hel", status="running", request_id="a" * 32)
    first.add_message(conv.id, "assistant", "", status="sending")
    done = first.add_message(conv.id, "assistant", "x", status="done", request_id="b" * 32)
    first.close()

    second = HistoryStore(path)
    assert second.fail_unsent() == 1
    assert [m.id for m in second.in_flight_messages()] == [running.id]
    assert second.message(done.id).status == "done"
    second.close()


def test_export_markdown_and_json(store: HistoryStore) -> None:
    conv = store.create_conversation("Export me", system_prompt="Be kind.")
    store.add_message(conv.id, "user", "Say hi")
    store.add_message(conv.id, "assistant", "```python\nprint('hi')\n```", completion_tokens=3)
    md = store.export_markdown(conv.id)
    assert md.startswith("# Export me")
    assert "## You\n\nSay hi" in md and "print('hi')" in md and "Be kind." in md
    data = json.loads(store.export_json(conv.id))
    assert data["conversation"]["title"] == "Export me"
    assert [m["role"] for m in data["messages"]] == ["user", "assistant"]
    assert data["messages"][1]["completion_tokens"] == 3
    with pytest.raises(KeyError):
        store.export_json(9999)
