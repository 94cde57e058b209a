"""The cost panel against moto's server: Cost Explorer answers injected through
`/moto-api/static/ce/cost-and-usage-results`, a budget with its `CalculatedSpend`, a
running instance for the live estimate. The clock is injected so a simulated hour of the
app open passes in milliseconds; every CE request the client sends is counted.
"""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest

from desktop.core.history import HistoryStore
from desktop.core.settings import Settings
from desktop.qt.runner import Runner
from desktop.services.cost import CostService, days_in_month, month_start
from desktop.views.cost_panel import CostPanel, open_cost_panel
from tests.conftest import FrozenClock
from tests.fixtures.aws import inject_cost_and_usage
from tests.gui.conftest import save_screenshot

DAILY_FIXED = {"Amazon ElastiCache": 0.20, "Amazon Elastic Compute Cloud - Compute": 0.10,
               "Amazon Virtual Private Cloud": 0.12, "AWS Secrets Manager": 0.013}


def month_of_results(year: int, month: int, days: int) -> dict[str, Any]:
    results = []
    for d in range(1, days + 1):
        start = datetime(year, month, d)
        amounts = dict(DAILY_FIXED)
        if d % 3 == 1:  # a GPU session every third day, the 1st included: Compute is always the largest
            amounts["Amazon Elastic Compute Cloud - Compute"] += 0.526 * (d % 5 + 1)
        results.append({"TimePeriod": {"Start": f"{start:%Y-%m-%d}", "End": f"{start + timedelta(days=1):%Y-%m-%d}"},
                        "Total": {}, "Estimated": True,
                        "Groups": [{"Keys": [k], "Metrics": {"UnblendedCost": {"Amount": f"{v:.4f}", "Unit": "USD"}}}
                                   for k, v in amounts.items()]})
    return {"ResultsByTime": results}


