"""A prompt longer than the model's context is refused before the GPU is woken."""

from __future__ import annotations

import json

from backend.adapters.redis_queue import RedisQueue
from backend.adapters.spend import StaticSpend
from backend.core.prompts import estimate_prompt_tokens, parse_prompt
from backend.core.service import Budget, PromptService
from backend.entrypoints.router import Identity
from tests.unit.test_router_events import SCOPE, Api, FakeCompute, assert_error


def api_with_context(queue: RedisQueue, context_tokens: int | None) -> Api:
    compute = FakeCompute("stopped")
    service = PromptService(queue, compute, StaticSpend(None), Budget(), context_tokens=context_tokens)
    return Api(queue, compute, service, Identity(required_scope=SCOPE))


def body(chars: int, max_tokens: int = 16) -> dict:
    return {"messages": [{"role": "user", "content": "x" * chars}], "max_tokens": max_tokens}


def test_a_conversation_longer_than_the_context_is_refused_and_nothing_wakes(queue: RedisQueue) -> None:
    api = api_with_context(queue, 256)
    status, answer = api.call("POST", "/prompts", body(4000))
    assert_error(status, answer, 413, "context_too_long")
    assert "256" in answer["error"]["message"] and "Shorten" in answer["error"]["message"]
    assert api.compute.starts == 0 and queue.depth() == 0 and not queue.wake_current()


def test_room_for_the_answer_caps_max_tokens_instead_of_refusing(queue: RedisQueue) -> None:
    """Issue 12: a chat's max_tokens above what the context leaves is capped, not refused."""
    api = api_with_context(queue, 256)
    status, answer = api.call("POST", "/prompts", body(800, max_tokens=200))
    assert status == 202, answer
    params = json.loads(queue.r.hget(queue.key("req", answer["request_id"]), "params"))
    assert params["max_tokens"] == 256 - estimate_prompt_tokens(parse_prompt(body(800)).messages)


def test_a_prompt_that_fits_still_wakes_the_gpu(queue: RedisQueue) -> None:
    api = api_with_context(queue, 256)
    status, _ = api.call("POST", "/prompts", body(800, max_tokens=64))
    assert status == 202 and api.compute.starts == 1


def test_the_context_a_worker_reported_applies_when_none_is_configured(queue: RedisQueue) -> None:
    api = api_with_context(queue, None)
    queue.heartbeat("w", {"ready": False, "context_tokens": 128}, ttl_s=60)
    status, answer = api.call("POST", "/prompts", body(2000))
    assert_error(status, answer, 413, "context_too_long")


def test_the_estimate_stays_below_the_real_token_count() -> None:
    # English prose runs ~4 characters a token on Llama tokenizers: the estimate must be lower.
    prose = "The quick brown fox jumps over the lazy dog. " * 50
    assert estimate_prompt_tokens(parse_prompt({"messages": [{"role": "user", "content": prose}]}).messages) \
        < len(prose) / 4
