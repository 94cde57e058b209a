"""Start-up of the desktop app against a bare PySide6 QMainWindow started the same way.

Each run is a fresh process (`python bench/ui_startup.py --child app|bare`) that reports
the seconds from the process's own start to the window being shown and painted once, and
its resident memory then. Prints medians and the app/bare ratios; no pass/fail.

    .venv/bin/python bench/ui_startup.py [--runs 5]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _process_age_s() -> float:
    """Seconds since this process started (Linux /proc; elsewhere: since import)."""
    try:
        ticks = int(Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()[19])
        boot = next(float(line.split()[1]) for line in Path("/proc/stat").read_text().splitlines()
                    if line.startswith("btime"))
        return time.time() - (boot + ticks / os.sysconf("SC_CLK_TCK"))
    except (OSError, StopIteration, IndexError, ValueError):
        return time.perf_counter() - _IMPORTED


_IMPORTED = time.perf_counter()


def _rss_mb() -> float:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child(kind: str) -> None:
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication, QMainWindow

    qt_app = QApplication([sys.argv[0]])
    result: dict[str, float] = {}
    cleanup = None
    if kind == "bare":
        window = QMainWindow()
        window.resize(1000, 680)
    else:
        from desktop.app import App
        from desktop.core.paths import AppPaths
        from desktop.services.credentials import CredentialStore, MemoryKeyring

        tmp = Path(tempfile.mkdtemp(prefix="tinyllama-bench-"))
        app = App(AppPaths(tmp / "config", tmp / "data"), CredentialStore(MemoryKeyring()))
        window = app.window
        cleanup = app.shutdown

    def shown() -> None:
        result["shown_s"] = _process_age_s()
        result["rss_mb"] = _rss_mb()
        qt_app.quit()

    window.show()
    if kind == "app":
        app.start()  # connects to the local stack in the background, as on a real launch
    QTimer.singleShot(0, shown)  # runs after the first show/paint events are processed
    qt_app.exec()
    if cleanup is not None:
        cleanup()
    print(json.dumps(result))


def run(kind: str) -> dict[str, float]:
    env = dict(os.environ, QT_QPA_PLATFORM=os.environ.get("QT_QPA_PLATFORM", "offscreen"),
               PYTHONPATH=str(ROOT))
    out = subprocess.run([sys.executable, __file__, "--child", kind], env=env, cwd=ROOT,
                         capture_output=True, text=True, timeout=120, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--child", choices=["app", "bare"])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args(argv or [])
    if args.child:
        child(args.child)
        return
    results: dict[str, list[dict[str, float]]] = {"bare": [], "app": []}
    for _ in range(args.runs):  # interleaved, so drift in the machine hits both alike
        for kind in ("bare", "app"):
            results[kind].append(run(kind))
    med = {k: {m: statistics.median(r[m] for r in v) for m in ("shown_s", "rss_mb")}
           for k, v in results.items()}
    print(f"runs: {args.runs} each, QT_QPA_PLATFORM={os.environ.get('QT_QPA_PLATFORM', 'offscreen')}")
    for kind in ("bare", "app"):
        print(f"{kind:5s} window shown after {med[kind]['shown_s'] * 1000:7.0f} ms,"
              f" RSS {med[kind]['rss_mb']:6.1f} MB")
    print(f"ratio app/bare: time {med['app']['shown_s'] / med['bare']['shown_s']:.2f}x,"
          f" memory {med['app']['rss_mb'] / med['bare']['rss_mb']:.2f}x")


if __name__ == "__main__":
    main(sys.argv[1:])
