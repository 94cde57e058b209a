"""One app per person and data folder: real app processes on the offscreen platform.

A second launch hands over to the first (which shows its window) and exits 0 at once, also
when it comes before the first has painted its window and listens; the lock and socket
files left by a first instance that was killed do not stop the next start; a first
instance that holds the folder but does not answer is named, and no second app opens; and
a minimised window comes back when asked.
"""

from __future__ import annotations

import gc
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import QLockFile
from PySide6.QtWidgets import QApplication, QMessageBox

from desktop.app import App
from desktop.app import launch as launch_in_process
from desktop.core.diagnostics import LOG_FILE_NAME
from desktop.qt import single_instance
from desktop.qt.single_instance import LOCK_FILE, server_name
from desktop.services.credentials import CredentialStore, MemoryKeyring
from desktop.views.main_window import MainWindow
from tests.gui.conftest import close_launched
from tests.helpers import wait_until

ROOT = Path(__file__).resolve().parents[2]
LISTENING = "Listening for a second launch"
ASKED = "A second launch asked for this window"
# A second launch imports PySide6 and the app's first modules, then connects; on a busy CI
# box that stays well under this.
SECOND_LAUNCH_S = 8.0


@pytest.fixture
def launch(tmp_path: Path) -> Iterator[Callable[..., subprocess.Popen[str]]]:
    """Start `python -m desktop.app --data-dir DATA`, as the `tinyllama` command does; every
    process left running is killed at the end."""
    data = tmp_path / "data"
    data.mkdir()
    # An AWS profile that is not filled in: the app says so and starts no local service,
    # so a killed app leaves no background process behind.
    (data / "settings.json").write_text(json.dumps({"profile": {"kind": "aws"}}))
    # The socket file goes into Qt's temp folder: this test's own, so it can look at it.
    sockets = tmp_path / "t"
    sockets.mkdir()
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", TMPDIR=str(sockets), HOME=str(tmp_path),
               XDG_STATE_HOME=str(tmp_path / "state"), PYTHONPATH=str(ROOT))
    started: list[subprocess.Popen[str]] = []

    def start() -> subprocess.Popen[str]:
        proc = subprocess.Popen([sys.executable, "-m", "desktop.app", "--data-dir", str(data)], env=env,
                                cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        started.append(proc)
        return proc

    yield start
    for proc in started:
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=30)


def _log(tmp_path: Path) -> str:
    path = tmp_path / "data" / "logs" / LOG_FILE_NAME
    return path.read_text(encoding="utf-8") if path.exists() else ""


def _second_launch(launch: Callable[..., subprocess.Popen[str]]) -> tuple[int, float, str]:
    began = time.monotonic()
    second = launch()
    _out, err = second.communicate(timeout=60)
    return second.returncode, time.monotonic() - began, err


def test_a_second_launch_raises_the_first_and_a_killed_first_does_not_block_the_next(
    launch: Callable[..., subprocess.Popen[str]], tmp_path: Path
) -> None:
    first = launch()
    wait_until(lambda: LISTENING in _log(tmp_path) or first.poll() is not None, timeout=60)
    assert first.poll() is None, first.communicate()[1]

    code, took, err = _second_launch(launch)
    assert code == 0, err
    assert took < SECOND_LAUNCH_S, f"the second launch took {took:.1f} s"
    wait_until(lambda: ASKED in _log(tmp_path), timeout=20)
    assert _log(tmp_path).count(LISTENING) == 1  # the second never became an app of its own
    assert first.poll() is None  # the first keeps running

    # A crash: the first dies without closing its socket; the file stays behind.
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=30)
    stale = tmp_path / "t" / server_name(tmp_path / "data")
    assert stale.exists()  # what the next start must get past
    assert (tmp_path / "data" / LOCK_FILE).exists()  # and the lock of a process that is gone

    third = launch()
    wait_until(lambda: _log(tmp_path).count(LISTENING) == 2 or third.poll() is not None, timeout=60)
    assert third.poll() is None, third.communicate()[1]  # it started, as the first instance
    code, _took, err = _second_launch(launch)
    assert code == 0, err
    wait_until(lambda: _log(tmp_path).count(ASKED) == 2, timeout=20)


def test_a_second_launch_before_the_first_listens_still_reaches_it(
    launch: Callable[..., subprocess.Popen[str]], tmp_path: Path
) -> None:
    # A double double-click: the second starts once the first holds the folder, while it is
    # still building its window (it listens after the first paint).
    first = launch()
    wait_until(lambda: (tmp_path / "data" / LOCK_FILE).exists() or first.poll() is not None, timeout=60)
    code, _took, err = _second_launch(launch)
    assert code == 0, err
    wait_until(lambda: ASKED in _log(tmp_path), timeout=20)
    assert _log(tmp_path).count(LISTENING) == 1
    assert first.poll() is None


