"""instance_identity() against a small local IMDSv2 emulator (a real HTTP server).

The emulator behaves like EC2's IMDS with IMDSv2 required: PUT /latest/api/token needs the
TTL header and hands out a fresh token; GETs without that exact token get 401.
"""

from __future__ import annotations

import socket
import time

import pytest
import requests

from backend.adapters.imds import InstanceIdentity, instance_identity


def test_reads_identity_with_an_imdsv2_token(imds):
    identity = instance_identity(base_url=imds.url)

    assert identity == InstanceIdentity(
        instance_id="i-0abc1234def567890",
        region="eu-central-1",
        instance_type="g4dn.xlarge",
        availability_zone="eu-central-1b",
        account_id="123456789012",
    )
    (put, get) = imds.requests
    assert put[:2] == ("PUT", "/latest/api/token")
    assert int(put[2]["X-aws-ec2-metadata-token-ttl-seconds"]) > 0
    assert get[:2] == ("GET", "/latest/dynamic/instance-identity/document")
    assert get[2]["X-aws-ec2-metadata-token"] in imds.tokens


def test_emulator_refuses_imdsv1(imds):
    # Guards the emulator itself: a token-less GET must fail, or the test above proves little.
    session = requests.Session()
    session.trust_env = False
    reply = session.get(imds.url + "/latest/dynamic/instance-identity/document", timeout=2)
    assert reply.status_code == 401


def test_proxy_settings_are_ignored(imds, monkeypatch):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        dead = sock.getsockname()[1]
    for name in ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY"):
        monkeypatch.setenv(name, f"http://127.0.0.1:{dead}")
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)

    identity = instance_identity(base_url=imds.url)

    assert identity is not None and identity.region == "eu-central-1"


def test_trailing_slash_in_base_url(imds):
    identity = instance_identity(base_url=imds.url + "/")
    assert identity is not None and identity.instance_id == "i-0abc1234def567890"


def test_none_when_nothing_listens():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    # the port is closed now: connection refused, as off EC2 with a local firewall
    assert instance_identity(timeout=0.5, base_url=f"http://127.0.0.1:{port}") is None


def test_none_when_imds_never_answers():
    # Accepts connections (the kernel's backlog) but never replies: a read timeout.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(4)
        port = sock.getsockname()[1]
        started = time.monotonic()
        assert instance_identity(timeout=0.2, base_url=f"http://127.0.0.1:{port}") is None
        assert time.monotonic() - started < 2.0


def test_none_when_imds_is_disabled(imds):
    imds.token_status = 403  # what IMDS answers when the instance has it turned off
    assert instance_identity(base_url=imds.url) is None
    assert [r[0] for r in imds.requests] == ["PUT"]


@pytest.mark.parametrize("document", ["<html>captive portal</html>", {"instanceId": "i-1"}])
def test_none_for_something_that_is_not_imds(imds, document):
    imds.document = document
    assert instance_identity(base_url=imds.url) is None
