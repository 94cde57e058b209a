"""Chat against the real local stack: send, grow, stop, restart mid-answer, errors."""

from __future__ import annotations

from PySide6.QtCore import Qt

from backend.entrypoints.local import LocalStack, free_port
from desktop.core.errors import BudgetExceededError, NetworkError
from desktop.core.models import ComputeState
from desktop.services.api import ApiClient
from tests.gui.conftest import save_screenshot

LONG = " ".join(f"word{i}" for i in range(400))  # ~12 s of echo at 30 ms a word


def _answer(window):  # type: ignore[no-untyped-def]
    msgs = [m for m in window.history.messages(window.chat.conversation.id) if m.role == "assistant"]
    return msgs[-1] if msgs else None


def test_send_and_watch_the_answer_grow(open_window, api, qtbot) -> None:  # type: ignore[no-untyped-def]
    window = open_window(api).window
    window.new_conversation()
    sizes: list[int] = []
    window.session.message_changed.connect(lambda m: sizes.append(len(m.content)))
    prompt = " ".join(f"w{i}" for i in range(60))
    window.chat.prompt.setPlainText(prompt)
    window.activateWindow()
    window.chat.prompt.setFocus()
    qtbot.keyClick(window.chat.prompt, Qt.Key.Key_Return, Qt.KeyboardModifier.ControlModifier)
    qtbot.waitUntil(lambda: _answer(window) is not None and _answer(window).status == "done",
                    timeout=20000)
    answer = _answer(window)
    assert answer.content == prompt
    assert len({s for s in sizes if 0 < s < len(prompt)}) >= 2, "the answer should grow in steps"
    assert answer.completion_tokens == 60 and answer.total_s is not None
    assert "60 tokens" in window.chat.transcript_text()
    assert "w59" in window.chat.transcript_text()
    assert window.chat.send_button.isEnabled() and not window.chat.stop_button.isEnabled()
    assert window.conversations.items.item(0).text().startswith("w0 w1")


def test_stop_cancels_on_the_server(open_window, api, qtbot) -> None:  # type: ignore[no-untyped-def]
    window = open_window(api).window
    window.new_conversation()
    window.send(LONG)
    qtbot.waitUntil(lambda: _answer(window).status == "running" and len(_answer(window).content) > 20,
                    timeout=20000)
    assert window.chat.stop_button.isEnabled()
    qtbot.mouseClick(window.chat.stop_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: _answer(window).status == "cancelled", timeout=10000)
    answer = _answer(window)
    server = api.prompt(answer.request_id)
    assert server.status == "cancelled"
    assert len(server.text) < len(LONG)
    assert "cancelled" in window.chat.transcript_text()


def test_restart_mid_answer_resumes(open_window, api, qtbot) -> None:  # type: ignore[no-untyped-def]
    first = open_window(api)
    first.window.new_conversation()
    first.window.send(LONG)
    qtbot.waitUntil(lambda: len(_answer(first.window).content) > 30, timeout=20000)
    partial = _answer(first.window)
    first.close()  # the app quits mid-answer

    second = open_window(api)  # a new window on the same data dir
    window = second.window
    assert window.chat.conversation.id == partial.conversation_id
    qtbot.waitUntil(lambda: _answer(window).status == "done", timeout=30000)
    answer = _answer(window)
    assert answer.id == partial.id and answer.content == LONG
    assert "word399" in window.chat.transcript_text()


def test_switching_chats_keeps_the_answer_going(open_window, api, qtbot) -> None:  # type: ignore[no-untyped-def]
    window = open_window(api).window
    busy = window.new_conversation()
    window.send(" ".join(["tick"] * 80))
    qtbot.waitUntil(lambda: _answer(window).status == "running", timeout=20000)
    window.new_conversation()
    assert window.chat.transcript_text().count("tick") == 0
    qtbot.waitUntil(lambda: window.history.messages(busy.id)[-1].status == "done", timeout=20000)
    window.open_conversation(busy.id)
    assert window.chat.transcript_text().count("tick") >= 80


def test_an_answer_off_screen_is_polled_every_two_seconds_and_at_once_when_shown(open_window, api, qtbot) -> None:  # type: ignore[no-untyped-def]
    window = open_window(api).window
    busy = window.new_conversation()
    window.send(LONG)
    qtbot.waitUntil(lambda: _answer(window).status == "running", timeout=20000)
    poller = window.session._pollers[_answer(window).id]
    qtbot.waitUntil(lambda: poller._timer.interval() in (250, 500), timeout=5000)  # on screen: as it streams

    window.new_conversation()  # the answer goes on in a chat nobody sees
    qtbot.waitUntil(lambda: poller._timer.interval() == 2000, timeout=5000)
    polled = []
    poller.updated.connect(polled.append)
    window.open_conversation(busy.id)  # shown again: polled now, not up to 2 s later
    assert poller._timer.remainingTime() <= 0 or not poller._timer.isActive()
    qtbot.waitUntil(lambda: bool(polled), timeout=1000)
    qtbot.waitUntil(lambda: poller._timer.interval() in (250, 500), timeout=5000)

    window.setWindowState(Qt.WindowState.WindowMinimized)  # nobody sees a minimised window
    qtbot.waitUntil(lambda: poller._timer.interval() == 2000, timeout=5000)
    window.setWindowState(Qt.WindowState.WindowNoState)
    qtbot.waitUntil(lambda: poller._timer.interval() in (250, 500), timeout=5000)
    window.session.stop_conversation(busy.id)
    qtbot.waitUntil(lambda: window.history.messages(busy.id)[-1].status == "cancelled", timeout=10000)


