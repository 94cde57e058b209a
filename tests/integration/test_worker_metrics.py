"""The worker publishes queue depth, latency and tokens/s as CloudWatch EMF log lines."""

from __future__ import annotations

import json
import threading

import pytest

from backend.adapters.engines import EchoEngine
from backend.core.prompts import PromptRequest
from backend.entrypoints.worker import METRICS_NAMESPACE, Worker
from tests.helpers import wait_until


def _emf_lines(text: str) -> list[dict]:
    return [doc for line in text.splitlines() if line.startswith("{") and "_aws" in (doc := json.loads(line))]


def test_metrics_follow_the_work(queue, capsys: pytest.CaptureFixture[str]) -> None:
    worker = Worker(queue, EchoEngine(), heartbeat_s=0.05, idle_timeout_s=0, emit_metrics=True)
    thread = threading.Thread(target=worker.run)
    thread.start()
    try:
        rid, _ = queue.submit("alice", PromptRequest([{"role": "user", "content": "one two three four"}]))
        wait_until(lambda: queue.get("alice", rid)["status"] == "done", 10, message="the job")
        seen: list[dict] = []

        def latency_reported() -> bool:
            seen.extend(_emf_lines(capsys.readouterr().out))
            return any("Latency" in doc for doc in seen)

        wait_until(latency_reported, 10, message="an EMF line with Latency")
    finally:
        worker.request_stop()
        thread.join(10)
    doc = next(d for d in seen if "Latency" in d)
    directive = doc["_aws"]["CloudWatchMetrics"][0]
    assert directive["Namespace"] == METRICS_NAMESPACE
    names = {m["Name"]: m["Unit"] for m in directive["Metrics"]}
    assert names["Latency"] == "Milliseconds" and names["QueueDepth"] == "Count"
    assert names["TokensPerSecond"] == "Count/Second"
    assert doc["QueueDepth"] == 0
    # Four words were generated in the window that reported them.
    assert sum(d["TokensPerSecond"] for d in seen) * worker.heartbeat_s == pytest.approx(4)
    assert 0 < doc["Latency"] < 10_000
