"""The caller-identity rules of `backend.core.identity`, the one place router and verifier share."""

from __future__ import annotations

from typing import Any

import pytest

from backend.adapters import jwt_verify
from backend.core import identity
from backend.core.errors import Forbidden, Unauthorized
from backend.entrypoints.router import Identity

SCOPE = "tinyllama/prompts"
GOOD = {"sub": "alice", "token_use": "access", "scope": f"openid {SCOPE}"}


def test_a_good_access_token_gives_its_sub() -> None:
    assert identity.caller(GOOD, SCOPE) == "alice"
    assert identity.caller({**GOOD, "scope": ["openid", SCOPE]}, SCOPE) == "alice"
    assert identity.caller({"sub": "bob", "token_use": "access"}) == "bob"  # no scope required


@pytest.mark.parametrize(
    ("claims", "message"),
    [
        (None, identity.MSG_NO_IDENTITY),
        ({**GOOD, "sub": ""}, identity.MSG_NO_IDENTITY),
        ({**GOOD, "sub": 12345}, identity.MSG_NO_IDENTITY),
        ({**GOOD, "token_use": "id"}, identity.MSG_ID_ON_ACCESS),
        ({**GOOD, "token_use": "ACCESS"}, identity.MSG_TOKEN_USE.format(want="access")),
        ({k: v for k, v in GOOD.items() if k != "token_use"}, identity.MSG_TOKEN_USE.format(want="access")),
    ],
)
def test_no_identity_or_the_wrong_token_is_401(claims: Any, message: str) -> None:
    with pytest.raises(Unauthorized) as info:
        identity.caller(claims, SCOPE)
    assert type(info.value) is Unauthorized
    assert (info.value.status, info.value.message) == (401, message)


@pytest.mark.parametrize("scope", ["", "openid", f"{SCOPE}:read", 7, None, {"s": SCOPE}])
def test_a_missing_scope_is_403_insufficient_scope(scope: Any) -> None:
    with pytest.raises(Forbidden) as info:
        identity.caller({**GOOD, "scope": scope}, SCOPE)
    assert (info.value.status, info.value.code) == (403, "insufficient_scope")
    assert info.value.message == identity.MSG_SCOPE.format(scope=SCOPE)
    # Whatever refuses an unverified caller (the gateway catches Unauthorized) refuses this too.
    assert isinstance(info.value, Unauthorized)


def test_router_and_verifier_use_the_same_rules() -> None:
    # The verifier re-exports the core's messages: one wording, whichever side refuses.
    assert jwt_verify.MSG_ID_ON_ACCESS is identity.MSG_ID_ON_ACCESS
    assert jwt_verify.MSG_SCOPE is identity.MSG_SCOPE
    event = {"requestContext": {"authorizer": {"jwt": {"claims": {**GOOD, "token_use": "id"}}}}}
    with pytest.raises(Unauthorized) as info:
        Identity(None, SCOPE).owner(event)
    assert info.value.message == identity.MSG_ID_ON_ACCESS
