"""A reference day on the GPU: seconds billed ÷ seconds working, for several idle timeouts.

Three sessions, 50 prompts in all, go through the real local stack (LocalStack: redis-server,
the router behind the gateway, the worker with the echo engine), which wakes the "instance"
on the first prompt and stops it after the worker's idle timeout, as on EC2. The day runs on
a simulated clock, so it takes seconds:

- Inside a session everything is real time × SCALE: the person's reading time between
  answers, the engine's generation (echo, ECHO_S_PER_WORD a word), the idle timeout the
  worker enforces (IDLE_TIMEOUT_S / SCALE). The order of events is the real stack's own.
- A wake takes the EC2 timings DESIGN.md records (pending→running ~16–20 s, vLLM ready
  20–60 s: BOOT_S), not the local process's start, which SCALE would blow up.
- Between sessions the instance is stopped and nothing is billed: the clock jumps.

Billed = Σ wakes (BOOT_S + from the first job running to the worker's exit).
Working is printed two ways: "in session" (from a session's first prompt to its last answer:
what an always-on GPU would serve) and "generating" (a prompt on the engine).
"""

from __future__ import annotations

import random
import threading
import time
from dataclasses import dataclass

import requests

from backend.core.policies import DEFAULT_WAKE_ETA_S
from backend.entrypoints.local import LocalStack

SCALE = 400.0  # simulated seconds per real second
BOOT_S = 18.0 + 40.0  # EC2 pending→running + vLLM ready (DESIGN.md's checked ranges, mid-points)
DEFAULT_IDLE_TIMEOUT_S = 300.0  # infra/stack.yaml's IdleTimeoutS default (tests/infra checks they agree)
IDLE_TIMEOUTS_S = (900.0, 600.0, 300.0, 120.0)
GOAL = 1.3
SESSIONS = (17, 17, 16)  # prompts per session: 50 in all (morning, afternoon, evening)
READ_S = (20.0, 120.0)  # the person reads an answer and types the next prompt
WORDS = (60, 400)  # answer length in words (echo: the prompt's own words)
ECHO_S_PER_WORD = 1 / 40  # ~40 tokens/s, TinyLlama-1.1B on a T4
POLL_S = 0.002  # real seconds between the client's polls and the exit watch
SEED = 11


@dataclass
class Day:
    """What one simulated day measured, in simulated seconds."""

    idle_timeout_s: float
    billed_s: float = 0.0
    in_session_s: float = 0.0
    generating_s: float = 0.0
    wakes: int = 0

    @property
    def ratio_session(self) -> float:
        return self.billed_s / self.in_session_s

    @property
    def ratio_generating(self) -> float:
        return self.billed_s / self.generating_s


class _StopWatch(threading.Thread):
    """Records the real moments the local "instance" stops (the worker's idle exit)."""

    def __init__(self, stack: LocalStack):
        super().__init__(name="stop-watch", daemon=True)
        self.stack = stack
        self.halt = threading.Event()
        self.stops: list[float] = []

    def run(self) -> None:
        was = "stopped"
        while not self.halt.wait(POLL_S):
            assert self.stack.compute is not None
            state = self.stack.compute.describe().state
            if state == "stopped" and was != "stopped":
                self.stops.append(time.monotonic())
            was = state

    def wait_for(self, count: int) -> None:
        while len(self.stops) < count:
            self.halt.wait(POLL_S)


def run_day(idle_timeout_s: float) -> Day:
    """The reference day through a fresh local stack whose worker idles out after `idle_timeout_s` (simulated)."""
    rng = random.Random(SEED)  # the same day for every idle timeout
    day = Day(idle_timeout_s)
    pause = threading.Event()
    with LocalStack(port=0, idle_timeout_s=idle_timeout_s / SCALE, echo_delay_s=ECHO_S_PER_WORD / SCALE,
                    heartbeat_s=0.02, watchdog=False) as stack:
        assert stack.compute is not None
        stack.compute.watch_interval_s = POLL_S  # notice the worker's idle exit at once
        watch = _StopWatch(stack)
        watch.start()
        ready: list[float] = []  # real moment each wake's first job ran
        session = requests.Session()
        session.headers["Authorization"] = f"Bearer {stack.token}"
        for prompts in SESSIONS:
            sim = 0.0  # simulated seconds since the session's first prompt
            last_answer = 0.0
            for _ in range(prompts):
                words = rng.randint(*WORDS)
                text = " ".join(f"w{i}" for i in range(words))
                woke = stack.compute.describe().state == "stopped"
                t0 = time.monotonic()
                rid = session.post(f"{stack.url}/prompts", json={"messages": [{"role": "user", "content": text}]},
                                   timeout=10).json()["request_id"]
                started: float | None = None
                while True:
                    job = session.get(f"{stack.url}/prompts/{rid}", timeout=10).json()
                    if started is None and job["status"] in ("running", "done"):
                        started = time.monotonic()
                    if job["status"] == "done":
                        break
                    assert job["status"] in ("queued", "waking", "running"), job
                    pause.wait(POLL_S)
                done = time.monotonic()
                assert started is not None
                if woke:
                    day.wakes += 1
                    ready.append(started)
                    sim += BOOT_S + (done - started) * SCALE  # the wake takes EC2's time, not ours
                else:
                    sim += (done - t0) * SCALE
                day.generating_s += words * ECHO_S_PER_WORD
                read = rng.uniform(*READ_S)
                last_answer = sim
                pause.wait(read / SCALE)
                sim += read
            day.in_session_s += last_answer
            watch.wait_for(day.wakes)  # the worker's own idle stop: the instance stops
            # Between sessions: stopped, nothing billed; the clock jumps to the next one.
        watch.halt.set()
        for began, stopped in zip(ready, watch.stops, strict=True):
            day.billed_s += BOOT_S + (stopped - began) * SCALE
    return day


def main() -> None:
    print(f"  {len(SESSIONS)} sessions, {sum(SESSIONS)} prompts; wake {BOOT_S:.0f} s (router's default ETA "
          f"{DEFAULT_WAKE_ETA_S:.0f} s); reading {READ_S[0]:.0f}–{READ_S[1]:.0f} s; answers "
          f"{WORDS[0]}–{WORDS[1]} words at {1 / ECHO_S_PER_WORD:.0f}/s; clock ×{SCALE:.0f}")
    print(f"  {'idle timeout':>12}  {'wakes':>5}  {'billed':>8}  {'in session':>10}  {'generating':>10}"
          f"  {'billed÷session':>14}  {'billed÷generating':>17}")
    meets = []
    for timeout in IDLE_TIMEOUTS_S:
        day = run_day(timeout)
        mark = " (default)" if timeout == DEFAULT_IDLE_TIMEOUT_S else ""
        if day.ratio_session <= GOAL:
            meets.append(timeout)
        print(f"  {timeout:>10.0f} s  {day.wakes:>5}  {day.billed_s:>7.0f}s  {day.in_session_s:>9.0f}s"
              f"  {day.generating_s:>9.0f}s  {day.ratio_session:>14.2f}  {day.ratio_generating:>17.2f}{mark}")
    if DEFAULT_IDLE_TIMEOUT_S in meets:
        print(f"  the default idle timeout meets the goal (billed ÷ in session ≤ {GOAL})")
    else:
        which = ", ".join(f"{t:.0f} s" for t in meets) or "none of these"
        print(f"  goal billed ÷ in session ≤ {GOAL}: the default {DEFAULT_IDLE_TIMEOUT_S:.0f} s does not meet it;"
              f" meeting it: {which}")


if __name__ == "__main__":
    main()
