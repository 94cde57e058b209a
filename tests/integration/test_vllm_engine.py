"""The worker's vLLM path against the real engine (vLLM's CPU build, a tiny random model).

Slow (vLLM takes ~25 s to start) and needs vLLM installed, so marked `vllm`; skipped when
the engine is absent. The model's weights are random: the tests check lengths, usage,
concurrency and aborts, never the words.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from backend.adapters.engines import OpenAIEngine
from backend.entrypoints.local import LocalStack
from tests.fixtures.vllm import VllmServer, vllm_server  # noqa: F401
from tests.helpers import wait_until

pytestmark = [pytest.mark.vllm, pytest.mark.slow]
MESSAGES = [{"role": "user", "content": "Write a poem about llamas."}]


def _metric(server: VllmServer, name: str, label: str = "") -> float:
    """Sum of a Prometheus metric's samples from vLLM's /metrics (those with `label`)."""
    text = requests.get(f"http://127.0.0.1:{server.port}/metrics", timeout=5).text
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith(name + "{") and label in line)



def test_engine_streams_with_usage_and_aborts_on_stop(vllm_server: VllmServer) -> None:  # noqa: F811
    engine = OpenAIEngine(vllm_server.url)
    assert engine.ready() and engine.model == "tiny-llama"
    chunks = list(engine.stream(MESSAGES, {"max_tokens": 16, "temperature": 0.0}, lambda: False))
    final = chunks[-1]
    assert final.completion_tokens and 0 < final.completion_tokens <= 16
    assert final.prompt_tokens and final.prompt_tokens > 5
    assert "".join(c.text for c in chunks)

    # vLLM does not count client aborts in request_success; its token counter shows them:
    # a 480-token answer (~1.5 s here) stopped after three chunks generates far fewer.
    before = _metric(vllm_server, "vllm:generation_tokens_total")
    seen: list[int] = []
    chunks = list(engine.stream(MESSAGES, {"max_tokens": 480, "temperature": 0.0},
                                lambda: len(seen) >= 3 or bool(seen.append(1))))
    assert chunks[-1].finish_reason == "cancelled"
    wait_until(lambda: _metric(vllm_server, "vllm:num_requests_running") == 0, 10, message="vLLM to stop")
    generated = _metric(vllm_server, "vllm:generation_tokens_total") - before
    assert 0 < generated < 480


def test_prompts_through_the_local_stack_run_concurrently_on_vllm(vllm_server: VllmServer) -> None:  # noqa: F811
    with LocalStack(port=0, engine="openai", engine_url=vllm_server.url) as stack:
        s = requests.Session()
        s.headers["Authorization"] = f"Bearer {stack.token}"
        body = {"messages": MESSAGES, "max_tokens": 24, "temperature": 0.0}
        with ThreadPoolExecutor(8) as pool:
            ids = list(pool.map(lambda _: s.post(f"{stack.url}/prompts", json=body, timeout=10).json()["request_id"],
                                range(8)))

        def all_done() -> list[dict] | None:
            jobs = [s.get(f"{stack.url}/prompts/{rid}", timeout=10).json() for rid in ids]
            return jobs if all(j["status"] == "done" for j in jobs) else None

        jobs = wait_until(all_done, 60, interval=0.05, message="8 answers from vLLM")
        for job in jobs:
            assert 0 < job["usage"]["completion_tokens"] <= 24
            assert job["text"]
        assert stack.queue is not None
        # Greedy decoding of the same prompt: every answer is the same text.
        assert len({j["text"] for j in jobs}) == 1
        assert s.get(f"{stack.url}/status", timeout=10).json()["worker"]["model"] == "tiny-llama"
