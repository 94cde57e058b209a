"""Month-to-date spend for the budget guard.

`BudgetsSpend` reads the stack's AWS Budget (`CalculatedSpend.ActualSpend`). Budgets
update only several times a day (DESIGN.md), so the figure is cached for an hour in
Redis and shared by every Lambda instance; `StaticSpend` is the local profile's.
"""

from __future__ import annotations

from typing import Any


class StaticSpend:
    """A fixed figure (local profile; `None` means unknown)."""

    def __init__(self, usd: float | None):
        self.usd = usd

    def month_to_date_usd(self) -> float | None:
        return self.usd


class BudgetsSpend:
    """The stack's budget's actual spend, cached in Redis for `ttl_s` under `cache_key`
    (the queue's `key("spend", name)`, so that it sits in the queue's hash slot too)."""

    def __init__(self, account_id: str, budget_name: str, *, cache: Any = None, client: Any = None,
                 ttl_s: int = 3600, cache_key: str | None = None):
        self.account_id = account_id
        self.budget_name = budget_name
        self.cache = cache
        self.client = client
        self.ttl_s = ttl_s
        self.key = cache_key or f"spend:{budget_name}"

    def month_to_date_usd(self) -> float | None:
        if self.cache is not None:
            hit = self.cache.get(self.key)
            if hit is not None:
                return float(hit)
        if self.client is None:
            self.client = budgets_client()
        budget = self.client.describe_budget(AccountId=self.account_id, BudgetName=self.budget_name)["Budget"]
        actual = budget.get("CalculatedSpend", {}).get("ActualSpend", {})
        usd = float(actual["Amount"]) if actual.get("Amount") is not None else None
        if usd is not None and self.cache is not None:
            self.cache.set(self.key, repr(usd), ex=self.ttl_s)
        return usd


def budgets_client() -> Any:
    """A Budgets client that gives up in seconds: the guard runs inside a request (API
    Gateway waits 30 s), and a spend it cannot read only means "unknown", never a stall.
    botocore's defaults (60 s connect timeout, retried) would outlast the request.
    Dual-stack (budgets.us-east-1.api.aws): the router's subnets reach it over IPv6 only."""
    import boto3  # only on this path

    from backend.adapters.aws_endpoints import client_config

    config = client_config("budgets", connect_timeout=2, read_timeout=5,
                           retries={"mode": "standard", "total_max_attempts": 2})
    return boto3.client("budgets", config=config)
