"""Wizard page 3: build the router package and upload it, with the template, to the
bootstrap bucket (created or reused), off the UI thread, with a line per step."""

from __future__ import annotations

from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QLabel, QListWidget, QPushButton, QVBoxLayout, QWizardPage

from desktop.services.artifacts import Uploaded
from desktop.services.deploy import flow
from desktop.views import theme
from desktop.views.wizard.context import WizardContext, in_words


class _Relay(QObject):
    """Carries progress lines from the worker thread to the UI thread (queued signal)."""

    line = Signal(str)


class UploadPage(QWizardPage):
    """Starts when shown; Next once every file is in the bucket."""

    def __init__(self, ctx: WizardContext) -> None:
        super().__init__()
        self.ctx = ctx
        self.setTitle("Upload")
        self.setSubTitle("The router package and the template go into a private bucket in your account "
                         "(created once, then reused), as `cdk bootstrap` does.")
        self.log = QListWidget()
        self.log.setObjectName("upload_log")
        self.status = QLabel()
        self.status.setWordWrap(True)
        self.retry = QPushButton("Try again")
        self.retry.setVisible(False)
        layout = QVBoxLayout(self)
        layout.addWidget(self.log, 1)
        layout.addWidget(self.status)
        layout.addWidget(self.retry)
        self.relay = _Relay(self)
        self.relay.line.connect(self.log.addItem)
        self.retry.clicked.connect(self.start)
        self._done = False
        self._running = False

    def initializePage(self) -> None:
        self.start()

    def start(self) -> None:
        ctx = self.ctx
        assert ctx.deployer is not None and ctx.identity is not None
        self._done = False
        self._running = True
        self.retry.setVisible(False)
        self.log.clear()
        theme.styled(self.status, "")
        self.status.setText("Working…")
        self.completeChanged.emit()
        deployer, account, template = ctx.deployer, ctx.identity.account, ctx.options.template
        builders, workdir, relay = ctx.builders, ctx.workdir, self.relay

        def work() -> Uploaded:
            def say(text: str) -> None:
                relay.line.emit(text)  # queued to the UI thread

            return flow.build_and_upload(deployer, account, template, workdir, builders, say)

        ctx.runner.run(work, self._uploaded, self._failed)

    def _uploaded(self, uploaded: Uploaded) -> None:
        self._running = False
        self.ctx.uploaded = uploaded
        theme.styled(self.status, "color: $success;")
        self.status.setText(f"✔ Ready: template at {uploaded.template_url}")
        self._done = True
        self.completeChanged.emit()

    def _failed(self, exc: BaseException) -> None:
        self._running = False
        theme.styled(self.status, "color: $error;")
        self.status.setText(in_words(exc))
        self.retry.setVisible(True)
        self.completeChanged.emit()

    def isComplete(self) -> bool:
        return self._done
