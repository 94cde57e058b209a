"""Conversation history in SQLite under the data dir.

Assistant messages keep their `request_id` and status, so an answer still streaming when
the app closed is picked up again on the next start (`in_flight_messages`).

The schema grows by numbered migrations (`_MIGRATIONS`, tracked in SQLite's
`user_version`), so a database written by an older version of the app opens as it was and
gains the new columns; `_SCHEMA` stays the first version's tables.
"""

from __future__ import annotations

import json
import re
import sqlite3
import time
import unicodedata
from collections.abc import Sequence
from dataclasses import asdict, fields
from pathlib import Path

from desktop.core.models import TERMINAL_STATUSES, ChatMessage, Conversation

_SCHEMA = """
CREATE TABLE IF NOT EXISTS conversations (
    id INTEGER PRIMARY KEY,
    title TEXT NOT NULL,
    system_prompt TEXT NOT NULL DEFAULT '',
    temperature REAL NOT NULL DEFAULT 0.7,
    max_tokens INTEGER NOT NULL DEFAULT 512,
    model TEXT NOT NULL DEFAULT '',
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS messages (
    id INTEGER PRIMARY KEY,
    conversation_id INTEGER NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
    role TEXT NOT NULL,
    content TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'done',
    request_id TEXT,
    prompt_tokens INTEGER,
    completion_tokens INTEGER,
    first_token_s REAL,
    total_s REAL,
    cost_usd REAL,
    error TEXT,
    created_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS messages_by_conversation ON messages(conversation_id, id);
"""

# Migration N (1-based) takes a database from user_version N-1 to N. Append only: a
# released step never changes, since databases out there already ran it.
_MIGRATIONS: tuple[str, ...] = (
    # 1: why an answer ended, so one cut at the token limit stays marked after a restart.
    "ALTER TABLE messages ADD COLUMN finish_reason TEXT",
)

# What a chat is called until its first prompt names it (desktop/qt/chat_session.py).
DEFAULT_TITLE = "New chat"
# An untouched chat: still the default title, not one message, and the settings a new
# chat gets. New chat reuses one instead of listing another; start-up drops those left.
_UNUSED = (
    "c.title = ? AND c.system_prompt = ? AND c.temperature = ? AND c.max_tokens = ? AND c.model = ?"
    " AND NOT EXISTS (SELECT 1 FROM messages m WHERE m.conversation_id = c.id)"
)
_SETTINGS = ("system_prompt", "temperature", "max_tokens", "model")

# File names every OS accepts: no <>:"/\|?* or control characters (Windows refuses them,
# / and NUL everywhere), no trailing dot or space (Windows drops them), none of the DOS
# device names, whatever the extension (CON.md is the console on Windows).
_BAD_NAME_CHARS = re.compile(r'[<>:"/\\|?*\x00-\x1f\x7f]+')
_RESERVED_NAMES = frozenset(
    {"CON", "PRN", "AUX", "NUL", *(f"COM{i}" for i in range(10)), *(f"LPT{i}" for i in range(10))}
)
# Well under every file system's 255 bytes, with room for the extension and a " (2)".
NAME_BYTES = 120

_CONV_COLS = [f.name for f in fields(Conversation)]
_MSG_COLS = [f.name for f in fields(ChatMessage) if not f.metadata.get("transient")]


