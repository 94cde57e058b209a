"""Poll intervals, wake wording, Markdown rendering and the credential store."""

from __future__ import annotations

import pytest

from desktop.core import polling, wake
from desktop.core.markdown import MarkdownRenderer
from desktop.core.models import Budget, Compute, ComputeState, ServerStatus
from desktop.services.credentials import SERVICE, CredentialStore, MemoryKeyring


def test_prompt_interval_is_fast_while_streaming_and_backs_off_on_errors() -> None:
    assert polling.prompt_interval("running") == 0.25
    assert polling.prompt_interval("waking") == 1.0
    # Queued only while the GPU is up: a worker takes it at once, so the first token must not
    # wait a whole second to be seen.
    assert polling.prompt_interval("queued") == 0.25
    assert [polling.prompt_interval("running", n) for n in (1, 2, 3, 6, 9)] == [
        0.5, 1.0, 2.0, 10.0, 10.0
    ]


def test_a_slow_stream_and_a_prompt_waiting_behind_others_are_polled_half_as_often() -> None:
    # One token per poll (8 answers sharing a CPU engine): two every 0.5 s read the same.
    assert polling.prompt_interval("running", previous="running", new_chars=4) == 0.5
    # A fast stream, the first text, and a restarted answer (its text shrank) stay at 0.25 s.
    assert polling.prompt_interval("running", previous="running", new_chars=40) == 0.25
    assert polling.prompt_interval("running", previous="queued", new_chars=3) == 0.25
    assert polling.prompt_interval("running", previous="running", new_chars=-120) == 0.25
    # Still queued at the second poll: it waits behind other answers; the first poll is quick.
    assert polling.prompt_interval("queued", previous="queued", new_chars=0) == 0.5
    assert polling.prompt_interval("queued", previous=None, new_chars=0) == 0.25
    assert polling.prompt_interval("running", 2, previous="running", new_chars=0) == 1.0  # errors win


def test_a_slow_stream_is_told_by_characters_per_second_so_its_slower_pace_does_not_undo_itself() -> None:
    # 24 characters a second: 6 in a quarter second, 12 in half a second. Both are slow.
    assert polling.prompt_interval("running", previous="running", new_chars=6) == 0.5
    assert polling.prompt_interval("running", previous="running", new_chars=12, since_s=0.5) == 0.5
    # 80 a second is a fast stream, however long the wait was.
    assert polling.prompt_interval("running", previous="running", new_chars=40, since_s=0.5) == 0.25
    pace = polling.PromptPace()
    pace.after("running", "")
    text = ""
    seen = []
    for _ in range(6):  # a steady 24 characters a second, polled at the pace's own intervals
        text += "x" * round(24 * (seen[-1] if seen else 0.25))
        seen.append(pace.after("running", text))
    assert seen == [0.5] * 6  # a count per poll went 0.5, 0.25, 0.5, 0.25 ...


def test_an_answer_off_screen_is_polled_every_two_seconds() -> None:
    for status in ("queued", "running", "waking"):
        assert polling.prompt_interval(status, on_screen=False) == 2.0
    assert polling.prompt_interval("running", 6, on_screen=False) == 10.0  # errors back off as ever
    pace = polling.PromptPace(on_screen=False)
    assert pace.after("running", "Hello") == 2.0
    pace.on_screen = True
    assert pace.after("running", "Hello" + "x" * 150) == 0.25  # 75 a second over those 2 s: fast


def test_status_interval_depends_on_activity() -> None:
    assert polling.status_interval(ComputeState.READY, busy=False) == 15.0
    assert polling.status_interval(ComputeState.READY, busy=True) == 2.0
    assert polling.status_interval(ComputeState.STARTING, busy=False) == 2.0


def test_wake_description_says_why_a_prompt_waits() -> None:
    status = ServerStatus(compute=Compute(ComputeState.STARTING, 42), instance_type="g4dn.xlarge")
    text = wake.describe(status, 41.6, waiting=1)
    assert text.startswith("GPU starting — ready in about 42 s (g4dn.xlarge)")
    assert "waiting for the GPU to start" in text
    assert wake.countdown_text(0) == "any moment now"
    assert wake.countdown_text(150) == "about 2 min"
    warn = ServerStatus(budget=Budget("warning", 16.0, 15.0, 20.0))
    assert "budget warning: $16.00" in wake.describe(warn, 0, 0)


