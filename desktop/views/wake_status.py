"""The always-visible strip that says what the GPU does, with a countdown, and why a
prompt waits; it turns red for the budget guard's refusal and for connection errors."""

from __future__ import annotations

import time
from collections.abc import Callable

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QHBoxLayout, QLabel, QSizePolicy, QWidget

from desktop.core import wake
from desktop.core.errors import AppError, BudgetExceededError
from desktop.core.models import Compute, ComputeState, ServerStatus
from desktop.views import theme

# Each state's dot, as the theme's colour name (a style sheet template).
_DOT = {
    ComputeState.READY: "$dot_ready",
    ComputeState.STARTING: "$dot_busy",
    ComputeState.LOADING_MODEL: "$dot_busy",
    ComputeState.STOPPING: "$dot_stopping",
    ComputeState.STOPPED: "$dot_stopped",
    ComputeState.UNKNOWN: "$dot_unknown",
}


class WakeStatusBar(QWidget):
    """Feed it `/status` answers, prompt hints, the waiting count and errors. `clock`
    (epoch seconds) says how long until the machine idles out or since it stopped."""

    def __init__(self, parent: QWidget | None = None, clock: Callable[[], float] = time.time) -> None:
        super().__init__(parent)
        self.clock = clock
        self.status = ServerStatus()
        self._received = time.monotonic()
        self._waiting = 0
        self._running = 0
        # The Local profile's engine from the settings, named until a worker reports its own.
        self.local_engine = ""
        self._error: AppError | None = None
        self._note = ""
        self.dot = QLabel("●", self)
        self.label = QLabel("Connecting…", self)
        self.label.setObjectName("wakeStatus")
        self.error_label = QLabel(self)
        self.error_label.setObjectName("wakeError")
        self.error_label.setWordWrap(True)
        theme.styled(self.error_label, "color: $error;")
        self.error_label.setVisible(False)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(8, 2, 8, 2)
        layout.addWidget(self.dot)
        layout.addWidget(self.label)
        layout.addSpacing(12)
        layout.addWidget(self.error_label, 1)
        layout.addStretch(0)
        self.label.setSizePolicy(QSizePolicy.Policy.Maximum, QSizePolicy.Policy.Preferred)
        self._tick = QTimer(self)
        self._tick.setInterval(1000)
        self._tick.timeout.connect(self._refresh)
        self._refresh()

    @property
    def state(self) -> ComputeState:
        return self.status.compute.state

    @property
    def error(self) -> AppError | None:
        return self._error

    def text(self) -> str:
        return self.label.text()

    def error_text(self) -> str:
        return self.error_label.text() if self.error_label.isVisible() else ""

    def set_status(self, status: ServerStatus) -> None:
        self.status = status
        self._received = time.monotonic()
        if not isinstance(self._error, BudgetExceededError) or status.budget.state != "exceeded":
            self.clear_error()
        if status.budget.state == "exceeded" and self._error is None:
            spent = status.budget.month_to_date_usd
            self.show_error(BudgetExceededError(
                "The monthly budget is used up"
                + (f" (${spent:.2f})" if spent is not None else "")
                + ", so the GPU stays off. See the cost panel to raise the cap."
            ))
        self._refresh()

    def set_compute(self, compute: Compute) -> None:
        """A fresher compute state from a prompt answer, between `/status` polls."""
        if compute.state is ComputeState.UNKNOWN:
            return
        same = compute.state == self.status.compute.state
        # A prompt's answer says nothing of when the machine idles out or stopped: those
        # hold only while the state is the one /status saw.
        self.status = self.status._replace(
            compute=compute,
            idle_stop_at=self.status.idle_stop_at if same else None,
            stopped_at=self.status.stopped_at if same else None,
        )
        self._received = time.monotonic()
        self._refresh()

    def set_note(self, text: str) -> None:
        """Say `text` instead of the compute state (e.g. while reconnecting); '' ends it."""
        self._note = text
        self._refresh()

    def set_waiting(self, count: int, running: int = 0) -> None:
        """`count` prompts wait for an answer to start; `running` answers stream now."""
        self._waiting = count
        self._running = running
        self._refresh()

    def show_error(self, error: AppError) -> None:
        self._error = error
        prefix = "Budget reached: " if isinstance(error, BudgetExceededError) else ""
        self.error_label.setText(prefix + str(error))
        self.error_label.setVisible(True)

    def clear_error(self) -> None:
        self._error = None
        self.error_label.clear()
        self.error_label.setVisible(False)

    def _refresh(self) -> None:
        eta_left = max(self.status.compute.eta_s - (time.monotonic() - self._received), 0.0)
        status = self.status
        if status.engine is None and self.local_engine:
            status = status._replace(engine=self.local_engine)
        self.label.setText(self._note or wake.describe(status, eta_left, self._waiting, self._running,
                                                       now=self.clock()))
        # A note (reconnecting) means the last state is not known to hold: no green dot.
        state = ComputeState.UNKNOWN if self._note else self.state
        theme.styled(self.dot, f"color: {_DOT[state]}; font-size: 14px;")
        interval = self._tick_interval_ms()
        if interval is None:
            self._tick.stop()
        elif not self._tick.isActive() or self._tick.interval() != interval:
            self._tick.start(interval)

    def _tick_interval_ms(self) -> int | None:
        """How often the words change by themselves: every second for a wake's countdown and
        for an idle deadline under two minutes (said in seconds), every 15 s for minutes
        (the idle deadline, "stopped 5 min ago"); never otherwise."""
        status = self.status
        if self.state in (ComputeState.STARTING, ComputeState.LOADING_MODEL):
            return 1000
        if self.state == ComputeState.READY and status.idle_stop_at is not None:
            return 1000 if status.idle_stop_at - self.clock() < 120 else 15000
        if self.state == ComputeState.STOPPED and status.stopped_at is not None:
            return 15000
        return None
