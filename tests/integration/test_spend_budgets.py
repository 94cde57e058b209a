"""The budget guard's spend source: the stack's AWS Budget in moto, cached in real Redis."""

from __future__ import annotations

import boto3

from backend.adapters.spend import BudgetsSpend
from backend.core.policies import budget_state


def test_actual_spend_is_read_once_then_cached(aws_env: str, queue) -> None:
    budgets = boto3.client("budgets", endpoint_url=aws_env)
    budgets.create_budget(
        AccountId="123456789012",
        Budget={
            "BudgetName": "tinyllama-guard",
            "BudgetLimit": {"Amount": "21.60", "Unit": "USD"},
            "TimeUnit": "MONTHLY",
            "BudgetType": "COST",
            "CalculatedSpend": {"ActualSpend": {"Amount": "23.40", "Unit": "USD"}},
        },
    )
    calls: list[str] = []
    budgets.meta.events.register("before-call.budgets.DescribeBudget", lambda **kw: calls.append("describe"))
    spend = BudgetsSpend("123456789012", "tinyllama-guard", cache=queue.r, client=budgets,
                         cache_key=queue.key("spend", "tinyllama-guard"))

    assert spend.month_to_date_usd() == 23.40
    assert spend.month_to_date_usd() == 23.40
    assert calls == ["describe"]  # Budgets refreshes a few times a day: an hour's cache loses nothing
    assert 3000 < queue.r.ttl(spend.key) <= 3600
    assert budget_state(spend.month_to_date_usd(), 16.2, 21.6) == "exceeded"


def test_the_default_client_gives_up_well_inside_a_request(monkeypatch) -> None:
    """The guard runs inside an API request (30 s at most): unreachable Budgets must cost
    seconds, not botocore's default 60 s connect timeout times its retries."""
    from backend.adapters.spend import budgets_client

    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    config = budgets_client().meta.config
    worst = (config.connect_timeout + config.read_timeout) * config.retries["total_max_attempts"]
    assert worst <= 15, worst
