"""A loopback HTTP gateway that behaves like API Gateway's HTTP API in front of the router.

It turns each request into a payload v2.0 event, applies the JWT authorizer's rules (or a
per-launch bearer token), calls the same resolver the Lambda uses, and writes the
response back. Like the HTTP API, an authorizer rejection is `401 {"message":
"Unauthorized"}` (or `403 {"message": "Forbidden"}` for a token without the route's
scope) and the router never sees the request.

Many requests at once: Powertools' resolver keeps per-request state on itself (the route
arguments, and the event on its class, which `router.OwnEventResolver` pins on the
instance), so no two requests may share one. The gateway builds resolvers from a factory
and lends each to one request at a time; the connection threads are bounded, so the
resolvers are too. Every connection has a read timeout, so a stalled or idle client frees
its thread.
"""

from __future__ import annotations

import base64
import contextlib
import hmac
import json
import logging
import queue
import socket
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol
from urllib.parse import parse_qsl, urlsplit

from backend.core.errors import TinyLlamaError, Unauthorized

log = logging.getLogger("tinyllama.gateway")

# API Gateway's own payload limit; the router enforces the contract's smaller one.
MAX_PAYLOAD_BYTES = 10 * 1024 * 1024
LOCAL_SUB = "local-user"
#: The scope the deployed stack's routes require (infra/stack.yaml `RequiredScope`): the
#: one scope Cognito puts in access tokens from the app's SRP sign-in.
REQUIRED_SCOPE = "aws.cognito.signin.user.admin"
#: Connection threads at most. The app polls a few answers at once over keep-alive
#: connections; the concurrency benchmark opens 32 pollers plus their submits.
MAX_CONNECTIONS = 64
#: A connection that sends nothing (idle keep-alive, or a body that stops short) for this
#: long is closed, so it cannot hold a thread.
READ_TIMEOUT_S = 15.0
#: How long a new connection waits for a free thread before it is answered 503.
SLOT_WAIT_S = 5.0
#: The methods the gateway hands to the router; anything else is 405 here.
METHODS = ("GET", "POST", "DELETE", "PUT", "PATCH", "HEAD", "OPTIONS")
_DISCONNECTS = (BrokenPipeError, ConnectionResetError, ConnectionAbortedError)


class AuthRejected(Exception):
    """The authorizer turned the request away, as the HTTP API does: 401 or 403 with its
    own `{"message"}` body and a `www-authenticate` header saying why (RFC 6750)."""

    def __init__(self, status: int, error: str, description: str = "", scope: str = ""):
        super().__init__(description or error)
        self.status = status
        self.error = error
        self.description = description
        self.scope = scope

    @property
    def www_authenticate(self) -> str:
        """The header value, in the HTTP API's form."""
        value = f'Bearer scope="{self.scope}" error="{self.error}"'
        return value + (f' error_description="{self.description}"' if self.description else "")

    @property
    def body(self) -> dict[str, str]:
        """`{"message": "Unauthorized"}` or `{"message": "Forbidden"}`, which API Gateway
        does not let anyone change."""
        return {"message": HTTPStatus(self.status).phrase}


class Authorizer(Protocol):
    """What the gateway asks before a request reaches the router."""

    def authorize(self, authorization: str | None) -> dict[str, Any]:
        """The caller's claims, or raise `AuthRejected`."""
        ...


def _bearer(authorization: str | None) -> str:
    """The token of a `Bearer` header, the scheme in any case (RFC 7235), or AuthRejected."""
    from backend.adapters.jwt_verify import bearer_token

    try:
        return bearer_token(authorization)
    except Unauthorized as exc:
        raise AuthRejected(401, "invalid_token", exc.message) from None


class TokenAuthorizer:
    """The local profile's default: one bearer token per launch."""

    def __init__(self, token: str, scope: str = REQUIRED_SCOPE):
        self.token = token
        self.scope = scope

    def authorize(self, authorization: str | None) -> dict[str, Any]:
        """The local user's claims when the header carries this launch's token."""
        if not hmac.compare_digest(_bearer(authorization).encode(), self.token.encode()):
            raise AuthRejected(401, "invalid_token", "the token is not this gateway's")
        return {"sub": LOCAL_SUB, "token_use": "access", "scope": self.scope}


