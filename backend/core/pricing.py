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


# Each figure, with where it was checked (us-east-1 list prices, checked 2026-12-01):
#   EC2 on-demand, Linux (GPU types and t4g.nano): https://aws.amazon.com/ec2/pricing/on-demand/
#     (t4g.nano $0.0042/h = $3.07/month, also https://www.egresscost.com/nat-gateway)
#   public IPv4 $0.005/h, in use or idle: https://aws.amazon.com/vpc/pricing/ and
#     https://aws.amazon.com/blogs/aws/new-aws-public-ipv4-address-charge-public-ip-insights/
#   NAT gateway $0.045/h + $0.045/GB: https://aws.amazon.com/vpc/pricing/
#     (https://wiki.connerv.com/notes/aws/nat-gateway quotes the page); the egress-only
#     internet gateway and the S3 gateway endpoint have no hourly charge (same page; data
#     out to the internet is billed per GB, so nothing at idle)
#   ElastiCache cache.t4g.micro $0.016/h; Serverless Valkey $0.084/GB-hour metered at least
#     100 MB, ECPUs $0.0023/million: https://aws.amazon.com/elasticache/pricing/ (the 100 MB
#     floor: https://cur.vantage.sh/aws/amazonelasticache; the rate:
#     https://www.usage.ai/blogs/aws/database-savings-plans/elasticache/serverless-pricing/)
#   gp3 $0.08/GB-month, snapshots (standard tier) $0.05/GB-month: https://aws.amazon.com/ebs/pricing/
#   Secrets Manager $0.40/secret-month: https://aws.amazon.com/secrets-manager/pricing/
#   CloudWatch: 3 custom dashboards and 10 standard-resolution alarm metrics free per
#     account and month, then $3.00/dashboard and $0.10/alarm metric:
#     https://aws.amazon.com/cloudwatch/pricing/
#   AWS Budgets: budgets without actions cost nothing; action-enabled budgets are free for
#     the first 62 budget-days of a month (two budgets), then $0.10 per budget-day (AWS's
#     price list, usage type ActionEnabledBudgetsUsage, rate from 62 budget-days on:
#     https://huggingface.co/datasets/labofsahil/aws-pricing-dataset/blob/87886d0b3d9351ff523b05be6fe410a1f447be0b/AWSBudgets.csv;
#     https://aws.amazon.com/aws-cost-management/aws-budgets/pricing/)
PRICES = PriceTable(
    region="us-east-1",
    as_of="2026-12-01",
    source="AWS on-demand list prices; each figure's page is named in backend/core/pricing.py",
    hourly={
        # EC2 on-demand, Linux
        "g4dn.xlarge": 0.526,
        "g4dn.2xlarge": 0.752,
        "g5.xlarge": 1.006,
        "g5.2xlarge": 1.212,
        "g6.xlarge": 0.8048,
        "t4g.nano": 0.0042,  # the Redis instance (RedisMode=instance)
        "public_ipv4": 0.005,  # every public IPv4 address, attached or not
        "nat_gateway": 0.045,
        "cache.t4g.micro": 0.016,  # ElastiCache for Redis OSS node
        "valkey_serverless_gb": 0.084,  # ElastiCache Serverless for Valkey, per GB-hour
    },
    monthly={
        "valkey_serverless_min_gb": 0.1,  # Valkey serverless meters at least 100 MB
        "gp3_gb": 0.08,
        "snapshot_gb": 0.05,
        "secret": 0.40,
        "dashboard": 3.00,
        "alarm": 0.10,  # standard resolution, per alarm metric
        "budget_action_day": 0.10,  # per action-enabled budget-day beyond the free 62
    },
)

# What the account's free tiers are shared with. An estimate before deploying cannot see
# the account, so it assumes this stack is the only user of them, and says so on the line.
FREE_DASHBOARDS = 3
FREE_ALARMS = 10
FREE_ACTION_BUDGET_DAYS = 62  # a month's free budget-days: two budgets × 31 days


@dataclass(frozen=True)
class AccountUsage:
    """What else the account already has that shares a free tier (0 = nothing else)."""

    dashboards: int = 0
    alarms: int = 0
    action_budgets: int = 0


NO_OTHER_USAGE = AccountUsage()


def instance_hourly_usd(instance_type: str | None, prices: PriceTable = PRICES) -> float | None:
    """The on-demand hourly price of an EC2 instance type in `prices`, or None when the table
    does not list it (the caller keeps its own figure then). Only instance types: the
    table's other hourly lines (an IPv4 address, an endpoint) are not instances."""
    if not instance_type or "." not in instance_type:
        return None
    return prices.hourly.get(instance_type)


