"""Why an answer ended reaches the app and stays: parsing, the real local stack, SQLite.

An answer cut at max_tokens (`finish_reason: length`) is what the chat marks and offers to
continue; a server that sends no finish reason (older than the field) must not read as cut.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from backend.entrypoints.local import LocalStack
from desktop.core import history
from desktop.core.history import HistoryStore
from desktop.core.models import ChatMessage, PromptState
from desktop.services.api import ApiClient
from tests.helpers import wait_until


@pytest.mark.parametrize(
    ("body", "reason", "cut"),
    [
        ({"finish_reason": "length"}, "length", True),
        ({"finish_reason": "stop"}, "stop", False),
        ({"finish_reason": None}, None, False),
        ({}, None, False),  # an older server: unknown, not cut
        ({"finish_reason": 7}, None, False),  # not a word: ignored, not an error
    ],
)
def test_finish_reason_is_parsed_and_only_length_is_cut(body: dict, reason: str | None, cut: bool) -> None:
    state = PromptState.from_api({"request_id": "r1", "status": "done", "text": "a b",
                                  "usage": {"completion_tokens": 2}, **body})
    assert state.finish_reason == reason
    msg = ChatMessage(id=1, conversation_id=1, role="assistant", content="", status="running")
    msg.apply(state)
    assert msg.finish_reason == reason
    assert msg.cut is cut


def test_an_answer_that_did_not_finish_is_not_cut() -> None:
    msg = ChatMessage(id=1, conversation_id=1, role="assistant", content="a", status="running",
                      finish_reason="length")
    assert not msg.cut  # only a finished answer is offered to continue
    msg.status = "done"
    assert msg.cut


@pytest.fixture(scope="module")
def stack() -> Iterator[LocalStack]:
    with LocalStack(engine="echo", echo_delay_s=0.0) as s:
        yield s


def test_the_client_reads_length_and_stop_from_the_real_stack(stack: LocalStack) -> None:
    api = ApiClient(stack.url, lambda: stack.token)
    try:
        words = [{"role": "user", "content": "one two three four five"}]
        cut = api.submit(words, max_tokens=2)
        whole = api.submit(words, max_tokens=64)
        cut_done = wait_until(lambda: (s := api.prompt(cut.request_id)).terminal and s, 20,
                              message="the cut prompt to finish")
        whole_done = wait_until(lambda: (s := api.prompt(whole.request_id)).terminal and s, 20,
                                message="the whole prompt to finish")
    finally:
        api.close()
    assert (cut_done.status, cut_done.finish_reason, cut_done.text) == ("done", "length", "one two")
    assert cut_done.completion_tokens == 2
    assert (whole_done.status, whole_done.finish_reason) == ("done", "stop")


# The messages table as the app wrote it before finish_reason existed (user_version 0).
_OLD_SCHEMA = """
CREATE TABLE conversations (
    id INTEGER PRIMARY KEY, title TEXT NOT NULL, system_prompt TEXT NOT NULL DEFAULT '',
    temperature REAL NOT NULL DEFAULT 0.7, max_tokens INTEGER NOT NULL DEFAULT 512,
    model TEXT NOT NULL DEFAULT '', created_at REAL NOT NULL, updated_at REAL NOT NULL
);
CREATE TABLE messages (
    id INTEGER PRIMARY KEY,
    conversation_id INTEGER NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
    role TEXT NOT NULL, content TEXT NOT NULL, status TEXT NOT NULL DEFAULT 'done',
    request_id TEXT, prompt_tokens INTEGER, completion_tokens INTEGER, first_token_s REAL,
    total_s REAL, cost_usd REAL, error TEXT, created_at REAL NOT NULL
);
INSERT INTO conversations VALUES (1, 'Old chat', '', 0.7, 512, '', 1.0, 1.0);
INSERT INTO messages (conversation_id, role, content, status, completion_tokens, created_at)
    VALUES (1, 'assistant', 'an answer from before', 'done', 512, 1.0);
"""


def test_an_older_database_opens_and_gains_the_column(tmp_path: Path) -> None:
    path = tmp_path / "history.sqlite3"
    with sqlite3.connect(path) as db:
        db.executescript(_OLD_SCHEMA)
    db.close()

    store = HistoryStore(path)
    [old] = store.messages(1)
    assert (old.content, old.finish_reason, old.cut) == ("an answer from before", None, False)
    old.finish_reason = "length"
    store.update_message(old)
    store.close()

    again = HistoryStore(path)  # opening a migrated database migrates nothing twice
    try:
        [kept] = again.messages(1)
        assert kept.finish_reason == "length" and kept.cut
        fresh = again.add_message(1, "assistant", "x", finish_reason="stop")
        assert again.message(fresh.id).finish_reason == "stop"
    finally:
        again.close()
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == 1
    db.close()


def test_a_new_database_has_the_column(tmp_path: Path) -> None:
    store = HistoryStore(tmp_path / "new.sqlite3")
    try:
        conv = store.create_conversation()
        msg = store.add_message(conv.id, "assistant", "cut", status="done", finish_reason="length")
        assert store.message(msg.id).cut
    finally:
        store.close()


def test_a_migration_that_fails_leaves_the_database_as_it_was(tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """Every step runs in one transaction with the version number: a step that fails (a
    full disk, a bug) undoes the steps before it, and the next start migrates from scratch."""
    path = tmp_path / "history.sqlite3"
    with sqlite3.connect(path) as db:
        db.executescript(_OLD_SCHEMA)
    db.close()
    monkeypatch.setattr(history, "_MIGRATIONS", (*history._MIGRATIONS, "ALTER TABLE nowhere ADD COLUMN x"))
    with pytest.raises(sqlite3.OperationalError, match="nowhere"):
        HistoryStore(path)
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == 0
        columns = {row[1] for row in db.execute("PRAGMA table_info(messages)")}
        assert "finish_reason" not in columns  # the first step was undone with the failed one
    db.close()

    monkeypatch.undo()
    store = HistoryStore(path)
    try:
        [old] = store.messages(1)
        assert (old.content, old.finish_reason) == ("an answer from before", None)
    finally:
        store.close()
