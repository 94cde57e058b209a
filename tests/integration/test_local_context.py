"""The local stack knows vLLM's context before the first wake: an over-long first prompt
is refused (413 context_too_long) and nothing is started for it."""

from __future__ import annotations

from pathlib import Path

import pytest
import requests

from backend.entrypoints.local import LocalStack


def _stand_in_vllm(tmp_path: Path) -> tuple[Path, Path]:
    """An executable where the stack looks for vLLM that leaves a mark if it is ever run:
    the test is about vLLM never being started, so the real one is not needed."""
    marker = tmp_path / "vllm-was-started"
    exe = tmp_path / "vllm"
    exe.write_text(f"#!/bin/sh\ntouch {marker}\n")
    exe.chmod(0o755)
    return exe, marker


@pytest.mark.parametrize(("vllm_args", "context"), [([], 2048), (["--max-model-len", "512"], 512),
                                                    (["--max-model-len=1024"], 1024)])
def test_a_first_prompt_longer_than_vllms_context_is_refused_before_any_wake(  # type: ignore[no-untyped-def]
        tmp_path, monkeypatch, vllm_args: list[str], context: int) -> None:
    exe, marker = _stand_in_vllm(tmp_path)
    monkeypatch.setenv("TINYLLAMA_VLLM", str(exe))
    monkeypatch.delenv("MAX_MODEL_LEN", raising=False)
    with LocalStack(port=0, engine="vllm", model="tiny-llama", vllm_args=vllm_args, watchdog=False) as stack:
        headers = {"Authorization": f"Bearer {stack.token}"}
        # About 1.2 tokens per word by the stack's low estimate: just over the context.
        words = " ".join("word" for _ in range(context))
        r = requests.post(f"{stack.url}/prompts", json={"messages": [{"role": "user", "content": words}],
                                                         "max_tokens": 16}, headers=headers, timeout=10)
        assert r.status_code == 413, r.text
        error = r.json()["error"]
        assert error["code"] == "context_too_long" and f"{context:,}" in error["message"]

        status = requests.get(f"{stack.url}/status", headers=headers, timeout=10).json()
        assert status["compute"]["state"] == "stopped" and status["queue_depth"] == 0
        assert stack.compute is not None and stack.compute.pids == []
    assert not marker.exists()  # vLLM was never started


def test_a_prompt_that_fits_is_taken(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """The limit is vLLM's context, not something smaller: a prompt that fits is accepted."""
    exe, _marker = _stand_in_vllm(tmp_path)
    monkeypatch.setenv("TINYLLAMA_VLLM", str(exe))
    with LocalStack(port=0, engine="vllm", model="tiny-llama", vllm_args=["--max-model-len", "512"],
                    watchdog=False) as stack:
        assert stack.context_tokens() == 512
        r = requests.post(f"{stack.url}/prompts", json={"messages": [{"role": "user", "content": "hello"}],
                                                         "max_tokens": 16},
                          headers={"Authorization": f"Bearer {stack.token}"}, timeout=10)
        assert r.status_code == 202, r.text
