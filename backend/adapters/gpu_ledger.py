"""The router's own month-to-date GPU spend: each run of the instance × its type's price.

AWS Budgets is the second line of the hard cap, but it updates only several times a day
(DESIGN.md), so a day of prompts could pass the cap before it notices. This ledger knows
at once: it records every run of the GPU instance (start, stop, the type it ran as) in
Redis, where every router instance and the worker see the same figures.

What it relies on (EC2's billing, checked in the StartInstances API reference,
https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_StartInstances.html): a stopped
instance bills nothing; "every time you start your instance, Amazon EC2 charges a
one-minute minimum for instance usage, and thereafter charges per second". So a run costs
max(seconds, 60) × the type's hourly price / 3600, and the type is the one the instance
really ran as (a g4dn that fell back to g5 is billed as a g5).

Records, all under the queue's hash tag (`RedisQueue.key`), so cluster mode keeps them in
one slot:

- `gpu:open` — the run in progress: `{"start", "type", "usd_per_h"}` (JSON). Set with NX
  when a run is first seen, so two routers seeing the same start keep the first record.
- `gpu:month:YYYY-MM` — a hash of closed runs that touched that UTC month, field = the
  run's start, value = `{"start", "end", "type", "usd_per_h"}`. A run over a month's end is
  written to both months and each month counts only its own seconds.

Closing takes `gpu:open` with GETDEL, so of two observers that see the stop at once only
one writes the run. Month hashes expire about a year after their month ends.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from backend.core.pricing import PRICES, instance_hourly_usd

log = logging.getLogger("tinyllama.ledger")

#: EC2's minimum charge per start of a Linux instance (StartInstances API reference).
MINIMUM_BILLED_S = 60.0
#: How long a month's record is kept after it ends: long enough for a year's comparison.
KEEP_MONTH_S = 400 * 86400


def month_of(ts: float) -> str:
    """The UTC month of an epoch time, as `YYYY-MM` (the ledger's and the budget's month)."""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m")


def month_bounds(ts: float) -> tuple[float, float]:
    """The first instant of `ts`'s UTC month and of the next month, as epoch seconds."""
    day = datetime.fromtimestamp(ts, UTC)
    start = datetime(day.year, day.month, 1, tzinfo=UTC)
    following = datetime(day.year + (day.month == 12), day.month % 12 + 1, 1, tzinfo=UTC)
    return start.timestamp(), following.timestamp()


def _months(start: float, end: float) -> Iterator[str]:
    """Every UTC month that [start, end] touches, in order."""
    at = start
    while True:
        yield month_of(at)
        _first, following = month_bounds(at)
        if following > end:
            return
        at = following


@dataclass(frozen=True)
class Run:
    """One run of the instance: from `start` to `end` (None while it runs), at a price."""

    start: float
    end: float | None
    instance_type: str
    usd_per_h: float

    def usd_in(self, month_start: float, month_end: float, now: float) -> float:
        """What this run costs within [month_start, month_end), as of `now`."""
        end = self.end if self.end is not None else now
        # EC2's one-minute minimum: a run shorter than that is billed as a minute.
        billed_end = max(end, self.start + MINIMUM_BILLED_S)
        seconds = max(0.0, min(billed_end, month_end) - max(self.start, month_start))
        return seconds * self.usd_per_h / 3600.0

    def to_json(self) -> str:
        return json.dumps({"start": self.start, "end": self.end, "type": self.instance_type,
                           "usd_per_h": self.usd_per_h})

    @classmethod
    def from_json(cls, raw: str | bytes) -> Run:
        data = json.loads(raw)
        return cls(float(data["start"]), None if data.get("end") is None else float(data["end"]),
                   str(data["type"]), float(data["usd_per_h"]))


