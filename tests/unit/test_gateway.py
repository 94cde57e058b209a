"""The loopback gateway's own HTTP handling, before any event reaches the router.

Raw sockets where a client library would never send what is tested (a short body, a
stall, an unknown method, a hang-up), the real router and a real redis-server behind.
"""

from __future__ import annotations

import http.client
import json
import logging
import socket
import struct
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response

from backend.adapters.redis_queue import RedisQueue
from backend.adapters.spend import StaticSpend
from backend.core.service import Budget, PromptService
from backend.entrypoints.gateway import Gateway, TokenAuthorizer
from backend.entrypoints.router import Identity, create_app
from tests.helpers import wait_until
from tests.unit.test_router_events import FakeCompute, worker_ready

TOKEN = "per-launch-token"
READ_TIMEOUT_S = 0.5
PROMPT = b'{"messages": [{"role": "user", "content": "hi"}]}'


def make_gateway(factory: Callable[[], Any] | None = None, **kwargs: Any) -> Gateway:
    kwargs.setdefault("read_timeout_s", READ_TIMEOUT_S)
    return Gateway(factory or (lambda: create_app(None, Identity())), TokenAuthorizer(TOKEN), **kwargs).start()


@pytest.fixture(scope="module")
def gateway() -> Iterator[Gateway]:
    gw = make_gateway()
    try:
        yield gw
    finally:
        gw.stop()


@pytest.fixture
def queued_gateway(queue: RedisQueue) -> Iterator[tuple[Gateway, RedisQueue]]:
    """The gateway in front of the real prompt service on a real Redis queue."""
    worker_ready(queue)
    service = PromptService(queue, FakeCompute(), StaticSpend(None), Budget())
    gw = make_gateway(lambda: create_app(service, Identity()))
    try:
        yield gw, queue
    finally:
        gw.stop()


def connect(gw: Gateway) -> socket.socket:
    return socket.create_connection(("127.0.0.1", gw.port), timeout=5)


def read_all(s: socket.socket) -> bytes:
    reply = b""
    while chunk := s.recv(65536):  # raises TimeoutError if the gateway never answers or closes
        reply += chunk
    return reply


def raw_request(gw: Gateway, request: bytes, *, half_close: bool = False) -> bytes:
    """Send bytes as they are (no client library would send a bad Content-Length)."""
    with connect(gw) as s:
        s.sendall(request)
        if half_close:  # EOF on the gateway's side, our side still reads
            s.shutdown(socket.SHUT_WR)
        # Otherwise keep our side open: a gateway that reads the body "to EOF" gets none.
        return read_all(s)


def status_and_json(reply: bytes) -> tuple[int, Any]:
    head, _, body = reply.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(body)


def post(path: str, body: bytes, length: int | None = None, auth: str = f"Bearer {TOKEN}") -> bytes:
    length = len(body) if length is None else length
    # Connection: close, so that reading to EOF ends with the answer, not the read timeout.
    return (f"POST {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: {auth}\r\n"
            "Content-Type: application/json\r\n"
            f"Content-Length: {length}\r\n\r\n").encode() + body


def reset(s: socket.socket) -> None:
    """Close with an RST (SO_LINGER 0): the hang-up of a client that was killed."""
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.close()


# -- Content-Length ----------------------------------------------------------------------------


@pytest.mark.parametrize("length", [b"-1", b"-5", b"abc"])
def test_bad_content_length_is_400_at_once(gateway: Gateway, length: bytes) -> None:
    head = b"POST / HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: " + length
    reply = raw_request(gateway, head + b"\r\n\r\nhello")
    assert reply.startswith(b"HTTP/1.1 400 "), reply


def test_good_content_length_echoes(gateway: Gateway) -> None:
    reply = raw_request(gateway, b"POST / HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 5\r\n\r\nhello")
    assert reply.startswith(b"HTTP/1.1 200 ") and b'"echo": "hello"' in reply, reply


def test_a_body_shorter_than_its_length_is_400_and_nothing_is_enqueued(
        queued_gateway: tuple[Gateway, RedisQueue]) -> None:
    gw, queue = queued_gateway
    # The part that came is a whole, valid prompt: only the length says it is cut short.
    status, body = status_and_json(raw_request(gw, post("/prompts", PROMPT, len(PROMPT) + 40), half_close=True))
    assert (status, body) == (400, {"message": "Bad Request"})
    assert queue.depth() == 0
    status, _ = status_and_json(raw_request(gw, post("/prompts", PROMPT), half_close=True))
    assert status == 202 and queue.depth() == 1  # the same prompt, whole, is taken


def test_a_stalled_body_is_400_after_the_read_timeout(queued_gateway: tuple[Gateway, RedisQueue]) -> None:
    gw, queue = queued_gateway
    reply = raw_request(gw, post("/prompts", PROMPT[:10], len(PROMPT)))  # our side stays open
    assert status_and_json(reply) == (400, {"message": "Bad Request"})
    assert b"Connection: close" in reply
    assert queue.depth() == 0


def test_an_idle_connection_is_closed_after_the_read_timeout(gateway: Gateway) -> None:
    with connect(gateway) as s:
        assert read_all(s) == b""  # closed by the gateway, well before our 5 s timeout


