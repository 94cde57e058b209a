"""CognitoVerifier against self-made RSA keys and a JWKS served by a real local HTTP server.

Tokens are minted with PyJWT (or by hand, for the forged ones); nothing of PyJWT or of
the HTTP client is mocked. Each rejection asserts its own message, so a verifier that
rejects for the wrong reason (or rejects everything) fails the test.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from backend.adapters import jwt_verify as jv
from backend.adapters.jwt_verify import CognitoVerifier, bearer_token, claims_from_bearer
from backend.core.errors import Unauthorized, Unavailable

REGION = "us-east-1"
POOL = "us-east-1_TestPool1"
CLIENT = "3n4b5urk1ft4fl3mg5e62d9ado"
ISSUER = f"https://cognito-idp.{REGION}.amazonaws.com/{POOL}"
SCOPE = "tinyllama/prompts"
DROP = object()  # a claim value meaning "leave this claim out"

ENV_NAMES = (
    "COGNITO_JWKS",
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_COGNITO_IDENTITY_PROVIDER",
    "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS",
)


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ENV_NAMES:
        monkeypatch.delenv(name, raising=False)


# -- keys and tokens ------------------------------------------------------------------


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _int_b64(value: int) -> str:
    return _b64(value.to_bytes((value.bit_length() + 7) // 8, "big"))


def jwk_of(key: rsa.RSAPrivateKey, kid: str) -> dict[str, str]:
    """The public JWK, written out by hand from the key's numbers (as Cognito publishes)."""
    numbers = key.public_key().public_numbers()
    return {
        "kid": kid,
        "kty": "RSA",
        "alg": "RS256",
        "use": "sig",
        "n": _int_b64(numbers.n),
        "e": _int_b64(numbers.e),
    }


@pytest.fixture(scope="module")
def key_a() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def key_b() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def access_claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    claims: dict[str, Any] = {
        "sub": "0f1e2d3c-aaaa-bbbb-cccc-123456789abc",
        "iss": ISSUER,
        "client_id": CLIENT,
        "origin_jti": str(uuid.uuid4()),
        "token_use": "access",
        "scope": f"openid {SCOPE}",
        "auth_time": now,
        "iat": now,
        "exp": now + 3600,
        "jti": str(uuid.uuid4()),
        "username": "alice",
    }
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not DROP}


def id_claims(**overrides: Any) -> dict[str, Any]:
    base = access_claims(token_use="id", client_id=DROP, scope=DROP, username=DROP)
    base.update({"aud": CLIENT, "cognito:username": "alice", "email": "alice@example.com"})
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not DROP}


def mint(key: rsa.RSAPrivateKey, kid: str | None = "kid-a", alg: str = "RS256", **claims: Any):
    headers = {"kid": kid} if kid is not None else {}
    payload = claims or access_claims()
    return jwt.encode(payload, key, algorithm=alg, headers=headers)


def forge(header: dict[str, Any], payload: dict[str, Any], sign: Callable[[bytes], bytes]):
    signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(payload).encode())}"
    return f"{signing_input}.{_b64(sign(signing_input.encode()))}"


# -- a real JWKS server ---------------------------------------------------------------


