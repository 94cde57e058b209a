"""Build the router's and the worker's parts from environment variables.

| variable | meaning |
| --- | --- |
| REDIS_URL | `redis://` or `rediss://` URL (local profile, tests) |
| REDIS_HOST, REDIS_PORT, REDIS_AUTH_SECRET | TLS; the password from Secrets Manager (plain, or JSON `password`) |
| REDIS_CA_IN_SECRET | `1` (RedisMode=instance): verify the Redis against the PEM in the secret's JSON `ca` |
| REDIS_CA_CERTS | a CA bundle file to verify the Redis with (self-hosted Redis, tests) |
| REDIS_CLUSTER | `1`: the Redis is cluster mode (ElastiCache Serverless): use the cluster client |
| RESULT_TTL_S | seconds a finished result is kept (300) |
| MAX_DELIVERIES | deliveries before a job whose worker keeps dying is failed (3) |
| COMPUTE_KIND | `ec2`, `none` (MVP) |
| INSTANCE_ID, FALLBACK_INSTANCE_TYPE | the GPU instance; type to use when g4dn has no capacity |
| BUDGET_WARNING_USD, BUDGET_HARD_CAP_USD | the budget guard |
| BUDGET_NAME, ACCOUNT_ID | the AWS Budget whose actual spend the guard reads |
| FIXED_MONTHLY_USD, STACK_COST_PARAMETERS | the idle month: USD, or the template's parameters (JSON) to price |
| WAKE_COMMIT_S | seconds of GPU a wake costs at least (the worker's idle timeout) |
| GPU_PRICE_PER_HOUR_USD | prices a GPU type the price table lacks |
| ROUTER_ROLE_NAME, DENY_WAKE_POLICY_ARN | the budget's deny-wake policy, lifted each new month and on delete |
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

import json
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


def secrets_provider() -> Any:
    """Powertools' Secrets Manager provider, on a client that uses the dual-stack endpoint
    (backend/adapters/aws_endpoints.py) and gives up in seconds: Redis' token is read
    inside a request (API Gateway waits 30 s). It is installed as Powertools' default
    provider, so `get_secret` and `parameters.clear_caches()` work on the same cache."""
    from aws_lambda_powertools.utilities.parameters import SecretsProvider
    from aws_lambda_powertools.utilities.parameters.constants import DEFAULT_PROVIDERS

    provider = DEFAULT_PROVIDERS.get("secrets")
    if provider is None or not provider.client.meta.config.use_dualstack_endpoint:
        from backend.adapters.aws_endpoints import client_config

        provider = SecretsProvider(boto_config=client_config(
            "secretsmanager", connect_timeout=3, read_timeout=5,
            retries={"mode": "standard", "total_max_attempts": 2}))
        DEFAULT_PROVIDERS["secrets"] = provider
    return provider


def _secret(name: str, *, force: bool = False) -> str:
    """A Secrets Manager string secret, cached (boto3 is imported only on this path)."""
    return str(secrets_provider().get(name, max_age=SECRET_MAX_AGE_S, force_fetch=force))


def _redis_secret(name: str, *, force: bool = False) -> tuple[str, str | None]:
    """The Redis password and, when the Redis publishes one, its CA certificate (PEM).

    CloudFormation generates the secret as a plain token (what ElastiCache's AuthToken
    takes); the RedisMode=instance machine rewrites it as `{"password": ..., "ca": PEM}`
    (infra/redis/bootstrap_redis.sh). Both shapes are read here.
    """
    raw = _secret(name, force=force)
    try:
        value = json.loads(raw)
    except ValueError:
        return raw, None
    if isinstance(value, dict) and isinstance(value.get("password"), str):
        ca = value.get("ca")
        return value["password"], ca if isinstance(ca, str) and ca.strip() else None
    return raw, None


def redis_url_from_env() -> str | None:
    """The queue's URL; `?cluster=true` on it (or REDIS_CLUSTER=1) selects the cluster client."""
    url = os.environ.get("REDIS_URL") or _elasticache_url()
    if url and os.environ.get("REDIS_CLUSTER", "").lower() in ("1", "true", "yes") and "cluster=" not in url:
        url += ("&" if "?" in url else "?") + "cluster=true"
    return url


def _elasticache_url() -> str | None:
    """`rediss://` to REDIS_HOST:REDIS_PORT with the password from REDIS_AUTH_SECRET."""
    return _redis_url_and_ca()[0]


def _redis_url_and_ca(*, force: bool = False) -> tuple[str | None, str | None]:
    host = os.environ.get("REDIS_HOST")
    if not host:
        return None, None
    port = os.environ.get("REDIS_PORT", "6379")
    secret = os.environ.get("REDIS_AUTH_SECRET")
    if secret:
        password, ca = _redis_secret(secret, force=force)
        return f"rediss://:{quote(password, safe='')}@{host}:{port}/0", ca
    return f"rediss://{host}:{port}/0", None


def _ca_in_secret() -> bool:
    return os.environ.get("REDIS_CA_IN_SECRET", "").lower() in ("1", "true", "yes")


