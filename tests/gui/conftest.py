"""GUI test fixtures: offscreen Qt, a real local stack, windows on temporary dirs.

Tests wait for signals and conditions (qtbot.waitSignal / waitUntil), never fixed sleeps;
every runner is joined in teardown; a Qt warning in the log fails the test.
"""

from __future__ import annotations

import gc
import os

# Without a display Qt aborts the process; this must be set before Qt is imported.
os.environ["QT_QPA_PLATFORM"] = "offscreen"

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtWidgets import QTextBrowser

from backend.entrypoints.local import LocalStack
from desktop.core.history import HistoryStore
from desktop.core.paths import AppPaths
from desktop.core.settings import Settings
from desktop.services.api import ApiClient

DOCS_SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
# Tests never write into the checkout: screenshots go to the session's temporary folder,
# and into docs/screenshots only when someone regenerates them on purpose.
WRITE_DOCS_ENV = "TINYLLAMA_WRITE_SCREENSHOTS"
_shots: dict[str, Path] = {}


def screenshot_dir() -> Path:
    """Where this session's screenshots go: docs/screenshots with TINYLLAMA_WRITE_SCREENSHOTS=1,
    otherwise a folder under pytest's temporary directory."""
    if os.environ.get(WRITE_DOCS_ENV) == "1":
        return DOCS_SCREENSHOTS
    return _shots["dir"]


@pytest.fixture(scope="session", autouse=True)
def _screenshot_tmp(tmp_path_factory: pytest.TempPathFactory) -> None:
    _shots["dir"] = tmp_path_factory.mktemp("screenshots")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.qt_log_level_fail("WARNING"))
            # The offscreen platform's own notice when a window is shown; not our bug.
            item.add_marker(pytest.mark.qt_log_ignore("does not support propagateSizeHints"))


@pytest.fixture(autouse=True)
def collect_qt_garbage(qapp) -> Iterator[None]:  # type: ignore[no-untyped-def]
    """Collect each test's windows on the UI thread, after pytest-qt closed them.

    Windows hold reference cycles (signals connected to lambdas), so only Python's cyclic
    GC frees them, and it runs on whichever thread allocates at the time: a runner thread
    or the local gateway's server thread, which would destroy widgets off the UI thread.
    """
    yield
    from PySide6.QtCore import QCoreApplication, QEvent

    for _ in range(2):
        gc.collect()
        QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
        qapp.processEvents()


def fast_local_stack(**kwargs: Any) -> LocalStack:
    """A LocalProfile's stack factory: the real stack, its echo engine quick (10 ms a word)."""
    return LocalStack(echo_delay_s=0.01, **kwargs)


@pytest.fixture(scope="session")
def stack() -> Iterator[LocalStack]:
    """One real local stack (router, Redis, echo worker) shared by the GUI tests.

    30 ms per echoed word: slow enough to stop or restart mid-answer with a long prompt,
    fast enough that short answers finish at once.
    """
    with LocalStack(engine="echo", echo_delay_s=0.03) as s:
        yield s


@pytest.fixture
def paths(tmp_path: Path) -> AppPaths:
    return AppPaths(tmp_path / "config", tmp_path / "data")


@dataclass
class Opened:
    """A window and what it was built from, so a test can 'restart' on the same dirs."""

    window: object
    history: HistoryStore
    runner: object
    closed: bool = False
    extras: list[Callable[[], None]] = field(default_factory=list)

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.window.shutdown()  # type: ignore[attr-defined]
        assert self.runner.shutdown(20000), "background calls did not finish"  # type: ignore[attr-defined]
        self.window.close()  # type: ignore[attr-defined]
        self.history.close()


@pytest.fixture
def open_window(qtbot, paths: AppPaths) -> Iterator[Callable[..., Opened]]:  # type: ignore[no-untyped-def]
    """Build a MainWindow on `paths` connected to `api` (or none); closed in teardown."""
    from desktop.qt.runner import Runner
    from desktop.views.main_window import MainWindow

    opened: list[Opened] = []

    def make(api: ApiClient | None = None, show: bool = True) -> Opened:
        history = HistoryStore(paths.history_db)
        runner = Runner()
        window = MainWindow(history, Settings(paths.settings_file), runner)
        qtbot.addWidget(window)
        if show:
            window.show()
            qtbot.waitExposed(window)
        if api is not None:
            window.connect_api(api)
        item = Opened(window, history, runner)
        opened.append(item)
        return item

    yield make
    for item in opened:
        item.close()


@pytest.fixture
def api(stack: LocalStack) -> ApiClient:
    client = ApiClient(stack.url, lambda: stack.token)
    yield client
    client.close()


@pytest.fixture
def sent_prompts(api: ApiClient, monkeypatch: pytest.MonkeyPatch) -> list[list[dict[str, str]]]:
    """The messages of every prompt `api` submits, in order (it still submits them)."""
    sent: list[list[dict[str, str]]] = []
    real_submit = api.submit

    def recording_submit(messages: list[dict[str, str]], **params: Any):  # type: ignore[no-untyped-def]
        sent.append([dict(m) for m in messages])
        return real_submit(messages, **params)

    monkeypatch.setattr(api, "submit", recording_submit)
    return sent


def links_to(browser: QTextBrowser, href: str) -> list[int]:
    """Document positions of the links to `href` in the transcript, in reading order."""
    found = []
    block = browser.document().begin()
    while block.isValid():
        it = block.begin()
        while not it.atEnd():
            fragment = it.fragment()
            if fragment.charFormat().anchorHref() == href:
                found.append(fragment.position())
            it += 1
        block = block.next()
    return found


def save_screenshot(widget, name: str) -> Path:  # type: ignore[no-untyped-def]
    """Save a real screenshot of `widget` as `name` (see screenshot_dir) and return its path."""
    folder = screenshot_dir()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    assert widget.grab().save(str(path)), path
    return path


@pytest.fixture
def runner() -> Iterator[Any]:
    """The app's background runner; at the end every job it ran has finished."""
    from desktop.qt.runner import Runner

    r = Runner()
    yield r
    assert r.shutdown(20000)


def close_launched(app: Any) -> None:
    """Undo an in-process `desktop.app.launch`: the app, its window, its single-instance
    lock and socket (this test process is no longer "the app" for that data folder), and its
    pause in garbage collection, should the window have closed before its first paint."""
    import gc

    from PySide6.QtWidgets import QApplication

    from desktop.qt.single_instance import SingleInstance

    gc.enable()
    app.shutdown()
    app.window.close()
    for instance in QApplication.instance().findChildren(SingleInstance):
        instance.close()
        instance.deleteLater()
