"""The local stack as a per-user background service, shared by every window of the app.

`tinyllama local --service` runs the same `LocalStack` as `tinyllama local`, detached from
any window: Redis keeps its data in an append-only file in the user's data folder, so an
answer in flight outlives the app (and a crash of the app, or of the service itself), and
the service stops itself after its idle timeout when nothing is queued or running and no
client has asked for a while.

The app finds it through a discovery file in the user's runtime folder (0600, in a 0700
folder): `{url, token, pid, version, engine, engine_url, model}`. `connect_or_start()`
reuses a service that answers with the version and engine the app wants, replaces one
that runs another, and starts one otherwise; a lock file makes two windows starting at
once start one.

The client half of this module imports only the standard library and platformdirs: the
app's process never loads the router, Redis or Powertools.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import stat
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger("tinyllama.local")

APP_NAME = "TinyLlama"
DISCOVERY_NAME = "local-service.json"
# Locally a finished answer waits for the app to save it; the cloud keeps it 5 minutes.
SERVICE_RESULT_TTL_S = 7 * 24 * 3600
START_TIMEOUT_S = 30.0
# A replaced service's warm stop: its worker's own (10 s for running answers) and Redis's fsync.
STOP_TIMEOUT_S = 20.0


class ServiceError(RuntimeError):
    """The background service could not be reached or started; the message says why."""


@dataclass(frozen=True)
class ServicePaths:
    """Where the service keeps its discovery file, its data and its log."""

    runtime_dir: Path
    data_dir: Path
    log_dir: Path

    @classmethod
    def default(cls) -> ServicePaths:
        """The platform's places; TINYLLAMA_RUNTIME_DIR / TINYLLAMA_DATA_DIR override them
        (tests, portable installs). platformdirs also follows XDG_RUNTIME_DIR/XDG_DATA_HOME."""
        import platformdirs

        runtime = os.environ.get("TINYLLAMA_RUNTIME_DIR")
        data = os.environ.get("TINYLLAMA_DATA_DIR")
        if runtime:
            runtime_path = Path(runtime)
        elif sys.platform.startswith("linux") and not os.environ.get("XDG_RUNTIME_DIR"):
            # No login session (a cron job, `su`, a container): platformdirs would warn on
            # stderr and pick /tmp/runtime-UID; ours is just as private, and quiet.
            runtime_path = _temp_runtime_dir()
        else:
            runtime_path = _runtime_dir(platformdirs.user_runtime_dir(APP_NAME, appauthor=False))
        data_path = Path(data) if data else Path(platformdirs.user_data_dir(APP_NAME, appauthor=False)) / "local"
        log_path = data_path / "logs" if data else Path(platformdirs.user_log_dir(APP_NAME, appauthor=False))
        return cls(runtime_path, data_path, log_path)

    @property
    def discovery_file(self) -> Path:
        return self.runtime_dir / DISCOVERY_NAME

    @property
    def start_lock(self) -> Path:
        """Held by whoever is starting a service (so two windows start one)."""
        return self.runtime_dir / "local-service.start.lock"

    @property
    def service_lock(self) -> Path:
        """Held by the running service for its whole life (so at most one runs)."""
        return self.runtime_dir / "local-service.lock"

    @property
    def log_file(self) -> Path:
        return self.log_dir / "local-service.log"

    def ensure(self) -> None:
        """Create the folders; the runtime one private to this user."""
        private_dir(self.runtime_dir)
        private_dir(self.data_dir)
        self.log_dir.mkdir(parents=True, exist_ok=True)


def _runtime_dir(candidate: str) -> Path:
    """platformdirs' runtime folder where its parent exists (Linux: $XDG_RUNTIME_DIR, which
    logind creates); else a private folder of ours under the temp folder."""
    path = Path(candidate)
    return path if path.parent.is_dir() else _temp_runtime_dir()


def _temp_runtime_dir() -> Path:
    uid = os.getuid() if hasattr(os, "getuid") else 0
    return Path(tempfile.gettempdir()) / f"tinyllama-{uid}"


def private_dir(path: Path) -> Path:
    """`path` as a folder only this user can enter; refuse one someone else owns."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    info = path.stat()
    if hasattr(os, "getuid") and info.st_uid != os.getuid():
        raise ServiceError(f"{path} belongs to another user; remove it or set TINYLLAMA_RUNTIME_DIR.")
    if stat.S_IMODE(info.st_mode) & 0o077:
        path.chmod(0o700)
    return path


# -- the discovery file ---------------------------------------------------------------

