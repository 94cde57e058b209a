"""The idle-cost estimate. Expected figures are worked out here by hand from the list
prices (us-east-1), not taken from the code's output."""

from __future__ import annotations

import json

import pytest

from backend.core import pricing
from desktop import cli
from tests.infra.conftest import INFRA, load_template

# By hand: price × 730 hours (or × GB), rounded to cents per line as the bill shows it.
REDIS_NODE = 11.68  # cache.t4g.micro $0.016/h × 730
VALKEY_MIN = 6.13  # 0.1 GB × $0.084/GB-h × 730 = 6.132
NAT_INSTANCE = 3.07 + 0.64 + 3.65  # t4g.nano $0.0042 × 730 = 3.066; 8 GB gp3 × $0.08; IPv4 $0.005 × 730
NAT_GATEWAY = 32.85 + 3.65  # $0.045 × 730; its IPv4 address
ENDPOINTS = 51.10  # 7 endpoints × $0.01/h × 730
SECRET, DASHBOARD, ALARMS = 0.40, 3.00, 2 * 0.10
BUDGET_ACTION = 3.04  # $0.10/day × 365/12 days = 3.0417


def idle(parameters: dict[str, str]) -> float:
    return pricing.estimate(parameters).idle_monthly_usd


def test_default_profile_idle_month() -> None:
    expected = REDIS_NODE + NAT_INSTANCE + 100 * 0.08 + SECRET + DASHBOARD + ALARMS + BUDGET_ACTION
    assert idle(pricing.DEFAULT_PARAMETERS) == pytest.approx(expected, abs=0.005)
    assert idle(pricing.DEFAULT_PARAMETERS) == pytest.approx(33.68, abs=0.005)


def test_cheap_profile_idle_month() -> None:
    expected = VALKEY_MIN + NAT_INSTANCE + 60 * 0.08 + SECRET + ALARMS + BUDGET_ACTION
    assert idle(pricing.CHEAP_PARAMETERS) == pytest.approx(expected, abs=0.005)
    assert idle(pricing.CHEAP_PARAMETERS) == pytest.approx(21.93, abs=0.005)


@pytest.mark.parametrize(("egress", "cost"), [("nat-gateway", NAT_GATEWAY), ("endpoints", ENDPOINTS)])
def test_egress_choices(egress: str, cost: float) -> None:
    delta = idle({"EgressMode": egress}) - idle({"EgressMode": "nat-instance"})
    assert delta == pytest.approx(cost - NAT_INSTANCE, abs=0.005)


def test_each_option_moves_the_total_by_its_own_price() -> None:
    base = idle({})
    assert base - idle({"CreateDashboard": "false"}) == pytest.approx(DASHBOARD, abs=0.005)
    assert base - idle({"EnableBudgetAction": "false"}) == pytest.approx(BUDGET_ACTION, abs=0.005)
    assert idle({"RootVolumeGiB": "200"}) - base == pytest.approx(100 * 0.08, abs=0.005)
    # a running GPU is per hour; the stopped instance is not in the idle month
    assert idle({"InstanceType": "g5.2xlarge"}) == base


def test_per_gpu_hour() -> None:
    assert pricing.estimate({}).per_gpu_hour_usd == 0.526
    assert pricing.estimate({"InstanceType": "g5.xlarge"}).per_gpu_hour_usd == 1.006


def test_mvp_idles_at_the_secret() -> None:
    assert pricing.estimate(template="mvp").idle_monthly_usd == SECRET


@pytest.mark.parametrize("bad", [{"RedisMode": "on-instance"}, {"EgressMode": "none"},
                                 {"InstanceType": "p5.48xlarge"}, {"RootVolumeGiB": "10"}])
def test_values_the_template_refuses_are_refused(bad: dict[str, str]) -> None:
    with pytest.raises(ValueError):
        pricing.estimate(bad)


def test_text_names_region_date_and_every_line() -> None:
    result = pricing.estimate(pricing.CHEAP_PARAMETERS)
    text = pricing.format_estimate(result, "cheap")
    assert "us-east-1" in text and pricing.PRICES.as_of in text
    assert "$  21.93" in text
    for line in result.idle_lines:
        assert line.item in text


def test_command_prints_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["cost-estimate", "--profile", "cheap", "-p", "CreateDashboard=true", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["idle_monthly_usd"] == pytest.approx(21.93 + DASHBOARD, abs=0.005)
    assert out["region"] == "us-east-1"


def test_command_explains_a_bad_value(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["cost-estimate", "-p", "RedisMode=memcached"]) == 2
    assert "RedisMode" in capsys.readouterr().out


# ---- the estimate prices the template that exists, not an imagined one

STACK = load_template(INFRA / "stack.yaml")


def test_defaults_are_the_templates() -> None:
    for name, value in pricing.DEFAULT_PARAMETERS.items():
        assert str(STACK["Parameters"][name]["Default"]) == value, name
    for name, value in pricing.CHEAP_PARAMETERS.items():
        allowed = STACK["Parameters"][name].get("AllowedValues")
        assert allowed is None or value in [str(v) for v in allowed], name


def test_gpu_prices_match_the_templates_mapping() -> None:
    mapping = STACK["Mappings"]["GpuPrice"]
    assert set(mapping) == set(STACK["Parameters"]["InstanceType"]["AllowedValues"])
    for instance_type, row in mapping.items():
        assert float(row["Usd"]) == pricing.PRICES.hourly[instance_type], instance_type


def test_counted_resources_match_the_template() -> None:
    resources = STACK["Resources"].values()
    endpoints = sorted(r["Properties"]["ServiceName"]["Fn::Sub"].rsplit(".", 1)[1] for r in resources
                       if r["Type"] == "AWS::EC2::VPCEndpoint" and r["Properties"]["VpcEndpointType"] == "Interface")
    assert endpoints == sorted(pricing.INTERFACE_ENDPOINTS)
    assert sum(r["Type"] == "AWS::CloudWatch::Alarm" for r in resources) == pricing.STACK_ALARMS
    assert sum(r["Type"] == "AWS::SecretsManager::Secret" for r in resources) == pricing.STACK_SECRETS
    nat = STACK["Resources"]["NatInstance"]["Properties"]
    assert nat["InstanceType"] == "t4g.nano"
    assert nat["BlockDeviceMappings"][0]["Ebs"]["VolumeSize"] == pricing.NAT_INSTANCE_ROOT_GB
    redis = STACK["Resources"]["RedisReplicationGroup"]["Properties"]
    assert redis["CacheNodeType"] in pricing.PRICES.hourly
