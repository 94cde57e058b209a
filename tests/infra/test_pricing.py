"""The idle-cost estimate. Expected figures are worked out here by hand from the list
prices (us-east-1), not taken from the code's output."""

from __future__ import annotations

import json

import pytest

from backend.core import pricing
from desktop import cli
from tests.infra.conftest import INFRA, load_template

# By hand: price × 730 hours (or × GB), rounded to cents per line as the bill shows it.
REDIS_INSTANCE = 3.07 + 0.64  # t4g.nano $0.0042/h × 730 = 3.066; its 8 GB gp3 × $0.08; no public IPv4
REDIS_NODE = 11.68  # cache.t4g.micro $0.016/h × 730
VALKEY_MIN = 6.13  # 0.1 GB × $0.084/GB-h × 730 = 6.132
NAT_GATEWAY = 32.85 + 3.65  # $0.045 × 730; its public IPv4 $0.005 × 730
ROOT_30 = 30 * 0.08  # the GPU's gp3 root volume, kept while stopped (holds the baked image)
KEPT_IMAGE = 25 * 0.05  # the pipeline keeps one ~25 GB image snapshot (the profiles boot a baked image)
SECRET = 0.40
# Free while the account has nothing else: 3 alarms of 10, 1 dashboard of 3, and one
# action-enabled budget's 30.4 days of the month's 62 free budget-days.
FREE = 0.0


def idle(parameters: dict[str, str], **kwargs: object) -> float:
    return pricing.estimate(parameters, **kwargs).idle_monthly_usd  # type: ignore[arg-type]


def lines(result: pricing.Estimate) -> dict[str, float]:
    return {line.item: line.usd for line in result.idle_lines}


def test_cheap_profile_line_by_line_under_8_dollars() -> None:
    got = lines(pricing.profile_estimate("cheap"))
    assert got == {
        "Redis: EC2 t4g.nano instance": 3.07,
        "Redis: its root volume gp3": 0.64,
        "Egress: egress-only internet gateway (IPv6)": 0.0,
        "GPU public IPv4 address": 0.0,  # only while the GPU runs: in the GPU hour
        "GPU instance, stopped": 0.0,
        "GPU root volume gp3 (kept while stopped)": 2.40,
        "Worker image snapshots (1 kept by the pipeline)": 1.25,  # the baked image the 30 GiB root needs
        "Secrets Manager secret (Redis auth token)": 0.40,
        "CloudWatch alarms": 0.0,  # 3 of the account's free 10
        "Budget with stop and deny-wake actions": 0.0,  # was $3.04: the first two are free
        "Cognito, HTTP API, Lambda, S3, logs, schedules": 0.0,
    }
    total = pricing.profile_estimate("cheap").idle_monthly_usd
    assert total == pytest.approx(REDIS_INSTANCE + ROOT_30 + KEPT_IMAGE + SECRET, abs=0.005) == pytest.approx(
        7.76, abs=0.005)
    assert total <= pricing.GOALS_USD["cheap"] == 8.00


def test_seed_profile_line_by_line_under_16_dollars() -> None:
    got = lines(pricing.profile_estimate("seed"))
    assert got["Redis: ElastiCache cache.t4g.micro"] == REDIS_NODE
    assert got["CloudWatch dashboard"] == FREE and got["CloudWatch alarms"] == FREE
    assert {k: v for k, v in got.items() if v} == {"Redis: ElastiCache cache.t4g.micro": REDIS_NODE,
                                                  "GPU root volume gp3 (kept while stopped)": 2.40,
                                                  "Worker image snapshots (1 kept by the pipeline)": 1.25,
                                                  "Secrets Manager secret (Redis auth token)": SECRET}
    total = pricing.profile_estimate("seed").idle_monthly_usd
    assert total == pytest.approx(REDIS_NODE + ROOT_30 + KEPT_IMAGE + SECRET, abs=0.005) == pytest.approx(
        15.73, abs=0.005)
    assert total <= pricing.GOALS_USD["seed"] == 16.00


def test_the_cheap_profile_is_the_templates_default() -> None:
    assert pricing.CHEAP_PARAMETERS == pricing.DEFAULT_PARAMETERS
    assert idle({}) == idle(pricing.CHEAP_PARAMETERS)


@pytest.mark.parametrize(("redis", "cost"), [("instance", REDIS_INSTANCE), ("elasticache-node", REDIS_NODE),
                                             ("serverless-valkey", VALKEY_MIN)])
def test_redis_choices(redis: str, cost: float) -> None:
    # the Redis instance's recovery alarm is within the free 10, so only Redis itself moves
    assert idle({"RedisMode": redis}) == pytest.approx(cost + ROOT_30 + SECRET, abs=0.005)


