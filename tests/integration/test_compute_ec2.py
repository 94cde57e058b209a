"""Ec2Compute against moto's EC2 in server mode (real HTTP, real botocore), plus Stubber
tests for what moto cannot produce.

moto's gaps that these tests do not paper over:
- moto never answers InsufficientInstanceCapacity or UnauthorizedOperation, and never
  leaves an instance in `stopping` (its state changes are instant). Those paths are tested
  with a botocore Stubber fed the error shapes EC2 really returns.
- moto accepts `Hibernate=True` for any instance and does not model hibernation, so the
  hibernate decision is observed on the wire: a `before-call.ec2.StopInstances` hook records
  the request body botocore sends to the moto server.
"""

from __future__ import annotations

import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import boto3
import pytest
from botocore.stub import Stubber

from backend.adapters.compute_ec2 import Ec2Compute
from backend.core.errors import ComputeError
from tests.fixtures.aws import REGION, aws_env, moto_server  # noqa: F401  (fixtures by name)

ROOT = Path(__file__).resolve().parents[2]


# -- moto server: the session's shared one (tests/fixtures/aws.py) -------------------------


@pytest.fixture
def ec2(aws_env: str):  # noqa: F811
    return boto3.client("ec2", region_name=REGION, endpoint_url=aws_env)


class Wire:
    """Request bodies botocore sends for one operation, recorded by an event hook."""

    def __init__(self, client, operation: str):
        self.bodies: list[dict] = []
        client.meta.events.register(f"before-call.ec2.{operation}", self._record)

    def _record(self, params, **_):
        self.bodies.append(dict(params["body"]))


_IMAGES: dict[str, str] = {}


def launch(ec2, instance_type: str, *, hibernation: bool | None = None) -> str:
    endpoint = ec2.meta.endpoint_url
    if endpoint not in _IMAGES:  # moto's built-in AMIs: 1300 of them, so ask once
        _IMAGES[endpoint] = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    image = _IMAGES[endpoint]
    kwargs = {}
    if hibernation is not None:
        kwargs["HibernationOptions"] = {"Configured": hibernation}
    reply = ec2.run_instances(ImageId=image, MinCount=1, MaxCount=1, InstanceType=instance_type, **kwargs)
    return reply["Instances"][0]["InstanceId"]


def ec2_state(ec2, instance_id: str) -> tuple[str, str]:
    inst = ec2.describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0]
    return inst["State"]["Name"], inst["InstanceType"]


# -- against moto -----------------------------------------------------------------------


def test_describe_follows_stop_and_start(ec2):
    iid = launch(ec2, "g4dn.xlarge")
    compute = Ec2Compute(iid, ec2_client=ec2)

    status = compute.describe()
    assert status.state == "running"
    assert status.instance_type == "g4dn.xlarge"
    launched = ec2.describe_instances(InstanceIds=[iid])["Reservations"][0]["Instances"][0]["LaunchTime"]
    assert status.since == pytest.approx(launched.timestamp())

    before = int(time.time())
    assert compute.stop().startswith("stopped")
    status = compute.describe()
    assert status.state == "stopped"
    assert status.instance_type == "g4dn.xlarge"
    # since comes from "User initiated (YYYY-MM-DD HH:MM:SS UTC)", to the second
    assert status.since is not None
    assert before <= status.since <= time.time() + 1
    assert "stopped" in status.detail

    assert compute.start() == "starting (g4dn.xlarge)"
    assert compute.describe().state == "running"
    assert ec2_state(ec2, iid) == ("running", "g4dn.xlarge")
    assert compute.start() == "already running (g4dn.xlarge)"


def test_gpu_instance_stops_even_when_launched_with_hibernation(ec2):
    # g4dn cannot hibernate (EC2's HibernationSupported is False), whatever the launch said.
    iid = launch(ec2, "g4dn.xlarge", hibernation=True)
    wire = Wire(ec2, "StopInstances")

    text = Ec2Compute(iid, ec2_client=ec2).stop()

    assert text.startswith("stopped")
    assert "g4dn.xlarge cannot hibernate" in text
    assert len(wire.bodies) == 1
    assert wire.bodies[0].get("Hibernate") != "true"
    assert ec2_state(ec2, iid)[0] == "stopped"


