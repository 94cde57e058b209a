"""Plain data the app passes around: API answers and stored conversations.

Parsing from the API's JSON lives here (`from_api`) so the client stays a thin transport
and views never index into dicts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NamedTuple

from backend.core.ports import ComputeState

TERMINAL_STATUSES = frozenset({"done", "failed", "cancelled", "expired"})
# The OpenAI-style finish reason of an answer cut at max_tokens (infra/openapi.yaml).
FINISH_LENGTH = "length"


def _float(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) else None


def _int(value: object) -> int | None:
    return int(value) if isinstance(value, int | float) else None


def _str(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


class Compute(NamedTuple):
    """The compute part of an answer: state and seconds until ready."""

    state: ComputeState = ComputeState.UNKNOWN
    eta_s: float = 0.0

    @classmethod
    def from_api(cls, data: object) -> Compute:
        if not isinstance(data, dict):
            return cls()
        return cls(ComputeState.parse(data.get("state")), _float(data.get("eta_s")) or 0.0)


class Budget(NamedTuple):
    """The budget guard's view: `ok`, `warning`, `exceeded` or `unknown`."""

    state: str = "unknown"
    month_to_date_usd: float | None = None
    warning_usd: float | None = None
    hard_cap_usd: float | None = None

    @classmethod
    def from_api(cls, data: object) -> Budget:
        if not isinstance(data, dict):
            return cls()
        return cls(
            str(data.get("state") or "unknown"),
            _float(data.get("month_to_date_usd")),
            _float(data.get("warning_usd")),
            _float(data.get("hard_cap_usd")),
        )


class ServerStatus(NamedTuple):
    """`GET /status`: compute, worker, queue and budget."""

    compute: Compute = Compute()
    instance_type: str | None = None
    since: float | None = None
    detail: str = ""
    engine: str | None = None
    model: str | None = None
    queue_depth: int = 0
    budget: Budget = Budget()
    # Unix times: when the machine stops for idleness if nothing comes (None while answers
    # run or wait, or not known), and when it stopped (None unless stopped, or not known).
    idle_stop_at: float | None = None
    stopped_at: float | None = None
    context_tokens: int | None = None  # the model's context, where the server knows it

    @classmethod
    def from_api(cls, data: dict[str, Any]) -> ServerStatus:
        compute = data.get("compute") or {}
        worker = data.get("worker") or {}
        # The engine the stack is configured with (the local profile says it) is the
        # truth; a worker's beat may be the last engine's, outliving a switch by seconds.
        engine = _str(compute.get("engine"))
        model = _str(compute.get("model"))
        if engine is None:
            engine, model = _str(worker.get("engine")), _str(worker.get("model"))
        elif model is None and worker.get("engine") == engine:
            model = _str(worker.get("model"))  # e.g. the id an OpenAI-compatible server lists
        return cls(
            compute=Compute.from_api(compute),
            instance_type=compute.get("instance_type"),
            since=_float(compute.get("since")),
            detail=str(compute.get("detail") or ""),
            engine=engine,
            model=model,
            queue_depth=_int(data.get("queue_depth")) or 0,
            budget=Budget.from_api(data.get("budget")),
            idle_stop_at=_float(compute.get("idle_stop_at")),
            stopped_at=_float(compute.get("stopped_at")),
            context_tokens=_int(compute.get("context_tokens")),
        )


class PromptState(NamedTuple):
    """`GET /prompts/{id}` (and the 202 of `POST /prompts`, which has no text yet)."""

    request_id: str
    status: str
    text: str = ""
    model: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    queued_s: float | None = None
    wake_s: float | None = None
    first_token_s: float | None = None
    total_s: float | None = None
    cost_usd: float | None = None
    error: str | None = None
    compute: Compute = Compute()
    retrying: bool = False  # a worker died and the answer started over from empty
    # Why the answer ended ("stop", "length", "cancelled", a server's own word); None
    # until it ends, and always None from servers older than the field: unknown, not cut.
    finish_reason: str | None = None

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL_STATUSES

    @classmethod
    def from_api(cls, data: dict[str, Any]) -> PromptState:
        usage = data.get("usage") or {}
        timings = data.get("timings") or {}
        error = data.get("error")
        message = None
        if isinstance(error, dict):
            message = str(error.get("message") or error.get("code") or "failed")
        return cls(
            request_id=str(data.get("request_id", "")),
            status=str(data.get("status", "queued")),
            text=str(data.get("text") or ""),
            model=data.get("model"),
            prompt_tokens=_int(usage.get("prompt_tokens")),
            completion_tokens=_int(usage.get("completion_tokens")),
            queued_s=_float(timings.get("queued_s")),
            wake_s=_float(timings.get("wake_s")),
            first_token_s=_float(timings.get("first_token_s")),
            total_s=_float(timings.get("total_s")),
            cost_usd=_float(data.get("cost_usd")),
            error=message,
            compute=Compute.from_api(data.get("compute")),
            retrying=data.get("retrying") is True,
            finish_reason=_str(data.get("finish_reason")),
        )


@dataclass
class Conversation:
    """A chat and its own generation settings."""

    id: int
    title: str
    system_prompt: str = ""
    temperature: float = 0.7
    max_tokens: int = 512
    model: str = ""
    created_at: float = 0.0
    updated_at: float = 0.0


@dataclass
class ChatMessage:
    """One turn. An assistant turn keeps its request id until it ends, so it can resume."""

    id: int
    conversation_id: int
    role: str
    content: str
    status: str = "done"
    request_id: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    first_token_s: float | None = None
    total_s: float | None = None
    cost_usd: float | None = None
    error: str | None = None
    created_at: float = 0.0
    finish_reason: str | None = None  # the server's word for why the answer ended
    # Not stored (history skips `transient` fields): true only while the server says so.
    retrying: bool = field(default=False, metadata={"transient": True})

    @property
    def in_flight(self) -> bool:
        return self.role == "assistant" and self.status not in TERMINAL_STATUSES

    @property
    def cut(self) -> bool:
        """An answer that ended because it reached max_tokens (it can be continued)."""
        return self.role == "assistant" and self.status == "done" and self.finish_reason == FINISH_LENGTH

    def apply(self, state: PromptState) -> None:
        """Take the server's latest view of this answer."""
        self.status = state.status
        self.content = state.text  # a retry restarts from empty: never keep the first try's text
        self.retrying = state.retrying
        self.prompt_tokens = state.prompt_tokens
        self.completion_tokens = state.completion_tokens
        self.first_token_s = state.first_token_s
        self.total_s = state.total_s
        self.cost_usd = state.cost_usd
        self.error = state.error
        self.finish_reason = state.finish_reason
