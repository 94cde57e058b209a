"""Run a plain callable off the UI thread; its result or error arrives on the UI thread.

The only place threads exist in the app. A Task is a QObject created on the UI thread; the
worker thread emits its private signal, which Qt queues to the Task's (UI) thread, where
the public `done`/`failed` signals fire and the callbacks run. Widgets are therefore
never touched from a worker thread.

An exception that is not an AppError (whose message is meant for the person) is a bug:
it is logged here with its traceback, where the thread still has it, before the view
shows a plain sentence instead of its text.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import shiboken6
from PySide6.QtCore import QObject, QRunnable, QThreadPool, Signal, Slot

from desktop.core.errors import AppError

log = logging.getLogger("tinyllama.desktop")


class Task(QObject):
    """One background call. `done(result)` or `failed(exception)` fires exactly once."""

    done = Signal(object)
    failed = Signal(object)
    # Carried across threads (queued). Two object signals rather than one (bool, object):
    # a queued bool argument trips a refcount bug in PySide6 6.12 at interpreter exit.
    _returned = Signal(object)
    _raised = Signal(object)

    def __init__(self, fn: Callable[[], Any], parent: QObject | None = None, owner: QObject | None = None) -> None:
        super().__init__(parent)
        self.fn = fn
        self.owner = owner
        self._returned.connect(self._deliver_result)
        self._raised.connect(self._deliver_error)

    def _owner_gone(self) -> bool:
        # A window closed while its call ran: its callbacks would touch deleted widgets.
        return self.owner is not None and not shiboken6.isValid(self.owner)

    @Slot(object)
    def _deliver_result(self, value: object) -> None:
        if not self._owner_gone():
            self.done.emit(value)
        self.deleteLater()

    @Slot(object)
    def _deliver_error(self, exc: object) -> None:
        if not self._owner_gone():
            self.failed.emit(exc)
        self.deleteLater()


class _Job(QRunnable):
    def __init__(self, task: Task) -> None:
        super().__init__()
        self.task = task
        self.setAutoDelete(True)

    def run(self) -> None:
        fn = self.task.fn
        try:
            result = fn()
        except BaseException as exc:  # delivered to the UI, never lost in a thread
            if not isinstance(exc, AppError):
                log.error("Unexpected error in %s", getattr(fn, "__qualname__", fn), exc_info=exc)
            self.task._raised.emit(exc)
        else:
            self.task._returned.emit(result)


class Runner(QObject):
    """A private thread pool; `shutdown()` joins it (tests call it in teardown)."""

    def __init__(self, max_threads: int = 4, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._pool = QThreadPool(self)
        self._pool.setMaxThreadCount(max_threads)
        self._closed = False

    def run(
        self,
        fn: Callable[[], Any],
        on_done: Callable[[Any], None] | None = None,
        on_error: Callable[[BaseException], None] | None = None,
        owner: QObject | None = None,
    ) -> Task:
        """Start `fn()` on a worker thread; callbacks run on the UI thread, and not at all
        once `owner` (the widget they update) has been deleted."""
        task = Task(fn, self, owner)
        if on_done is not None:
            task.done.connect(on_done)
        if on_error is not None:
            task.failed.connect(on_error)
        if not self._closed:
            self._pool.start(_Job(task))
        return task

    def active(self) -> int:
        return self._pool.activeThreadCount()

    def shutdown(self, timeout_ms: int = 15000) -> bool:
        """Stop taking work and wait for running calls; True when all have finished."""
        self._closed = True
        self._pool.clear()
        return self._pool.waitForDone(timeout_ms)
