"""The real `llamacpp` engine (xllamacpp's llama.cpp server) with a tiny random GGUF,
through the whole local stack: gateway → router → real redis-server → worker process →
engine process. Nothing is faked: killing the engine is a real crash.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from backend.adapters import llamacpp
from backend.entrypoints.local import LocalStack, LocalStackError
from tests.fixtures.tiny_gguf import TINY_CONTEXT, write_llama_gguf
from tests.helpers import wait_until
from tests.integration.test_local_stack import Client

pytestmark = pytest.mark.timeout(180)


@pytest.fixture(scope="module")
def long_gguf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny model with an 8k context: a 4,000-token answer takes seconds, long enough
    to cancel or to kill the engine in the middle of it."""
    return write_llama_gguf(tmp_path_factory.mktemp("gguf") / "tiny-long.gguf", context=8192, n_embd=128,
                            n_layer=4, n_ff=256)


def _stack(model: Path, **kwargs: object) -> Iterator[LocalStack]:
    stack = LocalStack(port=0, engine="llamacpp", model=str(model), claim_idle_s=1.0, heartbeat_s=0.2,
                       **kwargs).start()  # type: ignore[arg-type]
    try:
        yield stack
    finally:
        stack.stop()


@pytest.fixture
def stack(tiny_gguf: Path) -> Iterator[LocalStack]:
    yield from _stack(tiny_gguf)


@pytest.fixture
def long_stack(long_gguf: Path) -> Iterator[LocalStack]:
    yield from _stack(long_gguf)


def _engine(stack: LocalStack, path: str, body: dict | None = None) -> requests.Response:
    """Straight to the engine, with the stack's per-launch key."""
    url = f"http://127.0.0.1:{stack._engine_port}{path}"
    headers = {"Authorization": f"Bearer {stack._engine_key_secret}"}
    if body is None:
        return requests.get(url, headers=headers, timeout=10)
    return requests.post(url, json=body, headers=headers, timeout=10)


def _processing(stack: LocalStack) -> float:
    """How many requests the engine is generating for right now (its Prometheus gauge)."""
    text = _engine(stack, "/metrics").text
    match = re.search(r"^llamacpp:requests_processing\s+(\S+)", text, re.MULTILINE)
    assert match, text[:500]
    return float(match.group(1))


def test_a_prompt_streams_real_tokens_with_usage_and_a_cut_answer_says_length(stack: LocalStack) -> None:
    client = Client(stack)
    assert stack.compute is not None and stack.compute.pids == []  # nothing runs before a prompt

    r = client.post("hello world", max_tokens=24, temperature=0)
    assert r.status_code == 202, r.text
    job = client.wait_status(r.json()["request_id"], "done", "failed", timeout=60)

    assert job["status"] == "done", job
    assert job["text"]
    assert job["usage"]["completion_tokens"] == 24
    assert job["usage"]["prompt_tokens"] > 2  # the engine's own count: template + "hello world"
    assert job["finish_reason"] == "length"  # cut at max_tokens, and the app can say so
    assert job["timings"]["first_token_s"] is not None
    status = client.status()
    assert status["worker"]["engine"] == "llamacpp"
    assert status["worker"]["model"] == "tiny-llama"  # the file's name, not its full path


def test_the_engine_is_private_to_the_stack(stack: LocalStack) -> None:
    client = Client(stack)
    client.wait_status(client.post("wake up", max_tokens=4).json()["request_id"], "done", timeout=60)
    url = f"http://127.0.0.1:{stack._engine_port}"

    assert requests.get(f"{url}/v1/models", timeout=5).status_code == 401  # no key: refused
    assert requests.get(f"{url}/", timeout=5).status_code in (401, 404)  # no web UI page
    engine = next(p for p in _children_cmdlines(stack) if "llamacpp-server" in p)
    assert stack._engine_key_secret not in engine  # the key never shows in `ps`
    assert f"--threads {llamacpp.physical_cores()}" in engine
    assert f"--context {TINY_CONTEXT}" in engine
    # the worker takes no more prompts than the engine has slots: on a CPU the rest would
    # wait inside llama.cpp past the client's timeout (seen with a TinyLlama-shaped model)
    assert f"--parallel {llamacpp.DEFAULT_PARALLEL}" in engine
    assert stack.worker_env()["MAX_INFLIGHT"] == str(llamacpp.DEFAULT_PARALLEL)


def _children_cmdlines(stack: LocalStack) -> list[str]:
    assert stack.compute is not None
    return [Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode() for pid in stack.compute.pids]


def test_a_file_without_a_chat_template_gets_zephyr(tiny_gguf_no_template: Path) -> None:
    for stack in _stack(tiny_gguf_no_template):
        client = Client(stack)
        job = client.wait_status(client.post("hi", max_tokens=4).json()["request_id"], "done", "failed",
                                 timeout=60)
        assert job["status"] == "done", job
        prompt = _engine(stack, "/apply-template", {"messages": [{"role": "user", "content": "hi"}]}).json()
        assert prompt["prompt"].startswith("<|user|>\nhi</s>") and "<|assistant|>" in prompt["prompt"]


def test_eight_concurrent_prompts_are_batched_and_all_answered(stack: LocalStack) -> None:
    client = Client(stack)
    with ThreadPoolExecutor(8) as pool:
        posted = list(pool.map(lambda i: client.post(f"prompt number {i}", max_tokens=40), range(8)))
    ids = [r.json()["request_id"] for r in posted]
    jobs = [client.wait_status(rid, "done", "failed", timeout=90) for rid in ids]

    assert [j["status"] for j in jobs] == ["done"] * 8, [j.get("error") for j in jobs]
    assert all(j["usage"]["completion_tokens"] == 40 and j["text"] for j in jobs)
    # The engine had several slots busy at once (continuous batching), not one after another.
    slots = _engine(stack, "/props").json()["total_slots"]
    assert slots == llamacpp.DEFAULT_PARALLEL