def test_a_local_catalog_model_is_named_by_its_title_others_by_their_name() -> None:
    def name(model: str | None, engine: str = "llamacpp") -> str:
        return wake.local_engine_name(ServerStatus(engine=engine, model=model, instance_type="local"))

    assert name("tinyllama-1.1b-chat-v1.0.Q4_K_M") == "TinyLlama-1.1B-Chat"  # llama.cpp's id: the file's stem
    assert name("tinyllama-1.1b-chat-v1.0.Q4_K_M.gguf") == "TinyLlama-1.1B-Chat"
    assert name("my-own-model") == "my-own-model"
    assert name("Qwen/Qwen2.5-0.5B-Instruct", "vllm") == "Qwen2.5-0.5B-Instruct"
    assert name(None, "echo") == "Echo"


def test_markdown_highlights_code_and_numbers_copy_links() -> None:
    out = MarkdownRenderer().render("Hi **there**\n\n```python\nx = 1\n```\n\n```\nplain\n```", 3)
    assert "<strong>there</strong>" in out.html
    assert 'href="copy:3"' in out.html and 'href="copy:4"' in out.html
    assert out.code_blocks == ["x = 1", "plain"]
    assert "style=" in out.html  # Pygments inline colours, QTextBrowser has no stylesheet


def test_markdown_escapes_raw_html() -> None:
    out = MarkdownRenderer().render("<script>alert(1)</script>")
    assert "<script>" not in out.html and "&lt;script&gt;" in out.html


def test_credential_store_with_a_backend() -> None:
    store = CredentialStore(MemoryKeyring())
    store.set("t", "secret")
    assert store.get("t") == "secret"
    store.delete("t")
    assert store.get("t") is None


def test_credential_store_without_keyring_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    import keyring
    from keyring.backends import fail

    monkeypatch.setattr(keyring, "get_keyring", lambda: fail.Keyring())
    store = CredentialStore()
    assert not store.persistent
    assert "in memory only" in store.notice
    store.set("t", "v")
    assert store.get("t") == "v"


def test_a_keyring_that_is_a_file_in_the_home_folder_is_not_used(monkeypatch: pytest.MonkeyPatch) -> None:
    """keyrings.alt (installed by default on Debian/Ubuntu) stores secrets in a file."""
    import keyring

    plaintext = type("PlaintextKeyring", (MemoryKeyring,), {"__module__": "keyrings.alt.file"})()
    monkeypatch.setattr(keyring, "get_keyring", lambda: plaintext)
    store = CredentialStore()
    assert not store.persistent and "in memory only" in store.notice

    # Chained behind a real keyring, the file backend is dropped, so a refusal by the real
    # one cannot fall through to it.
    class SecretService:  # a real keyring: not a MemoryKeyring, so the store is persistent
        priority = 5

        def __init__(self) -> None:
            self.items: dict[tuple[str, str], str] = {}

        def get_password(self, service: str, name: str) -> str | None:
            return self.items.get((service, name))

        def set_password(self, service: str, name: str, value: str) -> None:
            self.items[(service, name)] = value

    real = SecretService()
    chainer = type("ChainerBackend", (), {"backends": [real, plaintext], "priority": 10})()
    monkeypatch.setattr(keyring, "get_keyring", lambda: chainer)
    store = CredentialStore()
    store.set("t", "v")
    assert store.persistent and real.get_password(SERVICE, "t") == "v"
    assert plaintext.get_password(SERVICE, "t") is None


def test_credential_store_survives_a_refusing_keyring() -> None:
    class Locked(MemoryKeyring):
        def set_password(self, service: str, name: str, value: str) -> None:
            raise RuntimeError("locked")

    store = CredentialStore(Locked())
    store.set("t", "v")
    assert store.get("t") == "v" and "refused" in store.notice
