"""What the stack costs: Cost Explorer (cached), Budgets, and a live estimate. Qt-free.

Cost Explorer charges $0.01 per request (DESIGN.md), so `CostService.report()` answers from
a file cache for an hour and makes exactly one `get_cost_and_usage` request (daily, by
service, month to date) when the cache is older; the cache survives restarts. The month's
forecast comes from Budgets' `CalculatedSpend.ForecastedSpend` (AWS's own forecast, and
Budgets calls are free), falling back to a projection of the daily figures when there is
no budget. Between fetches `live_estimate()` adds what the GPU has run since and the fixed
costs' share of the hours gone by.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from backend.core import pricing
from backend.core.pricing import HOURS_PER_MONTH, Estimate
from desktop.core.errors import AppError
from desktop.services.deploy.errors import AWS_ERRORS

CACHE_TTL_S = 3600.0
METRIC = "UnblendedCost"


class CostError(AppError):
    """Cost figures could not be read; the message says why."""

    title = "Costs unavailable"


@dataclass
class CostReport:
    """Month to date by service and by day, as Cost Explorer last answered."""

    month: str  # YYYY-MM
    fetched_at: float  # epoch seconds
    total_usd: float
    by_service: dict[str, float]
    daily: list[tuple[str, float]]  # (YYYY-MM-DD, USD)
    from_cache: bool = False

    def projected_month_usd(self, today: date) -> float:
        """Month to date plus the mean of the last 7 days for each day left (no budget)."""
        days = days_in_month(today)
        recent = [amount for _day, amount in self.daily[-7:]] or [0.0]
        return round(self.total_usd + (sum(recent) / len(recent)) * (days - today.day), 2)


@dataclass(frozen=True)
class BudgetState:
    """One budget: its limit, what AWS counts as spent, its forecast, and our verdict."""

    name: str
    limit_usd: float
    actual_usd: float
    forecast_usd: float | None

    @property
    def used(self) -> float:
        return self.actual_usd / self.limit_usd if self.limit_usd else 0.0

    @property
    def exceeded(self) -> bool:
        return self.actual_usd >= self.limit_usd


@dataclass(frozen=True)
class LiveEstimate:
    """Month to date as fetched, plus what has accrued since, line by line."""

    fetched_usd: float
    gpu_hours_since: float
    gpu_usd_since: float
    fixed_usd_since: float
    per_prompt_usd: list[float] = field(default_factory=list)

    @property
    def total_usd(self) -> float:
        return round(self.fetched_usd + self.gpu_usd_since + self.fixed_usd_since, 2)


def cache_file_for(folder: Path, aws_profile: str | None) -> Path:
    """The Cost Explorer cache of one AWS profile: each profile may be another account, and
    one shared file showed the last account's spend as this one's for up to an hour."""
    name = re.sub(r"[^A-Za-z0-9_.-]", "_", aws_profile or "default")
    return folder / f"cost-explorer-cache-{name}.json"


def days_in_month(day: date) -> int:
    """28 to 31."""
    nxt = (day.replace(day=28) + timedelta(days=4)).replace(day=1)
    return (nxt - timedelta(days=1)).day


def month_start(epoch: float) -> float:
    """The first second of the (UTC) month `epoch` falls in, as epoch seconds."""
    return datetime.fromtimestamp(epoch, UTC).replace(day=1, hour=0, minute=0, second=0,
                                                      microsecond=0).timestamp()


class CostService:
    """Cost Explorer with an on-disk hourly cache, Budgets, and the live estimate.

    Clients are built from `session` only when not given; `clock` is epoch seconds (tests
    move it through a simulated hour).
    """

    def __init__(self, ce_client: Any = None, budgets_client: Any = None, ec2_client: Any = None,
                 cfn_client: Any = None, *, cache_file: Path, session: Any = None, account_id: str = "",
                 region: str | None = None,
                 clock: Callable[[], float] = time.time, ttl_s: float = CACHE_TTL_S) -> None:
        self._ce = ce_client
        self._budgets = budgets_client
        self._ec2 = ec2_client
        self._cfn = cfn_client
        self._session = session
        self.cache_file = cache_file
        self.account_id = account_id
        self.clock = clock
        self.ttl_s = ttl_s
        self.region = region  # of the stack and its instance; CE and Budgets are global
        self.ce_requests = 0  # counted so the panel (and a test) can show what was paid for

    def _client(self, name: str) -> Any:
        if self._session is None:
            import boto3

            self._session = boto3.session.Session()
        return self._session.client(name, region_name="us-east-1" if name in {"ce", "budgets"} else self.region)

    # Cost Explorer -------------------------------------------------------------------

    def cached(self) -> CostReport | None:
        """The cached report if it is for this month, whatever its age."""
        try:
            raw = json.loads(self.cache_file.read_text(encoding="utf-8"))
            report = CostReport(raw["month"], float(raw["fetched_at"]), float(raw["total_usd"]),
                                {str(k): float(v) for k, v in raw["by_service"].items()},
                                [(str(d), float(a)) for d, a in raw["daily"]], from_cache=True)
        except (OSError, ValueError, KeyError, TypeError):
            return None
        return report if report.month == self._today().strftime("%Y-%m") else None

    def next_fetch_in(self) -> float:
        """Seconds until `report()` would ask Cost Explorer again (0: now)."""
        cached = self.cached()
        if cached is None:
            return 0.0
        return max(0.0, cached.fetched_at + self.ttl_s - self.clock())

    def report(self, *, force: bool = False) -> CostReport:
        """The cached report while it is under an hour old; otherwise one CE request.

        `force` (the panel's manual refresh, which says it costs $0.01) skips the cache.
        """
        cached = self.cached()
        if cached is not None and not force and self.clock() - cached.fetched_at < self.ttl_s:
            return cached
        report = self._fetch()
        self._save(report)
        return report

    def _today(self) -> date:
        return datetime.fromtimestamp(self.clock(), UTC).date()

    def _fetch(self) -> CostReport:
        today = self._today()
        start = today.replace(day=1)
        end = today + timedelta(days=1)  # End is exclusive; today's partial day included
        if self._ce is None:
            self._ce = self._client("ce")
        by_day: dict[str, float] = {}
        by_service: dict[str, float] = {}
        token = None
        while True:  # every page is a paid request
            kwargs: dict[str, Any] = {"TimePeriod": {"Start": start.isoformat(), "End": end.isoformat()},
                                      "Granularity": "DAILY", "Metrics": [METRIC],
                                      "GroupBy": [{"Type": "DIMENSION", "Key": "SERVICE"}]}
            if token:
                kwargs["NextPageToken"] = token
            self.ce_requests += 1
            try:
                answer = self._ce.get_cost_and_usage(**kwargs)
            except AWS_ERRORS as exc:
                raise CostError(_explain(exc, "Cost Explorer")) from exc
            for period in answer.get("ResultsByTime", []):
                day = period["TimePeriod"]["Start"]
                groups = period.get("Groups", [])
                if groups:
                    for group in groups:
                        amount = float(group["Metrics"][METRIC]["Amount"])
                        by_service[group["Keys"][0]] = by_service.get(group["Keys"][0], 0.0) + amount
                        by_day[day] = by_day.get(day, 0.0) + amount
                else:
                    total = period.get("Total", {}).get(METRIC) or next(iter(period.get("Total", {}).values()),
                                                                       {"Amount": "0"})
                    by_day[day] = by_day.get(day, 0.0) + float(total["Amount"])
            token = answer.get("NextPageToken")
            if not token:
                break
        daily = sorted((d, round(a, 4)) for d, a in by_day.items())
        return CostReport(today.strftime("%Y-%m"), self.clock(), round(sum(by_day.values()), 2),
                          {k: round(v, 4) for k, v in sorted(by_service.items(), key=lambda kv: -kv[1])}, daily)

    def _save(self, report: CostReport) -> None:
        self.cache_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.cache_file.with_suffix(".tmp")
        data = asdict(report)
        data.pop("from_cache")
        tmp.write_text(json.dumps(data, indent=1), encoding="utf-8")
        os.replace(tmp, self.cache_file)

    # Budgets -------------------------------------------------------------------------

    def budgets(self, prefix: str = "") -> list[BudgetState]:
        """The account's cost budgets (those whose name starts with `prefix`)."""
        if self._budgets is None:
            self._budgets = self._client("budgets")
        account = self.account_id or self._account()
        states: list[BudgetState] = []
        token = None
        try:
            while True:
                kwargs: dict[str, Any] = {"AccountId": account}
                if token:
                    kwargs["NextToken"] = token
                answer = self._budgets.describe_budgets(**kwargs)
                for b in answer.get("Budgets", []):
                    if not b["BudgetName"].startswith(prefix) or b.get("BudgetType", "COST") != "COST":
                        continue
                    spend = b.get("CalculatedSpend", {})
                    forecast = spend.get("ForecastedSpend", {}).get("Amount")
                    states.append(BudgetState(b["BudgetName"], float(b["BudgetLimit"]["Amount"]),
                                              float(spend.get("ActualSpend", {}).get("Amount", 0.0)),
                                              float(forecast) if forecast is not None else None))
                token = answer.get("NextToken")
                if not token:
                    break
        except AWS_ERRORS as exc:
            if type(exc).__name__ == "NotFoundException":
                return []
            raise CostError(_explain(exc, "Budgets")) from exc
        return states

    def _account(self) -> str:
        sts = self._session.client("sts") if self._session is not None else self._client("sts")
        try:
            self.account_id = str(sts.get_caller_identity()["Account"])
        except AWS_ERRORS as exc:
            raise CostError(_explain(exc, "STS")) from exc
        return self.account_id

    # live estimate -------------------------------------------------------------------

    def gpu_hours_since(self, instance_id: str, since: float) -> float:
        """Hours the GPU instance has been running since `since` (0 while stopped)."""
        if not instance_id:
            return 0.0
        if self._ec2 is None:
            self._ec2 = self._client("ec2")
        try:
            reservations = self._ec2.describe_instances(InstanceIds=[instance_id])["Reservations"]
        except AWS_ERRORS as exc:
            raise CostError(_explain(exc, "EC2")) from exc
        for reservation in reservations:
            for instance in reservation["Instances"]:
                if instance["State"]["Name"] != "running":
                    return 0.0
                launched = instance["LaunchTime"].timestamp()
                return max(0.0, self.clock() - max(launched, since)) / 3600.0
        return 0.0

    def stack_estimate(self, stack_name: str) -> Estimate:
        """The idle month and GPU hour of the stack as deployed (its parameters, read back)."""
        if not stack_name:
            return pricing.estimate()
        if self._cfn is None:
            self._cfn = self._client("cloudformation")
        try:
            stack = self._cfn.describe_stacks(StackName=stack_name)["Stacks"][0]
        except AWS_ERRORS as exc:
            raise CostError(_explain(exc, "CloudFormation")) from exc
        params = {p["ParameterKey"]: p.get("ParameterValue", "") for p in stack.get("Parameters", [])}
        if "BudgetLimitUsd" in params:  # the MVP
            return pricing.estimate(template="mvp")
        try:
            return pricing.estimate({k: v for k, v in params.items() if k in pricing.DEFAULT_PARAMETERS})
        except ValueError:
            return pricing.estimate()

    def live_estimate(self, report: CostReport, estimate: Estimate, gpu_hours_since: float,
                      prompt_gpu_seconds: list[float] | None = None) -> LiveEstimate:
        """Month to date as fetched plus GPU time and fixed costs accrued since the fetch."""
        hours = max(0.0, self.clock() - report.fetched_at) / 3600.0
        per_hour = estimate.per_gpu_hour_usd
        return LiveEstimate(
            fetched_usd=report.total_usd,
            gpu_hours_since=round(gpu_hours_since, 3),
            gpu_usd_since=round(gpu_hours_since * per_hour, 4),
            fixed_usd_since=round(estimate.idle_monthly_usd * hours / HOURS_PER_MONTH, 4),
            per_prompt_usd=[round(s / 3600.0 * per_hour, 5) for s in (prompt_gpu_seconds or [])],
        )


def _explain(exc: BaseException, service: str) -> str:
    response = getattr(exc, "response", None) or {}
    code = response.get("Error", {}).get("Code", "")
    message = response.get("Error", {}).get("Message", "") or str(exc)
    if type(exc).__name__ in {"NoCredentialsError", "PartialCredentialsError"}:
        return f"No AWS credentials for {service}: deploy with the wizard or pick an AWS profile."
    if code in {"AccessDeniedException", "AccessDenied"}:
        return f"{service} refused: {message} The profile needs ce:GetCostAndUsage and budgets:ViewBudget."
    if code == "DataUnavailableException":
        return "Cost Explorer has no data yet: it starts about 24 hours after it is enabled."
    return f"{service} failed: {message}"
