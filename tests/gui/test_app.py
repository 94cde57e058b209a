"""The composition root: first run opens the Local profile and works with the echo engine;
an incomplete AWS profile says what is missing; an AWS profile asks to sign in."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from desktop.app import App
from desktop.core.paths import AppPaths
from desktop.core.platform_check import XCB_LIBRARIES, missing_libraries
from desktop.services.credentials import CredentialStore, MemoryKeyring
from desktop.services.local_profile import LocalProfile
from tests.gui.conftest import fast_local_stack, save_screenshot


def test_first_run_is_local_and_works(qtbot, paths: AppPaths) -> None:  # type: ignore[no-untyped-def]
    app = App(paths, CredentialStore(MemoryKeyring()), LocalProfile(stack_factory=fast_local_stack))
    qtbot.addWidget(app.window)
    try:
        app.window.show()
        qtbot.waitExposed(app.window)
        assert app.first_run
        app.start()
        assert "echo engine" in app.window.notice.text() and app.window.notice.isVisible()
        qtbot.waitUntil(lambda: app.api is not None, timeout=20000)
        qtbot.waitUntil(lambda: "Echo on this computer: stopped" in app.window.wake.text(), timeout=10000)
        save_screenshot(app.window, "main_empty.png")
        conv = app.window.new_conversation()
        app.window.send("first light")
        qtbot.waitUntil(lambda: app.history.messages(conv.id)[-1].status == "done", timeout=20000)
        assert app.history.messages(conv.id)[-1].content == "first light"
        assert json.loads(paths.settings_file.read_text())["profile"]["kind"] == "local"
    finally:
        app.shutdown()
    assert paths.history_db.exists()


def test_incomplete_aws_profile_says_what_is_missing(qtbot, paths: AppPaths) -> None:  # type: ignore[no-untyped-def]
    paths.config_dir.mkdir(parents=True)
    paths.settings_file.write_text(json.dumps({"profile": {"kind": "aws"}}))
    app = App(paths, CredentialStore(MemoryKeyring()))
    qtbot.addWidget(app.window)
    try:
        app.start()
        assert "AWS profile is incomplete" in app.window.notice.text()
        assert "API URL" in app.window.notice.text()
        assert app.local is None  # nothing local was started
    finally:
        app.shutdown()


def test_aws_profile_opens_the_sign_in_dialog(qtbot, paths: AppPaths) -> None:  # type: ignore[no-untyped-def]
    paths.config_dir.mkdir(parents=True)
    paths.settings_file.write_text(json.dumps({
        "profile": {"kind": "aws"},
        "aws": {"api_url": "https://api.example.com", "region": "us-east-1",
                "user_pool_id": "us-east-1_Example1", "client_id": "abc123"},
    }))
    store = CredentialStore(MemoryKeyring())
    app = App(paths, store)
    qtbot.addWidget(app.window)
    try:
        app.window.show()
        app.start()
        qtbot.waitUntil(lambda: app.dialog is not None and app.dialog.isVisible(), timeout=5000)
        # Not signed in on an AWS profile: the menu offers Sign in, not Sign out.
        assert app.window.sign_in_action.isVisible() and not app.window.sign_out_action.isVisible()
        first = app.dialog
        first.reject()
        qtbot.waitUntil(lambda: not first.isVisible(), timeout=5000)
        app.window.sign_in_action.trigger()  # the menu item opens the dialog again
        qtbot.waitUntil(lambda: app.dialog is not first and app.dialog is not None and app.dialog.isVisible(),
                        timeout=5000)
        app.dialog.reject()
    finally:
        app.shutdown()


def test_the_app_names_every_missing_xcb_library_before_qt_aborts(tmp_path: Path) -> None:
    """The real app on Qt's X11 platform with no display: Qt aborts either way; before it does,
    the app names exactly the xcb libraries this machine lacks (Qt names only the first)."""
    env = {k: v for k, v in os.environ.items() if k not in {"DISPLAY", "WAYLAND_DISPLAY", "XDG_SESSION_TYPE"}}
    env.update(QT_QPA_PLATFORM="xcb", HOME=str(tmp_path), XDG_STATE_HOME=str(tmp_path / "state"))
    run = subprocess.run([sys.executable, "-m", "desktop.app", "--data-dir", str(tmp_path / "data")], env=env,
                         capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert run.returncode != 0
    missing = missing_libraries()
    ours = [line for line in run.stderr.splitlines() if line.startswith("TinyLlama's window needs X11 libraries")]
    if missing:
        assert len(ours) == 1 and ", ".join(missing) in ours[0]
        assert ours[0].endswith(" ".join(XCB_LIBRARIES[m] for m in missing))
        assert run.stderr.index(ours[0]) < run.stderr.find("qt.qpa")  # said before Qt gives up
    else:
        assert ours == []
