"""Which AWS endpoint each client the router builds talks to, and so over which IP version.

The full stack's default network (`EgressMode=ipv6`, infra/stack.yaml) has no NAT: the
router's private subnets reach the internet over IPv6 only, through an egress-only
internet gateway. A client reaches its service from there only through a dual-stack
endpoint, which botocore picks when `use_dualstack_endpoint` is set (it resolves the
hostname from the service's endpoint rules: the same name as the IPv4 one for services
whose standard endpoint is dual-stack, `<service>.<region>.api.aws` for the others).

`DUALSTACK` is the one table of that choice, per service; infra/NOTES.md ("Endpoints the
router calls") lists each with AWS's page, and tests/unit/test_aws_endpoints.py checks that
the two agree and that every client the router builds resolves to the listed host. A
service without a dual-stack endpoint must not get the flag: botocore would then build a
hostname that does not exist. Setting `AWS_USE_DUALSTACK_ENDPOINT` process-wide would do
exactly that to any such client, which is why the choice is made per client here.

An explicit endpoint (`AWS_ENDPOINT_URL*`, as the tests point clients at moto) wins over
the flag: botocore's rules use the given URL as it is.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from botocore.config import Config

#: botocore service name -> whether the router's client for it uses the dual-stack endpoint.
DUALSTACK: dict[str, bool] = {
    # ec2.<region>.api.aws: https://docs.aws.amazon.com/ec2/latest/devguide/ec2-endpoints.html
    "ec2": True,
    # budgets.us-east-1.api.aws: https://docs.aws.amazon.com/general/latest/gr/billing.html
    "budgets": True,
    # secretsmanager.<region>.amazonaws.com is itself dual-stack:
    # https://docs.aws.amazon.com/secretsmanager/latest/userguide/ip-access.html
    "secretsmanager": True,
}


def client_config(service: str, **kwargs: Any) -> Config:
    """A botocore `Config` for `service` with the dual-stack choice of `DUALSTACK` and the
    caller's other settings (timeouts, retries). An unlisted service is an error: each
    new client must take a side, with its evidence, in the table and in NOTES.md."""
    from botocore.config import Config  # only on paths that build an AWS client

    if service not in DUALSTACK:
        raise KeyError(f"{service!r} is not in backend.adapters.aws_endpoints.DUALSTACK")
    return Config(use_dualstack_endpoint=DUALSTACK[service], **kwargs)
