"""What the app's first screen imports: the window is built and painted before AWS, Redis,
the HTTP stack, the local service's client code, Markdown and Pygments load.

A fresh interpreter launches the app as the `tinyllama` command does (`desktop.cli`, then
`desktop.app.launch`) on the offscreen platform and, at the window's first paint, lists
what it loaded. A module-level import that the first screen does not need shows up here.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# Each of these loads on first use: AWS on sign-in or deploy, requests with the first API
# client (once the profile connects), the local service's client once the Local profile starts.
# Markdown and Pygments with the first message rendered (an empty chat has none), package
# metadata for Help → About, the subcommands' parsers only for a command line with arguments.
# The single-instance socket (QtNetwork, and the hash naming it) once the window is painted,
# uuid (which loads platform) with the first prompt, ctypes only where Qt will use xcb; the
# rotating log file (logging.handlers, socket, pickle) with the first record logged; html
# (its entity tables) with the first message; the prompt validator never (the app reads the
# contract's numbers from backend.core.limits).
LATER = ("PySide6.QtNetwork", "hashlib", "uuid", "platform", "ctypes", "logging.handlers", "socket", "pickle",
         "html", "backend.core.prompts",
         "boto3", "botocore", "redis", "pycognito", "keyring", "requests", "urllib3",
         "backend.entrypoints.local_service", "backend.entrypoints.local", "desktop.services.local_profile",
         "desktop.services.auth", "desktop.views.wizard", "desktop.views.cost_panel",
         "markdown_it", "pygments", "importlib.metadata", "backend.entrypoints.commands")

FIRST_SCREEN = """
import gc, json, sys
from pathlib import Path

import desktop.cli  # the console script's module
from desktop.app import App, launch
from desktop.qt.first_paint import after_first_paint
from desktop.services.credentials import CredentialStore, MemoryKeyring
from PySide6 import QtCore
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication

profile_started = []
App.start = lambda self: profile_started.append(True)  # a test starts no background service
app, _help = launch(Path(sys.argv[1]), CredentialStore(MemoryKeyring()))
result = {}

def painted():
    # Registered after launch's own: this runs first, before the profile starts.
    result["started"] = app.local is not None
    result["loaded"] = sorted(sys.modules)
    result["collecting"] = gc.isenabled()
    result["qt_namespace"] = "Qt" in vars(QtCore)  # PySide builds it on first use
    QTimer.singleShot(0, after_launch_painted)

def after_launch_painted():
    result["collecting_after"] = gc.isenabled()
    result["started_after"] = profile_started == [True]
    QApplication.instance().quit()

after_first_paint(app.window, painted)
QApplication.instance().exec()
print(json.dumps(result))
"""


def _first_screen(data_dir: Path, home: Path) -> dict[str, object]:
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", PYTHONPATH=str(ROOT), HOME=str(home))
    run = subprocess.run([sys.executable, "-c", FIRST_SCREEN, str(data_dir)], cwd=home, env=env,
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    return dict(json.loads(run.stdout.strip().splitlines()[-1]))


def test_the_first_screen_loads_no_aws_redis_http_markdown_or_local_service_code(tmp_path: Path) -> None:
    result = _first_screen(tmp_path / "data", tmp_path)
    assert result["started"] is False  # measured at the first paint, before the profile starts
    # The garbage collector waits for the window to be on screen, then works as usual.
    assert result["collecting"] is False and result["collecting_after"] is True
    assert result["started_after"]  # the launch's own callback did run
    loaded = set(result["loaded"])
    early = sorted(m for m in loaded if m in LATER or m.split(".")[0] in LATER
                   or any(m.startswith(later + ".") for later in LATER))
    assert not early, f"the first screen imported {early}"
    assert "desktop.views.main_window" in loaded  # it did build the window


def test_a_returning_launch_paints_before_building_the_qt_enum_namespace(tmp_path: Path) -> None:
    """PySide builds all 93 enums of `Qt` on its first use, 13 ms (desktop.qt.properties): the
    first screen is built without it. The first launch asks the platform for its light or dark
    (so it may build them), saves the answer, and the next launch starts from that answer."""
    data = tmp_path / "data"
    _first_screen(data, tmp_path)
    saved = json.loads((data / "settings.json").read_text())
    assert saved["appearance"]["system"] == "light"  # what the offscreen platform says
    again = _first_screen(data, tmp_path)
    assert again["qt_namespace"] is False
    assert again["collecting_after"] is True  # the launch's own callback, which asks again, ran
