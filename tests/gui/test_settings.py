"""The profile dialog and per-chat generation settings."""

from __future__ import annotations

import json

import pytest

from desktop.core.settings import Settings
from desktop.views.settings_dialog import SettingsDialog, aws_profile_problems
from tests.gui.conftest import save_screenshot


def test_profile_dialog_validates_and_saves(qtbot, paths) -> None:  # type: ignore[no-untyped-def]
    settings = Settings(paths.settings_file)
    dialog = SettingsDialog(settings)
    qtbot.addWidget(dialog)
    assert dialog.local.isChecked() and not dialog.aws_box.isEnabled()
    dialog.aws.setChecked(True)
    dialog.fields["api_url"].setText("not a url")
    dialog.save()
    assert "API URL" in dialog.problems.text() and not paths.settings_file.exists()
    dialog.fields["api_url"].setText("https://abc.execute-api.us-east-1.amazonaws.com")
    dialog.fields["user_pool_id"].setText("us-east-1_AbC123")
    dialog.fields["client_id"].setText("client123")
    with qtbot.waitSignal(dialog.accepted, timeout=1000):
        dialog.save()
    saved = json.loads(paths.settings_file.read_text())
    assert saved["profile"]["kind"] == "aws"
    assert saved["aws"]["user_pool_id"] == "us-east-1_AbC123"
    assert aws_profile_problems(saved["aws"]) == []


def test_chat_settings_go_into_the_request(open_window, api, qtbot) -> None:  # type: ignore[no-untyped-def]
    sent: list[tuple[list[dict[str, str]], dict[str, object]]] = []
    real_submit = api.submit

    def spy(messages, **params):  # type: ignore[no-untyped-def]
        sent.append((messages, params))
        return real_submit(messages, **params)

    api.submit = spy
    window = open_window(api).window
    conv = window.new_conversation()
    window.chat.settings_button.setChecked(True)
    window.chat.system_prompt.setPlainText("Answer in French.")
    window.chat.system_prompt.editingFinished.emit()
    window.chat.temperature.setValue(0.3)
    window.chat.max_tokens.setValue(64)
    assert window.history.conversation(conv.id).max_tokens == 64
    window.send("bonjour")
    qtbot.waitUntil(lambda: window.history.messages(conv.id)[-1].status == "done", timeout=20000)
    window.send("encore")
    qtbot.waitUntil(lambda: len(sent) == 2 and window.history.messages(conv.id)[-1].status == "done",
                    timeout=20000)
    messages, params = sent[1]
    assert messages[0] == {"role": "system", "content": "Answer in French."}
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user"]
    assert params["temperature"] == 0.3 and params["max_tokens"] == 64
    assert params["idempotency_key"]


def test_local_engine_is_chosen_in_the_dialog(qtbot, paths) -> None:  # type: ignore[no-untyped-def]
    settings = Settings(paths.settings_file)
    dialog = SettingsDialog(settings)
    qtbot.addWidget(dialog)
    assert dialog.engine.currentData() == "echo" and not dialog.engine_url.isEnabled()

    dialog.engine.setCurrentIndex(dialog.engine.findData("openai"))
    assert dialog.engine_url.isEnabled()
    dialog.engine_url.setText("localhost:11434")  # no scheme
    dialog.save()
    assert "URL" in dialog.problems.text() and not paths.settings_file.exists()

    dialog.engine_url.setText("http://127.0.0.1:11434/v1")
    dialog.model.setText("llama3.2")
    with qtbot.waitSignal(dialog.accepted, timeout=1000):
        dialog.save()
    save_screenshot(dialog, "profile_dialog.png")
    saved = json.loads(paths.settings_file.read_text())["local"]
    assert saved == {**saved, "engine": "openai", "engine_url": "http://127.0.0.1:11434/v1", "model": "llama3.2"}


def test_vllm_engine_needs_a_model(qtbot, paths) -> None:  # type: ignore[no-untyped-def]
    dialog = SettingsDialog(Settings(paths.settings_file))
    qtbot.addWidget(dialog)
    dialog.engine.setCurrentIndex(dialog.engine.findData("vllm"))
    dialog.save()
    assert "model" in dialog.problems.text() and not paths.settings_file.exists()


def test_llamacpp_engine_runs_a_gguf_file_kept_apart_from_server_model_names(qtbot, paths, tmp_path) -> None:  # type: ignore[no-untyped-def]
    settings = Settings(paths.settings_file)
    settings.set("local.model", "llama3.2")
    dialog = SettingsDialog(settings)
    qtbot.addWidget(dialog)
    dialog.engine.setCurrentIndex(dialog.engine.findData("llamacpp"))
    assert dialog.model.text() == ""  # the openai engine's model name is not a file
    dialog.model.setText(str(tmp_path / "missing.gguf"))
    dialog.save()
    assert "GGUF model file" in dialog.problems.text() and not paths.settings_file.exists()
    model = tmp_path / "tiny.gguf"
    model.write_bytes(b"GGUF")
    dialog.model.setText(str(model))
    with qtbot.waitSignal(dialog.accepted, timeout=1000):
        dialog.save()
    saved = json.loads(paths.settings_file.read_text())["local"]
    assert saved["engine"] == "llamacpp" and saved["gguf"] == str(model) and saved["model"] == "llama3.2"


@pytest.mark.parametrize(("url", "ok"), [
    ("https://abc123.execute-api.eu-west-1.amazonaws.com", True),
    ("http://127.0.0.1:8765", True),
    ("http://localhost:8765/", True),
    # The access token would cross the network in the clear.
    ("http://abc123.execute-api.eu-west-1.amazonaws.com", False),
    ("http://127.0.0.1.evil.example", False),
    ("ftp://example.org", False),
])
def test_the_api_url_is_https_except_for_a_stack_on_this_computer(url: str, ok: bool) -> None:
    values = {"api_url": url, "region": "eu-west-1", "user_pool_id": "eu-west-1_AbC123", "client_id": "x"}
    assert (aws_profile_problems(values) == []) is ok
