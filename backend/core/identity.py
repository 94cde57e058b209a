"""Who is calling: the rules a token's verified claims must meet, in one place.

The HTTP API's JWT authorizer checks signature, issuer, audience, expiry and the route's
scopes, but not `token_use` (DESIGN.md, "Cognito tokens"), so an id token would pass it.
The router (on claims the authorizer passed on) and the verifier (on tokens it checked
itself) both apply these rules, so the two can never disagree on who may call.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from backend.core.errors import Forbidden, Unauthorized

ACCESS = "access"

MSG_NO_IDENTITY = "Sign in first: this request carries no identity."
MSG_ID_ON_ACCESS = "This request needs an access token, but an id token was sent."
MSG_TOKEN_USE = "This request needs an {want} token, but the token sent is not one."
MSG_SCOPE = "Your sign-in does not allow this: it lacks the '{scope}' permission."


def scopes_of(claims: Mapping[str, Any]) -> frozenset[str]:
    """The scopes a token grants: Cognito's space-separated `scope` claim (a list also
    counts, as some authorizer set-ups pass one); anything else grants none."""
    scope = claims.get("scope")
    if isinstance(scope, str):
        return frozenset(scope.split())
    if isinstance(scope, list):
        return frozenset(s for s in scope if isinstance(s, str))
    return frozenset()


def check_token_use(claims: Mapping[str, Any], want: str = ACCESS) -> None:
    """Raise Unauthorized unless the token is the kind (`access` or `id`) the route wants."""
    token_use = claims.get("token_use")
    if token_use == want:
        return
    if token_use == "id" and want == ACCESS:
        raise Unauthorized(MSG_ID_ON_ACCESS)
    raise Unauthorized(MSG_TOKEN_USE.format(want=want))


def check_scopes(claims: Mapping[str, Any], required: Iterable[str]) -> None:
    """Raise Forbidden (403, `insufficient_scope`) unless every required scope is granted.

    Signed in but not allowed is 403, as RFC 6750 says: a 401 would send the app to a
    pointless new sign-in.
    """
    missing = sorted(set(required) - scopes_of(claims))
    if missing:
        raise Forbidden(MSG_SCOPE.format(scope=missing[0]), code="insufficient_scope")


def caller(claims: Mapping[str, Any] | None, required_scope: str | None = None) -> str:
    """The caller's `sub` for an API route: an access token, holding `required_scope`
    (a scope, or several separated by spaces) when one is set."""
    claims = claims or {}
    sub = claims.get("sub")
    if not isinstance(sub, str) or not sub:
        raise Unauthorized(MSG_NO_IDENTITY)
    check_token_use(claims, ACCESS)
    if required_scope:
        check_scopes(claims, required_scope.split())
    return sub
