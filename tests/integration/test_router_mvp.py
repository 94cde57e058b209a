"""The Lambda handler as the MVP stack runs it: no Redis, no Cognito, a data bucket.

The handler is called with API Gateway HTTP API v2.0 events (Lambda invoke needs Docker,
which this machine lacks); S3 is moto's server.
"""

from __future__ import annotations

import json

import boto3
import pytest

from backend.entrypoints import router
from backend.entrypoints.gateway import make_event
from tests.fixtures.aws import aws_env, moto_server  # noqa: F401


@pytest.fixture
def mvp_env(aws_env: str, monkeypatch: pytest.MonkeyPatch) -> str:  # noqa: F811
    for name in ("REDIS_URL", "REDIS_HOST", "COGNITO_USER_POOL_ID"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", aws_env)
    monkeypatch.setenv("DATA_BUCKET", "tinyllama-data-123456789012")
    boto3.client("s3", endpoint_url=aws_env).create_bucket(Bucket="tinyllama-data-123456789012")
    router._app_from_env.cache_clear()
    yield aws_env
    router._app_from_env.cache_clear()


def test_echo_stores_prompt_and_reply_in_the_bucket(mvp_env: str) -> None:
    event = make_event("POST", "/", {"Content-Type": "text/plain"}, b"hello MVP", None, "127.0.0.1")
    result = router.handler(event, None)
    assert result["statusCode"] == 200
    body = json.loads(result["body"])
    assert body["echo"] == "hello MVP"
    obj = boto3.client("s3", endpoint_url=mvp_env).get_object(Bucket="tinyllama-data-123456789012",
                                                               Key=body["stored"])
    stored = json.loads(obj["Body"].read())
    assert stored["prompt"] == "hello MVP" and stored["reply"] == "hello MVP"
    assert body["stored"].endswith(event["requestContext"]["requestId"] + ".json")


def test_queue_routes_say_the_stack_has_no_queue(mvp_env: str) -> None:
    claims = {"sub": "someone", "token_use": "access"}
    body = json.dumps({"messages": [{"role": "user", "content": "hi"}]}).encode()
    for method, path in (("POST", "/prompts"), ("GET", "/status"), ("GET", "/prompts/" + "a" * 32)):
        result = router.handler(make_event(method, path, {}, body if method == "POST" else b"", claims, "1.2.3.4"),
                                None)
        assert result["statusCode"] == 503
        assert json.loads(result["body"])["error"]["code"] == "no_queue"
