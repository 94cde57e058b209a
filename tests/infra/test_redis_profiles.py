"""The three RedisMode profiles, read from infra/stack.yaml and checked against the code.

For each mode the router's and the worker's REDIS_* values are worked out from the
template the way CloudFormation would (Fn::If on the mode's conditions, Fn::FindInMap on
RedisProfile; a GetAtt stays a named placeholder), then handed to
backend/entrypoints/settings.py, which must build the client that Redis needs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import redis

from tests.infra.conftest import INFRA, load_template

STACK = load_template(INFRA / "stack.yaml")
RESOURCES = STACK["Resources"]
SCRIPT = INFRA / "redis" / "bootstrap_redis.sh"
MODES = ["instance", "elasticache-node", "serverless-valkey"]
# The resources only one mode creates.
MODE_RESOURCES = {
    "instance": {"RedisInstance", "RedisInstanceRole", "RedisInstanceProfile", "RedisInstanceSecurityGroup",
                 "RedisRecoveryAlarm"},
    "elasticache-node": {"RedisReplicationGroup", "RedisSubnetGroup"},
    "serverless-valkey": {"ServerlessValkey", "ValkeyUser", "ValkeyUserGroup"},
}


def conditions(mode: str) -> dict[str, bool]:
    """The template's Redis conditions for `mode` (each is an Fn::Equals on RedisMode)."""
    found = {}
    for name, cond in STACK["Conditions"].items():
        equals = cond.get("Fn::Equals")
        if equals and equals[0] == {"Ref": "RedisMode"}:
            found[name] = equals[1] == mode
    return found


def evaluate(node: Any, mode: str) -> Any:
    """`node` as CloudFormation would resolve it for RedisMode=`mode`, GetAtts as '<A.B>'."""
    if isinstance(node, dict) and len(node) == 1:
        ((fn, arg),) = node.items()
        if fn == "Fn::If":
            name, yes, no = arg
            return evaluate(yes if conditions(mode)[name] else no, mode)
        if fn == "Fn::FindInMap":
            table, key, attr = arg
            assert key == {"Ref": "RedisMode"}, key
            return STACK["Mappings"][table][mode][attr]
        if fn == "Fn::GetAtt":
            return f"<{'.'.join(arg)}>"
        if fn == "Ref":
            return f"<{arg}>"
    return node


def router_redis_env(mode: str) -> dict[str, Any]:
    env = RESOURCES["RouterFunction"]["Properties"]["Environment"]["Variables"]
    return {k: evaluate(v, mode) for k, v in env.items() if k.startswith("REDIS_")}


def worker_redis_env(mode: str) -> dict[str, Any]:
    """The REDIS_* lines of the worker's env file, their ${Names} resolved."""
    script, names = RESOURCES["WorkerLaunchTemplate"]["Properties"]["LaunchTemplateData"]["UserData"][
        "Fn::Base64"]["Fn::Sub"]
    env_file = script.split("<<'EOF'\n", 1)[1].split("\nEOF\n", 1)[0]
    env: dict[str, Any] = {}
    for line in env_file.splitlines():
        key, value = line.split("=", 1)
        if key.startswith("REDIS_"):
            ref = value.removeprefix("${").removesuffix("}")
            env[key] = evaluate(names[ref], mode) if ref in names else evaluate({"Ref": ref}, mode)
    return env


def test_the_cheap_profile_is_the_default_and_every_mode_has_its_condition() -> None:
    param = STACK["Parameters"]["RedisMode"]
    assert param["Default"] == "instance" and param["AllowedValues"] == MODES
    for mode in MODES:
        assert sum(conditions(mode).values()) == 1, f"{mode}: exactly one Redis condition holds"
        assert set(STACK["Mappings"]["RedisProfile"][mode]) == {"Cluster", "CaInSecret"}


@pytest.mark.parametrize("mode", MODES)
def test_each_mode_creates_only_its_own_redis(mode: str) -> None:
    held = conditions(mode)
    for owner, names in MODE_RESOURCES.items():
        for name in names:
            assert held[RESOURCES[name]["Condition"]] == (owner == mode), f"{name} under RedisMode={mode}"


