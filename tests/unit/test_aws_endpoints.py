"""Every AWS client the router builds talks to the endpoint infra/NOTES.md lists for it.

The default stack has no NAT: the router reaches AWS over IPv6 only, so a client on an
IPv4-only hostname would hang until the request times out. What is checked is the host
botocore really sends the request to (caught just before it leaves, nothing goes out),
not `client.meta.endpoint_url`, which botocore's per-request endpoint rules override
(for Budgets it says `budgets.aws-global.api.aws`; the request goes to
`budgets.us-east-1.api.aws`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from aws_lambda_powertools.utilities.parameters.constants import DEFAULT_PROVIDERS

from backend.adapters import aws_endpoints
from backend.adapters.compute_ec2 import Ec2Compute
from backend.adapters.spend import budgets_client
from backend.entrypoints import settings

NOTES = Path(__file__).resolve().parents[2] / "infra" / "NOTES.md"


class _Caught(Exception):
    """Raised in place of sending: the request was built, its URL recorded."""


def _host(client: Any, call: Callable[[Any], Any]) -> str:
    hosts: list[str] = []

    def catch(request: Any, **_: Any) -> None:
        hosts.append(urlsplit(request.url).hostname or "")
        raise _Caught

    client.meta.events.register("before-send", catch)
    with pytest.raises(_Caught):
        call(client)
    return hosts[0]


def _notes_rows() -> dict[str, tuple[bool, str]]:
    """botocore name -> (dual-stack?, host in us-east-1) from NOTES' endpoint table."""
    text = NOTES.read_text()
    section = text.split("## Endpoints the router calls", 1)[1].split("\n## ", 1)[0]
    rows = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 4 and re.fullmatch(r"`[a-z0-9-]+`", cells[1]):
            rows[cells[1].strip("`")] = (cells[2].startswith("yes"), cells[3].strip("`"))
    return rows


@pytest.fixture
def real_aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """An environment as in the Lambda: a region, credentials, no endpoint overrides, and
    a fresh Powertools secrets provider (put back afterwards)."""
    for name in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_EC2", "AWS_ENDPOINT_URL_BUDGETS",
                 "AWS_ENDPOINT_URL_SECRETS_MANAGER", "AWS_USE_DUALSTACK_ENDPOINT", "AWS_PROFILE",
                 "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setitem(DEFAULT_PROVIDERS, "secrets", None)
    yield


def _router_clients() -> dict[str, tuple[Any, Callable[[Any], Any]]]:
    """Each client as the router builds it, and a call that makes it send a request."""
    return {
        "ec2": (Ec2Compute("i-0123456789abcdef0").client, lambda c: c.describe_instances(InstanceIds=["i-1"])),
        "budgets": (budgets_client(), lambda c: c.describe_budget(AccountId="123456789012", BudgetName="b")),
        "secretsmanager": (settings.secrets_provider().client, lambda c: c.get_secret_value(SecretId="s")),
    }


def test_notes_and_code_list_the_same_services_the_same_way() -> None:
    rows = _notes_rows()
    assert rows, "infra/NOTES.md has no endpoint table"
    assert {name: dual for name, (dual, _) in rows.items()} == aws_endpoints.DUALSTACK


def test_each_router_client_sends_to_the_host_notes_lists(real_aws_env: None) -> None:
    rows = _notes_rows()
    clients = _router_clients()
    assert clients.keys() == rows.keys()
    for name, (client, call) in clients.items():
        assert client.meta.config.use_dualstack_endpoint is aws_endpoints.DUALSTACK[name], name
        assert _host(client, call) == rows[name][1], name


def test_budgets_goes_to_its_dual_stack_host_from_any_region(real_aws_env: None,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """Budgets is global: a stack in eu-west-1 still calls us-east-1's dual-stack host
    (its IPv4 one, budgets.amazonaws.com, is unreachable without a NAT)."""
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    client = budgets_client()
    assert _host(client, lambda c: c.describe_budget(AccountId="123456789012", BudgetName="b")) == (
        "budgets.us-east-1.api.aws")
    ec2 = Ec2Compute("i-0123456789abcdef0").client
    assert _host(ec2, lambda c: c.describe_instances(InstanceIds=["i-1"])) == "ec2.eu-west-1.api.aws"


def test_an_explicit_endpoint_still_wins(real_aws_env: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """The tests' moto server (AWS_ENDPOINT_URL) is used as given, dual-stack or not."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:5999")
    client = budgets_client()
    assert _host(client, lambda c: c.describe_budget(AccountId="123456789012", BudgetName="b")) == "127.0.0.1"


def test_a_service_nobody_listed_gets_no_config() -> None:
    """A new client must take a side in the table (and in NOTES.md) first."""
    with pytest.raises(KeyError, match="DUALSTACK"):
        aws_endpoints.client_config("ce")
