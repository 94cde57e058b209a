"""Verify Cognito JWTs the way awslabs' aws-jwt-verify does, with PyJWT.

The HTTP API's JWT authorizer checks the signature, `iss`, `aud`/`client_id`, `exp` and
scopes, but **not** `token_use`, so an id token would pass it; the router runs this
verifier itself (DESIGN.md, "Cognito tokens"). The checklist, in order:

1. a `Bearer` token of sane size that parses as a JWT;
2. header `alg` is exactly RS256 (no `none`, no HS256 "key confusion", nothing else);
3. header `kid` names a key of the pool's JWKS, which PyJWT's `PyJWKClient` fetches and
   caches for `jwks_ttl_s`; an unknown `kid` (key rotation) refetches the JWKS at most
   once per 60 s (its cooldown), then the token is rejected. Keys that are not RS256
   signing keys of at least 2048 bits do not count;
4. the RS256 signature, then `iss`, `exp`, `nbf`, `iat` (with a small leeway);
5. `token_use` is the one the route wants; access tokens carry `client_id` (no `aud`),
   id tokens carry `aud` — either must be our app client;
6. the route's scopes are all in the space-separated `scope` claim.

Steps 5 and 6 are `backend.core.identity`'s rules, the same the router applies to the
authorizer's claims. Every failure raises `Unauthorized` with a message the app can show
as it is; a missing scope is `Forbidden` (a kind of `Unauthorized`, HTTP 403, code
`insufficient_scope`: RFC 6750, the person is signed in, just not allowed). When the JWKS
cannot be fetched the error is `Unavailable` (503): the token may well be fine, and
answering 401 would send the app to a pointless new sign-in.

Where the keys come from, first match wins:

- `jwks_url=` given to the constructor;
- `COGNITO_JWKS`: a URL, or — as pycognito reads the same variable — the JWKS document
  itself as JSON (then no HTTP at all);
- `AWS_ENDPOINT_URL_COGNITO_IDENTITY_PROVIDER`, else `AWS_ENDPOINT_URL` (the standard
  endpoint overrides boto3 honours, unless `AWS_IGNORE_CONFIGURED_ENDPOINT_URLS` is
  true): `<endpoint>/<pool>/.well-known/jwks.json`, where moto's server serves it;
- `https://cognito-idp.<region>.amazonaws.com/<pool>/.well-known/jwks.json`.

The expected issuer does NOT follow the endpoint override: moto 5.x (checked in 5.2.5,
`CognitoIdpUserPool.create_jwt`) stamps `iss = https://cognito-idp.<region>.amazonaws.com
/<pool>` on every token even in server mode, and its openid-configuration announces the
same issuer, so deriving the issuer from the endpoint would reject moto's real tokens. An
emulator that stamps another `iss` can be matched with the `issuer=` argument.

Never point these variables at moto in a deployed stack: moto signs with a private key
that ships inside the moto package, so anyone could mint tokens it would accept. As a
guard against key fetches an attacker could intercept, a JWKS URL must be https unless it
is on the loopback interface.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

import jwt
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey

from backend.core.errors import Unauthorized, Unavailable
from backend.core.identity import (
    MSG_ID_ON_ACCESS,
    MSG_SCOPE,
    MSG_TOKEN_USE,
    check_scopes,
    check_token_use,
)

__all__ = [
    "CognitoVerifier",
    "bearer_token",
    "claims_from_bearer",
]

log = logging.getLogger(__name__)

ALGORITHM = "RS256"
#: Cognito tokens are 1-4 KB (more with many groups); anything far larger is not one.
MAX_TOKEN_CHARS = 16 * 1024
MIN_RSA_BITS = 2048
#: An unknown `kid` refetches the JWKS at most this often (aws-jwt-verify's penalty box).
UNKNOWN_KID_REFETCH_S = 60.0
JWKS_TIMEOUT_S = 5.0

_REGION_RE = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d+$")
_POOL_RE = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d+_[0-9A-Za-z]+$")
_CLIENT_RE = re.compile(r"^[\w+]{1,128}$")
_LOOPBACK_HOSTS = {"127.0.0.1", "::1", "localhost"}
_TRUE = {"1", "true", "yes", "on"}

# The messages people read. One place, so the tests and the app agree on them (the
# token_use and scope ones are `backend.core.identity`'s, re-exported here).
MSG_NO_TOKEN = "You are not signed in; sign in to continue."
MSG_BAD_HEADER = "The sign-in header is not in the form 'Bearer <token>'; sign in again."
MSG_MALFORMED = "The sign-in token is damaged or not a sign-in token at all; sign in again."
MSG_ALG = "The sign-in token is not signed the way Cognito signs tokens; sign in again."
MSG_NO_KID = "The sign-in token does not say which key signed it; sign in again."
MSG_UNKNOWN_KID = "The sign-in token was signed with a key this user pool does not have; sign in again."
MSG_SIGNATURE = "The sign-in token's signature is not valid; sign in again."
MSG_EXPIRED = "Your session has expired; sign in again."
MSG_NOT_YET = "The sign-in token is not valid yet; check that this computer's clock is right."
MSG_ISSUER = "The sign-in token comes from a different user pool; sign in again."
MSG_CLIENT = "The sign-in token was issued to a different app; sign in again."
MSG_MISSING_CLAIM = "The sign-in token lacks its '{claim}' claim; sign in again."
MSG_INVALID = "The sign-in token is not valid; sign in again."
MSG_JWKS_DOWN = "Sign-in can't be checked right now (the user pool's keys are out of reach)."
__all__ += ["MSG_ID_ON_ACCESS", "MSG_SCOPE", "MSG_TOKEN_USE"]


def _reject(message: str, reason: str, **kwargs: Any) -> Unauthorized:
    log.info("token rejected: %s", reason)
    return Unauthorized(message, **kwargs)


def _check_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme == "https" and parts.hostname:
        return url
    if parts.scheme == "http" and parts.hostname in _LOOPBACK_HOSTS:
        return url
    raise ValueError(f"JWKS URL {url!r} must be https (plain http is allowed on the loopback only)")


def _endpoint_override() -> str | None:
    if os.environ.get("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "").strip().lower() in _TRUE:
        return None
    for name in ("AWS_ENDPOINT_URL_COGNITO_IDENTITY_PROVIDER", "AWS_ENDPOINT_URL"):
        value = os.environ.get(name, "").strip()
        if value:
            return value
    return None


def _usable(jwk: jwt.PyJWK) -> bool:
    """An RS256 signing key strong enough to trust (a JWKS may hold others)."""
    key = jwk.key
    return (
        jwk.key_type == "RSA"
        and jwk.algorithm_name == ALGORITHM
        and isinstance(key, RSAPublicKey)
        and key.key_size >= MIN_RSA_BITS
    )


class CognitoVerifier:
    """Verifies one user pool's tokens for one app client; thread-safe; reuse one instance.

    `token_use` is "access" (API routes) or "id". `required_scope` is a scope or an
    iterable of scopes, all of which the access token's `scope` claim must hold; a string
    with spaces is several scopes. The JWKS is PyJWT's `PyJWKClient`, which caches the key
    set for `jwks_ttl_s` (monotonic time) and keeps it when a refresh fails.
    """

    def __init__(
        self,
        region: str,
        user_pool_id: str,
        client_id: str,
        *,
        token_use: str = "access",
        required_scope: str | Iterable[str] | None = None,
        jwks_url: str | None = None,
        jwks_ttl_s: float = 3600,
        issuer: str | None = None,
        leeway_s: float = 5,
    ) -> None:
        if not _REGION_RE.match(region):
            raise ValueError(f"not an AWS region: {region!r}")
        if not _POOL_RE.match(user_pool_id):
            raise ValueError(f"not a Cognito user pool id: {user_pool_id!r}")
        if not _CLIENT_RE.match(client_id):
            raise ValueError(f"not a Cognito app client id: {client_id!r}")
        if token_use not in ("access", "id"):
            raise ValueError(f"token_use must be 'access' or 'id', not {token_use!r}")
        if isinstance(required_scope, str):
            required_scope = required_scope.split()
        self.required_scopes: frozenset[str] = frozenset(required_scope or ())
        if self.required_scopes and token_use != "access":
            raise ValueError("scopes are carried by access tokens only")

        self.region = region
        self.user_pool_id = user_pool_id
        self.client_id = client_id
        self.token_use = token_use
        self.leeway_s = leeway_s
        self.issuer = issuer or f"https://cognito-idp.{region}.amazonaws.com/{user_pool_id}"

        self._static_jwks: jwt.PyJWKSet | None = None
        self.jwks_url: str | None = None
        env_jwks = os.environ.get("COGNITO_JWKS", "").strip()
        if jwks_url:
            self.jwks_url = _check_url(jwks_url)
        elif env_jwks.startswith("{"):
            try:
                self._static_jwks = jwt.PyJWKSet.from_json(env_jwks)
            except (jwt.PyJWTError, ValueError) as exc:  # json.JSONDecodeError is a ValueError
                raise ValueError(f"COGNITO_JWKS is not a usable JWKS document: {exc}") from None
        elif env_jwks:
            self.jwks_url = _check_url(env_jwks)
        elif endpoint := _endpoint_override():
            self.jwks_url = _check_url(f"{endpoint.rstrip('/')}/{user_pool_id}/.well-known/jwks.json")
        else:
            self.jwks_url = f"{self.issuer}/.well-known/jwks.json"

        self._jwks: jwt.PyJWKClient | None = None
        if self.jwks_url is not None:
            self._jwks = jwt.PyJWKClient(
                self.jwks_url,
                lifespan=jwks_ttl_s,
                cooldown_duration=UNKNOWN_KID_REFETCH_S,
                timeout=JWKS_TIMEOUT_S,
                headers={"Accept": "application/json"},
            )

    def __repr__(self) -> str:
        return (
            f"CognitoVerifier(issuer={self.issuer!r}, client_id={self.client_id!r}, "
            f"token_use={self.token_use!r}, jwks={self.jwks_url or 'COGNITO_JWKS'!r})"
        )

    def _key_for(self, kid: str) -> jwt.PyJWK:
        if self._jwks is None:
            assert self._static_jwks is not None
            try:
                key = self._static_jwks[kid]
            except KeyError:
                raise _reject(MSG_UNKNOWN_KID, f"unknown kid {kid!r}") from None
        else:
            try:
                # The set first (cached): a pool whose keys can't be had is "unavailable",
                # never "your token is bad".
                self._jwks.get_jwk_set()
            except (jwt.PyJWTError, ValueError) as exc:  # unreachable, not JSON, no key set
                log.warning("could not fetch the JWKS at %s: %s", self.jwks_url, exc)
                raise Unavailable(MSG_JWKS_DOWN) from None
            try:
                key = self._jwks.get_signing_key(kid)  # refetches for a new kid, once a minute
            except jwt.PyJWKClientConnectionError as exc:
                log.warning("could not refetch the JWKS at %s: %s", self.jwks_url, exc)
                raise Unavailable(MSG_JWKS_DOWN) from None
            except (jwt.PyJWTError, ValueError):
                raise _reject(MSG_UNKNOWN_KID, f"unknown kid {kid!r}") from None
        if not _usable(key):
            raise _reject(MSG_UNKNOWN_KID, f"kid {kid!r} is not a usable RS256 key")
        return key

    # -- tokens -------------------------------------------------------------------------

    def verify(self, token: str) -> dict[str, Any]:
        """The token's claims, or `Unauthorized` saying what is wrong with it."""
        if not isinstance(token, str) or not token.strip():
            raise _reject(MSG_NO_TOKEN, "no token")
        token = token.strip()
        if len(token) > MAX_TOKEN_CHARS:
            raise _reject(MSG_MALFORMED, f"token of {len(token)} chars")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise _reject(MSG_MALFORMED, "unparseable header") from None
        if header.get("alg") != ALGORITHM:
            raise _reject(MSG_ALG, f"alg {header.get('alg')!r}")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise _reject(MSG_NO_KID, "no kid")
        key = self._key_for(kid)

        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=[ALGORITHM],
                issuer=self.issuer,
                leeway=self.leeway_s,
                # `aud`/`client_id` are checked below, after `token_use`, so that an id
                # token on an access route is told so rather than "lacks client_id".
                options={"require": ["exp", "iat", "iss", "token_use"], "verify_aud": False},
            )
        except jwt.ExpiredSignatureError:
            raise _reject(MSG_EXPIRED, "expired", code="token_expired") from None
        except jwt.ImmatureSignatureError:
            raise _reject(MSG_NOT_YET, "nbf/iat in the future") from None
        except jwt.InvalidSignatureError:
            raise _reject(MSG_SIGNATURE, "bad signature") from None
        except jwt.InvalidIssuerError:
            raise _reject(MSG_ISSUER, "wrong iss") from None
        except jwt.MissingRequiredClaimError as exc:
            raise _reject(MSG_MISSING_CLAIM.format(claim=exc.claim), "missing claim") from None
        except jwt.InvalidAlgorithmError:
            raise _reject(MSG_ALG, "alg") from None
        except jwt.DecodeError:
            raise _reject(MSG_MALFORMED, "undecodable") from None
        except jwt.PyJWTError as exc:
            raise _reject(MSG_INVALID, type(exc).__name__) from None

        check_token_use(claims, self.token_use)
        # Access tokens name the app in `client_id` (and carry no `aud`); id tokens in `aud`.
        app_claim = "aud" if self.token_use == "id" else "client_id"
        if app_claim not in claims:
            raise _reject(MSG_MISSING_CLAIM.format(claim=app_claim), f"no {app_claim}")
        if claims[app_claim] != self.client_id:  # a string, exactly; lists are not Cognito's
            raise _reject(MSG_CLIENT, f"wrong {app_claim}")
        check_scopes(claims, self.required_scopes)
        return claims


def bearer_token(header_value: str | None) -> str:
    """The token of an `Authorization: Bearer <token>` header value (scheme any case)."""
    if header_value is None or not header_value.strip():
        raise _reject(MSG_NO_TOKEN, "no Authorization header")
    parts = header_value.split()
    if len(parts) != 2 or parts[0].lower() != "bearer":
        raise _reject(MSG_BAD_HEADER, "not a Bearer header")
    return parts[1]


def claims_from_bearer(header_value: str | None, verifier: CognitoVerifier) -> dict[str, Any]:
    """The verified claims of an `Authorization` header value, or `Unauthorized`."""
    return verifier.verify(bearer_token(header_value))
