"""Kills a local stack's children when the stack's process dies, however it dies.

The stack starts this first and keeps the write end of its stdin; it writes `+ PGID`
for every process group it starts (redis-server, the worker, the engine) and `- PGID`
when one ends. When the stack exits — cleanly, by a signal, or by `kill -9` — the kernel
closes that pipe, this reads end-of-file, and terminates whatever groups are still
listed (SIGTERM so Redis fsyncs its append-only file, SIGKILL after a grace period).
A thread in the stack itself could not do this: it dies with the stack.

Only the standard library is imported, so it starts in a few milliseconds.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time

GRACE_S = 3.0


def _alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # a group id reused by someone else's process: not ours
        return False
    return True


def kill_groups(pgids: set[int], grace_s: float = GRACE_S) -> None:
    """SIGTERM every group, then SIGKILL the ones still there after `grace_s`."""
    for pgid in pgids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    left = {p for p in pgids if _alive(p)}
    while left and time.monotonic() < deadline:
        time.sleep(0.05)  # nothing to wait on: these are not our children
        left = {p for p in left if _alive(p)}
    for pgid in left:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGKILL)


def main() -> int:
    """Read `+ PGID` / `- PGID` lines until end-of-file, then stop the groups listed."""
    # Ctrl-C in a terminal reaches the whole foreground group; the stack handles it and
    # closes our pipe when it has stopped its children, so we must outlive the signal.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    pgids: set[int] = set()
    for line in sys.stdin:
        op, _, value = line.strip().partition(" ")
        if not value.isdigit():
            continue
        if op == "+":
            pgids.add(int(value))
        elif op == "-":
            pgids.discard(int(value))
    kill_groups(pgids)
    return 0


if __name__ == "__main__":
    sys.exit(main())
