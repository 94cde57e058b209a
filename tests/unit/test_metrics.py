"""EMF lines checked against the embedded metric format specification.

SCHEMA is the structure the spec ("Specification: Embedded metric format", CloudWatch user
guide) lays down for the `_aws` metadata; `check_targets` adds the spec's rule that every
dimension key and metric name referenced there is a member of the root node (dimension
values strings, metric values numbers).
"""

from __future__ import annotations

import io
import json
import math
import time

import botocore.session
import jsonschema
import pytest

from backend.adapters.metrics import UNITS, build, emit

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

WORKER_METRICS = {
    "QueueDepth": (3, "Count"),
    "Latency": (1234.5, "Milliseconds"),
    "TokensPerSecond": (41.7, "Count/Second"),
    "Inflight": (2, "Count"),
}


def check_targets(document: dict) -> None:
    for directive in document["_aws"]["CloudWatchMetrics"]:
        for dimension_set in directive["Dimensions"]:
            for key in dimension_set:
                assert isinstance(document[key], str), key
        for metric in directive["Metrics"]:
            value = document[metric["Name"]]
            assert isinstance(value, int | float) and not isinstance(value, bool)
            assert metric["Unit"] in cloudwatch_units()


def cloudwatch_units() -> set[str]:
    model = botocore.session.get_session().get_service_model("cloudwatch")
    return set(model.shape_for("StandardUnit").enum)


def emitted(**kwargs) -> tuple[str, dict]:
    out = io.StringIO()
    emit("TinyLlama", kwargs.pop("dimensions", {"Worker": "w1"}), WORKER_METRICS, out, **kwargs)
    text = out.getvalue()
    return text, json.loads(text)


def test_worker_metrics_make_one_valid_emf_line():
    before = int(time.time() * 1000)
    text, document = emitted(dimensions={"InstanceType": "g4dn.xlarge", "Worker": 7})
    after = int(time.time() * 1000)

    assert text.endswith("\n") and text.count("\n") == 1
    jsonschema.validate(document, SCHEMA)
    check_targets(document)

    meta = document["_aws"]
    assert before <= meta["Timestamp"] <= after
    (directive,) = meta["CloudWatchMetrics"]
    assert directive["Namespace"] == "TinyLlama"
    assert directive["Dimensions"] == [["InstanceType", "Worker"]]
    assert directive["Metrics"] == [
        {"Name": "QueueDepth", "Unit": "Count"},
        {"Name": "Latency", "Unit": "Milliseconds"},
        {"Name": "TokensPerSecond", "Unit": "Count/Second"},
        {"Name": "Inflight", "Unit": "Count"},
    ]
    assert document["Worker"] == "7"  # EMF dimension values are strings
    assert document["InstanceType"] == "g4dn.xlarge"
    assert (document["QueueDepth"], document["Latency"]) == (3, 1234.5)
    assert document["TokensPerSecond"] == 41.7
    assert document["Inflight"] == 2


def test_explicit_timestamp_is_epoch_milliseconds():
    _, document = emitted(timestamp=1_764_126_000.25)
    assert document["_aws"]["Timestamp"] == 1_764_126_000_250


def test_no_dimensions_is_one_empty_dimension_set():
    _, document = emitted(dimensions={})
    jsonschema.validate(document, SCHEMA)
    assert document["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [[]]


def test_writes_to_stdout_by_default(capsys):
    emit("TinyLlama", {"Worker": "w1"}, {"QueueDepth": (0, "Count")})
    line = capsys.readouterr().out
    assert json.loads(line)["QueueDepth"] == 0


def test_units_are_exactly_cloudwatchs():
    assert set(UNITS) == cloudwatch_units()


@pytest.mark.parametrize(
    ("namespace", "dimensions", "metrics"),
    [
        ("", {}, {"QueueDepth": (1, "Count")}),
        ("TinyLlama", {}, {}),
        ("TinyLlama", {}, {"Latency": (5, "ms")}),
        ("TinyLlama", {}, {"Latency": (math.nan, "Milliseconds")}),
        ("TinyLlama", {}, {"Latency": (math.inf, "Milliseconds")}),
        ("TinyLlama", {}, {"Latency": ("5", "Milliseconds")}),
        ("TinyLlama", {}, {"Ready": (True, "Count")}),
        ("TinyLlama", {"Inflight": "x"}, {"Inflight": (1, "Count")}),
        ("TinyLlama", {"Worker": ""}, {"Inflight": (1, "Count")}),
        ("TinyLlama", {f"D{i}": "v" for i in range(31)}, {"Inflight": (1, "Count")}),
        ("TinyLlama", {}, {f"M{i}": (i, "Count") for i in range(101)}),
    ],
)
def test_what_cloudwatch_would_reject_raises_and_writes_nothing(namespace, dimensions, metrics):
    out = io.StringIO()
    with pytest.raises(ValueError):
        emit(namespace, dimensions, metrics, out)
    assert out.getvalue() == ""


def test_limits_themselves_are_allowed():
    document = build(
        "TinyLlama",
        {f"D{i}": "v" for i in range(30)},
        {f"M{i}": (i, "Count") for i in range(100)},
    )
    jsonschema.validate(document, SCHEMA)
    check_targets(document)
