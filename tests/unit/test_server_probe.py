"""The OpenAI-compatible server's model list, against real loopback HTTP servers."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from desktop.services.server_probe import ServerProbeError, list_models


@pytest.fixture
def keyed_server() -> Iterator[tuple[str, list[str | None]]]:
    """Answers /v1/models only to `Bearer right-key`; records every Authorization header."""
    seen: list[str | None] = []

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *_args: Any) -> None:
            pass

        def do_GET(self) -> None:
            seen.append(self.headers.get("Authorization"))
            ok = self.path == "/v1/models" and self.headers.get("Authorization") == "Bearer right-key"
            body = b'{"object":"list","data":[{"id":"a"},{"id":"b"}]}' if ok else b'{"error":"no"}'
            self.send_response(200 if ok else (404 if self.path != "/v1/models" else 401))
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", seen
    httpd.shutdown()
    httpd.server_close()


def test_models_are_listed_with_the_key(keyed_server) -> None:  # type: ignore[no-untyped-def]
    base, seen = keyed_server
    assert list_models(base + "/v1/", "right-key") == ["a", "b"]
    assert seen == ["Bearer right-key"]


def test_a_wrong_key_and_a_wrong_address_are_said_in_words(keyed_server) -> None:  # type: ignore[no-untyped-def]
    base, _seen = keyed_server
    with pytest.raises(ServerProbeError, match="refused the API key"):
        list_models(base + "/v1", "wrong")
    with pytest.raises(ServerProbeError, match="ending in /v1"):
        list_models(base, "right-key")


def test_the_fixture_openai_server_and_nothing_listening(openai_server) -> None:  # type: ignore[no-untyped-def]
    assert list_models(openai_server.url) == ["tiny"]
    openai_server.answering = False
    with pytest.raises(ServerProbeError, match="HTTP 503"):
        list_models(openai_server.url)
    with pytest.raises(ServerProbeError, match="Nothing answers"):
        list_models("http://127.0.0.1:9/v1")
