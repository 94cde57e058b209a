"""The Qt-free parts of working with answers: plain titles, export file names, and the
history's edit and unused-chat queries (a real SQLite file)."""

from __future__ import annotations

from pathlib import Path

import pytest

from desktop.core.history import DEFAULT_TITLE, NAME_BYTES, HistoryStore, export_file_name
from desktop.core.markdown import MarkdownRenderer, plain_text, short_title


@pytest.mark.parametrize(("text", "title"), [
    ("# Heading **bold** _it_", "Heading bold it"),
    ("see [the docs](https://example.com) and ![a chart](c.png)", "see the docs and a chart"),
    ("- one\n- two\n1. three", "one two three"),
    ("> quoted `code`", "quoted code"),
    ("```python\nprint(1)\n```", "print(1)"),
    ("plain\n\nwords   spaced", "plain words spaced"),
])
def test_plain_text_drops_markdown_marks(text: str, title: str) -> None:
    assert plain_text(text) == title


def test_short_title_cuts_at_a_word_boundary() -> None:
    assert short_title("short one", 48) == "short one"
    long = "Explain why the quick brown fox jumps over the lazy dog every morning"
    cut = short_title(long, 48)
    assert cut == "Explain why the quick brown fox jumps over the…" and len(cut) <= 49
    assert long.startswith(cut[:-1])
    url = "https://example.com/" + "x" * 80  # no boundary in reach: cut inside the word
    assert short_title(url, 48) == url[:48] + "…"
    assert short_title("***", 48) == "***", "nothing but marks: the text as typed"


@pytest.mark.parametrize(("title", "name"), [
    ('Plans: Q1/Q2 <draft> "v2"? *final*...', "Plans Q1 Q2 draft v2 final.md"),
    ("back\\slash|pipe", "back slash pipe.md"),
    ("tab\there\x01bell", "tab here bell.md"),
    ("CON", "Chat CON.md"),
    ("nul.txt", "Chat nul.txt.md"),
    ("lpt1 ", "Chat lpt1.md"),
    ("Console talk", "Console talk.md"),
    ("   ", "Chat.md"),
    ("...", "Chat.md"),
])
def test_export_file_name_is_valid_everywhere(title: str, name: str) -> None:
    assert export_file_name(title, "md") == name


def test_export_file_name_caps_the_length_in_bytes() -> None:
    name = export_file_name("é" * 300, "json")
    assert name.endswith(".json") and len(name.removesuffix(".json").encode("utf-8")) <= NAME_BYTES


def test_a_table_gets_border_attributes_qt_reads() -> None:
    html = MarkdownRenderer().render("| a | b |\n|---|---|\n| 1 | 2 |").html
    assert '<table border="1" cellspacing="0" cellpadding="4"' in html
    code = MarkdownRenderer().render("```\nx = 1\n```").html
    assert 'border="1"' not in code, "code blocks keep their own frameless table"


def test_delete_from_drops_the_message_and_all_after_it(tmp_path: Path) -> None:
    store = HistoryStore(tmp_path / "h.sqlite3")
    conv = store.create_conversation("Chat")
    other = store.create_conversation("Other")
    ids = [store.add_message(conv.id, role, text).id
           for role, text in (("user", "a"), ("assistant", "a"), ("user", "b"), ("assistant", "b"))]
    kept = store.add_message(other.id, "user", "elsewhere")
    assert store.delete_from(conv.id, ids[2]) == 2
    assert [m.content for m in store.messages(conv.id)] == ["a", "a"]
    assert store.message(kept.id) is not None, "another chat's later rows stay"
    store.close()


def test_unused_chats_are_found_and_dropped_but_touched_ones_stay(tmp_path: Path) -> None:
    store = HistoryStore(tmp_path / "h.sqlite3")
    defaults = {"system_prompt": "", "temperature": 0.7, "max_tokens": 512, "model": ""}
    unused = store.create_conversation(**defaults)
    named = store.create_conversation("Ideas")
    tuned = store.create_conversation(system_prompt="Be brief.")
    used = store.create_conversation()
    store.add_message(used.id, "user", "hi")
    newer = store.create_conversation(**defaults)
    found = store.unused_conversation(**defaults)
    assert found is not None and found.id == newer.id and found.title == DEFAULT_TITLE
    assert store.delete_unused(**defaults) == 2
    assert {c.id for c in store.conversations()} == {named.id, tuned.id, used.id}
    assert store.conversation(unused.id) is None and store.unused_conversation(**defaults) is None
    store.close()
