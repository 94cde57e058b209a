"""The HTTP client for the TinyLlama API (infra/openapi.yaml): submit, poll, cancel, status.

Blocking calls with short timeouts, meant to run off the UI thread. Every failure leaves
this module as a `desktop.core.errors.AppError` whose message a person can act on.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from desktop.core.errors import (
    ApiError,
    BudgetExceededError,
    NetworkError,
    NotFoundError,
    SessionExpiredError,
    UnavailableError,
)
from desktop.core.models import PromptState, ServerStatus

if TYPE_CHECKING:
    import requests

# (connect, read): connecting locally or to API Gateway takes milliseconds, and no route
# generates synchronously, so a read longer than 10 s means something is wrong.
DEFAULT_TIMEOUT = (3.05, 10.0)
LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})

TokenProvider = Callable[[], str | None]

# NetworkError.code when the connection itself failed (not a timeout): the Local profile
# takes it as "the background service went away" and brings it back.
UNREACHABLE = "unreachable"


class ApiClient:
    """One API endpoint and how to get a bearer token for it (called before each request)."""

    def __init__(
        self,
        base_url: str,
        token_provider: TokenProvider,
        session: requests.Session | None = None,
        timeout: tuple[float, float] = DEFAULT_TIMEOUT,
    ) -> None:
        # requests (with urllib3 and ssl: 20 MB, 0.2 s) loads with the first client, after
        # the window is on screen, not when the app's first screen is built.
        import requests

        self.base_url = base_url.rstrip("/")
        self._token = token_provider
        self._session = session or requests.Session()
        if session is None and urlsplit(self.base_url).hostname in LOOPBACK:
            # The local stack: no proxy applies, and requests would read ~/.netrc and the
            # proxy variables on every poll (a quarter of its CPU per request, measured).
            self._session.trust_env = False
        self._timeout = timeout

    def submit(
        self,
        messages: list[dict[str, str]],
        *,
        max_tokens: int = 512,
        temperature: float = 0.7,
        model: str = "",
        idempotency_key: str | None = None,
    ) -> PromptState:
        """POST /prompts; returns the accepted request (status queued or waking)."""
        body: dict[str, Any] = {
            "messages": messages,
            "max_tokens": max_tokens,
            "temperature": temperature,
        }
        if model:
            body["model"] = model
        if idempotency_key:
            body["idempotency_key"] = idempotency_key
        return PromptState.from_api(self._call("POST", "/prompts", json=body))

    def prompt(self, request_id: str) -> PromptState:
        """GET /prompts/{id}: status and the text so far."""
        return PromptState.from_api(self._call("GET", f"/prompts/{request_id}"))

    def cancel(self, request_id: str) -> PromptState:
        """DELETE /prompts/{id}: the engine stops generating."""
        return PromptState.from_api(self._call("DELETE", f"/prompts/{request_id}"))

    def status(self) -> ServerStatus:
        """GET /status."""
        return ServerStatus.from_api(self._call("GET", "/status"))

    def close(self) -> None:
        self._session.close()

    def _call(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        import requests  # loaded by __init__ already: a dictionary lookup

        headers = {"Accept": "application/json"}
        token = self._token()
        if token:
            headers["Authorization"] = f"Bearer {token}"
        url = self.base_url + path
        try:
            response = self._session.request(
                method, url, headers=headers, timeout=self._timeout, **kwargs
            )
        except requests.Timeout:
            raise NetworkError(
                f"The TinyLlama API at {self.base_url} did not answer in time. "
                "Check your network; the app keeps trying."
            ) from None
        except requests.ConnectionError:
            # Refused or reset: nothing listens there (e.g. a local service that died).
            # Sending again is safe: reads and cancels are idempotent, submits carry a key.
            raise NetworkError(
                f"Can't reach the TinyLlama API at {self.base_url}. Check your network, "
                "or whether the stack is running; the app keeps trying.",
                code=UNREACHABLE,
            ) from None
        except requests.RequestException:
            raise NetworkError(
                f"Can't reach the TinyLlama API at {self.base_url}. Check your network, "
                "or whether the stack is running; the app keeps trying."
            ) from None
        return _parse(response)


# What the gateway's bare `{"message"}` answers mean for the person (infra/openapi.yaml).
_GATEWAY_WORDS = {
    400: "The request reached the API cut short; try again.",
    403: ("Your sign-in does not allow this: the token lacks the permission (scope) the API "
          "requires. Sign in again; if this persists, the stack's sign-in settings need a look."),
    411: "The request was sent in a form the API does not take (without a length); try again.",
    413: "The message is too large to send; shorten it or split it into several.",
    429: "The API is getting too many requests; wait a moment and try again.",
}


def _parse(response: requests.Response) -> dict[str, Any]:
    try:
        data = response.json()
    except ValueError:
        data = None
    if response.ok and isinstance(data, dict):
        return data
    code, message = "", ""
    status = response.status_code
    if isinstance(data, dict) and isinstance(data.get("error"), dict):
        code = str(data["error"].get("code") or "")
        message = str(data["error"].get("message") or "")
    elif isinstance(data, dict) and "message" in data:
        # The gateway's own `{"message": "Forbidden"}` (API Gateway's, or the local
        # gateway's): the status phrase, which says nothing a person can act on.
        message = _GATEWAY_WORDS.get(status, "")
    if response.ok:
        raise ApiError("The API answered with something that is not JSON.", status=status)
    if code == "budget_exceeded":
        raise BudgetExceededError(
            message or "The monthly budget is used up, so the GPU stays off.",
            code=code, status=status,
        )
    if status == 401:
        raise SessionExpiredError(
            "Your session has expired or the token was refused. Please sign in again.",
            code=code or "unauthorized",
        )
    if status == 404:
        raise NotFoundError(message or "Not found.", code=code or "not_found", status=status)
    if status in (502, 503, 504):
        raise UnavailableError(
            message or "The API is temporarily unavailable; the app keeps trying.",
            code=code or "unavailable", status=status,
        )
    raise ApiError(message or f"The API refused the request (HTTP {status}).",
                   code=code, status=status)