@pytest.fixture
def endpoint(aws_env: str, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("AWS_ENDPOINT_URL", aws_env)
    return aws_env



def counted_ce(endpoint: str) -> tuple[Any, list[str]]:
    client = boto3.client("ce", region_name="us-east-1")
    sent: list[str] = []
    client.meta.events.register("before-send.ce.*", lambda request, **_: sent.append(request.url))
    return client, sent


def open_panel(qtbot: Any, service: CostService, runner: Runner, **kwargs: Any) -> CostPanel:
    panel = CostPanel(service, runner, **kwargs)
    qtbot.addWidget(panel)
    panel.show()
    qtbot.waitExposed(panel)
    qtbot.waitUntil(lambda: panel.snapshot is not None and not panel._busy, timeout=10000)
    return panel


@pytest.mark.parametrize("frozen_clock", [datetime(2033, 2, 10, 9, 0, tzinfo=UTC)], indirect=True)
def test_an_hour_of_the_app_open_costs_one_cost_explorer_request(qtbot: Any, endpoint: str, runner: Runner,
                                                                 tmp_path: Path, frozen_clock: FrozenClock) -> None:
    inject_cost_and_usage(endpoint, month_of_results(2033, 2, 10))
    ce, sent = counted_ce(endpoint)
    clock = frozen_clock
    cache = tmp_path / "cost.json"
    service = CostService(ce, cache_file=cache, clock=clock)
    panel = open_panel(qtbot, service, runner, tick_ms=3_600_000)
    assert len(sent) == 1
    first = panel.total.text()

    for minute in range(5, 60, 5):  # the panel's timer fires every 5 minutes for 55 minutes
        clock.advance(300)
        panel.timer.timeout.emit()
        qtbot.waitUntil(lambda: not panel._busy, timeout=5000)
        assert f"({minute} min ago)" in panel.fetched.text()
    assert len(sent) == 1 and panel.total.text() == first

    # A restart within the hour reads the cache on disk: still no request.
    panel.close()
    again = open_panel(qtbot, CostService(ce, cache_file=cache, clock=clock), runner, tick_ms=3_600_000)
    assert len(sent) == 1 and again.snapshot and again.snapshot.report and again.snapshot.report.from_cache

    clock.advance(300)  # 60 minutes after the fetch: the next tick asks again, once
    again.timer.timeout.emit()
    qtbot.waitUntil(lambda: not again._busy, timeout=5000)
    assert len(sent) == 2
    again.timer.timeout.emit()
    qtbot.waitUntil(lambda: not again._busy, timeout=5000)
    assert len(sent) == 2

    again.refresh_button.click()  # the person asks: it costs a request, and says so
    qtbot.waitUntil(lambda: not again._busy, timeout=5000)
    assert len(sent) == 3 and "$0.01" in again.refresh_button.toolTip()


# The month's edges: its first half-minute, and its last half hour (the test moves the clock
# 30 minutes on, to the month's last half-minute). Day 0 is February's last day.
EDGES = {"first-day-00:00:30": (12, 1, 0, 0, 30), "last-day-23:29:30": (11, 30, 23, 29, 30),
         "february-end-23:29": (2, 0, 23, 29, 0)}


@pytest.mark.parametrize("edge", list(EDGES))
def test_panel_shows_month_budget_live_estimate_and_guard(qtbot: Any, endpoint: str, runner: Runner,
                                                          tmp_path: Path, edge: str) -> None:
    ec2 = boto3.client("ec2", region_name="us-east-1")
    image = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    instance = ec2.run_instances(ImageId=image, InstanceType="g4dn.xlarge", MinCount=1, MaxCount=1)["Instances"][0]
    # moto stamps LaunchTime with the real time. The live estimate counts GPU time from the
    # later of launch and fetch, so any instant after the launch gives the same hours: the
    # panel's clock is the edge's date in the year after the launch, whatever today is.
    month, day, hour, minute, second = EDGES[edge]
    year = instance["LaunchTime"].year + 1
    day = day or days_in_month(date(year, month, 1))
    clock = FrozenClock(datetime(year, month, day, hour, minute, second, tzinfo=UTC))
    today = clock.datetime
    results = month_of_results(today.year, today.month, today.day)
    inject_cost_and_usage(endpoint, results)
    total = sum(float(g["Metrics"]["UnblendedCost"]["Amount"]) for r in results["ResultsByTime"]
                for g in r["Groups"])
    actual = round(total - 0.8, 2)  # Budgets lag Cost Explorer a little
    forecast = round(total / today.day * 30, 2)
    account = boto3.client("sts").get_caller_identity()["Account"]
    prefix = f"tl-{uuid.uuid4().hex[:6]}"
    boto3.client("budgets", region_name="us-east-1").create_budget(AccountId=account, Budget={
        "BudgetName": f"{prefix}-monthly", "BudgetLimit": {"Amount": "21", "Unit": "USD"}, "TimeUnit": "MONTHLY",
        "BudgetType": "COST", "CalculatedSpend": {"ActualSpend": {"Amount": f"{actual:.2f}", "Unit": "USD"},
                                                  "ForecastedSpend": {"Amount": f"{forecast:.2f}", "Unit": "USD"}}})
    service = CostService(boto3.client("ce", region_name="us-east-1"), cache_file=tmp_path / "c.json", clock=clock,
                          account_id=account)
    panel = open_panel(qtbot, service, runner, instance_id=instance["InstanceId"], budget_prefix=prefix,
                       warning_usd=16, hard_cap_usd=21, prompt_seconds=lambda: [42.0, 18.0, 65.0])
    report = panel.snapshot.report if panel.snapshot else None
    assert report is not None and len(report.daily) == today.day
    assert panel.total.text() == f"Month to date: ${report.total_usd:.2f}"
    assert "Forecast for" in panel.forecast.text() and f"${forecast:.2f} (AWS Budgets)" in panel.forecast.text()
    assert panel.services.item(0, 0).text() == "Amazon Elastic Compute Cloud - Compute"  # the largest first
    assert panel.cap_bar.value() == min(100, int(actual / 21 * 100))
    assert f"${actual:.2f} of $21.00" in panel.cap_text.text()
    assert ("hard cap reached" in panel.cap_text.text()) == (actual >= 21)
    assert ("warning reached" in panel.warning_text.text()) == (actual >= 16)
    assert "Now about $" in panel.live.text() and "Prompts this month: 3" in panel.live.text()
    assert panel.snapshot and panel.snapshot.live and panel.snapshot.live.gpu_hours_since == 0.0  # just fetched
    assert panel.errors.text() == ""

    clock.advance(1800)  # half an hour later, GPU still running: the live estimate grows, CE is not asked
    panel.timer.timeout.emit()
    qtbot.waitUntil(lambda: not panel._busy, timeout=5000)
    live = panel.snapshot.live if panel.snapshot else None
    assert live is not None and live.gpu_hours_since == pytest.approx(0.5)
    assert "GPU: 0.50 h × $0.531" in panel.live.text()  # g4dn.xlarge and its public IPv4

    panel.set_guard_refusal("month-to-date spend has reached the hard cap of $21.00.")
    assert panel.guard.isVisible()
    save_screenshot(panel, "cost_panel.png")


@pytest.mark.usefixtures("no_aws_credentials")
def test_no_credentials_are_said_in_words(qtbot: Any, runner: Runner, tmp_path: Path) -> None:
    panel = open_panel(qtbot, CostService(cache_file=tmp_path / "c.json"), runner, budget_prefix="tinyllama")
    assert "No AWS credentials for Cost Explorer" in panel.errors.text()
    assert panel.total.text() == "Month to date: not fetched yet"


@pytest.mark.usefixtures("no_aws_credentials")
def test_prompts_this_month_are_counted_by_the_panels_clock(qtbot: Any, runner: Runner, tmp_path: Path,
                                                            frozen_clock: FrozenClock) -> None:
    """"This month" is the clock's month, not the calendar's: a prompt answered a second
    before the month began is not counted, one in its first second is."""
    month_began = month_start(frozen_clock())
    history = HistoryStore(tmp_path / "history.sqlite3")
    conv = history.create_conversation()
    for created_at, seconds in ((month_began - 1, 99.0), (month_began, 42.0), (frozen_clock(), 18.0)):
        history.add_message(conv.id, "assistant", "hi", created_at=created_at, total_s=seconds)
    history.add_message(conv.id, "user", "hi", created_at=frozen_clock())
    panel = open_cost_panel(Settings(tmp_path / "settings.json"), runner, history=history, clock=frozen_clock)
    qtbot.addWidget(panel)
    qtbot.waitUntil(lambda: not panel._busy, timeout=10000)
    assert sorted(panel.prompt_seconds()) == [18.0, 42.0]
    history.close()
