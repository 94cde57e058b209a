"""Percentiles and a table printer shared by the benchmarks."""

from __future__ import annotations

import statistics
from collections.abc import Sequence


def pct(values: Sequence[float], p: float) -> float:
    """The p-th percentile (nearest rank) of `values`."""
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, round(p / 100 * len(ordered) + 0.5) - 1))
    return ordered[k]


def row(label: str, values: Sequence[float], unit: str = "ms", scale: float = 1000.0) -> str:
    return (f"  {label:<34} p50 {pct(values, 50) * scale:8.1f} {unit}   p99 {pct(values, 99) * scale:8.1f} {unit}"
            f"   mean {statistics.fmean(values) * scale:8.1f} {unit}")
