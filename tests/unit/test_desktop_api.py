"""The API client against the real local stack (router, Redis, echo worker).

Error shapes the local stack cannot produce (a proxy's 503 page, API Gateway's own
`{"message"}` 401) go through a requests Session that returns canned responses.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests

from backend.entrypoints.local import LocalStack
from desktop.core.errors import (
    ApiError,
    BudgetExceededError,
    NetworkError,
    NotFoundError,
    SessionExpiredError,
    UnavailableError,
)
from desktop.core.models import ComputeState
from desktop.services.api import ApiClient
from tests.helpers import wait_until


@pytest.fixture(scope="module")
def stack() -> Iterator[LocalStack]:
    with LocalStack(engine="echo", echo_delay_s=0.01) as s:
        yield s


def _wait_done(api: ApiClient, rid: str, timeout: float = 20.0):  # type: ignore[no-untyped-def]
    return wait_until(lambda: (state := api.prompt(rid)).terminal and state, timeout, message="the prompt to finish")


def test_submit_poll_and_status(stack: LocalStack) -> None:
    api = ApiClient(stack.url, lambda: stack.token)
    accepted = api.submit([{"role": "user", "content": "one two three"}], max_tokens=16,
                          idempotency_key="test-key-0001")
    assert len(accepted.request_id) == 32 and accepted.status in ("queued", "waking", "running")
    again = api.submit([{"role": "user", "content": "one two three"}], idempotency_key="test-key-0001")
    assert again.request_id == accepted.request_id
    done = _wait_done(api, accepted.request_id)
    assert done.status == "done" and done.text == "one two three"
    assert done.completion_tokens == 3 and done.total_s is not None
    assert api.status().compute.state is ComputeState.READY


def test_errors_are_person_readable(stack: LocalStack) -> None:
    with pytest.raises(SessionExpiredError, match="sign in again"):
        ApiClient(stack.url, lambda: "wrong-token").status()
    with pytest.raises(NotFoundError):
        ApiClient(stack.url, lambda: stack.token).prompt("0" * 32)
    with pytest.raises(ApiError) as bad:
        ApiClient(stack.url, lambda: stack.token).submit([], max_tokens=1)
    assert bad.value.status in (400, 422) and "Traceback" not in str(bad.value)


def test_budget_refusal() -> None:
    with LocalStack(engine="echo", spend_usd=25.0, hard_cap_usd=20.0) as s:
        api = ApiClient(s.url, lambda: s.token)
        with pytest.raises(BudgetExceededError, match="hard cap"):
            api.submit([{"role": "user", "content": "hi"}])
        assert api.status().budget.state == "exceeded"


def test_network_error_when_nothing_listens() -> None:
    from backend.entrypoints.local import free_port

    api = ApiClient(f"http://127.0.0.1:{free_port()}", lambda: None, timeout=(0.5, 0.5))
    with pytest.raises(NetworkError, match="Can't reach"):
        api.status()


class _Canned(requests.Session):
    def __init__(self, status: int, body: bytes) -> None:
        super().__init__()
        self._status, self._body = status, body

    def request(self, method, url, **kwargs):  # type: ignore[no-untyped-def, override]
        response = requests.Response()
        response.status_code = self._status
        response._content = self._body
        response.url = url
        return response


@pytest.mark.parametrize(
    ("status", "body", "error"),
    [
        (503, b"<html>Service Unavailable</html>", UnavailableError),
        (401, b'{"message":"Unauthorized"}', SessionExpiredError),
        (429, b'{"error":{"code":"too_many_requests","message":"Slow down."}}', ApiError),
        (200, b"not json", ApiError),
    ],
)
def test_odd_answers_map_to_app_errors(status: int, body: bytes, error: type) -> None:
    api = ApiClient("http://api.invalid", lambda: "t", session=_Canned(status, body))
    with pytest.raises(error) as caught:
        api.status()
    assert str(caught.value) and "<html>" not in str(caught.value)


@pytest.mark.parametrize(
    ("status", "body", "words"),
    [
        (403, b'{"message":"Forbidden"}', "lacks the permission"),
        (403, b'{"error":{"code":"insufficient_scope","message":"No scope for this."}}', "No scope for this."),
        (413, b'{"message":"Request Entity Too Large"}', "too large to send"),
        (413, b'{"error":{"code":"payload_too_large","message":"The body is over 256 KiB."}}', "over 256 KiB"),
        (411, b'{"message":"Length Required"}', "without a length"),
        (400, b'{"message":"Bad Request"}', "cut short"),
    ],
)
def test_both_error_shapes_become_words_a_person_can_act_on(status: int, body: bytes, words: str) -> None:
    api = ApiClient("http://api.invalid", lambda: "t", session=_Canned(status, body))
    with pytest.raises(ApiError) as caught:
        api.status()
    assert words in str(caught.value) and caught.value.status == status


def test_the_gateways_own_413_reads_as_words(stack: LocalStack) -> None:
    from backend.entrypoints.gateway import MAX_PAYLOAD_BYTES

    api = ApiClient(stack.url, lambda: stack.token)
    with pytest.raises(ApiError) as caught:  # past API Gateway's 10 MiB: the gateway's {"message"}
        api.submit([{"role": "user", "content": "x" * (MAX_PAYLOAD_BYTES + 1)}])
    assert caught.value.status == 413 and "too large to send" in str(caught.value)


def test_the_local_stack_is_reached_past_a_proxy_setting_that_the_cloud_keeps(
        stack: LocalStack, monkeypatch: pytest.MonkeyPatch) -> None:
    # A proxy that refuses everything: a loopback client that read the proxy variables (and
    # ~/.netrc) on every poll would go there and fail.
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:9")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    local = ApiClient(stack.url, lambda: stack.token)
    assert local.status().compute.state is not ComputeState.UNKNOWN
    cloud = ApiClient("https://abc123.execute-api.eu-west-1.amazonaws.com", lambda: "token")
    assert cloud._session.trust_env  # a corporate proxy still applies to the AWS API
