"""Test helpers for the local background service: find, watch and stop its processes.

A test points TINYLLAMA_RUNTIME_DIR at its tmp_path; every process the service starts
inherits that environment, so the marker finds them all, however they were started.
"""

from __future__ import annotations

import contextlib
import os
import signal
from pathlib import Path

from tests.helpers import wait_until


def marked(marker: str) -> list[int]:
    """Processes (not this one) whose environment holds `marker`."""
    pids = []
    for env in Path("/proc").glob("[0-9]*/environ"):
        try:
            if marker.encode() in env.read_bytes():
                pids.append(int(env.parent.name))
        except OSError:
            continue
    return [p for p in pids if p != os.getpid()]


def children(pid: int) -> list[int]:
    """Direct children of `pid`."""
    kids = []
    for stat_file in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat_file.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[1]) == pid:
            kids.append(int(stat_file.parent.name))
    return kids


def gone(pid: int) -> bool:
    """The process has exited (a zombie counts: only its parent's wait is missing)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state == "Z"


def stop_all(marker: str) -> None:
    """SIGTERM whatever a test left running, SIGKILL what is still there after 10 s."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        left = [p for p in marked(marker) if not gone(p)]
        for pid in left:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        try:
            wait_until(lambda left=left: all(gone(p) for p in left), 10, message="the service's processes to end")
            return
        except AssertionError:
            continue
