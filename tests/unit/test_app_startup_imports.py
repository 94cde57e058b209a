"""What the app's first screen imports: the window is built and shown before AWS, Redis, the
HTTP stack or the local service's client code load.

A fresh interpreter (as a launch is) imports the app module, builds the App with its main
window on the offscreen platform and shows it, then lists what it loaded. A module-level
import that the first screen does not need shows up here.
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
LATER = ("boto3", "botocore", "redis", "pycognito", "keyring", "requests", "urllib3",
         "backend.entrypoints.local_service", "backend.entrypoints.local", "desktop.services.local_profile",
         "desktop.services.auth", "desktop.views.wizard", "desktop.views.cost_panel")

FIRST_SCREEN = """
import json, sys, tempfile
from pathlib import Path
from PySide6.QtWidgets import QApplication

qt_app = QApplication([])
from desktop.app import App
from desktop.core.paths import AppPaths
from desktop.services.credentials import CredentialStore, MemoryKeyring

tmp = Path(tempfile.mkdtemp())
app = App(AppPaths(tmp / "config", tmp / "data"), CredentialStore(MemoryKeyring()))
app.window.show()
qt_app.processEvents()
loaded = sorted(m for m in sys.modules if m.split(".")[0] in {"boto3", "botocore", "redis", "pycognito",
                "keyring", "requests", "urllib3"} or m.startswith(("backend.entrypoints.", "desktop.services.",
                "desktop.views.")))
app.shutdown()
print(json.dumps(loaded))
"""


def test_the_first_screen_loads_no_aws_redis_http_or_local_service_code(tmp_path: Path) -> None:
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", PYTHONPATH=str(ROOT), HOME=str(tmp_path))
    run = subprocess.run([sys.executable, "-c", FIRST_SCREEN], cwd=tmp_path, env=env, capture_output=True,
                         text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    loaded = set(json.loads(run.stdout.strip().splitlines()[-1]))
    early = sorted(m for m in loaded if m in LATER or m.split(".")[0] in LATER)
    assert not early, f"the first screen imported {early}"
    assert "desktop.views.main_window" in loaded  # it did build the window
