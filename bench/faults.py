"""Recovery: how soon the worker follows a healthy engine, and how soon jobs finish after the worker is killed.

1. Worker ready after engine healthy (goal ≤ 0.5 s): an OpenAI-compatible server that
   refuses `/v1/models` until it is flipped healthy; the time until the worker's heartbeat
   says ready. Measured after the worker has already been refused several times, where a
   backoff would be longest.
2. Worker killed → all jobs done again: N answers running in the local stack, the worker
   is killed with SIGKILL, and the time until every one of them is done, against the time
   the same N take uninterrupted (the ratio is the price of the crash).
"""

from __future__ import annotations

import json
import logging
import os
import signal
import tempfile
import threading
import time

import requests

from backend.adapters.engines import OpenAIEngine
from backend.adapters.redis_queue import RedisQueue
from backend.entrypoints.local import LocalStack, RedisServer
from backend.entrypoints.worker import Worker
from bench._stats import pct
from tests.fixtures.openai_server import OpenAIServer

GOAL_READY_S = 0.5
ROUNDS = 5
N_JOBS = 8
WORDS = 150
DELAY_S = 0.01  # 150 words → 1.5 s per answer


def ready_after_healthy() -> list[float]:
    pause = threading.Event()
    times = []
    with tempfile.TemporaryDirectory() as tmp:
        redis_server = RedisServer(tmp).start()
        try:
            queue = RedisQueue.from_url(redis_server.url)
            for i in range(ROUNDS):
                server = OpenAIServer().start()
                server.answering = False
                worker = Worker(queue, OpenAIEngine(server.url), name=f"b{i}", heartbeat_s=2.0, idle_timeout_s=0)
                thread = threading.Thread(target=worker.run, daemon=True)
                thread.start()
                while server.model_calls < 10:
                    pause.wait(0.01)
                server.answering = True
                healthy = time.perf_counter()
                while not ((b := queue.r.get(f"tl:hb:b{i}")) and json.loads(b)["ready"]):
                    pause.wait(0.002)
                times.append(time.perf_counter() - healthy)
                worker.request_stop()
                worker.request_stop()
                thread.join(10)
                server.stop()
        finally:
            redis_server.stop()
    return times


def _all_done(session: requests.Session, url: str, rids: list[str]) -> None:
    pause = threading.Event()
    while not all(session.get(f"{url}/prompts/{r}", timeout=10).json()["status"] == "done" for r in rids):
        pause.wait(0.02)


def killed_worker_recovery() -> tuple[float, float]:
    text = " ".join(f"w{i}" for i in range(WORDS))
    body = {"messages": [{"role": "user", "content": text}], "max_tokens": WORDS}
    with LocalStack(port=0, echo_delay_s=DELAY_S, heartbeat_s=1.0) as stack:
        session = requests.Session()
        session.headers["Authorization"] = f"Bearer {stack.token}"
        _all_done(session, stack.url, [session.post(f"{stack.url}/prompts", json=body, timeout=10)
                                        .json()["request_id"]])  # wake; not measured
        start = time.perf_counter()
        rids = [session.post(f"{stack.url}/prompts", json=body, timeout=10).json()["request_id"]
                for _ in range(N_JOBS)]
        _all_done(session, stack.url, rids)
        clean = time.perf_counter() - start

        rids = [session.post(f"{stack.url}/prompts", json=body, timeout=10).json()["request_id"]
                for _ in range(N_JOBS)]
        pause = threading.Event()
        while not all(len(session.get(f"{stack.url}/prompts/{r}", timeout=10).json()["text"]) > 20 for r in rids):
            pause.wait(0.01)
        assert stack.compute is not None
        killed = time.perf_counter()
        os.kill(stack.compute.pids[-1], signal.SIGKILL)
        _all_done(session, stack.url, rids)
        return clean, time.perf_counter() - killed


def main() -> None:
    logging.getLogger("tinyllama").setLevel(logging.ERROR)  # the crash is on purpose: no warnings
    times = ready_after_healthy()
    print(f"  worker ready after engine healthy   p50 {pct(times, 50) * 1000:6.0f} ms   max {max(times) * 1000:6.0f} ms"
          f"   (goal {GOAL_READY_S * 1000:.0f} ms; max/goal {max(times) / GOAL_READY_S:.2f}x; heartbeat 2 s)")
    clean, after_kill = killed_worker_recovery()
    print(f"  {N_JOBS} answers of {WORDS * DELAY_S:.1f} s   uninterrupted {clean:5.2f} s"
          f"   worker killed mid-answer → all done {after_kill:5.2f} s after the kill"
          f"   ratio {after_kill / clean:.2f}x")


if __name__ == "__main__":
    main()
