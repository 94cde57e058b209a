"""What a TinyLlama stack costs while nobody uses it, and per hour of GPU.

The desktop wizard shows this before anything is created, so it prices the same
parameter names as `infra/stack.yaml` and `infra/mvp.yaml`. Plain Python, no
dependencies: the wizard and `tinyllama cost-estimate` both import it.

Every price comes from one table (`PRICES`) with its region and the date it was checked,
so a stale estimate is visible rather than silent. The figures are AWS on-demand list
prices for us-east-1 (the ones DESIGN.md records, and the public price pages for the
rest); free tiers are not subtracted, except where a line says so.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

HOURS_PER_MONTH = 730.0  # AWS prices a month as 730 hours
DAYS_PER_MONTH = 365.0 / 12.0


@dataclass(frozen=True)
class PriceTable:
    """List prices in USD for one region, as of one date."""

    region: str
    as_of: str
    source: str
    hourly: Mapping[str, float]
    monthly: Mapping[str, float]


PRICES = PriceTable(
    region="us-east-1",
    as_of="2026-11-26",
    source="AWS on-demand list prices (DESIGN.md's checked figures; AWS price pages for the rest)",
    hourly={
        # EC2 on-demand, Linux
        "g4dn.xlarge": 0.526,
        "g4dn.2xlarge": 0.752,
        "g5.xlarge": 1.006,
        "g5.2xlarge": 1.212,
        "g6.xlarge": 0.8048,
        "t4g.nano": 0.0042,  # the NAT instance
        "public_ipv4": 0.005,  # every public IPv4 address, attached or not
        "nat_gateway": 0.045,
        "vpc_interface_endpoint_az": 0.01,  # per endpoint per AZ
        "cache.t4g.micro": 0.016,  # ElastiCache for Redis OSS node
        "valkey_serverless_gb": 0.084,  # ElastiCache Serverless for Valkey, per GB-hour
    },
    monthly={
        "valkey_serverless_min_gb": 0.1,  # Valkey serverless bills at least 100 MB
        "gp3_gb": 0.08,
        "secret": 0.40,
        "dashboard": 3.00,  # the first 3 dashboards of an account are free
        "alarm": 0.10,  # standard resolution; the first 10 of an account are free
        "budget_action_day": 0.10,  # per action-enabled budget and day, after 62 free days
    },
)

def instance_hourly_usd(instance_type: str | None, prices: PriceTable = PRICES) -> float | None:
    """The on-demand hourly price of an EC2 instance type in `prices`, or None when the table
    does not list it (the caller keeps its own figure then). Only instance types: the
    table's other hourly lines (an IPv4 address, an endpoint) are not instances."""
    if not instance_type or "." not in instance_type:
        return None
    return prices.hourly.get(instance_type)


# What the full stack creates, by parameter. Kept beside the prices because the wizard
# needs both; tests check these counts against infra/stack.yaml.
NAT_INSTANCE_ROOT_GB = 8  # Amazon Linux 2023's smallest root volume
INTERFACE_ENDPOINTS = ("ec2", "secretsmanager", "ssm", "ssmmessages", "ec2messages", "logs", "monitoring")
STACK_SECRETS = 1  # the Redis auth token
STACK_ALARMS = 2  # idle stop, router errors
MVP_SECRETS = 1  # tinyllama/openai

# The template's defaults, and the cheapest set that still runs everything.
DEFAULT_PARAMETERS: dict[str, str] = {
    "RedisMode": "elasticache-node",
    "EgressMode": "nat-instance",
    "InstanceType": "g4dn.xlarge",
    "RootVolumeGiB": "100",
    "CreateDashboard": "true",
    "EnableBudgetAction": "true",
}
CHEAP_PARAMETERS: dict[str, str] = {
    **DEFAULT_PARAMETERS,
    "RedisMode": "serverless-valkey",
    "RootVolumeGiB": "60",
    "CreateDashboard": "false",
}
PROFILES = {"default": DEFAULT_PARAMETERS, "cheap": CHEAP_PARAMETERS}


@dataclass(frozen=True)
class Line:
    """One line of the bill: what, how much a month, and how that was worked out."""

    item: str
    usd: float
    basis: str


@dataclass(frozen=True)
class Estimate:
    """The idle month, line by line, and what one hour of GPU adds."""

    idle_lines: list[Line]
    gpu_hour_lines: list[Line]
    prices: PriceTable = field(default=PRICES)

    @property
    def idle_monthly_usd(self) -> float:
        return round(sum(line.usd for line in self.idle_lines), 2)

    @property
    def per_gpu_hour_usd(self) -> float:
        return round(sum(line.usd for line in self.gpu_hour_lines), 4)


def _flag(value: str | bool) -> bool:
    return value if isinstance(value, bool) else str(value).lower() == "true"