def write_discovery(paths: ServicePaths, info: dict[str, Any]) -> None:
    """Write the discovery file atomically, readable by this user only."""
    tmp = paths.discovery_file.with_name(f".{DISCOVERY_NAME}.{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(info, f)
    os.replace(tmp, paths.discovery_file)


def read_discovery(paths: ServicePaths) -> dict[str, Any] | None:
    """The discovery file's contents, or None when there is none (or it is unreadable)."""
    try:
        info = json.loads(paths.discovery_file.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(info, dict) or not {"url", "token", "pid"} <= info.keys():
        return None
    return info


def remove_discovery(paths: ServicePaths, pid: int) -> None:
    """Remove the discovery file if it is still `pid`'s (a newer service may own it)."""
    info = read_discovery(paths)
    if info is not None and info.get("pid") == pid:
        with contextlib.suppress(FileNotFoundError):
            paths.discovery_file.unlink()


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, but not ours: not our service
        return False
    return True


def answers(info: dict[str, Any], timeout_s: float = 2.0) -> bool:
    """True when the service in `info` is alive and its API answers its token."""
    if not pid_alive(int(info["pid"])):
        return False
    req = urllib.request.Request(f"{info['url']}/status", headers={"Authorization": f"Bearer {info['token']}"})
    try:
        with urllib.request.urlopen(req, timeout=timeout_s) as resp:
            return bool(resp.status == 200)
    except (OSError, urllib.error.URLError):
        return False


# -- starting it ----------------------------------------------------------------------

def service_command(options: Sequence[str] = ()) -> list[str]:
    """`tinyllama local --service …` as this interpreter runs it (a frozen bundle: itself)."""
    if getattr(sys, "frozen", False):
        return [sys.executable, "local", "--service", *options]
    return [sys.executable, "-m", "backend.entrypoints", "local", "--service", *options]


@contextlib.contextmanager
def _locked(path: Path, *, blocking: bool = True) -> Iterator[bool]:
    """An exclusive flock on `path` (False when `blocking=False` and someone holds it).
    The kernel drops it when its holder dies, so a crash never leaves it stuck."""
    import fcntl

    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(fd)  # closing releases the lock


def mismatches(info: dict[str, Any], expect: Mapping[str, Any]) -> list[str]:
    """The keys of `expect` whose value the running service's discovery file does not hold
    (a key an older service did not write counts as different)."""
    return [key for key, value in expect.items() if info.get(key) != value]


def key_fingerprint(key: str | None) -> str:
    """What the discovery file records of the engine's API key: enough to tell a changed
    key (the service is then restarted with it), never the key."""
    import hashlib

    return hashlib.sha256(key.encode()).hexdigest()[:16] if key else ""


def connect_or_start(options: Sequence[str] = (), paths: ServicePaths | None = None,
                     timeout_s: float = START_TIMEOUT_S,
                     expect: Mapping[str, Any] | None = None,
                     env: Mapping[str, str] | None = None) -> tuple[str, str]:
    """(url, token) of the running service, starting it first when none answers.

    `expect` ({"version": …, "engine": …, "engine_url": …, "model": …}): a running service
    whose discovery file says otherwise (the app was upgraded, or the person picked another
    engine) is stopped with SIGTERM (it finishes the answers it is running and keeps the
    rest in Redis's file, which the new one picks up) and one with `options` started.

    Blocking (up to `timeout_s`, plus a replaced service's warm stop): run off the UI
    thread. ServiceError says what went wrong, with the end of the service's log.
    `env` is added to the service's environment: secrets go there (ENGINE_API_KEY), never
    into `options`, which any process may read from the command line.
    """
    paths = paths or ServicePaths.default()
    paths.ensure()
    expect = expect or {}
    info = read_discovery(paths)
    if info is not None and not mismatches(info, expect) and answers(info):
        return str(info["url"]), str(info["token"])
    with _locked(paths.start_lock):
        info = read_discovery(paths)  # another window may have started it while we waited
        if info is not None and answers(info):
            different = mismatches(info, expect)
            if not different:
                return str(info["url"]), str(info["token"])
            log.info("the local service (pid %d) runs with other %s: replacing it",
                     info["pid"], ", ".join(different))
            stop_service(paths, int(info["pid"]))
        info = _start(paths, list(options), timeout_s, env or {})
    return str(info["url"]), str(info["token"])


def stop_service(paths: ServicePaths, pid: int, timeout_s: float = STOP_TIMEOUT_S) -> None:
    """SIGTERM the service `pid` and wait until it has exited: it holds the service lock
    until its worker has finished the answers it runs, and a new service cannot start
    before. A service that does not stop in time gets SIGKILL (its watchdog then stops
    its children, and what was running is redelivered by the next service's worker)."""
    import signal

    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    if not _wait_exited(pid, timeout_s):
        log.warning("the local service (pid %d) did not stop within %.0f s: killing it", pid, timeout_s)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        if not _wait_exited(pid, 5.0):
            raise ServiceError(f"The running local service (pid {pid}) does not stop; end it and try again.")
    remove_discovery(paths, pid)  # SIGKILL leaves it behind


def _wait_exited(pid: int, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    ticker = threading.Event()
    while pid_alive(pid) and not _is_zombie(pid):
        if time.monotonic() > deadline:
            return False
        ticker.wait(0.05)
    return True


def _is_zombie(pid: int) -> bool:
    """An exited child whose reaper thread has not run yet (Linux; elsewhere: False)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return False


def _start(paths: ServicePaths, options: list[str], timeout_s: float, env: Mapping[str, str]) -> dict[str, Any]:
    with open(paths.log_file, "ab") as out:
        proc = subprocess.Popen(
            service_command(options), stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,  # its own session: a terminal's hangup or Ctrl-C does not reach it
            env={**os.environ, **env, "PYTHONUNBUFFERED": "1"},
        )
    # It outlives us by design; a thread reaps it if it exits while we run (no zombie).
    threading.Thread(target=proc.wait, name="service-reaper", daemon=True).start()
    deadline = time.monotonic() + timeout_s
    ticker = threading.Event()
    while time.monotonic() < deadline:
        info = read_discovery(paths)
        if info is not None and info.get("pid") == proc.pid and answers(info):
            log.info("started the local service (pid %d) on %s", proc.pid, info["url"])
            return info
        if proc.poll() is not None:
            raise ServiceError(f"The local service stopped at once. {_log_tail(paths)}")
        ticker.wait(0.05)
    raise ServiceError(f"The local service did not answer within {timeout_s:.0f} s. {_log_tail(paths)}")


def _log_tail(paths: ServicePaths, lines: int = 3) -> str:
    try:
        tail = paths.log_file.read_text(errors="replace").strip().splitlines()[-lines:]
    except OSError:
        return ""
    text = " ".join(line.strip() for line in tail if "Traceback" not in line)
    return f"Its log ({paths.log_file}) ends: {text}" if text else ""


# -- the service itself ---------------------------------------------------------------

def run_service(stack_kwargs: dict[str, Any], idle_timeout_s: float, paths: ServicePaths | None = None,
                version: str = "") -> int:
    """Run the stack until a signal or until idle; the body of `tinyllama local --service`."""
    import signal

    from backend.entrypoints.local import LocalStack, LocalStackError

    paths = paths or ServicePaths.default()
    paths.ensure()
    done = threading.Event()

    def on_signal(signum: int, _frame: Any) -> None:
        log.info("signal %d: stopping", signum)
        done.set()

    for name in ("SIGTERM", "SIGINT", "SIGHUP"):  # no SIGHUP on Windows
        if hasattr(signal, name):
            signal.signal(getattr(signal, name), on_signal)
    with _locked(paths.service_lock, blocking=False) as mine:
        if not mine:
            print("tinyllama local --service: another local service is already running.", flush=True)
            return 0
        stack = LocalStack(data_dir=str(paths.data_dir), result_ttl_s=SERVICE_RESULT_TTL_S, **stack_kwargs)
        try:
            stack.start()
        except (LocalStackError, OSError) as exc:
            print(f"tinyllama local --service: {exc}", flush=True)
            return 2
        pid = os.getpid()
        try:
            write_discovery(paths, {"url": stack.url, "token": stack.token, "pid": pid, "version": version,
                                    "engine": stack.engine, "engine_url": stack.engine_url, "model": stack.model,
                                    "engine_key": key_fingerprint(os.environ.get("ENGINE_API_KEY"))})
            log.info("local service (pid %d) on %s, engine %s", pid, stack.url, stack.engine)
            while not done.wait(min(1.0, max(0.05, idle_timeout_s / 4))):
                if stack.idle_for() > idle_timeout_s:
                    log.info("idle for %.0f s with nothing queued: stopping", idle_timeout_s)
                    break
        finally:
            remove_discovery(paths, pid)  # first: no client may find a service that is stopping
            stack.stop()
            log.info("local service stopped")
    return 0
