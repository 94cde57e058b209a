"""The main window fits the screen it opens on: at 200 % on a 1400×900 screen, with a
geometry saved on a monitor that is gone, and at small sizes with Send still in reach.

The HiDPI cases run the real window in a subprocess: the scale factor and the offscreen
platform's screens (its JSON config file) are fixed when Qt starts.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from PySide6.QtCore import QPoint, QRect

from tests.gui.conftest import screenshot_dir

ROOT = Path(__file__).resolve().parents[2]
LAPTOP = {"name": "Laptop", "x": 0, "y": 0, "width": 1400, "height": 900, "logicalDpi": 96,
          "logicalBaseDpi": 96, "dpr": 1}
MONITOR = {"name": "Monitor", "x": 1400, "y": 0, "width": 1920, "height": 1080, "logicalDpi": 96,
           "logicalBaseDpi": 96, "dpr": 1}

PROBE = r"""
import json, sys
from pathlib import Path
from PySide6.QtCore import QPoint, QRect
from PySide6.QtWidgets import QApplication

qt_app = QApplication([])
from desktop.core.history import HistoryStore
from desktop.core.settings import Settings
from desktop.qt.runner import Runner
from desktop.views.main_window import MainWindow

data, action = Path(sys.argv[1]), sys.argv[2]
runner = Runner()
history = HistoryStore(data / "history.sqlite3")
window = MainWindow(history, Settings(data / "settings.json"), runner)
window.show()
for _ in range(20):
    qt_app.processEvents()
if action.startswith("place:"):  # where the person left it last time
    x, y, w, h = map(int, action[6:].split(","))
    window.setGeometry(x, y, w, h)
    qt_app.processEvents()
    window.save_geometry()
elif action.startswith("shot:"):
    window.grab().save(action[5:])
send = window.chat.send_button
rect = lambda r: [r.x(), r.y(), r.width(), r.height()]
room = window.screen().availableGeometry()
print(json.dumps({"room": rect(room), "frame": rect(window.frameGeometry()), "window": rect(window.rect()),
                  "send": rect(QRect(send.mapTo(window, QPoint(0, 0)), send.size())),
                  "send_visible": send.isVisible()}))
window.close()
runner.shutdown(5000)
history.close()
"""


def _open(tmp_path: Path, screens: list[dict[str, Any]], scale: float, action: str = "") -> dict[str, Any]:
    config = tmp_path / f"screens-{len(screens)}.json"
    config.write_text(json.dumps({"screens": screens}))
    env = dict(os.environ, QT_QPA_PLATFORM=f"offscreen:configfile={config}", QT_SCALE_FACTOR=str(scale),
               PYTHONPATH=str(ROOT))
    run = subprocess.run([sys.executable, "-c", PROBE, str(tmp_path), action], env=env, cwd=tmp_path,
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    return dict(json.loads(run.stdout.strip().splitlines()[-1]))


def _assert_fits_with_send_in_reach(seen: dict[str, Any]) -> None:
    room, frame, window, send = (QRect(*seen[k]) for k in ("room", "frame", "window", "send"))
    assert room.contains(frame), f"the window {frame} leaves the screen's available area {room}"
    assert seen["send_visible"] and window.contains(send), f"Send {send} is outside the window {window}"


def test_the_first_window_at_200_percent_fits_a_1400x900_screen(tmp_path: Path) -> None:
    seen = _open(tmp_path, [LAPTOP], 2, f"shot:{tmp_path / 'p-200-percent.png'}")
    assert seen["room"] == [0, 0, 700, 450]  # logical pixels: the scale is in force
    _assert_fits_with_send_in_reach(seen)
    shot = screenshot_dir() / "main_first_window_200_percent.png"  # for a person to look at
    shot.parent.mkdir(parents=True, exist_ok=True)
    shot.write_bytes((tmp_path / "p-200-percent.png").read_bytes())


def test_a_geometry_saved_on_an_unplugged_monitor_at_another_scale_comes_back_on_screen(tmp_path: Path) -> None:
    left = _open(tmp_path, [LAPTOP, MONITOR], 1, "place:1700,120,1300,850")
    assert QRect(*left["frame"]).left() >= 1400  # it really was on the second monitor
    seen = _open(tmp_path, [LAPTOP], 2)  # the monitor is gone and the laptop runs at 200 %
    _assert_fits_with_send_in_reach(seen)


def test_a_window_restored_on_screen_is_left_where_it_was(open_window, qtbot,  # type: ignore[no-untyped-def]
                                                          monkeypatch) -> None:
    """restoreGeometry puts the window back where the person left it. Moving it there again
    would place its *frame* where the window was: under a window manager (Xvfb with openbox,
    tried) it crept down one title bar, 20 px, every launch. The offscreen platform has no
    frames, so the test watches for that move."""
    from desktop.views.main_window import MainWindow

    first = open_window().window
    first.setGeometry(100, 80, 500, 400)  # on the test screen (800×600)
    first.save_geometry()
    moves: list[tuple[int, int]] = []
    original_move = MainWindow.move

    def move(self, *args):  # type: ignore[no-untyped-def]
        moves.append(args)
        original_move(self, *args)

    monkeypatch.setattr(MainWindow, "move", move)
    again = open_window(show=False).window
    assert again.geometry() == QRect(100, 80, 500, 400)
    assert moves == []
    # A place that is no longer on screen still is moved back onto it.
    again.move(5000, 5000)
    moves.clear()
    again.fit_to_screen()
    assert len(moves) == 1 and again.screen().availableGeometry().contains(again.frameGeometry())


def test_a_small_window_keeps_the_prompt_box_and_send_in_reach(open_window, qtbot) -> None:  # type: ignore[no-untyped-def]
    window = open_window().window
    window.resize(640, 420)
    qtbot.waitUntil(lambda: window.size().width() == 640)
    for widget in (window.chat.prompt, window.chat.send_button):
        spot = QRect(widget.mapTo(window, QPoint(0, 0)), widget.size())
        assert widget.isVisible() and window.rect().contains(spot), (widget, spot)
    window.resize(100, 100)  # dragged as small as the window manager allows
    qtbot.waitUntil(lambda: window.width() < 640)
    assert (window.width(), window.height()) == (480, 320)  # the minimum size holds
    send = window.chat.send_button
    assert window.rect().contains(QRect(send.mapTo(window, QPoint(0, 0)), send.size()))
    # The chat (with the prompt and Send) cannot be dragged away; only the chat list can.
    window.splitter.moveSplitter(10_000, 1)
    assert window.chat.width() > 0


DIALOGS = r"""
import json, sys
from pathlib import Path
from PySide6.QtCore import QPoint, QRect
from PySide6.QtWidgets import QApplication

