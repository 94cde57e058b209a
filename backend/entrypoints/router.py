"""The router Lambda: API Gateway HTTP API (payload v2.0) → the prompt service.

The handler only resolves the route; routes parse input, call the domain, and one
exception handler maps domain errors to the contract's error shape. Configuration comes
from environment variables only (see `backend.entrypoints.settings`). The same handler
serves the seed's MVP stack, which has no queue: there `POST /` echoes and every other
route answers 503.

boto3 is imported only on the paths that call AWS, so a cold start stays small
(`bench/router_import.py` measures it).
"""

from __future__ import annotations

import binascii
import logging
import os
from functools import lru_cache
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response, content_types
from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEventV2

from backend.core.errors import InvalidRequest, TinyLlamaError, Unavailable
from backend.core.identity import caller
from backend.core.prompts import check_request_id, parse_json_body, parse_prompt

log = logging.getLogger("tinyllama.router")

_JSON = content_types.APPLICATION_JSON


class Identity:
    """Who is calling: the JWT's `sub`, after the checks the HTTP API authorizer skips
    (`backend.core.identity`). With a verifier, the router checks the token itself."""

    def __init__(self, verifier: Any = None, required_scope: str | None = None):
        self.verifier = verifier
        self.required_scope = required_scope

    def owner(self, event: dict[str, Any]) -> str:
        """Return the caller's `sub`, or raise Unauthorized/Forbidden saying what is wrong."""
        if self.verifier is not None:
            headers = {k.lower(): v for k, v in (event.get("headers") or {}).items()}
            from backend.adapters.jwt_verify import claims_from_bearer

            claims = claims_from_bearer(headers.get("authorization"), self.verifier)
        else:
            claims = (
                ((event.get("requestContext") or {}).get("authorizer") or {}).get("jwt") or {}
            ).get("claims") or {}
        return caller(claims, self.required_scope)


class OwnEventResolver(APIGatewayHttpResolver):
    """Powertools' HTTP API resolver, with the event it resolves kept on itself.

    Powertools stores the event on the class (`BaseRouter.current_event = ...` in
    `resolve`, checked in aws-lambda-powertools 3.x), so two resolvers resolving at once in
    one process read each other's event: one user's request answered with another's
    identity or body. Pinning the event on the instance shadows that class attribute for
    this resolver's routes. The routing context (route arguments) is per instance too, so
    one resolver still serves one request at a time: the Lambda runs one event at a time,
    and the local gateway keeps one resolver per connection thread (DESIGN.md).
    """

    def resolve(self, event: Any, context: Any) -> dict[str, Any]:
        """Resolve `event` as Powertools does, reading it from this instance only."""
        raw = event.raw_event if hasattr(event, "raw_event") else event
        self.current_event = APIGatewayProxyEventV2(raw)
        self.lambda_context = context
        return super().resolve(raw, context)


def _json(status: int, body: Any) -> Response:
    import json

    # Per-user, live answers: no cache between the app and the router (CloudFront, a
    # proxy) may keep one (infra/stack.yaml's ApiCachePolicy relies on it).
    return Response(status_code=status, content_type=_JSON, body=json.dumps(body),
                    headers={"Cache-Control": "no-store"})


