"""How often to ask the API, as plain rules (the Qt poller only follows them).

Why these numbers:
- While an answer streams, poll every 0.25 s. The display then lags the worker by at most
  0.25 s plus one round trip (a few ms locally, ~50-100 ms to API Gateway), which is well
  under a second, at 4 requests/s for one answer — about 240 requests for a minute-long
  answer, a cost of a fraction of a cent on an HTTP API. Faster would double the requests
  for a lag nobody can see; slower makes the text arrive in visible lumps.
- `queued` means the GPU is up (the router queues as `waking` otherwise) and a worker takes
  the prompt within milliseconds, so it is polled like a streaming answer: the first token
  shows at most 0.25 s late. Polled every 1 s, a quick answer looked ~10 % slower than the
  engine (`bench/app_polling.py`).
- While waking nothing changes for tens of seconds, so poll every 1 s (the countdown runs
  from the ETA locally).
- After errors, back off exponentially (0.5 s doubling, capped at 10 s) so an API that is
  away is not hammered; the first success resets it.
- `GET /status` every 2 s while something changes (waking, answering) and every 15 s when
  idle, so the status bar notices the GPU stopping on its own within 15 s.
"""

from __future__ import annotations

from desktop.core.models import ComputeState

STREAMING_INTERVAL_S = 0.25
WAITING_INTERVAL_S = 1.0
ERROR_BASE_S = 0.5
ERROR_CAP_S = 10.0
STATUS_BUSY_S = 2.0
STATUS_IDLE_S = 15.0


def prompt_interval(status: str, consecutive_errors: int = 0) -> float:
    """Seconds until the next `GET /prompts/{id}`."""
    if consecutive_errors:
        return error_backoff(consecutive_errors)
    return WAITING_INTERVAL_S if status == "waking" else STREAMING_INTERVAL_S


def error_backoff(consecutive_errors: int) -> float:
    """0.5, 1, 2, 4, 8, 10, 10 ... seconds."""
    return min(ERROR_BASE_S * 2 ** max(consecutive_errors - 1, 0), ERROR_CAP_S)


def status_interval(state: ComputeState, busy: bool, consecutive_errors: int = 0) -> float:
    """Seconds until the next `GET /status`."""
    if consecutive_errors:
        return error_backoff(consecutive_errors)
    transitioning = state in (ComputeState.STARTING, ComputeState.LOADING_MODEL, ComputeState.STOPPING)
    return STATUS_BUSY_S if busy or transitioning else STATUS_IDLE_S
