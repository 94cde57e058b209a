"""Secrets Manager, read at run time and cached for the life of the process.

Secrets (the OpenAI key, the Redis auth token) are never put in environment values or
templates: the environment names the secret, and this reads it when first needed.
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any

_cache: dict[str, tuple[float, str]] = {}
_lock = threading.Lock()


def get_secret(secret_id: str, *, client: Any = None, ttl_s: float = 3600.0, field: str | None = None) -> str:
    """The secret's string (or one `field` of a JSON secret), cached for `ttl_s`."""
    now = time.monotonic()
    with _lock:
        hit = _cache.get(secret_id)
        if hit and now - hit[0] < ttl_s:
            value = hit[1]
        else:
            if client is None:
                import boto3  # only on this path

                client = boto3.client("secretsmanager")
            value = client.get_secret_value(SecretId=secret_id)["SecretString"]
            _cache[secret_id] = (now, value)
    if field is not None:
        return str(json.loads(value)[field])
    return value


def clear_cache() -> None:
    with _lock:
        _cache.clear()
