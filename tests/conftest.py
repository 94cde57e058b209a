"""Fixtures shared by every test folder: a real redis-server, fresh per test, and a clock
that tests set and move themselves (never the calendar's)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
import redis

from backend.adapters.redis_queue import RedisQueue
from backend.entrypoints.local import RedisServer

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
