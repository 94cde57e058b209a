"""`tinyllama local` as a person runs it: a real process, a prompt over HTTP, then Ctrl-C."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import requests

from tests.helpers import wait_until
from tests.service_helpers import children, gone


def _start_and_answer(data_dir: Path) -> tuple[subprocess.Popen[str], list[int]]:
    """`tinyllama local` with one prompt answered; returns it and its children. Its measured
    wakes are kept in `data_dir` (not the user's own data folder)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "backend.entrypoints", "local", "--port", "0", "--token", "cli-test-token"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1", "TINYLLAMA_DATA_DIR": str(data_dir)},
    )
    assert proc.stdout is not None
    url = None
    for line in proc.stdout:
        if m := re.search(r"(http://127\.0\.0\.1:\d+)", line):
            url = m.group(1)
            break
    assert url, "tinyllama local did not print its URL"
    h = {"Authorization": "Bearer cli-test-token"}
    rid = requests.post(f"{url}/prompts", json={"messages": [{"role": "user", "content": "from the cli"}]},
                        headers=h, timeout=10).json()["request_id"]
    wait_until(lambda: requests.get(f"{url}/prompts/{rid}", headers=h, timeout=10).json()["status"] == "done",
               20, message="the answer")
    return proc, children(proc.pid)


def test_ctrl_c_stops_everything_it_started(tmp_path: Path) -> None:
    proc, kids = _start_and_answer(tmp_path)
    try:
        assert len(kids) >= 3  # redis-server, the watchdog and the worker

        proc.send_signal(signal.SIGINT)
        assert proc.wait(30) == 0
        stderr = proc.stderr.read() if proc.stderr else ""
        assert "Traceback" not in stderr
        for pid in kids:
            assert not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text().split()[2]
        # The one thing a terminal run keeps: its measured wake, for the next run's ETA.
        (wakes,) = json.loads((tmp_path / "terminal-wakes.json").read_text()).values()
        assert len(wakes) == 1 and wakes[0]["ready"] > wakes[0]["requested"]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_kill_9_leaves_no_process_behind(tmp_path: Path) -> None:
    proc, kids = _start_and_answer(tmp_path)
    try:
        assert len(kids) >= 3
        proc.kill()  # no handler runs: the watchdog notices its pipe close and stops the rest
        proc.wait(10)
        wait_until(lambda: all(gone(p) for p in kids), 8, message="redis-server and the worker to stop")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_missing_vllm_is_a_clear_message_not_a_traceback() -> None:
    env = {**os.environ, "PATH": "/nonexistent"}  # no `vllm` (and no redis-server) on PATH
    result = subprocess.run(
        [sys.executable, "-m", "backend.entrypoints", "local", "--port", "0", "--engine", "vllm"],
        capture_output=True, text=True, env=env, timeout=30,
    )
    assert result.returncode == 2
    assert "install" in result.stdout.lower()
    assert "Traceback" not in result.stderr