# What the full stack creates, by parameter. Kept beside the prices because the wizard
# needs both; tests/infra/test_pricing.py checks them against infra/stack.yaml.
REDIS_INSTANCE_TYPE = "t4g.nano"  # RedisMode=instance: the smallest Graviton instance
REDIS_INSTANCE_ROOT_GB = 8  # Amazon Linux 2023's smallest root volume; no public IPv4
STACK_SECRETS = 1  # the Redis auth token
STACK_ALARMS = 2  # idle stop, router errors
REDIS_INSTANCE_ALARMS = 1  # RedisMode=instance: its auto-recovery alarm
MVP_SECRETS = 1  # tinyllama/openai
REDIS_MODES = ("instance", "elasticache-node", "serverless-valkey")
EGRESS_MODES = ("ipv6", "nat-gateway")
# A baked worker image keeps one EBS snapshot per image pipeline.yaml keeps (KeepImages,
# default 1: the deployed image; a rollback re-bakes). Snapshots bill the blocks used, not
# the volume: ~25 GB for the image (Ubuntu, NVIDIA driver, vLLM, TinyLlama's weights), an
# estimate until the bake's `df` (its test phase prints it and fails past ImageVolumeGiB)
# is read on a real account (infra/NOTES.md, "Not verified without an AWS account").
IMAGE_SNAPSHOT_GB = 25
PIPELINE_KEEP_IMAGES = 1
# The GPU root volume: the smallest gp3 that holds the baked image (pipeline.yaml's
# ImageVolumeGiB, 30). The stock Deep Learning AMI's snapshot is larger: the wizard reads
# its size once the account is checked and raises the volume to it.
ROOT_VOLUME_GIB = "30"

# The template's defaults (the cheap profile, since issue 11), and the two named profiles.
# Only stack parameter names: `tinyllama deploy --cheap` passes CHEAP_PARAMETERS as they are.
DEFAULT_PARAMETERS: dict[str, str] = {
    "RedisMode": "instance",
    "EgressMode": "ipv6",
    "InstanceType": "g4dn.xlarge",
    "RootVolumeGiB": ROOT_VOLUME_GIB,
    "CreateDashboard": "false",
    "EnableBudgetAction": "true",
}
CHEAP_PARAMETERS: dict[str, str] = {**DEFAULT_PARAMETERS}
# The seed's own choices: ElastiCache for Redis 6.2 on one cache.t4g.micro node, and the
# dashboard (free among an account's first three).
SEED_PARAMETERS: dict[str, str] = {**DEFAULT_PARAMETERS, "RedisMode": "elasticache-node", "CreateDashboard": "true"}
PROFILES = {"default": DEFAULT_PARAMETERS, "cheap": CHEAP_PARAMETERS, "seed": SEED_PARAMETERS}
# What each profile must idle under (issue 11), in USD a month.
GOALS_USD = {"cheap": 8.00, "seed": 16.00}


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


def _free_tier_line(item: str, ours: int, others: int, free: int, price: float, unit: str) -> Line:
    """A line whose first `free` units a month are shared by the whole account."""
    billed = max(0, ours + others - free) - max(0, others - free)
    basis = (f"{ours} {unit}(s); the account's first {free} are free (assumed: {others} other(s) in the "
             f"account), then ${price:.2f} each")
    return Line(item, billed * price, basis)


def _redis_lines(mode: str, h: Mapping[str, float], m: Mapping[str, float]) -> list[Line]:
    if mode == "instance":
        t = REDIS_INSTANCE_TYPE
        return [Line(f"Redis: EC2 {t} instance", h[t] * HOURS_PER_MONTH,
                     f"${h[t]}/h × 730 h; no public IPv4; CPU credits stay under the baseline at idle"),
                Line("Redis: its root volume gp3", REDIS_INSTANCE_ROOT_GB * m["gp3_gb"],
                     f"{REDIS_INSTANCE_ROOT_GB} GB × ${m['gp3_gb']}/GB-month")]
    if mode == "elasticache-node":
        return [Line("Redis: ElastiCache cache.t4g.micro", h["cache.t4g.micro"] * HOURS_PER_MONTH,
                     f"${h['cache.t4g.micro']}/h × 730 h")]
    if mode == "serverless-valkey":
        gb = m["valkey_serverless_min_gb"]
        return [Line("Redis: ElastiCache Serverless Valkey (100 MB minimum)",
                     gb * h["valkey_serverless_gb"] * HOURS_PER_MONTH,
                     f"{gb} GB × ${h['valkey_serverless_gb']}/GB-h × 730 h; ECPUs ~0 at idle")]
    raise ValueError(f"RedisMode {mode!r}: use {', '.join(REDIS_MODES)}")


def _egress_lines(mode: str, h: Mapping[str, float]) -> list[Line]:
    if mode == "ipv6":
        return [Line("Egress: egress-only internet gateway (IPv6)", 0.0,
                     "no hourly charge; data out billed per GB, none at idle"),
                Line("GPU public IPv4 address", 0.0, "exists only while the GPU runs: billed per GPU hour")]
    if mode == "nat-gateway":
        return [Line("Egress: NAT gateway (one AZ)", h["nat_gateway"] * HOURS_PER_MONTH,
                     f"${h['nat_gateway']}/h × 730 h, plus ${h['nat_gateway']}/GB processed"),
                Line("Egress: the NAT gateway's public IPv4", h["public_ipv4"] * HOURS_PER_MONTH,
                     f"${h['public_ipv4']}/h × 730 h")]
    raise ValueError(f"EgressMode {mode!r}: use {' or '.join(EGRESS_MODES)}")


