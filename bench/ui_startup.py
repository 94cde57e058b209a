"""Start-up of the desktop app, before and after the local stack left the GUI process.

Each run is a fresh process (`python bench/ui_startup.py --child KIND`) that reports the
seconds from its own start to the window being shown and painted once, to the Local
profile being connected (the API client made), and its resident memory then:

- `bare`     a bare PySide6 QMainWindow started the same way (the floor);
- `inproc`   the app hosting the local stack in its own process (how it was before:
             router, Redis client and Powertools loaded into the GUI);
- `service`  the app as it is: it connects to the background service `tinyllama local
             --service` (started by the first run, reused by the others, as a second
             launch of the app reuses it).

Memory is read twice: when the window is shown (what the first screen loaded) and once
connected (the HTTP client loads with the first API call). Prints medians and the ratios;
no pass/fail. Offscreen by default; in a real X window:

    .venv/bin/python bench/ui_startup.py [--runs 5]
    QT_QPA_PLATFORM=xcb xvfb-run -a -s "-screen 0 1400x900x24" .venv/bin/python -m bench ui_startup
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
    app = None
    if kind == "bare":
        window = QMainWindow()
        window.resize(1000, 680)
    else:
        from desktop.app import App
        from desktop.core.paths import AppPaths
        from desktop.services.credentials import CredentialStore, MemoryKeyring
        from desktop.services.local_profile import LocalProfile

        factory = None
        if kind == "inproc":
            from backend.entrypoints.local import LocalStack

            factory = LocalStack
        tmp = Path(tempfile.mkdtemp(prefix="tinyllama-bench-"))
        # A returning person's launch: the very first one also opens the model offer, whose
        # download code (requests, ssl) then loads before the window is painted.
        (tmp / "config").mkdir()
        (tmp / "config" / "settings.json").write_text(json.dumps({"local": {"model_offered": True}}))
        app = App(AppPaths(tmp / "config", tmp / "data"), CredentialStore(MemoryKeyring()),
                  LocalProfile(stack_factory=factory))
        window = app.window

    def connected() -> None:
        if app is not None and app.api is None:
            QTimer.singleShot(5, connected)
            return
        result["connected_s"] = _process_age_s()
        result["rss_mb"] = _rss_mb()
        qt_app.quit()

    def shown() -> None:
        result["shown_s"] = _process_age_s()
        result["shown_rss_mb"] = _rss_mb()
        connected()

    window.show()
    if app is not None:
        app.start()  # connects the Local profile in the background, as on a real launch
    QTimer.singleShot(0, shown)  # runs after the first show/paint events are processed
    qt_app.exec()
    if app is not None:
        app.shutdown()
    print(json.dumps(result))


KINDS = ("bare", "inproc", "service")
METRICS = ("shown_s", "connected_s", "shown_rss_mb", "rss_mb")


def run(kind: str, service_dir: Path) -> dict[str, float]:
    env = dict(os.environ, QT_QPA_PLATFORM=os.environ.get("QT_QPA_PLATFORM", "offscreen"),
               PYTHONPATH=str(ROOT), TINYLLAMA_RUNTIME_DIR=str(service_dir / "runtime"),
               TINYLLAMA_DATA_DIR=str(service_dir / "data"))
    out = subprocess.run([sys.executable, __file__, "--child", kind], env=env, cwd=ROOT,
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


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--child", choices=KINDS)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args(argv or [])
    if args.child:
        child(args.child)
        return
    service_dir = Path(tempfile.mkdtemp(prefix="tinyllama-bench-service-"))
    results: dict[str, list[dict[str, float]]] = {k: [] for k in KINDS}
    try:
        for _ in range(args.runs):  # interleaved, so drift in the machine hits all alike
            for kind in KINDS:
                results[kind].append(run(kind, service_dir))
    finally:
        _stop_service(service_dir)
    med = {k: {m: statistics.median(r[m] for r in v) for m in METRICS} for k, v in results.items()}
    print(f"runs: {args.runs} each, QT_QPA_PLATFORM={os.environ.get('QT_QPA_PLATFORM', 'offscreen')}")
    for kind in KINDS:
        m = med[kind]
        print(f"{kind:8s} window shown after {m['shown_s'] * 1000:6.0f} ms, connected after"
              f" {m['connected_s'] * 1000:6.0f} ms, RSS {m['shown_rss_mb']:6.1f} MB shown,"
              f" {m['rss_mb']:6.1f} MB connected")
    cold = results["service"][0]["connected_s"]
    print(f"first service run (it starts the service): connected after {cold * 1000:.0f} ms")
    for kind in ("inproc", "service"):
        print(f"ratio {kind}/bare: shown {med[kind]['shown_s'] / med['bare']['shown_s']:.2f}x,"
              f" memory shown {med[kind]['shown_rss_mb'] / med['bare']['shown_rss_mb']:.2f}x,"
              f" connected {med[kind]['rss_mb'] / med['bare']['rss_mb']:.2f}x")
    print(f"ratio service/inproc: shown {med['service']['shown_s'] / med['inproc']['shown_s']:.2f}x,"
          f" connected {med['service']['connected_s'] / med['inproc']['connected_s']:.2f}x,"
          f" memory {med['service']['rss_mb'] / med['inproc']['rss_mb']:.2f}x")


if __name__ == "__main__":
    main(sys.argv[1:])
