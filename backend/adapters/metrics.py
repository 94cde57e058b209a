"""CloudWatch metrics as embedded metric format (EMF) log lines.

One JSON object per line on stdout (or any text stream); the CloudWatch agent or Lambda's
log pipeline turns it into metrics, with no PutMetricData call and no extra latency.
Structure, from the EMF specification ("Specification: Embedded metric format", CloudWatch
user guide):

    {"_aws": {"Timestamp": <epoch ms>,
              "CloudWatchMetrics": [{"Namespace": "...",
                                     "Dimensions": [["Key", ...]],
                                     "Metrics": [{"Name": "...", "Unit": "..."}]}]},
     "Key": "dimension value", "MetricName": <number>}

The spec's limits are enforced here so a bad call fails loudly in tests instead of being
silently dropped by CloudWatch: at most 30 dimensions per dimension set and 100 metrics per
directive, dimension values are strings, metric values are finite numbers, units are
CloudWatch's standard units.

The worker's metrics: QueueDepth (Count), Latency (Milliseconds), TokensPerSecond
(Count/Second), Inflight (Count).
"""

from __future__ import annotations

import json
import math
import sys
import time
from collections.abc import Mapping
from numbers import Real
from typing import TextIO

MAX_DIMENSIONS = 30
MAX_METRICS = 100

# CloudWatch's StandardUnit values (the same list the PutMetricData API takes).
UNITS = frozenset(
    [
        "Seconds",
        "Microseconds",
        "Milliseconds",
        "Bytes",
        "Kilobytes",
        "Megabytes",
        "Gigabytes",
        "Terabytes",
        "Bits",
        "Kilobits",
        "Megabits",
        "Gigabits",
        "Terabits",
        "Percent",
        "Count",
        "Bytes/Second",
        "Kilobytes/Second",
        "Megabytes/Second",
        "Gigabytes/Second",
        "Terabytes/Second",
        "Bits/Second",
        "Kilobits/Second",
        "Megabits/Second",
        "Gigabits/Second",
        "Terabits/Second",
        "Count/Second",
        "None",
    ]
)


def build(
    namespace: str,
    dimensions: Mapping[str, object],
    metrics: Mapping[str, tuple[float, str]],
    *,
    timestamp: float | None = None,
) -> dict[str, object]:
    """The EMF document for these metrics (see `emit`)."""
    if not isinstance(namespace, str) or not namespace.strip():
        raise ValueError("EMF namespace must be a non-empty string")
    if not metrics:
        raise ValueError("EMF needs at least one metric")
    if len(dimensions) > MAX_DIMENSIONS:
        raise ValueError(f"EMF allows at most {MAX_DIMENSIONS} dimensions, got {len(dimensions)}")
    if len(metrics) > MAX_METRICS:
        raise ValueError(f"EMF allows at most {MAX_METRICS} metrics, got {len(metrics)}")
    clash = set(dimensions) & set(metrics)
    if clash:
        raise ValueError(f"names used both as dimension and metric: {sorted(clash)}")
    if "_aws" in dimensions or "_aws" in metrics:
        raise ValueError("'_aws' is reserved by EMF")

    document: dict[str, object] = {}
    for key, value in dimensions.items():
        if not isinstance(key, str) or not key:
            raise ValueError(f"dimension name must be a non-empty string: {key!r}")
        text = value if isinstance(value, str) else str(value)
        if not text.strip():
            raise ValueError(f"dimension {key!r} has an empty value")
        document[key] = text

    definitions: list[dict[str, str]] = []
    for name, pair in metrics.items():
        if not isinstance(name, str) or not name:
            raise ValueError(f"metric name must be a non-empty string: {name!r}")
        value, unit = pair
        if isinstance(value, bool) or not isinstance(value, Real) or not math.isfinite(value):
            raise ValueError(f"metric {name!r} needs a finite number, got {value!r}")
        if unit not in UNITS:
            raise ValueError(f"metric {name!r} has unit {unit!r}, not a CloudWatch unit")
        document[name] = value
        definitions.append({"Name": name, "Unit": unit})

    when = time.time() if timestamp is None else timestamp
    document["_aws"] = {
        "Timestamp": int(when * 1000),
        "CloudWatchMetrics": [
            {
                "Namespace": namespace,
                "Dimensions": [list(dimensions)],
                "Metrics": definitions,
            }
        ],
    }
    return document


def emit(
    namespace: str,
    dimensions: Mapping[str, object],
    metrics: Mapping[str, tuple[float, str]],
    stream: TextIO | None = None,
    *,
    timestamp: float | None = None,
) -> dict[str, object]:
    """Write one EMF line for `metrics` ({name: (value, unit)}) and return the document.

    `dimensions` ({name: value}) form the one dimension set every metric is recorded
    under; values are written as strings, as EMF requires. `timestamp` is epoch seconds
    (default: now). Raises ValueError for anything CloudWatch would reject.
    """
    document = build(namespace, dimensions, metrics, timestamp=timestamp)
    out = sys.stdout if stream is None else stream
    out.write(json.dumps(document, separators=(",", ":"), allow_nan=False) + "\n")
    out.flush()
    return document
