"""Many requests at once never see each other: 40 threads, two Cognito users, every route.

The real local stack (gateway, router, redis-server, echo worker) in Cognito mode against
moto's user pool, over real HTTP. Powertools' resolver keeps per-request state on itself
(and the event on its class), so a gateway that shared one resolver answered a GET with
another prompt, cancelled another prompt, stored another request's messages, and handed
one user's identity to another user's request.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import requests

from backend.entrypoints.local import LocalStack
from tests.fixtures.aws import REGION, aws_env, make_cognito_user, moto_server, sign_in  # noqa: F401
from tests.helpers import wait_until

THREADS = 40
ROUNDS = 3
TERMINAL = {"done", "cancelled", "failed", "expired"}


@pytest.fixture
def two_users(aws_env: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[list[str], LocalStack]]:  # noqa: F811
    monkeypatch.setenv("AWS_ENDPOINT_URL_COGNITO_IDENTITY_PROVIDER", aws_env)
    alice = make_cognito_user(aws_env)
    bob = make_cognito_user(aws_env, pool_id=alice.pool_id)._replace(client_id=alice.client_id)
    tokens = [sign_in(aws_env, u)["AccessToken"] for u in (alice, bob)]
    with LocalStack(port=0, echo_delay_s=0.0, cognito=(REGION, alice.pool_id, alice.client_id)) as stack:
        yield tokens, stack


def test_forty_threads_two_users_every_answer_is_its_own(two_users: tuple[list[str], LocalStack]) -> None:
    tokens, stack = two_users
    url = stack.url
    latest: dict[int, str] = {}  # user → one of their request ids, for the other user to probe
    latest_lock = threading.Lock()
    problems: list[str] = []
    statuses: list[int] = []

    def check(cond: bool, what: str) -> None:
        if not cond:
            problems.append(what)

    def worker(i: int) -> None:
        user = i % 2
        session = requests.Session()
        session.headers["Authorization"] = f"Bearer {tokens[user]}"

        def call(method: str, path: str, **kw: Any) -> requests.Response:
            r = session.request(method, url + path, timeout=30, **kw)
            statuses.append(r.status_code)
            return r

        for j in range(ROUNDS):
            content = f"thread{i} round{j} user{user} " + " ".join(f"w{i}x{j}x{k}" for k in range(8))
            r = call("POST", "/prompts", json={"messages": [{"role": "user", "content": content}],
                                               "max_tokens": 64})
            check(r.status_code == 202, f"POST {i}/{j}: {r.status_code} {r.text}")
            if r.status_code != 202:
                continue
            rid = r.json()["request_id"]
            with latest_lock:
                other = latest.get(1 - user)
                latest[user] = rid

            got = call("GET", f"/prompts/{rid}")
            check(got.status_code == 200, f"own GET {rid}: {got.status_code} {got.text}")
            if got.status_code == 200:
                body = got.json()
                check(body["request_id"] == rid, f"GET {rid} answered {body['request_id']}")
                check(content.startswith(body["text"]), f"GET {rid} text {body['text']!r} is not of {content!r}")

            s = call("GET", "/status")
            check(s.status_code == 200 and "compute" in s.json(), f"status: {s.status_code} {s.text}")

            if other is not None:  # the other user's prompt: not found, whichever the method
                for method in ("GET", "DELETE"):
                    cross = call(method, f"/prompts/{other}")
                    check(cross.status_code == 404, f"user{user} {method} of the other's {other}: "
                                                    f"{cross.status_code} {cross.text}")

            if j % 2:
                d = call("DELETE", f"/prompts/{rid}")
                check(d.status_code == 200, f"DELETE {rid}: {d.status_code} {d.text}")
                if d.status_code == 200:
                    check(d.json()["request_id"] == rid, f"DELETE {rid} answered {d.json()['request_id']}")
                    check(content.startswith(d.json()["text"]), f"DELETE {rid} text of another prompt")
            else:  # let it finish: the stored messages must be this request's own
                def finished() -> dict[str, Any] | None:
                    # `rid` is bound per loop round; this runs before the next round.
                    r = call("GET", f"/prompts/{rid}")  # noqa: B023
                    if r.status_code != 200:  # a wrong answer, not a reason to wait
                        return {"http": r.status_code, "body": r.text}
                    b = r.json()
                    return b if b.get("status") in TERMINAL else None

                final = wait_until(finished, 60, interval=0.05, message=f"{rid} to finish")
                check(final.get("request_id") == rid and final.get("status") == "done"
                      and final.get("text") == content,
                      f"{rid} finished as {final}")
        session.close()

    with ThreadPoolExecutor(THREADS) as pool:
        list(pool.map(worker, range(THREADS)))

    assert not problems, f"{len(problems)} wrong answers, e.g. {problems[:5]}"
    assert len(statuses) > THREADS * ROUNDS * 4  # the threads really ran every route
    assert not [s for s in statuses if s >= 500]
    assert stack.gateway is not None
    assert not [s for s in stack.gateway.answered if s >= 500]
    # One resolver per request in flight at most, so never more than the connection threads.
    assert 1 < stack.gateway.resolvers_built <= stack.gateway.max_connections
