"""Screenshots for docs/screenshots (linked from the README): the main window mid-answer,
with code, and in an error state. The empty window and the sign-in dialog are saved by
test_app.py and test_sign_in.py. Each one is looked at after a change to the views."""

from __future__ import annotations

from backend.entrypoints.local import LocalStack
from desktop.services.api import ApiClient
from tests.gui.conftest import save_screenshot

QUESTION = "Write a Python function that adds two numbers, and show how to call it."
ANSWER_MD = (
    "Sure — here is a small function with a type hint:\n\n"
    "```python\ndef add(a: int, b: int) -> int:\n    \"\"\"Return the sum.\"\"\"\n    return a + b\n\n"
    "print(add(2, 3))  # 5\n```\n\n"
    "Call it with **two numbers**; it returns their sum. Use `click Copy` to take the code."
)


def _last(window):  # type: ignore[no-untyped-def]
    return window.history.messages(window.chat.conversation.id)[-1]


def test_mid_answer_and_code(open_window, api, qtbot) -> None:  # type: ignore[no-untyped-def]
    window = open_window(api).window
    window.resize(1000, 680)
    window.new_conversation()
    sentence = ("The GPU wakes when a prompt arrives, streams the answer into Redis, and the app "
                "polls it four times a second so the text grows smoothly.")
    story = " ".join([sentence] * 12)
    window.send(story)
    qtbot.waitUntil(lambda: _last(window).status == "running" and len(_last(window).content) > 120,
                    timeout=20000)
    save_screenshot(window, "main_mid_answer.png")
    window.stop()
    qtbot.waitUntil(lambda: not _last(window).in_flight, timeout=10000)

    window.new_conversation()
    window.send(ANSWER_MD)  # the echo engine answers with the same Markdown
    qtbot.waitUntil(lambda: _last(window).status == "done", timeout=20000)
    save_screenshot(window, "main_code.png")


def test_error_state(open_window, qtbot) -> None:  # type: ignore[no-untyped-def]
    with LocalStack(engine="echo", spend_usd=25.0, hard_cap_usd=20.0) as capped:
        api = ApiClient(capped.url, lambda: capped.token)
        opened = open_window(api)
        window = opened.window
        window.resize(1000, 680)
        window.new_conversation()
        window.send(QUESTION)
        qtbot.waitUntil(lambda: "Budget reached" in window.wake.error_text(), timeout=10000)
        qtbot.waitUntil(lambda: _last(window).status == "failed", timeout=10000)
        save_screenshot(window, "error_budget.png")
        opened.close()
        api.close()
