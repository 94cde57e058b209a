"""The Local profile hands the chosen engine to the stack or service it starts."""

from __future__ import annotations

from typing import Any

import pytest

from desktop.core.errors import AppError
from desktop.services.local_profile import ECHO_NOTICE, LocalProfile


class _Stack:
    def __init__(self, **kwargs: Any) -> None:
        self.kwargs = kwargs
        self.url, self.token = "http://127.0.0.1:1", "t"

    def start(self) -> None:
        pass

    def stop(self) -> None:
        pass


def test_openai_engine_settings_reach_the_stack() -> None:
    made: list[_Stack] = []
    profile = LocalProfile(engine="openai", engine_url="http://127.0.0.1:11434/v1", model="llama3.2",
                           stack_factory=lambda **kw: made.append(_Stack(**kw)) or made[-1])
    assert profile.start() == ("http://127.0.0.1:1", "t")
    assert made[0].kwargs == {"port": 0, "engine": "openai", "engine_url": "http://127.0.0.1:11434/v1",
                              "model": "llama3.2"}
    assert profile.notice == ""


def test_echo_says_how_to_get_a_real_model() -> None:
    made: list[_Stack] = []
    profile = LocalProfile(stack_factory=lambda **kw: made.append(_Stack(**kw)) or made[-1])
    profile.start()
    assert made[0].kwargs == {"port": 0, "engine": "echo"}
    assert profile.notice == ECHO_NOTICE and "Account → Profile" in ECHO_NOTICE


def test_the_service_is_started_with_the_settings_engine() -> None:
    profile = LocalProfile(engine="openai", port=8765, engine_url="http://127.0.0.1:11434/v1", model="llama3.2",
                           service_args=["--claim-idle", "1"])
    assert profile.options() == ["--port", "8765", "--engine", "openai", "--engine-url",
                                 "http://127.0.0.1:11434/v1", "--model", "llama3.2", "--claim-idle", "1"]
    assert LocalProfile().options() == ["--port", "0", "--engine", "echo"]


def test_a_service_that_cannot_start_is_a_sentence_not_a_traceback(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from backend.entrypoints.local_service import ServicePaths

    monkeypatch.setenv("PATH", "/nonexistent")  # no redis-server
    # The service it starts finds its folders from these, as the app's does: not the user's.
    monkeypatch.setenv("TINYLLAMA_RUNTIME_DIR", str(tmp_path / "run"))
    monkeypatch.setenv("TINYLLAMA_DATA_DIR", str(tmp_path / "data"))
    paths = ServicePaths.default()
    with pytest.raises(AppError) as info:
        LocalProfile(paths=paths).start()
    message = str(info.value)
    assert "redis-server" in message and "Traceback" not in message
    assert not paths.discovery_file.exists()


def test_on_windows_the_local_profile_says_it_needs_wsl(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Windows has no fcntl (the service's locks): the person reads what to do instead."""
    import sys

    from backend.entrypoints.local_service import ServicePaths
    from desktop.services.local_profile import NEEDS_WSL

    monkeypatch.setattr(sys, "platform", "win32")
    monkeypatch.setitem(sys.modules, "fcntl", None)  # `import fcntl` fails, as it does there
    paths = ServicePaths(tmp_path / "run", tmp_path / "data", tmp_path / "logs")
    with pytest.raises(AppError) as info:
        LocalProfile(paths=paths).start()
    assert str(info.value) == NEEDS_WSL
    assert "WSL" in NEEDS_WSL and "AWS" in NEEDS_WSL and "fcntl" not in NEEDS_WSL
    assert not paths.discovery_file.exists()


def test_a_running_service_is_reused_only_with_this_version_and_engine() -> None:
    assert LocalProfile(version="1.2").expected() == {"version": "1.2", "engine": "echo", "engine_url": None,
                                                      "model": None, "engine_key": ""}
    # echo ignores a URL and model left in the settings, as the service it starts does.
    assert LocalProfile(engine_url="http://x/v1", model="m", version="1.2").expected()["engine_url"] is None
    assert LocalProfile(engine="openai", engine_url="http://x/v1", model="m", version="1.2").expected() == {
        "version": "1.2", "engine": "openai", "engine_url": "http://x/v1", "model": "m", "engine_key": ""}
    # a key is compared by fingerprint, so a new key restarts the service; echo has none
    keyed = LocalProfile(engine="openai", engine_url="http://x/v1", model="m", version="1.2", api_key=lambda: "sk-1")
    assert keyed.expected()["engine_key"] not in ("", "sk-1")
    assert LocalProfile(version="1.2", api_key=lambda: "sk-1").expected()["engine_key"] == ""


def test_without_a_login_session_the_runtime_folder_is_private_and_quiet(monkeypatch, tmp_path) -> None:
    """No XDG_RUNTIME_DIR (su, cron, a container, CI): platformdirs warns on stderr, which the
    frozen app's smoke test rightly fails on. Ours falls back to a private folder, silently."""
    import warnings

    from backend.entrypoints.local_service import ServicePaths

    monkeypatch.delenv("TINYLLAMA_RUNTIME_DIR", raising=False)
    monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)
    monkeypatch.setenv("TINYLLAMA_DATA_DIR", str(tmp_path / "data"))  # ensure() makes it: not the user's
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    monkeypatch.setattr("sys.platform", "linux")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        paths = ServicePaths.default()
    assert paths.runtime_dir.parent == tmp_path and paths.runtime_dir.name.startswith("tinyllama-")
    paths.ensure()
    assert paths.runtime_dir.stat().st_mode & 0o077 == 0


def test_llamacpp_without_its_file_answers_with_echo_and_says_why(tmp_path) -> None:  # type: ignore[no-untyped-def]
    missing = tmp_path / "gone.gguf"
    profile = LocalProfile(engine="llamacpp", model=str(missing))
    assert profile.engine == "echo" and profile.options() == ["--port", "0", "--engine", "echo"]
    assert str(missing) in profile.notice and "Account → Model" in profile.notice
    assert "Account → Model" in LocalProfile().notice  # the echo notice names the way to a model


def test_llamacpp_runs_the_settings_gguf_file(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from desktop.core.settings import Settings

    model = tmp_path / "tiny.gguf"
    model.write_bytes(b"GGUF")
    settings = Settings(tmp_path / "settings.json")
    settings.set("local.engine", "llamacpp")
    settings.set("local.gguf", str(model))
    settings.set("local.model", "a server's model name")  # belongs to the openai engine, not this one
    profile = LocalProfile.from_settings(settings)
    assert profile.options() == ["--port", "0", "--engine", "llamacpp", "--model", str(model)]
    assert profile.expected()["engine"] == "llamacpp" and profile.expected()["model"] == str(model)
    assert profile.notice == ""


def test_switching_engine_stops_the_in_process_stack_and_starts_the_new_one() -> None:
    made: list[_Stack] = []
    stopped: list[_Stack] = []

    def factory(**kw: Any) -> _Stack:
        stack = _Stack(**kw)
        stack.stop = lambda: stopped.append(stack)  # type: ignore[method-assign]
        made.append(stack)
        return stack

    profile = LocalProfile(stack_factory=factory)
    profile.start()
    profile.configure("openai", "http://127.0.0.1:11434/v1", "llama3.2")
    assert stopped == [made[0]]
    profile.start()
    assert made[1].kwargs["engine"] == "openai" and made[1].kwargs["model"] == "llama3.2"
