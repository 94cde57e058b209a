"""The whole local stack over real HTTP: gateway → router → real redis-server → worker process.

Nothing is faked here: the worker is a real child process, so killing it with SIGKILL is
a real crash, and stopping redis-server is a real outage.
"""

from __future__ import annotations

import os
import signal
import socket
import time
from collections.abc import Iterator

import pytest
import requests

from backend.core.prompts import parse_prompt
from backend.entrypoints.gateway import LOCAL_SUB
from backend.entrypoints.local import LOCAL_WAKE_GUESS_S, LocalStack
from tests.helpers import wait_until

LONG = " ".join(f"w{i}" for i in range(400))


class Client:
    """A thin HTTP client for the tests (the desktop's own client is tested elsewhere)."""

    def __init__(self, stack: LocalStack, token: str | None = None):
        self.url = stack.url
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {token or stack.token}"

    def post(self, content: str = "hello world", **extra: object) -> requests.Response:
        body = {"messages": [{"role": "user", "content": content}], **extra}
        return self.session.post(f"{self.url}/prompts", json=body, timeout=10)

    def get(self, request_id: str) -> dict:
        r = self.session.get(f"{self.url}/prompts/{request_id}", timeout=10)
        assert r.status_code == 200, r.text
        return r.json()

    def status(self) -> dict:
        r = self.session.get(f"{self.url}/status", timeout=10)
        assert r.status_code == 200, r.text
        return r.json()

    def wait_status(self, request_id: str, *statuses: str, timeout: float = 20.0) -> dict:
        return wait_until(lambda: (j := self.get(request_id))["status"] in statuses and j,
                          timeout, message=f"{request_id} to reach {statuses}")


def _stack(**kwargs: object) -> Iterator[LocalStack]:
    stack = LocalStack(port=0, **kwargs).start()  # type: ignore[arg-type]
    try:
        yield stack
    finally:
        stack.stop()


@pytest.fixture
def stack() -> Iterator[LocalStack]:
    yield from _stack(echo_delay_s=0.0, claim_idle_s=1.0, heartbeat_s=0.2)


@pytest.fixture
def slow_stack() -> Iterator[LocalStack]:
    """Echo at 20 ms a word: an answer of 400 words takes ~8 s, long enough to interrupt."""
    yield from _stack(echo_delay_s=0.02, claim_idle_s=1.0, heartbeat_s=0.2)


def test_first_prompt_wakes_the_worker_and_the_answer_arrives(stack: LocalStack) -> None:
    client = Client(stack)
    assert client.status()["compute"]["state"] == "stopped"

    r = client.post("the quick brown fox")
    assert r.status_code == 202
    accepted = r.json()
    assert accepted["status"] == "waking"
    assert accepted["compute"]["state"] in ("starting", "loading_model")

    done = client.wait_status(accepted["request_id"], "done")
    assert done["text"] == "the quick brown fox"
    assert done["usage"]["completion_tokens"] == 4
    assert done["timings"]["wake_s"] is not None and done["timings"]["total_s"] >= done["timings"]["wake_s"]

    status = client.status()
    assert status["compute"]["state"] == "ready"
    assert status["compute"]["eta_s"] == 0
    assert status["compute"]["wakes_measured"] == 1
    assert status["worker"]["engine"] == "echo"


def test_wrong_token_is_401_before_the_router(stack: LocalStack) -> None:
    r = Client(stack, token="not-the-token").post()
    assert r.status_code == 401
    assert r.json() == {"message": "Unauthorized"}  # what API Gateway's authorizer answers


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        (b"{not json", 400, "malformed_json"),
        (b"", 400, "empty_body"),
        (b'{"messages": []}', 422, "invalid_request"),
        (b'{"messages": [{"role": "user", "content": "x"}], "max_tokens": 99999}', 422, "invalid_request"),
        (b"\xff\xfe\x00garbage", 400, None),
        (b'{"messages": [{"role": "user", "content": "' + b"a" * 300_000 + b'"}]}', 413, "payload_too_large"),
    ],
)
def test_bad_bodies_get_specific_4xx_never_500(stack: LocalStack, body: bytes, status: int, code: str | None) -> None:
    r = requests.post(f"{stack.url}/prompts", data=body, timeout=10,
                      headers={"Authorization": f"Bearer {stack.token}", "Content-Type": "application/json"})
    assert r.status_code == status, r.text
    error = r.json()["error"]
    assert error["message"]
    if code:
        assert error["code"] == code
    assert "Traceback" not in r.text


