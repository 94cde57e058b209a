"""The longest UI event-loop stall during a long chat session (target: under 50 ms).

A real local stack (router, Redis, echo worker) and the real MainWindow, offscreen. The
session sends many prompts one after another into one conversation (so the transcript
grows), switching chats now and then, while a 5 ms QTimer watches the event loop: a gap
between its ticks beyond the interval is time the UI could not respond. Prints the
longest stall, percentiles, and the API requests made per answer; no pass/fail.

    .venv/bin/python bench/ui_stall.py [--prompts 40] [--words 120]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

TICK_MS = 5
TARGET_MS = 50.0


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--prompts", type=int, default=40)
    parser.add_argument("--words", type=int, default=120)
    parser.add_argument("--delay", type=float, default=0.01, help="echo seconds per word")
    args = parser.parse_args(argv or [])

    from PySide6.QtCore import QElapsedTimer, QTimer
    from PySide6.QtWidgets import QApplication

    from backend.entrypoints.local import LocalStack
    from bench._stats import pct
    from desktop.core.history import HistoryStore
    from desktop.core.settings import Settings
    from desktop.qt.runner import Runner
    from desktop.services.api import ApiClient
    from desktop.views.main_window import MainWindow

    qt_app = QApplication.instance() or QApplication([sys.argv[0]])
    tmp = Path(tempfile.mkdtemp(prefix="tinyllama-stall-"))
    calls = {"n": 0}

    with LocalStack(engine="echo", echo_delay_s=args.delay) as stack:
        api = ApiClient(stack.url, lambda: stack.token)
        for name in ("submit", "prompt", "cancel", "status"):
            real = getattr(api, name)

            def counted(*a, _real=real, **kw):  # type: ignore[no-untyped-def]
                calls["n"] += 1
                return _real(*a, **kw)

            setattr(api, name, counted)
        history = HistoryStore(tmp / "history.sqlite3")
        runner = Runner()
        window = MainWindow(history, Settings(tmp / "settings.json"), runner)
        window.resize(1000, 680)
        window.show()
        window.connect_api(api)

        gaps: list[float] = []
        clock = QElapsedTimer()
        clock.start()
        last = [clock.nsecsElapsed()]

        def tick() -> None:
            now = clock.nsecsElapsed()
            gaps.append((now - last[0]) / 1e9)
            last[0] = now

        watch = QTimer()
        watch.setInterval(TICK_MS)
        watch.timeout.connect(tick)
        watch.start()

        main_conv = window.new_conversation()
        other = window.history.create_conversation("Other chat")
        done = {"n": 0}
        prompt_text = " ".join(
            f"word{i}" + ("\n\n```python\nprint('x')\n```\n" if i % 60 == 59 else "")
            for i in range(args.words)
        )

        def next_prompt() -> None:
            if done["n"] >= args.prompts:
                qt_app.quit()
                return
            if done["n"] % 10 == 5:  # look at another chat mid-answer, then come back
                QTimer.singleShot(300, lambda: window.open_conversation(other.id))
                QTimer.singleShot(600, lambda: window.open_conversation(main_conv.id))
            window.send(f"{done['n']}: {prompt_text}")

        def changed(msg) -> None:  # type: ignore[no-untyped-def]
            if msg.role == "assistant" and not msg.in_flight:
                done["n"] += 1
                QTimer.singleShot(0, next_prompt)

        window.session.message_changed.connect(changed)
        started = time.perf_counter()
        QTimer.singleShot(0, next_prompt)
        qt_app.exec()
        elapsed = time.perf_counter() - started
        watch.stop()
        window.shutdown()
        runner.shutdown()
        messages = len(history.messages(main_conv.id))
        history.close()
        api.close()

    stalls = [max(g - TICK_MS / 1000, 0.0) for g in gaps[1:]]
    longest = max(stalls) * 1000
    print(f"{args.prompts} prompts of {args.words} words ({args.delay * 1000:.0f} ms/word echo), "
          f"{messages} messages in the transcript at the end, {elapsed:.1f} s")
    print(f"  event-loop stall: longest {longest:.1f} ms, p99 {pct(stalls, 99) * 1000:.1f} ms, "
          f"p50 {pct(stalls, 50) * 1000:.2f} ms over {len(stalls)} ticks of {TICK_MS} ms")
    print(f"  longest stall / 50 ms target: {longest / TARGET_MS:.2f}")
    print(f"  API requests per answer: {calls['n'] / max(args.prompts, 1):.1f} "
          f"(answers take ~{args.words * args.delay:.1f} s; polling at 0.25 s while streaming)")


if __name__ == "__main__":
    main(sys.argv[1:])
