"""Words for the wake status bar: what the GPU does and why a prompt waits."""

from __future__ import annotations

from desktop.core.models import ComputeState, ServerStatus


def countdown_text(eta_s: float) -> str:
    """'about 42 s', 'about 2 min', or 'any moment now' once the ETA has run out."""
    if eta_s <= 0.5:
        return "any moment now"
    if eta_s < 90:
        return f"about {round(eta_s)} s"
    return f"about {round(eta_s / 60)} min"


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
    """'TinyLlama-1.1B-Chat' (the model, when the worker names one), 'Echo', …"""
    if status.model:
        return status.model.rstrip("/").rsplit("/", 1)[-1]
    return _ENGINE_NAMES.get(status.engine or "", "The local engine")


def describe(status: ServerStatus, eta_left_s: float, waiting: int, running: int = 0) -> str:
    """One line for the status bar. `waiting`: our prompts not answering yet; `running`:
    answers streaming now (the server's queue depth counts those too)."""
    state = status.compute.state
    local = status.instance_type == LOCAL and state != ComputeState.UNKNOWN
    if local:
        text = f"{local_engine_name(status)} on this computer: {_LOCAL_STATES.get(state, state.label)}"
    else:
        text = state.label
    if state in (ComputeState.STARTING, ComputeState.LOADING_MODEL):
        text += f" — ready in {countdown_text(eta_left_s)}"
    if status.instance_type and state != ComputeState.STOPPED and not local:
        text += f" ({status.instance_type})"
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
