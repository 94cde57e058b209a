"""The queue on a cluster-mode Redis, as ElastiCache Serverless is, and the move of a local
Redis's data from the key names before the hash tag.

test_queue.py runs every queue test against both kinds of server; this module holds what
only the cluster (or the upgrade) has: the CROSSSLOT rule itself, the choice of client,
an unreachable cluster reported as a down Redis, the router and a worker answering a
prompt through the cluster, and a person's local data kept across the upgrade.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator

import pytest
import redis
import requests
from redis.cluster import RedisCluster

from backend.adapters.engines import EchoEngine
from backend.adapters.redis_queue import GROUP, RedisQueue
from backend.core.jobs import JobStatus
from backend.core.prompts import parse_prompt
from backend.entrypoints import router
from backend.entrypoints.gateway import make_event
from backend.entrypoints.local import LocalStack, RedisServer, free_port
from tests.fixtures.redis_cluster import ClusterRedisServer
from tests.helpers import wait_until

ALICE = "alice-sub"


def test_the_cluster_server_refuses_keys_of_two_slots_and_the_queue_keys_share_one(
    redis_cluster: ClusterRedisServer,
) -> None:
    """What ElastiCache Serverless does, reproduced by the fixture: the queue's keys before
    the hash tag (`tl:req:…` and `tl:jobs`) were in different slots, so its scripts failed."""
    node = redis.Redis.from_url(redis_cluster.node_url)
    try:
        assert node.cluster("keyslot", "tl:req:abc") != node.cluster("keyslot", "tl:jobs")
        with pytest.raises(redis.ResponseError, match="hash to the same slot"):  # CROSSSLOT
            node.execute_command("EVAL", "return 1", 2, "tl:jobs", "tl:wake")
        q = RedisQueue(node)
        keys = [q.stream, q.key("req", "abc"), q.key("gone", "abc"), q.key("idem", ALICE, "k" * 8),
                q.key("hb"), q.key("hb", "w1"), q.key("wake"), q.key("wakes"), q.key("wakes", "engine"),
                q.key("spend", "budget")]
        assert len({node.cluster("keyslot", k) for k in keys}) == 1
        assert node.execute_command("EVAL", "return #KEYS", len(keys), *keys) == len(keys)
    finally:
        node.close()


def test_a_cluster_url_gets_the_cluster_client_and_a_plain_one_does_not(redis_cluster: ClusterRedisServer) -> None:
    q = RedisQueue.from_url(redis_cluster.url)
    assert isinstance(q.r, RedisCluster)
    rid, _ = q.submit(ALICE, parse_prompt({"messages": [{"role": "user", "content": "hi"}],
                                           "idempotency_key": "cluster-key-1"}))
    assert q.get(ALICE, rid)["status"] == JobStatus.QUEUED
    assert not isinstance(RedisQueue.from_url(redis_cluster.node_url).r, RedisCluster)
    assert not isinstance(RedisQueue.from_url(redis_cluster.node_url + "?cluster=false").r, RedisCluster)


def test_an_unreachable_cluster_is_a_redis_error_and_the_queue_is_made_without_it() -> None:
    """Built at a cold start while Redis is away, the queue exists; its commands fail as a
    down Redis does (a RedisError, which the router answers with 503), not with redis-py's
    RedisClusterException, which is no RedisError."""
    q = RedisQueue.from_url(f"redis://127.0.0.1:{free_port()}/0?cluster=true")
    with pytest.raises(redis.ConnectionError):
        q.depth()


def test_settings_add_the_cluster_flag_for_REDIS_CLUSTER(monkeypatch: pytest.MonkeyPatch) -> None:
    from backend.entrypoints import settings

    monkeypatch.setenv("REDIS_URL", "rediss://cache.example.internal:6379/0")
    monkeypatch.setenv("REDIS_CLUSTER", "1")
    assert settings.redis_url_from_env() == "rediss://cache.example.internal:6379/0?cluster=true"
    monkeypatch.setenv("REDIS_CLUSTER", "0")
    assert settings.redis_url_from_env() == "rediss://cache.example.internal:6379/0"


@pytest.fixture
def router_on_cluster(redis_cluster: ClusterRedisServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The router Lambda's settings pointed at the cluster-mode server (as the Serverless
    profile's stack sets REDIS_CLUSTER=1), with no GPU to wake."""
    for name in ("REDIS_HOST", "COGNITO_USER_POOL_ID", "DATA_BUCKET", "OPENAI_SECRET", "BUDGET_NAME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("REDIS_URL", redis_cluster.node_url)
    monkeypatch.setenv("REDIS_CLUSTER", "1")
    monkeypatch.setenv("COMPUTE_KIND", "none")
    router._app_from_env.cache_clear()
    yield
    router._app_from_env.cache_clear()


def test_router_and_worker_answer_a_prompt_through_the_cluster(
    router_on_cluster: None, redis_cluster: ClusterRedisServer, start_worker
) -> None:  # type: ignore[no-untyped-def]
    claims = {"sub": ALICE, "token_use": "access"}

    def call(method: str, path: str, body: dict | None = None) -> tuple[int, dict]:
        raw = json.dumps(body).encode() if body is not None else b""
        result = router.handler(make_event(method, path, {"Content-Type": "application/json"}, raw, claims,
                                           "127.0.0.1"), None)
        return result["statusCode"], json.loads(result["body"])

    status, posted = call("POST", "/prompts", {"messages": [{"role": "user", "content": "through the cluster"}],
                                                "idempotency_key": "cluster-e2e-1"})
    assert status == 202, posted
    worker_queue = RedisQueue.from_url(redis_cluster.url)
    assert isinstance(worker_queue.r, RedisCluster)
    start_worker(EchoEngine(), q=worker_queue)

    def done() -> dict | None:
        _, job = call("GET", f"/prompts/{posted['request_id']}")
        return job if job["status"] == "done" else None

    job = wait_until(done, 15, message="the answer through the cluster")
    assert "through the cluster" in job["text"]
    status, again = call("POST", "/prompts", {"messages": [{"role": "user", "content": "through the cluster"}],
                                               "idempotency_key": "cluster-e2e-1"})
    assert again["request_id"] == posted["request_id"]
    status, report = call("GET", "/status")
    assert status == 200 and report["queue_depth"] == 0, report
    assert worker_queue.r.xpending(worker_queue.stream, GROUP)["pending"] == 0


# -- the upgrade: data a local Redis kept under the names before the hash tag --------------------


def _old_layout(client: redis.Redis, engine_key: str, wakes: list[dict[str, float]], *, job: bool = True) -> None:
    """What a local service of the version before kept in its append-only file: measured
    wakes, a finished answer and (with `job`) a job still waiting in the stream."""
    client.rpush("tl:wakes", *[json.dumps(w) for w in wakes])
    client.set("tl:wakes:engine", engine_key)
    client.hset("tl:req:olddone", mapping={"owner": ALICE, "status": "done", "text": "an old answer",
                                           "messages": "[]", "params": "{}", "created": "1.0"})
    client.expire("tl:req:olddone", 3000)
    if not job:
        return
    client.hset("tl:req:oldqueued", mapping={"owner": ALICE, "status": "queued", "text": "",
                                             "messages": json.dumps([{"role": "user", "content": "waited"}]),
                                             "params": "{}", "created": "2.0"})
    client.xgroup_create("tl:jobs", GROUP, id="0", mkstream=True)
    client.xadd("tl:jobs", {"id": "oldqueued"})


def test_adopt_legacy_keys_moves_answers_jobs_and_wakes_with_their_ttls(redis_server: RedisServer) -> None:
    q = RedisQueue.from_url(redis_server.url)
    wakes = [{"requested": 10.0, "running": 12.0, "ready": 14.5}]
    _old_layout(q.r, "echo", wakes)  # type: ignore[arg-type]
    assert q.adopt_legacy_keys() == 5
    assert list(q.r.scan_iter(match="tl:*")) == []
    assert q.wake_history() == wakes
    assert q.get(ALICE, "olddone")["text"] == "an old answer"
    assert 2990 <= q.r.ttl(q.key("req", "olddone")) <= 3000
    assert q.depth() == 1
    (delivery,) = q.read("w1", count=1, block_ms=100)
    assert delivery.request_id == "oldqueued" and q.start(delivery, "w1") is not None
    assert q.adopt_legacy_keys() == 0  # once moved, nothing is left to move


def test_a_local_service_keeps_its_measured_wakes_and_answers_after_the_upgrade(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """The upgrade as a person meets it: the data folder's Redis holds the old names, and the
    new stack's first status already uses the wake measured before, not the guess; the
    answer finished before the upgrade still reads."""
    probe = LocalStack(port=0, data_dir=str(tmp_path), echo_delay_s=0.0)
    old = RedisServer(os.path.join(str(tmp_path), "redis"), persist=True).start()
    try:
        client = redis.Redis.from_url(old.url)
        # No waiting job: it would start a wake at once, and the ETA shown be that wake's.
        _old_layout(client, probe._engine_key(), [{"requested": 100.0, "running": 101.0, "ready": 103.5}],
                    job=False)
        client.close()
    finally:
        old.stop()  # SIGTERM: the append-only file is fsynced before it exits

    with LocalStack(port=0, data_dir=str(tmp_path), echo_delay_s=0.0, heartbeat_s=0.2) as stack:
        assert stack.queue is not None
        reply = requests.get(f"{stack.url}/status", headers={"Authorization": f"Bearer {stack.token}"}, timeout=10)
        assert reply.status_code == 200, reply.text
        compute = reply.json()["compute"]
        assert compute["wakes_measured"] == 1
        assert compute["eta_s"] == pytest.approx(3.5, abs=0.05)
        assert stack.queue.get(ALICE, "olddone")["text"] == "an old answer"
