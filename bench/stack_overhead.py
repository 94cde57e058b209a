"""Orchestration overhead: prompts through the whole local stack vs straight to the engine.

The engine is the echo engine with a known time per word (ENGINE_DELAY_S × WORDS), so the
difference is what the gateway, router, Redis, the worker and the client's polling add.
Both sides run in the same process, interleaved, so machine noise hits them alike.
"""

from __future__ import annotations

import threading
import time

import requests

from backend.adapters.engines import EchoEngine
from backend.entrypoints.local import LocalStack
from bench._stats import pct, row

WORDS = 20
ENGINE_DELAY_S = 0.005  # 20 words × 5 ms = 100 ms of "generation"
PROMPTS = 40
POLL_S = 0.01
PROMPT = " ".join(f"word{i}" for i in range(WORDS))
MESSAGES = [{"role": "user", "content": PROMPT}]


def direct(engine: EchoEngine) -> float:
    start = time.perf_counter()
    text = "".join(c.text for c in engine.stream(MESSAGES, {"max_tokens": 100}, lambda: False))
    assert text == PROMPT
    return time.perf_counter() - start


def through_stack(session: requests.Session, url: str) -> tuple[float, float]:
    """(client-observed seconds from POST to done, server-side total_s)."""
    start = time.perf_counter()
    rid = session.post(f"{url}/prompts", json={"messages": MESSAGES}, timeout=10).json()["request_id"]
    pause = threading.Event()
    while True:
        job = session.get(f"{url}/prompts/{rid}", timeout=10).json()
        if job["status"] == "done":
            assert job["text"] == PROMPT
            return time.perf_counter() - start, job["timings"]["total_s"]
        pause.wait(POLL_S)


def main() -> None:
    engine = EchoEngine(ENGINE_DELAY_S)
    with LocalStack(port=0, echo_delay_s=ENGINE_DELAY_S, heartbeat_s=1.0) as stack:
        session = requests.Session()
        session.headers["Authorization"] = f"Bearer {stack.token}"
        through_stack(session, stack.url)  # wake the worker; not measured
        d, s, server = [], [], []
        for _ in range(PROMPTS):
            d.append(direct(engine))
            client_s, server_s = through_stack(session, stack.url)
            s.append(client_s)
            server.append(server_s)
    print(f"  {PROMPTS} prompts of {WORDS} words, engine time {WORDS * ENGINE_DELAY_S * 1000:.0f} ms each,"
          f" client polls every {POLL_S * 1000:.0f} ms")
    print(row("engine directly", d))
    print(row("stack, server side (total_s)", server))
    print(row("stack, as the client sees it", s))
    print(f"  ratio stack/engine  p50 {pct(s, 50) / pct(d, 50):.2f}x   p99 {pct(s, 99) / pct(d, 99):.2f}x"
          f"   (server side p50 {pct(server, 50) / pct(d, 50):.2f}x)")
    print(f"  added latency p50 {(pct(s, 50) - pct(d, 50)) * 1000:.1f} ms")


if __name__ == "__main__":
    main()
