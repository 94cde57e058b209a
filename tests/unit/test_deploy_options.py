"""The wizard's options as plain data: euros to whole dollars, what is missing, the
parameters each template gets, and the price of the choice."""

from __future__ import annotations

import re

import pytest

from backend.core import pricing
from desktop.core.deploy_options import EGRESS_MODES, REDIS_MODES, DeployOptions
from tests.infra.conftest import INFRA, load_template

CONNECTION_ARN = "arn:aws:codeconnections:us-east-1:123456789012:connection/0a1b2c3d-4e5f-6a7b-8c9d-0e1f2a3b4c5d"


def test_euros_become_whole_dollars_rounded_down() -> None:
    o = DeployOptions(warning_eur=15, hard_cap_eur=20, eur_usd=1.08, alert_email="a@example.com")
    assert (o.warning_usd, o.hard_cap_usd) == (16, 21)  # 16.2 and 21.6: never above what was asked
    assert o.parameters()["WarningUsd"] == "16" and o.parameters()["HardCapUsd"] == "21"
    assert DeployOptions(hard_cap_eur=1, eur_usd=0.5).hard_cap_usd == 1  # the template's minimum


def test_an_update_keeps_the_stacks_dollars() -> None:
    o = DeployOptions(warning_eur=12, hard_cap_eur=12, eur_usd=1.08, kept_warning_usd=13, kept_hard_cap_usd=13)
    assert (o.warning_usd, o.hard_cap_usd) == (13, 13)  # 12 EUR would give 12 USD again, not 13


def test_problems_in_words() -> None:
    assert DeployOptions().problems() == ["Alert e-mail: an address budget alerts can reach"]
    o = DeployOptions(alert_email="a@example.com", warning_eur=20, hard_cap_eur=20, model="not a model")
    assert o.problems() == ["The warning must be below the hard cap",
                            "Model: a Hugging Face id such as TinyLlama/TinyLlama-1.1B-Chat-v1.0"]
    # the MVP deploys without a build project; a connection needs a repository it can read
    assert DeployOptions(template="mvp", alert_email="a@example.com").problems() == []
    mvp = DeployOptions(template="mvp", alert_email="a@example.com", source_connection_arn=CONNECTION_ARN,
                        source_repository_url="http://x/y")
    assert mvp.problems() == ["Source repository: an https:// URL the connection can read"]
    mvp = DeployOptions(template="mvp", alert_email="a@example.com", source_connection_arn="arn:aws:iam::1:role/x",
                        source_repository_url="https://g.com/a/b")
    assert mvp.problems() == ["Connection: the ARN of a CodeConnections connection (Developer Tools → Connections)"]


def test_parameters_per_template() -> None:
    mvp = DeployOptions(template="mvp", alert_email="a@example.com", source_repository_url="https://g.com/a/b")
    assert mvp.parameters() == {"BudgetLimitUsd": "21", "AlertEmail": "a@example.com", "SourceConnectionArn": "",
                                "SourceRepositoryUrl": "", "StorePrompts": "false"}  # no connection: no build
    mvp = DeployOptions(template="mvp", alert_email="a@example.com", source_connection_arn=CONNECTION_ARN,
                        source_repository_url="https://g.com/a/b", store_prompts=True)
    assert mvp.parameters() == {"BudgetLimitUsd": "21", "AlertEmail": "a@example.com",
                                "SourceConnectionArn": CONNECTION_ARN, "SourceRepositoryUrl": "https://g.com/a/b",
                                "StorePrompts": "true"}
    mvp_template = load_template(INFRA / "mvp.yaml")
    assert set(mvp.parameters()) <= set(mvp_template["Parameters"])
    assert re.fullmatch(mvp_template["Parameters"]["SourceConnectionArn"]["AllowedPattern"], CONNECTION_ARN)
    stack = DeployOptions(alert_email="a@example.com", dashboard=True).parameters()
    assert stack["CreateDashboard"] == "true" and stack["RedisMode"] == "instance"
    assert stack["EgressMode"] == "ipv6" and stack["EnableBudgetAction"] == "true"
    assert stack["RootVolumeGiB"] == pricing.CHEAP_PARAMETERS["RootVolumeGiB"]


def test_the_defaults_are_the_cheap_profile_and_every_choice_is_priced() -> None:
    o = DeployOptions(alert_email="a@example.com")
    assert {k: v for k, v in o.parameters().items() if k in pricing.CHEAP_PARAMETERS} == pricing.CHEAP_PARAMETERS
    assert o.estimate().idle_monthly_usd <= pricing.GOALS_USD["cheap"]
    assert list(REDIS_MODES) == list(pricing.REDIS_MODES) and list(EGRESS_MODES) == list(pricing.EGRESS_MODES)
    for redis in REDIS_MODES:
        for egress in EGRESS_MODES:
            DeployOptions(redis_mode=redis, egress_mode=egress).estimate()  # no ValueError: every choice is priced


def test_a_baked_image_prices_the_snapshots_the_pipeline_keeps() -> None:
    stock = DeployOptions(alert_email="a@example.com").estimate()
    baked = DeployOptions(alert_email="a@example.com", image_parameter="/tinyllama/worker-ami").estimate()
    kept = pricing.PIPELINE_KEEP_IMAGES
    assert kept == 1 and baked.idle_monthly_usd - stock.idle_monthly_usd == pytest.approx(kept * 25 * 0.05, abs=0.005)


@pytest.mark.parametrize("changes", [{}, {"redis_mode": "elasticache-node"}, {"instance_type": "g5.xlarge"},
                                     {"egress_mode": "nat-gateway", "root_volume_gib": 100}])
def test_estimate_is_pricings_own(changes: dict[str, object]) -> None:
    o = DeployOptions(alert_email="a@example.com", **changes)  # type: ignore[arg-type]
    expected = pricing.estimate({k: v for k, v in o.parameters().items() if k in pricing.DEFAULT_PARAMETERS})
    assert o.estimate() == expected
    assert DeployOptions(template="mvp").estimate().gpu_hour_lines == []