def _connect_verifying_published_ca() -> Any:
    """A client for RedisMode=instance: TLS verified against the CA the instance published.

    Called on the queue's first use, not at start-up: right after a deploy the router can
    run before the instance has written its CA into the secret, and then each request
    answers 503 (a redis.ConnectionError) and looks again, instead of the cold start failing
    or (worse) connecting without checking whom it talks to.
    """
    import redis

    from backend.adapters.redis_queue import RedisQueue

    url, ca = _redis_url_and_ca()
    if url is not None and ca is None:
        # Cached before the instance published it: ask Secrets Manager again.
        url, ca = _redis_url_and_ca(force=True)
    if url is None or ca is None:
        raise redis.ConnectionError(
            "Redis has not published its TLS certificate yet (the Redis instance is starting, "
            "or its bootstrap failed: see its console output). Try again in a minute."
        )
    return RedisQueue.from_url(url, ca_data=ca).r


def queue_from_env() -> RedisQueue:
    # redis-py is imported here, not at the top: the MVP stack has no queue, and redis is
    # about half of that cold start's imports.
    from backend.adapters.redis_queue import RedisQueue

    ttl, deliveries = int(os.environ.get("RESULT_TTL_S", "300")), int(os.environ.get("MAX_DELIVERIES", "3"))
    if not os.environ.get("REDIS_URL") and os.environ.get("REDIS_HOST") and _ca_in_secret():
        if not os.environ.get("REDIS_AUTH_SECRET"):
            raise RuntimeError("REDIS_CA_IN_SECRET=1 needs REDIS_AUTH_SECRET, the secret that holds the CA")
        return RedisQueue(_connect_verifying_published_ca, result_ttl_s=ttl, max_deliveries=deliveries)
    url = redis_url_from_env()
    if url is None:
        raise RuntimeError("set REDIS_URL, or REDIS_HOST (and REDIS_AUTH_SECRET)")
    return RedisQueue.from_url(url, result_ttl_s=ttl, max_deliveries=deliveries)


def compute_from_env(ledger: Any = None) -> Any:
    kind = os.environ.get("COMPUTE_KIND", "ec2")
    if kind == "ec2":
        from backend.adapters.compute_ec2 import Ec2Compute

        return Ec2Compute(
            os.environ["INSTANCE_ID"],
            fallback_instance_type=os.environ.get("FALLBACK_INSTANCE_TYPE", "g5.xlarge"),
            ledger=ledger,
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


def fixed_monthly_from_env() -> float:
    """The stack's idle month in USD: FIXED_MONTHLY_USD, or the deployed parameters
    (STACK_COST_PARAMETERS, the template's own values as JSON) priced by the same
    estimator the wizard shows, so the cap and the wizard never disagree."""
    fixed = _float("FIXED_MONTHLY_USD")
    if fixed is not None:
        return fixed
    raw = os.environ.get("STACK_COST_PARAMETERS")
    if not raw:
        return 0.0
    import json

    from backend.core.pricing import estimate

    try:
        return estimate(json.loads(raw)).idle_monthly_usd
    except ValueError as exc:  # a parameter this estimator cannot price: Budgets still guards
        import logging

        logging.getLogger("tinyllama.router").error("fixed monthly cost unknown (%s); counting $0", exc)
        return 0.0


def ledger_from_env(queue: RedisQueue, clock: Callable[[], float] | None = None) -> Any:
    """The GPU ledger in the queue's Redis (the router's and the worker's)."""
    import time

    from backend.adapters.gpu_ledger import GpuLedger

    return GpuLedger(queue.r, queue.key, clock=clock or time.time,
                     fallback_usd_per_h=_float("GPU_PRICE_PER_HOUR_USD"))


def service_from_env() -> PromptService | None:
    """The prompt service, or None on the MVP stack (no Redis configured)."""
    if redis_url_from_env() is None:
        return None
    queue = queue_from_env()
    budget = Budget(_float("BUDGET_WARNING_USD"), _float("BUDGET_HARD_CAP_USD"),
                    fixed_monthly_usd=fixed_monthly_from_env(),
                    wake_commit_s=_float("WAKE_COMMIT_S") or 0.0)
    context = os.environ.get("MAX_MODEL_LEN")
    ledger = ledger_from_env(queue) if os.environ.get("COMPUTE_KIND", "ec2") == "ec2" else None
    return PromptService(queue, compute_from_env(ledger), spend_from_env(queue), budget,
                         describe_ttl_s=float(os.environ.get("DESCRIBE_TTL_S", "2")),
                         context_tokens=int(context) if context else None, gpu_spend=ledger)


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


def idle_action_from_env(queue: RedisQueue | None = None) -> Callable[[], str] | None:
    """What the worker does after the idle timeout: stop its EC2 instance, or just exit.
    With the worker's queue, the stop is written to the GPU ledger at the moment it
    happens (the router would otherwise learn it from EC2 at its next look)."""
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
            ledger = ledger_from_env(queue) if queue is not None else None
            return Ec2Compute(ident.instance_id, region=ident.region, ledger=ledger).stop()

        return stop_own_instance
    raise RuntimeError(f"IDLE_ACTION={action!r}: use exit or ec2-stop")