class GpuLedger:
    """Runs of the GPU instance in Redis, and what they cost this month (UTC).

    `redis` is the queue's client, `key` its `RedisQueue.key` (so every record shares the
    queue's hash tag); `clock` gives epoch seconds (tests pass a FrozenClock);
    `fallback_usd_per_h` prices a type the price table does not list (the template's
    GPU_PRICE_PER_HOUR_USD for the type it deploys).
    """

    def __init__(self, redis: Any, key: Callable[..., str], *, clock: Callable[[], float],
                 fallback_usd_per_h: float | None = None):
        self.r = redis
        self.key = key
        self.clock = clock
        self.fallback_usd_per_h = fallback_usd_per_h

    # -- recording ----------------------------------------------------------------------
    def price(self, instance_type: str) -> float:
        """The hourly price a run of `instance_type` is charged at."""
        price = instance_hourly_usd(instance_type)
        if price is not None:
            return price
        if self.fallback_usd_per_h is not None:
            return self.fallback_usd_per_h
        # Unknown and unpriced: charge the dearest type we know rather than nothing, so
        # the cap errs on the side of holding.
        log.warning("no price for instance type %s: charging the dearest known GPU", instance_type)
        return max(p for t, p in PRICES.hourly.items() if t.startswith(("g", "p")) and "." in t)

    def started(self, instance_type: str, at: float | None = None) -> Run:
        """A run began (the router started the instance, or saw it running with no record).
        Keeps the record already there, if any: the first observer's start wins."""
        run = Run(self.clock() if at is None else at, None, instance_type, self.price(instance_type))
        if not self.r.set(self.key("gpu", "open"), run.to_json(), nx=True):
            return self.open_run() or run
        log.info("GPU run started at %.0f as %s ($%.4f/h)", run.start, instance_type, run.usd_per_h)
        return run

    def stopped(self, at: float | None = None) -> Run | None:
        """The run in progress ended at `at` (now when not given), clamped to when it could
        have: not before it began, not after now. Returns the closed run, or None when no
        run was open (another observer closed it first, or none was recorded)."""
        raw = self.r.getdel(self.key("gpu", "open"))
        if raw is None:
            return None
        run = Run.from_json(raw)
        now = self.clock()
        end = min(max(now if at is None else at, run.start), now)
        closed = Run(run.start, end, run.instance_type, run.usd_per_h)
        pipe = self.r.pipeline(transaction=False)
        for month in _months(closed.start, end):
            key = self.key("gpu", "month", month)
            pipe.hset(key, repr(closed.start), closed.to_json())
            pipe.expire(key, KEEP_MONTH_S)
        pipe.execute()
        log.info("GPU run closed: %.0f s as %s", end - closed.start, closed.instance_type)
        return closed

    def observe(self, state: str, instance_type: str | None, *, launched_at: float | None = None,
                stopped_at: float | None = None) -> None:
        """Bring the ledger in line with what EC2 says now (`describe_instances`): a run
        nobody recorded (started by hand) opens at EC2's LaunchTime; a stopped instance
        closes the open run at EC2's time of the stop (StateTransitionReason)."""
        if state in ("pending", "running"):
            if instance_type and self.r.get(self.key("gpu", "open")) is None:
                now = self.clock()
                start = launched_at if launched_at is not None and launched_at <= now else now
                self.started(instance_type, at=start)
        elif state == "stopped":
            run = self.open_run()
            # A stop from before the open run began is an answer older than the start
            # another router has just made: that run is not over.
            if run is not None and (stopped_at is None or stopped_at >= run.start):
                self.stopped(at=stopped_at)
        # "stopping": EC2 still bills until it has stopped; the next look closes the run.

    # -- reading ------------------------------------------------------------------------
    def open_run(self) -> Run | None:
        """The run in progress, if one is recorded."""
        raw = self.r.get(self.key("gpu", "open"))
        return Run.from_json(raw) if raw is not None else None

    def runs(self, month: str) -> list[Run]:
        """The closed runs that touched `month` (`YYYY-MM`), oldest first."""
        values = self.r.hvals(self.key("gpu", "month", month))
        return sorted((Run.from_json(v) for v in values), key=lambda run: run.start)

    def month_to_date_usd(self) -> float:
        """GPU spend of the current UTC month: its closed runs plus the open one so far."""
        now = self.clock()
        first, following = month_bounds(now)
        runs = self.runs(month_of(now))
        open_run = self.open_run()
        if open_run is not None:
            runs.append(open_run)
        return round(sum(run.usd_in(first, following, now) for run in runs), 4)
