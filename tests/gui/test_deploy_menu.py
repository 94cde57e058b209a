"""Account → Deploy to AWS… and Costs… open the wizard and the panel from the main window,
and the wizard's "sign in now" reaches the window (the app then switches to AWS)."""

from __future__ import annotations

from typing import Any

import pytest

from desktop.views.cost_panel import CostPanel
from desktop.views.wizard import DeployWizard


def action(window: Any, text: str) -> Any:
    for menu_action in window.menuBar().actions():
        for item in menu_action.menu().actions():
            if item.text().replace("&", "") == text:
                return item
    raise AssertionError(f"no menu entry {text!r}")


def test_menu_opens_the_wizard_and_passes_sign_in_on(qtbot: Any, open_window: Any) -> None:
    window = open_window().window
    action(window, "Deploy to AWS…").trigger()
    wizard = window.findChild(DeployWizard)
    assert wizard is not None and wizard.isVisible() and wizard.currentId() == 0
    with qtbot.waitSignal(window.aws_profile_saved, timeout=2000):
        wizard.sign_in_requested.emit()
    wizard.reject()


@pytest.mark.usefixtures("no_aws_credentials")
def test_menu_opens_the_cost_panel(qtbot: Any, open_window: Any) -> None:
    window = open_window().window
    window.settings.set("aws.aws_profile", "removed-since")  # a profile no longer in ~/.aws
    action(window, "Costs…").trigger()
    panel = window.findChild(CostPanel)
    assert panel is not None and panel.isVisible()
    assert panel.service.cache_file.parent == window.settings.path.parent
    qtbot.waitUntil(lambda: "No AWS credentials" in panel.errors.text(), timeout=10000)
    panel.close()


def test_app_switches_from_local_to_the_deployed_stack(qtbot: Any, paths: Any) -> None:
    from backend.entrypoints.local import LocalStack
    from desktop.app import App
    from desktop.services.credentials import CredentialStore, MemoryKeyring
    from desktop.services.local_profile import LocalProfile

    app = App(paths, CredentialStore(MemoryKeyring()),
              LocalProfile(stack_factory=lambda **kw: LocalStack(echo_delay_s=0.01, **kw)))
    qtbot.addWidget(app.window)
    try:
        app.window.show()
        app.start()
        qtbot.waitUntil(lambda: app.api is not None, timeout=20000)
        # What the wizard's Done page saves, then "Switch to this stack and sign in now".
        for key, value in {"api_url": "https://abc.execute-api.us-east-1.amazonaws.com", "region": "us-east-1",
                           "user_pool_id": "us-east-1_Example1", "client_id": "abc123"}.items():
            app.settings.set(f"aws.{key}", value)
        app.settings.set("profile.kind", "aws")
        app.window.aws_profile_saved.emit()
        qtbot.waitUntil(lambda: app.dialog is not None and app.dialog.isVisible(), timeout=5000)
        assert app.auth is not None and app.profile == "aws"
        qtbot.waitUntil(lambda: app.local is not None and app.local.token() is None, timeout=20000)  # stopped
        app.dialog.reject()
    finally:
        app.shutdown()
