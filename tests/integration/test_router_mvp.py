"""The Lambda handler as the MVP stack runs it: no Redis, no Cognito, a data bucket.

The handler is called with API Gateway HTTP API v2.0 events (Lambda invoke needs Docker,
which this machine lacks); S3 is moto's server.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import boto3
import pytest
from aws_lambda_powertools.utilities import parameters

from backend.entrypoints import router
from backend.entrypoints.gateway import make_event

# Not the stack's real `tinyllama-data-<account>` name: moto's server is shared by the
# session and the infra test deploys that bucket.
BUCKET = "tinyllama-data-router-mvp-test"


@pytest.fixture
def mvp_env(aws_env: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    for name in ("REDIS_URL", "REDIS_HOST", "COGNITO_USER_POOL_ID"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", aws_env)
    monkeypatch.setenv("DATA_BUCKET", BUCKET)
    monkeypatch.setenv("AWS_ENDPOINT_URL_SECRETS_MANAGER", aws_env)
    monkeypatch.setenv("OPENAI_SECRET", "tinyllama/openai-mvp-test")
    sm = boto3.client("secretsmanager", endpoint_url=aws_env)
    if not sm.list_secrets(Filters=[{"Key": "name", "Values": ["tinyllama/openai-mvp-test"]}])["SecretList"]:
        sm.create_secret(Name="tinyllama/openai-mvp-test", SecretString="sk-not-a-real-key")
    parameters.clear_caches()
    boto3.client("s3", endpoint_url=aws_env).create_bucket(Bucket=BUCKET)
    router._app_from_env.cache_clear()
    yield aws_env
    router._app_from_env.cache_clear()


def test_echo_stores_prompt_and_reply_in_the_bucket(mvp_env: str) -> None:
    event = make_event("POST", "/", {"Content-Type": "text/plain"}, b"hello MVP", None, "127.0.0.1")
    result = router.handler(event, None)
    assert result["statusCode"] == 200
    body = json.loads(result["body"])
    assert body["echo"] == "hello MVP"
    obj = boto3.client("s3", endpoint_url=mvp_env).get_object(Bucket=BUCKET,
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


def test_openai_key_is_read_from_secrets_manager_once_and_never_echoed(mvp_env: str) -> None:
    first = router.handler(make_event("POST", "/", {}, b"once", None, "127.0.0.1"), None)
    # Take the secret away: a second invocation still has the key, so it was cached, not re-read.
    boto3.client("secretsmanager", endpoint_url=mvp_env).delete_secret(
        SecretId="tinyllama/openai-mvp-test", ForceDeleteWithoutRecovery=True)
    second = router.handler(make_event("POST", "/", {}, b"twice", None, "127.0.0.1"), None)
    for result in (first, second):
        assert json.loads(result["body"])["openai_key"] == "configured"
        assert "sk-not-a-real-key" not in result["body"]


def test_unreadable_openai_key_still_echoes(mvp_env: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_SECRET", "tinyllama/no-such-secret")
    router._app_from_env.cache_clear()
    result = router.handler(make_event("POST", "/", {}, b"still here", None, "127.0.0.1"), None)
    assert result["statusCode"] == 200
    body = json.loads(result["body"])
    assert body["echo"] == "still here" and body["openai_key"] == "unavailable"


def _stored_keys(endpoint: str) -> list[str]:
    listing = boto3.client("s3", endpoint_url=endpoint).list_objects_v2(Bucket=BUCKET, Prefix="prompts/")
    return [o["Key"] for o in listing.get("Contents", [])]


def test_oversize_body_is_refused_with_413_and_not_stored(mvp_env: str) -> None:
    before = _stored_keys(mvp_env)
    body = b"x" * (256 * 1024 + 1)
    result = router.handler(make_event("POST", "/", {"Content-Type": "text/plain"}, body, None, "127.0.0.1"), None)
    assert result["statusCode"] == 413
    assert json.loads(result["body"])["error"]["code"] == "payload_too_large"
    assert _stored_keys(mvp_env) == before
    # the limit is the contract's: one byte less is echoed (and stored)
    ok = router.handler(make_event("POST", "/", {}, body[:-1], None, "127.0.0.1"), None)
    assert ok["statusCode"] == 200 and len(_stored_keys(mvp_env)) == len(before) + 1


def test_without_storage_the_echo_writes_nothing(mvp_env: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """mvp.yaml's default (StorePrompts=false) leaves DATA_BUCKET unset."""
    monkeypatch.delenv("DATA_BUCKET")
    router._app_from_env.cache_clear()
    before = _stored_keys(mvp_env)
    result = router.handler(make_event("POST", "/", {}, b"not kept", None, "127.0.0.1"), None)
    assert result["statusCode"] == 200
    body = json.loads(result["body"])
    assert body["echo"] == "not kept" and "stored" not in body
    assert _stored_keys(mvp_env) == before
