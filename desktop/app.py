"""Composition root: builds the real services and wires them to the main window.

`tinyllama` with no arguments calls `main()`. The Local profile (the default) connects to
the per-user local background service (starting it when none runs) and works at once with
the echo engine; quitting leaves the service running so answers in flight complete. The
AWS profile signs in through Cognito (silently from the keyring's refresh token when it can).
"""

from __future__ import annotations

import gc
import logging
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from desktop.core.errors import AppError
from desktop.core.history import HistoryStore
from desktop.core.paths import AppPaths
from desktop.core.settings import Settings
from desktop.services.credentials import ENGINE_API_KEY, CredentialStore

RECONNECTING = "Reconnecting to the local stack…"
ALREADY_RUNNING = "TinyLlama is already running"
STARTING = "Starting the local stack… a prompt sent now goes out when it is ready"
# After a failed attempt to bring the local service back (its error is shown), try again.
RECONNECT_RETRY_S = 10.0
# The bundle's smoke test: a cold start of the background service from the bundle, on a busy CI box.
SMOKE_CONNECT_S = 60.0

if TYPE_CHECKING:
    from PySide6.QtWidgets import QApplication, QDialog

    from desktop.core.diagnostics import RecentErrors
    from desktop.qt.single_instance import SingleInstance
    from desktop.services.api import ApiClient
    from desktop.services.auth import CognitoAuth
    from desktop.services.local_profile import LocalProfile
    from desktop.views.sign_in_dialog import SignInDialog


