"""RedisQueue against a real redis-server: the router's view (submit, read, cancel, expiry),
the worker's (deliveries, reclaim, streaming writes) and the wake bookkeeping."""

from __future__ import annotations

import json
import threading
import uuid

import pytest
import redis

from backend.adapters.redis_queue import GROUP, WAKE_HISTORY, Delivery, RedisQueue
from backend.core.errors import NotFound, Unavailable
from backend.core.jobs import JobStatus
from backend.core.prompts import PromptRequest, parse_prompt
from backend.entrypoints.local import RedisServer
from tests.helpers import wait_until

ALICE, BOB = "alice-sub", "bob-sub"


@pytest.fixture(params=["plain", "cluster"])
def redis_server(request: pytest.FixtureRequest, redis_server: RedisServer) -> RedisServer:
    """Every test here runs against a plain redis-server and a cluster-mode one (what
    ElastiCache Serverless is: a command whose keys span hash slots fails there)."""
    if request.param == "cluster":
        return request.getfixturevalue("redis_cluster")
    return redis_server


def prompt(text: str = "hello there", key: str | None = None) -> PromptRequest:
    body: dict = {"messages": [{"role": "user", "content": text}], "max_tokens": 9}
    if key:
        body["idempotency_key"] = key
    return parse_prompt(body)


def take(q: RedisQueue, consumer: str = "w1") -> Delivery:
    (delivery,) = q.read(consumer, count=1, block_ms=100)
    return delivery


def pending_info(q: RedisQueue, entry_id: str) -> dict:
    (info,) = q.r.xpending_range(q.stream, GROUP, min=entry_id, max=entry_id, count=1)
    return info


# -- router side ---------------------------------------------------------------------


def test_submit_then_get(queue: RedisQueue) -> None:
    rid, created = queue.submit(ALICE, prompt("what is redis"))
    assert created and len(rid) == 32
    job = queue.get(ALICE, rid)
    assert job["request_id"] == rid
    assert job["status"] == JobStatus.QUEUED
    assert job["text"] == "" and job["usage"] is None and job["error"] is None
    assert job["timings"]["queued_s"] is None and job["timings"]["total_s"] is None
    stored = queue.r.hgetall(queue._req(rid))
    assert json.loads(stored[b"messages"]) == [{"role": "user", "content": "what is redis"}]
    assert json.loads(stored[b"params"])["max_tokens"] == 9
    assert queue.r.xlen(queue.stream) == 1


def test_two_submits_get_different_ids(queue: RedisQueue) -> None:
    a, _ = queue.submit(ALICE, prompt())
    b, _ = queue.submit(ALICE, prompt())
    assert a != b
    assert queue.r.xlen(queue.stream) == 2


def test_another_owner_gets_not_found(queue: RedisQueue) -> None:
    rid, _ = queue.submit(ALICE, prompt())
    with pytest.raises(NotFound):
        queue.get(BOB, rid)
    with pytest.raises(NotFound):
        queue.cancel(BOB, rid)
    assert queue.get(ALICE, rid)["status"] == JobStatus.QUEUED  # Bob's cancel did nothing


def test_unknown_id_is_not_found(queue: RedisQueue) -> None:
    with pytest.raises(NotFound):
        queue.get(ALICE, uuid.uuid4().hex)


def test_idempotency_key_returns_the_first_id_and_enqueues_once(queue: RedisQueue) -> None:
    first, created = queue.submit(ALICE, prompt(key="retry-key-1"))
    again, created_again = queue.submit(ALICE, prompt(key="retry-key-1"))
    assert created and not created_again
    assert again == first
    assert queue.r.xlen(queue.stream) == 1
    assert queue.depth() == 1


