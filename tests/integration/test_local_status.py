"""The local stack's `/status` through its real gateway: when the idle worker will stop,
when it stopped, and the engine it runs named before any worker has (issue 13 §5)."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from backend.entrypoints.local import LocalStack
from tests.helpers import wait_until
from tests.integration.test_local_stack import Client

IDLE_S = 1.5


@pytest.fixture
def stack() -> Iterator[LocalStack]:
    stack = LocalStack(port=0, echo_delay_s=0.0, claim_idle_s=1.0, heartbeat_s=0.2,
                       idle_timeout_s=IDLE_S).start()
    try:
        yield stack
    finally:
        stack.stop()


def test_status_says_when_the_idle_worker_stops_and_when_it_stopped(stack: LocalStack) -> None:
    client = Client(stack)
    first = client.status()["compute"]
    assert first["state"] == "stopped" and first["stopped_at"] is None  # never ran: not known
    assert first["engine"] == "echo" and first["idle_stop_at"] is None

    before = time.time()
    done = client.wait_status(client.post("hi").json()["request_id"], "done")
    finished = time.time()
    assert done["status"] == "done"
    ready = wait_until(lambda: (c := client.status()["compute"])["state"] == "ready" and c, 10,
                       message="the worker to be ready")
    # The worker's last activity (the answer's end) plus its idle timeout.
    assert before + IDLE_S - 0.2 <= ready["idle_stop_at"] <= finished + IDLE_S + 0.2

    stopped = wait_until(lambda: (c := client.status()["compute"])["state"] == "stopped" and c, 15,
                         message="the idle worker to stop")
    assert stopped["idle_stop_at"] is None
    # It stopped when it said it would (its check runs each heartbeat; the supervisor notes it).
    assert ready["idle_stop_at"] - 0.5 <= stopped["stopped_at"] <= ready["idle_stop_at"] + 2.0


def test_a_llamacpp_stack_names_its_model_before_the_first_prompt(tiny_gguf) -> None:  # type: ignore[no-untyped-def]
    stack = LocalStack(port=0, engine="llamacpp", model=str(tiny_gguf)).start()
    try:
        status = Client(stack).status()
        assert status["worker"] is None
        assert (status["compute"]["engine"], status["compute"]["model"]) == ("llamacpp", "tiny-llama")
        assert status["compute"]["context_tokens"] == 512
    finally:
        stack.stop()
