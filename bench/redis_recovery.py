"""Recovery time: redis-server killed (SIGKILL) → the local API answers again.

The local stack's supervisor restarts redis-server on the same port and password with its
append-only data. Each run kills it under a client polling `GET /status` (10 ms apart) and
times the first 200 after the kill. Prints the median against the issue's 5 s budget.

    .venv/bin/python bench/redis_recovery.py [--runs 10]
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import statistics
import sys
import tempfile
import threading
import time

import requests

from backend.entrypoints.local import SUPERVISE_INTERVAL_S, LocalStack

BUDGET_S = 5.0


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args(argv or [])
    logging.getLogger("tinyllama").setLevel(logging.CRITICAL)  # each outage logs warnings by design
    pause = threading.Event()
    times: list[float] = []
    with tempfile.TemporaryDirectory(prefix="tinyllama-bench-redis-") as data, \
            LocalStack(port=0, data_dir=data) as stack:
        session = requests.Session()
        session.headers["Authorization"] = f"Bearer {stack.token}"
        for _ in range(args.runs):
            assert stack.redis is not None and stack.redis.proc is not None
            proc = stack.redis.proc
            killed = time.monotonic()
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
            while session.get(f"{stack.url}/status", timeout=5).status_code != 200:
                pause.wait(0.01)
            times.append(time.monotonic() - killed)
    med = statistics.median(times)
    print(f"runs: {args.runs}, supervisor checks every {SUPERVISE_INTERVAL_S * 1000:.0f} ms")
    print(f"redis killed -> API back: median {med * 1000:.0f} ms, worst {max(times) * 1000:.0f} ms")
    print(f"ratio to the 5 s budget: {med / BUDGET_S:.3f}x")


if __name__ == "__main__":
    main(sys.argv[1:])