def create_app(service: Any, identity: Identity, mvp: Any = None) -> APIGatewayHttpResolver:
    """Wire routes to a service. `service` is None on the MVP stack (no queue).

    The resolver serves one request at a time; a server with many threads calls this once
    per thread (see `backend.entrypoints.gateway.Gateway`)."""
    app = OwnEventResolver()

    def need_service() -> Any:
        if service is None:
            raise Unavailable(
                "This stack has no queue (it is the Lambda-only MVP). Deploy the full stack "
                "to send prompts to a GPU.",
                code="no_queue",
            )
        return service

    def owner() -> str:
        return identity.owner(app.current_event.raw_event)

    @app.post("/")
    def echo() -> Response:
        body = app.current_event.decoded_body or ""
        if len(body.encode()) > 256 * 1024:
            from backend.core.errors import PayloadTooLarge

            raise PayloadTooLarge("The body is over 256 KiB.")
        result: dict[str, Any] = {"echo": body}
        if mvp is not None:
            result.update(mvp.store(body, app.current_event.request_context.request_id))
        return _json(200, result)

    @app.post("/prompts")
    def submit() -> Response:
        svc = need_service()
        who = owner()
        prompt = parse_prompt(parse_json_body(app.current_event.decoded_body))
        return _json(202, svc.submit(who, prompt))

    @app.get("/prompts/<request_id>")
    def read(request_id: str) -> Response:
        svc = need_service()
        who = owner()
        return _json(200, svc.get(who, check_request_id(request_id)))

    @app.delete("/prompts/<request_id>")
    def cancel(request_id: str) -> Response:
        svc = need_service()
        who = owner()
        return _json(200, svc.cancel(who, check_request_id(request_id)))

    @app.get("/status")
    def status() -> Response:
        svc = need_service()
        owner()
        return _json(200, svc.status())

    @app.not_found
    def not_found(_exc: Exception) -> Response:
        return _json(404, {"error": {"code": "no_route", "message": "There is no such API route."}})

    @app.exception_handler(TinyLlamaError)
    def domain_error(exc: TinyLlamaError) -> Response:
        return _json(exc.status, exc.to_body())

    @app.exception_handler(Exception)
    def unexpected(exc: Exception) -> Response:
        import redis

        if isinstance(exc, redis.RedisError):
            log.warning("Redis unavailable: %s", exc)
            err: TinyLlamaError = Unavailable(
                "The queue is not answering (it may be restarting). Try again in a few seconds."
            )
        elif isinstance(exc, UnicodeDecodeError):
            err = InvalidRequest("The body is not UTF-8 text.", status=400)
        elif isinstance(exc, binascii.Error):  # isBase64Encoded with a body that is not base64
            err = InvalidRequest("The body is not valid base64.", status=400)
        else:
            log.exception("unexpected error")
            err = TinyLlamaError("Something went wrong on the server; it has been logged.",
                                 code="internal", status=500)
        return _json(err.status, err.to_body())

    return app


@lru_cache(maxsize=1)
def _app_from_env() -> APIGatewayHttpResolver:
    from backend.entrypoints import settings

    return create_app(settings.service_from_env(), settings.identity_from_env(), settings.mvp_from_env())


#: What the stack's monthly schedule sends (infra/stack.yaml, NewMonthSchedule's Input).
NEW_MONTH_EVENT = {"tinyllama": "new-month"}


def new_month(iam: Any = None) -> dict[str, str]:
    """The budget's new period began: lift the deny-wake policy the budget action may have
    attached at last month's cap. The router's own ledger needs nothing: it is keyed by
    month, so the new month starts at $0 of GPU by itself."""
    from backend.adapters.deny_wake import lift_deny_wake

    role, policy = os.environ.get("ROUTER_ROLE_NAME"), os.environ.get("DENY_WAKE_POLICY_ARN")
    if not (role and policy):
        return {"deny_wake": "no budget action in this stack"}
    return {"deny_wake": lift_deny_wake(role, policy, client=iam)}


def custom_resource(event: dict[str, Any], context: Any, iam: Any = None,
                    put: Any = None) -> dict[str, str]:
    """The stack's `DenyWakeRelease` custom resource: on Delete, detach the deny-wake
    policy so CloudFormation can delete the router's role and the policy (it cannot while
    the budget's policy is attached). Create and Update do nothing. CloudFormation waits
    for the answer at ResponseURL, so one is sent whatever happens: a failed detach is
    reported with its reason instead of leaving the stack waiting for an hour."""
    status, reason = "SUCCESS", "nothing to do"
    if event.get("RequestType") == "Delete":
        try:
            reason = new_month(iam)["deny_wake"]
        except Exception as exc:
            log.warning("could not detach the deny-wake policy: %s", exc)
            status, reason = "FAILED", f"Could not detach the deny-wake policy from the router's role: {exc}"
    body = {
        "Status": status,
        "Reason": reason,
        "PhysicalResourceId": event.get("PhysicalResourceId") or "deny-wake-release",
        "StackId": event["StackId"],
        "RequestId": event["RequestId"],
        "LogicalResourceId": event["LogicalResourceId"],
    }
    (put or _put_response)(event["ResponseURL"], body)
    return {"Status": status, "Reason": reason}


def _put_response(url: str, body: dict[str, Any]) -> None:
    """PUT the custom resource's answer to CloudFormation's pre-signed S3 URL (the
    documented response protocol: JSON, no Content-Type)."""
    import json
    import urllib.request

    data = json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method="PUT",
                                     headers={"Content-Type": "", "Content-Length": str(len(data))})
    with urllib.request.urlopen(request, timeout=10) as answer:
        answer.read()


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Lambda entry point (`backend.entrypoints.router.handler`): HTTP API events, the
    monthly schedule's event, and the stack's custom resource."""
    logging.getLogger().setLevel(os.environ.get("LOG_LEVEL", "INFO"))
    if "RequestType" in event and "ResponseURL" in event:
        return custom_resource(event, context)
    if event == NEW_MONTH_EVENT:
        return new_month()
    return _app_from_env().resolve(event, context)
