"""Fixtures shared by every test folder: a real redis-server, fresh per test, a clock
that tests set and move themselves (never the calendar's), and checks that no process a
test started outlives the session and that no test makes the app's folders in the user's home."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import redis

from backend.adapters.redis_queue import RedisQueue
from backend.entrypoints.local import RedisServer
from desktop.core.paths import APP_NAME
from tests.helpers import wait_until

# Fixture modules every test can use without importing them.
pytest_plugins = ["tests.fixtures.aws", "tests.fixtures.imds", "tests.fixtures.vllm",
                  "tests.fixtures.openai_server", "tests.fixtures.workers",
                  "tests.fixtures.redis_cluster", "tests.fixtures.tiny_gguf"]


class FrozenClock:
    """Epoch seconds that only move when a test moves them: pass it as a `clock=`."""

    def __init__(self, when: datetime) -> None:
        self.now = when.timestamp()

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        """Let `seconds` pass."""
        self.now += seconds

    @property
    def datetime(self) -> datetime:
        """The current instant, in UTC."""
        return datetime.fromtimestamp(self.now, UTC)


LEFT_RUNNING_GRACE_S = 5.0


def _left_running(basetemp: Path) -> dict[int, str]:
    """Processes (Linux's /proc) whose environment points into this session's temporary
    folder, as a test's HOME or runtime folder does: pid -> what it runs, and for which test."""
    inside = f"{basetemp}{os.sep}"  # not the prefix of a later session's pytest-4810 for pytest-481
    found = {}
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            env = dict(var.split("=", 1) for var in (proc / "environ").read_bytes().decode(errors="replace")
                       .split("\0") if "=" in var)
            command = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:  # gone meanwhile, or not ours to read
            continue
        if int(proc.name) != os.getpid() and any(inside in f"{value}{os.sep}" for value in env.values()):
            found[int(proc.name)] = f"{command} (started in {env.get('PYTEST_CURRENT_TEST', 'a fixture')})"
    return found


def _after_grace(basetemp: Path, pids: set[int] | None = None) -> dict[int, str]:
    """What still runs of `pids` (of every process in `basetemp` when None) once they have
    had LEFT_RUNNING_GRACE_S to end. They are not this process's children: nothing to wait
    on but their /proc entries."""
    def running() -> dict[int, str]:
        return {pid: what for pid, what in _left_running(basetemp).items() if pids is None or pid in pids}

    with contextlib.suppress(AssertionError):  # still running after the grace: the caller says so
        wait_until(lambda: not running(), timeout=LEFT_RUNNING_GRACE_S, interval=0.1)
    return running()


@pytest.fixture(scope="session", autouse=True)
def nothing_left_running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Fail the session if a background service, engine or redis-server a test started is
    still running after every teardown (then end it): a person's machine would keep it."""
    yield
    basetemp = tmp_path_factory.getbasetemp()
    still = left = _after_grace(basetemp)  # one told to stop at the last teardown may still be exiting
    for sig in (signal.SIGTERM, signal.SIGKILL):  # TERM first: a service then stops its own redis-server
        for pid in still:
            with contextlib.suppress(OSError):  # it ended meanwhile
                os.kill(pid, sig)
        still = _after_grace(basetemp, set(still))
    assert not left, "processes outlived the tests:\n" + "\n".join(f"  {pid}: {what}" for pid, what in left.items())


def _users_folders() -> list[Path]:
    """Where the app and its service keep settings, history, data and logs for this user."""
    import platformdirs

    return [Path(where(APP_NAME, appauthor=False)) for where in (
        platformdirs.user_config_dir, platformdirs.user_data_dir, platformdirs.user_state_dir,
        platformdirs.user_log_dir, platformdirs.user_cache_dir)]


@pytest.fixture(scope="session")
def users_folders_before() -> set[Path]:
    return {path for path in _users_folders() if path.exists()}


@pytest.fixture(autouse=True)
def users_folders_untouched(users_folders_before: set[Path]) -> Iterator[None]:
    """Fail the test that made one of the app's folders in the user's home (and remove it):
    tests keep everything in temporary folders, so a person's own history is never touched."""
    yield
    made = [path for path in _users_folders() if path.exists() and path not in users_folders_before]
    for path in made:
        shutil.rmtree(path, ignore_errors=True)
    assert not made, f"the test made the user's own folders: {', '.join(map(str, made))}"


# A month's last second but 30, in a leap February: the instant most date code gets wrong.
FROZEN_AT = datetime(2032, 2, 29, 23, 59, 30, tzinfo=UTC)


@pytest.fixture
def frozen_clock(request: pytest.FixtureRequest) -> FrozenClock:
    """A FrozenClock at FROZEN_AT, or at the datetime given by indirect parametrisation."""
    return FrozenClock(getattr(request, "param", FROZEN_AT))


@pytest.fixture(scope="session")
def redis_session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """One real redis-server (loopback, random password, no persistence) for the session."""
    if shutil.which("redis-server") is None:
        pytest.fail("redis-server is not installed: `apt-get install -y redis-server` (.ci/run does it)")
    server = RedisServer(str(tmp_path_factory.mktemp("redis"))).start()
    yield server
    server.stop()


@pytest.fixture
def redis_server(redis_session: RedisServer) -> Iterator[RedisServer]:
    """The session's redis-server, emptied before each test (restarted if a test killed it)."""
    if redis_session.proc is None or redis_session.proc.poll() is not None:
        redis_session.start()
    client = redis.Redis.from_url(redis_session.url)
    client.flushall()
    client.close()
    yield redis_session


@pytest.fixture
def queue(redis_server: RedisServer) -> RedisQueue:
    """A RedisQueue on a clean real Redis, with a short result TTL for expiry tests."""
    q = RedisQueue.from_url(redis_server.url, result_ttl_s=300)
    q.ensure_group()
    return q
