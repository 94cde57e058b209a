"""Start-up of the desktop app next to a bare PySide6 window.

Each run is a fresh process (`python bench/ui_startup.py --child KIND`). It reports the
seconds from the moment the parent spawned it (time.monotonic is system-wide, so the
interpreter's own start counts, as it does for a person) to the event-loop turn after the
window's first paint, and to the Local profile being connected; and its resident memory
at both:

- `bare`       a bare PySide6 QMainWindow shown the same way (the floor);
- `widgets`    a PySide6 window with the first screen's kinds of widgets and text, and no
               app code: what PySide6 itself costs for such a window (its enums, the
               style, the fonts);
- `app`        the app's real launch (`desktop.app.launch`: single instance, logging,
               theme, window, help menu) with an empty history; it connects to the
               background service `tinyllama local --service`, started by the first run and
               reused by the others, as a second launch reuses it;
- `returning`  the same with a chat of 20 Markdown answers (code blocks, a table) reopened.

Prints medians and their ratios, and the median of each round's own ratio (the steadier
figure on a shared machine); no pass/fail. Offscreen by default; in a real X window:

    .venv/bin/python -m bench ui_startup [--runs 5]
    QT_QPA_PLATFORM=xcb xvfb-run -a -s "-screen 0 1400x900x24" .venv/bin/python -m bench ui_startup
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from PySide6.QtWidgets import QMainWindow

ROOT = Path(__file__).resolve().parents[1]
T0_ENV = "TINYLLAMA_BENCH_T0"


def _since_spawn_s() -> float:
    return time.monotonic() - float(os.environ[T0_ENV])


def _rss_mb() -> float:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child(kind: str, data_dir: Path) -> None:
    result: dict[str, float] = {}
    app = None
    if kind == "bare":
        from PySide6.QtWidgets import QApplication, QMainWindow

        qt_app = QApplication([sys.argv[0]])
        window = QMainWindow()
        window.resize(1000, 680)
        window.show()
    elif kind == "widgets":
        from PySide6.QtWidgets import QApplication

        qt_app = QApplication([sys.argv[0]])
        window = _widgets_window()
        window.show()
    else:  # the path of the `tinyllama` command with no arguments
        import desktop.cli  # noqa: F401 (the console script's module, imported first)
        from desktop.app import launch
        from desktop.services.credentials import CredentialStore, MemoryKeyring

        launched = launch(data_dir, CredentialStore(MemoryKeyring()))
        assert launched is not None
        app, _help = launched
        window = app.window
        from PySide6.QtWidgets import QApplication

        qt_app = QApplication.instance()
    from PySide6.QtCore import QEvent, QObject, QTimer

    def connected() -> None:
        if app is not None and app.api is None:
            QTimer.singleShot(5, connected)
            return
        result["connected_s"] = _since_spawn_s()
        result["rss_mb"] = _rss_mb()
        qt_app.quit()

    def shown() -> None:
        result["shown_s"] = _since_spawn_s()
        result["shown_rss_mb"] = _rss_mb()
        connected()

    class FirstPaint(QObject):
        def eventFilter(self, watched: QObject, event: QEvent) -> bool:
            if event.type() == QEvent.Type.Paint and "shown_s" not in result:
                window.removeEventFilter(self)
                QTimer.singleShot(0, shown)  # the turn after the paint, as the app's own start
            return False

    first_paint = FirstPaint()
    window.installEventFilter(first_paint)
    qt_app.exec()
    print(json.dumps(result))


def _widgets_window() -> QMainWindow:
    """The first screen's kinds of widgets, with words in them, and no app code."""
    from PySide6.QtCore import Qt
    from PySide6.QtWidgets import (
        QComboBox,
        QDoubleSpinBox,
        QHBoxLayout,
        QLabel,
        QLineEdit,
        QListWidget,
        QMainWindow,
        QPlainTextEdit,
        QPushButton,
        QSpinBox,
        QSplitter,
        QTextBrowser,
        QVBoxLayout,
        QWidget,
    )

    window = QMainWindow()
    window.resize(1000, 680)
    side = QWidget()
    side_layout = QVBoxLayout(side)
    search = QLineEdit()
    search.setPlaceholderText("Search chats")
    search.setClearButtonEnabled(True)
    for widget in (QPushButton("New chat"), search, QListWidget()):
        side_layout.addWidget(widget)
    chat = QWidget()
    chat_layout = QVBoxLayout(chat)
    transcript = QTextBrowser()
    transcript.setHtml('<p align="center">Type a prompt below and press Enter.</p>')
    chat_layout.addWidget(transcript, 1)
    options, entry = QHBoxLayout(), QHBoxLayout()
    for widget in (QComboBox(), QSpinBox(), QDoubleSpinBox()):
        options.addWidget(widget)
    prompt = QPlainTextEdit()
    prompt.setPlaceholderText("Ask anything")
    for widget in (prompt, QPushButton("Send"), QPushButton("Stop")):
        entry.addWidget(widget)
    chat_layout.addLayout(options)
    chat_layout.addLayout(entry)
    splitter = QSplitter(Qt.Orientation.Horizontal)
    splitter.addWidget(side)
    splitter.addWidget(chat)
    window.setCentralWidget(splitter)
    for title in ("&Chat", "&Account", "&View", "&Help"):
        menu = window.menuBar().addMenu(title)
        for i in range(6):
            menu.addAction(f"Item {i}")
    window.statusBar().addWidget(QLabel("Echo on this computer: ready"), 1)
    prompt.setFocus()
    return window


