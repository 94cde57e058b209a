"""Build the router's and the worker's parts from environment variables.

| variable | meaning |
| --- | --- |
| REDIS_URL | `redis://` or `rediss://` URL (local profile, tests) |
| REDIS_HOST, REDIS_PORT, REDIS_AUTH_SECRET | ElastiCache: TLS, auth token read from Secrets Manager |
| REDIS_CLUSTER | `1`: the Redis is cluster mode (ElastiCache Serverless): use the cluster client |
| RESULT_TTL_S | seconds a finished result is kept (300) |
| MAX_DELIVERIES | deliveries before a job whose worker keeps dying is failed (3) |
| COMPUTE_KIND | `ec2`, `none` (MVP) |
| INSTANCE_ID, FALLBACK_INSTANCE_TYPE | the GPU instance; type to use when g4dn has no capacity |
| BUDGET_WARNING_USD, BUDGET_HARD_CAP_USD | the budget guard |
| BUDGET_NAME, ACCOUNT_ID | the AWS Budget whose actual spend the guard reads |
| COGNITO_REGION, COGNITO_USER_POOL_ID, COGNITO_CLIENT_ID | verify tokens in the router too |
| REQUIRED_SCOPE | scope every route but `POST /` requires |
| DATA_BUCKET | MVP: store echoed prompts there |
| ENGINE, ENGINE_URL, MODEL, OPENAI_SECRET, ECHO_DELAY_S | the worker's engine |
| MAX_MODEL_LEN | the model's context in tokens: longer prompts are refused before a wake |
| IDLE_ACTION | worker: `ec2-stop` (stop its own instance, from IMDSv2) or `exit` |

No secret is ever an environment value: the environment names the secret, and Powertools'
`parameters.get_secret` reads it when first needed, cached for `SECRET_MAX_AGE_S`.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from backend.core.service import Budget, NoCompute, PromptService

if TYPE_CHECKING:
    from backend.adapters.redis_queue import RedisQueue

#: Secrets change by rotation, rarely; Powertools' default of 5 s would call Secrets
#: Manager on nearly every cold path.
SECRET_MAX_AGE_S = 3600


def _float(name: str) -> float | None:
    value = os.environ.get(name)
    return float(value) if value not in (None, "") else None


def _secret(name: str) -> str:
    """A Secrets Manager string secret, cached (boto3 is imported only on this path)."""
    from aws_lambda_powertools.utilities.parameters import get_secret

    return str(get_secret(name, max_age=SECRET_MAX_AGE_S))


def redis_url_from_env() -> str | None:
    """The queue's URL; `?cluster=true` on it (or REDIS_CLUSTER=1) selects the cluster client."""
    url = os.environ.get("REDIS_URL") or _elasticache_url()
    if url and os.environ.get("REDIS_CLUSTER", "").lower() in ("1", "true", "yes") and "cluster=" not in url:
        url += ("&" if "?" in url else "?") + "cluster=true"
    return url


def _elasticache_url() -> str | None:
    host = os.environ.get("REDIS_HOST")
    if not host:
        return None
    port = os.environ.get("REDIS_PORT", "6379")
    secret = os.environ.get("REDIS_AUTH_SECRET")
    if secret:
        token = quote(_secret(secret), safe="")
        return f"rediss://:{token}@{host}:{port}/0"
    return f"rediss://{host}:{port}/0"


def queue_from_env() -> RedisQueue:
    # redis-py is imported here, not at the top: the MVP stack has no queue, and redis is
    # about half of that cold start's imports.
    from backend.adapters.redis_queue import RedisQueue

    url = redis_url_from_env()
    if url is None:
        raise RuntimeError("set REDIS_URL, or REDIS_HOST (and REDIS_AUTH_SECRET)")
    return RedisQueue.from_url(
        url,
        result_ttl_s=int(os.environ.get("RESULT_TTL_S", "300")),
        max_deliveries=int(os.environ.get("MAX_DELIVERIES", "3")),
    )


