"""Two resolvers in one process never read each other's request.

Powertools 3.x keeps the event being resolved on the class `BaseRouter`, shared by every
resolver in the process; a gateway that gives each thread its own resolver still mixes
requests up unless `create_app`'s resolver keeps its event on itself. The interleaving
here is forced, not hoped for: while resolver A is inside a request (after reading the
caller, before reading the body), resolver B resolves another user's request.
"""

from __future__ import annotations

import json
from typing import Any

from backend.core.prompts import PromptRequest
from backend.entrypoints.gateway import make_event
from backend.entrypoints.router import Identity, create_app


class RecordingService:
    """Records who submitted which messages; answers like PromptService does."""

    def __init__(self) -> None:
        self.submitted: list[tuple[str, str]] = []

    def submit(self, owner: str, prompt: PromptRequest) -> dict[str, Any]:
        self.submitted.append((owner, prompt.messages[-1]["content"]))
        return {"request_id": "0" * 32, "status": "queued", "compute": {"state": "ready", "eta_s": 0}}


class InterleavingIdentity(Identity):
    """Reads the caller, then lets `other` resolve a request, as another thread would."""

    def __init__(self) -> None:
        super().__init__()
        self.other: tuple[Any, dict[str, Any]] | None = None

    def owner(self, event: dict[str, Any]) -> str:
        who = super().owner(event)
        if self.other is not None:
            app, other_event = self.other
            self.other = None
            assert app.resolve(other_event, None)["statusCode"] == 202
        return who


def submit_event(sub: str, content: str) -> dict[str, Any]:
    body = json.dumps({"messages": [{"role": "user", "content": content}]}).encode()
    return make_event("POST", "/prompts", {"content-type": "application/json"}, body,
                      {"sub": sub, "token_use": "access"}, "127.0.0.1")


def test_a_request_resolved_meanwhile_on_another_resolver_does_not_leak_in() -> None:
    service = RecordingService()
    identity = InterleavingIdentity()
    app_a = create_app(service, identity)
    app_b = create_app(service, Identity())
    identity.other = (app_b, submit_event("bob", "bob's words"))

    result = app_a.resolve(submit_event("alice", "alice's words"), None)

    assert result["statusCode"] == 202, result
    # B's request finished first; A's must still be A's own body, and neither crossed.
    assert service.submitted == [("bob", "bob's words"), ("alice", "alice's words")]
    assert app_a.current_event.request_context.authorizer.jwt_claim["sub"] == "alice"