def _returning_history(data_dir: Path) -> None:
    """A person's second launch: settings saved, one chat of 20 Markdown answers."""
    from desktop.core.history import HistoryStore

    data_dir.mkdir(parents=True, exist_ok=True)
    history = HistoryStore(data_dir / "history.sqlite3")
    chat = history.create_conversation("Sorting in Python")
    answer = ("Use **sorted()** with a key:\n\n```python\nrows = sorted(rows, key=lambda r: r[1])\n```\n\n"
              "| call | stable |\n|---|---|\n| sorted | yes |\n| list.sort | yes |\n")
    for i in range(20):
        history.add_message(chat.id, "user", f"Question {i}: how do I sort?")
        history.add_message(chat.id, "assistant", answer, status="done")
    history.close()


KINDS = ("bare", "widgets", "app", "returning")
METRICS = ("shown_s", "connected_s", "shown_rss_mb", "rss_mb")


def run(kind: str, service_dir: Path, template: Path) -> dict[str, float]:
    import shutil
    import tempfile

    data_dir = Path(tempfile.mkdtemp(prefix="tinyllama-bench-data-"))
    try:
        shutil.copytree(template / kind, data_dir, dirs_exist_ok=True)
        return _launch(kind, data_dir, service_dir)
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)


def _launch(kind: str, data_dir: Path, service_dir: Path) -> dict[str, float]:
    import subprocess

    env = dict(os.environ, QT_QPA_PLATFORM=os.environ.get("QT_QPA_PLATFORM", "offscreen"),
               PYTHONPATH=str(ROOT), TINYLLAMA_RUNTIME_DIR=str(service_dir / "runtime"),
               TINYLLAMA_DATA_DIR=str(service_dir / "data"), **{T0_ENV: repr(time.monotonic())})
    out = subprocess.run([sys.executable, __file__, "--child", kind, str(data_dir)], env=env, cwd=ROOT,
                         capture_output=True, text=True, timeout=120, check=True)
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def _stop_service(service_dir: Path) -> None:
    """SIGTERM the benchmark's background service (it would stop itself when idle)."""
    import signal

    try:
        pid = int(json.loads((service_dir / "runtime" / "local-service.json").read_text())["pid"])
        os.kill(pid, signal.SIGTERM)
    except (OSError, ValueError, KeyError):
        pass


def _templates(root: Path, service_dir: Path) -> Path:
    """Each kind's data folder as a launch finds it (copied fresh for every run): as an
    earlier launch left it, with its settings and its (empty) history database, as a
    returning person's. That launch, not counted, also starts the background service."""
    import shutil

    first = root / "first"
    first.mkdir(parents=True)
    (first / "settings.json").write_text(json.dumps({"local": {"model_offered": True}}))  # offer answered
    _launch("app", first, service_dir)
    for kind in KINDS:
        shutil.copytree(first, root / kind)
    _returning_history(root / "returning")
    return root


def main(argv: list[str] | None = None) -> None:
    argv = argv or []
    if argv[:1] == ["--child"]:  # the measured process: nothing else imported first
        child(argv[1], Path(argv[2]))
        return
    import argparse
    import shutil
    import statistics
    import tempfile

    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args(argv)
    # A person's launch reads bytecode that pip wrote at install (or the bundle carries);
    # compile ours the same way, or PYTHONDONTWRITEBYTECODE (set on some machines) would
    # charge every measured launch for compiling each module changed since.
    import compileall

    for package in ("desktop", "backend"):
        compileall.compile_dir(ROOT / package, quiet=1)
    scratch = Path(tempfile.mkdtemp(prefix="tinyllama-bench-startup-"))
    service_dir = scratch / "service"
    results: dict[str, list[dict[str, float]]] = {k: [] for k in KINDS}
    try:
        template = _templates(scratch / "template", service_dir)
        for _ in range(args.runs):  # interleaved, so drift in the machine hits all alike
            for kind in KINDS:
                results[kind].append(run(kind, service_dir, template))
    finally:
        _stop_service(service_dir)
        shutil.rmtree(scratch, ignore_errors=True)
    med = {k: {m: statistics.median(r[m] for r in v) for m in METRICS} for k, v in results.items()}
    print(f"runs: {args.runs} each, QT_QPA_PLATFORM={os.environ.get('QT_QPA_PLATFORM', 'offscreen')}")
    for kind in KINDS:
        m = med[kind]
        print(f"{kind:9s} window shown after {m['shown_s'] * 1000:6.0f} ms, connected after"
              f" {m['connected_s'] * 1000:6.0f} ms, RSS {m['shown_rss_mb']:6.1f} MB shown,"
              f" {m['rss_mb']:6.1f} MB connected")
    for kind in ("widgets", "app", "returning"):
        print(f"ratio {kind}/bare: shown {med[kind]['shown_s'] / med['bare']['shown_s']:.2f}x,"
              f" memory shown {med[kind]['shown_rss_mb'] / med['bare']['shown_rss_mb']:.2f}x,"
              f" connected {med[kind]['connected_s'] / med['bare']['shown_s']:.2f}x,"
              f" memory connected {med[kind]['rss_mb'] / med['bare']['rss_mb']:.2f}x")
    # Each round runs every kind back to back, so a round's own ratio cancels the drift of
    # a shared machine between rounds: its median is the steadier figure of the two.
    for kind in ("widgets", "app", "returning"):
        paired = sorted(r["shown_s"] / b["shown_s"] for r, b in zip(results[kind], results["bare"], strict=True))
        quarter = len(paired) // 4
        print(f"round by round {kind}/bare: shown {statistics.median(paired):.2f}x"
              f" (middle half {paired[quarter]:.2f}-{paired[-1 - quarter]:.2f}x)")


if __name__ == "__main__":
    main(sys.argv[1:])
