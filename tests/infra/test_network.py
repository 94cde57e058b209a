"""The full stack's network, read from infra/stack.yaml per EgressMode: dual-stack subnets,
IPv6 out through an egress-only gateway, a NAT only when asked for, the router allowed
IPv6, and a GPU instance that is public while it runs yet admits nothing.

moto cannot check most of this (it has no model for AWS::EC2::VPCCidrBlock or the
egress-only gateway and creates IPv6 routes without their destination), so these read
the template itself, with its Conditions worked out for each EgressMode.
"""

from __future__ import annotations

from typing import Any

import pytest

from desktop.core.deploy_options import EGRESS_MODES
from tests.infra.conftest import INFRA, load_template

STACK = load_template(INFRA / "stack.yaml")
RESOURCES: dict[str, Any] = STACK["Resources"]
MODES = [str(v) for v in STACK["Parameters"]["EgressMode"]["AllowedValues"]]


def _value(node: Any, params: dict[str, str], conditions: dict[str, bool]) -> Any:
    if isinstance(node, dict) and set(node) == {"Ref"}:
        return params[node["Ref"]]
    if isinstance(node, dict) and set(node) == {"Fn::Equals"}:
        a, b = node["Fn::Equals"]
        return str(_value(a, params, conditions)) == str(_value(b, params, conditions))
    if isinstance(node, dict) and set(node) == {"Fn::Or"}:
        return any(_value(c, params, conditions) for c in node["Fn::Or"])
    if isinstance(node, dict) and set(node) == {"Fn::And"}:
        return all(_value(c, params, conditions) for c in node["Fn::And"])
    if isinstance(node, dict) and set(node) == {"Fn::Not"}:
        return not _value(node["Fn::Not"][0], params, conditions)
    if isinstance(node, dict) and set(node) == {"Condition"}:
        return conditions[node["Condition"]]
    return node


def conditions_for(**given: str) -> dict[str, bool]:
    params = {k: str(v.get("Default", "")) for k, v in STACK["Parameters"].items()} | given
    out: dict[str, bool] = {}
    for name, expr in STACK["Conditions"].items():  # each refers only to earlier ones here
        out[name] = bool(_value(expr, params, out))
    return out


def created(egress: str) -> dict[str, Any]:
    """The resources CloudFormation creates with this EgressMode (others at defaults)."""
    conds = conditions_for(EgressMode=egress)
    return {n: r for n, r in RESOURCES.items() if "Condition" not in r or conds[r["Condition"]]}


def of_type(resources: dict[str, Any], kind: str) -> dict[str, Any]:
    return {n: r for n, r in resources.items() if r["Type"] == kind}


def routes(resources: dict[str, Any], table: str) -> dict[str, dict[str, Any]]:
    """Destination -> the route's target properties, for one route table."""
    out = {}
    for route in of_type(resources, "AWS::EC2::Route").values():
        props = route["Properties"]
        if props["RouteTableId"] == {"Ref": table}:
            dest = props.get("DestinationCidrBlock") or props["DestinationIpv6CidrBlock"]
            out[dest] = {k: v for k, v in props.items() if k.endswith("Id") and k != "RouteTableId"}
    return out


def test_the_modes_are_ipv6_and_nat_gateway_and_the_wizard_offers_the_same() -> None:
    assert MODES == ["ipv6", "nat-gateway"]
    assert STACK["Parameters"]["EgressMode"]["Default"] == "ipv6"
    assert list(EGRESS_MODES) == MODES


@pytest.mark.parametrize("egress", MODES)
def test_every_subnet_is_dual_stack(egress: str) -> None:
    resources = created(egress)
    subnets = of_type(resources, "AWS::EC2::Subnet")
    assert set(subnets) == {"PrivateSubnetA", "PrivateSubnetB", "PublicSubnetA", "PublicSubnetB"}
    assert resources["VpcIpv6Block"]["Properties"] == {"VpcId": {"Ref": "Vpc"}, "AmazonProvidedIpv6CidrBlock": True}
    indexes = set()
    for name, subnet in subnets.items():
        props = subnet["Properties"]
        # The VPC's Ipv6CidrBlocks is empty until the VPCCidrBlock exists: without the
        # DependsOn, CloudFormation may create the subnet first and fail.
        assert subnet["DependsOn"] == "VpcIpv6Block", name
        index, cidr = props["Ipv6CidrBlock"]["Fn::Select"]
        assert cidr == {"Fn::Cidr": [{"Fn::Select": [0, {"Fn::GetAtt": ["Vpc", "Ipv6CidrBlocks"]}]}, 4, 64]}, name
        assert props["AssignIpv6AddressOnCreation"] is True, name
        assert props.get("MapPublicIpOnLaunch", False) is False, name  # no IPv4 address unless asked for
        indexes.add(index)
    assert indexes == {0, 1, 2, 3}  # four different /64s
    azs = {n: s["Properties"]["AvailabilityZone"]["Fn::Select"][0] for n, s in subnets.items()}
    assert azs == {"PrivateSubnetA": 0, "PublicSubnetA": 0, "PrivateSubnetB": 1, "PublicSubnetB": 1}


