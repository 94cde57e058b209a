"""Words for the wake status bar: what the GPU does and why a prompt waits."""

from __future__ import annotations

import math
from datetime import datetime
from pathlib import Path

from desktop.core.model_catalog import CATALOG
from desktop.core.models import ComputeState, ServerStatus


def countdown_text(eta_s: float) -> str:
    """'about 42 s', 'about 2 min', or 'any moment now' once the ETA has run out."""
    if eta_s <= 0.5:
        return "any moment now"
    if eta_s < 90:
        return f"about {round(eta_s)} s"
    return f"about {round(eta_s / 60)} min"


def idle_stop_text(left_s: float, approximate: bool = False) -> str:
    """'stops in 12 min if idle', 'stops in 40 s if idle'; 'about' where the stop itself
    takes a while after the deadline (EC2 stopping, ~a minute)."""
    if left_s <= 0.5:
        return "stops any moment now if idle"
    about = "about " if approximate else ""
    if left_s < 60:
        return f"stops in {about}{math.ceil(left_s)} s if idle"
    return f"stops in {about}{max(1, round(left_s / 60))} min if idle"


def stopped_text(stopped_at: float, now: float) -> str:
    """'stopped just now', 'stopped 5 min ago', 'stopped at 14:02' (today, local time),
    'stopped on 2032-02-28'."""
    ago = now - stopped_at
    if ago < 60:
        return "stopped just now"
    if ago < 3600:
        return f"stopped {round(ago / 60)} min ago"
    when, today = datetime.fromtimestamp(stopped_at), datetime.fromtimestamp(now)
    if when.date() == today.date():
        return f"stopped at {when:%H:%M}"
    return f"stopped on {when:%Y-%m-%d}"


# The local profile's "instance" is the worker on this computer (compute_local's type).
LOCAL = "local"
_ENGINE_NAMES = {"echo": "Echo", "openai": "The OpenAI-compatible server", "vllm": "vLLM",
                 "llamacpp": "llama.cpp", "llama.cpp": "llama.cpp"}
_LOCAL_STATES = {
    ComputeState.STOPPED: "stopped; starts on the next prompt",
    ComputeState.STARTING: "starting",
    ComputeState.LOADING_MODEL: "loading the model",
    ComputeState.READY: "ready",
    ComputeState.STOPPING: "stopping",
}


def local_engine_name(status: ServerStatus) -> str:
    """'TinyLlama-1.1B-Chat' (a catalog model by its title, another by its name), 'Echo', …"""
    if status.model:
        name = status.model.rstrip("/").rsplit("/", 1)[-1]
        # llama.cpp lists a GGUF by its file name: say the model's name instead.
        titles = {Path(m.file_name).stem: m.title for m in CATALOG.values()}
        return titles.get(name.removesuffix(".gguf"), name)
    return _ENGINE_NAMES.get(status.engine or "", "The local engine")


def describe(status: ServerStatus, eta_left_s: float, waiting: int, running: int = 0,
             now: float | None = None) -> str:
    """One line for the status bar. `waiting`: our prompts not answering yet; `running`:
    answers streaming now (the server's queue depth counts those too); `now`: the clock's
    epoch seconds, for when the machine stops or stopped (left out when None)."""
    state = status.compute.state
    local = status.instance_type == LOCAL and state != ComputeState.UNKNOWN
    stopped = None
    if state == ComputeState.STOPPED and status.stopped_at is not None and now is not None:
        stopped = stopped_text(status.stopped_at, now)
    if local:
        words = _LOCAL_STATES.get(state, state.label)
        if stopped:
            words = f"{stopped}; starts on the next prompt"
        text = f"{local_engine_name(status)} on this computer: {words}"
    else:
        text = f"GPU {stopped}" if stopped else state.label
    if state in (ComputeState.STARTING, ComputeState.LOADING_MODEL):
        text += f" — ready in {countdown_text(eta_left_s)}"
    if status.instance_type and state != ComputeState.STOPPED and not local:
        text += f" ({status.instance_type})"
    if state == ComputeState.READY and status.idle_stop_at is not None and now is not None and not running:
        # The local worker exits at its deadline; a GPU then takes a while to stop.
        text += " · " + idle_stop_text(status.idle_stop_at - now, approximate=not local)
    if running:
        text += f" · {running} {'answer' if running == 1 else 'answers'} running"
    queued = max(0, status.queue_depth - running)
    if waiting:
        reason = {
            ComputeState.STOPPED: "the GPU is asleep and wakes for it",
            ComputeState.STARTING: "waiting for the GPU to start",
            ComputeState.LOADING_MODEL: "waiting for the model to load",
            ComputeState.STOPPING: "the GPU is stopping; the prompt starts when it is back",
            ComputeState.READY: "queued" if queued else "starting",
        }.get(state, "waiting")
        noun = "prompt" if waiting == 1 else "prompts"
        text += f" · {waiting} {noun}: {reason}"
    if status.budget.state == "warning" and status.budget.month_to_date_usd is not None:
        text += f" · budget warning: ${status.budget.month_to_date_usd:.2f} this month"
    return text
