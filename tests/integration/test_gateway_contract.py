"""What the gateway really answers is what `infra/openapi.yaml` says, status and body.

The real local stack (gateway, router, redis-server, echo worker) over real HTTP, driven
through every documented case; each answer is looked up in the contract by path, method
and status, and its body validated against that response's schema. Cognito's 403 for a
token without the route's scope runs against moto's user pool.
"""

from __future__ import annotations

import copy
import json
import socket
from collections.abc import Iterator
from typing import Any

import jsonschema
import pytest
import requests

from backend.adapters.jwt_verify import CognitoVerifier
from backend.entrypoints.gateway import MAX_PAYLOAD_BYTES, REQUIRED_SCOPE, Gateway, JwtAuthorizer
from backend.entrypoints.local import LocalStack
from backend.entrypoints.router import Identity, create_app
from desktop.core.errors import ApiError
from desktop.services.api import ApiClient
from tests.fixtures.aws import REGION, aws_env, make_cognito_user, moto_server, sign_in  # noqa: F401
from tests.helpers import wait_until
from tests.unit.test_contract import SCHEMAS, SPEC, to_json_schema

ID_PATTERN = "/prompts/{id}"
PROMPT = {"messages": [{"role": "user", "content": "contract words"}]}


def documented(method: str, path: str, status: int) -> dict[str, Any]:
    """The contract's JSON schema for this answer; fails when the status is undocumented."""
    template = ID_PATTERN if path.startswith("/prompts/") else path
    responses = SPEC["paths"][template][method.lower()]["responses"]
    assert str(status) in responses, f"{method} {path} answered {status}, which the contract does not list"
    response = responses[str(status)]
    if "$ref" in response:
        response = SPEC["components"]["responses"][response["$ref"].rsplit("/", 1)[1]]
    return response["content"]["application/json"]["schema"]


def check(method: str, path: str, status: int, body: bytes, content_type: str | None) -> Any:
    schema = documented(method, path, status)
    assert content_type == "application/json", (method, path, status, content_type)
    data = json.loads(body)
    full = {**to_json_schema(copy.deepcopy(schema)), "$defs": to_json_schema(copy.deepcopy(SCHEMAS))}
    jsonschema.Draft7Validator(full).validate(data)
    return data


def call(stack_url: str, method: str, path: str, token: str | None, *, headers: dict[str, str] | None = None,
         **kw: Any) -> tuple[int, Any]:
    headers = {**({"Authorization": f"Bearer {token}"} if token else {}), **(headers or {})}
    r = requests.request(method, stack_url + path, headers=headers, timeout=30, **kw)
    return r.status_code, check(method, path, r.status_code, r.content, r.headers.get("Content-Type"))


def raw(url: str, request: bytes) -> tuple[int, bytes, str | None]:
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as s:
        s.sendall(request)
        s.shutdown(socket.SHUT_WR)
        reply = b""
        while chunk := s.recv(65536):
            reply += chunk
    head, _, body = reply.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:])
    return int(lines[0].split()[1]), body, headers.get("Content-Type")


@pytest.fixture(scope="module")
def stack() -> Iterator[LocalStack]:
    with LocalStack(port=0, echo_delay_s=0.0) as s:
        yield s


def test_prompt_routes_answer_as_documented(stack: LocalStack) -> None:
    url, token = stack.url, stack.token
    status, accepted = call(url, "POST", "/prompts", token, json=PROMPT)
    assert status == 202
    rid = accepted["request_id"]
    wait_until(lambda: call(url, "GET", f"/prompts/{rid}", token)[1]["status"] == "done", 20, message="done")
    assert call(url, "DELETE", f"/prompts/{rid}", token)[0] == 200
    assert call(url, "GET", "/status", token)[0] == 200
    for method in ("GET", "DELETE"):
        assert call(url, method, "/prompts/" + "0" * 32, token)[0] == 404
        assert call(url, method, f"/prompts/{rid}", None) == (401, {"message": "Unauthorized"})
    assert call(url, "GET", "/status", None) == (401, {"message": "Unauthorized"})
    assert call(url, "GET", "/status", "wrong")[0] == 401


def test_the_routers_answers_are_never_kept_by_a_cache(stack: LocalStack) -> None:
    # CloudFront's cache policy (infra/stack.yaml ApiCachePolicy) may keep an answer up to
    # its MaxTTL unless the origin says no-store: per-user prompts must never be served twice.
    url, headers = stack.url, {"Authorization": f"Bearer {stack.token}"}
    posted = requests.post(url + "/prompts", json=PROMPT, headers=headers, timeout=30)
    rid = posted.json()["request_id"]
    answers = [posted, requests.get(f"{url}/prompts/{rid}", headers=headers, timeout=30),
               requests.get(url + "/status", headers=headers, timeout=30),
               requests.get(url + "/prompts/" + "0" * 32, headers=headers, timeout=30)]
    assert [(r.status_code, r.headers.get("Cache-Control")) for r in answers] == [
        (202, "no-store"), (200, "no-store"), (200, "no-store"), (404, "no-store")]


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        (b'{"messages": [', 400, "malformed_json"),
        (b"", 400, "empty_body"),
        (json.dumps({"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]}),
         422, "invalid_request"),  # a conversation must end with the user (or the system)
        (json.dumps({**PROMPT, "max_tokens": 10**6}), 422, "invalid_request"),
        (json.dumps({"messages": [{"role": "user", "content": "x" * 300_000}]}), 413, "payload_too_large"),
    ],
)
def test_refused_prompts_answer_as_documented(stack: LocalStack, body: Any, status: int, code: str) -> None:
    got, data = call(stack.url, "POST", "/prompts", stack.token, data=body)
    assert (got, data["error"]["code"]) == (status, code)