def compute_from_env() -> Any:
    kind = os.environ.get("COMPUTE_KIND", "ec2")
    if kind == "ec2":
        from backend.adapters.compute_ec2 import Ec2Compute

        return Ec2Compute(
            os.environ["INSTANCE_ID"],
            fallback_instance_type=os.environ.get("FALLBACK_INSTANCE_TYPE", "g5.xlarge"),
        )
    if kind == "none":
        return NoCompute()
    raise RuntimeError(f"COMPUTE_KIND={kind!r}: use ec2 or none (the local profile wires its own)")


def spend_from_env(queue: RedisQueue) -> Any:
    name, account = os.environ.get("BUDGET_NAME"), os.environ.get("ACCOUNT_ID")
    if name and account:
        from backend.adapters.spend import BudgetsSpend

        return BudgetsSpend(account, name, cache=queue.r, cache_key=queue.key("spend", name))
    return None


def service_from_env() -> PromptService | None:
    """The prompt service, or None on the MVP stack (no Redis configured)."""
    if redis_url_from_env() is None:
        return None
    queue = queue_from_env()
    budget = Budget(_float("BUDGET_WARNING_USD"), _float("BUDGET_HARD_CAP_USD"))
    context = os.environ.get("MAX_MODEL_LEN")
    return PromptService(queue, compute_from_env(), spend_from_env(queue), budget,
                         describe_ttl_s=float(os.environ.get("DESCRIBE_TTL_S", "2")),
                         context_tokens=int(context) if context else None)


def identity_from_env() -> Any:
    from backend.entrypoints.router import Identity

    verifier = None
    if os.environ.get("COGNITO_USER_POOL_ID"):
        from backend.adapters.jwt_verify import CognitoVerifier

        verifier = CognitoVerifier(
            os.environ.get("COGNITO_REGION") or os.environ.get("AWS_REGION", "us-east-1"),
            os.environ["COGNITO_USER_POOL_ID"],
            os.environ["COGNITO_CLIENT_ID"],
            required_scope=os.environ.get("REQUIRED_SCOPE") or None,
        )
    return Identity(verifier, os.environ.get("REQUIRED_SCOPE") or None)


def mvp_from_env() -> Any:
    """The MVP echo's extras: the prompt log (DATA_BUCKET) and the OpenAI key (OPENAI_SECRET)."""
    bucket, secret = os.environ.get("DATA_BUCKET"), os.environ.get("OPENAI_SECRET")
    if not (bucket or secret):
        return None
    from backend.adapters.s3_store import MvpEcho, S3PromptLog

    return MvpEcho(S3PromptLog(bucket) if bucket else None, secret or None)


def engine_from_env() -> Any:
    from backend.adapters.engines import make_engine

    kind = os.environ.get("ENGINE", "openai")
    # The local llamacpp engine's per-launch key comes straight from the stack (loopback only).
    api_key = os.environ.get("ENGINE_API_KEY") or "EMPTY"
    if os.environ.get("OPENAI_SECRET"):
        api_key = _secret(os.environ["OPENAI_SECRET"])
    return make_engine(
        kind,
        url=os.environ.get("ENGINE_URL"),
        model=os.environ.get("MODEL") or None,
        api_key=api_key,
        echo_delay_s=float(os.environ.get("ECHO_DELAY_S", "0")),
    )


def idle_action_from_env() -> Callable[[], str] | None:
    """What the worker does after the idle timeout: stop its EC2 instance, or just exit."""
    action = os.environ.get("IDLE_ACTION", "exit")
    if action == "exit":
        return None
    if action == "ec2-stop":

        def stop_own_instance() -> str:
            from backend.adapters.compute_ec2 import Ec2Compute
            from backend.adapters.imds import instance_identity

            ident = instance_identity()
            if ident is None:
                return "not on EC2; nothing to stop"
            return Ec2Compute(ident.instance_id, region=ident.region).stop()

        return stop_own_instance
    raise RuntimeError(f"IDLE_ACTION={action!r}: use exit or ec2-stop")