def test_a_prompt_over_the_models_context_is_refused_before_a_wake(stack: LocalStack) -> None:
    client = Client(stack)
    r = client.post("word " * (TINY_CONTEXT * 2), max_tokens=16)

    assert r.status_code == 413, r.text
    assert r.json()["error"]["code"] == "context_too_long"
    assert f"{TINY_CONTEXT:,}" in r.json()["error"]["message"]
    assert stack.compute is not None and stack.compute.pids == []  # nothing was woken


def test_max_tokens_over_the_context_is_capped_and_the_answer_fits(stack: LocalStack) -> None:
    """Issue 12: a chat's max_tokens 1024 on a 512-token model is capped to the room the
    prompt leaves (it was refused with 413), and the real engine answers within it."""
    client = Client(stack)
    r = client.post("hello world", max_tokens=1024, temperature=0)
    assert r.status_code == 202, r.text
    job = client.wait_status(r.json()["request_id"], "done", "failed", timeout=60)
    assert job["status"] == "done", job
    usage = job["usage"]
    assert usage["prompt_tokens"] + usage["completion_tokens"] <= TINY_CONTEXT
    assert usage["completion_tokens"] > TINY_CONTEXT // 2  # capped to the room, not to a token
    assert job["finish_reason"] == "length"
    assert client.status()["compute"]["context_tokens"] == TINY_CONTEXT


def test_cancel_closes_the_stream_and_the_engine_stops_generating(long_stack: LocalStack) -> None:
    client = Client(long_stack)
    rid = client.post("tell me everything", max_tokens=4000).json()["request_id"]
    wait_until(lambda: client.get(rid)["text"], 60, message="the first tokens")
    assert _processing(long_stack) == 1

    assert client.session.delete(f"{client.url}/prompts/{rid}", timeout=10).status_code in (200, 202)
    job = client.wait_status(rid, "cancelled", timeout=20)
    # The engine is idle again long before 4,000 tokens: closing the stream aborted it.
    wait_until(lambda: _processing(long_stack) == 0, 5, message="the engine to stop generating")
    assert job["usage"] is None or job["usage"]["completion_tokens"] < 4000


def test_the_engine_killed_mid_answer_says_so_and_the_next_prompt_is_answered(long_stack: LocalStack) -> None:
    client = Client(long_stack)
    rid = client.post("a long answer please", max_tokens=4000).json()["request_id"]
    partial = wait_until(lambda: client.get(rid)["text"], 60, message="the first tokens")
    engine_pid = long_stack.compute._procs["engine"].pid  # type: ignore[union-attr]
    os.killpg(engine_pid, signal.SIGKILL)

    job = client.wait_status(rid, "failed", "done", timeout=30)
    assert job["status"] == "failed", job
    assert "model server" in job["error"]["message"]  # words, not a traceback
    assert "Traceback" not in job["error"]["message"]
    assert job["text"].startswith(partial)  # what was generated is kept

    again = client.post("and now?", max_tokens=8).json()["request_id"]
    answer = client.wait_status(again, "done", "failed", timeout=60)
    assert answer["status"] == "done", answer["error"]


def test_a_file_that_is_not_a_gguf_is_refused_at_start_in_words(tmp_path: Path) -> None:
    bad = tmp_path / "model.gguf"
    bad.write_text("<html>404 Not Found</html>")
    with pytest.raises(LocalStackError, match="not a GGUF model file") as info:
        LocalStack(port=0, engine="llamacpp", model=str(bad), watchdog=False).start()
    assert "--engine openai" in str(info.value)  # the other option is offered


def test_a_model_the_engine_cannot_load_fails_the_prompt_at_once_in_words(tiny_gguf: Path, tmp_path: Path) -> None:
    cut = tmp_path / "cut-short.gguf"
    cut.write_bytes(tiny_gguf.read_bytes()[: tiny_gguf.stat().st_size // 2])  # header fine, weights gone
    for stack in _stack(cut):
        client = Client(stack)
        job = client.wait_status(client.post("hello", max_tokens=8).json()["request_id"], "failed", "done",
                                 timeout=30)
        assert job["status"] == "failed"
        message = job["error"]["message"]
        assert "could not load cut-short.gguf" in message and "OpenAI-compatible" in message
        assert "Traceback" not in message
        assert stack.compute is not None and stack.compute.restarts == 0  # not retried in vain


def test_tinyllama_local_runs_the_llamacpp_engine_from_a_terminal(tiny_gguf: Path, tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "backend.entrypoints", "local", "--port", "0", "--token", "cli-llama-token",
         "--engine", "llamacpp", "--model", str(tiny_gguf)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1", "TINYLLAMA_DATA_DIR": str(tmp_path)},
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        url = re.search(r"(http://127\.0\.0\.1:\d+)", line)
        assert url and "engine: llamacpp" in line, line
        h = {"Authorization": "Bearer cli-llama-token"}
        body = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 8}
        rid = requests.post(f"{url.group(1)}/prompts", headers=h, timeout=10, json=body).json()["request_id"]

        def finished() -> dict | None:
            job = requests.get(f"{url.group(1)}/prompts/{rid}", headers=h, timeout=10).json()
            return job if job["status"] in ("done", "failed") else None

        done = wait_until(finished, 60, message="the answer")
        assert done["status"] == "done" and done["usage"]["completion_tokens"] == 8
        proc.send_signal(signal.SIGINT)
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
