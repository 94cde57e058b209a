"""The local profile's "instance": the worker (and, for vLLM, the engine) as processes.

Starting it spawns `tinyllama worker` in its own process group; the worker exits by
itself after the idle timeout, which is the local equivalent of the GPU stopping. Every
process is killed with its group on stop, so nothing outlives `tinyllama local`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence

from backend.core.ports import MachineStatus

log = logging.getLogger("tinyllama.local")


class LocalProcessCompute:
    """Implements `ComputeControl` over local child processes."""

    def __init__(
        self,
        worker_env: dict[str, str],
        *,
        engine_cmd: Sequence[str] | None = None,
        log_dir: str | None = None,
        stop_timeout_s: float = 10.0,
    ):
        self.worker_env = worker_env
        self.engine_cmd = list(engine_cmd) if engine_cmd else None
        self.log_dir = log_dir
        self.stop_timeout_s = stop_timeout_s
        self._procs: list[subprocess.Popen[bytes]] = []
        self._since: float | None = None
        self._stopping = False
        self._lock = threading.Lock()

    def _alive(self) -> bool:
        return bool(self._procs) and all(p.poll() is None for p in self._procs)

    def describe(self) -> MachineStatus:
        with self._lock:
            if self._stopping:
                return MachineStatus("stopping", "local", self._since, "the local worker is stopping")
            if self._alive():
                return MachineStatus("running", "local", self._since, "the local worker process")
            if self._procs:
                # One of them exited (idle timeout, or a crash): the "instance" stopped.
                self._reap()
            return MachineStatus("stopped", "local", self._since, "starts on the next prompt")

    def start(self) -> str:
        with self._lock:
            if self._alive():
                return "already running"
            self._reap()
            env = {**os.environ, **self.worker_env}
            if self.engine_cmd:
                self._procs.append(self._spawn(self.engine_cmd, env, "engine"))
            self._procs.append(self._spawn(worker_command(), env, "worker"))
            self._since = time.time()
            return "started the local worker"

    def _spawn(self, cmd: list[str], env: dict[str, str], name: str) -> subprocess.Popen[bytes]:
        out = None
        if self.log_dir:
            out = open(os.path.join(self.log_dir, f"{name}.log"), "ab")  # noqa: SIM115 (child owns it)
        proc = subprocess.Popen(
            cmd, env=env, stdout=out or subprocess.DEVNULL, stderr=subprocess.STDOUT if out else None,
            stdin=subprocess.DEVNULL, start_new_session=True,
        )
        if out:
            out.close()
        log.info("started %s (pid %d)", name, proc.pid)
        return proc

    def stop(self) -> str:
        """Warm stop (SIGTERM), then SIGKILL after `stop_timeout_s`."""
        with self._lock:
            if not self._procs:
                return "not running"
            self._stopping = True
        try:
            for proc in reversed(self._procs):
                _signal_group(proc, signal.SIGTERM)
            deadline = time.monotonic() + self.stop_timeout_s
            for proc in self._procs:
                try:
                    proc.wait(max(0.1, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    _signal_group(proc, signal.SIGKILL)
                    proc.wait()
        finally:
            with self._lock:
                self._reap()
                self._stopping = False
        return "stopped"

    def _reap(self) -> None:
        for proc in self._procs:
            if proc.poll() is None:
                _signal_group(proc, signal.SIGKILL)
                proc.wait()
        self._procs = []
        self._since = time.time()

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self._procs if p.poll() is None]


def worker_command() -> list[str]:
    """`tinyllama worker` as this interpreter runs it; a frozen bundle is its own interpreter."""
    if getattr(sys, "frozen", False):  # PyInstaller: sys.executable is the bundle's `tinyllama`
        return [sys.executable, "worker"]
    return [sys.executable, "-m", "backend.entrypoints.cli", "worker"]


def _signal_group(proc: subprocess.Popen[bytes], sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, sig)