class JwtAuthorizer:
    """The HTTP API JWT authorizer's rules against a Cognito pool (signature, issuer,
    client, expiry, scope). The real one does not check `token_use` and the router does;
    here the verifier checks it too, which turns an id token away one step earlier.
    Give the verifier the route's `required_scope`: without it a token lacking the scope
    would pass here and fail only on AWS."""

    def __init__(self, verifier: Any):
        self.verifier = verifier

    def authorize(self, authorization: str | None) -> dict[str, Any]:
        """The verified claims; a missing scope is 403, anything else wrong 401."""
        from backend.adapters.jwt_verify import claims_from_bearer

        scope = " ".join(sorted(getattr(self.verifier, "required_scopes", ()) or ()))
        try:
            return dict(claims_from_bearer(authorization, self.verifier))
        except Unauthorized as exc:
            log.info("token rejected: %s", exc.message)
            if exc.status == 403:
                raise AuthRejected(403, "insufficient_scope", exc.message, scope) from None
            raise AuthRejected(401, "invalid_token", exc.message, scope) from None
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


class _BodyIncomplete(Exception):
    """The client sent less than its Content-Length (and closed, or stalled)."""


class _Server(ThreadingHTTPServer):
    """One thread per connection, at most `max_connections` of them."""

    daemon_threads = True
    # socketserver's default backlog of 5 resets connections when a client opens dozens
    # at once (the desktop polling several answers, the concurrency benchmark).
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler],
                 max_connections: int, slot_wait_s: float):
        self._slots = threading.BoundedSemaphore(max_connections)
        self.slot_wait_s = slot_wait_s
        super().__init__(address, handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        # Waiting here holds the accept loop, so further connections wait in the backlog:
        # back-pressure rather than an unbounded number of threads.
        if not self._slots.acquire(timeout=self.slot_wait_s):
            log.warning("every connection thread is busy; answering 503")
            self._refuse(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()

    def _refuse(self, request: socket.socket) -> None:
        body = json.dumps({"message": "Service Unavailable"}).encode()
        head = (f"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\nRetry-After: 1\r\nConnection: close\r\n\r\n")
        with contextlib.suppress(OSError):  # it may have gone already; nothing to tell it then
            request.sendall(head.encode() + body)
        self.shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # socketserver prints a traceback to stderr by default; a client that hangs up or
        # stalls is ordinary, anything else is a bug worth a logged traceback.
        exc = sys.exc_info()[1]
        if isinstance(exc, (*_DISCONNECTS, TimeoutError)):
            log.debug("connection from %s ended: %r", client_address, exc)
        else:
            log.exception("gateway connection error from %s", client_address)


class Gateway:
    """Serves the router on 127.0.0.1:`port` (0 picks a free port).

    `app_factory()` builds one Powertools resolver (`router.create_app(...)`); the gateway
    builds them as connection threads need them and lends each to one request at a time.
    `answered` counts the statuses really sent (a client that hung up counts nothing).
    """

    def __init__(self, app_factory: Callable[[], Any], authorizer: Authorizer, *, port: int = 0,
                 host: str = "127.0.0.1", max_connections: int = MAX_CONNECTIONS,
                 read_timeout_s: float = READ_TIMEOUT_S, slot_wait_s: float = SLOT_WAIT_S):
        self.app_factory = app_factory
        self.authorizer = authorizer
        self.max_connections = max_connections
        self.answered: Counter[int] = Counter()
        self.resolvers_built = 0
        self._idle: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._lock = threading.Lock()
        gateway = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body go out in separate writes; with Nagle on, a keep-alive
            # client waits ~40 ms for the delayed ACK on every response.
            disable_nagle_algorithm = True
            server_version = "tinyllama-gateway"
            timeout = read_timeout_s  # StreamRequestHandler sets it on the socket

            def log_message(self, fmt: str, *args: Any) -> None:
                log.debug("%s " + fmt, self.client_address[0], *args)

            def _serve(self) -> None:
                gateway.handle(self)

            do_GET = do_POST = do_DELETE = do_PUT = do_PATCH = do_HEAD = do_OPTIONS = _serve

            def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
                # http.server's own errors (a malformed request line, headers too long, a
                # method with no do_X) are HTML pages; API Gateway answers JSON.
                headers = {"Connection": "close"}
                if code == HTTPStatus.NOT_IMPLEMENTED:  # an unknown method
                    code, headers["Allow"] = HTTPStatus.METHOD_NOT_ALLOWED, ", ".join(METHODS)
                self.close_connection = True
                gateway._reply(self, code, {"message": HTTPStatus(code).phrase}, headers)

        self.server = _Server((host, port), Handler, max_connections, slot_wait_s)
        self.port = self.server.server_address[1]
        self.url = f"http://{host}:{self.port}"
        self._thread: threading.Thread | None = None

    # -- resolvers -----------------------------------------------------------------------

    def _borrow(self) -> Any:
        try:
            return self._idle.get_nowait()
        except queue.Empty:
            with self._lock:
                self.resolvers_built += 1
            return self.app_factory()

    def _resolve(self, event: dict[str, Any]) -> dict[str, Any]:
        app = self._borrow()
        try:
            return dict(app.resolve(event, None))
        finally:
            self._idle.put(app)

    # -- requests ------------------------------------------------------------------------

    def handle(self, req: BaseHTTPRequestHandler) -> None:
        """Answer one request on `req`'s connection; never raises."""
        try:
            self._handle(req)
        except _DISCONNECTS as exc:  # the client hung up; nobody is left to answer
            log.debug("client %s disconnected: %r", req.client_address[0], exc)
            req.close_connection = True
        except _BodyIncomplete:
            req.close_connection = True  # what follows on this connection is unframed
            self._reply(req, 400, {"message": "Bad Request"}, {"Connection": "close"})
        except TinyLlamaError as exc:
            self._reply(req, exc.status, exc.to_body())
        except Exception:  # the gateway must answer, never drop the connection
            log.exception("gateway error")
            self._reply(req, 500, {"message": "Internal Server Error"})

    def _read_body(self, req: BaseHTTPRequestHandler, size: int) -> bytes:
        chunks, left = [], size
        while left:
            try:
                chunk = req.rfile.read1(min(left, 65536))  # type: ignore[attr-defined]
            except TimeoutError:
                log.info("client %s stalled mid-body", req.client_address[0])
                raise _BodyIncomplete from None
            if not chunk:
                raise _BodyIncomplete
            chunks.append(chunk)
            left -= len(chunk)
        return b"".join(chunks)

    def _handle(self, req: BaseHTTPRequestHandler) -> None:
        length = req.headers.get("Content-Length")
        if req.headers.get("Transfer-Encoding", "").lower() == "chunked":
            req.close_connection = True  # the chunked body is left unread
            return self._reply(req, 411, {"message": "Length Required"}, {"Connection": "close"})
        try:
            size = int(length or 0)
        except ValueError:
            size = -1
        if size < 0:  # rfile.read(-1) would wait for EOF, holding the thread while the client waits
            req.close_connection = True
            return self._reply(req, 400, {"message": "Bad Request"}, {"Connection": "close"})
        if size > MAX_PAYLOAD_BYTES:
            req.close_connection = True
            return self._reply(req, 413, {"message": "Request Entity Too Large"}, {"Connection": "close"})
        body = self._read_body(req, size)
        claims = None
        if not (req.command == "POST" and urlsplit(req.path).path == "/"):  # the MVP echo is open
            try:
                claims = self.authorizer.authorize(req.headers.get("Authorization"))
            except AuthRejected as rejected:
                return self._reply(req, rejected.status, rejected.body,
                                   {"WWW-Authenticate": rejected.www_authenticate})
        event = make_event(req.command, req.path, dict(req.headers.items()), body, claims,
                           req.client_address[0])
        result = self._resolve(event)
        payload = result.get("body") or ""
        data = base64.b64decode(payload) if result.get("isBase64Encoded") else payload.encode()
        self._send(req, result["statusCode"], data, result.get("headers") or {})

    def _reply(self, req: BaseHTTPRequestHandler, status: int, body: dict[str, Any],
               headers: dict[str, str] | None = None) -> None:
        self._send(req, status, json.dumps(body).encode(),
                   {"Content-Type": "application/json", **(headers or {})})

    def _send(self, req: BaseHTTPRequestHandler, status: int, data: bytes, headers: dict[str, str]) -> None:
        req.send_response(status)
        for k, v in headers.items():
            req.send_header(k, v)
        req.send_header("Content-Length", str(len(data)))
        req.end_headers()
        if req.command != "HEAD":  # HEAD: the headers of the answer, never its body
            req.wfile.write(data)
        req.wfile.flush()
        with self._lock:
            self.answered[status] += 1

    # -- life ----------------------------------------------------------------------------

    def start(self) -> Gateway:
        """Serve on a background thread; returns self."""
        self._thread = threading.Thread(target=self.server.serve_forever, name="gateway", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop accepting and close the listening socket."""
        self.server.shutdown()
        self.server.server_close()
        if self._thread:
            self._thread.join()