class JwksServer:
    """Serves `document` at any path with `status`; records every request's path."""

    def __init__(self) -> None:
        self.document: Any = {"keys": []}
        self.status = 200
        self.paths: list[str] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                outer.paths.append(self.path)
                body = json.dumps(outer.document).encode()
                self.send_response(outer.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()
        host, port = self.httpd.server_address[:2]
        self.base = f"http://{host}:{port}"
        self.url = f"{self.base}/{POOL}/.well-known/jwks.json"

    @property
    def requests(self) -> int:
        return len(self.paths)

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join()


class Clock:
    """Monotonic time for PyJWT's JWKS cache and refetch cooldown; other `time` calls pass."""

    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds

    def __getattr__(self, name: str) -> Any:
        return getattr(time, name)


@pytest.fixture(scope="module")
def _jwks_server() -> Iterator[JwksServer]:
    srv = JwksServer()
    yield srv
    srv.close()


@pytest.fixture
def server(_jwks_server: JwksServer, key_a: rsa.RSAPrivateKey) -> JwksServer:
    """The module's server, reset: serves key A, status 200, no requests seen."""
    _jwks_server.document = {"keys": [jwk_of(key_a, "kid-a")]}
    _jwks_server.status = 200
    _jwks_server.paths.clear()
    return _jwks_server


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    """Drives the JWKS cache: PyJWT reads `time.monotonic()` in these modules."""
    fake = Clock()
    for module in (jwt.jwks_client, jwt.jwk_set_cache, jwt.api_jwk):
        monkeypatch.setattr(module, "time", fake)
    return fake


@pytest.fixture
def make_verifier(server: JwksServer, clock: Clock) -> Callable[..., CognitoVerifier]:
    def make(**kwargs: Any) -> CognitoVerifier:
        kwargs.setdefault("jwks_url", server.url)
        return CognitoVerifier(REGION, POOL, CLIENT, **kwargs)

    return make


@pytest.fixture
def verifier(make_verifier: Callable[..., CognitoVerifier]) -> CognitoVerifier:
    return make_verifier(required_scope=SCOPE)


def assert_rejected(
    call: Callable[[], Any],
    message: str,
    *,
    status: int = 401,
    code: str = "unauthorized",
) -> Unauthorized:
    with pytest.raises(Unauthorized) as info:
        call()
    err = info.value
    assert err.message == message
    assert (err.status, err.code) == (status, code)
    assert err.to_body() == {"error": {"code": code, "message": message}}
    # Nothing of PyJWT's internals travels with it (no chained traceback, no raw text).
    assert err.__cause__ is None
    assert err.__context__ is None or err.__suppress_context__
    return err


# -- accepted -------------------------------------------------------------------------


def test_valid_access_token_returns_its_claims(verifier, key_a, server):
    claims = access_claims()
    assert verifier.verify(mint(key_a, **claims)) == claims
    assert server.paths == [f"/{POOL}/.well-known/jwks.json"]


def test_bearer_header_gives_the_claims(verifier, key_a):
    token = mint(key_a)
    assert claims_from_bearer(f"Bearer {token}", verifier)["username"] == "alice"
    assert claims_from_bearer(f"bearer  {token} ", verifier)["token_use"] == "access"


def test_small_clock_skew_is_forgiven(make_verifier, key_a):
    now = int(time.time())
    token = mint(key_a, **access_claims(exp=now - 20, iat=now - 3620))
    assert make_verifier(leeway_s=60).verify(token)["exp"] == now - 20
    strict = make_verifier(leeway_s=0)
    assert_rejected(lambda: strict.verify(token), jv.MSG_EXPIRED, code="token_expired")


def test_id_token_on_an_id_route(make_verifier, key_a):
    ver = make_verifier(token_use="id")
    assert ver.verify(mint(key_a, **id_claims()))["aud"] == CLIENT
    assert_rejected(lambda: ver.verify(mint(key_a, **id_claims(aud="someone-else"))), jv.MSG_CLIENT)
    no_aud = mint(key_a, **id_claims(aud=DROP))
    assert_rejected(lambda: ver.verify(no_aud), jv.MSG_MISSING_CLAIM.format(claim="aud"))
    assert_rejected(
        lambda: ver.verify(mint(key_a, **access_claims())),
        jv.MSG_TOKEN_USE.format(want="id"),
    )


def test_scope_is_optional_when_not_required(make_verifier, key_a):
    assert make_verifier().verify(mint(key_a, **access_claims(scope=DROP)))["sub"]


# -- rejected: the matrix -------------------------------------------------------------


def _alg_none(key_a, key_b):
    return forge({"alg": "none", "kid": "kid-a", "typ": "JWT"}, access_claims(), lambda _: b"")


def _hs256_key_confusion(key_a, key_b):
    public_pem = key_a.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return forge(
        {"alg": "HS256", "kid": "kid-a", "typ": "JWT"},
        access_claims(),
        lambda data: hmac.new(public_pem, data, hashlib.sha256).digest(),
    )


def _tampered_payload(key_a, key_b):
    header, _payload, signature = mint(key_a).split(".")
    forged = _b64(json.dumps(access_claims(username="root", sub="someone-else")).encode())
    return f"{header}.{forged}.{signature}"


def _tampered_signature(key_a, key_b):
    header, payload, signature = mint(key_a).split(".")
    middle = len(signature) // 2
    flipped = "A" if signature[middle] != "A" else "B"
    return f"{header}.{payload}.{signature[:middle]}{flipped}{signature[middle + 1 :]}"


def case(name, make_token, message, status=401, code="unauthorized"):
    return pytest.param(make_token, message, status, code, id=name)


def now() -> int:
    return int(time.time())


OTHER_POOL_ISSUER = ISSUER.replace("TestPool1", "OtherPool")
OTHER_REGION_ISSUER = ISSUER.replace("us-east-1.", "eu-west-1.")
MISSING = jv.MSG_MISSING_CLAIM
NO_SCOPE = jv.MSG_SCOPE.format(scope=SCOPE)

REJECTIONS = [
    # name, token factory (key_a, key_b) -> token, message[, status, code]
    case("expired", lambda a, b: mint(a, **access_claims(exp=now() - 600, iat=now() - 4200)),
         jv.MSG_EXPIRED, code="token_expired"),
    case("not-yet-valid", lambda a, b: mint(a, **access_claims(nbf=now() + 600)), jv.MSG_NOT_YET),
    case("issued-in-future", lambda a, b: mint(a, **access_claims(iat=now() + 600)), jv.MSG_NOT_YET),
    case("wrong-issuer", lambda a, b: mint(a, **access_claims(iss=OTHER_POOL_ISSUER)), jv.MSG_ISSUER),
    case("issuer-other-region", lambda a, b: mint(a, **access_claims(iss=OTHER_REGION_ISSUER)),
         jv.MSG_ISSUER),
    case("wrong-client-id", lambda a, b: mint(a, **access_claims(client_id="another-app")),
         jv.MSG_CLIENT),
    case("no-client-id", lambda a, b: mint(a, **access_claims(client_id=DROP)),
         MISSING.format(claim="client_id")),
    case("id-token-on-access-route", lambda a, b: mint(a, **id_claims()), jv.MSG_ID_ON_ACCESS),
    case("no-token-use", lambda a, b: mint(a, **access_claims(token_use=DROP)),
         MISSING.format(claim="token_use")),
    case("no-exp", lambda a, b: mint(a, **access_claims(exp=DROP)), MISSING.format(claim="exp")),
    case("tampered-payload", _tampered_payload, jv.MSG_SIGNATURE),
    case("tampered-signature", _tampered_signature, jv.MSG_SIGNATURE),
    case("another-key-our-kid", lambda a, b: mint(b, kid="kid-a"), jv.MSG_SIGNATURE),
    case("alg-none", _alg_none, jv.MSG_ALG),
    case("hs256-with-public-key", _hs256_key_confusion, jv.MSG_ALG),
    case("rs512", lambda a, b: mint(a, alg="RS512"), jv.MSG_ALG),
    case("unknown-kid", lambda a, b: mint(b, kid="kid-unknown"), jv.MSG_UNKNOWN_KID),
    case("no-kid", lambda a, b: mint(a, kid=None), jv.MSG_NO_KID),
    case("missing-scope", lambda a, b: mint(a, **access_claims(scope="openid email")),
         NO_SCOPE, 403, "insufficient_scope"),
    case("scope-prefix-is-not-scope", lambda a, b: mint(a, **access_claims(scope=f"{SCOPE}-x")),
         NO_SCOPE, 403, "insufficient_scope"),
    case("no-scope-claim", lambda a, b: mint(a, **access_claims(scope=DROP)),
         NO_SCOPE, 403, "insufficient_scope"),
    case("garbage", lambda a, b: "definitely not a token", jv.MSG_MALFORMED),
    case("three-garbage-parts", lambda a, b: "abc.def.ghi", jv.MSG_MALFORMED),
    case("huge", lambda a, b: mint(a, **access_claims(pad="x" * 20_000)), jv.MSG_MALFORMED),
    case("empty", lambda a, b: "", jv.MSG_NO_TOKEN),
]  # fmt: skip


@pytest.mark.parametrize(("make_token", "message", "status", "code"), REJECTIONS)
def test_rejected(verifier, key_a, key_b, make_token, message, status, code):
    token = make_token(key_a, key_b)
    assert_rejected(lambda: verifier.verify(token), message, status=status, code=code)


@pytest.mark.parametrize(
    ("header", "message"),
    [
        (None, jv.MSG_NO_TOKEN),
        ("", jv.MSG_NO_TOKEN),
        ("   ", jv.MSG_NO_TOKEN),
        ("Bearer", jv.MSG_BAD_HEADER),
        ("Basic dXNlcjpwYXNz", jv.MSG_BAD_HEADER),
        ("Bearer a b", jv.MSG_BAD_HEADER),
        ("Token abc", jv.MSG_BAD_HEADER),
    ],
)
def test_missing_or_malformed_bearer(verifier, server, header, message):
    assert_rejected(lambda: claims_from_bearer(header, verifier), message)
    assert server.requests == 0  # rejected before any key is fetched


def test_bearer_token_parses_the_header():
    assert bearer_token("Bearer abc.def.ghi") == "abc.def.ghi"
    assert bearer_token("BEARER abc") == "abc"


# -- the JWKS cache -------------------------------------------------------------------


def test_jwks_is_fetched_once_and_cached(verifier, key_a, server, clock):
    for _ in range(3):
        verifier.verify(mint(key_a))
        clock.advance(600)
    assert server.requests == 1
    clock.advance(1801)  # past 3600 s after the fetch: the TTL has run out
    verifier.verify(mint(key_a))
    assert server.requests == 2


def test_key_rotation_refetches_at_most_once_a_minute(verifier, key_a, key_b, server, clock):
    verifier.verify(mint(key_a))
    assert server.requests == 1
    server.document = {"keys": [jwk_of(key_a, "kid-a"), jwk_of(key_b, "kid-b")]}
    token_b = mint(key_b, kid="kid-b")

    # Fetched less than 60 s ago: an unknown kid is rejected without another fetch.
    clock.advance(30)
    assert_rejected(lambda: verifier.verify(token_b), jv.MSG_UNKNOWN_KID)
    assert server.requests == 1

    # A minute on, the unknown kid refetches once and the rotated key is found.
    clock.advance(31)
    assert verifier.verify(token_b)["token_use"] == "access"
    assert server.requests == 2
    verifier.verify(mint(key_a))  # the old key still works, from the cache
    assert server.requests == 2


def test_a_bogus_kid_cannot_make_us_hammer_the_jwks(verifier, key_b, server, clock):
    clock.advance(0)
    ghost = mint(key_b, kid="ghost")
    assert_rejected(lambda: verifier.verify(ghost), jv.MSG_UNKNOWN_KID)  # first fetch
    for _ in range(5):
        clock.advance(10)
        assert_rejected(lambda: verifier.verify(ghost), jv.MSG_UNKNOWN_KID)
    assert server.requests == 1
    clock.advance(10)  # 60 s since the fetch
    assert_rejected(lambda: verifier.verify(ghost), jv.MSG_UNKNOWN_KID)
    assert server.requests == 2


def test_unreachable_jwks_is_unavailable_not_unauthorized(verifier, key_a, server):
    server.status = 500
    with pytest.raises(Unavailable) as info:
        verifier.verify(mint(key_a))
    assert (info.value.status, info.value.message) == (503, jv.MSG_JWKS_DOWN)
    server.status = 200  # back: the next request fetches again and passes
    assert verifier.verify(mint(key_a))["username"] == "alice"
    assert server.requests == 2


def test_jwks_down_after_the_ttl_is_unavailable_until_it_is_back(verifier, key_a, server, clock):
    verifier.verify(mint(key_a))
    server.status = 503
    verifier.verify(mint(key_a))  # within the TTL: the cached key verifies, no fetch
    assert server.requests == 1
    clock.advance(3601)
    with pytest.raises(Unavailable) as info:  # due refresh failed: 503, not "sign in again"
        verifier.verify(mint(key_a))
    assert (info.value.status, info.value.message) == (503, jv.MSG_JWKS_DOWN)
    server.status = 200
    assert verifier.verify(mint(key_a))["client_id"] == CLIENT
    assert server.requests == 3


def test_a_jwks_that_is_not_json_is_unavailable(verifier, key_a, server):
    server.document = "<html>not a key set</html>"
    with pytest.raises(Unavailable):
        verifier.verify(mint(key_a))


@pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")
def test_weak_and_non_signing_keys_in_the_jwks_are_ignored(verifier, server, key_a):
    weak = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    encryption = {**jwk_of(key_a, "kid-enc"), "use": "enc"}
    server.document = {"keys": [jwk_of(key_a, "kid-a"), jwk_of(weak, "kid-weak"), encryption]}
    assert_rejected(lambda: verifier.verify(mint(weak, kid="kid-weak")), jv.MSG_UNKNOWN_KID)
    assert_rejected(lambda: verifier.verify(mint(key_a, kid="kid-enc")), jv.MSG_UNKNOWN_KID)
    assert verifier.verify(mint(key_a))["client_id"] == CLIENT


# -- where the keys come from ---------------------------------------------------------


def test_default_jwks_url_is_cognitos():
    ver = CognitoVerifier(REGION, POOL, CLIENT)
    assert ver.issuer == ISSUER
    assert ver.jwks_url == f"{ISSUER}/.well-known/jwks.json"


def test_endpoint_override_moves_the_jwks_but_not_the_issuer(monkeypatch, server, key_a):
    monkeypatch.setenv("AWS_ENDPOINT_URL_COGNITO_IDENTITY_PROVIDER", server.base + "/")
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9/not-this-one")
    ver = CognitoVerifier(REGION, POOL, CLIENT)
    assert ver.jwks_url == server.url
    assert ver.issuer == ISSUER  # moto stamps the real Cognito issuer; see the module doc
    assert ver.verify(mint(key_a))["iss"] == ISSUER
    assert server.paths == [f"/{POOL}/.well-known/jwks.json"]


def test_global_endpoint_override_and_its_off_switch(monkeypatch, server):
    monkeypatch.setenv("AWS_ENDPOINT_URL", server.base)
    assert CognitoVerifier(REGION, POOL, CLIENT).jwks_url == server.url
    monkeypatch.setenv("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "true")
    assert CognitoVerifier(REGION, POOL, CLIENT).jwks_url == f"{ISSUER}/.well-known/jwks.json"


def test_cognito_jwks_url_wins_over_the_endpoint(monkeypatch, server):
    monkeypatch.setenv("AWS_ENDPOINT_URL_COGNITO_IDENTITY_PROVIDER", "http://127.0.0.1:9")
    monkeypatch.setenv("COGNITO_JWKS", server.base + "/keys.json")
    assert CognitoVerifier(REGION, POOL, CLIENT).jwks_url == server.base + "/keys.json"
    # ...and an explicit argument wins over both.
    assert CognitoVerifier(REGION, POOL, CLIENT, jwks_url=server.url).jwks_url == server.url


def test_cognito_jwks_as_a_document_needs_no_http(monkeypatch, server, key_a, key_b):
    # pycognito reads COGNITO_JWKS as the JWKS document itself; the same value works here.
    monkeypatch.setenv("COGNITO_JWKS", json.dumps({"keys": [jwk_of(key_a, "kid-a")]}))
    ver = CognitoVerifier(REGION, POOL, CLIENT)
    assert ver.jwks_url is None
    assert ver.verify(mint(key_a))["sub"]
    assert_rejected(lambda: ver.verify(mint(key_b, kid="kid-b")), jv.MSG_UNKNOWN_KID)
    assert server.requests == 0


@pytest.mark.parametrize(
    "url",
    ["http://cognito.example.com/jwks.json", "ftp://127.0.0.1/jwks.json", "file:///etc/passwd"],
)
def test_jwks_must_be_https_off_the_loopback(url):
    with pytest.raises(ValueError, match="https"):
        CognitoVerifier(REGION, POOL, CLIENT, jwks_url=url)


@pytest.mark.parametrize(
    ("args", "kwargs"),
    [
        (("us-east-1", "not a pool", CLIENT), {}),
        (("us-east-1", "us-east-1_x/../evil", CLIENT), {}),
        (("nowhere", POOL, CLIENT), {}),
        ((REGION, POOL, ""), {}),
        ((REGION, POOL, CLIENT), {"token_use": "refresh"}),
        ((REGION, POOL, CLIENT), {"token_use": "id", "required_scope": SCOPE}),
    ],
)
def test_bad_configuration_fails_at_construction(args, kwargs):
    with pytest.raises(ValueError):
        CognitoVerifier(*args, **kwargs)