def test_wake_status_goes_from_stopped_to_ready(open_window, qtbot) -> None:  # type: ignore[no-untyped-def]
    with LocalStack(engine="echo", echo_delay_s=0.01) as fresh:
        api = ApiClient(fresh.url, lambda: fresh.token)
        opened = open_window(None)
        window = opened.window
        seen: list[ComputeState] = []
        window.wake.set_compute = _spy(window.wake.set_compute, seen, lambda c: c.state)
        with qtbot.waitSignal(window.session.inflight_changed, timeout=5000, raising=False):
            window.connect_api(api)
        window.status_poller.updated.connect(lambda s: seen.append(s.compute.state))
        qtbot.waitUntil(lambda: window.wake.state is ComputeState.STOPPED, timeout=10000)
        # A local engine is named, not a GPU (the settings' engine until a worker reports).
        assert window.wake.text().startswith("Echo on this computer: stopped")
        window.new_conversation()
        window.send("wake up please")
        qtbot.waitUntil(lambda: _answer(window).status == "done", timeout=20000)
        window.status_poller.poll_now()
        qtbot.waitUntil(lambda: window.wake.state is ComputeState.READY, timeout=10000)
        assert window.wake.text().startswith("Echo on this computer: ready") and "GPU" not in window.wake.text()
        assert {ComputeState.STARTING, ComputeState.LOADING_MODEL} & set(seen), seen
        opened.close()
        api.close()


def _spy(fn, seen, pick):  # type: ignore[no-untyped-def]
    def wrapper(value):  # type: ignore[no-untyped-def]
        seen.append(pick(value))
        return fn(value)
    return wrapper


def test_budget_refusal_is_shown(open_window, qtbot) -> None:  # type: ignore[no-untyped-def]
    with LocalStack(engine="echo", spend_usd=25.0, hard_cap_usd=20.0) as capped:
        api = ApiClient(capped.url, lambda: capped.token)
        opened = open_window(api)
        window = opened.window
        window.new_conversation()
        with qtbot.waitSignal(window.session.error, timeout=10000) as caught:
            window.send("hello")
        assert isinstance(caught.args[0], BudgetExceededError)
        qtbot.waitUntil(lambda: "Budget reached" in window.wake.error_text(), timeout=5000)
        assert "cost panel" in window.wake.error_text() or "hard cap" in window.wake.error_text()
        assert _answer(window).status == "failed"
        assert "hard cap" in window.chat.transcript_text()
        opened.close()
        api.close()


def test_network_error_is_shown(open_window, qtbot) -> None:  # type: ignore[no-untyped-def]
    down = ApiClient(f"http://127.0.0.1:{free_port()}", lambda: "t", timeout=(0.5, 0.5))
    opened = open_window(None)
    window = opened.window
    with qtbot.waitSignal(window.error_shown, timeout=10000):
        window.connect_api(down)
    assert "Can't reach" in window.wake.error_text()
    window.new_conversation()
    errors: list[object] = []
    window.session.error.connect(errors.append)
    window.send("anyone there?")
    # Waited on the answer, not the first error: the status poll may fail first.
    qtbot.waitUntil(lambda: _answer(window).status == "failed", timeout=10000)
    assert errors and all(isinstance(e, NetworkError) for e in errors)
    assert "Traceback" not in window.chat.transcript_text()


def test_expired_session_asks_to_sign_in_and_the_answer_resumes(open_window, stack, qtbot) -> None:  # type: ignore[no-untyped-def]
    token = {"value": stack.token}
    api = ApiClient(stack.url, lambda: token["value"])
    window = open_window(api).window
    window.new_conversation()
    window.send(" ".join(["again"] * 150))
    qtbot.waitUntil(lambda: _answer(window).status == "running", timeout=20000)
    with qtbot.waitSignal(window.sign_in_requested, timeout=10000):
        token["value"] = "expired"  # what a revoked session looks like to the API
    assert "sign in again" in window.wake.error_text()
    assert _answer(window).in_flight
    fresh = ApiClient(stack.url, lambda: stack.token)  # what signing in again hands over
    window.connect_api(fresh)
    qtbot.waitUntil(lambda: _answer(window).status == "done", timeout=20000)
    assert _answer(window).content.count("again") == 150
    api.close()
    fresh.close()


def test_the_strip_says_running_while_an_answer_streams(open_window, api, qtbot) -> None:  # type: ignore[no-untyped-def]
    window = open_window(api).window
    window.new_conversation()
    window.send(LONG)
    qtbot.waitUntil(lambda: _answer(window).status == "running", timeout=20000)
    window.status_poller.poll_now()  # the server counts the streaming job in its queue depth
    qtbot.waitUntil(lambda: window.wake.status.queue_depth >= 1 and "1 answer running" in window.wake.text(),
                    timeout=10000)
    text = window.wake.text()
    assert "queued" not in text and "Echo on this computer" in text, text
    save_screenshot(window, "status_running.png")
    window.stop()
    qtbot.waitUntil(lambda: _answer(window).status == "cancelled", timeout=10000)
    qtbot.waitUntil(lambda: "running" not in window.wake.text())
