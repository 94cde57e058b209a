"""QTimer-driven pollers for one request and for `GET /status`.

Each waits for the previous answer before scheduling the next call (a single-shot timer
restarted in the callback), so a slow API never gets a pile of overlapping requests.
Intervals and backoff come from `desktop.core.polling`, where they are justified.
"""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import QObject, QTimer, Signal

from desktop.core import polling
from desktop.core.errors import AppError, NotFoundError, SessionExpiredError
from desktop.core.models import ComputeState, PromptState, ServerStatus
from desktop.qt.runner import Runner


class PromptPoller(QObject):
    """Polls one request id until it ends. `updated` per answer, `finished` at the end."""

    updated = Signal(object)  # PromptState
    failed = Signal(object)  # AppError (the poller keeps trying, with backoff)
    finished = Signal(object)  # final PromptState, or None if the request is gone

    def __init__(
        self, runner: Runner, fetch: Callable[[str], PromptState], request_id: str,
        parent: QObject | None = None, conversation_id: int | None = None,
    ) -> None:
        super().__init__(parent)
        self.request_id = request_id
        self.conversation_id = conversation_id
        self._runner = runner
        self._fetch = fetch
        self._errors = 0
        self._pace = polling.PromptPace()
        self._stopped = False
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.timeout.connect(self._poll)

    def start(self, delay_s: float = 0.0) -> None:
        self._timer.start(int(delay_s * 1000))

    def stop(self) -> None:
        self._stopped = True
        self._timer.stop()

    def set_on_screen(self, on_screen: bool) -> None:
        """Whether its chat is shown: an answer off screen is polled every 2 s, and one that
        comes on screen is polled at once (unless a poll is under way)."""
        was, self._pace.on_screen = self._pace.on_screen, on_screen
        if on_screen and not was and self._timer.isActive():
            self._timer.start(0)

    def _poll(self) -> None:
        if self._stopped:
            return
        rid = self.request_id
        self._runner.run(lambda: self._fetch(rid), self._on_state, self._on_error)

    def _on_state(self, state: PromptState) -> None:
        if self._stopped:
            return
        self._errors = 0
        interval = self._pace.after(state.status, state.text)
        self.updated.emit(state)
        if state.terminal:
            self._stopped = True
            self.finished.emit(state)
        else:
            self._timer.start(int(interval * 1000))

    def _on_error(self, exc: BaseException) -> None:
        if self._stopped:
            return
        if isinstance(exc, NotFoundError):
            # Its result aged out (5 min after it ended) or it never existed here.
            self._stopped = True
            self.finished.emit(None)
            return
        self._errors += 1
        error = exc if isinstance(exc, AppError) else AppError(f"Polling failed: {exc}")
        self.failed.emit(error)
        if isinstance(exc, SessionExpiredError):
            self._stopped = True
            return
        self._timer.start(int(polling.prompt_interval(self._pace.status or "queued", self._errors) * 1000))


class StatusPoller(QObject):
    """Polls `GET /status`: often while something changes, rarely when idle."""

    updated = Signal(object)  # ServerStatus
    failed = Signal(object)  # AppError

    def __init__(
        self, runner: Runner, fetch: Callable[[], ServerStatus],
        busy: Callable[[], bool] = lambda: False, parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self._runner = runner
        self._fetch = fetch
        self._busy = busy
        self._errors = 0
        self._state = ComputeState.UNKNOWN
        self._inflight = False
        self._running = False
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.timeout.connect(self.poll_now)

    def start(self) -> None:
        self._running = True
        self.poll_now()

    def stop(self) -> None:
        self._running = False
        self._timer.stop()

    def poll_now(self) -> None:
        """Ask now (e.g. right after sending a prompt), unless a call is already out."""
        if not self._running or self._inflight:
            return
        self._timer.stop()
        self._inflight = True
        self._runner.run(self._fetch, self._on_status, self._on_error)

    def _schedule(self) -> None:
        if self._running:
            interval = polling.status_interval(self._state, self._busy(), self._errors)
            self._timer.start(int(interval * 1000))

    def _on_status(self, status: ServerStatus) -> None:
        self._inflight = False
        self._errors = 0
        self._state = status.compute.state
        self.updated.emit(status)
        self._schedule()

    def _on_error(self, exc: BaseException) -> None:
        self._inflight = False
        self._errors += 1
        self.failed.emit(exc if isinstance(exc, AppError) else AppError(str(exc)))
        self._schedule()
