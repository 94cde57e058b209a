"""Faults heal themselves: the worker against a real redis-server and a real HTTP engine
(a steerable OpenAI-compatible server), with Redis restarts, a stalled stream, an engine
that stops answering and a worker that dies with jobs in hand."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from backend.adapters.engines import EchoEngine, OpenAIEngine
from backend.adapters.redis_queue import RedisQueue
from backend.core.jobs import JobStatus
from tests.fixtures.openai_server import OpenAIServer
from tests.fixtures.workers import GateEngine, Running
from tests.helpers import wait_until
from tests.integration.test_worker import OWNER, status, submit, wait_status


# -- Redis restarts -------------------------------------------------------------------------
def test_worker_resumes_within_half_a_second_of_redis_coming_back(
        queue: RedisQueue, redis_server: Any, start_worker: Callable[..., Running],
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="tinyllama.worker")
    start_worker(EchoEngine())
    wait_until(lambda: (b := queue.beat("w0")) and b["ready"], message="the worker to be ready")

    redis_server.stop()
    # Six failed tries: an uncapped backoff is now asleep for 3.2 s, a capped one for 0.5 s.
    wait_until(lambda: caplog.text.count("Redis unavailable") >= 6, 20, message="six failed tries")
    redis_server.start()  # same port and password, empty: no stream, no group
    back = time.monotonic()
    rid = submit(queue, "after the restart")
    wait_status(queue, rid, JobStatus.DONE, timeout=10)
    assert time.monotonic() - back < 1.5, "the worker slept through Redis coming back"
    assert "retrying in 1.0" not in caplog.text and "retrying in 5.0" not in caplog.text


# -- readiness follows the engine ---------------------------------------------------------
def test_heartbeat_stops_saying_ready_when_the_engine_stops_answering(
        queue: RedisQueue, openai_server: OpenAIServer, start_worker: Callable[..., Running]) -> None:
    start_worker(OpenAIEngine(openai_server.url))
    wait_until(lambda: (b := queue.beat("w0")) and b["ready"], message="ready while the engine answers")

    openai_server.answering = False
    wait_until(lambda: (b := queue.beat("w0")) and b["ready"] is False, 5, message="not ready once it stops")
    rid = submit(queue)
    wait_until(lambda: openai_server.model_calls > 20, 5, message="the worker to keep asking")
    assert status(queue, rid) == JobStatus.QUEUED, "a job went to an engine that does not answer"

    openai_server.answering = True
    assert wait_status(queue, rid, JobStatus.DONE)["text"] == "t0 t1 t2 "


def test_a_healthy_engine_is_noticed_within_half_a_second(
        queue: RedisQueue, openai_server: OpenAIServer, start_worker: Callable[..., Running]) -> None:
    openai_server.answering = False
    start_worker(OpenAIEngine(openai_server.url), heartbeat_s=1.0)
    # Eight refusals: a doubling backoff from 0.2 s is now asleep for 25 s.
    wait_until(lambda: openai_server.model_calls >= 8, 10, message="the worker to ask eight times")
    openai_server.answering = True
    healthy = time.monotonic()
    wait_until(lambda: (b := queue.beat("w0")) and b["ready"], 5, interval=0.005, message="ready")
    assert time.monotonic() - healthy <= 0.5


# -- cancel, usage, early ends ------------------------------------------------------------
def test_cancel_aborts_a_stalled_stream_and_records_usage(
        queue: RedisQueue, openai_server: OpenAIServer, start_worker: Callable[..., Running]) -> None:
    openai_server.mode = "stall"
    start_worker(OpenAIEngine(openai_server.url), heartbeat_s=1.0)
    rid = submit(queue)
    assert openai_server.streams_started.wait(10), "the stream did not start"
    wait_until(lambda: queue.get(OWNER, rid)["text"], message="the text before the stall")

    queue.cancel(OWNER, rid)
    cancelled = time.monotonic()
    assert openai_server.client_closed.wait(2), "the engine's HTTP request was not aborted"
    assert time.monotonic() - cancelled < 1.0
    job = wait_until(lambda: (j := queue.get(OWNER, rid))["usage"] and j, 5, message="usage of the cancelled answer")
    assert job["status"] == JobStatus.CANCELLED
    assert job["usage"]["completion_tokens"] == 3
    assert job["text"] == "t0 t1 t2 "
    wait_until(lambda: not queue.r.xlen(queue.stream), message="the entry to be acknowledged")


def test_a_flowing_stream_is_left_to_its_flushes_and_still_stops_at_once(
        queue: RedisQueue, start_worker: Callable[..., Running], monkeypatch: pytest.MonkeyPatch) -> None:
    # Each flush answers with the job's status, so the cancel watcher reads only streams
    # that went quiet: 8 answers at once, its reads were an eighth of the worker's CPU.
    watched: list[list[str]] = []
    real_statuses = queue.statuses
    monkeypatch.setattr(queue, "statuses", lambda rids: watched.append(list(rids)) or real_statuses(rids))
    start_worker(EchoEngine(delay_s=0.01), flush_interval_s=0.05)
    rid = submit(queue, " ".join(f"w{i}" for i in range(300)))  # ~3 s of words, a flush every 50 ms
    wait_until(lambda: len(queue.get(OWNER, rid)["text"]) > 200, 10, message="the answer to flow for a while")
    assert not any(rid in rids for rids in watched[1:]), "the watcher read a stream whose flushes check it"

    queue.cancel(OWNER, rid)
    cancelled = time.monotonic()
    wait_until(lambda: queue.get(OWNER, rid)["usage"], 5, interval=0.005, message="the stream to stop")
    assert time.monotonic() - cancelled < 0.5
    assert len(queue.get(OWNER, rid)["text"]) < len(" ".join(f"w{i}" for i in range(300)))


def test_a_stream_that_ends_without_a_finish_reason_fails(
        queue: RedisQueue, openai_server: OpenAIServer, start_worker: Callable[..., Running]) -> None:
    openai_server.mode = "no_finish"
    start_worker(OpenAIEngine(openai_server.url))
    job = wait_status(queue, submit(queue), JobStatus.FAILED)
    assert job["error"]["code"] == "engine_error"
    assert "ended early" in job["error"]["message"]
    assert job["text"] == "t0 t1 t2 "


# -- a dead worker's jobs -----------------------------------------------------------------
def _orphan(queue: RedisQueue, dead: str) -> tuple[str, str]:
    """A job a worker named `dead` took and started, and whose beat has just expired."""
    rid = submit(queue, "one two three")
    (delivery,) = queue.read(dead, count=1, block_ms=100)
    queue.start(delivery, dead)
    queue.write_text(rid, "one two", None)
    queue.heartbeat(dead, {"worker": dead, "ready": True}, ttl_s=0.05)
    wait_until(lambda: queue.beat(dead) is None, message="the dead worker's beat to expire")
    return rid, delivery.entry_id


def test_a_dead_workers_job_is_taken_as_soon_as_its_beat_expires(
        queue: RedisQueue, start_worker: Callable[..., Running]) -> None:
    rid, _entry = _orphan(queue, "dead")
    engine = GateEngine()
    start_worker(engine, claim_idle_s=60.0)  # the fixed-silence claim alone would wait a minute
    wait_until(lambda: engine.calls == 1, 5, message="the orphan to be reclaimed")
    job = queue.get(OWNER, rid)
    assert job["status"] == JobStatus.RUNNING
    assert job["attempt"] == 2 and job["retrying"] is True
    assert not job["text"].startswith("one two"), "the first try's frozen text is still shown"
    engine.release()
    job = wait_status(queue, rid, JobStatus.DONE)
    assert job["retrying"] is False and job["attempt"] == 2


def test_claim_orphans_leaves_live_workers_alone_and_hands_an_orphan_out_once(queue: RedisQueue) -> None:
    live_rid = submit(queue, "live")
    (live,) = queue.read("live", count=1, block_ms=100)
    queue.heartbeat("live", {"ready": True}, ttl_s=30)
    rid, entry = _orphan(queue, "dead")
    queue.r.xclaim(queue.stream, "workers", "dead", min_idle_time=0, message_ids=[entry])
    wait_until(lambda: queue.r.xpending_range(queue.stream, "workers", min=entry, max=entry, count=1)[0]
               ["time_since_delivered"] >= 1000, 5, interval=0.05, message="the orphan to be a second old")

    results: list[list[Any]] = []
    threads = [threading.Thread(target=lambda n=f"w{i}": results.append(queue.claim_orphans(n))) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    claimed = [d for r in results for d in r]
    assert [d.request_id for d in claimed] == [rid], "the orphan went to two workers (or none)"
    assert claimed[0].deliveries == 3
    assert live.request_id == live_rid and queue.claim_orphans("w2") == []
    # A consumer with no beat and nothing pending is dropped from the group.
    names = {c["name"].decode() for c in queue.r.xinfo_consumers(queue.stream, "workers")}
    assert "dead" not in names and "live" in names


class EndsEarlyEngine:
    """Yields text and then simply stops, with no final chunk (an engine-side bug or crash)."""

    name = "ends-early"

    def ready(self) -> bool:
        return True

    def stream(self, messages: list[dict[str, str]], params: dict[str, Any],
               should_stop: Callable[[], bool]) -> Iterator[Any]:
        from backend.core.ports import Chunk

        yield Chunk(text="half an")


def test_any_engine_whose_stream_ends_without_a_finish_fails_the_job(
        queue: RedisQueue, start_worker: Callable[..., Running]) -> None:
    start_worker(EndsEarlyEngine())
    job = wait_status(queue, submit(queue), JobStatus.FAILED)
    assert "ended early" in job["error"]["message"] and job["text"] == "half an"
