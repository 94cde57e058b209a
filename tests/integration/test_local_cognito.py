"""`tinyllama local` with Cognito: the JWT authorizer's rules against moto's user pool.

Two real users of one pool sign in (USER_PASSWORD_AUTH against moto's server) and talk to
the gateway over real HTTP: each sees only their own prompts.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests

from backend.entrypoints.local import LocalStack
from tests.fixtures.aws import REGION, aws_env, make_cognito_user, moto_server, sign_in  # noqa: F401
from tests.helpers import wait_until


@pytest.fixture
def users_and_stack(aws_env: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[dict, dict, LocalStack]]:  # noqa: F811
    # The standard override: the verifier fetches the pool's JWKS from moto, unmodified.
    monkeypatch.setenv("AWS_ENDPOINT_URL_COGNITO_IDENTITY_PROVIDER", aws_env)
    alice = make_cognito_user(aws_env)
    bob = make_cognito_user(aws_env, pool_id=alice.pool_id)
    # Bob signs in through Alice's app client: same pool, same client, another `sub`.
    bob = bob._replace(client_id=alice.client_id)
    stack = LocalStack(port=0, echo_delay_s=0.0, cognito=(REGION, alice.pool_id, alice.client_id)).start()
    try:
        yield sign_in(aws_env, alice), sign_in(aws_env, bob), stack
    finally:
        stack.stop()


def _h(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_owner_sees_the_answer_and_another_user_gets_404(users_and_stack: tuple[dict, dict, LocalStack]) -> None:
    alice, bob, stack = users_and_stack
    body = {"messages": [{"role": "user", "content": "only for alice"}]}
    r = requests.post(f"{stack.url}/prompts", json=body, headers=_h(alice["AccessToken"]), timeout=10)
    assert r.status_code == 202, r.text
    rid = r.json()["request_id"]

    def alice_done() -> bool:
        got = requests.get(f"{stack.url}/prompts/{rid}", headers=_h(alice["AccessToken"]), timeout=10).json()
        return got["status"] == "done" and got["text"] == "only for alice"

    wait_until(alice_done, 20, message="alice's answer")
    for method in ("GET", "DELETE"):
        other = requests.request(method, f"{stack.url}/prompts/{rid}", headers=_h(bob["AccessToken"]), timeout=10)
        assert other.status_code == 404
        assert other.json()["error"]["code"] == "not_found"
        assert "only for alice" not in other.text


def test_id_token_and_garbage_are_refused(users_and_stack: tuple[dict, dict, LocalStack]) -> None:
    alice, _bob, stack = users_and_stack
    for token in (alice["IdToken"], alice["AccessToken"][:-4] + "AAAA", "x.y.z"):
        r = requests.get(f"{stack.url}/status", headers=_h(token), timeout=10)
        assert r.status_code == 401
    assert requests.get(f"{stack.url}/status", headers=_h(alice["AccessToken"]), timeout=10).status_code == 200


def test_unreachable_user_pool_keys_are_a_503_not_a_dropped_connection(aws_env: str) -> None:  # noqa: F811
    # No endpoint override: the real Cognito JWKS URL, which this machine cannot reach.
    user = make_cognito_user(aws_env)
    token = sign_in(aws_env, user)["AccessToken"]
    with LocalStack(port=0, cognito=(REGION, user.pool_id, user.client_id)) as stack:
        r = requests.get(f"{stack.url}/status", headers=_h(token), timeout=30)
    assert r.status_code == 503
    assert r.json()["error"]["message"]
