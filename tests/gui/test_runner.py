"""The runner's callbacks reach a widget only while it exists: a wizard closed while its
images were being listed raised "Internal C++ object already deleted" in the event loop."""

from __future__ import annotations

import threading
from typing import Any

import shiboken6
from PySide6.QtWidgets import QLabel


def _call_after_release(runner: Any, owner: QLabel, seen: list[str]) -> tuple[threading.Event, Any]:
    """A call that returns when released; its callbacks write into `seen`."""
    release = threading.Event()
    task = runner.run(lambda: release.wait(10) and "listed",
                      lambda value: seen.append(value), lambda exc: seen.append(f"failed: {exc}"), owner=owner)
    return release, task


def test_a_result_for_a_deleted_widget_is_dropped_and_one_for_a_live_widget_arrives(runner, qtbot) -> None:  # type: ignore[no-untyped-def]
    gone, alive = QLabel(), QLabel()
    qtbot.addWidget(alive)
    seen_gone: list[str] = []
    seen_alive: list[str] = []
    first, first_task = _call_after_release(runner, gone, seen_gone)
    second, _ = _call_after_release(runner, alive, seen_alive)
    shiboken6.delete(gone)  # the window closed while the call ran
    first.set()
    second.set()
    qtbot.waitUntil(lambda: seen_alive == ["listed"], timeout=5000)
    qtbot.waitUntil(lambda: not shiboken6.isValid(first_task), timeout=5000)  # delivered (and dropped)
    assert seen_gone == []
