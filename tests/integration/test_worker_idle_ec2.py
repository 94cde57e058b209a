"""The worker on its GPU instance: after the idle timeout it stops its own instance.

Configured as on the instance (IDLE_ACTION=ec2-stop); the instance id comes from an IMDSv2
emulator (botocore's AWS_EC2_METADATA_SERVICE_ENDPOINT points at it) and the instance is
a g4dn.xlarge in moto's EC2, which must end up stopped, not hibernated (GPU types cannot).
"""

from __future__ import annotations

import threading

import boto3
import pytest

from backend.adapters.engines import EchoEngine
from backend.entrypoints import settings
from backend.entrypoints.worker import Worker
from tests.fixtures.imds import DOCUMENT, Imds


@pytest.fixture
def gpu_instance(aws_env: str, imds: Imds, monkeypatch: pytest.MonkeyPatch) -> str:
    ec2 = boto3.client("ec2", endpoint_url=aws_env)
    image = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    instance = ec2.run_instances(ImageId=image, InstanceType="g4dn.xlarge", MinCount=1, MaxCount=1,
                                 HibernationOptions={"Configured": True})["Instances"][0]["InstanceId"]
    imds.document = {**DOCUMENT, "instanceId": instance, "region": "us-east-1"}
    monkeypatch.setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", imds.url)
    monkeypatch.setenv("AWS_ENDPOINT_URL_EC2", aws_env)
    monkeypatch.setenv("IDLE_ACTION", "ec2-stop")
    return instance


def test_idle_worker_stops_its_own_gpu_instance(gpu_instance: str, queue, aws_env: str) -> None:
    worker = Worker(queue, EchoEngine(), idle_timeout_s=0.2, heartbeat_s=0.05,
                    on_idle=settings.idle_action_from_env())
    result: list[str] = []
    thread = threading.Thread(target=lambda: result.append(worker.run()))
    thread.start()
    thread.join(30)
    assert not thread.is_alive()
    assert result[0].startswith("idle: stopped")
    state = boto3.client("ec2", endpoint_url=aws_env).describe_instances(InstanceIds=[gpu_instance])
    assert state["Reservations"][0]["Instances"][0]["State"]["Name"] == "stopped"


def test_off_ec2_the_idle_action_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IDLE_ACTION", "ec2-stop")
    monkeypatch.setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", "http://127.0.0.1:9")  # nothing listens
    action = settings.idle_action_from_env()
    assert action is not None and action() == "not on EC2; nothing to stop"
