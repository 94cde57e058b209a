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
- A slow stream is polled every 0.5 s: one that brings under ~8 tokens/s (32 characters/s;
  the engine shares its time between several answers, or a CPU model is slow), and a
  prompt still queued at its second poll (it waits behind other answers). Two tokens every
  0.5 s read as smoothly as one every 0.25 s, and it halves the requests: on a computer
  whose engine uses every core, the polls' CPU comes out of its tokens/s (8 answers at once
  on 2 cores: the stack took 6.6 % of the engine's CPU polled every 0.25 s, 4.9 % every
  0.5 s; `bench/llamacpp_stack.py`). The rule reads characters per second, not per poll: a
  slow stream polled every 0.5 s brings twice the characters of one polled every 0.25 s,
  and a count per poll flipped it back and forth between the two paces.
- An answer in a chat that is not on screen is polled every 2 s: nobody watches it grow, and
  it is saved and marked done within 2 s. Opening its chat polls it at once, then at the
  pace above. A person with several chats answering at once (the only way a local engine
  gets concurrent prompts) then has one answer polled as it streams, not all of them.
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
SLOW_STREAM_INTERVAL_S = 0.5
SLOW_STREAM_CHARS_PER_S = 32.0  # slower than this: under ~8 tokens/s of English text
OFF_SCREEN_INTERVAL_S = 2.0
WAITING_INTERVAL_S = 1.0
ERROR_BASE_S = 0.5
ERROR_CAP_S = 10.0
STATUS_BUSY_S = 2.0
STATUS_IDLE_S = 15.0


def prompt_interval(status: str, consecutive_errors: int = 0, previous: str | None = None,
                    new_chars: int | None = None, since_s: float = STREAMING_INTERVAL_S,
                    on_screen: bool = True) -> float:
    """Seconds until the next `GET /prompts/{id}`; `previous` is the status the poll before
    this one saw, `new_chars` how much the text grew since then, `since_s` how long before
    it was asked, and `on_screen` whether its chat is the one shown."""
    if consecutive_errors:
        return error_backoff(consecutive_errors)
    if status == "waking":
        interval = WAITING_INTERVAL_S
    elif status == previous == "queued" or (
            status == previous == "running" and new_chars is not None
            and 0 <= new_chars < SLOW_STREAM_CHARS_PER_S * since_s):
        interval = SLOW_STREAM_INTERVAL_S
    else:
        interval = STREAMING_INTERVAL_S
    return interval if on_screen else max(interval, OFF_SCREEN_INTERVAL_S)


class PromptPace:
    """`prompt_interval` for one prompt's polls in turn: it remembers what the last poll saw
    and how long it waited (the app's poller and the benchmarks that poll as the app does).
    `on_screen` is whether the prompt's chat is shown."""

    def __init__(self, on_screen: bool = True) -> None:
        self.status: str | None = None
        self.on_screen = on_screen
        self._chars = 0
        self._interval = STREAMING_INTERVAL_S

    def after(self, status: str, text: str) -> float:
        """Seconds until the next poll, after one that saw `status` and `text`."""
        previous, self.status = self.status, status
        new_chars, self._chars = len(text) - self._chars, len(text)
        self._interval = prompt_interval(status, previous=previous, new_chars=new_chars,
                                         since_s=self._interval, on_screen=self.on_screen)
        return self._interval


def error_backoff(consecutive_errors: int) -> float:
    """0.5, 1, 2, 4, 8, 10, 10 ... seconds."""
    return min(ERROR_BASE_S * 2 ** max(consecutive_errors - 1, 0), ERROR_CAP_S)


def status_interval(state: ComputeState, busy: bool, consecutive_errors: int = 0) -> float:
    """Seconds until the next `GET /status`."""
    if consecutive_errors:
        return error_backoff(consecutive_errors)
    transitioning = state in (ComputeState.STARTING, ComputeState.LOADING_MODEL, ComputeState.STOPPING)
    return STATUS_BUSY_S if busy or transitioning else STATUS_IDLE_S
