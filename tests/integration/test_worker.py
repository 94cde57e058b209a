"""The worker in a thread against a real redis-server, with engines whose behaviour the
test controls: a gate that holds every stream open until released (so concurrency is
counted, not timed), an engine that fails, and the echo engine."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from backend.adapters.engines import EchoEngine, EngineError
from backend.adapters.redis_queue import GROUP, Delivery, RedisQueue
from backend.core.jobs import JobStatus
from backend.core.ports import Chunk
from backend.core.prompts import parse_prompt
from backend.entrypoints.worker import Worker
from tests.fixtures.workers import GateEngine, Running
from tests.helpers import wait_until

OWNER = "worker-test-owner"


class FailingEngine:
    """Streams a little, then fails the way an unreachable model server does."""

    name = "failing"
    message = "The model server refused the prompt: out of memory"

    def ready(self) -> bool:
        return True

    def stream(self, messages: list[dict[str, str]], params: dict[str, Any],
               should_stop: Callable[[], bool]) -> Iterator[Chunk]:
        yield Chunk(text="partial")
        raise EngineError(self.message)


def submit(queue: RedisQueue, text: str = "hello big world", **fields: Any) -> str:
    rid, _ = queue.submit(OWNER, parse_prompt({"messages": [{"role": "user", "content": text}], **fields}))
    return rid


def status(queue: RedisQueue, rid: str) -> str:
    return queue.get(OWNER, rid)["status"]


def wait_status(queue: RedisQueue, rid: str, want: JobStatus, timeout: float = 10.0) -> dict[str, Any]:
    wait_until(lambda: status(queue, rid) == want, timeout, message=f"{rid} to be {want}")
    return queue.get(OWNER, rid)


def test_jobs_run_concurrently(queue: RedisQueue, start_worker: Callable[..., Running]) -> None:
    engine = GateEngine()
    start_worker(engine, max_inflight=16)
    ids = [submit(queue, f"prompt {i}") for i in range(8)]
    wait_until(lambda: engine.active == 8, message="8 streams open at once")
    assert all(status(queue, rid) == JobStatus.RUNNING for rid in ids)
    engine.release()
    for rid in ids:
        assert wait_status(queue, rid, JobStatus.DONE)["text"].endswith(" end")
    assert engine.max_active == 8
    assert engine.calls == 8
    assert queue.depth() == 0


def test_max_inflight_bounds_concurrency(queue: RedisQueue, start_worker: Callable[..., Running]) -> None:
    engine = GateEngine()
    start_worker(engine, max_inflight=3)
    ids = [submit(queue, f"prompt {i}") for i in range(5)]
    wait_until(lambda: engine.active == 3)
    assert sum(status(queue, rid) == JobStatus.RUNNING for rid in ids) == 3
    engine.release()
    for rid in ids:
        wait_status(queue, rid, JobStatus.DONE)
    assert engine.max_active == 3


def test_answer_usage_and_timings_are_stored(queue: RedisQueue, start_worker: Callable[..., Running]) -> None:
    start_worker(EchoEngine(delay_s=0.005), gpu_price_per_hour_usd=3600.0)
    rid = submit(queue, "the quick brown fox", max_tokens=50, temperature=0.1)
    job = wait_status(queue, rid, JobStatus.DONE)
    assert job["text"] == "the quick brown fox"
    assert job["usage"] == {"prompt_tokens": 4, "completion_tokens": 4}
    assert job["error"] is None
    t = job["timings"]
    assert t["queued_s"] is not None and t["queued_s"] >= 0
    assert t["first_token_s"] is not None and t["first_token_s"] >= 0
    assert t["total_s"] >= t["queued_s"]
    assert job["cost_usd"] is not None and job["cost_usd"] > 0  # $1 a second at this price
    assert queue.depth() == 0


def test_params_reach_the_engine(queue: RedisQueue, start_worker: Callable[..., Running]) -> None:
    engine = GateEngine()
    engine.release()
    start_worker(engine)
    rid = submit(queue, max_tokens=17, temperature=1.5, model="tiny/m")
    wait_status(queue, rid, JobStatus.DONE)
    assert engine.params == [{"max_tokens": 17, "temperature": 1.5, "model": "tiny/m"}]


def test_partial_text_is_visible_while_running(queue: RedisQueue, start_worker: Callable[..., Running]) -> None:
    engine = GateEngine()
    start_worker(engine)
    rid = submit(queue)
    wait_until(lambda: queue.get(OWNER, rid)["text"].startswith("tok.."), message="streamed text")
    assert status(queue, rid) == JobStatus.RUNNING
    engine.release()
    wait_status(queue, rid, JobStatus.DONE)


def test_cancel_mid_stream_stops_the_engine(queue: RedisQueue, start_worker: Callable[..., Running]) -> None:
    engine = GateEngine()
    start_worker(engine)
    rid = submit(queue)
    wait_until(lambda: queue.get(OWNER, rid)["text"], message="first tokens")
    queue.cancel(OWNER, rid)
    assert engine.saw_stop.wait(10), "the engine was never told to stop"
    wait_until(lambda: queue.depth() == 0, message="the cancelled job to be acknowledged")
    wait_until(lambda: engine.active == 0)
    job = queue.get(OWNER, rid)
    assert job["status"] == JobStatus.CANCELLED
    assert job["text"].startswith("tok") and not job["text"].endswith(" end")
    assert not engine.gate.is_set()  # it stopped because of the cancel, not because it finished


def test_engine_error_fails_the_job_with_its_message(queue: RedisQueue,
                                                     start_worker: Callable[..., Running]) -> None:
    start_worker(FailingEngine())
    rid = submit(queue)
    job = wait_status(queue, rid, JobStatus.FAILED)
    assert job["error"] == {"code": EngineError.code, "message": FailingEngine.message}
    wait_until(lambda: queue.depth() == 0)


def test_one_failing_job_does_not_stop_the_worker(queue: RedisQueue, start_worker: Callable[..., Running]) -> None:
    class Flaky(EchoEngine):
        def stream(self, messages, params, should_stop):  # type: ignore[no-untyped-def]
            if messages[-1]["content"] == "boom":
                raise RuntimeError("bug in an engine")
            yield from super().stream(messages, params, should_stop)

    start_worker(Flaky())
    bad, good = submit(queue, "boom"), submit(queue, "fine")
    assert wait_status(queue, bad, JobStatus.FAILED)["error"]["code"] == "internal"
    assert wait_status(queue, good, JobStatus.DONE)["text"] == "fine"


def test_warm_stop_finishes_the_running_job(queue: RedisQueue, start_worker: Callable[..., Running]) -> None:
    engine = GateEngine()
    running = start_worker(engine)
    rid = submit(queue)
    wait_status(queue, rid, JobStatus.RUNNING)
    wait_until(lambda: engine.active == 1)
    running.worker.request_stop()
    # The stop is requested but the job holds: the worker must still be there for it.
    assert running.thread.is_alive() and running.result is None
    assert not engine.saw_stop.is_set()
    engine.release()
    assert running.join() == "warm stop"
    job = queue.get(OWNER, rid)
    assert job["status"] == JobStatus.DONE and job["text"].endswith(" end")
    assert not engine.saw_stop.is_set()
    assert queue.workers() == []  # its heartbeat is cleared on the way out


def test_warm_stop_keeps_its_job_from_looking_abandoned(queue: RedisQueue,
                                                       start_worker: Callable[..., Running]) -> None:
    """A warm stop can wait minutes for a long answer: meanwhile the worker must keep its
    entry fresh (or another worker reclaims it and starts it over) and keep heartbeating."""
    engine = GateEngine()
    running = start_worker(engine, name="draining")
    rid = submit(queue)
    wait_until(lambda: engine.active == 1)
    entry = queue.r.xpending_range(queue.stream, GROUP, min="-", max="+", count=1)[0]["message_id"]
    running.worker.request_stop()
    threading.Event().wait(1.0)  # ten heartbeats of this worker, and well past its beat's TTL
    assert running.thread.is_alive()
    (info,) = queue.r.xpending_range(queue.stream, GROUP, min=entry, max=entry, count=1)
    assert info["time_since_delivered"] < 500, info
    (beat,) = queue.workers()
    assert beat["worker"] == "draining" and beat["ready"] is False and beat["draining"] is True
    engine.release()
    assert running.join() == "warm stop"
    assert status(queue, rid) == JobStatus.DONE


def test_cold_stop_returns_the_job_to_the_queue_for_reclaim(queue: RedisQueue,
                                                           start_worker: Callable[..., Running]) -> None:
    engine = GateEngine()
    running = start_worker(engine, name="cold")
    rid = submit(queue)
    wait_until(lambda: queue.get(OWNER, rid)["text"], message="first tokens")
    running.worker.request_stop()
    running.worker.request_stop()
    assert running.join() == "cold stop"
    assert engine.saw_stop.is_set()
    job = queue.get(OWNER, rid)
    assert job["status"] == JobStatus.QUEUED and job["text"] == ""
    pending = queue.r.xpending(queue.stream, GROUP)
    assert pending["pending"] == 1 and pending["consumers"][0]["name"] in ("cold", b"cold")

    # Nothing is lost: the next worker reclaims and answers it.
    start_worker(EchoEngine(), name="next", claim_idle_s=0)
    assert wait_status(queue, rid, JobStatus.DONE)["text"] == "hello big world"
    wait_until(lambda: queue.depth() == 0)


def test_idle_timeout_with_an_empty_queue(queue: RedisQueue, start_worker: Callable[..., Running]) -> None:
    calls: list[str] = []

    def on_idle() -> str:
        calls.append("stop")
        return "stopped i-0123456789"

    running = start_worker(EchoEngine(), idle_timeout_s=0.2, heartbeat_s=0.05, on_idle=on_idle)
    assert running.join() == "idle: stopped i-0123456789"
    assert calls == ["stop"]


def test_no_idle_stop_while_the_queue_holds_work(queue: RedisQueue, start_worker: Callable[..., Running]) -> None:
    # A job delivered to another (live) worker: this one must not idle while it is owed.
    rid = submit(queue)
    (elsewhere,) = queue.read("other-worker", count=1, block_ms=100)
    depth_checks = 0
    real_depth = queue.depth

    def counted_depth() -> int:
        nonlocal depth_checks
        depth_checks += 1
        return real_depth()

    queue.depth = counted_depth  # type: ignore[method-assign]
    calls: list[str] = []
    running = start_worker(EchoEngine(), idle_timeout_s=0.2, heartbeat_s=0.05,
                           on_idle=lambda: calls.append("stop") or "stopped")
    wait_until(lambda: depth_checks >= 3, message="several idle checks")
    assert calls == [] and running.thread.is_alive()

    queue.start(elsewhere, "other-worker")
    queue.finish(elsewhere, JobStatus.DONE, text="done elsewhere")
    assert running.join() == "idle: stopped"
    assert calls == ["stop"]
    assert status(queue, rid) == JobStatus.DONE


def test_worker_survives_a_redis_restart(queue: RedisQueue, redis_server: Any,
                                         start_worker: Callable[..., Running],
                                         caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="tinyllama.worker")
    running = start_worker(EchoEngine())
    before = submit(queue, "before the outage")
    assert wait_status(queue, before, JobStatus.DONE)["text"] == "before the outage"

    redis_server.stop()
    wait_until(lambda: "Redis unavailable" in caplog.text, message="the worker to notice the outage")
    assert running.thread.is_alive() and running.result is None

    redis_server.start()  # same port and password, but empty: no stream, no group
    after = submit(queue, "after the restart")
    assert wait_status(queue, after, JobStatus.DONE, timeout=20)["text"] == "after the restart"
    assert running.thread.is_alive()


def test_gpu_cost_is_shared_by_the_answers_batched_together(queue: RedisQueue) -> None:
    worker = Worker(queue, EchoEngine(), gpu_price_per_hour_usd=3600.0)  # $1 a GPU-second
    worker._inflight = {f"{i}-0": Delivery(f"{i}-0", f"r{i}") for i in range(4)}
    # Four answers shared the GPU from start to end: each pays a quarter of its 2 seconds.
    assert worker._gpu_cost(2.0, sharing_at_start=4) == pytest.approx(0.5)
    worker._inflight = {}
    # Alone at the end (the others finished first): the mean of 4 and 1 shares it.
    assert worker._gpu_cost(2.0, sharing_at_start=4) == pytest.approx(2.0 / 2.5)
    assert worker._gpu_cost(2.0, sharing_at_start=1) == pytest.approx(2.0)