qt_app = QApplication([])
from desktop.core.settings import Settings
from desktop.qt.runner import Runner
from desktop.services.credentials import CredentialStore, MemoryKeyring
from desktop.views.model_dialog import ModelDialog
from desktop.views.settings_dialog import SettingsDialog

data = Path(sys.argv[1])
runner = Runner()
settings = Settings(data / "settings.json")
rect = lambda r: [r.x(), r.y(), r.width(), r.height()]
seen = {}
for name, dialog, button in (
        ("model", model := ModelDialog(settings, data, runner, CredentialStore(MemoryKeyring())), model.use_button),
        ("profile", profile := SettingsDialog(settings), profile.findChildren(type(model.use_button))[-1])):
    dialog.show()
    for _ in range(20):
        qt_app.processEvents()
    seen[name] = {"room": rect(dialog.screen().availableGeometry()), "frame": rect(dialog.frameGeometry()),
                  "window": rect(dialog.rect()), "send": rect(QRect(button.mapTo(dialog, QPoint(0, 0)), button.size())),
                  "send_visible": button.isVisible(),
                  "scrolls": hasattr(dialog, "body") and dialog.body.verticalScrollBar().maximum() > 0}
    dialog.close()
print(json.dumps(seen))
runner.shutdown(5000)
"""


def test_the_model_and_profile_dialogs_fit_a_1400x900_screen_at_200_percent(tmp_path: Path) -> None:
    # They were 1354×1008 physical pixels there: "Use this model" and OK below the screen's edge.
    config = tmp_path / "screens.json"
    config.write_text(json.dumps({"screens": [LAPTOP]}))
    env = dict(os.environ, QT_QPA_PLATFORM=f"offscreen:configfile={config}", QT_SCALE_FACTOR="2",
               PYTHONPATH=str(ROOT))
    run = subprocess.run([sys.executable, "-c", DIALOGS, str(tmp_path)], env=env, cwd=tmp_path,
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    seen = json.loads(run.stdout.strip().splitlines()[-1])
    for name in ("model", "profile"):
        _assert_fits_with_send_in_reach(seen[name])
    assert seen["model"]["scrolls"]  # what does not fit scrolls instead of leaving the screen
