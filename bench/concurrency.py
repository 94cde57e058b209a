"""Concurrency: N simultaneous prompts through the worker vs the same N straight to the engine.

A worker that ran jobs one at a time would be N times slower than the engine serving all N
at once; ours should be close to 1x. The engine is the echo engine with a known time per
word, which (like vLLM's batching) serves concurrent requests in parallel.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import requests

from backend.adapters.engines import EchoEngine
from bench.stack_overhead import MESSAGES, PROMPT, through_stack

ENGINE_DELAY_S = 0.01  # 20 words → 200 ms per answer
ROUNDS = 3


def main() -> None:
    from backend.entrypoints.local import LocalStack

    engine = EchoEngine(ENGINE_DELAY_S)
    for n in (8, 32):
        with LocalStack(port=0, echo_delay_s=ENGINE_DELAY_S, heartbeat_s=1.0) as stack:
            session = requests.Session()
            session.headers["Authorization"] = f"Bearer {stack.token}"
            through_stack(session, stack.url)  # wake; not measured
            adapter = requests.adapters.HTTPAdapter(pool_maxsize=n)
            session.mount("http://", adapter)
            best_direct, best_stack = float("inf"), float("inf")
            with ThreadPoolExecutor(n) as pool:
                for _ in range(ROUNDS):
                    start = time.perf_counter()
                    texts = list(pool.map(
                        lambda _i: "".join(c.text for c in engine.stream(MESSAGES, {}, lambda: False)), range(n)))
                    assert texts == [PROMPT] * n
                    best_direct = min(best_direct, time.perf_counter() - start)
                    start = time.perf_counter()
                    list(pool.map(through_stack, [session] * n, [stack.url] * n))
                    best_stack = min(best_stack, time.perf_counter() - start)
        one = 20 * ENGINE_DELAY_S
        print(f"  N={n:3d}  engine directly {best_direct * 1000:7.1f} ms"
              f"   through the stack {best_stack * 1000:7.1f} ms   ratio {best_stack / best_direct:.2f}x"
              f"   (one at a time would be ~{n * one * 1000:.0f} ms,"
              f" {n * one / best_direct:.0f}x)")


if __name__ == "__main__":
    main()