def test_hibernates_when_type_supports_it_and_launch_configured_it(ec2):
    iid = launch(ec2, "t3.large", hibernation=True)
    wire = Wire(ec2, "StopInstances")

    text = Ec2Compute(iid, ec2_client=ec2).stop()

    assert text.startswith("hibernated")
    assert [body.get("Hibernate") for body in wire.bodies] == ["true"]
    assert ec2_state(ec2, iid)[0] == "stopped"


def test_capable_type_without_hibernation_configured_stops(ec2):
    iid = launch(ec2, "t3.large")
    wire = Wire(ec2, "StopInstances")

    text = Ec2Compute(iid, ec2_client=ec2).stop()

    assert text.startswith("stopped")
    assert "without hibernation configured" in text
    assert [body.get("Hibernate") for body in wire.bodies] == [None]


def test_hibernation_support_is_asked_once_per_type(ec2):
    iid = launch(ec2, "t3.large", hibernation=True)
    asked = Wire(ec2, "DescribeInstanceTypes")
    compute = Ec2Compute(iid, ec2_client=ec2)

    assert compute.stop().startswith("hibernated")
    assert compute.start() == "starting (t3.large)"
    assert compute.stop().startswith("hibernated")

    assert len(asked.bodies) == 1
    assert asked.bodies[0]["InstanceType.1"] == "t3.large"


def test_stop_of_a_stopped_instance_sends_nothing(ec2):
    iid = launch(ec2, "g4dn.xlarge")
    ec2.stop_instances(InstanceIds=[iid])
    wire = Wire(ec2, "StopInstances")

    assert Ec2Compute(iid, ec2_client=ec2).stop() == "already stopped (g4dn.xlarge)"
    assert wire.bodies == []


def test_preferred_type_is_restored_before_start(ec2):
    # After a capacity fallback the instance is g5.xlarge; the next start goes back to g4dn.
    iid = launch(ec2, "g5.xlarge")
    ec2.stop_instances(InstanceIds=[iid])
    compute = Ec2Compute(iid, ec2_client=ec2, preferred_instance_type="g4dn.xlarge")

    assert compute.start() == "starting (g4dn.xlarge)"
    assert ec2_state(ec2, iid) == ("running", "g4dn.xlarge")


def test_unknown_instance_is_a_readable_error(ec2):
    compute = Ec2Compute("i-0123456789abcdef0", ec2_client=ec2)
    with pytest.raises(ComputeError) as caught:
        compute.describe()
    assert caught.value.code == "compute_not_found"
    assert "i-0123456789abcdef0" in caught.value.message
    assert REGION in caught.value.message


def test_builds_its_own_client_when_none_is_given(ec2, monkeypatch):
    iid = launch(ec2, "g4dn.xlarge")
    monkeypatch.setenv("AWS_ENDPOINT_URL_EC2", ec2.meta.endpoint_url)  # standard boto3 setting

    status = Ec2Compute(iid, region=REGION).describe()

    assert (status.state, status.instance_type) == ("running", "g4dn.xlarge")


