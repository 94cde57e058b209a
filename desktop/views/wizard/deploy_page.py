"""Wizard page 5: run the reviewed change and follow its stack events to the end.

A single-shot QTimer asks the StackWatcher for news (off the UI thread) and, when the
answer is in, arms itself again, so polls never overlap. A failure shows the reason in
words, the rollback is followed until the stack settles, and what to do next is said.
"""

from __future__ import annotations

from PySide6.QtCore import QTimer
from PySide6.QtGui import QBrush, QColor
from PySide6.QtWidgets import (
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QProgressBar,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWizard,
    QWizardPage,
)

from desktop.core.errors import AppError
from desktop.services.deploy import flow
from desktop.services.deploy.events import StackWatcher, WatchUpdate
from desktop.views import theme
from desktop.views.wizard.context import WizardContext, in_words


def _colour(status: str) -> str:
    """The theme colour (a Colours field name) a stack or resource status is shown in."""
    if status.endswith("_FAILED"):
        return "error"
    if "ROLLBACK" in status:
        return "progress"
    if status.endswith("_COMPLETE"):
        return "success"
    return "text"


class DeployPage(QWizardPage):
    """Events as they come, a progress bar, cancel; the outcome in words."""

    def __init__(self, ctx: WizardContext) -> None:
        super().__init__()
        self.ctx = ctx
        self.setTitle("Deploy")
        self.setSubTitle("CloudFormation's events as they happen. Closing is possible once the stack has settled.")
        self.status = QLabel("Starting…")
        self.status.setObjectName("deploy_status")
        self.status.setWordWrap(True)
        self.progress = QProgressBar()
        self.progress.setRange(0, 100)
        self.events = QTableWidget(0, 4)
        self.events.setObjectName("events")
        self.events.setHorizontalHeaderLabels(["Time", "Resource", "Status", "Reason"])
        self.events.verticalHeader().setVisible(False)
        self.events.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.events.setWordWrap(True)
        header = self.events.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(3, QHeaderView.ResizeMode.Stretch)
        self.outcome = QLabel()
        self.outcome.setObjectName("outcome")
        self.outcome.setWordWrap(True)
        self.outcome.setVisible(False)
        self.cancel_button = QPushButton("Cancel deployment")
        self.cancel_button.setEnabled(False)
        row = QHBoxLayout()
        row.addWidget(self.progress, 1)
        row.addWidget(self.cancel_button)
        layout = QVBoxLayout(self)
        layout.addWidget(self.status)
        layout.addLayout(row)
        layout.addWidget(self.events, 1)
        layout.addWidget(self.outcome)
        self.timer = QTimer(self)
        self.timer.setSingleShot(True)
        self.timer.timeout.connect(self._poll)
        self.cancel_button.clicked.connect(self.cancel)
        self._finished = False

    def initializePage(self) -> None:
        ctx = self.ctx
        assert ctx.deployer is not None and ctx.review is not None
        self._finished = False
        self.wizard().button(QWizard.WizardButton.CancelButton).setEnabled(False)
        deployer, review = ctx.deployer, ctx.review
        bucket = ctx.data_bucket if ctx.empty_data_bucket else ""
        verb = {"CREATE": "Creating", "UPDATE": "Updating", "DELETE": "Deleting"}[review.change_type]
        self.setTitle(f"{verb} {review.stack_name}")
        self.status.setText(f"{verb} {review.stack_name}…")

        ctx.runner.run(lambda: flow.start(deployer, review, bucket), self._started, self._start_failed)

    def _started(self, watcher: StackWatcher) -> None:
        self.ctx.watcher = watcher
        self.cancel_button.setEnabled(self.ctx.review is not None and self.ctx.review.change_type != "DELETE")
        self.timer.start(0)

    def _start_failed(self, exc: BaseException) -> None:
        self._show_outcome(False, in_words(exc), "Nothing was changed. Close the wizard and start again.")

    def _poll(self) -> None:
        watcher = self.ctx.watcher
        if watcher is None or self._finished:
            return
        self.ctx.runner.run(watcher.poll, self._polled, self._poll_failed)

    def _polled(self, update: WatchUpdate) -> None:
        for event in update.events:
            self._add_event(event.timestamp.strftime("%H:%M:%S"), event.logical_id, event.status, event.reason)
        self.progress.setValue(int(update.progress * 100))
        self.status.setText(f"{self.ctx.stack_name}: {update.status}")
        theme.styled(self.status, f"color: ${_colour(update.status)}; font-weight: bold;")
        if not update.done:
            self.timer.start(self.ctx.poll_interval_ms)
            return
        self.ctx.final = update
        if update.succeeded:
            self._succeeded(update)
        else:
            self._show_outcome(False, update.failure, update.advice, rolled_back=update.rolled_back)

    def _poll_failed(self, exc: BaseException) -> None:
        if not isinstance(exc, AppError):  # a bug: asking again would only fail again
            self._show_outcome(False, in_words(exc), "The stack operation goes on in AWS: follow it in the "
                               "CloudFormation console.")
            return
        # A network blip must not lose the deployment: say so and keep following.
        self.status.setText(f"Could not read the stack's events ({in_words(exc)}); trying again…")
        self.timer.start(max(self.ctx.poll_interval_ms, 1) * 2)

    def _succeeded(self, update: WatchUpdate) -> None:
        ctx = self.ctx
        if update.status == "DELETE_COMPLETE":
            self._show_outcome(True, f"{ctx.stack_name} is deleted.", "")
            return
        deployer, name = ctx.deployer, ctx.stack_name
        assert deployer is not None
        ctx.runner.run(lambda: flow.outputs(deployer, name), self._got_outputs,
                       lambda exc: self._show_outcome(False, in_words(exc), "The stack is complete; read its "
                                                      "outputs in the CloudFormation console."))

    def _got_outputs(self, outputs: dict[str, str]) -> None:
        self.ctx.outputs = outputs
        self._show_outcome(True, f"{self.ctx.stack_name} is ready.", "")

    def _show_outcome(self, ok: bool, what: str, advice: str, rolled_back: bool = False) -> None:
        self._finished = True
        self.timer.stop()
        self.cancel_button.setEnabled(False)
        wizard = self.wizard()
        if wizard is not None:
            cancel = wizard.button(QWizard.WizardButton.CancelButton)
            cancel.setEnabled(True)
            cancel.setText("Close" if not ok else cancel.text())
        if ok:
            theme.styled(self.outcome, "background: $success_bg; color: $text; border: 1px solid $success_border; "
                         "padding: 8px;")
            self.outcome.setText(f"✔ {what}")
        else:
            back = "<br>Everything this run changed was rolled back." if rolled_back else ""
            theme.styled(self.outcome, "background: $error_bg; color: $text; border: 1px solid $error_border; "
                         "padding: 8px;")
            self.outcome.setText(f"<b>It did not work.</b> {what}{back}<br><b>What to do:</b> {advice}")
        self.outcome.setVisible(True)
        if not ok:
            theme.styled(self.progress, "QProgressBar { border: 1px solid $border; border-radius: 3px; "
                         "text-align: center; } QProgressBar::chunk { background: $bar_over; }")
        QTimer.singleShot(0, self.events, self.events.scrollToBottom)  # once the outcome box took its room
        self.completeChanged.emit()

    def _add_event(self, time: str, resource: str, status: str, reason: str) -> None:
        row = self.events.rowCount()
        self.events.insertRow(row)
        for col, text in enumerate((time, resource, status, reason)):
            item = QTableWidgetItem(text)
            if col == 2:
                item.setForeground(QBrush(QColor(getattr(theme.colours(), _colour(status)))))
            if reason:
                item.setToolTip(reason)
            self.events.setItem(row, col, item)
        self.events.scrollToBottom()

    def cancel(self) -> None:
        """Cancel the running update (rolled back) or create (deleted); keep following."""
        ctx = self.ctx
        if ctx.watcher is None or ctx.deployer is None:
            return
        self.cancel_button.setEnabled(False)
        deployer, watcher = ctx.deployer, ctx.watcher
        self.status.setText("Cancelling…")
        ctx.runner.run(lambda: deployer.cancel(watcher), self._cancelled,
                       lambda exc: self.status.setText(in_words(exc)))

    def _cancelled(self, message: str) -> None:
        self._add_event("", self.ctx.stack_name, "CANCEL REQUESTED", message)

    def isComplete(self) -> bool:
        final = self.ctx.final
        return self._finished and final is not None and final.succeeded

    def shutdown(self) -> None:
        self._finished = True
        self.timer.stop()