def test_chunked_bodies_are_411(gateway: Gateway) -> None:
    chunked = b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
    reply = raw_request(gateway, chunked)
    assert status_and_json(reply) == (411, {"message": "Length Required"})


# -- threads -----------------------------------------------------------------------------------


def test_connection_threads_are_bounded_and_the_rest_get_a_json_503() -> None:
    gw = make_gateway(max_connections=2, slot_wait_s=0.2, read_timeout_s=5.0)
    try:
        held = [connect(gw), connect(gw)]  # two idle keep-alive connections hold both threads
        wait_until(lambda: gw.server._slots._value == 0, 5, message="both threads taken")  # type: ignore[attr-defined]
        reply = raw_request(gw, b"GET /status HTTP/1.1\r\nHost: x\r\n\r\n")
        assert status_and_json(reply) == (503, {"message": "Service Unavailable"})
        for s in held:
            s.close()
        reply = raw_request(gw, post("/", b"again"))
        assert status_and_json(reply) == (200, {"echo": "again"})
    finally:
        gw.stop()


# -- methods -----------------------------------------------------------------------------------


def test_head_and_options_are_json_404_and_head_has_no_body(gateway: Gateway) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", gateway.port, timeout=5)
    auth = {"Authorization": f"Bearer {TOKEN}"}
    conn.request("HEAD", "/status", headers=auth)
    head = conn.getresponse()
    assert head.status == 404 and head.getheader("Content-Type") == "application/json"
    assert head.read() == b""
    conn.request("OPTIONS", "/prompts", headers=auth)  # the same connection: HEAD left it in step
    options = conn.getresponse()
    assert options.status == 404 and json.loads(options.read())["error"]["code"] == "no_route"
    conn.close()


@pytest.mark.parametrize("method", [b"FOO", b"TRACE", b"CONNECT"])
def test_unknown_methods_are_json_405(gateway: Gateway, method: bytes) -> None:
    reply = raw_request(gateway, method + b" /status HTTP/1.1\r\nHost: x\r\n\r\n")
    assert status_and_json(reply) == (405, {"message": "Method Not Allowed"}), reply
    assert b"Allow: GET, POST, DELETE" in reply


def test_http_servers_own_refusals_are_json(gateway: Gateway) -> None:
    headers = b"".join(b"X-%d: y\r\n" % i for i in range(150))  # http.server allows 100
    status, body = status_and_json(raw_request(gateway, b"GET /status HTTP/1.1\r\n" + headers + b"\r\n"))
    assert (status, body) == (431, {"message": "Request Header Fields Too Large"})


# -- auth --------------------------------------------------------------------------------------


@pytest.mark.parametrize("scheme", ["Bearer", "bearer", "BEARER", "bEaReR"])
def test_the_bearer_scheme_is_case_insensitive(gateway: Gateway, scheme: str) -> None:
    status, body = status_and_json(raw_request(gateway, post("/prompts", PROMPT, auth=f"{scheme} {TOKEN}")))
    assert status == 503 and body["error"]["code"] == "no_queue"  # past the authorizer, to the router


@pytest.mark.parametrize("auth", ["Bearer wrong", "Basic " + TOKEN, TOKEN, "Bearer"])
def test_a_refused_token_is_the_http_apis_401(gateway: Gateway, auth: str) -> None:
    reply = raw_request(gateway, post("/prompts", PROMPT, auth=auth))
    assert status_and_json(reply) == (401, {"message": "Unauthorized"})
    assert b'WWW-Authenticate: Bearer scope="" error="invalid_token"' in reply


# -- hang-ups ----------------------------------------------------------------------------------


def _disconnect_logged(caplog: pytest.LogCaptureFixture) -> Callable[[], bool]:
    return lambda: any("disconnected" in r.getMessage() for r in caplog.records)


def test_a_client_that_hangs_up_mid_body_is_no_server_error(gateway: Gateway,
                                                            caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="tinyllama.gateway")
    s = connect(gateway)
    s.sendall(post("/", b"0123456789", 100))
    reset(s)
    wait_until(_disconnect_logged(caplog), 5, message="the gateway to notice the hang-up")
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert gateway.answered[500] == 0


def test_a_client_that_hangs_up_before_its_answer_is_no_server_error(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="tinyllama.gateway")
    gone = threading.Event()

    def slow_app() -> APIGatewayHttpResolver:
        app = APIGatewayHttpResolver()

        @app.get("/slow")
        def slow() -> Response:
            gone.wait(5)
            # More than the socket buffers hold, so the write meets the closed connection.
            return Response(200, "text/plain", "x" * (8 * 1024 * 1024))

        return app

    gw = make_gateway(slow_app)
    try:
        s = connect(gw)
        s.sendall(f"GET /slow HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n\r\n".encode())
        wait_until(lambda: gw.resolvers_built == 1, 5, message="the request to reach the app")
        reset(s)
        gone.set()
        wait_until(_disconnect_logged(caplog), 10, message="the gateway to notice the hang-up")
        assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
        assert not gw.answered  # nothing was answered, and above all no 500
    finally:
        gw.stop()
