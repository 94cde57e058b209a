"""A loopback HTTP gateway that behaves like API Gateway's HTTP API in front of the router.

It turns each request into a payload v2.0 event, applies the JWT authorizer's rules (or a
per-launch bearer token), calls the same resolver the Lambda uses, and writes the
response back. Like the HTTP API, an authorizer rejection is `401 {"message":
"Unauthorized"}` and the router never sees the request.
"""

from __future__ import annotations

import base64
import hmac
import json
import logging
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from backend.core.errors import TinyLlamaError

log = logging.getLogger("tinyllama.gateway")

# API Gateway's own payload limit; the router enforces the contract's smaller one.
MAX_PAYLOAD_BYTES = 10 * 1024 * 1024
LOCAL_SUB = "local-user"


class TokenAuthorizer:
    """The local profile's default: one bearer token per launch."""

    def __init__(self, token: str, scope: str = "aws.cognito.signin.user.admin"):
        self.token = token
        self.scope = scope

    def claims(self, authorization: str | None) -> dict[str, Any] | None:
        if not authorization or not authorization.startswith("Bearer "):
            return None
        if not hmac.compare_digest(authorization[7:].encode(), self.token.encode()):
            return None
        return {"sub": LOCAL_SUB, "token_use": "access", "scope": self.scope}


class JwtAuthorizer:
    """The HTTP API JWT authorizer's rules against a Cognito pool (signature, issuer,
    client, expiry, scope). The real one does not check `token_use` and the router does;
    here the verifier checks it too, which turns an id token away one step earlier."""

    def __init__(self, verifier: Any):
        self.verifier = verifier

    def claims(self, authorization: str | None) -> dict[str, Any] | None:
        from backend.adapters.jwt_verify import claims_from_bearer
        from backend.core.errors import Unauthorized

        try:
            return dict(claims_from_bearer(authorization, self.verifier))
        except Unauthorized as exc:
            log.info("token rejected: %s", exc.message)
            return None
        # Any other TinyLlamaError (the pool's keys out of reach) reaches the gateway's reply.


def make_event(method: str, target: str, headers: dict[str, str], body: bytes,
               claims: dict[str, Any] | None, source_ip: str) -> dict[str, Any]:
    """An API Gateway HTTP API payload v2.0 event."""
    parts = urlsplit(target)
    now = time.time()
    try:
        text, b64 = body.decode("utf-8"), False
    except UnicodeDecodeError:
        text, b64 = base64.b64encode(body).decode(), True
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": parts.path,
        "rawQueryString": parts.query,
        "headers": {k.lower(): v for k, v in headers.items()},
        "requestContext": {
            "accountId": "local",
            "apiId": "local",
            "domainName": headers.get("Host", "127.0.0.1"),
            "http": {
                "method": method,
                "path": parts.path,
                "protocol": "HTTP/1.1",
                "sourceIp": source_ip,
                "userAgent": headers.get("User-Agent", ""),
            },
            "requestId": uuid.uuid4().hex,
            "routeKey": "$default",
            "stage": "$default",
            "time": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now)),
            "timeEpoch": int(now * 1000),
        },
        "isBase64Encoded": b64,
    }
    if body:
        event["body"] = text
    if parts.query:
        event["queryStringParameters"] = dict(parse_qsl(parts.query))
    if claims is not None:
        event["requestContext"]["authorizer"] = {"jwt": {"claims": claims, "scopes": None}}
    return event


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # socketserver's default backlog of 5 resets connections when a client opens dozens
    # at once (the desktop polling several answers, the concurrency benchmark).
    request_queue_size = 128


class Gateway:
    """Serves `app` (a Powertools resolver) on 127.0.0.1:`port` (0 picks a free port)."""

    def __init__(self, app: Any, authorizer: Any, *, port: int = 0, host: str = "127.0.0.1"):
        self.app = app
        self.authorizer = authorizer
        gateway = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body go out in separate writes; with Nagle on, a keep-alive
            # client waits ~40 ms for the delayed ACK on every response.
            disable_nagle_algorithm = True
            server_version = "tinyllama-gateway"

            def log_message(self, fmt: str, *args: Any) -> None:
                log.debug("%s " + fmt, self.client_address[0], *args)

            def _serve(self) -> None:
                gateway.handle(self)

            do_GET = do_POST = do_DELETE = do_PUT = do_PATCH = _serve

        self.server = _Server((host, port), Handler)
        self.port = self.server.server_address[1]
        self.url = f"http://{host}:{self.port}"
        self._thread: threading.Thread | None = None

    def handle(self, req: BaseHTTPRequestHandler) -> None:
        try:
            self._handle(req)
        except TinyLlamaError as exc:
            self._reply(req, exc.status, exc.to_body())
        except Exception:  # the gateway must answer, never drop the connection
            log.exception("gateway error")
            self._reply(req, 500, {"message": "Internal Server Error"})

    def _handle(self, req: BaseHTTPRequestHandler) -> None:
        length = req.headers.get("Content-Length")
        if req.headers.get("Transfer-Encoding", "").lower() == "chunked":
            return self._reply(req, 411, {"message": "Length Required"})
        try:
            size = int(length or 0)
        except ValueError:
            size = -1
        if size < 0:  # rfile.read(-1) would wait for EOF, holding the thread while the client waits
            return self._reply(req, 400, {"message": "Bad Request"})
        if size > MAX_PAYLOAD_BYTES:
            return self._reply(req, 413, {"message": "Request Entity Too Large"})
        body = req.rfile.read(size) if size else b""
        claims = None
        if not (req.command == "POST" and urlsplit(req.path).path == "/"):  # the MVP echo is open
            claims = self.authorizer.claims(req.headers.get("Authorization"))
            if claims is None:
                return self._reply(req, 401, {"message": "Unauthorized"},
                                   {"WWW-Authenticate": 'Bearer realm="tinyllama"'})
        event = make_event(req.command, req.path, dict(req.headers.items()), body, claims,
                           req.client_address[0])
        result = self.app.resolve(event, None)
        payload = result.get("body") or ""
        data = base64.b64decode(payload) if result.get("isBase64Encoded") else payload.encode()
        self._send(req, result["statusCode"], data, result.get("headers") or {})

    def _reply(self, req: BaseHTTPRequestHandler, status: int, body: dict[str, Any],
               headers: dict[str, str] | None = None) -> None:
        self._send(req, status, json.dumps(body).encode(),
                   {"Content-Type": "application/json", **(headers or {})})

    @staticmethod
    def _send(req: BaseHTTPRequestHandler, status: int, data: bytes, headers: dict[str, str]) -> None:
        req.send_response(status)
        for k, v in headers.items():
            req.send_header(k, v)
        req.send_header("Content-Length", str(len(data)))
        req.end_headers()
        req.wfile.write(data)

    def start(self) -> Gateway:
        self._thread = threading.Thread(target=self.server.serve_forever, name="gateway", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        if self._thread:
            self._thread.join()
