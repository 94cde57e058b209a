"""instance_identity() against a small local IMDSv2 emulator (a real HTTP server).

The emulator behaves like EC2's IMDS with IMDSv2 required: PUT /latest/api/token needs the
TTL header and hands out a fresh token; GETs without that exact token get 401.
"""

from __future__ import annotations

import json
import secrets
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

from backend.adapters.imds import InstanceIdentity, instance_identity

DOCUMENT = {
    "accountId": "123456789012",
    "architecture": "x86_64",
    "availabilityZone": "eu-central-1b",
    "imageId": "ami-0123456789abcdef0",
    "instanceId": "i-0abc1234def567890",
    "instanceType": "g4dn.xlarge",
    "pendingTime": "2026-11-26T03:00:00Z",
    "privateIp": "10.0.1.23",
    "region": "eu-central-1",
    "version": "2017-09-30",
}


class Imds(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), ImdsHandler)
        self.tokens: set[str] = set()
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        self.document: object = DOCUMENT
        self.token_status = 200

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"


class ImdsHandler(BaseHTTPRequestHandler):
    server: Imds

    def log_message(self, *args):  # keep test output quiet
        pass

    def _reply(self, status: int, body: str, content_type: str = "text/plain") -> None:
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_PUT(self):
        self.server.requests.append(("PUT", self.path, dict(self.headers)))
        if self.path != "/latest/api/token":
            return self._reply(404, "Not Found")
        if self.server.token_status != 200:
            return self._reply(self.server.token_status, "Forbidden")
        ttl = self.headers.get("X-aws-ec2-metadata-token-ttl-seconds", "")
        if not ttl.isdigit() or not 1 <= int(ttl) <= 21600:
            return self._reply(400, "Bad Request")
        token = secrets.token_urlsafe(32)
        self.server.tokens.add(token)
        return self._reply(200, token)

    def do_GET(self):
        self.server.requests.append(("GET", self.path, dict(self.headers)))
        if self.headers.get("X-aws-ec2-metadata-token") not in self.server.tokens:
            return self._reply(401, "Unauthorized")
        if self.path == "/latest/dynamic/instance-identity/document":
            doc = self.server.document
            body = doc if isinstance(doc, str) else json.dumps(doc)
            return self._reply(200, body, "text/plain")
        if self.path == "/latest/meta-data/instance-id":
            return self._reply(200, DOCUMENT["instanceId"])
        return self._reply(404, "Not Found")


@pytest.fixture
def imds():
    server = Imds()
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join()


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
