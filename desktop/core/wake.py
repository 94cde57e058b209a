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


def describe(status: ServerStatus, eta_left_s: float, waiting: int) -> str:
    """One line for the status bar."""
    state = status.compute.state
    text = state.label
    if state in (ComputeState.STARTING, ComputeState.LOADING_MODEL):
        text += f" — ready in {countdown_text(eta_left_s)}"
    if status.instance_type and state != ComputeState.STOPPED:
        text += f" ({status.instance_type})"
    if waiting:
        reason = {
            ComputeState.STOPPED: "the GPU is asleep and wakes for it",
            ComputeState.STARTING: "waiting for the GPU to start",
            ComputeState.LOADING_MODEL: "waiting for the model to load",
            ComputeState.STOPPING: "the GPU is stopping; the prompt starts when it is back",
            ComputeState.READY: "queued" if status.queue_depth else "answering",
        }.get(state, "waiting")
        noun = "prompt" if waiting == 1 else "prompts"
        text += f" · {waiting} {noun}: {reason}"
    if status.budget.state == "warning" and status.budget.month_to_date_usd is not None:
        text += f" · budget warning: ${status.budget.month_to_date_usd:.2f} this month"
    return text