def test_ipv6_mode_has_no_nat_and_sends_ipv6_out_through_the_egress_only_gateway() -> None:
    resources = created("ipv6")
    assert not of_type(resources, "AWS::EC2::NatGateway")
    assert not of_type(resources, "AWS::EC2::EIP")
    # the GPU and (RedisMode=instance, the default) Redis: no NAT instance
    assert set(of_type(resources, "AWS::EC2::Instance")) == {"WorkerInstance", "RedisInstance"}
    assert routes(resources, "PrivateRouteTable") == {
        "::/0": {"EgressOnlyInternetGatewayId": {"Ref": "EgressOnlyInternetGateway"}}}
    assert of_type(resources, "AWS::EC2::EgressOnlyInternetGateway")["EgressOnlyInternetGateway"][
        "Properties"]["VpcId"] == {"Ref": "Vpc"}


def test_nat_gateway_mode_adds_one_nat_for_the_private_subnets_ipv4() -> None:
    resources = created("nat-gateway")
    (nat,) = of_type(resources, "AWS::EC2::NatGateway").values()
    assert nat["Properties"]["SubnetId"] == {"Ref": "PublicSubnetA"}
    assert routes(resources, "PrivateRouteTable") == {
        "::/0": {"EgressOnlyInternetGatewayId": {"Ref": "EgressOnlyInternetGateway"}},
        "0.0.0.0/0": {"NatGatewayId": {"Ref": "NatGateway"}}}


@pytest.mark.parametrize("egress", MODES)
def test_public_subnets_route_both_families_to_the_internet_gateway(egress: str) -> None:
    resources = created(egress)
    igw = {"GatewayId": {"Ref": "InternetGateway"}}
    assert routes(resources, "PublicRouteTable") == {"0.0.0.0/0": igw, "::/0": igw}
    associations = {r["Properties"]["SubnetId"]["Ref"]: r["Properties"]["RouteTableId"]["Ref"]
                    for r in of_type(resources, "AWS::EC2::SubnetRouteTableAssociation").values()}
    assert associations == {"PublicSubnetA": "PublicRouteTable", "PublicSubnetB": "PublicRouteTable",
                            "PrivateSubnetA": "PrivateRouteTable", "PrivateSubnetB": "PrivateRouteTable"}
    # S3 stays on the free gateway endpoint from both tables; no paid interface endpoint
    (s3,) = of_type(resources, "AWS::EC2::VPCEndpoint").values()
    assert s3["Properties"]["VpcEndpointType"] == "Gateway"
    assert s3["Properties"]["RouteTableIds"] == [{"Ref": "PrivateRouteTable"}, {"Ref": "PublicRouteTable"}]


def test_the_router_may_use_ipv6_and_names_what_it_reaches_over_it() -> None:
    fn = RESOURCES["RouterFunction"]["Properties"]
    assert fn["VpcConfig"]["Ipv6AllowedForDualStack"] is True
    assert fn["VpcConfig"]["SubnetIds"] == [{"Ref": "PrivateSubnetA"}, {"Ref": "PrivateSubnetB"}]
    egress = RESOURCES["RouterSecurityGroup"]["Properties"]["SecurityGroupEgress"]
    assert {"IpProtocol": "tcp", "FromPort": 443, "ToPort": 443, "CidrIpv6": "::/0"} in [
        {k: v for k, v in rule.items() if k != "Description"} for rule in egress]
    env = fn["Environment"]["Variables"]
    # Budgets answers on a dual-stack endpoint: the spend guard runs in both modes.
    assert env["BUDGET_NAME"] == {"Ref": "Budget"}
    # Cognito documents no IPv6 endpoint: re-verifying against its JWKS needs the NAT; in
    # ipv6 mode the router relies on the JWT authorizer (infra/NOTES.md).
    assert env["COGNITO_USER_POOL_ID"] == {"Fn::If": ["UseNatGateway", {"Ref": "UserPool"}, {"Ref": "AWS::NoValue"}]}
    notes = (INFRA / "NOTES.md").read_text()
    (row,) = [line for line in notes.splitlines() if line.startswith("| Cognito JWKS")]
    assert "no documented one" in row and "`nat-gateway` only" in row


def test_the_gpu_instance_is_public_while_it_runs_and_admits_nothing() -> None:
    data = RESOURCES["WorkerLaunchTemplate"]["Properties"]["LaunchTemplateData"]
    (nic,) = data["NetworkInterfaces"]
    assert nic["SubnetId"] == {"Fn::If": ["WorkerInSecondAz", {"Ref": "PublicSubnetB"}, {"Ref": "PublicSubnetA"}]}
    assert nic["AssociatePublicIpAddress"] is True and nic["Ipv6AddressCount"] == 1
    assert nic["Groups"] == [{"Ref": "WorkerSecurityGroup"}]
    sg = RESOURCES["WorkerSecurityGroup"]["Properties"]
    assert "SecurityGroupIngress" not in sg
    ingress_rules = of_type(RESOURCES, "AWS::EC2::SecurityGroupIngress").values()
    assert not [r for r in ingress_rules if r["Properties"].get("GroupId") == {"Ref": "WorkerSecurityGroup"}]
    # no way in to it at all: no key pair, and no SSH anywhere in the template
    assert "KeyName" not in data
    # the first boot downloads: the instance waits for the public routes
    assert {"PublicDefaultRoute", "PublicIpv6Route"} <= set(RESOURCES["WorkerInstance"]["DependsOn"])


def test_nothing_of_the_removed_modes_is_left() -> None:
    assert not {"NatInstance", "NatSecurityGroup", "EndpointSecurityGroup", "PrivateRouteViaNatInstance",
                "Ec2Endpoint", "SecretsManagerEndpoint", "SsmEndpoint", "LogsEndpoint"} & RESOURCES.keys()
    assert not {"UseEndpoints", "UseNatInstance", "UseNat"} & STACK["Conditions"].keys()