@pytest.mark.parametrize("mode", MODES)
def test_router_and_worker_are_told_the_same_redis(mode: str) -> None:
    router, worker = router_redis_env(mode), worker_redis_env(mode)
    assert router == worker
    assert set(router) == {"REDIS_HOST", "REDIS_PORT", "REDIS_AUTH_SECRET", "REDIS_CLUSTER", "REDIS_CA_IN_SECRET"}
    expected_host = {"instance": "<RedisInstance.PrivateIp>",
                     "elasticache-node": "<RedisReplicationGroup.PrimaryEndPoint.Address>",
                     "serverless-valkey": "<ServerlessValkey.Endpoint.Address>"}[mode]
    assert router["REDIS_HOST"] == expected_host and router["REDIS_AUTH_SECRET"] == "<RedisAuthSecret>"
    # What each Redis needs of the client: the cluster client for Serverless only; the
    # instance's own CA, which only it has.
    assert (router["REDIS_CLUSTER"], router["REDIS_CA_IN_SECRET"]) == {
        "instance": ("0", "1"), "elasticache-node": ("0", "0"), "serverless-valkey": ("1", "0")}[mode]
    # The Redis listens on the port the clients are given (the instance's bootstrap: 6379).
    if mode == "instance":
        assert router["REDIS_PORT"] == "6379" and "port=${TL_REDIS_PORT:-6379}" in SCRIPT.read_text()