class App:
    """Owns the services' lifetimes; `start()` connects the window to the profile."""

    def __init__(self, paths: AppPaths, credentials: CredentialStore | None = None,
                 local: LocalProfile | None = None, settings: Settings | None = None) -> None:
        from desktop.qt.runner import Runner
        from desktop.views.main_window import MainWindow

        self.paths = paths
        self.settings = settings or Settings(paths.settings_file)
        self.first_run = self.settings.first_run
        self.history = HistoryStore(paths.history_db)
        self.credentials = credentials or CredentialStore()
        self.runner = Runner()
        self.window = MainWindow(self.history, self.settings, self.runner)
        self.local = local
        self.auth: CognitoAuth | None = None
        self.dialog: SignInDialog | None = None
        self.api: ApiClient | None = None
        self._reconnecting = False
        self._closed = False
        self.window.sign_in_requested.connect(self.sign_in)
        self.window.sign_out_requested.connect(self.sign_out)
        self.window.settings_requested.connect(self.edit_profile)
        self.window.model_requested.connect(self.choose_model)
        self.model_dialog: QDialog | None = None
        self.profile_dialog: QDialog | None = None
        self.window.aws_profile_saved.connect(self.switch_to_aws)
        self.window.session.connection_lost.connect(self._local_lost)
        if self.settings.load_error:
            self.window.show_notice(self.settings.load_error)

    @property
    def profile(self) -> str:
        return str(self.settings.get("profile.kind"))

    def start(self) -> None:
        if self.first_run:
            self.settings.save()
        if self.profile == "aws":
            self._start_aws()
        else:
            self._start_local()

    # local ---------------------------------------------------------------------------

    def _start_local(self) -> None:
        # The local service's client code loads only for the Local profile, once the window is up.
        from desktop.services.local_profile import LocalProfile

        if self.local is None:
            self.local = LocalProfile.from_settings(
                self.settings, api_key=lambda: self.credentials.get(ENGINE_API_KEY))
        self.window.show_notice(self.local.notice)
        # Prompts sent while it starts are kept and go out as soon as it answers.
        self.window.session.hold()
        self.window.wake.set_note(STARTING)
        local = self.local
        self.runner.run(local.start, self._local_started, self._failed)
        if local.engine == "echo" and not self.settings.get("local.model_offered"):
            self.choose_model()  # the first run offers a real model; echo answers meanwhile

    def choose_model(self) -> None:
        """Account → Model… (and the first run's offer): download, a file, or a server."""
        from desktop.views.model_dialog import ModelDialog

        if self.model_dialog is not None and self.model_dialog.isVisible():
            return
        dialog = ModelDialog(self.settings, self.paths.data_dir, self.runner, self.credentials, self.window)
        dialog.model_chosen.connect(self.apply_local_settings)
        self.model_dialog = dialog
        dialog.open()  # window-modal, no nested event loop: echo keeps answering

    def apply_local_settings(self) -> None:
        """The engine or model changed: restart the local service with it, no app restart.
        Prompts typed meanwhile are held and sent once it answers."""
        local = self.local
        if self._closed or local is None or self.profile != "local":
            return
        local.configure_from(self.settings)
        self.window.show_notice(local.notice)
        self.window.connect_api(None)
        self.window.session.hold()
        self._reconnecting = True  # _local_started clears the note
        self.window.wake.set_note("Switching the model…")

        def failed(exc: BaseException) -> None:
            self._reconnecting = False
            self.window.wake.set_note("")
            self._failed(exc)

        self.runner.run(local.start, self._local_started, failed)

    def _local_started(self, endpoint: tuple[str, str]) -> None:
        from desktop.services.api import ApiClient

        url, _token = endpoint
        local = self.local
        assert local is not None
        if self._closed or self.profile == "aws":
            return  # quit, or switched to AWS, while the service was starting
        old, self.api = self.api, ApiClient(url, local.token)
        # The background service can be brought back when it goes away (killed, crashed,
        # stopped when idle): the session says so instead of showing connection errors.
        self.window.session.reconnects = True
        self.window.connect_api(self.api)  # sends held prompts, re-follows running answers
        self._reconnecting = False
        self.window.wake.set_note("")
        if old is not None:
            old.close()

    def _local_lost(self) -> None:
        """The local service stopped answering: find it again (re-read the discovery
        file) or start it, then reconnect; the session holds what the person sends."""
        local = self.local
        if self._reconnecting or self._closed or local is None or self.profile == "aws":
            return
        self._reconnecting = True
        self.window.connect_api(None)  # no polling of a service that is not there
        self.window.session.hold()
        self.window.wake.clear_error()
        self.window.wake.set_note(RECONNECTING)
        self.runner.run(local.start, self._local_started, self._reconnect_failed)

    def _reconnect_failed(self, exc: BaseException) -> None:
        self._failed(exc)
        if self._closed:
            return
        from PySide6.QtCore import QTimer

        local = self.local
        assert local is not None
        # The window as the timer's context: no retry after it is gone.
        QTimer.singleShot(int(RECONNECT_RETRY_S * 1000), self.window,
                          lambda: None if self._closed else self.runner.run(local.start, self._local_started,
                                                                           self._reconnect_failed))

    # aws -----------------------------------------------------------------------------

    def switch_to_aws(self) -> None:
        """After the deploy wizard saved a stack as the AWS profile, or the person chose AWS
        in Account → Profile…: leave the local service (it stops itself when idle) and sign
        in to the stack."""
        self.window.connect_api(None)
        old, self.api = self.api, None
        if old is not None:
            old.close()
        self.window.session.reconnects = False
        self._reconnecting = False
        self.window.wake.set_note("")
        if self.local is not None:
            local = self.local
            self.runner.run(local.stop)
        self._start_aws()

    def _start_aws(self) -> None:
        from desktop.services.auth import CognitoAuth
        from desktop.views.settings_dialog import aws_profile_problems

        aws = self.settings.section("aws")
        problems = aws_profile_problems(aws)
        if problems:
            self.window.show_notice("The AWS profile is incomplete: " + "; ".join(problems)
                                    + ". Open Account → Profile… to fix it.")
            return
        self.auth = CognitoAuth(aws["user_pool_id"], aws["client_id"], aws["region"],
                                self.credentials)
        self.window.set_signed_in(None, aws=True)
        if self.credentials.notice:
            self.window.show_notice(self.credentials.notice)
        username = aws["username"]
        if username:
            auth = self.auth
            self.runner.run(lambda: auth.restore(username), self._restored,
                            lambda _exc: self.sign_in())
        else:
            self.sign_in()

    def _restored(self, ok: bool) -> None:
        if ok:
            self._signed_in()
        else:
            self.sign_in()

    def sign_in(self) -> None:
        from desktop.views.sign_in_dialog import SignInDialog

        if self.auth is None:
            return
        if self.dialog is not None and self.dialog.isVisible():
            return
        dialog = SignInDialog(self.auth, self.runner, str(self.settings.get("aws.username")),
                              self.credentials.notice, self.window)
        dialog.accepted.connect(lambda: self._dialog_accepted(dialog.username.text().strip()))
        self.dialog = dialog
        dialog.open()  # window-modal but not a nested event loop: the app keeps running

    def _dialog_accepted(self, username: str) -> None:
        self.settings.set("aws.username", username)
        self.settings.save()
        self._signed_in()

    def _signed_in(self) -> None:
        from desktop.services.api import ApiClient

        assert self.auth is not None
        self.window.set_signed_in(self.auth.username, aws=True)
        self.api = ApiClient(str(self.settings.get("aws.api_url")), self.auth.access_token)
        self.window.connect_api(self.api)

    def sign_out(self) -> None:
        if self.auth is None:
            return
        self.window.connect_api(None)
        auth = self.auth
        cognito = auth.forget()  # the keyring forgets now; the server revokes in the background
        self.runner.run(lambda: auth.revoke(cognito))
        self.window.set_signed_in(None, aws=True)
        self.window.wake.label.setText("Signed out")

    def edit_profile(self) -> None:
        """Account → Profile…: a new engine, or Local ↔ AWS, takes effect at once."""
        from desktop.views.settings_dialog import SettingsDialog

        if self.profile_dialog is not None:
            self.profile_dialog.raise_()
            return
        before = self._profile_values()
        dialog = SettingsDialog(self.settings, self.window)
        dialog.accepted.connect(lambda: self._profile_saved(before))
        dialog.finished.connect(lambda _result: self._profile_closed(dialog))
        self.profile_dialog = dialog
        dialog.open()  # window-modal, no nested event loop: answers keep streaming

    def _profile_values(self) -> tuple[str, dict[str, str]]:
        return self.profile, {k: str(v) for k, v in self.settings.section("aws").items()}

    def _profile_saved(self, before: tuple[str, dict[str, str]]) -> None:
        after = self._profile_values()
        if self._closed:
            return
        if after[0] == "local":
            if before[0] == "aws":
                self.switch_to_local()
            else:
                self.apply_local_settings()
        elif after != before:
            self.switch_to_aws()  # from Local, or another stack: sign in to it

    def _profile_closed(self, dialog: QDialog) -> None:
        if self.profile_dialog is dialog:
            self.profile_dialog = None
        dialog.deleteLater()

    def switch_to_local(self) -> None:
        """From AWS to the Local profile: stop talking to the stack (still signed in there;
        the keyring keeps the session for a switch back) and start the local service."""
        self.window.connect_api(None)
        self.window.set_signed_in(None, aws=False)
        self.auth = None
        old, self.api = self.api, None
        if old is not None:
            old.close()
        if self.local is not None:
            self.local.configure_from(self.settings)  # the engine may have changed meanwhile
        self._start_local()

    def _failed(self, exc: BaseException) -> None:
        self.window.show_error(exc if isinstance(exc, AppError) else AppError(str(exc)))

    # shutdown ------------------------------------------------------------------------

    def shutdown(self) -> None:
        """Stop timers, join threads, close files. Idempotent. The local service keeps
        running (answers in flight complete; it stops itself when idle)."""
        self._closed = True
        self.window.shutdown()
        self.settings.save()
        self.runner.shutdown()
        if self.local is not None:
            self.local.stop()
        if self.api is not None:
            self.api.close()
        self.history.close()