def test_the_gateways_own_answers_are_documented(stack: LocalStack) -> None:
    url, token = stack.url, stack.token
    auth = f"Authorization: Bearer {token}\r\n".encode()
    # Over API Gateway's 10 MiB: refused from the Content-Length alone, before any body.
    head = b"POST /prompts HTTP/1.1\r\nHost: x\r\n" + auth + b"Content-Length: %d\r\n\r\n" % (MAX_PAYLOAD_BYTES + 1)
    status, body, ctype = raw(url, head)
    assert check("POST", "/prompts", status, body, ctype) == {"message": "Request Entity Too Large"}
    # A body cut short of its Content-Length.
    status, body, ctype = raw(url, b"POST /prompts HTTP/1.1\r\nHost: x\r\n" + auth + b"Content-Length: 99\r\n\r\n{}")
    assert (status, check("POST", "/prompts", status, body, ctype)) == (400, {"message": "Bad Request"})
    # Chunked: API Gateway wants a length.
    r = requests.post(f"{url}/prompts", data=iter([json.dumps(PROMPT).encode()]), timeout=10,
                      headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 411
    assert check("POST", "/prompts", 411, r.content, r.headers["Content-Type"]) == {"message": "Length Required"}
    # The open echo: its own 200 and 413 (the router's 256 KiB limit, in the router's shape).
    assert call(url, "POST", "/", None, data=b"hello") == (200, {"echo": "hello"})
    status, data = call(url, "POST", "/", None, data=b"x" * 300_000)
    assert status == 413 and data["error"]["code"] == "payload_too_large"


def test_outside_the_operations_the_answers_are_as_the_description_says(stack: LocalStack) -> None:
    headers = {"Authorization": f"Bearer {stack.token}"}
    for method, path in (("PUT", "/status"), ("OPTIONS", "/prompts"), ("GET", "/nowhere")):
        r = requests.request(method, stack.url + path, headers=headers, timeout=10)
        assert r.status_code == 404 and r.json()["error"]["code"] == "no_route"
        jsonschema.validate(r.json(), to_json_schema(copy.deepcopy(SCHEMAS["Error"])))
    r = requests.request("PURGE", stack.url + "/status", headers=headers, timeout=10)
    assert (r.status_code, r.json()) == (405, {"message": "Method Not Allowed"})


def test_a_spent_budget_and_a_missing_queue_answer_as_documented() -> None:
    with LocalStack(port=0, spend_usd=25.0, hard_cap_usd=20.0) as s:
        status, data = call(s.url, "POST", "/prompts", s.token, json=PROMPT)
        assert (status, data["error"]["code"]) == (403, "budget_exceeded")
        assert s.redis is not None
        s.redis.stop()  # the queue away: the router's 503, in the router's shape
        status, data = call(s.url, "GET", "/status", s.token)
        assert status == 503 and data["error"]["code"] == "unavailable"


# -- Cognito: the scope the deployed stack requires ----------------------------------------------


@pytest.fixture
def cognito_user(aws_env: str, monkeypatch: pytest.MonkeyPatch) -> tuple[Any, dict[str, Any]]:  # noqa: F811
    monkeypatch.setenv("AWS_ENDPOINT_URL_COGNITO_IDENTITY_PROVIDER", aws_env)
    user = make_cognito_user(aws_env)
    return user, sign_in(aws_env, user)


def test_a_token_without_the_routes_scope_is_the_http_apis_403(cognito_user: tuple[Any, dict[str, Any]]) -> None:
    user, tokens = cognito_user
    # moto's access tokens carry only aws.cognito.signin.user.admin, so require another.
    verifier = CognitoVerifier(REGION, user.pool_id, user.client_id, required_scope="tinyllama/prompts")
    gw = Gateway(lambda: create_app(None, Identity()), JwtAuthorizer(verifier)).start()
    try:
        for method, path in (("GET", "/status"), ("POST", "/prompts"), ("GET", "/prompts/" + "0" * 32)):
            r = requests.request(method, gw.url + path, json=PROMPT,
                                 headers={"Authorization": f"bearer {tokens['AccessToken']}"}, timeout=10)
            assert r.status_code == 403, r.text
            assert check(method, path, 403, r.content, r.headers["Content-Type"]) == {"message": "Forbidden"}
            assert 'error="insufficient_scope"' in r.headers["WWW-Authenticate"]
            assert 'scope="tinyllama/prompts"' in r.headers["WWW-Authenticate"]
        # The client and the contract agree: the bare 403 becomes words, not "Forbidden".
        with pytest.raises(ApiError, match="lacks the permission") as caught:
            ApiClient(gw.url, lambda: tokens["AccessToken"]).status()
        assert caught.value.status == 403
    finally:
        gw.stop()


def test_the_local_stack_requires_the_deployed_scope_and_any_case_of_bearer(
        cognito_user: tuple[Any, dict[str, Any]]) -> None:
    user, tokens = cognito_user
    with LocalStack(port=0, cognito=(REGION, user.pool_id, user.client_id)) as stack:
        assert stack.gateway is not None
        assert stack.gateway.authorizer.verifier.required_scopes == {REQUIRED_SCOPE}  # type: ignore[attr-defined]
        for scheme in ("Bearer", "bearer", "BEARER"):
            status, _ = call(stack.url, "GET", "/status", None,
                             headers={"Authorization": f"{scheme} {tokens['AccessToken']}"})
            assert status == 200, scheme
        status, data = call(stack.url, "GET", "/status", None, headers={"Authorization": f"Bearer {tokens['IdToken']}"})
        assert (status, data) == (401, {"message": "Unauthorized"})