@pytest.mark.parametrize("mode", MODES)
def test_settings_build_the_client_each_profile_needs(mode: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The values the template sets, given to the code: the right client, made the right way."""
    from backend.adapters.redis_queue import RedisQueue
    from backend.entrypoints import settings

    env = router_redis_env(mode)
    for name in ("REDIS_URL", "REDIS_CA_CERTS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("REDIS_HOST", "10.42.0.9")
    monkeypatch.setenv("REDIS_PORT", "6379" if env["REDIS_PORT"].startswith("<") else env["REDIS_PORT"])
    monkeypatch.setenv("REDIS_AUTH_SECRET", "arn:aws:secretsmanager:us-east-1:123456789012:secret:redis")
    monkeypatch.setenv("REDIS_CLUSTER", env["REDIS_CLUSTER"])
    monkeypatch.setenv("REDIS_CA_IN_SECRET", env["REDIS_CA_IN_SECRET"])
    monkeypatch.setattr(settings, "_secret", lambda name, force=False: '{"password": "p' + "x" * 20 + '"}')

    if mode == "serverless-valkey":
        # (The cluster client asks a node for its slots as it is made: read the URL instead.)
        assert settings.redis_url_from_env() == f"rediss://:p{'x' * 20}@10.42.0.9:6379/0?cluster=true"
        return
    queue = settings.queue_from_env()
    assert isinstance(queue, RedisQueue)
    if mode == "instance":
        # No CA in the secret yet: the client is not made, and the first use says why.
        with pytest.raises(redis.ConnectionError, match="not published its TLS certificate"):
            queue.r.ping()
        return
    client = queue.r
    assert isinstance(client, redis.Redis)
    kwargs = client.connection_pool.connection_kwargs
    assert kwargs["password"] == "p" + "x" * 20 and kwargs["host"] == "10.42.0.9"
    assert kwargs["ssl_check_hostname"] is True and "ssl_ca_data" not in kwargs


def test_the_instances_user_data_is_the_bootstrap_script() -> None:
    header, body = RESOURCES["RedisInstance"]["Properties"]["UserData"]["Fn::Base64"]["Fn::Join"][1]
    script = SCRIPT.read_text()
    assert body == script.split("\n", 1)[1], (
        "infra/stack.yaml's RedisInstance user data differs from infra/redis/bootstrap_redis.sh: copy the "
        "script (without its first line) into the second part of the Fn::Join")
    assert header["Fn::Sub"].startswith("#!/bin/bash\n")
    assert "export TL_REDIS_SECRET_ID=${RedisAuthSecret}\n" in header["Fn::Sub"]
    assert len(header["Fn::Sub"]) + len(body) < 16 * 1024 - 512, "EC2 takes at most 16 KB of user data"


def test_the_redis_instance_is_small_private_and_reached_only_by_router_and_worker() -> None:
    props = RESOURCES["RedisInstance"]["Properties"]
    assert props["InstanceType"] == "t4g.nano"
    assert props["ImageId"] == ("{{resolve:ssm:/aws/service/ami-amazon-linux-latest/"
                                "al2023-ami-kernel-default-arm64}}")
    assert "KeyName" not in props and props["CreditSpecification"] == {"CPUCredits": "standard"}
    assert props["MetadataOptions"]["HttpTokens"] == "required"
    (disk,) = props["BlockDeviceMappings"]
    assert disk["Ebs"] == {"VolumeType": "gp3", "VolumeSize": 8, "Encrypted": True, "DeleteOnTermination": True}
    (nic,) = props["NetworkInterfaces"]
    assert nic["AssociatePublicIpAddress"] is False and nic["SubnetId"] == {"Ref": "PrivateSubnetA"}
    assert nic["GroupSet"] == [{"Ref": "RedisSecurityGroup"}, {"Ref": "RedisInstanceSecurityGroup"}]
    assert "SecurityGroupIngress" not in RESOURCES["RedisInstanceSecurityGroup"]["Properties"]

    ingress = RESOURCES["RedisSecurityGroup"]["Properties"]["SecurityGroupIngress"]
    assert {r["SourceSecurityGroupId"]["Ref"] for r in ingress} == {"RouterSecurityGroup", "WorkerSecurityGroup"}
    assert all((r["IpProtocol"], r["FromPort"]) == ("tcp", 6379) and r["ToPort"] in (6379, 6380) for r in ingress)
    assert not any("CidrIp" in r or "CidrIpv6" in r for r in ingress)

    # The role reads the password and writes the CA into that one secret, nothing else.
    (policy,) = RESOURCES["RedisInstanceRole"]["Properties"]["Policies"]
    (grant,) = policy["PolicyDocument"]["Statement"]
    assert grant["Resource"] == {"Ref": "RedisAuthSecret"}
    assert set(grant["Action"]) == {"secretsmanager:GetSecretValue", "secretsmanager:PutSecretValue"}


def test_a_failed_host_check_recovers_the_redis_instance() -> None:
    alarm = RESOURCES["RedisRecoveryAlarm"]["Properties"]
    assert (alarm["Namespace"], alarm["MetricName"]) == ("AWS/EC2", "StatusCheckFailed_System")
    assert alarm["Dimensions"] == [{"Name": "InstanceId", "Value": {"Ref": "RedisInstance"}}]
    assert {"Fn::Sub": "arn:${AWS::Partition}:automate:${AWS::Region}:ec2:recover"} in alarm["AlarmActions"]


def test_the_seed_profile_is_one_small_node_with_tls_and_auth_in_private_subnets() -> None:
    props = RESOURCES["RedisReplicationGroup"]["Properties"]
    assert (props["Engine"], props["EngineVersion"], props["CacheNodeType"]) == ("redis", "6.2", "cache.t4g.micro")
    assert props["NumCacheClusters"] == 1 and "NumNodeGroups" not in props  # cluster mode off
    assert props["TransitEncryptionEnabled"] is True and props["AtRestEncryptionEnabled"] is True
    assert props["SecurityGroupIds"] == [{"Ref": "RedisSecurityGroup"}]
    subnets = RESOURCES[props["CacheSubnetGroupName"]["Ref"]]["Properties"]["SubnetIds"]
    assert subnets == [{"Ref": "PrivateSubnetA"}, {"Ref": "PrivateSubnetB"}]
    for name in ("PrivateSubnetA", "PrivateSubnetB"):
        assert RESOURCES[name]["Properties"].get("MapPublicIpOnLaunch") in (None, False)


def test_every_mode_reads_the_password_key_of_one_json_secret() -> None:
    generate = RESOURCES["RedisAuthSecret"]["Properties"]["GenerateSecretString"]
    assert (generate["SecretStringTemplate"], generate["GenerateStringKey"]) == ("{}", "password")
    resolve = {"Fn::Sub": "{{resolve:secretsmanager:${RedisAuthSecret}:SecretString:password}}"}
    assert RESOURCES["RedisReplicationGroup"]["Properties"]["AuthToken"] == resolve
    assert RESOURCES["ValkeyUser"]["Properties"]["AuthenticationMode"]["Passwords"] == [resolve]
    # The instance reads the same key (and would take a plain token, as older stacks have).
    assert 'value["password"]' in SCRIPT.read_text()


def test_the_bootstrap_script_is_executable_bash() -> None:
    assert SCRIPT.read_text().startswith("#!/bin/bash\n")
    assert Path(SCRIPT).stat().st_mode & 0o111
