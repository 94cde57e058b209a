"""The hard cap by the router's own GPU ledger: the real router behind the local gateway
(real HTTP), moto's EC2 for start/stop, a real redis-server for the ledger.

The clock is the FrozenClock: the ledger charges by it, and moves past the month's end
to show the new month starting at $0. moto's own timestamps come from the calendar (its
LaunchTime never changes and its stop reason carries today's date), so the runs here are
opened by the router's start and closed by the worker's stop, both on the FrozenClock —
the ways every run of a deployed stack begins and usually ends. The path where EC2's own
stop time closes a run is tested in tests/integration/test_gpu_ledger.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
import requests
from botocore.awsrequest import AWSResponse

from backend.adapters.compute_ec2 import Ec2Compute
from backend.adapters.gpu_ledger import GpuLedger
from backend.core.pricing import instance_hourly_usd
from backend.core.service import Budget, PromptService
from backend.entrypoints.gateway import Gateway, TokenAuthorizer
from backend.entrypoints.router import Identity, create_app
from tests.fixtures.aws import REGION, aws_env, moto_server  # noqa: F401  (fixtures by name)

TOKEN = "cap-test-token"
G4DN = instance_hourly_usd("g4dn.xlarge") or 0.0
G5 = instance_hourly_usd("g5.xlarge") or 0.0
FIXED = 7.00  # the stack's idle month
CAP = 23.00
COMMIT_S = 900  # a wake runs the GPU at least until the worker's 15-minute idle stop
# A Friday in a leap February: the month ends two days and fifteen hours later.
MORNING = datetime(2032, 2, 27, 9, 0, tzinfo=UTC)


@pytest.fixture
def ec2(aws_env: str) -> Any:  # noqa: F811
    return boto3.client("ec2", region_name=REGION, endpoint_url=aws_env)


def stopped_instance(ec2: Any, instance_type: str = "g4dn.xlarge") -> str:
    """A GPU instance, stopped before the router first looks (as the stack leaves it)."""
    image = ec2.describe_images(Owners=["amazon"], MaxResults=5)["Images"][0]["ImageId"]
    reply = ec2.run_instances(ImageId=image, MinCount=1, MaxCount=1, InstanceType=instance_type)
    iid = reply["Instances"][0]["InstanceId"]
    ec2.stop_instances(InstanceIds=[iid])
    return iid


class Stack:
    """The router (real resolver, real HTTP) over one instance, with the worker's stop."""

    def __init__(self, queue: Any, ec2: Any, iid: str, clock: Any):
        self.ec2, self.iid, self.queue = ec2, iid, queue
        self.ledger = GpuLedger(queue.r, queue.key, clock=clock)
        compute = Ec2Compute(iid, ec2_client=ec2, ledger=self.ledger)
        service = PromptService(queue, compute, None, Budget(17.0, CAP, FIXED, COMMIT_S),
                                clock=clock, gpu_spend=self.ledger)
        self.gateway = Gateway(lambda: create_app(service, Identity()), TokenAuthorizer(TOKEN)).start()
        self.http = requests.Session()
        self.http.headers["Authorization"] = f"Bearer {TOKEN}"

    def prompt(self, text: str) -> requests.Response:
        return self.http.post(f"{self.gateway.url}/prompts", json={"messages": [{"role": "user", "content": text}]},
                              timeout=10)

    def status(self) -> dict[str, Any]:
        return self.http.get(f"{self.gateway.url}/status", timeout=10).json()

    def ec2_state(self) -> tuple[str, str]:
        inst = self.ec2.describe_instances(InstanceIds=[self.iid])["Reservations"][0]["Instances"][0]
        return inst["State"]["Name"], inst["InstanceType"]

    def worker_idle_stop(self) -> str:
        """What the worker's idle action does on the instance: stop it, writing the ledger."""
        return Ec2Compute(self.iid, ec2_client=self.ec2, ledger=self.ledger).stop()

    def close(self) -> None:
        self.gateway.stop()
        self.http.close()


@pytest.fixture
def stack(queue: Any, ec2: Any, frozen_clock: Any) -> Iterator[Stack]:
    s = Stack(queue, ec2, stopped_instance(ec2), frozen_clock)
    yield s
    s.close()