class HistoryStore:
    """All reads and writes of conversations and messages (one connection, UI thread)."""

    def __init__(self, path: Path | str) -> None:
        if str(path) != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(path))
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA foreign_keys = ON")
        self._db.execute("PRAGMA journal_mode = WAL")
        try:
            self._migrate()
        except sqlite3.Error:
            self._db.close()  # which rolls back what the failed migration began
            raise

    def _migrate(self) -> None:
        """Create the tables and bring them up to this version's schema in one transaction:
        a new database is written (and synced to disk) once, not once per table and step,
        and a crash mid-way leaves the database as it was, to be migrated on the next start."""
        version = int(self._db.execute("PRAGMA user_version").fetchone()[0])
        steps = [f"{step};" for step in _MIGRATIONS[version:]]
        if steps:
            steps.append(f"PRAGMA user_version = {len(_MIGRATIONS)};")
        # sqlite3 opens no transaction for DDL by itself.
        self._db.executescript("\n".join(["BEGIN;", _SCHEMA, *steps, "COMMIT;"]))

    def close(self) -> None:
        self._db.close()

    # conversations -------------------------------------------------------------------

    def create_conversation(self, title: str = DEFAULT_TITLE, **settings: object) -> Conversation:
        now = time.time()
        conv = Conversation(id=0, title=title, created_at=now, updated_at=now)
        for key, value in settings.items():
            setattr(conv, key, value)
        with self._db:
            conv.id = self._insert("conversations", _CONV_COLS, conv)
        return conv

    def conversation(self, conv_id: int) -> Conversation | None:
        row = self._db.execute("SELECT * FROM conversations WHERE id = ?", (conv_id,)).fetchone()
        return Conversation(**{c: row[c] for c in _CONV_COLS}) if row else None

    def conversations(self, search: str = "") -> list[Conversation]:
        """Newest first; `search` matches titles and message text, case-insensitively."""
        if search:
            like = f"%{search}%"
            rows = self._db.execute(
                "SELECT * FROM conversations c WHERE c.title LIKE ? OR EXISTS ("
                " SELECT 1 FROM messages m WHERE m.conversation_id = c.id AND m.content LIKE ?)"
                " ORDER BY updated_at DESC, id DESC",
                (like, like),
            ).fetchall()
        else:
            rows = self._db.execute(
                "SELECT * FROM conversations ORDER BY updated_at DESC, id DESC"
            ).fetchall()
        return [Conversation(**{c: r[c] for c in _CONV_COLS}) for r in rows]

    def update_conversation(self, conv: Conversation) -> None:
        conv.updated_at = time.time()
        cols = [c for c in _CONV_COLS if c != "id"]
        with self._db:
            self._db.execute(
                f"UPDATE conversations SET {', '.join(f'{c} = ?' for c in cols)} WHERE id = ?",
                [*(getattr(conv, c) for c in cols), conv.id],
            )

    def update_settings(self, conv_id: int, values: dict[str, object]) -> None:
        """Write a chat's generation settings and nothing else: the title (renamed or
        given automatically meanwhile) is never written back from a stale copy."""
        cols = [c for c in ("system_prompt", "temperature", "max_tokens", "model") if c in values]
        if not cols:
            return
        with self._db:
            self._db.execute(
                f"UPDATE conversations SET {', '.join(f'{c} = ?' for c in cols)}, updated_at = ? WHERE id = ?",
                [*(values[c] for c in cols), time.time(), conv_id],
            )

    def rename(self, conv_id: int, title: str) -> None:
        title = title.strip() or "Untitled"
        with self._db:
            self._db.execute("UPDATE conversations SET title = ? WHERE id = ?", (title, conv_id))

    def _insert(self, table: str, columns: Sequence[str], row: object) -> int:
        """INSERT `row`'s attributes (all `columns` but the id); the new id. Call inside a
        transaction (`with self._db`)."""
        cols = [c for c in columns if c != "id"]
        cur = self._db.execute(
            f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})",
            [getattr(row, c) for c in cols],
        )
        return int(cur.lastrowid or 0)

    def delete(self, conv_id: int) -> None:
        with self._db:
            self._db.execute("DELETE FROM conversations WHERE id = ?", (conv_id,))

    def unused_conversation(self, **settings: object) -> Conversation | None:
        """The newest chat nobody has touched: default title, no messages and `settings`
        (those a new chat gets; any left out are the Conversation defaults)."""
        row = self._db.execute(
            f"SELECT * FROM conversations c WHERE {_UNUSED} ORDER BY id DESC LIMIT 1", self._untouched(settings)
        ).fetchone()
        return Conversation(**{c: row[c] for c in _CONV_COLS}) if row else None

    def delete_unused(self, **settings: object) -> int:
        """Drop every chat nobody touched (see `unused_conversation`); how many went. A
        renamed chat stays, and so does one whose settings someone changed."""
        with self._db:
            cur = self._db.execute(f"DELETE FROM conversations WHERE id IN ("
                                   f"SELECT c.id FROM conversations c WHERE {_UNUSED})", self._untouched(settings))
        return cur.rowcount

    @staticmethod
    def _untouched(settings: dict[str, object]) -> list[object]:
        fresh = Conversation(id=0, title=DEFAULT_TITLE)
        for key, value in settings.items():
            setattr(fresh, key, value)
        return [DEFAULT_TITLE, *(getattr(fresh, c) for c in _SETTINGS)]

    # messages ------------------------------------------------------------------------

    def add_message(self, conv_id: int, role: str, content: str, **extra: object) -> ChatMessage:
        msg = ChatMessage(id=0, conversation_id=conv_id, role=role, content=content,
                          created_at=time.time())
        for key, value in extra.items():
            setattr(msg, key, value)
        with self._db:
            msg.id = self._insert("messages", _MSG_COLS, msg)
            self._db.execute(
                "UPDATE conversations SET updated_at = ? WHERE id = ?", (msg.created_at, conv_id)
            )
        return msg

    def update_message(self, msg: ChatMessage) -> None:
        cols = [c for c in _MSG_COLS if c not in ("id", "conversation_id", "created_at")]
        with self._db:
            self._db.execute(
                f"UPDATE messages SET {', '.join(f'{c} = ?' for c in cols)} WHERE id = ?",
                [*(getattr(msg, c) for c in cols), msg.id],
            )

    def delete_message(self, msg_id: int) -> None:
        with self._db:
            self._db.execute("DELETE FROM messages WHERE id = ?", (msg_id,))

    def delete_from(self, conv_id: int, msg_id: int) -> int:
        """Delete message `msg_id` of chat `conv_id` and every later one (an edited prompt
        replaces the rest of the chat); how many went."""
        with self._db:
            cur = self._db.execute(
                "DELETE FROM messages WHERE conversation_id = ? AND id >= ?", (conv_id, msg_id)
            )
        return cur.rowcount

    def message(self, msg_id: int) -> ChatMessage | None:
        row = self._db.execute("SELECT * FROM messages WHERE id = ?", (msg_id,)).fetchone()
        return ChatMessage(**{c: row[c] for c in _MSG_COLS}) if row else None

    def messages(self, conv_id: int) -> list[ChatMessage]:
        rows = self._db.execute(
            "SELECT * FROM messages WHERE conversation_id = ? ORDER BY id", (conv_id,)
        ).fetchall()
        return [ChatMessage(**{c: r[c] for c in _MSG_COLS}) for r in rows]

    def in_flight_messages(self) -> list[ChatMessage]:
        """Assistant answers that had not ended when last seen, oldest first."""
        marks = ", ".join("?" * len(TERMINAL_STATUSES))
        rows = self._db.execute(
            f"SELECT * FROM messages WHERE role = 'assistant' AND request_id IS NOT NULL"
            f" AND status NOT IN ({marks}) ORDER BY id",
            sorted(TERMINAL_STATUSES),
        ).fetchall()
        return [ChatMessage(**{c: r[c] for c in _MSG_COLS}) for r in rows]

    def fail_unsent(self) -> int:
        """Answers whose POST never came back (the app quit mid-send) can't resume: end them."""
        with self._db:
            cur = self._db.execute(
                "UPDATE messages SET status = 'failed',"
                " error = 'The app closed before this prompt was sent.'"
                " WHERE role = 'assistant' AND request_id IS NULL AND status = 'sending'"
            )
        return cur.rowcount

    # export --------------------------------------------------------------------------

    def export_json(self, conv_id: int) -> str:
        conv = self.conversation(conv_id)
        if conv is None:
            raise KeyError(conv_id)
        return json.dumps(
            {"conversation": asdict(conv), "messages": [asdict(m) for m in self.messages(conv_id)]},
            indent=2,
        )

    def export_markdown(self, conv_id: int) -> str:
        conv = self.conversation(conv_id)
        if conv is None:
            raise KeyError(conv_id)
        parts = [f"# {conv.title}\n"]
        if conv.system_prompt:
            parts.append(f"> System: {conv.system_prompt}\n")
        for msg in self.messages(conv_id):
            who = {"user": "You", "assistant": "Assistant", "system": "System"}.get(msg.role, msg.role)
            parts.append(f"## {who}\n\n{msg.content}\n")
        return "\n".join(parts)


def export_file_name(title: str, suffix: str) -> str:
    """A file name for exporting chat `title` that every OS accepts, ending in `.suffix`."""
    name = unicodedata.normalize("NFC", title)  # macOS stores NFD; one spelling for both
    name = " ".join(_BAD_NAME_CHARS.sub(" ", name).split())
    while len(name.encode("utf-8")) > NAME_BYTES:
        name = name[:-1]
    name = name.rstrip(". ")
    if not name or name.split(".")[0].strip().upper() in _RESERVED_NAMES:
        name = f"Chat {name}".rstrip(". ") if name else "Chat"
    return f"{name}.{suffix}"