def test_idempotent_retry_makes_one_job(stack: LocalStack) -> None:
    client = Client(stack)
    first = client.post("once only", idempotency_key="retry-key-0001").json()
    again = client.post("once only", idempotency_key="retry-key-0001").json()
    assert again["request_id"] == first["request_id"]
    client.wait_status(first["request_id"], "done")
    assert stack.queue is not None
    # The one entry is acknowledged and removed right after the answer is marked done (the
    # worker's next call), so wait for it rather than race it.
    queue = stack.queue
    wait_until(lambda: queue.r.xlen(queue.stream) == 0, 5, message="the entry to be acknowledged")
    assert len(list(stack.queue.r.scan_iter(match=stack.queue.key("req", "*")))) == 1


def test_cancel_stops_generation(slow_stack: LocalStack) -> None:
    client = Client(slow_stack)
    rid = client.post(LONG).json()["request_id"]
    wait_until(lambda: len(client.get(rid)["text"]) > 20, 20, message="some text")
    r = client.session.delete(f"{slow_stack.url}/prompts/{rid}", timeout=10)
    assert r.status_code == 200 and r.json()["status"] == "cancelled"

    # The worker notices on its next write and the engine stops: usage is written when it does.
    final = wait_until(lambda: (j := client.get(rid))["usage"] and j, 10, message="usage after cancel")
    assert final["status"] == "cancelled"
    assert final["usage"]["completion_tokens"] < 400


def test_worker_killed_mid_answer_is_reclaimed_and_completes(slow_stack: LocalStack) -> None:
    client = Client(slow_stack)
    rid = client.post(LONG).json()["request_id"]
    wait_until(lambda: len(client.get(rid)["text"]) > 20, 20, message="the answer to start")
    assert slow_stack.compute is not None
    (worker_pid,) = slow_stack.compute.pids
    os.kill(worker_pid, signal.SIGKILL)

    # Polling notices the machine is gone and wakes it; the new worker reclaims the job
    # after CLAIM_IDLE_S and answers from the start.
    done = client.wait_status(rid, "done", timeout=40)
    assert done["text"] == LONG
    assert slow_stack.compute.pids and slow_stack.compute.pids[0] != worker_pid


def test_redis_restart_gives_a_clear_error_then_recovers(stack: LocalStack) -> None:
    client = Client(stack)
    client.wait_status(client.post("warm up").json()["request_id"], "done")
    assert stack.redis is not None
    stack.redis.stop()

    r = client.post("while redis is down")
    assert r.status_code == 503
    assert r.json()["error"]["code"] == "unavailable"
    assert "restarting" in r.json()["error"]["message"]

    stack.redis.start()  # same port and password, empty: nothing was persisted
    rid = wait_until(lambda: (r := client.post("after the restart")).status_code == 202 and r.json()["request_id"],
                     10, message="the router to accept prompts again")
    assert client.wait_status(rid, "done", timeout=30)["text"] == "after the restart"


def test_budget_guard_refuses_to_wake() -> None:
    with LocalStack(port=0, spend_usd=25.0, hard_cap_usd=20.0) as stack:
        client = Client(stack)
        r = client.post()
        assert r.status_code == 403
        assert r.json()["error"]["code"] == "budget_exceeded"
        status = client.status()
        assert status["compute"]["state"] == "stopped"  # nothing was started
        assert status["queue_depth"] == 0  # nothing was queued
        assert status["budget"]["state"] == "exceeded"


