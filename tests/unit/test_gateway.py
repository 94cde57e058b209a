"""The loopback gateway's own HTTP handling, before any event reaches the router."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from backend.entrypoints.gateway import Gateway, TokenAuthorizer
from backend.entrypoints.router import Identity, create_app


@pytest.fixture
def gateway() -> Iterator[Gateway]:
    gw = Gateway(create_app(None, Identity()), TokenAuthorizer("per-launch-token")).start()
    try:
        yield gw
    finally:
        gw.stop()


def raw_request(gw: Gateway, request: bytes) -> bytes:
    """Send bytes as they are (no client library would send a bad Content-Length)."""
    with socket.create_connection(("127.0.0.1", gw.port), timeout=5) as s:
        # Keep our side open: a gateway that reads the body "to EOF" must not get one.
        s.sendall(request)
        reply = b""
        while chunk := s.recv(65536):  # raises TimeoutError if the gateway never answers
            reply += chunk
        return reply


@pytest.mark.parametrize("length", [b"-1", b"-5", b"abc"])
def test_bad_content_length_is_400_at_once(gateway: Gateway, length: bytes) -> None:
    head = b"POST / HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: " + length
    reply = raw_request(gateway, head + b"\r\n\r\nhello")
    assert reply.startswith(b"HTTP/1.1 400 "), reply


def test_good_content_length_echoes(gateway: Gateway) -> None:
    reply = raw_request(gateway, b"POST / HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 5\r\n\r\nhello")
    assert reply.startswith(b"HTTP/1.1 200 ") and b'"echo": "hello"' in reply, reply