@pytest.mark.parametrize("frozen_clock", [MORNING], indirect=True)
def test_below_the_cap_wakes_at_the_cap_refuses_and_a_new_month_wakes_again(stack: Stack, frozen_clock: Any) -> None:
    # 1. Nothing spent: the prompt wakes the GPU.
    first = stack.prompt("first")
    assert first.status_code == 202, first.text
    assert first.json()["status"] == "waking"
    assert stack.ec2_state()[0] == "running"
    frozen_clock.advance(10 * 3600)
    assert stack.status()["budget"]["gpu_month_to_date_usd"] == pytest.approx(10 * G4DN)
    assert stack.worker_idle_stop().startswith("stopped")

    # 2. Ten hours of GPU + the fixed month + the wake's 15 minutes are well under $23: wakes.
    frozen_clock.advance(60)
    second = stack.prompt("second")
    assert second.status_code == 202, second.text
    assert stack.ec2_state()[0] == "running"
    frozen_clock.advance(20.2 * 3600)
    stack.worker_idle_stop()

    # 3. 30.2 h of g4dn ($15.89) + $7.00 is under $23, but the wake's own 15 minutes
    # ($0.13) would pass it: refused, with every figure.
    gpu = 30.2 * G4DN
    assert gpu + FIXED < CAP <= gpu + FIXED + G4DN * COMMIT_S / 3600
    depth = stack.queue.depth()
    refused = stack.prompt("third")
    assert refused.status_code == 403, refused.text
    error = refused.json()["error"]
    assert error["code"] == "budget_exceeded"
    for figure in (f"${gpu:.2f}", f"${FIXED:.2f}", f"${CAP:.2f}", f"${G4DN * COMMIT_S / 3600:.2f}"):
        assert figure in error["message"], (figure, error["message"])
    assert stack.ec2_state()[0] == "stopped"  # not woken
    assert stack.queue.depth() == depth  # and nothing left behind in the queue
    assert stack.status()["budget"]["state"] == "warning"  # $22.89: past the warning, not the cap

    # 4. The month ends (UTC): March starts at $0 of GPU, and the same prompt wakes.
    frozen_clock.now = datetime(2032, 3, 1, 0, 0, 5, tzinfo=UTC).timestamp()
    assert stack.status()["budget"]["gpu_month_to_date_usd"] == 0
    again = stack.prompt("third, in March")
    assert again.status_code == 202, again.text
    assert stack.ec2_state()[0] == "running"
    # February keeps its figure for the record: the two runs, 30.2 hours.
    feb = stack.ledger.runs("2032-02")
    assert [round((r.end or 0) - r.start) for r in feb] == [36000, 72720]


def _no_capacity_once(client: Any) -> list[str]:
    """Make EC2's next StartInstances answer InsufficientInstanceCapacity, as EC2 does
    (moto never does); the retry after the fallback goes to moto for real."""
    seen: list[str] = []

    def answer(**_: Any) -> Any:
        if seen:
            return None
        seen.append("refused")
        body = {"Error": {"Code": "InsufficientInstanceCapacity",
                          "Message": "We currently do not have sufficient g4dn.xlarge capacity."}}
        return AWSResponse("https://ec2.us-east-1.amazonaws.com/", 500, {}, None), body

    client.meta.events.register("before-call.ec2.StartInstances", answer)
    return seen


@pytest.mark.parametrize("frozen_clock", [MORNING], indirect=True)
def test_a_fallback_g5_is_charged_at_its_own_price(stack: Stack, frozen_clock: Any) -> None:
    refusals = _no_capacity_once(stack.ec2)
    woke = stack.prompt("no g4dn today")
    assert woke.status_code == 202, woke.text
    assert refusals == ["refused"]
    assert stack.ec2_state() == ("running", "g5.xlarge")
    frozen_clock.advance(3600)
    budget = stack.status()["budget"]
    assert budget["gpu_month_to_date_usd"] == pytest.approx(G5)
    assert G5 > G4DN * 1.5  # so a g4dn price would have failed the line above
    stack.worker_idle_stop()
    (run,) = stack.ledger.runs("2032-02")
    assert (run.instance_type, run.usd_per_h) == ("g5.xlarge", G5)