def estimate(
    parameters: Mapping[str, str] | None = None,
    *,
    template: str = "stack",
    prices: PriceTable = PRICES,
    kept_images: int = 0,
    account: AccountUsage = NO_OTHER_USAGE,
) -> Estimate:
    """Price `parameters` (the stack's parameter names; missing ones take the defaults).

    `template` is "stack" (the full stack) or "mvp" (the Lambda-only stack). `kept_images`
    is how many baked worker images pipeline.yaml keeps (0: the stock image, no pipeline).
    `account` is what else the account has that shares the free tiers (nothing, unless
    told). Raises ValueError for a value the template would refuse, so the wizard never
    shows a price for a stack that cannot be created.
    """
    h, m = prices.hourly, prices.monthly
    if template == "mvp":
        mvp = [Line("Secrets Manager secret (OpenAI key)", MVP_SECRETS * m["secret"], "$0.40/secret"),
               Line("Lambda, HTTP API, S3, logs, budget", 0.0, "billed per request; none at idle")]
        return Estimate(mvp, [], prices)
    if template != "stack":
        raise ValueError(f"template must be 'stack' or 'mvp', not {template!r}")

    p = {**DEFAULT_PARAMETERS, **(parameters or {})}
    redis, egress = p["RedisMode"], p["EgressMode"]
    lines = _redis_lines(redis, h, m) + _egress_lines(egress, h)

    instance_type = p["InstanceType"]
    if instance_type not in h:
        raise ValueError(f"InstanceType {instance_type!r} is not in the price table")
    size = int(p["RootVolumeGiB"])
    if not 30 <= size <= 1000:
        raise ValueError(f"RootVolumeGiB {size}: between 30 and 1000")
    if not 0 <= kept_images <= 10:
        raise ValueError(f"KeepImages {kept_images}: between 0 and 10")
    lines.append(Line("GPU instance, stopped", 0.0, "EC2 bills nothing while stopped"))
    lines.append(Line("GPU root volume gp3 (kept while stopped)", size * m["gp3_gb"],
                      f"{size} GB × ${m['gp3_gb']}/GB-month"))
    if kept_images:
        lines.append(Line(f"Worker image snapshots ({kept_images} kept by the pipeline)",
                          kept_images * IMAGE_SNAPSHOT_GB * m["snapshot_gb"],
                          f"{kept_images} × ~{IMAGE_SNAPSHOT_GB} GB × ${m['snapshot_gb']}/GB-month (estimated size)"))
    else:
        lines.append(Line("Worker image snapshots", 0.0, "none: the stock image, no image pipeline"))
    lines.append(Line("Secrets Manager secret (Redis auth token)", STACK_SECRETS * m["secret"],
                      f"{STACK_SECRETS} × ${m['secret']}/month"))
    dashboards = 1 if _flag(p["CreateDashboard"]) else 0
    if dashboards:
        lines.append(_free_tier_line("CloudWatch dashboard", dashboards, account.dashboards, FREE_DASHBOARDS,
                                     m["dashboard"], "dashboard"))
    alarms = STACK_ALARMS + (REDIS_INSTANCE_ALARMS if redis == "instance" else 0)
    lines.append(_free_tier_line("CloudWatch alarms", alarms, account.alarms, FREE_ALARMS, m["alarm"], "alarm"))
    if _flag(p["EnableBudgetAction"]):
        # Billed per budget-day beyond a month's 62 free ones: this budget's 30.4 days are
        # free unless other action-enabled budgets use them up first.
        others_days = account.action_budgets * DAYS_PER_MONTH
        billed_days = max(0.0, others_days + DAYS_PER_MONTH - FREE_ACTION_BUDGET_DAYS) - max(
            0.0, others_days - FREE_ACTION_BUDGET_DAYS)
        lines.append(Line("Budget with stop and deny-wake actions", billed_days * m["budget_action_day"],
                          f"the first {FREE_ACTION_BUDGET_DAYS} action-enabled budget-days of a month (two budgets) "
                          f"are free (assumed: {account.action_budgets} other(s) in the account), "
                          f"then ${m['budget_action_day']}/day"))
    lines.append(Line("Cognito, HTTP API, Lambda, S3, logs, schedules", 0.0,
                      "billed per use: nothing at zero prompts; Cognito free under 10,000 monthly users"))

    gpu = [Line(f"GPU instance {instance_type} running", h[instance_type], "on-demand, per hour")]
    if egress == "ipv6":
        gpu.append(Line("GPU public IPv4 address", h["public_ipv4"],
                        "per hour while the GPU runs; released when it stops"))
    return Estimate([Line(x.item, round(x.usd, 2), x.basis) for x in lines], gpu, prices)


def profile_estimate(name: str, prices: PriceTable = PRICES) -> Estimate:
    """The idle month of a named profile (`PROFILES`), as `tinyllama cost-estimate --profile` prints it.
    Every profile boots a baked image (its 30 GiB root needs one), so the pipeline's kept
    images are priced too."""
    return estimate(PROFILES[name], prices=prices, kept_images=PIPELINE_KEEP_IMAGES)


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
