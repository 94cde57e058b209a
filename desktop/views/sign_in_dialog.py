"""Sign in to the AWS profile's Cognito pool, including an invited user's new password.

The Cognito calls run through the Runner, so the dialog stays responsive; every failure
shows as one sentence in the dialog.
"""

from __future__ import annotations

from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QLabel,
    QLineEdit,
    QVBoxLayout,
    QWidget,
)

from desktop.core.errors import AppError, NewPasswordRequired
from desktop.qt.runner import Runner
from desktop.services.auth import CognitoAuth
from desktop.views import theme


class SignInDialog(QDialog):
    """Accepted once `auth` holds a signed-in user."""

    def __init__(
        self, auth: CognitoAuth, runner: Runner, username: str = "", notice: str = "",
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("Sign in to TinyLlama")
        self.setMinimumWidth(380)
        self._auth = auth
        self._runner = runner
        self._busy = False
        self.username = QLineEdit(username, self)
        self.password = QLineEdit(self)
        self.password.setEchoMode(QLineEdit.EchoMode.Password)
        self.new_password = QLineEdit(self)
        self.new_password.setEchoMode(QLineEdit.EchoMode.Password)
        self.confirm_password = QLineEdit(self)
        self.confirm_password.setEchoMode(QLineEdit.EchoMode.Password)
        self.message = QLabel(notice, self)
        self.message.setWordWrap(True)
        self.message.setObjectName("signInMessage")

        self.form = QFormLayout()
        self.form.addRow("User name", self.username)
        self.form.addRow("Password", self.password)
        self.form.addRow("New password", self.new_password)
        self.form.addRow("Repeat new password", self.confirm_password)
        self._show_new_password(False)

        self.buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel, self
        )
        self.ok_button = self.buttons.button(QDialogButtonBox.StandardButton.Ok)
        self.ok_button.setText("Sign in")
        self.buttons.accepted.connect(self.submit)
        self.buttons.rejected.connect(self.reject)

        pool = QLabel(f"User pool {auth.user_pool_id} ({auth.region})", self)
        theme.styled(pool, "color: $muted;")
        layout = QVBoxLayout(self)
        layout.addLayout(self.form)
        layout.addWidget(self.message)
        layout.addWidget(pool)
        layout.addWidget(self.buttons)
        (self.password if username else self.username).setFocus()

    @property
    def challenge(self) -> bool:
        """True once the pool asked for a new password."""
        return not self.new_password.isHidden()

    def _show_new_password(self, show: bool) -> None:
        for field in (self.new_password, self.confirm_password):
            field.setVisible(show)
            self.form.labelForField(field).setVisible(show)

    def submit(self) -> None:
        if self._busy:
            return
        user, password = self.username.text().strip(), self.password.text()
        if not user or not password:
            self._say("Enter your user name and password.", error=True)
            return
        if self.new_password.isHidden():
            call = lambda: self._auth.sign_in(user, password)  # noqa: E731
        else:
            new = self.new_password.text()
            if new != self.confirm_password.text():
                self._say("The two new passwords differ.", error=True)
                return
            if not new:
                self._say("Choose a new password.", error=True)
                return
            call = lambda: self._auth.complete_new_password(user, password, new)  # noqa: E731
        self._set_busy(True)
        self._say("Signing in…")
        self._runner.run(call, self._done, self._failed)

    def _done(self, _result: object) -> None:
        self._set_busy(False)
        self._say("Signed in.")
        self.accept()

    def _failed(self, exc: BaseException) -> None:
        self._set_busy(False)
        if isinstance(exc, NewPasswordRequired):
            self._show_new_password(True)
            self.ok_button.setText("Set password and sign in")
            self._say(str(exc))
            self.new_password.setFocus()
            return
        self._say(str(exc) if isinstance(exc, AppError) else "Sign-in failed unexpectedly.",
                  error=True)
        self.password.selectAll()
        self.password.setFocus()

    def _set_busy(self, busy: bool) -> None:
        self._busy = busy
        self.ok_button.setEnabled(not busy)

    def _say(self, text: str, error: bool = False) -> None:
        self.message.setText(text)
        theme.styled(self.message, "color: $error;" if error else "")