def test_idle_worker_stops_and_the_next_prompt_wakes_it() -> None:
    with LocalStack(port=0, idle_timeout_s=0.5, heartbeat_s=0.1) as stack:
        client = Client(stack)
        client.wait_status(client.post("first").json()["request_id"], "done")
        wait_until(lambda: client.status()["compute"]["state"] == "stopped", 15, message="idle stop")
        assert stack.compute is not None and stack.compute.pids == []

        accepted = client.post("second").json()
        assert accepted["status"] == "waking"
        assert client.wait_status(accepted["request_id"], "done")["text"] == "second"
        assert client.status()["compute"]["wakes_measured"] == 2


def test_stop_leaves_no_process_behind() -> None:
    stack = LocalStack(port=0).start()
    client = Client(stack)
    client.wait_status(client.post("x").json()["request_id"], "done")
    assert stack.compute is not None and stack.redis is not None and stack.redis.proc is not None
    pids = [*stack.compute.pids, stack.redis.proc.pid]
    assert len(pids) == 2
    stack.stop()
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


def test_redis_killed_is_restarted_with_its_data_and_the_api_is_back_within_5_s(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with LocalStack(port=0, data_dir=str(tmp_path), echo_delay_s=0.0, claim_idle_s=1.0, heartbeat_s=0.2) as stack:
        client = Client(stack)
        client.wait_status(client.post("warm up").json()["request_id"], "done")
        assert stack.queue is not None and stack.redis is not None and stack.redis.proc is not None
        # A job waiting in the queue (no worker will take it before the crash: written directly).
        queued, _ = stack.queue.submit(LOCAL_SUB, parse_prompt({"messages": [{"role": "user",
                                                                              "content": "kept on disk"}]}))
        port, old = stack.redis.port, stack.redis.proc

        killed = time.monotonic()
        os.kill(old.pid, signal.SIGKILL)
        old.wait()
        codes = []

        def back() -> bool:
            codes.append(requests.get(f"{stack.url}/status", timeout=5,
                                      headers={"Authorization": f"Bearer {stack.token}"}).status_code)
            return codes[-1] == 200

        wait_until(back, 5, message="the API to answer again")
        recovered_s = time.monotonic() - killed
        print(f"redis killed -> API back: {recovered_s * 1000:.0f} ms")
        assert set(codes) <= {200, 503}  # while it is down the API says so, never a 500
        wait_until(lambda: stack.redis_restarts == 1, 5, message="the supervisor to finish the restart")
        assert stack.redis.port == port and stack.redis.proc is not old
        assert stack.queue.r.hget(stack.queue.key("req", queued), "status") is not None  # the append-only file kept it
        assert client.wait_status(queued, "done", timeout=30)["text"] == "kept on disk"


def test_while_redis_is_down_the_api_says_so_at_once_and_is_back_as_soon_as_redis_is(stack: LocalStack) -> None:
    """A request during the outage is a prompt 503, not one held for redis-py's default
    retries (about 5 s in 8.x), which also kept the API from answering once Redis was back."""
    assert stack.redis is not None and stack.redis.proc is not None
    headers = {"Authorization": f"Bearer {stack.token}"}
    stack.redis.stopped = True  # hold the supervisor off: Redis stays down
    stack.redis.proc.kill()
    stack.redis.proc.wait()
    started = time.monotonic()
    reply = requests.get(f"{stack.url}/status", headers=headers, timeout=10)
    took = time.monotonic() - started
    assert reply.status_code == 503 and reply.json()["error"]["code"] == "unavailable"
    assert took < 1.5, f"the 503 took {took:.1f} s"

    stack.redis.stopped = False  # "it died": the supervisor restarts it
    wait_until(lambda: stack.redis_restarts == 1, 5, message="the supervisor to restart Redis")
    restarted = time.monotonic()
    assert requests.get(f"{stack.url}/status", headers=headers, timeout=10).status_code == 200
    assert time.monotonic() - restarted < 1.5


def test_measured_wakes_persist_across_restarts_of_the_stack(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with LocalStack(port=0, data_dir=str(tmp_path), echo_delay_s=0.0, heartbeat_s=0.2) as first:
        client = Client(first)
        client.wait_status(client.post("wake up").json()["request_id"], "done")
        assert client.status()["compute"]["wakes_measured"] == 1
        assert first.queue is not None
        (wake,) = first.queue.wake_history()
        measured = wake["ready"] - wake["requested"]
    assert measured != LOCAL_WAKE_GUESS_S

    with LocalStack(port=0, data_dir=str(tmp_path), echo_delay_s=0.0, heartbeat_s=0.2) as second:
        status = Client(second).status()
        assert status["compute"]["state"] == "stopped"
        assert status["compute"]["wakes_measured"] == 1
        assert status["compute"]["eta_s"] == pytest.approx(measured, abs=0.5)
        assert status["compute"]["eta_s"] != LOCAL_WAKE_GUESS_S


def test_a_failed_redis_restart_is_retried_until_it_works(stack: LocalStack) -> None:
    assert stack.redis is not None and stack.redis.proc is not None
    stack.redis.stopped = True  # hold the supervisor off while the port is taken from it
    stack.redis.proc.kill()
    stack.redis.proc.wait()
    squatter = socket.socket()
    squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    squatter.bind(("127.0.0.1", stack.redis.port))
    squatter.listen()
    try:
        stack.redis.stopped = False  # "it died": the supervisor tries, and the port is busy
        wait_until(lambda: stack._restart_failures >= 2, 10, message="failed restarts")
        assert stack.redis_restarts == 0
    finally:
        squatter.close()
    wait_until(lambda: stack.redis_restarts == 1, 10, message="the restart once the port is free")
    client = Client(stack)
    assert client.wait_status(client.post("back").json()["request_id"], "done")["text"] == "back"


def test_a_terminal_runs_measured_wakes_are_kept_for_the_next_run(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """`tinyllama local` keeps no data, but its wakes file carries the measured wakes to the
    next run, so the first ETA of a launch is a real one (a vLLM start is 40-60 s, not 3)."""
    wakes = str(tmp_path / "wakes.json")
    with LocalStack(port=0, wakes_file=wakes, echo_delay_s=0.0, heartbeat_s=0.2) as first:
        client = Client(first)
        client.wait_status(client.post("wake up").json()["request_id"], "done")
        assert first.queue is not None
        (wake,) = first.queue.wake_history()
        measured = wake["ready"] - wake["requested"]
    assert measured != LOCAL_WAKE_GUESS_S

    with LocalStack(port=0, wakes_file=wakes, echo_delay_s=0.0, heartbeat_s=0.2) as second:
        compute = Client(second).status()["compute"]
        assert compute["wakes_measured"] == 1
        assert compute["eta_s"] == pytest.approx(measured, abs=0.5)

    # Another engine's wakes say nothing of this one's: it starts from the guess.
    with LocalStack(port=0, wakes_file=wakes, engine="openai", engine_url="http://127.0.0.1:9/v1") as other:
        compute = Client(other).status()["compute"]
        assert compute["wakes_measured"] == 0
        assert compute["eta_s"] == LOCAL_WAKE_GUESS_S


def test_a_kept_redis_forgets_the_wakes_of_another_engine(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """The service's Redis outlives a change of engine (echo → vLLM): its old wakes must not
    set the new engine's ETA."""
    with LocalStack(port=0, data_dir=str(tmp_path), echo_delay_s=0.0, heartbeat_s=0.2) as first:
        client = Client(first)
        client.wait_status(client.post("wake up").json()["request_id"], "done")
        assert client.status()["compute"]["wakes_measured"] == 1
    with LocalStack(port=0, data_dir=str(tmp_path), engine="openai", engine_url="http://127.0.0.1:9/v1") as second:
        assert Client(second).status()["compute"]["wakes_measured"] == 0