def test_a_nat_gateway_only_when_asked_for_and_the_gpu_address_moves_to_the_gpu_hour() -> None:
    assert idle({"EgressMode": "nat-gateway"}) - idle({"EgressMode": "ipv6"}) == pytest.approx(NAT_GATEWAY, abs=0.005)
    ipv6 = pricing.estimate({"EgressMode": "ipv6"})
    assert ipv6.per_gpu_hour_usd == 0.526 + 0.005  # its public IPv4 exists only while it runs
    assert pricing.estimate({"EgressMode": "nat-gateway"}).per_gpu_hour_usd == 0.526  # private, behind the NAT


def test_each_option_moves_the_total_by_its_own_price() -> None:
    base = idle({})
    assert idle({"RootVolumeGiB": "130"}) - base == pytest.approx(100 * 0.08, abs=0.005)
    assert idle({}, kept_images=2) - base == pytest.approx(2 * 25 * 0.05, abs=0.005)  # two kept image snapshots
    assert idle({"CreateDashboard": "true"}) == base  # free among the account's first 3
    assert idle({"EnableBudgetAction": "false"}) == base  # free: the first two action-enabled budgets
    assert idle({"InstanceType": "g5.2xlarge"}) == base  # a stopped GPU bills nothing


def test_free_tiers_are_the_accounts_and_the_assumption_is_shown() -> None:
    alarms = {line.item: line for line in pricing.estimate({}).idle_lines}["CloudWatch alarms"]
    assert "first 10 are free" in alarms.basis and "assumed: 0 other" in alarms.basis
    crowded = pricing.AccountUsage(dashboards=3, alarms=9, action_budgets=3)
    full = lines(pricing.estimate({"CreateDashboard": "true"}, account=crowded))
    assert full["CloudWatch dashboard"] == 3.00  # the 4th dashboard
    assert full["CloudWatch alarms"] == 2 * 0.10  # 3 alarms, 1 of them still free
    assert full["Budget with stop and deny-wake actions"] == 3.04  # $0.10 × 365/12 days
    # other budgets using only part of the free days leave the rest to this one:
    # two others use 60.83 of the 62, so (3 × 30.42 − 62) = 29.25 days × $0.10 are billed
    assert lines(pricing.estimate({}, account=pricing.AccountUsage(action_budgets=2)))[
        "Budget with stop and deny-wake actions"] == 2.93
    assert lines(pricing.estimate({}, account=pricing.AccountUsage(action_budgets=1)))[
        "Budget with stop and deny-wake actions"] == 0.0


def test_per_gpu_hour() -> None:
    assert pricing.estimate({"InstanceType": "g5.xlarge"}).per_gpu_hour_usd == 1.006 + 0.005


def test_mvp_idles_at_the_secret() -> None:
    assert pricing.estimate(template="mvp").idle_monthly_usd == SECRET


@pytest.mark.parametrize("bad", [{"RedisMode": "on-instance"}, {"EgressMode": "nat-instance"},
                                 {"EgressMode": "endpoints"}, {"InstanceType": "p5.48xlarge"},
                                 {"RootVolumeGiB": "10"}])
def test_values_the_template_refuses_are_refused(bad: dict[str, str]) -> None:
    with pytest.raises(ValueError):
        pricing.estimate(bad)


def test_text_names_region_date_and_every_line() -> None:
    result = pricing.estimate(pricing.CHEAP_PARAMETERS)
    text = pricing.format_estimate(result, "cheap")
    assert "us-east-1" in text and pricing.PRICES.as_of in text
    assert "$   6.51" in text  # no kept snapshot (estimate() without kept_images), the 30 GiB root
    for line in result.idle_lines + result.gpu_hour_lines:
        assert line.item in text


@pytest.mark.parametrize(("profile", "total", "goal"), [("cheap", 7.76, "$8.00"), ("seed", 15.73, "$16.00")])
def test_command_prints_each_line_the_total_and_the_goal(capsys: pytest.CaptureFixture[str], profile: str,
                                                         total: float, goal: str) -> None:
    assert cli.main(["cost-estimate", "--profile", profile]) == 0
    out = capsys.readouterr().out
    for line in pricing.profile_estimate(profile).idle_lines:
        assert line.item in out
    assert "Total per month" in out and f"${total:>7.2f}" in out
    assert f"idle at most {goal}/month: within it" in out