def test_importing_the_adapter_does_not_import_boto3():
    code = (
        "import sys, backend.adapters.compute_ec2\n"
        "assert 'boto3' not in sys.modules, 'boto3 imported'\n"
        "assert 'botocore' not in sys.modules, 'botocore imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True)


# -- Stubber: what moto cannot produce --------------------------------------------------

IID = "i-0abc1234def567890"


def instance(state: str, instance_type: str = "g4dn.xlarge", **extra) -> dict:
    codes = {"pending": 0, "running": 16, "stopping": 64, "stopped": 80}
    return {
        "Reservations": [
            {
                "Instances": [
                    {
                        "InstanceId": IID,
                        "InstanceType": instance_type,
                        "State": {"Code": codes[state], "Name": state},
                        "LaunchTime": datetime(2026, 1, 1),
                        **extra,
                    }
                ]
            }
        ]
    }


def state_change(key: str, now: str) -> dict:
    return {key: [{"InstanceId": IID, "CurrentState": {"Code": 0, "Name": now}}]}


@pytest.fixture
def stubbed():
    client = boto3.client(
        "ec2",
        region_name=REGION,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    with Stubber(client) as stubber:
        yield client, stubber
        stubber.assert_no_pending_responses()


def expect_describe(stubber, state: str, instance_type: str = "g4dn.xlarge", **extra):
    stubber.add_response("describe_instances", instance(state, instance_type, **extra), {"InstanceIds": [IID]})


CAPACITY_MESSAGE = (
    "We currently do not have sufficient g4dn.xlarge capacity in the Availability Zone you "
    "requested (us-east-1a). Our system will be working on provisioning additional capacity."
)


def test_capacity_error_falls_back_to_g5_and_starts_again(stubbed):
    # moto cannot produce InsufficientInstanceCapacity, so EC2's answer is stubbed.
    client, stubber = stubbed
    expect_describe(stubber, "stopped")
    stubber.add_client_error(
        "start_instances",
        service_error_code="InsufficientInstanceCapacity",
        service_message=CAPACITY_MESSAGE,
        http_status_code=500,
        expected_params={"InstanceIds": [IID]},
    )
    stubber.add_response(
        "modify_instance_attribute",
        {},
        {"InstanceId": IID, "InstanceType": {"Value": "g5.xlarge"}},
    )
    stubber.add_response("start_instances", state_change("StartingInstances", "pending"), {"InstanceIds": [IID]})

    text = Ec2Compute(IID, ec2_client=client).start()

    assert text.startswith("starting (g5.xlarge)")
    assert "no g4dn.xlarge capacity" in text


def test_no_capacity_for_either_type_restores_the_type_and_says_so(stubbed):
    client, stubber = stubbed
    expect_describe(stubber, "stopped")

    def no_capacity():
        stubber.add_client_error(
            "start_instances",
            service_error_code="InsufficientInstanceCapacity",
            service_message=CAPACITY_MESSAGE,
            http_status_code=500,
            expected_params={"InstanceIds": [IID]},
        )

    def set_type(instance_type):
        stubber.add_response(
            "modify_instance_attribute",
            {},
            {"InstanceId": IID, "InstanceType": {"Value": instance_type}},
        )

    no_capacity()
    set_type("g5.xlarge")
    no_capacity()
    set_type("g4dn.xlarge")  # put back, so the next wake tries the cheaper type first

    with pytest.raises(ComputeError) as caught:
        Ec2Compute(IID, ec2_client=client).start()

    assert "g4dn.xlarge" in caught.value.message
    assert "g5.xlarge" in caught.value.message
    assert caught.value.status == 503


def test_capacity_error_without_fallback_is_raised(stubbed):
    client, stubber = stubbed
    expect_describe(stubber, "stopped", "g5.xlarge")
    stubber.add_client_error(
        "start_instances",
        service_error_code="InsufficientInstanceCapacity",
        service_message=CAPACITY_MESSAGE,
        http_status_code=500,
    )

    with pytest.raises(ComputeError) as caught:
        Ec2Compute(IID, ec2_client=client).start()  # already on the fallback type

    assert "no free capacity for g5.xlarge" in caught.value.message


def test_start_while_stopping_changes_nothing(stubbed):
    # moto's stops are instant; a real stop takes seconds. No StartInstances is stubbed,
    # so any call to it would fail the test.
    client, stubber = stubbed
    expect_describe(stubber, "stopping")

    text = Ec2Compute(IID, ec2_client=client).start()

    assert text.startswith("still stopping")


UNAUTHORIZED = (
    "You are not authorized to perform this operation. User: arn:aws:sts::123456789012:"
    "assumed-role/router/fn is not authorized to perform: {action} on resource: "
    "arn:aws:ec2:us-east-1:123456789012:instance/" + IID + " because no identity-based "
    "policy allows the {action} action. Encoded authorization failure message: abc123"
)


def test_missing_start_permission_is_named(stubbed):
    client, stubber = stubbed
    expect_describe(stubber, "stopped")
    stubber.add_client_error(
        "start_instances",
        service_error_code="UnauthorizedOperation",
        service_message=UNAUTHORIZED.format(action="ec2:StartInstances"),
        http_status_code=403,
    )

    with pytest.raises(ComputeError) as caught:
        Ec2Compute(IID, ec2_client=client).start()

    assert caught.value.code == "compute_permission_denied"
    assert "ec2:StartInstances" in caught.value.message
    assert "IAM policy" in caught.value.message


def test_missing_describe_permission_is_named(stubbed):
    client, stubber = stubbed
    stubber.add_client_error(
        "describe_instances",
        service_error_code="UnauthorizedOperation",
        service_message="You are not authorized to perform this operation.",
        http_status_code=403,
    )

    with pytest.raises(ComputeError) as caught:
        Ec2Compute(IID, ec2_client=client).describe()

    assert "ec2:DescribeInstances" in caught.value.message


def test_missing_stop_permission_is_named_even_when_hibernating(stubbed):
    client, stubber = stubbed
    expect_describe(stubber, "running", "m5.large", HibernationOptions={"Configured": True})
    stubber.add_response(
        "describe_instance_types",
        {"InstanceTypes": [{"InstanceType": "m5.large", "HibernationSupported": True}]},
        {"InstanceTypes": ["m5.large"]},
    )
    stubber.add_client_error(
        "stop_instances",
        service_error_code="UnauthorizedOperation",
        service_message=UNAUTHORIZED.format(action="ec2:StopInstances"),
        http_status_code=403,
        expected_params={"InstanceIds": [IID], "Hibernate": True},
    )

    with pytest.raises(ComputeError) as caught:
        Ec2Compute(IID, ec2_client=client).stop()

    assert "ec2:StopInstances" in caught.value.message


def test_refused_hibernation_falls_back_to_a_plain_stop(stubbed):
    # EC2 refuses to hibernate e.g. an instance whose agent is not ready yet.
    client, stubber = stubbed
    expect_describe(stubber, "running", "m5.large", HibernationOptions={"Configured": True})
    stubber.add_response(
        "describe_instance_types",
        {"InstanceTypes": [{"InstanceType": "m5.large", "HibernationSupported": True}]},
        {"InstanceTypes": ["m5.large"]},
    )
    stubber.add_client_error(
        "stop_instances",
        service_error_code="UnsupportedHibernationConfiguration",
        service_message="The instance is not ready to hibernate yet.",
        http_status_code=400,
        expected_params={"InstanceIds": [IID], "Hibernate": True},
    )
    stubber.add_response("stop_instances", state_change("StoppingInstances", "stopping"), {"InstanceIds": [IID]})

    text = Ec2Compute(IID, ec2_client=client).stop()

    assert text.startswith("stopped")
    assert "not ready to hibernate" in text


def test_unknown_hibernation_support_means_a_plain_stop(stubbed):
    # Without ec2:DescribeInstanceTypes the adapter cannot know; a GPU left running costs
    # money, so it stops and says why.
    client, stubber = stubbed
    expect_describe(stubber, "running", "m5.large", HibernationOptions={"Configured": True})
    stubber.add_client_error(
        "describe_instance_types",
        service_error_code="UnauthorizedOperation",
        service_message="You are not authorized to perform this operation.",
        http_status_code=403,
    )
    stubber.add_response("stop_instances", state_change("StoppingInstances", "stopping"), {"InstanceIds": [IID]})

    text = Ec2Compute(IID, ec2_client=client).stop()

    assert text.startswith("stopped")
    assert "ec2:DescribeInstanceTypes" in text
