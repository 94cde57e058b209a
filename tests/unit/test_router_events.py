"""The router as the Lambda sees it: API Gateway HTTP API payload v2.0 events through
`create_app(...).resolve`, with the real PromptService over a real Redis queue and a small
fake compute. Every refusal is checked for its status and code, and no bad input may get a
500."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest

from backend.adapters.redis_queue import RedisQueue
from backend.adapters.spend import StaticSpend
from backend.core.jobs import JobStatus
from backend.core.ports import ComputeState, MachineStatus
from backend.core.prompts import MAX_BODY_BYTES
from backend.core.service import Budget, PromptService
from backend.entrypoints import router
from backend.entrypoints.gateway import make_event
from backend.entrypoints.router import Identity, create_app
from tests.unit.test_contract import validator

SCOPE = "tinyllama/prompts"
ALICE = {"sub": "alice-sub", "token_use": "access", "scope": f"openid {SCOPE}"}
BOB = {"sub": "bob-sub", "token_use": "access", "scope": SCOPE}
BODY = {"messages": [{"role": "user", "content": "hello"}]}


class FakeCompute:
    """A machine whose state the test sets; `start` is counted and makes it 'pending'."""

    def __init__(self, state: str = "running"):
        self.state = state
        self.starts = 0
        self.stops = 0

    def describe(self) -> MachineStatus:
        return MachineStatus(self.state, instance_type="g4dn.xlarge", since=time.time() - 5)

    def start(self) -> str:
        self.starts += 1
        if self.state == "stopped":
            self.state = "pending"
        return "start requested"

    def stop(self) -> str:
        self.stops += 1
        self.state = "stopped"
        return "stopped"


def event(method: str, path: str, body: Any = None, claims: dict[str, Any] | None = ALICE,
          headers: dict[str, str] | None = None) -> dict[str, Any]:
    if body is None:
        raw = b""
    elif isinstance(body, bytes):
        raw = body
    elif isinstance(body, str):
        raw = body.encode()
    else:
        raw = json.dumps(body).encode()
    return make_event(method, path, {"content-type": "application/json", **(headers or {})}, raw,
                      dict(claims) if claims is not None else None, "198.51.100.7")


class Api:
    """The resolver plus the parts behind it, for assertions."""

    def __init__(self, queue: RedisQueue, compute: FakeCompute, service: PromptService, identity: Identity):
        self.queue, self.compute, self.service = queue, compute, service
        self.app = create_app(service, identity)

    def call(self, method: str, path: str, body: Any = None, claims: dict[str, Any] | None = ALICE,
             headers: dict[str, str] | None = None) -> tuple[int, Any]:
        result = self.app.resolve(event(method, path, body, claims, headers), None)
        return result["statusCode"], json.loads(result["body"])


def make_api(queue: RedisQueue, compute: FakeCompute | None = None, *, spend: float | None = None,
             budget: Budget | None = None, scope: str | None = SCOPE) -> Api:
    compute = compute or FakeCompute()
    service = PromptService(queue, compute, StaticSpend(spend), budget or Budget())
    return Api(queue, compute, service, Identity(required_scope=scope))


def worker_ready(queue: RedisQueue) -> None:
    """A fresh heartbeat of a ready worker: with a running machine, compute is 'ready'."""
    queue.heartbeat("w-test", {"engine": "echo", "ready": True, "inflight": 0}, ttl_s=60)


@pytest.fixture
def api(queue: RedisQueue) -> Api:
    worker_ready(queue)
    return make_api(queue)


def assert_error(status: int, body: Any, want_status: int, want_code: str) -> None:
    assert status == want_status, body
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}
    assert body["error"]["code"] == want_code
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]


# -- the happy path, against the contract's schemas -------------------------------------------


def test_submit_read_cancel_and_status_follow_the_contract(api: Api) -> None:
    status, accepted = api.call("POST", "/prompts", BODY)
    assert status == 202
    validator("Accepted").validate(accepted)
    assert accepted["status"] == JobStatus.QUEUED and accepted["compute"]["state"] == ComputeState.READY
    rid = accepted["request_id"]
    assert api.queue.depth() == 1

    status, job = api.call("GET", f"/prompts/{rid}")
    assert status == 200
    validator("Prompt").validate(job)
    assert job["request_id"] == rid and job["status"] == JobStatus.QUEUED

    status, job = api.call("DELETE", f"/prompts/{rid}")
    assert status == 200
    validator("Prompt").validate(job)
    assert job["status"] == JobStatus.CANCELLED

    status, body = api.call("GET", "/status")
    assert status == 200
    validator("Status").validate(body)
    assert body["queue_depth"] == 1  # cancelled but not yet acknowledged by a worker


def test_retried_post_with_an_idempotency_key_is_one_job(api: Api) -> None:
    body = {**BODY, "idempotency_key": "client-retry-42"}
    _, first = api.call("POST", "/prompts", body)
    _, second = api.call("POST", "/prompts", body)
    assert first["request_id"] == second["request_id"]
    assert api.queue.depth() == 1


def test_a_retry_after_the_answer_is_done_says_done(api: Api) -> None:
    body = {**BODY, "idempotency_key": "client-retry-43"}
    _, first = api.call("POST", "/prompts", body)
    assert api.queue.transition(first["request_id"], JobStatus.RUNNING) == "OK"
    assert api.queue.transition(first["request_id"], JobStatus.DONE, text="hi") == "OK"
    status, again = api.call("POST", "/prompts", body)
    assert status == 202 and again["request_id"] == first["request_id"]
    assert again["status"] == "done"  # not "queued": nothing was queued by the retry


# -- identity ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "claims",
    [
        None,
        {},
        {"token_use": "access", "scope": SCOPE},
        {"sub": "", "token_use": "access", "scope": SCOPE},
        {**ALICE, "token_use": "id"},
        {"sub": "alice-sub", "scope": SCOPE},
        {**ALICE, "token_use": "ACCESS"},
    ],
    ids=["no-claims", "empty", "no-sub", "empty-sub", "id-token", "no-token-use", "token-use-case"],
)
@pytest.mark.parametrize(("method", "path"), [("POST", "/prompts"), ("GET", "/status"),
                                              ("GET", "/prompts/" + "a" * 32), ("DELETE", "/prompts/" + "a" * 32)])
def test_bad_identity_is_401(api: Api, claims: Any, method: str, path: str) -> None:
    assert_error(*api.call(method, path, BODY, claims=claims), 401, "unauthorized")
    assert api.queue.depth() == 0


@pytest.mark.parametrize("scope", ["", "openid", "tinyllama/prompts:read", "tinyllama", "openid profile"])
def test_missing_scope_is_403_when_required(api: Api, scope: str) -> None:
    assert_error(*api.call("POST", "/prompts", BODY, claims={**ALICE, "scope": scope}), 403, "insufficient_scope")
    assert api.queue.depth() == 0


def test_scope_is_not_needed_when_not_required(queue: RedisQueue) -> None:
    worker_ready(queue)
    api = make_api(queue, scope=None)
    status, _ = api.call("POST", "/prompts", BODY, claims={"sub": "carol", "token_use": "access"})
    assert status == 202


def test_scope_given_as_a_list_is_understood(api: Api) -> None:
    status, _ = api.call("POST", "/prompts", BODY, claims={**ALICE, "scope": ["openid", SCOPE]})
    assert status == 202


# -- ownership and ids --------------------------------------------------------------------------


def test_another_owner_gets_404_for_read_and_cancel(api: Api) -> None:
    _, accepted = api.call("POST", "/prompts", BODY, claims=ALICE)
    rid = accepted["request_id"]
    assert_error(*api.call("GET", f"/prompts/{rid}", claims=BOB), 404, "not_found")
    assert_error(*api.call("DELETE", f"/prompts/{rid}", claims=BOB), 404, "not_found")
    status, job = api.call("GET", f"/prompts/{rid}", claims=ALICE)
    assert status == 200 and job["status"] == JobStatus.QUEUED  # Bob's cancel did nothing


def test_unknown_but_well_formed_id_is_404(api: Api) -> None:
    assert_error(*api.call("GET", "/prompts/" + "0" * 32), 404, "not_found")


@pytest.mark.parametrize("rid", ["abc", "0" * 31, "0" * 33, "Z" * 32, "A" * 32, "0" * 32 + "%0A", "%00"])
@pytest.mark.parametrize("method", ["GET", "DELETE"])
def test_malformed_request_id_is_404(api: Api, method: str, rid: str) -> None:
    assert_error(*api.call(method, f"/prompts/{rid}"), 404, "not_found")


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/"), ("GET", "/prompts"), ("PUT", "/prompts"), ("PATCH", "/status"), ("POST", "/status"),
     ("GET", "/nope"), ("GET", "/prompts/" + "a" * 32 + "/extra"), ("POST", "/prompts/" + "a" * 32)],
)
def test_unknown_route_is_404_no_route(api: Api, method: str, path: str) -> None:
    assert_error(*api.call(method, path, BODY), 404, "no_route")


# -- bodies ------------------------------------------------------------------------------------


@pytest.mark.parametrize("raw", ['{"messages": [', "hello", "{'a': 1}", b"\xff\xfe\x00junk"])
def test_malformed_body_is_400(api: Api, raw: Any) -> None:
    status, body = api.call("POST", "/prompts", raw)
    assert status == 400, body
    assert body["error"]["code"] in ("malformed_json", "invalid_request")
    assert api.queue.depth() == 0


def test_malformed_json_code(api: Api) -> None:
    assert_error(*api.call("POST", "/prompts", '{"messages": ['), 400, "malformed_json")


def test_empty_body_is_400(api: Api) -> None:
    status, body = api.call("POST", "/prompts")
    assert status == 400 and "error" in body


def test_invalid_body_is_422(api: Api) -> None:
    assert_error(*api.call("POST", "/prompts", {**BODY, "max_tokens": 0}), 422, "invalid_request")
    assert api.queue.depth() == 0


def test_oversized_body_is_413(api: Api) -> None:
    big = {"messages": [{"role": "user", "content": "x" * (MAX_BODY_BYTES + 1)}]}
    assert_error(*api.call("POST", "/prompts", big), 413, "payload_too_large")
    assert api.queue.depth() == 0


def test_oversized_echo_is_413(api: Api) -> None:
    assert_error(*api.call("POST", "/", "e" * (MAX_BODY_BYTES + 1), claims=None), 413, "payload_too_large")


# -- waking and the budget ----------------------------------------------------------------------


def test_over_budget_a_stopped_gpu_is_not_woken(queue: RedisQueue) -> None:
    api = make_api(queue, FakeCompute("stopped"), spend=25.0, budget=Budget(hard_cap_usd=20.0))
    assert_error(*api.call("POST", "/prompts", BODY), 403, "budget_exceeded")
    assert queue.depth() == 0
    assert api.compute.starts == 0
    assert queue.wake_current() == {}


def test_over_budget_a_ready_gpu_still_answers(queue: RedisQueue) -> None:
    worker_ready(queue)
    api = make_api(queue, FakeCompute("running"), spend=25.0, budget=Budget(hard_cap_usd=20.0))
    status, accepted = api.call("POST", "/prompts", BODY)
    assert status == 202 and accepted["compute"]["state"] == ComputeState.READY
    assert queue.depth() == 1 and api.compute.starts == 0
    _, body = api.call("GET", "/status")
    assert body["budget"]["state"] == "exceeded"


def test_under_budget_a_stopped_gpu_is_woken_once(queue: RedisQueue) -> None:
    api = make_api(queue, FakeCompute("stopped"), spend=5.0, budget=Budget(hard_cap_usd=20.0))
    status, accepted = api.call("POST", "/prompts", BODY)
    assert status == 202
    assert accepted["status"] == JobStatus.WAKING
    assert accepted["compute"]["state"] == ComputeState.STARTING and accepted["compute"]["eta_s"] > 0
    assert api.compute.starts == 1
    assert "requested" in queue.wake_current()
    api.call("POST", "/prompts", BODY)
    assert api.compute.starts == 1  # already starting: no second start
    assert queue.depth() == 2


# -- the MVP stack (no queue) --------------------------------------------------------------------


@pytest.fixture
def mvp_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in ("REDIS_URL", "REDIS_HOST", "COGNITO_USER_POOL_ID", "REQUIRED_SCOPE", "DATA_BUCKET",
                 "BUDGET_NAME", "ACCOUNT_ID"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("COMPUTE_KIND", "none")
    router._app_from_env.cache_clear()
    yield
    router._app_from_env.cache_clear()


def test_mvp_echoes(mvp_env: None) -> None:
    result = router.handler(event("POST", "/", "a prompt for the MVP", claims=None), None)
    assert result["statusCode"] == 200
    assert json.loads(result["body"])["echo"] == "a prompt for the MVP"


@pytest.mark.parametrize(("method", "path"), [("POST", "/prompts"), ("GET", "/status"),
                                              ("GET", "/prompts/" + "a" * 32), ("DELETE", "/prompts/" + "a" * 32)])
def test_mvp_has_no_queue(mvp_env: None, method: str, path: str) -> None:
    result = router.handler(event(method, path, BODY), None)
    assert_error(result["statusCode"], json.loads(result["body"]), 503, "no_queue")


# -- Redis away -----------------------------------------------------------------------------------


def test_redis_down_is_503_then_recovers(api: Api, redis_server: Any) -> None:
    redis_server.stop()
    for method, path, body in [("GET", "/status", None), ("POST", "/prompts", BODY),
                               ("GET", "/prompts/" + "a" * 32, None)]:
        status, payload = api.call(method, path, body)
        assert_error(status, payload, 503, "unavailable")
    redis_server.start()
    worker_ready(api.queue)
    assert api.call("POST", "/prompts", BODY)[0] == 202


# -- never a 500 -----------------------------------------------------------------------------------

_DEEP = "[" * 100_000 + "]" * 100_000
JUNK = [
    ("POST", "/prompts", b"\xff\xfe\xfd", ALICE),
    ("POST", "/prompts", "null", ALICE),
    ("POST", "/prompts", "[]", ALICE),
    ("POST", "/prompts", '"just a string"', ALICE),
    ("POST", "/prompts", "0", ALICE),
    ("POST", "/prompts", "NaN", ALICE),
    ("POST", "/prompts", _DEEP, ALICE),
    ("POST", "/prompts", '{"messages": ' + _DEEP + "}", ALICE),
    ("POST", "/prompts", '{"messages": [{"role": "user", "content": "x"}], "max_tokens": 1' + "0" * 5000 + "}", ALICE),
    ("POST", "/prompts", '{"messages": [{"role": "user", "content": "x"}], "temperature": 1e999}', ALICE),
    ("POST", "/prompts", '{"messages": [{"role": "user", "content": "x"}], "temperature": -Infinity}', ALICE),
    ("POST", "/prompts", '{"messages": [{"role": "user", "content": {"nested": true}}]}', ALICE),
    ("POST", "/prompts", '{"messages": [{"role": ["user"], "content": "x"}]}', ALICE),
    ("POST", "/prompts", '{"messages": [null]}', ALICE),
    ("POST", "/prompts", '{"messages": [{"role": "user", "content": "x"}], "model": {"a": 1}}', ALICE),
    ("POST", "/prompts", "\x00\x01\x02", ALICE),
    ("POST", "/prompts", "{" * 10 + "}" * 10, ALICE),
    ("POST", "/prompts", BODY, {"sub": 12345, "token_use": "access", "scope": SCOPE}),
    ("POST", "/prompts", BODY, {"sub": "x", "token_use": "access", "scope": 7}),
    ("POST", "/prompts", BODY, {"sub": ["a"], "token_use": ["access"], "scope": None}),
    ("POST", "/prompts", BODY, {"sub": "x", "token_use": "access", "scope": None}),
    ("POST", "/prompts", BODY, {"sub": "x", "token_use": "access", "scope": {"s": SCOPE}}),
    ("POST", "/prompts", '{"messages": [{"role": "user", "content": "\\ud800"}]}', ALICE),
    ("GET", "/prompts/%2e%2e%2fstatus", None, ALICE),
    ("GET", "/prompts/" + "a" * 10_000, None, ALICE),
    ("GET", "/prompts/" + "é" * 32, None, ALICE),
    ("GET", "//prompts", None, ALICE),
    ("DELETE", "/prompts", None, ALICE),
    ("OPTIONS", "/prompts", None, ALICE),
    ("HEAD", "/status", None, ALICE),
    ("TRACE", "/", None, None),
    ("POST", "/", b"\xff\xfe\xfd", None),
    ("POST", "/", _DEEP, None),
    ("GET", "/status?x=%ZZ&y", None, ALICE),
]


@pytest.mark.parametrize(("method", "path", "body", "claims"), JUNK, ids=[f"junk{i}" for i in range(len(JUNK))])
def test_bad_input_never_gets_a_500(api: Api, method: str, path: str, body: Any, claims: Any) -> None:
    result = api.app.resolve(event(method, path, body, claims), None)
    assert result["statusCode"] < 500, result
    assert "Traceback" not in (result.get("body") or "")
    if result["statusCode"] >= 400:
        payload = json.loads(result["body"])
        assert set(payload) == {"error"}
        assert isinstance(payload["error"]["code"], str) and isinstance(payload["error"]["message"], str)


@pytest.mark.parametrize(("method", "path"), [("POST", "/prompts"), ("POST", "/")])
def test_a_base64_flagged_body_that_is_not_base64_is_400(api: Api, method: str, path: str) -> None:
    bad = event(method, path, BODY, None if path == "/" else ALICE)
    bad["isBase64Encoded"], bad["body"] = True, "!!!x"
    result = api.app.resolve(bad, None)
    assert_error(result["statusCode"], json.loads(result["body"]), 400, "invalid_request")


class CountingCompute(FakeCompute):
    def __init__(self, state: str = "running"):
        super().__init__(state)
        self.describes = 0

    def describe(self) -> MachineStatus:
        self.describes += 1
        return super().describe()


def test_polls_reuse_a_young_machine_state_and_a_wake_refreshes_it(queue: RedisQueue) -> None:
    compute = CountingCompute("stopped")
    service = PromptService(queue, compute, StaticSpend(None), Budget(), describe_ttl_s=60.0)
    api = Api(queue, compute, service, Identity(required_scope=SCOPE))
    status, body = api.call("POST", "/prompts", BODY)
    assert status == 202 and compute.starts == 1
    # The wake dropped the cached 'stopped', so the answer already says it is starting.
    assert body["compute"]["state"] == "starting"
    described = compute.describes
    for _ in range(5):
        assert api.call("GET", f"/prompts/{body['request_id']}")[0] == 200
        assert api.call("GET", "/status")[0] == 200
    assert compute.describes == described  # ten polls, no further EC2 call
