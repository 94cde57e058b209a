"""The worker publishes queue depth, latency and tokens/s as CloudWatch EMF log lines.

The lines are the ones the worker really prints (Powertools' EMF writer), checked against
the embedded metric format specification ("Specification: Embedded metric format",
CloudWatch user guide): SCHEMA is its structure for the `_aws` metadata; `check_targets`
adds its rule that every dimension and metric named there is a member of the root node
(dimension values strings, metric values numbers or arrays of numbers), with CloudWatch's
own units (botocore's model).
"""

from __future__ import annotations

import json
import threading
import time

import botocore.session
import jsonschema
import pytest

from backend.adapters.engines import EchoEngine
from backend.core.prompts import PromptRequest
from backend.entrypoints.worker import METRICS_NAMESPACE, Worker
from tests.helpers import wait_until

SCHEMA = {
    "type": "object",
    "required": ["_aws"],
    "properties": {
        "_aws": {
            "type": "object",
            "required": ["Timestamp", "CloudWatchMetrics"],
            "properties": {
                "Timestamp": {"type": "integer", "minimum": 0},
                "CloudWatchMetrics": {
                    "type": "array",
                    "minItems": 1,
                    "items": {
                        "type": "object",
                        "required": ["Namespace", "Dimensions", "Metrics"],
                        "additionalProperties": False,
                        "properties": {
                            "Namespace": {"type": "string", "minLength": 1, "maxLength": 1024},
                            "Dimensions": {
                                "type": "array",
                                "items": {
                                    "type": "array",
                                    "maxItems": 30,
                                    "items": {"type": "string", "minLength": 1, "maxLength": 250},
                                },
                            },
                            "Metrics": {
                                "type": "array",
                                "maxItems": 100,
                                "items": {
                                    "type": "object",
                                    "required": ["Name"],
                                    "additionalProperties": False,
                                    "properties": {
                                        "Name": {"type": "string", "minLength": 1},
                                        "Unit": {"type": "string"},
                                        "StorageResolution": {"enum": [1, 60]},
                                    },
                                },
                            },
                        },
                    },
                },
            },
        }
    },
}


def _number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def check_targets(document: dict) -> None:
    units = set(botocore.session.get_session().get_service_model("cloudwatch").shape_for("StandardUnit").enum)
    for directive in document["_aws"]["CloudWatchMetrics"]:
        for dimension_set in directive["Dimensions"]:
            for key in dimension_set:
                assert isinstance(document[key], str), key
        for metric in directive["Metrics"]:
            value = document[metric["Name"]]
            assert _number(value) or (isinstance(value, list) and value and all(map(_number, value))), value
            assert metric["Unit"] in units


def _value(document: dict, name: str) -> float:
    """A metric's value; EMF allows a number or an array of them (one sample here)."""
    value = document[name]
    if isinstance(value, list):
        assert len(value) == 1, value
        return float(value[0])
    return float(value)


def _emf_lines(text: str) -> list[dict]:
    return [doc for line in text.splitlines() if line.startswith("{") and "_aws" in (doc := json.loads(line))]


def test_metrics_follow_the_work(queue, capsys: pytest.CaptureFixture[str]) -> None:
    worker = Worker(queue, EchoEngine(), heartbeat_s=0.05, idle_timeout_s=0, emit_metrics=True)
    thread = threading.Thread(target=worker.run)
    before = int(time.time() * 1000)
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
    after = int(time.time() * 1000)
    for doc in seen:
        jsonschema.validate(doc, SCHEMA)
        check_targets(doc)
        assert before <= doc["_aws"]["Timestamp"] <= after
    doc = next(d for d in seen if "Latency" in d)
    (directive,) = doc["_aws"]["CloudWatchMetrics"]
    assert directive["Namespace"] == METRICS_NAMESPACE
    assert directive["Dimensions"] == [["Worker"]] and doc["Worker"] == "gpu"
    names = {m["Name"]: m["Unit"] for m in directive["Metrics"]}
    assert names == {"QueueDepth": "Count", "Inflight": "Count", "TokensPerSecond": "Count/Second",
                     "Latency": "Milliseconds", "Busy": "Count"}
    assert _value(doc, "QueueDepth") == 0
    # Four words were generated in the window that reported them.
    assert sum(_value(d, "TokensPerSecond") for d in seen) * worker.heartbeat_s == pytest.approx(4)
    assert 0 < _value(doc, "Latency") < 10_000


def test_busy_is_one_while_a_job_runs_and_zero_once_nothing_waits(queue, capsys: pytest.CaptureFixture[str]) -> None:
    """The 30-minute safety stop (infra/stack.yaml IdleStopAlarm) reads Busy: it must say 1
    for a job in flight (a long answer is not idleness) and 0 when all is done."""
    worker = Worker(queue, EchoEngine(delay_s=0.1), heartbeat_s=0.05, idle_timeout_s=0, emit_metrics=True)
    thread = threading.Thread(target=worker.run)
    thread.start()
    seen: list[dict] = []
    try:
        rid, _ = queue.submit("alice", PromptRequest([{"role": "user", "content": "one two three four five"}]))

        def busy_reported() -> bool:
            seen.extend(_emf_lines(capsys.readouterr().out))
            return any(_value(d, "Busy") == 1 and _value(d, "Inflight") == 1 for d in seen)

        wait_until(busy_reported, 10, message="an EMF line with Busy=1 while the job runs")
        wait_until(lambda: queue.get("alice", rid)["status"] == "done", 10, message="the job")
        seen.clear()

        def idle_reported() -> bool:
            seen.extend(_emf_lines(capsys.readouterr().out))
            return any(_value(d, "Busy") == 0 for d in seen)

        wait_until(idle_reported, 10, message="an EMF line with Busy=0 after the job")
    finally:
        worker.request_stop()
        thread.join(10)
    for doc in seen:
        assert _value(doc, "Busy") == (1 if _value(doc, "Inflight") or _value(doc, "QueueDepth") else 0)