def main(argv: list[str] | None = None) -> int:
    """Open the desktop app. `--data-dir` keeps everything in one folder (tests, portable)."""
    import argparse

    parser = argparse.ArgumentParser(prog="tinyllama", description="TinyLlama desktop app")
    parser.add_argument("--data-dir", type=Path, help="keep settings and history here")
    args = parser.parse_args(argv)

    launched = launch(args.data_dir)
    if launched is None:
        return 0  # the running app shows its window; a second one would share its history
    app, _help = launched  # the help menu stays alive while we run
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    qt_app = QApplication.instance()
    assert qt_app is not None
    if os.environ.get("TINYLLAMA_SMOKE_TEST"):
        # packaging/build.py's smoke test of the bundle: the window painted and the profile
        # connected (for Local, to the background service this bundle started), then quit.
        deadline = time.monotonic() + SMOKE_CONNECT_S

        def smoke_check() -> None:
            if app.api is not None or app.profile == "aws":
                qt_app.exit(0 if not app.window.grab().isNull() else 1)
            elif time.monotonic() > deadline:
                print(f"smoke test: the Local profile did not connect within {SMOKE_CONNECT_S:.0f} s",
                      file=sys.stderr)
                qt_app.exit(1)
            else:
                QTimer.singleShot(50, smoke_check)

        QTimer.singleShot(0, smoke_check)
    return int(qt_app.exec())


def launch(data_dir: Path | None, credentials: CredentialStore | None = None) -> tuple[App, object] | None:
    """Everything a launch does up to the window on screen (QApplication included); None
    when another instance already runs (it was asked to show its window, or the person was
    told it does not answer). The profile connects, and later launches can reach this one,
    after the window's first paint, so a person sees the window at once.
    bench/ui_startup.py times exactly this."""
    # Nearly everything a launch allocates lives as long as the app, so the cyclic garbage
    # collector's passes before the first paint (about 50) find nothing to free: it waits
    # until the window is on screen.
    gc.disable()
    launched = None
    try:
        launched = _launch(data_dir, credentials)
    finally:
        if launched is None:  # no window to wait for
            gc.enable()
    return launched


