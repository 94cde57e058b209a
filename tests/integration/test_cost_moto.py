"""The cost service against moto's server: Cost Explorer answers injected through
`/moto-api/static/ce/cost-and-usage-results`, budgets with their `CalculatedSpend`.

moto hands each distinct get_cost_and_usage request the next injected answer, and the
same answer to the same request again; every test uses its own month (the clock is
injected), so their requests differ.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import pytest

from backend.core import pricing
from desktop.services.cost import CostError, CostService
from tests.conftest import FrozenClock
from tests.fixtures.aws import inject_cost_and_usage


@pytest.fixture(autouse=True)
def endpoint(aws_env: str, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("AWS_ENDPOINT_URL", aws_env)
    return aws_env


def day(date: str, amounts: dict[str, float]) -> dict[str, Any]:
    return {"TimePeriod": {"Start": date, "End": date[:-2] + f"{int(date[-2:]) + 1:02d}"},
            "Total": {}, "Estimated": True,
            "Groups": [{"Keys": [service], "Metrics": {"UnblendedCost": {"Amount": str(usd), "Unit": "USD"}}}
                       for service, usd in amounts.items()]}


def counted_ce(endpoint: str) -> tuple[Any, list[str]]:
    """A CE client whose every request to the server is recorded (each costs $0.01 on AWS)."""
    client = boto3.client("ce", region_name="us-east-1", endpoint_url=endpoint)
    sent: list[str] = []
    client.meta.events.register("before-send.ce.*", lambda request, **_: sent.append(request.url))
    return client, sent


def test_month_to_date_by_service_and_day_from_cost_explorer(aws_env: str, tmp_path: Path) -> None:
    inject_cost_and_usage(aws_env, {"ResultsByTime": [
        day("2031-03-01", {"Amazon ElastiCache": 0.38, "Amazon Elastic Compute Cloud - Compute": 0.10}),
        day("2031-03-02", {"Amazon ElastiCache": 0.38, "Amazon Elastic Compute Cloud - Compute": 2.10,
                           "AWS Secrets Manager": 0.01}),
        day("2031-03-03", {"Amazon ElastiCache": 0.38}),
    ]})
    ce, sent = counted_ce(aws_env)
    clock = FrozenClock(datetime(2031, 3, 3, 15, 0, tzinfo=UTC))
    service = CostService(ce, cache_file=tmp_path / "cost.json", clock=clock)
    report = service.report()
    assert report.total_usd == pytest.approx(3.35)
    assert list(report.by_service) == ["Amazon Elastic Compute Cloud - Compute", "Amazon ElastiCache",
                                       "AWS Secrets Manager"]  # most expensive first
    assert report.by_service["Amazon ElastiCache"] == pytest.approx(1.14)
    assert report.daily == [("2031-03-01", 0.48), ("2031-03-02", 2.49), ("2031-03-03", 0.38)]
    assert report.fetched_at == clock.now and not report.from_cache
    assert len(sent) == 1

    # Within the hour: from the cache, even for a new service object (an app restart).
    clock.advance(59 * 60)
    again = CostService(ce, cache_file=tmp_path / "cost.json", clock=clock).report()
    assert again.from_cache and again.total_usd == report.total_usd and again.fetched_at == report.fetched_at
    assert len(sent) == 1
    clock.advance(60)
    assert not service.report().from_cache
    assert len(sent) == 2


def test_cache_of_last_month_is_not_used(aws_env: str, tmp_path: Path) -> None:
    inject_cost_and_usage(aws_env, {"ResultsByTime": [day("2031-04-30", {"Amazon ElastiCache": 0.5})]},
           {"ResultsByTime": [day("2031-05-01", {"Amazon ElastiCache": 0.4})]})
    ce, sent = counted_ce(aws_env)
    clock = FrozenClock(datetime(2031, 4, 30, 23, 50, tzinfo=UTC))
    service = CostService(ce, cache_file=tmp_path / "cost.json", clock=clock)
    assert service.report().month == "2031-04"
    clock.advance(20 * 60)  # past midnight into May, well within the hour
    assert service.cached() is None and service.next_fetch_in() == 0
    may = service.report()
    assert may.month == "2031-05" and may.total_usd == pytest.approx(0.4) and len(sent) == 2


def test_budgets_state_and_forecast(aws_env: str, tmp_path: Path) -> None:
    budgets = boto3.client("budgets", region_name="us-east-1")
    account = boto3.client("sts", region_name="us-east-1").get_caller_identity()["Account"]
    prefix = f"tl-{uuid.uuid4().hex[:6]}"
    for suffix, limit, actual, forecast in (("warning", "16", "17.20", "25.00"), ("hard-cap", "21", "17.20", "25.00")):
        budgets.create_budget(AccountId=account, Budget={
            "BudgetName": f"{prefix}-{suffix}", "BudgetLimit": {"Amount": limit, "Unit": "USD"},
            "TimeUnit": "MONTHLY", "BudgetType": "COST",
            "CalculatedSpend": {"ActualSpend": {"Amount": actual, "Unit": "USD"},
                                "ForecastedSpend": {"Amount": forecast, "Unit": "USD"}}})
    service = CostService(budgets_client=budgets, cache_file=tmp_path / "c.json", account_id=account)
    states = {s.name: s for s in service.budgets(prefix)}
    warning, cap = states[f"{prefix}-warning"], states[f"{prefix}-hard-cap"]
    assert warning.exceeded and not cap.exceeded
    assert cap.limit_usd == 21 and cap.actual_usd == pytest.approx(17.2) and cap.forecast_usd == 25.0
    assert cap.used == pytest.approx(17.2 / 21)
    assert service.budgets(f"{prefix}-nothing") == []


def test_live_estimate_adds_gpu_hours_since_the_fetch(aws_env: str, tmp_path: Path) -> None:
    ec2 = boto3.client("ec2", region_name="us-east-1")
    image = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    instance = ec2.run_instances(ImageId=image, InstanceType="g4dn.xlarge", MinCount=1, MaxCount=1)["Instances"][0]
    launched = instance["LaunchTime"].timestamp()
    clock = FrozenClock(datetime.fromtimestamp(launched + 2 * 3600, UTC))
    inject_cost_and_usage(aws_env, {"ResultsByTime": [day(datetime.fromtimestamp(launched, UTC).strftime("%Y-%m-%d"),
                                           {"Amazon ElastiCache": 1.0})]})
    service = CostService(boto3.client("ce", region_name="us-east-1"), ec2_client=ec2,
                          cache_file=tmp_path / "c.json", clock=clock)
    report = service.report()
    clock.advance(1800)  # half an hour after the fetch, the GPU still running
    hours = service.gpu_hours_since(instance["InstanceId"], report.fetched_at)
    assert hours == pytest.approx(0.5)
    est = pricing.estimate()
    live = service.live_estimate(report, est, hours, prompt_gpu_seconds=[36.0])
    # g4dn.xlarge $0.526/h and its public IPv4 $0.005/h, billed only while it runs
    assert live.gpu_usd_since == pytest.approx(0.5 * (0.526 + 0.005), abs=1e-4)
    assert live.fixed_usd_since == pytest.approx(est.idle_monthly_usd * 0.5 / 730, abs=1e-4)
    assert live.total_usd == pytest.approx(report.total_usd + live.gpu_usd_since + live.fixed_usd_since, abs=0.01)
    assert live.per_prompt_usd == [pytest.approx(0.00531, abs=1e-5)]
    ec2.stop_instances(InstanceIds=[instance["InstanceId"]])
    assert service.gpu_hours_since(instance["InstanceId"], report.fetched_at) == 0.0


def test_cost_explorer_refusal_is_said_in_words(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from botocore.stub import Stubber

    monkeypatch.delenv("AWS_ENDPOINT_URL")
    ce = boto3.client("ce", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    with Stubber(ce) as stubber:
        stubber.add_client_error("get_cost_and_usage", "AccessDeniedException", "not authorized", 400)
        with pytest.raises(CostError, match="ce:GetCostAndUsage"):
            CostService(ce, cache_file=tmp_path / "c.json").report()


def test_each_aws_profile_has_its_own_cache(tmp_path: Path) -> None:
    """Profiles may be different accounts: one shared cache file showed the previous
    account's spend for this one until the hour was up."""
    from desktop.services.cost import cache_file_for

    work, home = cache_file_for(tmp_path, "work"), cache_file_for(tmp_path, "home")
    assert work != home and work.parent == home.parent == tmp_path
    assert cache_file_for(tmp_path, None) == cache_file_for(tmp_path, "") != work
    assert cache_file_for(tmp_path, "../evil/x").parent == tmp_path
