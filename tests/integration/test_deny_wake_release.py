"""The router lifts the budget's deny-wake policy: on the monthly schedule's event and on
the stack's delete (custom resource), against moto's IAM, through the Lambda handler,
with CloudFormation's answer received by a real HTTP server."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import boto3
import pytest

from backend.entrypoints import router
from tests.fixtures.aws import aws_env, moto_server  # noqa: F401  (fixtures by name)

DENY = {"Version": "2012-10-17", "Statement": [{"Effect": "Deny", "Action": "ec2:StartInstances", "Resource": "*"}]}
TRUST = {"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}]}


@pytest.fixture
def attached(aws_env: str, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> Any:  # noqa: F811
    """The router's role with the budget's deny-wake policy attached (the cap was hit)."""
    iam = boto3.client("iam", endpoint_url=aws_env)
    name = f"router-{request.node.name[:40]}"
    iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(TRUST))
    arn = iam.create_policy(PolicyName=f"deny-{name}", PolicyDocument=json.dumps(DENY))["Policy"]["Arn"]
    iam.attach_role_policy(RoleName=name, PolicyArn=arn)
    monkeypatch.setenv("ROUTER_ROLE_NAME", name)
    monkeypatch.setenv("DENY_WAKE_POLICY_ARN", arn)
    monkeypatch.setenv("AWS_ENDPOINT_URL_IAM", aws_env)
    return iam, name, arn


def _attached_policies(iam: Any, role: str) -> list[str]:
    return [p["PolicyArn"] for p in iam.list_attached_role_policies(RoleName=role)["AttachedPolicies"]]


def test_the_new_month_event_detaches_the_policy_once(attached: Any) -> None:
    iam, role, arn = attached
    assert _attached_policies(iam, role) == [arn]
    assert router.handler(dict(router.NEW_MONTH_EVENT), None) == {"deny_wake": "detached"}
    assert _attached_policies(iam, role) == []
    # Most months the cap was never reached: nothing attached is no error.
    assert router.handler(dict(router.NEW_MONTH_EVENT), None) == {"deny_wake": "not attached"}


def test_the_iam_client_uses_the_dual_stack_endpoint(monkeypatch: pytest.MonkeyPatch) -> None:
    """The router's only way out may be IPv6: iam.amazonaws.com is IPv4 only."""
    from backend.adapters.deny_wake import iam_client

    for name in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_IAM"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    assert iam_client().meta.endpoint_url == "https://iam.global.api.aws"


class Responses:
    """CloudFormation's side of a custom resource: the pre-signed URL it waits on."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_PUT(self) -> None:
                length = int(self.headers["Content-Length"])
                outer.bodies.append(json.loads(self.rfile.read(length)))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *_: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/cfn-response?X-Amz-Signature=x"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


@pytest.fixture
def cloudformation() -> Iterator[Responses]:
    responses = Responses()
    yield responses
    responses.close()


def _event(kind: str, url: str) -> dict[str, Any]:
    return {"RequestType": kind, "ResponseURL": url, "StackId": "arn:aws:cloudformation:us-east-1:1:stack/s/1",
            "RequestId": "r-1", "LogicalResourceId": "DenyWakeRelease", "ResourceType": "Custom::DenyWakeRelease",
            "ResourceProperties": {}}


def test_create_does_nothing_and_delete_detaches_so_the_role_can_be_deleted(
        attached: Any, cloudformation: Responses) -> None:
    iam, role, arn = attached
    router.handler(_event("Create", cloudformation.url), None)
    assert cloudformation.bodies[-1]["Status"] == "SUCCESS"
    assert _attached_policies(iam, role) == [arn]  # the cap's policy is not touched on create

    router.handler({**_event("Delete", cloudformation.url), "PhysicalResourceId": "deny-wake-release"}, None)
    body = cloudformation.bodies[-1]
    assert (body["Status"], body["PhysicalResourceId"], body["LogicalResourceId"]) == (
        "SUCCESS", "deny-wake-release", "DenyWakeRelease")
    assert _attached_policies(iam, role) == []
    iam.delete_role(RoleName=role)  # what CloudFormation does next: it works now
    iam.delete_policy(PolicyArn=arn)


def test_a_failed_detach_is_reported_to_cloudformation_in_words(
        attached: Any, cloudformation: Responses, monkeypatch: pytest.MonkeyPatch) -> None:
    iam = attached[0]

    def refuse(**_: Any) -> None:
        raise iam.exceptions.ServiceFailureException(
            {"Error": {"Code": "ServiceFailure", "Message": "IAM is having a bad day"}}, "DetachRolePolicy")

    class Refusing:
        exceptions = iam.exceptions
        detach_role_policy = staticmethod(refuse)

    answer = router.custom_resource(_event("Delete", cloudformation.url), None, iam=Refusing())
    assert answer["Status"] == "FAILED"
    body = cloudformation.bodies[-1]
    assert body["Status"] == "FAILED" and "IAM is having a bad day" in body["Reason"]
