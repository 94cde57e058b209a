"""Fixtures shared by every test folder: a real redis-server, fresh per test."""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import pytest
import redis

from backend.adapters.redis_queue import RedisQueue
from backend.entrypoints.local import RedisServer

# Fixture modules every test can use without importing them.
pytest_plugins = ["tests.fixtures.aws", "tests.fixtures.imds", "tests.fixtures.vllm",
                  "tests.fixtures.openai_server"]


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
