"""Account → Model…: one-click download with progress and Cancel (from a loopback server),
a GGUF file the person has, an OpenAI-compatible server with its key in the keyring; and
the app switching engine without a restart."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from PySide6.QtGui import QPalette
from PySide6.QtWidgets import QApplication

from desktop.app import App
from desktop.core.model_catalog import TINYLLAMA_CHAT, CatalogModel
from desktop.core.paths import AppPaths
from desktop.core.settings import Settings
from desktop.qt.runner import Runner
from desktop.services.credentials import ENGINE_API_KEY, CredentialStore, MemoryKeyring
from desktop.services.local_profile import LocalProfile
from desktop.views import theme
from desktop.views.model_dialog import ModelDialog
from tests.fixtures.model_server import BYTES_PATH, ModelServer
from tests.gui.conftest import fast_local_stack, save_screenshot

PAYLOAD = b"GGUF" + os.urandom(2 * (1 << 20))


@pytest.fixture
def server() -> Iterator[ModelServer]:
    with ModelServer(PAYLOAD) as s:
        yield s



def _model(server: ModelServer) -> CatalogModel:
    # ModelServer serves /repo/resolve/abc123/tiny.gguf, as the Hub serves repo@revision/file.
    hub = server.url.split("/repo/")[0]
    return TINYLLAMA_CHAT._replace(hub=hub, repository="repo", revision="abc123", file_name="tiny.gguf",
                                   size_bytes=len(PAYLOAD), sha256=server.sha256)


def _dialog(qtbot, paths: AppPaths, runner: Runner, model: CatalogModel,  # type: ignore[no-untyped-def]
            store: CredentialStore | None = None) -> ModelDialog:
    dialog = ModelDialog(Settings(paths.settings_file), paths.data_dir, runner,
                         store or CredentialStore(MemoryKeyring()), model=model)
    qtbot.addWidget(dialog)
    dialog.show()
    qtbot.waitExposed(dialog)
    return dialog


def test_one_click_downloads_shows_progress_and_uses_the_model(qtbot, paths, runner, server) -> None:  # type: ignore[no-untyped-def]
    model = _model(server)
    dialog = _dialog(qtbot, paths, runner, model)
    target = paths.data_dir / "models" / "tiny.gguf"
    assert dialog.download_choice.isChecked()
    assert str(paths.data_dir / "models") in dialog.folder.text()  # where it will be stored
    assert "2 MB" in dialog.download_choice.text()  # its size, before anything downloads
    server.pause.clear()  # hold the second half, to see (and photograph) a download under way
    with qtbot.waitSignal(dialog.model_chosen, timeout=20000):
        dialog.use_button.click()
        qtbot.waitUntil(lambda: "/s" in dialog.progress_text.text(), timeout=10000)
        assert " of 2 MB" in dialog.progress_text.text() and dialog.cancel_button.isEnabled()
        assert 0 < dialog.progress.value() < 1000
        save_screenshot(dialog, "model_download.png")
        server.pause.set()
    settings = json.loads(paths.settings_file.read_text())["local"]
    assert settings["engine"] == "llamacpp" and settings["gguf"] == str(target)
    assert target.read_bytes() == PAYLOAD and not dialog.isVisible()


def test_cancel_keeps_the_bytes_and_offers_to_resume(qtbot, paths, runner, server) -> None:  # type: ignore[no-untyped-def]
    dialog = _dialog(qtbot, paths, runner, _model(server))
    server.pause.clear()
    dialog.download_button.click()
    qtbot.waitUntil(lambda: dialog.downloader.partial_bytes(dialog.catalog_model) > 0, timeout=10000)
    dialog.cancel_button.click()  # while the server sends nothing
    qtbot.waitUntil(lambda: not dialog.downloading, timeout=5000)
    server.pause.set()
    assert "cancelled" in dialog.progress_text.text() and "kept" in dialog.progress_text.text()
    assert dialog.download_button.text() == "Resume download" and dialog.download_button.isEnabled()
    assert not paths.settings_file.exists() or "llamacpp" not in paths.settings_file.read_text()
    with qtbot.waitSignal(dialog.model_chosen, timeout=20000):
        dialog.download_button.click()
    assert server.ranges[-1] is not None and server.ranges[-1].startswith("bytes=")


def test_a_download_that_fails_says_why(qtbot, paths, runner, server) -> None:  # type: ignore[no-untyped-def]
    model = _model(server)._replace(file_name="gone.gguf")  # the server has no such file: 404
    dialog = _dialog(qtbot, paths, runner, model)
    dialog.download_button.click()
    qtbot.waitUntil(lambda: "HTTP 404" in dialog.problems.text(), timeout=10000)
    assert dialog.isVisible() and dialog.download_button.isEnabled()
    assert BYTES_PATH not in dialog.problems.text()


def test_a_gguf_file_i_already_have(qtbot, paths, runner, server, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    dialog = _dialog(qtbot, paths, runner, _model(server))
    dialog.file_choice.setChecked(True)
    not_a_model = tmp_path / "notes.gguf"
    not_a_model.write_bytes(b"hello")
    dialog.gguf.setText(str(not_a_model))
    dialog.use_button.click()
    assert "not a GGUF model" in dialog.problems.text() and dialog.isVisible()
    mine = tmp_path / "mine.gguf"
    mine.write_bytes(b"GGUF\x03\x00\x00\x00")
    dialog.gguf.setText(str(mine))
    with qtbot.waitSignal(dialog.model_chosen, timeout=2000):
        dialog.use_button.click()
    saved = json.loads(paths.settings_file.read_text())["local"]
    assert saved["engine"] == "llamacpp" and saved["gguf"] == str(mine)
    assert server.ranges == []  # nothing was downloaded


def test_an_openai_compatible_server_with_its_key_in_the_keyring(qtbot, paths, runner, server,  # type: ignore[no-untyped-def]
                                                                   openai_server) -> None:
    keyring = MemoryKeyring()
    dialog = _dialog(qtbot, paths, runner, _model(server), CredentialStore(keyring))
    dialog.server_choice.setChecked(True)
    dialog.base_url.setText("localhost:11434")
    dialog.test_button.click()
    assert "must start with http" in dialog.test_result.text()
    dialog.base_url.setText(openai_server.url)
    dialog.api_key.setText("sk-secret-123")
    dialog.test_button.click()
    qtbot.waitUntil(lambda: "Connected" in dialog.test_result.text(), timeout=10000)
    assert [dialog.server_model.itemText(i) for i in range(dialog.server_model.count())] == ["tiny"]
    assert dialog.server_model.currentText() == "tiny"
    save_screenshot(dialog, "model_server.png")
    with qtbot.waitSignal(dialog.model_chosen, timeout=2000):
        dialog.use_button.click()
    assert keyring.get_password("TinyLlama", ENGINE_API_KEY) == "sk-secret-123"
    text = paths.settings_file.read_text()
    assert "sk-secret-123" not in text  # never in a plain file
    saved = json.loads(text)["local"]
    assert saved["engine"] == "openai" and saved["engine_url"] == openai_server.url and saved["model"] == "tiny"


def test_a_server_that_does_not_answer_is_said_in_words(qtbot, paths, runner, server) -> None:  # type: ignore[no-untyped-def]
    dialog = _dialog(qtbot, paths, runner, _model(server))
    dialog.server_choice.setChecked(True)
    dialog.base_url.setText("http://127.0.0.1:9/v1")  # the discard port: nothing listens
    dialog.test_button.click()
    qtbot.waitUntil(lambda: "Nothing answers" in dialog.test_result.text(), timeout=10000)
    assert dialog.test_button.isEnabled()


def test_dark_palette_screenshot(qtbot, paths, runner, server) -> None:  # type: ignore[no-untyped-def]
    app = QApplication.instance()
    assert isinstance(app, QApplication)
    theme.apply(app, "dark")  # the app's own Dark theme
    try:
        dialog = _dialog(qtbot, paths, runner, _model(server))
        window_colour = theme.dark_palette().color(QPalette.ColorRole.Window)
        assert dialog.palette().color(QPalette.ColorRole.Window) == window_colour
        save_screenshot(dialog, "model_dialog_dark.png")
    finally:
        theme.apply(app, "system")


def test_first_run_offers_a_model_and_switching_needs_no_restart(qtbot, paths: AppPaths,  # type: ignore[no-untyped-def]
                                                                 openai_server) -> None:
    app = App(paths, CredentialStore(MemoryKeyring()), LocalProfile(stack_factory=fast_local_stack))
    qtbot.addWidget(app.window)
    try:
        app.window.show()
        app.start()
        # Until a model exists, echo answers, and the notice says why.
        assert "echo engine" in app.window.notice.text()
        qtbot.waitUntil(lambda: app.model_dialog is not None and app.model_dialog.isVisible(), timeout=5000)
        dialog = app.model_dialog
        assert isinstance(dialog, ModelDialog)
        qtbot.waitUntil(lambda: app.api is not None, timeout=20000)
        conv = app.window.new_conversation()
        app.window.send("still echo")
        qtbot.waitUntil(lambda: app.history.messages(conv.id)[-1].status == "done", timeout=20000)
        assert app.history.messages(conv.id)[-1].content == "still echo"

        first_api = app.api
        dialog.server_choice.setChecked(True)
        dialog.base_url.setText(openai_server.url)
        dialog.server_model.setCurrentText("tiny")
        dialog.use_button.click()
        qtbot.waitUntil(lambda: app.api is not None and app.api is not first_api, timeout=20000)
        assert app.local is not None and app.local.engine == "openai"
        assert app.window.notice.text() == ""
        app.window.send("now a model")
        qtbot.waitUntil(lambda: app.history.messages(conv.id)[-1].status == "done", timeout=20000)
        assert app.history.messages(conv.id)[-1].content.split() == ["t0", "t1", "t2"]
        assert Settings(paths.settings_file).get("local.model_offered") is True
    finally:
        app.shutdown()
