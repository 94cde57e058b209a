"""The sign-in dialog against moto's Cognito (unmodified pycognito, SRP).

moto's SRP flow accepts any password, so the wrong-password case uses a botocore Stubber
that answers like Cognito does (see tests/unit/test_desktop_auth.py).
"""

from __future__ import annotations

import uuid

from PySide6.QtCore import Qt

from desktop.qt.runner import Runner
from desktop.services.auth import CognitoAuth
from desktop.services.credentials import CredentialStore, MemoryKeyring
from desktop.views.sign_in_dialog import SignInDialog
from tests.fixtures.aws import REGION, CognitoUser, cognito_client
from tests.gui.conftest import save_screenshot
from tests.unit.test_desktop_auth import stubbed_cognito


def _dialog(qtbot, user: CognitoUser, runner: Runner, **kw: object) -> SignInDialog:  # type: ignore[no-untyped-def]
    auth = CognitoAuth(user.pool_id, user.client_id, REGION, CredentialStore(MemoryKeyring()), **kw)  # type: ignore[arg-type]
    dialog = SignInDialog(auth, runner)
    qtbot.addWidget(dialog)
    dialog.show()
    qtbot.waitExposed(dialog)
    return dialog


def test_sign_in_happy_path(qtbot, user: CognitoUser, runner: Runner) -> None:  # type: ignore[no-untyped-def]
    dialog = _dialog(qtbot, user, runner)
    qtbot.keyClicks(dialog.username, user.username)
    qtbot.keyClicks(dialog.password, user.password)
    save_screenshot(dialog, "sign_in.png")
    with qtbot.waitSignal(dialog.accepted, timeout=15000):
        qtbot.mouseClick(dialog.ok_button, Qt.MouseButton.LeftButton)
    assert dialog._auth.signed_in and dialog._auth.username == user.username


def test_new_password_challenge(qtbot, user: CognitoUser, runner: Runner, aws_env: str) -> None:  # type: ignore[no-untyped-def]
    name = f"invited-{uuid.uuid4().hex[:6]}"
    cognito_client(aws_env).admin_create_user(
        UserPoolId=user.pool_id, Username=name, TemporaryPassword="Temp-Pass-1!",
        MessageAction="SUPPRESS",
    )
    dialog = _dialog(qtbot, user, runner)
    dialog.username.setText(name)
    dialog.password.setText("Temp-Pass-1!")
    assert not dialog.challenge
    dialog.submit()
    qtbot.waitUntil(lambda: dialog.challenge, timeout=15000)
    assert "new password" in dialog.message.text()
    save_screenshot(dialog, "sign_in_new_password.png")
    dialog.new_password.setText("Chosen-Pass-22!")
    dialog.confirm_password.setText("Different-Pass-22!")
    dialog.submit()
    assert "differ" in dialog.message.text()
    dialog.confirm_password.setText("Chosen-Pass-22!")
    with qtbot.waitSignal(dialog.accepted, timeout=15000):
        dialog.submit()
    assert dialog._auth.username == name


def test_wrong_password_is_said_in_the_dialog(qtbot, user: CognitoUser, runner: Runner) -> None:  # type: ignore[no-untyped-def]
    factory = stubbed_cognito("NotAuthorizedException", "Incorrect username or password.")
    dialog = _dialog(qtbot, user, runner, cognito_factory=factory)
    dialog.username.setText(user.username)
    dialog.password.setText("not-it")
    dialog.submit()
    qtbot.waitUntil(lambda: "Wrong user name or password" in dialog.message.text(), timeout=15000)
    assert dialog.isVisible() and dialog.ok_button.isEnabled()
    assert "Traceback" not in dialog.message.text()
    save_screenshot(dialog, "sign_in_wrong_password.png")


def test_unknown_user_and_empty_fields(qtbot, user: CognitoUser, runner: Runner) -> None:  # type: ignore[no-untyped-def]
    dialog = _dialog(qtbot, user, runner)
    dialog.submit()
    assert "Enter your user name" in dialog.message.text()
    dialog.username.setText("nobody-at-all")
    dialog.password.setText("whatever")
    dialog.submit()
    qtbot.waitUntil(lambda: "no user with that name" in dialog.message.text(), timeout=15000)