def _lock_of_a_process_that_looks_alive(data: Path, tmp_path: Path) -> None:
    """The lock file a crashed app leaves when its process id now belongs to a program of the
    same name: Qt takes the lock for held, though nobody holds it (this process's id)."""
    donor = QLockFile(str(tmp_path / "donor.lock"))
    assert donor.tryLock(0)
    content = (tmp_path / "donor.lock").read_bytes()
    donor.unlock()
    (data / LOCK_FILE).write_bytes(content)


@pytest.mark.parametrize("case", ["close", "open", "open while held"])
def test_a_first_instance_that_does_not_answer_is_named_and_the_person_decides(
    case: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, qtbot: Any
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    held = QLockFile(str(data / LOCK_FILE))
    if case == "open while held":
        assert held.tryLock(0)  # a live process (this one) that holds the folder and never listens
    else:
        _lock_of_a_process_that_looks_alive(data, tmp_path)
    told: list[str] = []

    def warning(_parent: object, _title: str, text: str, *_buttons: object) -> QMessageBox.StandardButton:
        told.append(text)
        return QMessageBox.StandardButton.Close if case == "close" else QMessageBox.StandardButton.Open

    monkeypatch.setattr(QMessageBox, "warning", warning)
    monkeypatch.setattr(single_instance, "CONNECT_TIMEOUT_MS", 300)
    started: list[bool] = []
    monkeypatch.setattr(App, "start", lambda _self: started.append(True))  # the profile is not the point here
    windows_before = {id(w) for w in QApplication.topLevelWidgets() if isinstance(w, MainWindow)}
    launched = launch_in_process(data, CredentialStore(MemoryKeyring()))
    try:
        assert "already running" in told[0] and f"process {os.getpid()}" in told[0]
        if case == "open":  # the lock is broken and this launch becomes the app
            assert len(told) == 1
            assert launched is not None and launched[0].window.isVisible()
            assert not QLockFile(str(data / LOCK_FILE)).tryLock(0)  # now this one holds it
            qtbot.waitUntil(lambda: started == [True])  # painted: it listens for later launches
            assert gc.isenabled()
        else:  # the default, or a lock a live process holds: no second app on one history
            assert launched is None
            assert gc.isenabled()  # no window to wait for: the launch's pause in collecting ends
            assert {id(w) for w in QApplication.topLevelWidgets() if isinstance(w, MainWindow)} <= windows_before
            assert len(told) == (2 if case == "open while held" else 1)
            if case == "open while held":
                assert "still holds its files" in told[1]
    finally:
        held.unlock()
        if launched is not None:
            close_launched(launched[0])


def test_a_lock_that_cannot_be_written_does_not_keep_the_app_from_starting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # A fake: these tests run as root, for whom no folder refuses a file; the lock reports
    # what QLockFile says for a read-only folder.
    class ReadOnlyFolderLock(QLockFile):
        def tryLock(self, _timeout: int = 0) -> bool:
            return False

        def error(self) -> QLockFile.LockError:
            return QLockFile.LockError.PermissionError

    monkeypatch.setattr(single_instance, "QLockFile", ReadOnlyFolderLock)
    instance = single_instance.SingleInstance(tmp_path / "data")
    assert instance.claim()  # not "another instance runs": nothing holds it
    assert "No single-instance lock" in caplog.text and "PermissionError" in caplog.text


def test_two_data_folders_or_two_users_get_different_names(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import getpass

    one = server_name(tmp_path / "a")
    assert one == server_name(tmp_path / "x" / ".." / "a")  # the same folder, spelt otherwise
    assert one != server_name(tmp_path / "b")
    monkeypatch.setattr(getpass, "getuser", lambda: "someone-else")
    assert one != server_name(tmp_path / "a")
    assert len(one) < 40  # Unix socket paths are short (108 bytes with the temp folder)


@pytest.mark.qt_log_ignore("does not support raise")  # the offscreen platform's; real ones raise
def test_bring_to_front_restores_a_minimised_window(open_window: Callable[..., Any], qtbot: Any) -> None:
    window = open_window().window
    window.showMinimized()
    qtbot.waitUntil(window.isMinimized)
    window.bring_to_front()
    qtbot.waitUntil(lambda: not window.isMinimized() and window.isVisible())