def _launch(data_dir: Path | None, credentials: CredentialStore | None) -> tuple[App, object] | None:
    from desktop.core.diagnostics import RecentErrors, default_log_dir, setup_logging
    from desktop.core.platform_check import xcb_problem

    if problem := xcb_problem():  # said before Qt aborts, naming every missing library, not just the first
        print(problem, file=sys.stderr)

    from PySide6.QtWidgets import QApplication

    from desktop.qt.first_paint import after_first_paint
    from desktop.qt.single_instance import SingleInstance
    from desktop.views import theme

    qt_app = QApplication.instance() or QApplication(sys.argv[:1])
    assert isinstance(qt_app, QApplication)
    qt_app.setApplicationName("TinyLlama")
    paths = AppPaths(data_dir, data_dir) if data_dir else AppPaths.default()
    instance = SingleInstance(paths.data_dir, qt_app)  # holds the data folder as long as the app runs
    if not instance.claim() and not _take_over_if_asked(instance):
        return None
    log_dir = data_dir / "logs" if data_dir else default_log_dir()
    recent = RecentErrors()
    log_file = setup_logging(log_dir, recent)
    settings = Settings(paths.settings_file)
    # Before the window exists: its widgets are polished once, in the chosen theme.
    theme.apply(qt_app, str(settings.get("appearance.theme")), str(settings.get("appearance.system")))
    app = App(paths, credentials, settings=settings)
    instance.activated.connect(app.window.bring_to_front)
    help_menu = _add_help(app, log_dir, recent, log_file)
    qt_app.aboutToQuit.connect(app.shutdown)
    qt_app.aboutToQuit.connect(instance.close)
    app.window.show()

    def painted() -> None:
        gc.enable()
        _follow_system_scheme(qt_app, settings)
        instance.listen()
        app.start()

    after_first_paint(app.window, painted)
    return app, help_menu


def _follow_system_scheme(qt_app: QApplication, settings: Settings) -> None:
    """The launch coloured the window for the platform's light or dark of the last launch
    (theme.apply): now ask the platform, follow it if it changed since, and keep its answer
    for the next launch whenever it changes. (With Light or Dark chosen there is nothing to
    follow, and the platform answers with that choice.)"""
    from desktop.views import theme

    def remember(_scheme: object = None) -> bool:
        scheme = theme.system_scheme(qt_app)
        if theme.current_choice() != "system" or scheme == settings.get("appearance.system"):
            return False
        settings.set("appearance.system", scheme)
        settings.save()
        return True

    if remember():
        theme.apply(qt_app, "system", str(settings.get("appearance.system")))
    qt_app.styleHints().colorSchemeChanged.connect(remember)  # the theme follows by itself


def _take_over_if_asked(instance: SingleInstance) -> bool:
    """Another instance holds the data folder: hand over to it (False); or, when it does not
    answer, say so, and break its lock only if the person chooses to start anyway and no
    live process still holds the lock (True)."""
    from PySide6.QtWidgets import QMessageBox

    if instance.activate_running():
        return False
    pid = instance.owner_pid()
    which = f" (process {pid})" if pid else ""
    def tell(text: str, buttons: QMessageBox.StandardButton) -> QMessageBox.StandardButton:
        print(text, file=sys.stderr)  # also for a launch from a terminal
        return QMessageBox.warning(None, ALREADY_RUNNING, text, buttons, QMessageBox.StandardButton.Close)

    close, open_ = QMessageBox.StandardButton.Close, QMessageBox.StandardButton.Open
    if tell(f"TinyLlama is already running{which} but its window did not answer. If it stays "
            "stuck, close it or end that process. Choose Open to start anyway, only if no "
            "TinyLlama window is open: two would write the same history.", open_ | close) != open_:
        return False
    if instance.take_over():
        return True
    tell(f"That TinyLlama{which} still holds its files, so this one cannot start beside it. "
         "End that process, then start TinyLlama again.", close)
    return False


def _add_help(app: App, log_dir: Path, recent: RecentErrors, log_file: Path) -> object:
    """Errors shown to the user logged, Help → About / logs / diagnostics."""
    from desktop.core.diagnostics import diagnostics_report
    from desktop.views.help_menu import HelpMenu, qt_versions

    app.window.error_shown.connect(lambda text: logging.getLogger("tinyllama.desktop").warning("%s", text))
    return HelpMenu(app.window, log_dir, lambda: diagnostics_report(
        profile=app.profile, errors=recent.messages(), log_file=log_file, extra_versions=qt_versions()))


if __name__ == "__main__":
    sys.exit(main())
