"""`GET /status` says when the machine stops for idleness and when it stopped, names the
engine it runs before any worker has, and the model's context (issue 13 §5); a chat's
max_tokens is capped to the room its conversation leaves (issue 12)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from backend.adapters.redis_queue import RedisQueue
from backend.adapters.spend import StaticSpend
from backend.core.errors import PayloadTooLarge
from backend.core.policies import idle_stop_at
from backend.core.ports import MachineStatus
from backend.core.prompts import estimate_prompt_tokens_high, fit_context, parse_prompt
from backend.core.service import Budget, PromptService
from backend.entrypoints.router import Identity
from tests.conftest import FrozenClock
from tests.unit.test_router_events import SCOPE, Api, FakeCompute

STOPPED_AT = 1_900_000_000.0


class StoppedAt(FakeCompute):
    """A machine that stopped at a known instant (EC2 says it in its state reason)."""

    def describe(self) -> MachineStatus:
        return MachineStatus(self.state, "g4dn.xlarge", STOPPED_AT if self.state == "stopped" else None)


def beat(queue: RedisQueue, **info: object) -> FrozenClock:
    """A ready worker's heartbeat; the service's clock is set to the instant it was written."""
    queue.heartbeat("w", {"engine": "vllm", "ready": True, "inflight": 0, **info}, ttl_s=60)
    written = queue.beat("w")
    assert written is not None
    return FrozenClock(datetime.fromtimestamp(written["ts"], UTC))


def api(queue: RedisQueue, compute: FakeCompute, clock: object = None, **kwargs: object) -> Api:
    service = PromptService(queue, compute, StaticSpend(None), Budget(),
                            **({"clock": clock} if clock else {}), **kwargs)  # type: ignore[arg-type]
    return Api(queue, compute, service, Identity(required_scope=SCOPE))


def status(a: Api) -> dict:
    code, body = a.call("GET", "/status")
    assert code == 200, body
    return body["compute"]


def test_an_idle_ready_gpu_says_when_its_worker_stops_it(queue: RedisQueue) -> None:
    clock = beat(queue, idle_since=1_000.0, idle_timeout_s=300)
    compute = status(api(queue, StoppedAt("running"), clock))
    assert compute["state"] == "ready"
    assert compute["idle_stop_at"] == 1_300.0
    assert compute["stopped_at"] is None


@pytest.mark.parametrize("busy", ["queued", "inflight"])
def test_no_idle_deadline_while_answers_run_or_wait(queue: RedisQueue, busy: str) -> None:
    clock = beat(queue, idle_since=1_000.0, idle_timeout_s=300, inflight=1 if busy == "inflight" else 0)
    a = api(queue, StoppedAt("running"), clock)
    if busy == "queued":
        assert a.call("POST", "/prompts", {"messages": [{"role": "user", "content": "hi"}]})[0] == 202
    assert status(a)["idle_stop_at"] is None


def test_no_idle_deadline_for_a_worker_that_never_idles_out_or_does_not_say(queue: RedisQueue) -> None:
    assert status(api(queue, StoppedAt("running"), beat(queue, idle_since=1_000.0, idle_timeout_s=0))
                  )["idle_stop_at"] is None
    assert status(api(queue, StoppedAt("running"), beat(queue)))["idle_stop_at"] is None


def test_a_stopped_gpu_says_when_it_stopped(queue: RedisQueue) -> None:
    compute = status(api(queue, StoppedAt("stopped")))
    assert compute["state"] == "stopped"
    assert compute["stopped_at"] == STOPPED_AT and compute["idle_stop_at"] is None


def test_the_configured_engine_and_context_are_named_before_any_worker_runs(queue: RedisQueue) -> None:
    compute = status(api(queue, StoppedAt("stopped"), engine="llamacpp", model="tinyllama-q4",
                         context_tokens=512))
    assert (compute["engine"], compute["model"], compute["context_tokens"]) == ("llamacpp", "tinyllama-q4", 512)


def test_the_policy_reads_only_a_live_beat() -> None:
    assert idle_stop_at(None, 0) is None
    assert idle_stop_at({"idle_since": 10.0, "idle_timeout_s": 5}, 1) is None  # a job waits
    assert idle_stop_at({"idle_since": 10.0, "idle_timeout_s": 5}, 0) == 15.0


# -- max_tokens fits the context ----------------------------------------------------------

def prompt(chars: int, max_tokens: int) -> object:
    return parse_prompt({"messages": [{"role": "user", "content": "x" * chars}], "max_tokens": max_tokens})


def test_max_tokens_is_capped_to_the_room_the_conversation_leaves() -> None:
    asked = prompt(300, 1024)
    fitted = fit_context(asked, 512)  # type: ignore[arg-type]
    assert fitted.max_tokens == 512 - estimate_prompt_tokens_high(fitted.messages)
    assert 0 < fitted.max_tokens < 512 - 100  # 300 characters are at least 60 tokens
    assert fitted.messages == asked.messages  # type: ignore[attr-defined]


def test_max_tokens_that_fits_is_left_alone_and_no_context_means_no_cap() -> None:
    assert fit_context(prompt(30, 64), 512).max_tokens == 64  # type: ignore[arg-type]
    assert fit_context(prompt(30, 4096), None).max_tokens == 4096  # type: ignore[arg-type]


def test_a_conversation_that_fills_the_context_is_still_refused() -> None:
    with pytest.raises(PayloadTooLarge) as refused:
        fit_context(prompt(2600, 16), 512)  # type: ignore[arg-type]
    assert refused.value.code == "context_too_long"


def test_when_only_the_low_estimate_leaves_room_the_answer_gets_that_room() -> None:
    # 1,500 characters: 300 tokens at the low estimate, 500 + template at the high one.
    fitted = fit_context(prompt(1500, 1024), 512)  # type: ignore[arg-type]
    assert fitted.max_tokens == 512 - 304


def test_the_router_queues_the_capped_max_tokens(queue: RedisQueue) -> None:
    clock = beat(queue)
    a = api(queue, StoppedAt("running"), clock, context_tokens=512)
    code, body = a.call("POST", "/prompts", {"messages": [{"role": "user", "content": "hello"}], "max_tokens": 1024})
    assert code == 202, body
    params = json.loads(queue.r.hget(queue.key("req", body["request_id"]), "params"))
    assert params["max_tokens"] == 512 - estimate_prompt_tokens_high([{"role": "user", "content": "hello"}])
