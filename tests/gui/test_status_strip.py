"""The status strip says what is true (issue 13 §5, issue 12): when the idle GPU or local
engine stops, when it stopped, the engine just switched to, and the model's context as
the ceiling of "Max tokens"."""

from __future__ import annotations

import shutil
from datetime import datetime
from pathlib import Path

import pytest

from backend.core.ports import ComputeState
from desktop.app import App
from desktop.core.models import Compute, Conversation, ServerStatus
from desktop.core.paths import AppPaths
from desktop.services.credentials import CredentialStore, MemoryKeyring
from desktop.services.local_profile import LocalProfile
from desktop.views.chat_view import ChatView
from desktop.views.wake_status import WakeStatusBar
from tests.gui.conftest import save_screenshot
from tests.service_helpers import stop_all

# Local noon: "two hours ago" is the same day in every time zone.
NOON = datetime(2032, 2, 29, 12, 0).timestamp()


class Clock:
    """Epoch seconds that move only when the test moves them."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def shot(widget, name: str) -> None:  # type: ignore[no-untyped-def]
    widget.resize(720, widget.sizeHint().height())
    save_screenshot(widget, f"status_{name.replace('-', '_')}.png")


def local(state: ComputeState, **fields: object) -> ServerStatus:
    return ServerStatus(compute=Compute(state), instance_type="local", engine="llamacpp",
                        model="tinyllama-1.1b-chat-v1.0.Q4_K_M", **fields)  # type: ignore[arg-type]


def gpu(state: ComputeState, **fields: object) -> ServerStatus:
    return ServerStatus(compute=Compute(state), instance_type="g4dn.xlarge", **fields)  # type: ignore[arg-type]


@pytest.fixture
def bar(qtbot):  # type: ignore[no-untyped-def]
    clock = Clock(NOON)
    widget = WakeStatusBar(clock=clock)
    qtbot.addWidget(widget)
    widget.show()
    return widget, clock


def test_an_idle_local_engine_says_when_it_stops_and_counts_down(bar) -> None:  # type: ignore[no-untyped-def]
    widget, clock = bar
    widget.set_status(local(ComputeState.READY, idle_stop_at=NOON + 12 * 60))
    assert widget.text() == "TinyLlama-1.1B-Chat on this computer: ready · stops in 12 min if idle"
    shot(widget, "local-ready-stops-in")
    assert widget._tick.isActive()  # the words change with time, without a new /status
    clock.now += 11 * 60 + 20
    widget._tick.timeout.emit()
    assert widget.text().endswith("stops in 40 s if idle")
    clock.now += 60
    widget._tick.timeout.emit()
    assert widget.text().endswith("stops any moment now if idle")


def test_a_stopped_local_engine_says_when_it_stopped(bar) -> None:  # type: ignore[no-untyped-def]
    widget, _clock = bar
    widget.set_status(local(ComputeState.STOPPED, stopped_at=NOON - 5 * 60))
    assert widget.text() == ("TinyLlama-1.1B-Chat on this computer: stopped 5 min ago; "
                             "starts on the next prompt")
    shot(widget, "local-stopped-ago")


def test_the_gpu_says_about_when_it_stops_and_when_it_stopped(bar) -> None:  # type: ignore[no-untyped-def]
    widget, _clock = bar
    widget.set_status(gpu(ComputeState.READY, idle_stop_at=NOON + 4 * 60 + 50))
    # Its worker stops it at the deadline; EC2's stopping then takes a while: "about".
    assert widget.text() == "GPU ready (g4dn.xlarge) · stops in about 5 min if idle"
    shot(widget, "gpu-ready-stops-in")
    widget.set_status(gpu(ComputeState.STOPPED, stopped_at=NOON - 2 * 3600))
    assert widget.text() == "GPU stopped at 10:00"
    shot(widget, "gpu-stopped-at")


def test_no_deadline_is_said_while_answers_run_or_when_the_server_does_not_know(bar) -> None:  # type: ignore[no-untyped-def]
    widget, _clock = bar
    widget.set_status(gpu(ComputeState.READY, idle_stop_at=NOON + 600, queue_depth=1))
    widget.set_waiting(0, running=1)
    assert "stops" not in widget.text() and "1 answer running" in widget.text()
    widget.set_waiting(0)
    widget.set_status(gpu(ComputeState.READY))
    assert widget.text() == "GPU ready (g4dn.xlarge)" and not widget._tick.isActive()
    # A prompt's answer that says the GPU is starting again drops the old deadline.
    widget.set_status(gpu(ComputeState.READY, idle_stop_at=NOON + 600))
    widget.set_compute(Compute(ComputeState.STARTING, 30))
    assert "stops" not in widget.text()


def test_max_tokens_follows_the_models_context_without_rewriting_the_chat(qtbot) -> None:  # type: ignore[no-untyped-def]
    view = ChatView()
    qtbot.addWidget(view)
    view.set_conversation(Conversation(id=1, title="t", max_tokens=1024), [])
    edits: list[object] = []
    view.settings_changed.connect(lambda *a: edits.append(a))
    view.set_context_tokens(512)
    assert view.max_tokens.maximum() == 512 and view.max_tokens.value() == 512
    assert edits == [] and view.conversation is not None and view.conversation.max_tokens == 1024
    view.set_context_tokens(None)  # a model whose context is not known: the contract's limit
    assert view.max_tokens.maximum() == 4096 and view.max_tokens.value() == 1024


def test_switching_the_engine_shows_the_new_one_at_once(  # type: ignore[no-untyped-def]
        qtbot, paths: AppPaths, tmp_path: Path, tiny_gguf: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 12: after Account → Model… the strip named the old engine until the first
    prompt; now the restarted service's /status names the new one, and its context bounds
    "Max tokens"."""
    marker = str(tmp_path / "runtime")
    monkeypatch.setenv("TINYLLAMA_RUNTIME_DIR", marker)
    monkeypatch.setenv("TINYLLAMA_DATA_DIR", str(tmp_path / "service"))
    model = tmp_path / "tiny-llama.gguf"
    shutil.copy(tiny_gguf, model)
    try:
        app = App(paths, CredentialStore(MemoryKeyring()), LocalProfile(service_args=["--claim-idle", "0.5"]))
        qtbot.addWidget(app.window)
        app.settings.set("local.model_offered", True)  # no first-run model offer in this test
        app.window.show()
        qtbot.waitExposed(app.window)
        app.start()
        qtbot.waitUntil(lambda: app.window.wake.text().startswith("Echo on this computer"), timeout=30000)
        app.window.new_conversation()

        app.settings.set("local.engine", "llamacpp")
        app.settings.set("local.gguf", str(model))
        app.apply_local_settings()  # what the model dialog's model_chosen does
        qtbot.waitUntil(lambda: app.window.wake.text().startswith("tiny-llama on this computer"), timeout=30000)
        assert app.window.chat.max_tokens.maximum() == 512
        app.shutdown()
    finally:
        stop_all(marker)