def estimate(
    parameters: Mapping[str, str] | None = None,
    *,
    template: str = "stack",
    prices: PriceTable = PRICES,
) -> Estimate:
    """Price `parameters` (the stack's parameter names; missing ones take the defaults).

    `template` is "stack" (the full stack) or "mvp" (the Lambda-only stack). Raises
    ValueError for a value the template would refuse, so the wizard never shows a price
    for a stack that cannot be created.
    """
    h, m = prices.hourly, prices.monthly
    if template == "mvp":
        mvp = [Line("Secrets Manager secret (OpenAI key)", MVP_SECRETS * m["secret"], "$0.40/secret"),
               Line("Lambda, HTTP API, S3, logs, budget", 0.0, "billed per request; none at idle")]
        return Estimate(mvp, [], prices)
    if template != "stack":
        raise ValueError(f"template must be 'stack' or 'mvp', not {template!r}")

    p = {**DEFAULT_PARAMETERS, **(parameters or {})}
    lines: list[Line] = []

    redis = p["RedisMode"]
    if redis == "elasticache-node":
        lines.append(Line("Redis: ElastiCache cache.t4g.micro", h["cache.t4g.micro"] * HOURS_PER_MONTH,
                          f"${h['cache.t4g.micro']}/h × 730 h"))
    elif redis == "serverless-valkey":
        gb = m["valkey_serverless_min_gb"]
        lines.append(Line("Redis: ElastiCache Serverless Valkey (100 MB minimum)",
                          gb * h["valkey_serverless_gb"] * HOURS_PER_MONTH,
                          f"{gb} GB × ${h['valkey_serverless_gb']}/GB-h × 730 h; ECPUs ~0 at idle"))
    else:
        raise ValueError(f"RedisMode {redis!r}: use elasticache-node or serverless-valkey")

    egress = p["EgressMode"]
    if egress == "nat-instance":
        lines.append(Line("Egress: NAT instance t4g.nano", h["t4g.nano"] * HOURS_PER_MONTH,
                          f"${h['t4g.nano']}/h × 730 h"))
        lines.append(Line("Egress: NAT instance root gp3", NAT_INSTANCE_ROOT_GB * m["gp3_gb"],
                          f"{NAT_INSTANCE_ROOT_GB} GB × ${m['gp3_gb']}/GB"))
        lines.append(Line("Egress: public IPv4 address", h["public_ipv4"] * HOURS_PER_MONTH,
                          f"${h['public_ipv4']}/h × 730 h"))
    elif egress == "nat-gateway":
        lines.append(Line("Egress: NAT gateway (one AZ)", h["nat_gateway"] * HOURS_PER_MONTH,
                          f"${h['nat_gateway']}/h × 730 h, plus $0.045/GB processed"))
        lines.append(Line("Egress: public IPv4 address", h["public_ipv4"] * HOURS_PER_MONTH,
                          f"${h['public_ipv4']}/h × 730 h"))
    elif egress == "endpoints":
        n = len(INTERFACE_ENDPOINTS)
        lines.append(Line(f"Egress: {n} VPC interface endpoints in one AZ",
                          n * h["vpc_interface_endpoint_az"] * HOURS_PER_MONTH,
                          f"{n} × ${h['vpc_interface_endpoint_az']}/h × 730 h ({', '.join(INTERFACE_ENDPOINTS)})"))
    else:
        raise ValueError(f"EgressMode {egress!r}: use nat-instance, nat-gateway or endpoints")

    instance_type = p["InstanceType"]
    if instance_type not in h:
        raise ValueError(f"InstanceType {instance_type!r} is not in the price table")
    size = int(p["RootVolumeGiB"])
    if not 40 <= size <= 1000:
        raise ValueError(f"RootVolumeGiB {size}: between 40 and 1000")
    lines.append(Line("GPU instance, stopped", 0.0, "EC2 bills nothing while stopped"))
    lines.append(Line("GPU root volume gp3 (kept while stopped)", size * m["gp3_gb"],
                      f"{size} GB × ${m['gp3_gb']}/GB"))
    lines.append(Line("Secrets Manager secret (Redis auth token)", STACK_SECRETS * m["secret"],
                      f"{STACK_SECRETS} × ${m['secret']}"))
    if _flag(p["CreateDashboard"]):
        lines.append(Line("CloudWatch dashboard", m["dashboard"],
                          "$3/month; free if among the account's first 3"))
    lines.append(Line("CloudWatch alarms", STACK_ALARMS * m["alarm"],
                      f"{STACK_ALARMS} × ${m['alarm']}; free within the account's first 10"))
    if _flag(p["EnableBudgetAction"]):
        lines.append(Line("Budget with a stop action", m["budget_action_day"] * DAYS_PER_MONTH,
                          f"${m['budget_action_day']}/day after the first 62 days"))
    lines.append(Line("Cognito, HTTP API, Lambda, S3, logs", 0.0,
                      "billed per use; Cognito free under 10,000 monthly users"))

    gpu = [Line(f"GPU instance {instance_type} running", h[instance_type], "on-demand, per hour")]
    return Estimate([Line(x.item, round(x.usd, 2), x.basis) for x in lines], gpu, prices)


def format_estimate(result: Estimate, title: str = "") -> str:
    """The estimate as a plain-text table, as the CLI prints it and the wizard shows it."""
    width = max([len(line.item) for line in result.idle_lines + result.gpu_hour_lines] + [20])
    out = [title] if title else []
    out.append(f"Prices: {result.prices.region}, as of {result.prices.as_of} ({result.prices.source})")
    out.append("Idle month (no prompts):")
    for line in result.idle_lines:
        out.append(f"  {line.item:<{width}}  ${line.usd:>7.2f}   {line.basis}")
    out.append(f"  {'Total per month':<{width}}  ${result.idle_monthly_usd:>7.2f}")
    if result.gpu_hour_lines:
        out.append("While the GPU runs:")
        for line in result.gpu_hour_lines:
            out.append(f"  {line.item:<{width}}  ${line.usd:>7.4f}   {line.basis}")
    return "\n".join(out)
