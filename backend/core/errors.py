"""The domain's errors. Each carries the HTTP status and code of the API contract.

Messages are written for the person who will read them in the app, so they say what
happened and what to do next. Edges (router, gateway, CLI) translate these into the
`{"error": {"code", "message"}}` shape; nothing below them formats HTTP.
"""

from __future__ import annotations


class TinyLlamaError(Exception):
    """Base of every error the API answers with; never a 500."""

    status = 400
    code = "bad_request"

    def __init__(self, message: str, *, code: str | None = None, status: int | None = None):
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status

    def to_body(self) -> dict[str, dict[str, str]]:
        """The contract's error shape."""
        return {"error": {"code": self.code, "message": self.message}}


class InvalidRequest(TinyLlamaError):
    """The body is not what the contract allows (422), or not JSON at all (400)."""

    status = 422
    code = "invalid_request"


class PayloadTooLarge(TinyLlamaError):
    """The body is over the contract's size limit."""

    status = 413
    code = "payload_too_large"


class Unauthorized(TinyLlamaError):
    """No caller we can trust: no token, or one that fails a check (401)."""

    status = 401
    code = "unauthorized"


class Forbidden(Unauthorized):
    """Signed in, but not allowed (403). A kind of Unauthorized, so whatever turns away
    an unverified caller (the local gateway's authorizer) turns this one away too."""

    status = 403
    code = "forbidden"


class NotFound(TinyLlamaError):
    """No such request for this caller (someone else's looks the same)."""

    status = 404
    code = "not_found"


class Unavailable(TinyLlamaError):
    """A dependency is away (Redis restarting, no queue in this stack)."""

    status = 503
    code = "unavailable"


class BudgetExceeded(TinyLlamaError):
    """The month's spend passed the hard cap, so the GPU is not woken."""

    status = 403
    code = "budget_exceeded"


class ComputeError(TinyLlamaError):
    """The GPU could not be started or stopped (capacity, permissions)."""

    status = 503
    code = "compute_unavailable"
