"""The router's use cases: submit, read, cancel a prompt, and say what the GPU is doing.

Plain Python over the ports: the queue, the compute control and the spend source come in
through the constructor, so the Lambda, the local gateway and the tests wire their own.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any, Protocol

from backend.core.errors import TinyLlamaError
from backend.core.jobs import JobStatus
from backend.core.policies import (
    DEFAULT_WAKE_ETA_S,
    budget_state,
    check_budget,
    check_cap,
    idle_stop_at,
    wake_eta,
)
from backend.core.ports import ComputeControl, ComputeState, MachineStatus, SpendSource
from backend.core.prompts import PromptRequest, fit_context

log = logging.getLogger("tinyllama.router")

# A heartbeat older than this means the worker is gone, whatever the machine says.
HEARTBEAT_STALE_S = 10.0


class Queue(Protocol):
    """What the service needs of the queue (implemented by `RedisQueue`)."""

    def submit(self, owner: str, prompt: PromptRequest, status: JobStatus = ...) -> tuple[str, bool]: ...
    def get(self, owner: str, request_id: str) -> dict[str, Any]: ...
    def cancel(self, owner: str, request_id: str) -> dict[str, Any]: ...
    def depth(self) -> int: ...
    def workers(self) -> list[dict[str, Any]]: ...
    def wake_started(self) -> bool: ...
    def wake_phase(self, phase: str) -> None: ...
    def wake_current(self) -> dict[str, float]: ...
    def wake_history(self) -> list[dict[str, float]]: ...


@dataclass(frozen=True)
class Budget:
    """The budget guard's figures: the warning and the hard cap (USD a month), the stack's
    fixed monthly cost (what it costs idle, by backend/core/pricing.py), and the seconds
    of GPU a wake commits to at least (the worker's idle timeout)."""

    warning_usd: float | None = None
    hard_cap_usd: float | None = None
    fixed_monthly_usd: float = 0.0
    wake_commit_s: float = 0.0


class GpuSpend(Protocol):
    """The router's own month-to-date GPU spend (`backend.adapters.gpu_ledger.GpuLedger`)."""

    def month_to_date_usd(self) -> float: ...
    def price(self, instance_type: str) -> float: ...


class NoCompute:
    """The compute of a stack without a GPU (the MVP): always "ready" with nothing to wake."""

    def describe(self) -> MachineStatus:
        return MachineStatus("running", detail="no GPU in this stack")

    def start(self) -> str:
        return "nothing to start"

    def stop(self) -> str:
        return "nothing to stop"


class PromptService:
    """Submit/read/cancel prompts and report compute state, waking the GPU when needed."""

    def __init__(
        self,
        queue: Queue,
        compute: ComputeControl,
        spend: SpendSource | None = None,
        budget: Budget = Budget(),
        clock: Any = time.time,
        default_wake_s: float = DEFAULT_WAKE_ETA_S,
        describe_ttl_s: float = 0.0,
        context_tokens: int | None = None,
        gpu_spend: GpuSpend | None = None,
        engine: str | None = None,
        model: str | None = None,
    ):
        self.queue = queue
        # The first line of the hard cap: known at once, where Budgets lags by hours.
        self.gpu_spend = gpu_spend
        self.compute = compute
        self.spend = spend
        self.budget = budget
        self.clock = clock
        self.default_wake_s = default_wake_s
        # Every poll of every client asks for the machine's state; on EC2 that is an API
        # call (rate-limited, ~100 ms), so a Lambda instance reuses an answer this young.
        self.describe_ttl_s = describe_ttl_s
        self._described: tuple[float, MachineStatus] | None = None
        # The model's context length, when configured (MAX_MODEL_LEN); otherwise the one
        # the last worker reported from its engine, once one has run.
        self.context_tokens = context_tokens
        # What the machine runs when it is up (the local stack knows before any worker
        # has run): /status names it at once, e.g. right after the engine was switched.
        self.engine = engine
        self.model = model

    def submit(self, owner: str, prompt: PromptRequest) -> dict[str, Any]:
        """Enqueue; wake the GPU if it sleeps. 202 body of the contract."""
        # Before the wake: a prompt the model cannot take must not start a GPU, and an
        # answer may ask only for the room the conversation leaves in the context.
        prompt = fit_context(prompt, self.context_tokens or self._reported_context())
        compute = self.compute_status()
        if compute["state"] == ComputeState.READY:
            request_id, created = self.queue.submit(owner, prompt, JobStatus.QUEUED)
            # A retry answers with the first request's own status (it may be done already).
            status = JobStatus.QUEUED.value if created else self.queue.get(owner, request_id)["status"]
            return {"request_id": request_id, "status": status, "compute": _short(compute)}
        if compute["state"] in (ComputeState.STOPPED, ComputeState.STOPPING):
            # The guard runs before enqueueing, so a refused prompt leaves nothing behind.
            self.check_wake_allowed(compute)
        request_id, created = self.queue.submit(owner, prompt, JobStatus.WAKING)
        if created:
            compute = self.wake(compute)
        job = self.queue.get(owner, request_id)
        return {"request_id": request_id, "status": job["status"], "compute": _short(compute)}

    def check_wake_allowed(self, compute: dict[str, Any]) -> None:
        """Raise BudgetExceeded when a wake would pass the hard cap: first by the router's
        own ledger (GPU so far + the fixed month + the wake's least cost), then by AWS
        Budgets' actual spend (the second line: it lags by hours, but sees everything)."""
        cap = self.budget.hard_cap_usd
        if self.gpu_spend is not None and cap is not None:
            itype = compute.get("instance_type")
            wake_usd = self.gpu_spend.price(itype) * self.budget.wake_commit_s / 3600.0 if itype else 0.0
            check_cap(self.gpu_spend.month_to_date_usd(), self.budget.fixed_monthly_usd, wake_usd, cap)
        check_budget(self._spend(), cap)

    def wake(self, compute: dict[str, Any] | None = None) -> dict[str, Any]:
        """Start the machine if it is stopped, recording when the wake began."""
        compute = compute or self.compute_status()
        if compute["state"] == ComputeState.STOPPED:
            self.queue.wake_started()
            result = self.compute.start()
            self._described = None
            log.info("wake requested: %s", result)
            compute = self.compute_status()
        return compute

    def get(self, owner: str, request_id: str) -> dict[str, Any]:
        """A prompt of `owner`. A prompt still waiting while the machine is stopped (its
        worker died, or it idled out in a race) wakes the machine again, so the job is
        reclaimed rather than left hanging."""
        job = self.queue.get(owner, request_id)
        if not JobStatus(job["status"]).terminal:
            compute = self._compute(brief=True)[0]
            if compute["state"] == ComputeState.STOPPED:
                try:
                    self.check_wake_allowed(compute)
                    compute = self.wake(compute)
                except TinyLlamaError as exc:
                    job["error"] = exc.to_body()["error"]
            job["compute"] = _short(compute)
        return job

    def cancel(self, owner: str, request_id: str) -> dict[str, Any]:
        return self.queue.cancel(owner, request_id)

    def compute_status(self) -> dict[str, Any]:
        """The machine's state combined with the worker's heartbeat, with a wake ETA."""
        return self._compute()[0]

    def _compute(self, brief: bool = False) -> tuple[dict[str, Any], dict[str, Any] | None]:
        """`compute_status`, and the heartbeat of the worker that makes it ready (None
        unless ready). `brief`: a prompt's poll (4 a second while an answer streams) needs
        only the state and ETA, and a ready machine's are known without its wake records."""
        machine = self._describe()
        beats = self.queue.workers()
        now = self.clock()
        fresh = [b for b in beats if now - b.get("ts", 0) < HEARTBEAT_STALE_S]
        ready = any(b.get("ready") for b in fresh)
        state = {
            "stopped": ComputeState.STOPPED,
            "pending": ComputeState.STARTING,
            "stopping": ComputeState.STOPPING,
        }.get(machine.state)
        if state is None:
            state = ComputeState.READY if ready else ComputeState.LOADING_MODEL
            if brief and state == ComputeState.READY:
                return {"state": state.value, "eta_s": 0.0}, None
            self.queue.wake_phase("running")
        history = [w["ready"] - w["requested"] for w in self.queue.wake_history() if "ready" in w]
        if state == ComputeState.READY:
            eta = 0.0
        else:
            current = self.queue.wake_current()
            elapsed = now - current["requested"] if "requested" in current else 0.0
            eta = wake_eta(history, elapsed, self.default_wake_s)
            if state == ComputeState.STOPPING:
                eta += 10.0  # it must finish stopping before it can start again
        worker = None
        if beats:
            b = beats[0]
            worker = {
                "last_seen_s": round(now - b.get("ts", now), 1),
                "engine": b.get("engine"),
                "model": b.get("model"),
                "inflight": b.get("inflight", 0),
            }
        compute = {
            "state": state.value,
            "eta_s": eta,
            "instance_type": machine.instance_type,
            "since": machine.since,
            # A stopped machine's `since` is when it stopped (EC2 writes it in the state
            # reason; the local worker's exit is noted), said apart so clients need not
            # know that; None when not stopped, or not known (a fresh local stack).
            "stopped_at": machine.since if state == ComputeState.STOPPED else None,
            "detail": machine.detail,
            "wakes_measured": len(history),
            "engine": self.engine,
            "model": self.model,
            "worker": worker,
        }
        if self.context_tokens is None:
            compute["context_tokens"] = self._reported_context(beats)
        else:
            compute["context_tokens"] = self.context_tokens
        ready_beat = next((b for b in fresh if b.get("ready")), None) if state == ComputeState.READY else None
        return compute, ready_beat

    def _reported_context(self, beats: list[dict[str, Any]] | None = None) -> int | None:
        """The context length the freshest worker heard from its engine (vLLM says it)."""
        for beat in self.queue.workers() if beats is None else beats:
            if isinstance(beat.get("context_tokens"), int):
                return int(beat["context_tokens"])
        return None

    def _describe(self) -> MachineStatus:
        now = time.monotonic()
        if self._described and now - self._described[0] < self.describe_ttl_s:
            return self._described[1]
        machine = self.compute.describe()
        self._described = (now, machine)
        return machine

    def status(self) -> dict[str, Any]:
        """`GET /status`."""
        compute, ready_beat = self._compute()
        worker = compute.pop("worker")
        depth = self.queue.depth()
        # Only a ready machine idles out, and its worker's own clock says when (its beat).
        compute["idle_stop_at"] = idle_stop_at(ready_beat, depth)
        spend = self._spend()
        budget: dict[str, Any] = {
            "month_to_date_usd": spend,
            "warning_usd": self.budget.warning_usd,
            "hard_cap_usd": self.budget.hard_cap_usd,
        }
        known = spend
        if self.gpu_spend is not None:
            gpu = self.gpu_spend.month_to_date_usd()
            budget["gpu_month_to_date_usd"] = gpu
            budget["fixed_monthly_usd"] = self.budget.fixed_monthly_usd
            # The state follows whichever figure is higher: Budgets lags, the ledger sees
            # only the GPU and the fixed month.
            mine = round(gpu + self.budget.fixed_monthly_usd, 2)
            known = mine if spend is None else max(spend, mine)
        budget["state"] = budget_state(known, self.budget.warning_usd, self.budget.hard_cap_usd)
        return {
            "compute": compute,
            "worker": worker,
            "queue_depth": depth,
            "budget": budget,
        }

    def _spend(self) -> float | None:
        if self.spend is None:
            return None
        try:
            return self.spend.month_to_date_usd()
        except TinyLlamaError:
            raise
        except Exception as exc:  # a spend lookup failing must not block prompts
            log.warning("month-to-date spend unavailable: %s", exc)
            return None


def _short(compute: dict[str, Any]) -> dict[str, Any]:
    """The compute part of a prompt's answer: its state and wake ETA."""
    return {"state": compute["state"], "eta_s": compute["eta_s"]}
