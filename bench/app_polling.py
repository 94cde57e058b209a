"""The stack as the app uses it: one poller per prompt at the app's own intervals, vs the engine.

`desktop.core.polling` decides when the app asks again (at once after the submit, then
0.25 s while queued or streaming, 1 s while the GPU wakes), so this is the delay a
person sees, not the stack's floor (`stack_overhead` polls every 10 ms for that). The
engine is the echo engine with a known time per token, which serves concurrent requests
in parallel as vLLM's batching does: no real engine (llama.cpp, vLLM) is installed here.
Overhead (one prompt at a time) and N=8 and N=32 at once, printed side by side.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import requests

from backend.adapters.engines import EchoEngine
from backend.entrypoints.local import LocalStack
from bench._stats import pct
from desktop.core.polling import PromptPace

TOKENS = 128
TOKEN_S = 0.02  # 50 tokens/s, a small model on a T4: 2.56 s per answer
PROMPT = " ".join(f"tok{i}" for i in range(TOKENS))
MESSAGES = [{"role": "user", "content": PROMPT}]
SEQUENTIAL = 8
CONCURRENT = (8, 32)
LAST_TOTAL_S: list[float] = []


def direct(engine: EchoEngine) -> float:
    """Seconds until the engine's last token."""
    start = time.perf_counter()
    text = "".join(c.text for c in engine.stream(MESSAGES, {}, lambda: False))
    assert text == PROMPT
    return time.perf_counter() - start


def as_the_app(session: requests.Session, url: str) -> float:
    """Seconds from the POST until a poll at the app's intervals sees the whole answer.

    `LAST_TOTAL_S` keeps the stack's own `timings.total_s` of the answer (no polling in it)."""
    start = time.perf_counter()
    rid = session.post(f"{url}/prompts", json={"messages": MESSAGES, "max_tokens": TOKENS * 2},
                       timeout=10).json()["request_id"]
    pause = threading.Event()
    pace = PromptPace()
    while True:
        job = session.get(f"{url}/prompts/{rid}", timeout=10).json()
        if job["status"] == "done":
            assert job["text"] == PROMPT
            LAST_TOTAL_S.append(job["timings"]["total_s"])
            return time.perf_counter() - start
        pause.wait(pace.after(job["status"], job["text"]))


def at_once(n: int, pool: ThreadPoolExecutor, engine: EchoEngine, url: str, token: str) -> tuple[float, float]:
    """(seconds for n prompts straight to the engine, for n through the stack), each at once."""
    sessions = []
    for _ in range(n):
        s = requests.Session()
        s.headers["Authorization"] = f"Bearer {token}"
        sessions.append(s)
    start = time.perf_counter()
    list(pool.map(lambda _i: direct(engine), range(n)))
    engine_s = time.perf_counter() - start
    start = time.perf_counter()
    list(pool.map(as_the_app, sessions, [url] * n))
    stack_s = time.perf_counter() - start
    for s in sessions:
        s.close()
    return engine_s, stack_s


def main() -> None:
    engine = EchoEngine(TOKEN_S)
    with LocalStack(port=0, echo_delay_s=TOKEN_S, heartbeat_s=1.0) as stack:
        session = requests.Session()
        session.headers["Authorization"] = f"Bearer {stack.token}"
        as_the_app(session, stack.url)  # wake the worker; not measured
        LAST_TOTAL_S.clear()
        d, s = [], []
        for _ in range(SEQUENTIAL):  # interleaved, so machine noise hits both alike
            d.append(direct(engine))
            s.append(as_the_app(session, stack.url))
        server = list(LAST_TOTAL_S)
        with ThreadPoolExecutor(max(CONCURRENT)) as pool:
            both = {n: at_once(n, pool, engine, stack.url, stack.token) for n in CONCURRENT}
    print(f"  echo engine, {TOKENS} tokens at {TOKEN_S * 1000:.0f} ms each ({TOKENS * TOKEN_S:.2f} s per answer);"
          f" polls at the app's intervals (0.25 s streaming, 1 s queued)")
    row = [f"overhead p50 {pct(s, 50) / pct(d, 50):.3f}x ({pct(d, 50):.2f} s → {pct(s, 50):.2f} s)"]
    for n, (engine_s, stack_s) in both.items():
        row.append(f"N={n} {stack_s / engine_s:.3f}x ({engine_s:.2f} s → {stack_s:.2f} s)")
    print("  stack/direct:  " + "   ".join(row))
    print(f"  of the overhead, the stack's own (server-side total_s, no polling): p50 "
          f"{pct(server, 50) / pct(d, 50):.3f}x; the rest is the app's 0.25 s poll step")
    print("  goals: overhead ≤ 1.05x, N=8 and N=32 ≤ 1.2x")


if __name__ == "__main__":
    main()