def test_concurrent_retries_with_one_key_make_one_job_that_is_always_readable(queue: RedisQueue) -> None:
    """A retry racing the first POST must get an id it can read at once (once, the key was
    claimed before the job was written, so the retry's read was a 404)."""
    missing: list[str] = []
    ids: set[str] = set()
    for round_ in range(50):
        key = f"race-key-{round_:04d}"
        barrier = threading.Barrier(4)

        def post(key: str = key, barrier: threading.Barrier = barrier) -> None:
            barrier.wait()
            rid, _ = queue.submit(ALICE, prompt(key=key))
            ids.add(rid)
            try:
                queue.get(ALICE, rid)
            except NotFound:
                missing.append(rid)

        threads = [threading.Thread(target=post) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert missing == []
    assert len(ids) == 50 and queue.r.xlen(queue.stream) == 50


def test_idempotency_keys_are_per_owner(queue: RedisQueue) -> None:
    a, _ = queue.submit(ALICE, prompt(key="shared-key"))
    b, created = queue.submit(BOB, prompt(key="shared-key"))
    assert created and a != b
    assert queue.r.xlen(queue.stream) == 2
    assert queue.get(BOB, b)["status"] == JobStatus.QUEUED
    with pytest.raises(NotFound):
        queue.get(BOB, a)


def test_cancel_of_a_queued_job_means_the_worker_never_runs_it(queue: RedisQueue) -> None:
    rid, _ = queue.submit(ALICE, prompt())
    assert queue.cancel(ALICE, rid)["status"] == JobStatus.CANCELLED
    delivery = take(queue)
    assert delivery.request_id == rid
    assert queue.start(delivery, "w1") is None
    assert queue.get(ALICE, rid)["status"] == JobStatus.CANCELLED


def test_cancel_of_a_finished_job_leaves_it_finished(queue: RedisQueue) -> None:
    rid, _ = queue.submit(ALICE, prompt())
    d = take(queue)
    queue.start(d, "w1")
    queue.finish(d, JobStatus.DONE, text="answer", usage={"prompt_tokens": 2, "completion_tokens": 1})
    job = queue.cancel(ALICE, rid)
    assert job["status"] == JobStatus.DONE and job["text"] == "answer"


def test_active_job_has_the_long_ttl_and_terminal_state_the_result_ttl(redis_server) -> None:
    q = RedisQueue.from_url(redis_server.url, result_ttl_s=123, active_ttl_s=4567)
    q.ensure_group()
    rid, _ = q.submit(ALICE, prompt())
    key = q._req(rid)
    assert 4567 - 5 <= q.r.ttl(key) <= 4567
    d = take(q)
    q.start(d, "w1")
    assert q.r.ttl(key) > 123  # running is not terminal: no result TTL yet
    q.finish(d, JobStatus.DONE, text="ok")
    assert 123 - 5 <= q.r.ttl(key) <= 123


@pytest.mark.parametrize("end", [JobStatus.CANCELLED, JobStatus.FAILED])
def test_every_terminal_state_sets_the_result_ttl(queue: RedisQueue, end: JobStatus) -> None:
    rid, _ = queue.submit(ALICE, prompt())
    assert queue.transition(rid, end) == "OK"
    assert queue.result_ttl_s - 5 <= queue.r.ttl(queue._req(rid)) <= queue.result_ttl_s


def test_expired_result_reads_expired_for_its_owner_only(queue: RedisQueue) -> None:
    rid, _ = queue.submit(ALICE, prompt())
    d = take(queue)
    queue.start(d, "w1")
    queue.finish(d, JobStatus.DONE, text="bye")
    queue.r.delete(queue._req(rid))  # what the TTL does after result_ttl_s
    job = queue.get(ALICE, rid)
    assert job["status"] == JobStatus.EXPIRED and job["request_id"] == rid
    with pytest.raises(NotFound):
        queue.get(BOB, rid)


def test_a_hash_gone_without_ending_is_not_found(queue: RedisQueue) -> None:
    rid, _ = queue.submit(ALICE, prompt())
    queue.r.delete(queue._req(rid))
    with pytest.raises(NotFound):
        queue.get(ALICE, rid)


def test_depth_counts_undelivered_and_pending(queue: RedisQueue) -> None:
    assert queue.depth() == 0
    for _ in range(3):
        queue.submit(ALICE, prompt())
    assert queue.depth() == 3
    d = take(queue)  # delivered, not acknowledged: still owed an answer
    assert queue.depth() == 3
    queue.start(d, "w1")
    queue.finish(d, JobStatus.DONE, text="x")
    assert queue.depth() == 2
    queue.read("w2", count=10, block_ms=100)
    assert queue.depth() == 2


def test_depth_without_a_stream_is_zero(redis_server) -> None:
    assert RedisQueue.from_url(redis_server.url).depth() == 0


def test_finish_acknowledges_and_deletes_the_entry(queue: RedisQueue) -> None:
    queue.submit(ALICE, prompt())
    d = take(queue)
    queue.start(d, "w1")
    queue.finish(d, JobStatus.DONE, text="x")
    assert queue.r.xlen(queue.stream) == 0
    assert queue.r.xpending(queue.stream, GROUP)["pending"] == 0


# -- reclaiming a dead worker's jobs ----------------------------------------------------------


def test_claim_stale_hands_a_vanished_workers_job_to_another(queue: RedisQueue) -> None:
    rid, _ = queue.submit(ALICE, prompt())
    d1 = take(queue, "dead")
    assert d1.deliveries == 1
    assert queue.start(d1, "dead")["status"] == JobStatus.RUNNING
    assert queue.write_text(rid, "half an ans", 1.0) == "running"

    (d2,) = queue.claim_stale("alive", min_idle_ms=0)
    assert (d2.entry_id, d2.request_id, d2.deliveries) == (d1.entry_id, rid, 2)
    assert pending_info(queue, d2.entry_id)["consumer"] == b"alive"
    job = queue.start(d2, "alive")
    assert job is not None and job["status"] == JobStatus.RUNNING and job["worker"] == "alive"
    assert job["text"] == "" and "first_token" not in job  # the answer starts over
    queue.finish(d2, JobStatus.DONE, text="a whole answer")
    assert queue.get(ALICE, rid)["text"] == "a whole answer"


def test_claim_stale_respects_min_idle(queue: RedisQueue) -> None:
    queue.submit(ALICE, prompt())
    take(queue, "busy")
    assert queue.claim_stale("other", min_idle_ms=60_000) == []


def test_beyond_max_deliveries_the_job_fails_as_worker_lost(queue: RedisQueue) -> None:
    rid, _ = queue.submit(ALICE, prompt())
    delivery = take(queue, "w0")
    queue.start(delivery, "w0")
    for n in range(2, queue.max_deliveries + 1):
        (delivery,) = queue.claim_stale(f"w{n}", min_idle_ms=0)
        assert delivery.deliveries == n
        assert queue.start(delivery, f"w{n}") is not None  # still within the bound: runs again
    (last,) = queue.claim_stale("w-last", min_idle_ms=0)
    assert last.deliveries == queue.max_deliveries + 1
    assert queue.start(last, "w-last") is None
    job = queue.get(ALICE, rid)
    assert job["status"] == JobStatus.FAILED
    assert job["error"]["code"] == "worker_lost" and job["error"]["message"]
    assert queue.result_ttl_s - 5 <= queue.r.ttl(queue._req(rid)) <= queue.result_ttl_s


def test_touch_keeps_a_long_answer_from_being_claimed(queue: RedisQueue) -> None:
    queue.submit(ALICE, prompt())
    d = take(queue, "slow")
    queue.start(d, "slow")
    wait_until(lambda: pending_info(queue, d.entry_id)["time_since_delivered"] >= 300, timeout=5)
    queue.touch("slow", [d.entry_id])
    info = pending_info(queue, d.entry_id)
    assert info["time_since_delivered"] < 300
    assert info["times_delivered"] == 1  # touching is not a redelivery
    assert info["consumer"] == b"slow"
    assert queue.claim_stale("thief", min_idle_ms=300) == []


def test_touch_of_nothing_is_a_no_op(queue: RedisQueue) -> None:
    queue.touch("w", [])


# -- streaming writes -------------------------------------------------------------------------


def test_write_text_writes_only_while_running_and_answers_the_status(queue: RedisQueue) -> None:
    rid, _ = queue.submit(ALICE, prompt())
    assert queue.write_text(rid, "too early", None) == JobStatus.QUEUED
    assert queue.get(ALICE, rid)["text"] == ""

    d = take(queue)
    queue.start(d, "w1")
    assert queue.write_text(rid, "Hel", 1000.5) == JobStatus.RUNNING
    assert queue.write_text(rid, "Hello", 2000.5) == JobStatus.RUNNING
    assert queue.get(ALICE, rid)["text"] == "Hello"
    assert float(queue.r.hget(queue._req(rid), "first_token")) == 1000.5  # the first one stays

    queue.cancel(ALICE, rid)
    assert queue.write_text(rid, "Hello world", None) == JobStatus.CANCELLED
    assert queue.get(ALICE, rid)["text"] == "Hello"

    queue.r.delete(queue._req(rid))
    assert queue.write_text(rid, "into the void", None) is None
    assert not queue.r.exists(queue._req(rid))  # writing does not resurrect the hash


def test_finish_after_cancel_keeps_cancelled_with_the_final_text(queue: RedisQueue) -> None:
    rid, _ = queue.submit(ALICE, prompt())
    d = take(queue)
    queue.start(d, "w1")
    queue.cancel(ALICE, rid)
    assert queue.finish(d, JobStatus.DONE, text="partial", usage={"prompt_tokens": 1, "completion_tokens": 1}) == (
        JobStatus.CANCELLED
    )
    job = queue.get(ALICE, rid)
    assert job["status"] == JobStatus.CANCELLED
    assert job["text"] == "partial" and job["usage"] == {"prompt_tokens": 1, "completion_tokens": 1}
    assert queue.r.xlen(queue.stream) == 0


def test_requeue_puts_a_running_job_back_and_leaves_it_pending(queue: RedisQueue) -> None:
    rid, _ = queue.submit(ALICE, prompt())
    d = take(queue)
    queue.start(d, "w1")
    queue.write_text(rid, "partial", 1.0)
    queue.requeue(d)
    assert queue.get(ALICE, rid)["status"] == JobStatus.QUEUED
    assert queue.get(ALICE, rid)["text"] == ""
    assert pending_info(queue, d.entry_id)["consumer"] == b"w1"
    (again,) = queue.claim_stale("w2", min_idle_ms=0)
    assert queue.start(again, "w2")["status"] == JobStatus.RUNNING


def test_transition_refuses_moves_the_table_forbids(queue: RedisQueue) -> None:
    rid, _ = queue.submit(ALICE, prompt())
    d = take(queue)
    queue.start(d, "w1")
    queue.finish(d, JobStatus.DONE, text="x")
    assert queue.transition(rid, JobStatus.RUNNING) == JobStatus.DONE
    assert queue.transition(rid, JobStatus.QUEUED) == JobStatus.DONE
    assert queue.get(ALICE, rid)["status"] == JobStatus.DONE
    assert queue.transition(uuid.uuid4().hex, JobStatus.CANCELLED) is None


def test_done_job_reports_its_timings(queue: RedisQueue) -> None:
    rid, _ = queue.submit(ALICE, prompt())
    d = take(queue)
    job = queue.start(d, "w1")
    created, started = float(job["created"]), float(job["started"])
    queue.finish(d, JobStatus.DONE, text="x", first_token=repr(started + 0.5), finished=repr(started + 2.0))
    timings = queue.get(ALICE, rid)["timings"]
    assert timings["queued_s"] == pytest.approx(started - created, abs=1e-3)
    assert timings["first_token_s"] == pytest.approx(0.5, abs=1e-3)
    assert timings["total_s"] == pytest.approx(started + 2.0 - created, abs=1e-3)


def test_submit_while_waking_marks_the_job(queue: RedisQueue) -> None:
    rid, _ = queue.submit(ALICE, prompt(), JobStatus.WAKING)
    assert queue.get(ALICE, rid)["status"] == JobStatus.WAKING
    assert queue.r.hget(queue._req(rid), "woke") == b"1"
    assert queue.start(take(queue), "w1")["status"] == JobStatus.RUNNING


# -- heartbeats and wakes -----------------------------------------------------------------------


def test_heartbeats_expire_and_are_listed_freshest_first(queue: RedisQueue) -> None:
    queue.heartbeat("old", {"engine": "echo"}, ttl_s=30)
    queue.heartbeat("new", {"engine": "echo"}, ttl_s=30)
    assert [b["engine"] for b in queue.workers()] == ["echo", "echo"]
    assert queue.workers()[0]["ts"] >= queue.workers()[1]["ts"]
    assert 0 < queue.r.pttl(queue.key("hb", "old")) <= 30_000
    queue.clear_heartbeat("old")
    queue.clear_heartbeat("new")
    assert queue.workers() == []


def test_wake_phases_are_recorded_once_and_kept_in_history(queue: RedisQueue) -> None:
    assert queue.wake_ready() is None  # nothing in progress: nothing recorded
    queue.wake_phase("running")  # no wake in progress: ignored
    assert queue.wake_current() == {}

    assert queue.wake_started() is True
    assert queue.wake_started() is False  # one wake at a time
    queue.wake_phase("running")
    first_running = queue.wake_current()["running"]
    queue.wake_phase("running")
    assert queue.wake_current()["running"] == first_running

    phases = queue.wake_ready()
    assert set(phases) == {"requested", "running", "ready"}
    assert phases["requested"] <= phases["running"] <= phases["ready"]
    assert queue.wake_current() == {}
    assert queue.wake_history() == [phases]
    assert queue.wake_started() is True  # the next wake can begin


def test_wake_history_is_newest_first_and_capped(queue: RedisQueue) -> None:
    for _ in range(WAKE_HISTORY + 3):
        queue.wake_started()
        queue.wake_ready()
    history = queue.wake_history()
    assert len(history) == WAKE_HISTORY
    assert [w["requested"] for w in history] == sorted((w["requested"] for w in history), reverse=True)


def test_ping_says_unavailable_when_redis_is_down(queue: RedisQueue, redis_server) -> None:
    queue.ping()
    redis_server.stop()
    with pytest.raises(Unavailable):
        queue.ping()
    with pytest.raises(redis.RedisError):
        queue.depth()


def test_a_dead_workers_beat_expires_and_its_name_is_dropped(queue: RedisQueue) -> None:
    queue.heartbeat("alive", {"engine": "echo"}, ttl_s=30)
    queue.heartbeat("dead", {"engine": "vllm"}, ttl_s=0.001)
    wait_until(lambda: [b["engine"] for b in queue.workers()] == ["echo"], 5, message="the dead beat to expire")
    assert {n.decode() for n in queue.r.smembers(queue.key("hb"))} == {"alive"}
