"""The GPU ledger in a real redis-server: months in UTC, EC2's one-minute minimum, and
runs closed by what EC2 says (a botocore Stubber gives describe_instances answers with
times on the test's FrozenClock, which moto's calendar-dated ones cannot be)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from backend.adapters.compute_ec2 import Ec2Compute
from backend.adapters.gpu_ledger import GpuLedger, month_bounds
from backend.core.pricing import instance_hourly_usd

G4DN = instance_hourly_usd("g4dn.xlarge") or 0.0
IID = "i-0123456789abcdef0"


def ledger_for(queue: Any, clock: Any, **kwargs: Any) -> GpuLedger:
    return GpuLedger(queue.r, queue.key, clock=clock, **kwargs)


def test_month_bounds_are_utc_and_know_leap_years() -> None:
    start, end = month_bounds(datetime(2032, 2, 29, 23, 59, 59, tzinfo=UTC).timestamp())
    assert datetime.fromtimestamp(start, UTC) == datetime(2032, 2, 1, tzinfo=UTC)
    assert datetime.fromtimestamp(end, UTC) == datetime(2032, 3, 1, tzinfo=UTC)
    _, end = month_bounds(datetime(2032, 12, 31, 12, tzinfo=UTC).timestamp())
    assert datetime.fromtimestamp(end, UTC) == datetime(2033, 1, 1, tzinfo=UTC)


def test_a_run_over_the_month_end_is_split_between_the_months(queue: Any, frozen_clock: Any) -> None:
    ledger = ledger_for(queue, frozen_clock)  # 2032-02-29 23:59:30
    frozen_clock.advance(-3600 + 30)  # 23:00:00
    ledger.started("g4dn.xlarge")
    frozen_clock.advance(2 * 3600)  # 01:00:00 on 1 March
    assert ledger.month_to_date_usd() == pytest.approx(G4DN)  # March's hour only, while running
    ledger.stopped()
    assert ledger.month_to_date_usd() == pytest.approx(G4DN)
    assert [r.instance_type for r in ledger.runs("2032-02")] == ["g4dn.xlarge"]
    feb_start, feb_end = month_bounds(ledger.runs("2032-02")[0].start)
    assert ledger.runs("2032-02")[0].usd_in(feb_start, feb_end, frozen_clock()) == pytest.approx(G4DN)
    assert 0 < queue.r.ttl(queue.key("gpu", "month", "2032-03")) <= 400 * 86400


def test_a_short_run_is_billed_a_minute_and_a_second_close_changes_nothing(queue: Any, frozen_clock: Any) -> None:
    frozen_clock.now = datetime(2032, 2, 10, 12, tzinfo=UTC).timestamp()
    ledger = ledger_for(queue, frozen_clock)
    ledger.started("g4dn.xlarge")
    frozen_clock.advance(5)
    assert ledger.stopped() is not None
    assert ledger.stopped() is None  # another observer saw the same stop: counted once
    assert ledger.month_to_date_usd() == pytest.approx(round(60 * G4DN / 3600, 4))


def test_ec2s_own_stop_time_closes_the_run_when_the_router_only_sees_it_stopped(
        queue: Any, frozen_clock: Any) -> None:
    """The budget action or the safety alarm stopped the GPU: the worker wrote nothing, so
    the router's next describe closes the run at the time EC2 wrote into the reason."""
    frozen_clock.now = datetime(2032, 2, 10, 12, tzinfo=UTC).timestamp()
    ledger = ledger_for(queue, frozen_clock)
    client = boto3.client("ec2", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="y")
    compute = Ec2Compute(IID, ec2_client=client, ledger=ledger)
    launched = datetime(2032, 2, 10, 11, tzinfo=UTC)  # started by hand an hour ago
    with Stubber(client) as stub:
        stub.add_response("describe_instances", _answer("running", launched))
        stub.add_response("describe_instances", _answer(
            "stopped", launched, reason="User initiated (2032-02-10 11:30:00 GMT)"))
        assert compute.describe().state == "running"
        assert ledger.open_run() is not None and ledger.open_run().start == launched.timestamp()  # type: ignore[union-attr]
        frozen_clock.advance(3 * 3600)  # the router looks again three hours later
        assert compute.describe().state == "stopped"
    (run,) = ledger.runs("2032-02")
    assert run.end == datetime(2032, 2, 10, 11, 30, tzinfo=UTC).timestamp()  # not "now"
    assert ledger.month_to_date_usd() == pytest.approx(0.5 * G4DN)


def test_a_stop_older_than_the_open_run_leaves_it_open(queue: Any, frozen_clock: Any) -> None:
    """Router A starts the GPU while router B holds an answer from just before: B's
    "stopped (at the last stop)" must not end A's new run."""
    frozen_clock.now = datetime(2032, 2, 10, 12, tzinfo=UTC).timestamp()
    ledger = ledger_for(queue, frozen_clock)
    ledger.started("g4dn.xlarge")
    ledger.observe("stopped", "g4dn.xlarge", stopped_at=frozen_clock() - 600)
    assert ledger.open_run() is not None
    ledger.observe("stopped", "g4dn.xlarge", stopped_at=frozen_clock() + 0)
    assert ledger.open_run() is None


def test_a_type_without_a_price_is_charged_the_templates_price_or_the_dearest(queue: Any, frozen_clock: Any) -> None:
    assert ledger_for(queue, frozen_clock, fallback_usd_per_h=2.5).price("g9.huge") == 2.5
    dearest = ledger_for(queue, frozen_clock).price("g9.huge")
    assert dearest >= (instance_hourly_usd("g5.2xlarge") or 0)


def _answer(state: str, launched: datetime, reason: str = "") -> dict[str, Any]:
    codes = {"running": 16, "stopped": 80}
    return {"Reservations": [{"Instances": [{
        "InstanceId": IID, "InstanceType": "g4dn.xlarge", "LaunchTime": launched,
        "State": {"Name": state, "Code": codes[state]}, "StateTransitionReason": reason,
        "Placement": {"AvailabilityZone": "us-east-1a"},
    }]}]}
