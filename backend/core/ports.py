"""What the domain needs from the outside world, named as Protocols.

Adapters in `backend.adapters` implement these; domain tests use small fakes, adapter
tests use the real thing (a real redis-server, moto's server).
"""

from __future__ import annotations

import enum
import threading
from collections.abc import Callable, Iterator
from typing import Any, NamedTuple, Protocol


class ComputeState(enum.StrEnum):
    """What the GPU (or the local worker process) is doing, as the app shows it.

    The one enum of these states: the service answers with them, the contract lists them
    (`reported()`), and the desktop app reads them back. `UNKNOWN` is the app's own, for
    before the first answer or an answer it cannot read; the API never sends it.
    """

    STOPPED = "stopped"
    STARTING = "starting"
    LOADING_MODEL = "loading_model"
    READY = "ready"
    STOPPING = "stopping"
    UNKNOWN = "unknown"

    @classmethod
    def reported(cls) -> list[ComputeState]:
        """The states the API answers with, in the contract's order."""
        return [s for s in cls if s is not cls.UNKNOWN]

    @classmethod
    def parse(cls, value: object) -> ComputeState:
        """The state an answer names; `UNKNOWN` for anything else."""
        try:
            return cls(str(value))
        except ValueError:
            return cls.UNKNOWN

    @property
    def label(self) -> str:
        """A few words for the status bar."""
        return _STATE_LABELS[self]


_STATE_LABELS = {
    ComputeState.STOPPED: "GPU stopped",
    ComputeState.STARTING: "GPU starting",
    ComputeState.LOADING_MODEL: "Loading model",
    ComputeState.READY: "GPU ready",
    ComputeState.STOPPING: "GPU stopping",
    ComputeState.UNKNOWN: "Status unknown",
}


class MachineStatus(NamedTuple):
    """The machine's own state, before the worker's heartbeat is taken into account.

    `running` means the machine is up; whether the model is loaded is the worker's to say.
    """

    state: str  # "stopped" | "pending" | "running" | "stopping"
    instance_type: str | None = None
    since: float | None = None
    detail: str = ""


class ComputeControl(Protocol):
    """Start, stop and describe the one machine that runs the worker."""

    def describe(self) -> MachineStatus: ...

    def start(self) -> str:
        """Start the machine if it is stopped; return what happened in a few words."""
        ...

    def stop(self) -> str:
        """Stop (or hibernate, where supported) the machine; return which one happened."""
        ...


class Chunk(NamedTuple):
    """A piece of streamed output; the last one carries usage and a finish reason."""

    text: str = ""
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    finish_reason: str | None = None


class StopSignal:
    """A stop request for one stream: callable like `should_stop`, and able to interrupt.

    Engines poll it between chunks. One that can block between chunks (an HTTP stream that
    stalls) also registers `on_stop(callback)`; `set()` runs the callbacks at once, from
    the thread that stops the job, so the engine can abort its request there and then.
    """

    def __init__(self) -> None:
        self._event = threading.Event()
        self._lock = threading.Lock()
        self._callbacks: list[Callable[[], None]] = []

    def __call__(self) -> bool:
        return self._event.is_set()

    def set(self) -> None:
        with self._lock:
            if self._event.is_set():
                return
            self._event.set()
            callbacks, self._callbacks = self._callbacks, []
        for callback in callbacks:
            callback()

    def on_stop(self, callback: Callable[[], None]) -> None:
        """Run `callback` when the stop is set (at once when it already is)."""
        with self._lock:
            if not self._event.is_set():
                self._callbacks.append(callback)
                return
        callback()


class Engine(Protocol):
    """Generates text for chat messages, as a stream the caller can abandon.

    `should_stop` is polled between chunks; when it returns True the engine stops
    generating (for an HTTP engine: closes the stream, which makes vLLM abort the request).
    The worker passes a `StopSignal`, whose `on_stop` lets an engine abort a stalled stream.
    The last chunk carries a finish reason; a stream that ends without one is a failure.
    """

    name: str

    def ready(self) -> bool: ...

    def stream(
        self,
        messages: list[dict[str, str]],
        params: dict[str, Any],
        should_stop: Callable[[], bool],
    ) -> Iterator[Chunk]: ...


class SpendSource(Protocol):
    """Month-to-date spend in USD, from wherever the stack keeps it (Budgets, a fixed value)."""

    def month_to_date_usd(self) -> float | None: ...
