"""After a g4dn → g5 fallback the worker prices answers at the type it really runs as.

The template hands the worker GPU_PRICE_PER_HOUR_USD for the *requested* type; the router
may start the fallback type instead. The worker asks IMDS (here the IMDSv2 emulator, a
real HTTP server) and prices the running type from backend/core/pricing.PRICES; the
answer's cost in Redis (a real redis-server) follows.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from backend.adapters.redis_queue import RedisQueue
from backend.core.jobs import JobStatus
from backend.core.pricing import PRICES
from backend.core.prompts import parse_prompt
from backend.entrypoints.worker import gpu_price_from_env, worker_from_env
from tests.fixtures.imds import DOCUMENT, Imds
from tests.fixtures.workers import Running
from tests.helpers import wait_until

REQUESTED = "0.526"  # what the template's GpuPrice map gives g4dn.xlarge


@pytest.fixture
def on_instance(imds: Imds, monkeypatch: pytest.MonkeyPatch) -> Callable[[str], None]:
    """Pretend to be a GPU instance launched as g4dn.xlarge that runs as `running`."""

    def become(running: str) -> None:
        imds.document = {**DOCUMENT, "instanceType": running}
        monkeypatch.setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", imds.url)
        monkeypatch.setenv("GPU_PRICE_PER_HOUR_USD", REQUESTED)

    return become


def test_fallback_type_is_priced_as_itself(on_instance: Callable[[str], None]) -> None:
    on_instance("g5.xlarge")
    assert gpu_price_from_env() == PRICES.hourly["g5.xlarge"] == 1.006


def test_requested_type_keeps_its_price(on_instance: Callable[[str], None]) -> None:
    on_instance("g4dn.xlarge")
    assert gpu_price_from_env() == 0.526


def test_a_type_the_table_lacks_keeps_the_templates_price(on_instance: Callable[[str], None]) -> None:
    on_instance("p5.48xlarge")
    assert gpu_price_from_env() == 0.526


def test_no_imds_keeps_the_templates_price(imds: Imds, on_instance: Callable[[str], None]) -> None:
    on_instance("g5.xlarge")
    imds.token_status = 403  # IMDS refuses (or is off): the template's figure stands
    assert gpu_price_from_env() == 0.526


def test_unpriced_worker_never_asks_imds(imds: Imds, monkeypatch: pytest.MonkeyPatch) -> None:
    # The local profile's worker: no GPU price, and no start-up spent waiting on IMDS.
    monkeypatch.setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", imds.url)
    monkeypatch.delenv("GPU_PRICE_PER_HOUR_USD", raising=False)
    assert gpu_price_from_env() == 0.0
    assert imds.requests == []


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


@pytest.fixture
def env_worker(queue: RedisQueue, redis_server: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Running]]:
    """`tinyllama worker` as built from the environment, on the real Redis, echo engine."""
    for name, value in {"REDIS_URL": redis_server.url, "ENGINE": "echo", "ECHO_DELAY_S": "0.05",
                        "HEARTBEAT_S": "0.1", "IDLE_TIMEOUT_S": "0", "IDLE_ACTION": "exit"}.items():
        monkeypatch.setenv(name, value)
    holder: list[Running] = []
    yield holder  # the test starts it, once the IMDS answer is set
    for r in holder:
        r.worker.request_stop()
        r.worker.request_stop()
        r.join()


def test_answer_cost_uses_the_running_types_price(queue: RedisQueue, env_worker: list[Running],
                                                  on_instance: Callable[[str], None]) -> None:
    on_instance("g5.xlarge")
    env_worker.append(Running(worker_from_env()))
    words = "one two three four five six seven eight nine ten"
    rid, _ = queue.submit("owner", parse_prompt({"messages": [{"role": "user", "content": words}]}))
    wait_until(lambda: queue.get("owner", rid)["status"] == JobStatus.DONE, 15, message="the answer")
    raw = {_text(k): _text(v) for k, v in queue.r.hgetall(queue._req(rid)).items()}
    seconds = float(raw["finished"]) - float(raw["started"])
    assert seconds > 0.3  # ten words at 50 ms: g4dn's and g5's prices differ well above rounding
    cost = queue.get("owner", rid)["cost_usd"]
    assert cost == pytest.approx(seconds * 1.006 / 3600, abs=2e-6)
    assert cost > seconds * 0.526 / 3600 * 1.5  # not the requested g4dn's price
