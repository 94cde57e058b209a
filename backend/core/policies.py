"""Small pure rules: wake ETA from measured history, idling, the budget guard."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from typing import Any

from backend.core.errors import BudgetExceeded

# Before any wake is measured: EC2 pending→running (~16–20 s) plus vLLM start-up
# (20–60 s) per DESIGN.md, so an honest first guess is about a minute.
DEFAULT_WAKE_ETA_S = 60.0


def wake_eta(history: Sequence[float], elapsed: float = 0.0, default: float = DEFAULT_WAKE_ETA_S) -> float:
    """Seconds until ready: the median of past wakes less what has already passed.

    Never negative; when a wake runs over the median, it says a few seconds rather than 0,
    because the machine is not ready yet.
    """
    typical = statistics.median(history) if history else default
    remaining = typical - elapsed
    return round(max(remaining, 5.0 if elapsed else 0.0), 1)


def should_idle_stop(idle_for_s: float, queue_depth: int, inflight: int, timeout_s: float) -> bool:
    """True when nothing has run or waited for `timeout_s` seconds."""
    return queue_depth == 0 and inflight == 0 and idle_for_s >= timeout_s


def idle_stop_at(beat: dict[str, Any] | None, queue_depth: int) -> float | None:
    """When the machine stops for idleness if nothing more comes (epoch seconds), from a
    live worker's heartbeat: its last activity plus its idle timeout (the worker itself
    stops its machine then: `should_idle_stop`). None while anything is queued or
    running, when the worker does not idle out, or when its beat does not say."""
    if beat is None or queue_depth or beat.get("inflight"):
        return None
    since, timeout = beat.get("idle_since"), beat.get("idle_timeout_s")
    if not isinstance(since, int | float) or not isinstance(timeout, int | float) or timeout <= 0:
        return None
    return round(float(since) + float(timeout), 1)


def check_budget(spend_usd: float | None, hard_cap_usd: float | None) -> None:
    """Refuse to wake the GPU once the month's spend reaches the hard cap."""
    if hard_cap_usd is None or spend_usd is None:
        return
    if spend_usd >= hard_cap_usd:
        raise BudgetExceeded(
            f"This month's spend (${spend_usd:.2f}) has reached the hard cap (${hard_cap_usd:.2f}), "
            "so the GPU stays off. Open the cost panel to raise the cap or wait for next month."
        )


def check_cap(gpu_usd: float, fixed_monthly_usd: float, wake_usd: float, hard_cap_usd: float | None) -> None:
    """Refuse a wake that would take the month to the hard cap: the GPU's spend so far,
    the stack's fixed monthly cost (due by the month's end whatever happens) and the least
    a wake costs (the GPU runs until the worker's idle timeout) — with every figure said."""
    if hard_cap_usd is None:
        return
    projected = gpu_usd + fixed_monthly_usd + wake_usd
    if projected >= hard_cap_usd:
        raise BudgetExceeded(
            f"Waking the GPU would bring this month to ${projected:.2f}, at or over the hard cap "
            f"(${hard_cap_usd:.2f}): GPU so far ${gpu_usd:.2f}, the stack's fixed monthly cost "
            f"${fixed_monthly_usd:.2f}, and at least ${wake_usd:.2f} for the wake itself. The GPU "
            "stays off until the next month starts (1st, 00:00 UTC), unless you raise the hard cap."
        )


def budget_state(spend_usd: float | None, warn_usd: float | None, hard_cap_usd: float | None) -> str:
    """'ok', 'warning' or 'exceeded' (or 'unknown' when spend is not known)."""
    if spend_usd is None:
        return "unknown"
    if hard_cap_usd is not None and spend_usd >= hard_cap_usd:
        return "exceeded"
    if warn_usd is not None and spend_usd >= warn_usd:
        return "warning"
    return "ok"
