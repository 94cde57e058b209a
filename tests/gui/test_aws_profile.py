"""The AWS profile end to end: Cognito (moto) sign-in in the dialog, then prompts through a
gateway that checks the access token like the HTTP API's JWT authorizer; the next start
signs in silently from the keyring; sign-out forgets the token."""

from __future__ import annotations

import json

import pytest

from backend.entrypoints.local import LocalStack
from desktop.app import App
from desktop.core.paths import AppPaths
from desktop.services.credentials import CredentialStore, MemoryKeyring
from tests.fixtures.aws import REGION, CognitoUser
from tests.gui.conftest import fast_local_stack


@pytest.fixture
def cognito_stack(user: CognitoUser):  # type: ignore[no-untyped-def]
    with LocalStack(engine="echo", echo_delay_s=0.01,
                    cognito=(REGION, user.pool_id, user.client_id)) as stack:
        yield user, stack


def _write_profile(paths: AppPaths, user, url: str) -> None:  # type: ignore[no-untyped-def]
    paths.config_dir.mkdir(parents=True, exist_ok=True)
    paths.settings_file.write_text(json.dumps({
        "profile": {"kind": "aws"},
        "aws": {"api_url": url, "region": REGION, "user_pool_id": user.pool_id,
                "client_id": user.client_id, "username": ""},
    }))


def test_sign_in_send_restart_sign_out(qtbot, paths: AppPaths, cognito_stack) -> None:  # type: ignore[no-untyped-def]
    user, stack = cognito_stack
    _write_profile(paths, user, stack.url)
    keyring = CredentialStore(MemoryKeyring())

    app = App(paths, keyring)
    qtbot.addWidget(app.window)
    try:
        app.window.show()
        app.start()
        qtbot.waitUntil(lambda: app.dialog is not None and app.dialog.isVisible(), timeout=5000)
        app.dialog.username.setText(user.username)
        app.dialog.password.setText(user.password)
        with qtbot.waitSignal(app.dialog.accepted, timeout=15000):
            app.dialog.submit()
        assert app.window.sign_out_action.isVisible()
        # the stack here is a local one with Cognito: its engine runs on this computer
        qtbot.waitUntil(lambda: "on this computer" in app.window.wake.text(), timeout=10000)
        conv = app.window.new_conversation()
        app.window.send("signed in and answered")
        qtbot.waitUntil(lambda: app.history.messages(conv.id)[-1].status == "done", timeout=20000)
        assert app.history.messages(conv.id)[-1].content == "signed in and answered"
        assert keyring.get(f"refresh-token:{user.pool_id}:{user.username}")
        assert "refresh" not in paths.settings_file.read_text().lower()  # never in a plain file
    finally:
        app.shutdown()

    again = App(paths, keyring)  # next start: silent sign-in from the keyring
    qtbot.addWidget(again.window)
    try:
        again.start()
        qtbot.waitUntil(lambda: again.api is not None, timeout=15000)
        assert again.dialog is None
        qtbot.waitUntil(lambda: "on this computer" in again.window.wake.text(), timeout=10000)
        again.sign_out()
        assert keyring.get(f"refresh-token:{user.pool_id}:{user.username}") is None
        assert not again.auth.signed_in
    finally:
        again.shutdown()


def _accept_profile(qtbot, app: App, choose) -> None:  # type: ignore[no-untyped-def]
    """Account → Profile…, as a person does it: the dialog opens, `choose` fills it, OK."""
    app.window.settings_requested.emit()
    dialog = app.profile_dialog
    assert dialog is not None and dialog.isVisible()
    choose(dialog)
    dialog.save()
    assert not dialog.problems.text(), dialog.problems.text()
    qtbot.waitUntil(lambda: app.profile_dialog is None, timeout=5000)


def test_switching_local_to_aws_and_back_needs_no_restart(qtbot, paths: AppPaths, cognito_stack) -> None:  # type: ignore[no-untyped-def]
    user, stack = cognito_stack
    from desktop.services.local_profile import LocalProfile

    app = App(paths, CredentialStore(MemoryKeyring()), LocalProfile(stack_factory=fast_local_stack))
    qtbot.addWidget(app.window)
    try:
        app.window.show()
        app.start()
        qtbot.waitUntil(lambda: app.api is not None, timeout=20000)
        local_url = app.api.base_url
        assert local_url != stack.url

        def to_aws(dialog) -> None:  # type: ignore[no-untyped-def]
            dialog.aws.setChecked(True)
            for key, value in (("api_url", stack.url), ("region", REGION), ("user_pool_id", user.pool_id),
                               ("client_id", user.client_id), ("username", "")):
                dialog.fields[key].setText(value)

        _accept_profile(qtbot, app, to_aws)
        assert app.api is None  # the local service is left at once, not after a restart
        qtbot.waitUntil(lambda: app.dialog is not None and app.dialog.isVisible(), timeout=5000)
        app.dialog.username.setText(user.username)
        app.dialog.password.setText(user.password)
        with qtbot.waitSignal(app.dialog.accepted, timeout=15000):
            app.dialog.submit()
        assert app.api is not None and app.api.base_url == stack.url
        conv = app.window.new_conversation()
        app.window.send("through the stack")
        qtbot.waitUntil(lambda: app.history.messages(conv.id)[-1].status == "done", timeout=20000)

        _accept_profile(qtbot, app, lambda dialog: dialog.local.setChecked(True))
        qtbot.waitUntil(lambda: app.api is not None and app.api.base_url != stack.url, timeout=20000)
        assert not app.window.sign_out_action.isVisible() and not app.window.sign_in_action.isVisible()
        app.window.send("on this computer again")
        qtbot.waitUntil(lambda: app.history.messages(conv.id)[-1].status == "done", timeout=20000)
        assert app.history.messages(conv.id)[-1].content == "on this computer again"
    finally:
        app.shutdown()