def test_command_prints_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["cost-estimate", "--profile", "cheap", "-p", "RedisMode=elasticache-node",
                     "--kept-images", "2", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["idle_monthly_usd"] == pytest.approx(REDIS_NODE + ROOT_30 + SECRET + 2.50, abs=0.005)
    assert out["region"] == "us-east-1"


def test_command_explains_a_bad_value(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["cost-estimate", "-p", "RedisMode=memcached"]) == 2
    assert "RedisMode" in capsys.readouterr().out


# ---- the estimate prices the template that exists, not an imagined one

STACK = load_template(INFRA / "stack.yaml")
PARAMS = STACK["Parameters"]
# Issue 11's template (helpers F, G, H) brings RedisMode=instance and EgressMode=ipv6;
# until it is merged these checks have nothing to compare with and say so.
NEW_TEMPLATE = "instance" in [str(v) for v in PARAMS["RedisMode"].get("AllowedValues", [])] and "ipv6" in [
    str(v) for v in PARAMS["EgressMode"].get("AllowedValues", [])]
needs_new_template = pytest.mark.skipif(not NEW_TEMPLATE, reason="infra/stack.yaml predates issue 11's modes")


def _holds(condition: object, parameters: dict[str, str]) -> bool:
    """A template Condition (Equals/Not/And/Or over Refs and other Conditions) for `parameters`."""
    if isinstance(condition, str):
        return _holds(STACK["Conditions"][condition], parameters)
    assert isinstance(condition, dict), condition
    (fn, args), = condition.items()
    if fn == "Condition":
        return _holds(args, parameters)
    if fn == "Fn::Equals":
        a, b = (parameters.get(x["Ref"], str(PARAMS.get(x["Ref"], {}).get("Default")))
                if isinstance(x, dict) else str(x) for x in args)
        return a == b
    if fn == "Fn::Not":
        return not _holds(args[0], parameters)
    if fn == "Fn::And":
        return all(_holds(c, parameters) for c in args)
    if fn == "Fn::Or":
        return any(_holds(c, parameters) for c in args)
    raise AssertionError(f"condition {fn} not understood")


def created(parameters: dict[str, str], resource_type: str) -> dict[str, dict[str, object]]:
    """The resources of `resource_type` the template creates with `parameters`."""
    p = {**pricing.DEFAULT_PARAMETERS, **parameters}
    return {name: r for name, r in STACK["Resources"].items()
            if r["Type"] == resource_type and ("Condition" not in r or _holds(r["Condition"], p))}


@needs_new_template
def test_defaults_are_the_templates() -> None:
    for name, value in pricing.DEFAULT_PARAMETERS.items():
        assert str(PARAMS[name]["Default"]) == value, name
    for profile in pricing.PROFILES.values():
        for name, value in profile.items():
            allowed = PARAMS[name].get("AllowedValues")
            assert allowed is None or value in [str(v) for v in allowed], name
    assert sorted(pricing.REDIS_MODES) == sorted(str(v) for v in PARAMS["RedisMode"]["AllowedValues"])
    assert sorted(pricing.EGRESS_MODES) == sorted(str(v) for v in PARAMS["EgressMode"]["AllowedValues"])


def test_gpu_prices_match_the_templates_mapping() -> None:
    mapping = STACK["Mappings"]["GpuPrice"]
    assert set(mapping) == set(PARAMS["InstanceType"]["AllowedValues"])
    for instance_type, row in mapping.items():
        assert float(row["Usd"]) == pricing.PRICES.hourly[instance_type], instance_type


@needs_new_template
@pytest.mark.parametrize("redis", pricing.REDIS_MODES)
@pytest.mark.parametrize("egress", pricing.EGRESS_MODES)
def test_counted_resources_match_the_template(redis: str, egress: str) -> None:
    p = {"RedisMode": redis, "EgressMode": egress}
    alarms = pricing.STACK_ALARMS + (pricing.REDIS_INSTANCE_ALARMS if redis == "instance" else 0)
    assert len(created(p, "AWS::CloudWatch::Alarm")) == alarms
    assert len(created(p, "AWS::SecretsManager::Secret")) == pricing.STACK_SECRETS
    assert len(created(p, "AWS::EC2::NatGateway")) == (egress == "nat-gateway")
    assert len(created(p, "AWS::EC2::EIP")) == (egress == "nat-gateway")
    assert not created(p, "AWS::EC2::VPCEndpoint") or all(
        r["Properties"].get("VpcEndpointType", "Gateway") == "Gateway"  # type: ignore[union-attr]
        for r in created(p, "AWS::EC2::VPCEndpoint").values())  # interface endpoints bill hourly
    instances = {n: r for n, r in created(p, "AWS::EC2::Instance").items() if n != "WorkerInstance"}
    if redis == "instance":
        (redis_instance,) = instances.values()
        props = redis_instance["Properties"]
        assert props["InstanceType"] == pricing.REDIS_INSTANCE_TYPE  # type: ignore[index]
        sizes = [b["Ebs"]["VolumeSize"] for b in props.get("BlockDeviceMappings", [])]  # type: ignore[union-attr]
        assert sizes in ([], [pricing.REDIS_INSTANCE_ROOT_GB])  # none given: the AMI's 8 GB
    else:
        assert instances == {}
    if redis == "elasticache-node":
        (group,) = created(p, "AWS::ElastiCache::ReplicationGroup").values()
        assert group["Properties"]["CacheNodeType"] in pricing.PRICES.hourly  # type: ignore[index]


def test_the_gpu_day_bench_measures_the_stacks_own_idle_timeout() -> None:
    # bench/gpu_day.py's headline ratio (billed ÷ in session, goal 1.3) is only the stack's
    # if it simulates the template's default idle timeout.
    from bench import gpu_day

    assert gpu_day.DEFAULT_IDLE_TIMEOUT_S == float(STACK["Parameters"]["IdleTimeoutS"]["Default"]) == 300.0
